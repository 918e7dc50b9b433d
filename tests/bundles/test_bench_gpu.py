"""bench/bench_gpu.py (the GPU check of the study, bench/gpu_study.sh) runs on the CPU with tiny shapes:
every phase runs and reports, so the GPU run does not meet a broken script."""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_gpu_tiny_runs_every_phase(tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    import bench_gpu
    out = tmp_path / "gpu_study.json"
    bench_gpu.main(["--tiny", "--out", str(out), "--work", str(tmp_path / "w")])
    r = json.loads(out.read_text())
    assert list(r["phases"]) == ["data", "base", "nli", "finetune", "generation", "infer", "score", "generation_merged"]
    f, g = r["phases"]["finetune"], r["phases"]["generation"]
    assert f["train_tokens_s"] > 0 and f["mfu"] > 0 and f["eval_gen_tokens_s"] > 0
    assert f["eval_nli_bidir"] is not None  # the eval loop scored its generations with the NLI model
    assert g["plain_tokens"] == g["compiled_tokens"] > 0 and g["same_tokens_records"] == g["records"]
    assert r["phases"]["infer"]["n"] == 4 and "nli_bidir" in r["phases"]["score"]["scores"]
    assert r["gen_same_tokens"] == f"{g['records']}/{g['records']}" and r["params_lm"] > 0
    m = r["phases"]["generation_merged"]  # fp32 here: merging changes no token
    assert m["merged_same_tokens_as_unmerged"] == m["merged_compiled_same_tokens_as_unmerged"] == m["records"]
    assert m["merged_speedup"] > 0 and m["merge_seconds"] >= 0 and r["gen_merged_same_tokens"] == "6/6"

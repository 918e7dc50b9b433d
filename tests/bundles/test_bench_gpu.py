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


def test_a_failing_phase_is_recorded_and_the_rest_still_runs(tmp_path, monkeypatch):
    """On the GPU machine one broken phase must not lose the others' numbers, nor end the run with only a
    traceback in a log: its error goes into the JSON, phases that need it are marked skipped."""
    sys.path.insert(0, str(ROOT / "bench"))
    import bench_gpu

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
    monkeypatch.setattr(bench_gpu, "build_base", broken)
    out = tmp_path / "gpu_study.json"
    bench_gpu.main(["--tiny", "--out", str(out), "--work", str(tmp_path / "w")])
    r = json.loads(out.read_text())
    p = r["phases"]
    assert "error" not in p["data"] and "error" not in p["nli"]  # ran, and the numbers are kept
    assert p["base"]["error"].startswith("RuntimeError: CUDA error") and "broken" in "".join(p["base"]["traceback"])
    assert p["finetune"]["error"] == "skipped: needs base" and p["score"]["error"] == "skipped: needs infer"
    assert r["failed_phases"] == ["base", "finetune", "generation", "infer", "score", "generation_merged"]


def test_the_budget_stops_a_hanging_phase_and_keeps_the_finished_ones(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "bench"))
    import time
    import bench_gpu

    def hangs(*args, **kwargs):
        time.sleep(60)
    monkeypatch.setattr(bench_gpu, "build_base", hangs)
    out = tmp_path / "gpu_study.json"
    t = time.time()
    bench_gpu.main(["--tiny", "--out", str(out), "--work", str(tmp_path / "w"), "--budget", "8"])
    assert time.time() - t < 30
    p = json.loads(out.read_text())["phases"]
    assert "error" not in p["data"] and "budget" in p["base"]["error"]
    assert p["nli"]["error"] == "skipped: --budget spent"

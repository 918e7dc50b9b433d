"""Merged-adapter generation (finetune --merge-for-eval, infer --merge): a merged copy of the LoRA model gives
the unmerged model's tokens in fp32 and leaves the trained adapter and the base weights untouched."""
import json

import pytest
import torch

from bundles.batching import Batcher, load_records
from bundles.generation import generate, merged_copy
from bundles.loading import load_model
from model_helpers import varied, with_adapter


@pytest.fixture(scope="module", params=["tiny_vlm", "tiny_lm"])
def setup(request, data_dir):
    model, processor = load_model(request.getfixturevalue(request.param))
    return with_adapter(varied(model)), Batcher(processor, data_dir), load_records(data_dir, "dev")


def test_merged_copy_gives_the_same_tokens_in_fp32_and_leaves_the_model_alone(setup):
    model, batcher, records = setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plain = generate(model, batcher, records, batch_size=7, max_new_tokens=6)
    merged = merged_copy(model)
    assert not any("lora_" in n for n, _ in merged.named_parameters())  # really merged: no adapter layers left
    fast = generate(merged, batcher, records, batch_size=7, max_new_tokens=6)
    assert [f["tokens"] for f in fast] == [p["tokens"] for p in plain]
    assert [f["hit_limit"] for f in fast] == [p["hit_limit"] for p in plain]
    # not vacuous: tokens were generated, they vary across prompts, and the adapter changes them
    assert sum(len(p["tokens"]) for p in plain) > len(records) and len({tuple(p["tokens"]) for p in plain}) > 1
    with model.disable_adapter():
        base = generate(model, batcher, records, batch_size=7, max_new_tokens=6)
    assert [b["tokens"] for b in base] != [p["tokens"] for p in plain]
    # the trained model is untouched, bit for bit (in-place merge + unmerge would leave W + BA - BA)
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert any("lora_A" in k for k in after)


def test_finetune_merge_for_eval_and_infer_merge(varied_vlm, data_dir, tmp_path):
    """Wiring: the eval loop generates from the merged copy (the same rows as the plain eval loop in fp32),
    and infer --merge on the saved adapter gives the eval loop's predictions for the same dev records."""
    from bundles import finetune, infer
    common = ["--model", str(varied_vlm), "--data", str(data_dir), "--lora-r", "4", "--steps", "2", "--batch-size", "4",
              "--lr", "0.05", "--eval-steps", "2", "--eval-size", "24", "--metrics", "exact,token_f1",
              "--best-metric", "token_f1", "--no-eval-on-start", "--max-new-tokens", "4", "--gen-batch-size", "8"]
    rows = {}
    for name, extra in (("plain", []), ("merged", ["--merge-for-eval"])):
        finetune.main(common + ["--out", str(tmp_path / name)] + extra)
        rows[name] = [json.loads(x) for x in (tmp_path / name / "predictions" / "eval-step2.jsonl").read_text().splitlines()]
    assert json.loads((tmp_path / "merged" / "args.json").read_text())["merge_for_eval"] is True
    assert [r["prediction"] for r in rows["merged"]] == [r["prediction"] for r in rows["plain"]]
    assert len({r["prediction"] for r in rows["plain"]}) > 3  # answers that vary, so the comparison can fail
    infer.main(["--model", str(varied_vlm), "--adapter", str(tmp_path / "merged"), "--data", str(data_dir),
                "--split", "dev", "--merge", "--max-new-tokens", "4", "--batch-size", "8", "--out", str(tmp_path / "inf")])
    assert json.loads((tmp_path / "inf" / "metrics.json").read_text())["merged"] is True
    by_id = {json.loads(x)["id"]: json.loads(x)["prediction"] for x in (tmp_path / "inf" / "predictions.jsonl").read_text().splitlines()}
    assert [by_id[r["id"]] for r in rows["merged"]] == [r["prediction"] for r in rows["merged"]]


@pytest.mark.parametrize("step, argv, message", [
    ("finetune", ["--full", "--merge-for-eval"], "--full trains no adapter"),
    ("infer", ["--merge"], "--merge needs --adapter"),
])
def test_merge_without_an_adapter_is_refused(step, argv, message, tiny_vlm, data_dir, capsys):
    import importlib
    mod = importlib.import_module(f"bundles.{step}")
    with pytest.raises(SystemExit) as e:
        mod.main(["--model", str(tiny_vlm), "--data", str(data_dir), "--metrics", "exact", "--best-metric", "exact",
                  *argv] if step == "finetune" else ["--model", str(tiny_vlm), "--data", str(data_dir), *argv])
    assert e.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("extra", [["--merge-for-eval"], []])
def test_compiled_eval_generation_compiles_once_over_three_evaluations(tiny_lm, data_dir, tmp_path, monkeypatch, extra):
    """--merge-for-eval makes a new merged model object at every evaluation; with --compile-generation that
    must not mean a new compilation each time (minutes per eval at 7B, and after torch._dynamo's recompile
    limit a silent fall-back to eager decoding). Counted with dynamo's graph counter; backend 'eager' (the
    capture, which is what recompiles, without C++ code generation) keeps it to seconds on the CPU."""
    from torch._dynamo.utils import counters
    import bundles.gen_eval as gen_eval
    from bundles import finetune
    from bundles.generation import generate
    new_graphs = []

    def counting(*args, **kwargs):
        before = counters["stats"]["unique_graphs"]
        out = generate(*args, **kwargs, compile_backend="eager")
        new_graphs.append(counters["stats"]["unique_graphs"] - before)
        return out
    monkeypatch.setattr(gen_eval, "generate", counting)
    finetune.main(["--model", str(tiny_lm), "--data", str(data_dir), "--out", str(tmp_path / "ft"), "--lora-r", "4",
                   "--steps", "2", "--batch-size", "4", "--lr", "0.05", "--eval-steps", "1", "--eval-size", "6",
                   "--gen-batch-size", "3", "--max-new-tokens", "4", "--metrics", "exact", "--best-metric", "exact",
                   "--compile-generation", *extra])
    assert len(new_graphs) == 3  # step 0, 1 and 2
    assert new_graphs[0] >= 1 and new_graphs[1:] == [0, 0], new_graphs

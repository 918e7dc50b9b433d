"""The steps end to end on tiny models: finetune (GenEvalTrainer) -> infer -> score; nli_train; models."""
import json

import pytest

from bundles import finetune, infer, models, nli_train, score
from bundles.common import read_jsonl


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_vlm, data_dir, nli_model):
    out = tmp_path_factory.mktemp("ft")
    finetune.main(["--model", str(tiny_vlm), "--data", str(data_dir), "--nli-model", str(nli_model), "--out", str(out),
                   "--lora-r", "4", "--train-projector", "--steps", "6", "--batch-size", "8", "--eval-steps", "3",
                   "--eval-size", "12", "--max-new-tokens", "6", "--best-metric", "token_f1", "--lr", "5e-3"])
    return out


def test_generation_metrics_are_logged_next_to_eval_loss(lora_run):
    history = json.loads((lora_run / "log_history.json").read_text())
    evals = [h for h in history if "eval_loss" in h]
    assert [h["step"] for h in evals] == [0, 3, 6]
    for h in evals:
        for k in ("eval_exact", "eval_token_f1", "eval_nli_bidir", "eval_nli_contra", "eval_gen_len",
                  "eval_token_f1_color", "eval_exact_yesno"):
            assert k in h, k
    metrics = json.loads((lora_run / "metrics.json").read_text())
    best = max(evals[1:], key=lambda h: h["eval_token_f1"])  # ties keep the first
    assert metrics["best_step"] == best["step"] and metrics["eval_token_f1"] == best["eval_token_f1"]
    assert metrics["base_eval_token_f1"] == evals[0]["eval_token_f1"]


def test_predictions_written_per_eval(lora_run):
    rows = read_jsonl(lora_run / "predictions" / "eval-step3.jsonl")
    assert len(rows) == 12 and {"id", "prediction", "reference", "qtype", "nli_bidir", "exact"} <= set(rows[0])


def test_lora_targets_only_the_language_model(lora_run):
    from safetensors import safe_open
    with safe_open(str(lora_run / "adapter" / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    lora = [k for k in keys if "lora_" in k]
    assert lora and all("language_model" in k for k in lora)
    assert any("multi_modal_projector" in k for k in keys)  # --train-projector
    assert not any("vision_tower" in k for k in keys)


def test_infer_with_adapter_matches_eval_loop_and_score(lora_run, tiny_vlm, data_dir, nli_model, tmp_path):
    infer.main(["--model", str(tiny_vlm), "--adapter", str(lora_run), "--data", str(data_dir), "--split", "dev",
                "--limit", "12", "--max-new-tokens", "6", "--out", str(tmp_path)])
    preds = read_jsonl(tmp_path / "predictions.jsonl")
    best = json.loads((lora_run / "metrics.json").read_text())["best_step"]
    during = read_jsonl(lora_run / "predictions" / f"eval-step{best}.jsonl")
    assert [p["prediction"] for p in preds] == [p["prediction"] for p in during]  # same model, same routine
    score.main(["--predictions", str(tmp_path), "--nli-model", str(nli_model), "--out", str(tmp_path),
                "--baseline", str(data_dir / "baseline.json")])
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["n"] == 12 and len(read_jsonl(tmp_path / "per_example.jsonl")) == 12 and "rows" not in scores
    assert scores["exact"] == pytest.approx(sum(p["exact"] for p in during) / 12)
    assert {"nli_bidir_color", "exact_shape", "token_f1_yesno"} <= set(scores) and "baseline" in scores


def test_resume_from_checkpoint_continues_the_step_count(lora_run, tiny_vlm, data_dir, tmp_path):
    finetune.main(["--model", str(tiny_vlm), "--data", str(data_dir), "--out", str(tmp_path), "--lora-r", "4",
                   "--train-projector", "--steps", "8", "--batch-size", "8", "--eval-steps", "0",
                   "--metrics", "exact", "--resume", str(lora_run / "checkpoints")])
    history = json.loads((tmp_path / "log_history.json").read_text())
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == 8
    # the state came from checkpoint-6: its evals are in the history, and training went on at step 7
    assert [h["step"] for h in history if "eval_loss" in h] == [0, 3, 6]
    assert [h["step"] for h in history if "loss" in h][-2:] == [7, 8]


def test_full_finetune_learns_on_a_text_lm(tiny_lm, data_dir, tmp_path):
    """A real learning signal in seconds: the generation metric rises from the base model's."""
    finetune.main(["--model", str(tiny_lm), "--data", str(data_dir), "--out", str(tmp_path), "--full",
                   "--steps", "40", "--batch-size", "16", "--lr", "3e-3", "--eval-steps", "40", "--eval-size", "12",
                   "--metrics", "exact,token_f1", "--best-metric", "token_f1", "--max-new-tokens", "10"])
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["eval_token_f1"] > m["base_eval_token_f1"] + 0.3
    assert (tmp_path / "model" / "model.safetensors").exists()


def test_nli_pairs_follow_set_semantics():
    props = dict(nli_train.propositions())
    assert nli_train.label(props["The shape is a blue circle."], props["It is blue."]) == 1
    assert nli_train.label(props["It is blue."], props["The shape is a blue circle."]) == 2
    assert nli_train.label(props["It is blue."], props["It is red."]) == 0
    assert nli_train.label(props["The shape is green."], props["There is no red shape."]) == 1
    assert nli_train.label(props["Yes, there is no red shape."], props["No, there is a red shape."]) == 0
    import random
    pairs = nli_train.make_pairs(50, random.Random(0))
    assert len(pairs) == 150 and sorted({y for _, _, y in pairs}) == [0, 1, 2]


def test_nli_train_saves_a_classifier_with_labels(tmp_path):
    nli_train.main(["--out", str(tmp_path), "--steps", "2", "--batch-size", "8", "--train-pairs", "20",
                    "--dev-pairs", "10", "--eval-every", "1"])
    from transformers import AutoModelForSequenceClassification
    m = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert m.config.id2label == {0: "contradiction", 1: "entailment", 2: "neutral"}
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert 0 <= metrics["dev_accuracy"] <= 1 and metrics["steps"] == 2


def test_tiny_vlm_folder_loads_with_from_pretrained(tiny_vlm):
    from transformers import AutoModelForImageTextToText, AutoProcessor
    model = AutoModelForImageTextToText.from_pretrained(tiny_vlm)
    proc = AutoProcessor.from_pretrained(tiny_vlm)
    assert model.config.image_token_id == proc.tokenizer.convert_tokens_to_ids("<image>")
    assert json.loads((tiny_vlm / "args.json").read_text())["kind"] == "tiny-vlm"


@pytest.mark.slow
def test_smollm2_vlm_from_gguf_is_trainable_and_answers(tmp_path, data_dir):
    models.main(["smollm2-vlm", "--out", str(tmp_path)])
    from bundles.batching import Batcher, load_records
    from bundles.generation import generate
    from bundles.loading import load_model
    model, processor = load_model(tmp_path)
    lm = model.model.language_model
    assert model.lm_head.weight.data_ptr() == lm.embed_tokens.weight.data_ptr()  # tied after resizing
    assert all(p.requires_grad for p in model.parameters())  # plain weights, not GGUF-quantized
    out = generate(model, Batcher(processor, data_dir), load_records(data_dir, "dev", 2), max_new_tokens=8)
    assert all(len(o["prediction"].split()) >= 2 for o in out)  # the pretrained LM writes words


def test_gpu_llava_benchmark_logic_runs_tiny_on_cpu(tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    script = Path(__file__).resolve().parents[2] / "bench" / "gpu_llava.py"
    r = subprocess.run([sys.executable, str(script), "--tiny", "--out", str(tmp_path / "r.json")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads((tmp_path / "r.json").read_text())
    for k in ("train_tokens_s", "mfu", "gen_tokens_s_b1", "gen_tokens_s_b32", "params_trainable"):
        assert result[k] > 0, k
    assert result["params_trainable"] < result["params_total"] / 2  # LoRA, not full training
    assert [r["mode"] for r in result["train_runs"]] == ["eager", "checkpointed", "compiled"]

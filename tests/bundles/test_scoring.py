"""NLI scoring: the device it runs on, pairs longer than the model's limit, empty predictions."""
import json

import pytest
import torch

from bundles import models, score
from bundles.metrics import NLIScorer, default_device


@pytest.fixture(scope="module")
def short_nli(tmp_path_factory):
    """RoBERTa-MNLI-shaped, 24 tokens per pair at most (max_position_embeddings 26)."""
    out = tmp_path_factory.mktemp("short_nli")
    models.main(["tiny-nli", "--out", str(out), "--hidden-size", "32", "--layers", "1", "--heads", "2",
                 "--max-length", "24"])
    return out


def test_device_defaults_to_the_gpu_when_visible_and_honours_the_argument(short_nli):
    assert default_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert NLIScorer(str(short_nli)).device == default_device()
    cpu = NLIScorer(str(short_nli), device="cpu")
    assert next(cpu.model.parameters()).device.type == "cpu"
    meta = NLIScorer(str(short_nli), device="meta")  # not a device anyone scores on: shows it is obeyed
    assert next(meta.model.parameters()).device.type == "meta"


def test_pairs_longer_than_the_model_are_truncated_premise_first(short_nli):
    scorer = NLIScorer(str(short_nli), device="cpu")
    assert scorer.max_length == 24 and scorer.model.config.max_position_embeddings == 26
    long_words = " ".join(["red blue green circle"] * 20)  # one sentence, ~80 tokens
    short = "The shape is red"
    # premise cut, hypothesis whole: the score equals that of the premise's first tokens
    batches = list(scorer.encode([long_words + ".", short], [short, short]))
    assert [len(idx) for idx, _ in batches] == [2]
    ids = batches[0][1]["input_ids"]
    assert ids.shape[1] == 24
    hyp = scorer.tokenizer(short, add_special_tokens=False)["input_ids"]
    assert ids[0, -len(hyp) - 1:-1].tolist() == hyp
    # a hypothesis longer than the model on its own is cut too, instead of crashing
    out = scorer([long_words + ".", "It is red."], ["The shape is blue.", long_words + "."])
    assert all(0.0 < v < 1.0 for k in ("nli_entail", "nli_entail_rev", "nli_contra") for v in out[k])


def test_empty_predictions_score_worst_and_are_counted(tmp_path, short_nli):
    rows = [{"prediction": "The shape is red.", "reference": "The shape is red."},
            {"prediction": "", "reference": "The shape is red."},
            {"prediction": None, "reference": "The shape is blue."}]
    (tmp_path / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    score.main(["--predictions", str(tmp_path), "--nli-model", str(short_nli), "--device", "cpu",
                "--out", str(tmp_path / "out")])
    result = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert result["n_empty"] == 2 and result["nli_empty"] == pytest.approx(2 / 3)
    per = [json.loads(line) for line in (tmp_path / "out" / "per_example.jsonl").read_text().splitlines()]
    first = per[0]
    for r in per[1:]:
        assert r["nli_contra"] == 1.0 and r["nli_entail"] == r["nli_bidir"] == r["exact"] == 0.0
        assert r["nli_contra"] >= first["nli_contra"] and r["nli_bidir"] <= first["nli_bidir"]


@pytest.fixture(scope="module")
def left_padding_nli(tmp_path_factory):
    """A BERT NLI model (absolute positions, numbered from column 0) whose saved tokenizer pads on the
    left, as tokenizers saved from decoder-model code often do."""
    from model_helpers import tiny_nli
    from transformers import AutoTokenizer
    out = tiny_nli(tmp_path_factory.mktemp("left_nli"), {0: "entailment", 1: "neutral", 2: "contradiction"})
    tok = AutoTokenizer.from_pretrained(out)
    tok.padding_side = "left"
    tok.save_pretrained(out)
    return out


PAIRS = [("The shape is red.", "A red circle on a white background, drawn in the middle."),
         ("Yes.", "There is a blue triangle and a green square next to it. It is small."),
         ("Ein roter Kreis, größer als das Quadrat.", "¿Qué? 一个红色的圆。"),
         ("It is a circle", "It is a circle.")]


@pytest.mark.parametrize("model", ["left_padding_nli", "short_nli"])
def test_a_batch_scores_as_each_pair_alone(model, request):
    """Padding must not change a score: with left padding BERT's positions shifted with each batch's
    longest pair, so an example's NLI score depended on the other examples in its batch."""
    scorer = NLIScorer(str(request.getfixturevalue(model)), device="cpu")
    preds, refs = [p for p, _ in PAIRS], [r for _, r in PAIRS]
    together = scorer(preds, refs)
    for i, (p, r) in enumerate(PAIRS):
        alone = scorer([p], [r])
        for k, v in alone.items():
            assert together[k][i] == pytest.approx(v[0], abs=1e-5), (k, i)

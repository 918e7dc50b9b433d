import pytest
import torch

from bundles.metrics import NLIScorer, build_metrics, exact, score_rows, sentences, token_f1
from tests.bundles.conftest import tiny_nli


def test_exact_and_token_f1():
    preds, refs = ["The shape is blue.", "the SHAPE is blue", "The shape is red.", ""], ["The shape is blue."] * 4
    assert exact(preds, refs)["exact"] == [1.0, 1.0, 0.0, 0.0]
    f1 = token_f1(preds, refs)["token_f1"]
    assert f1[:2] == [1.0, 1.0] and f1[2] == pytest.approx(0.75) and f1[3] == 0.0


def test_sentence_split():
    assert sentences("A cat. A dog! Why?") == ["A cat.", "A dog!", "Why?"]
    assert sentences("no stop") == ["no stop"]


def test_nli_reads_label_order_from_config(tmp_path, nli_model):
    """The same weights with the head rows permuted and id2label permuted give the same scores."""
    from transformers import AutoModelForSequenceClassification
    other = tiny_nli(tmp_path / "perm", {0: "ENTAILMENT", 1: "NEUTRAL", 2: "CONTRADICTION"})
    m = AutoModelForSequenceClassification.from_pretrained(other)
    src = AutoModelForSequenceClassification.from_pretrained(nli_model)
    m.load_state_dict(src.state_dict())
    perm = [1, 2, 0]  # new row i = old row perm[i]: entail, neutral, contradiction
    with torch.no_grad():
        m.classifier.weight.copy_(src.classifier.weight[perm])
        m.classifier.bias.copy_(src.classifier.bias[perm])
    m.save_pretrained(other)
    preds, refs = ["The shape is blue.", "It is red. It is a circle."], ["The shape is red.", "The shape is blue."]
    a, b = NLIScorer(str(nli_model))(preds, refs), NLIScorer(str(other))(preds, refs)
    assert NLIScorer(str(other)).entail == 0 and NLIScorer(str(other)).contra == 2
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-5)


def test_nli_both_directions_and_empty_prediction_scores_worst(nli_model):
    scorer = NLIScorer(str(nli_model))
    out = scorer(["The shape is blue.", "", "   "], ["The shape is blue. It is a circle.", "The shape is red.", "x"])
    assert out["nli_bidir"][0] == pytest.approx(min(out["nli_entail"][0], out["nli_entail_rev"][0]))
    assert 0 < out["nli_entail"][0] < 1 and out["nli_entail"][0] != out["nli_entail_rev"][0]
    for k in ("nli_entail", "nli_entail_rev", "nli_bidir"):
        assert out[k][1] == 0.0 and out[k][2] == 0.0
    assert out["nli_contra"][1:] == [1.0, 1.0] and out["nli_empty"] == [0.0, 1.0, 1.0]


def test_label_without_entailment_is_an_error(tmp_path):
    bad = tiny_nli(tmp_path / "bad", {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"})
    with pytest.raises(ValueError, match="entail"):
        NLIScorer(str(bad))


def test_score_rows_means_per_type(nli_model):
    fns = build_metrics(["exact", "token_f1", "nli"], str(nli_model))
    means, rows = score_rows(fns, ["Yes.", "The shape is red."], ["Yes.", "The shape is blue."], ["yesno", "color"])
    assert means["exact"] == 0.5 and means["exact_yesno"] == 1.0 and means["exact_color"] == 0.0
    assert set(rows[0]) == {"exact", "token_f1", "nli_entail", "nli_entail_rev", "nli_bidir", "nli_contra",
                            "nli_empty"}
    with pytest.raises(ValueError):
        build_metrics(["bleu"])

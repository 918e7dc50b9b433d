"""answer_acc: the answer word taken from generated text, scored the same way for sentences, one-word
answers and the blind prior; its aggregate carries n and a 95% Wilson interval."""

import json

import pytest

from bundles.metrics import answer_acc, answer_accuracy, answer_word, build_metrics, score_rows, wilson
from bundles.prepare import answer_sentence, question_prior


@pytest.mark.parametrize("text, word", [
    ("The shape is blue.", "blue"), ("The shape is a circle.", "circle"),
    ("Yes, there is no red shape.", "yes"), ("No, there is a red shape.", "no"),
    ("  BLUE ", "blue"), ("rectangle", "rectangle"), ("a glack shape", "a glack shape"), ("", "")])
def test_answer_word(text, word):
    assert answer_word(text) == word


def test_sentence_and_word_answers_score_alike():
    refs = ["The shape is blue.", "Yes, there is no red shape.", "The shape is a circle.", "blue", "no"]
    preds = ["blue", "yes", "The shape is a triangle.", "The shape is blue.", ""]
    assert answer_acc(preds, refs)["answer_acc"] == [1.0, 1.0, 0.0, 1.0, 0.0]


def test_every_reference_sentence_keeps_its_answer_word():
    from bundles.prepare import COLORS, SHAPES
    questions = [f"is there a {c} shape?" for c in COLORS] + [f"does the image not contain a {s}?" for s in SHAPES]
    for q in questions:
        for a in ("yes", "no"):
            assert answer_word(answer_sentence(q, a)) == a
    for a in COLORS + SHAPES:
        assert answer_word(answer_sentence("what is it?", a)) == a


def test_aggregate_counts_and_wilson_interval():
    preds = ["yes"] * 3 + ["no"] + ["red"] * 2
    refs = ["yes", "yes", "no", "no", "red", "blue"]
    agg = answer_accuracy(preds, refs, ["yesno"] * 4 + ["color"] * 2)
    assert (agg["all"]["k"], agg["all"]["n"]) == (4, 6)
    assert (agg["yesno"]["k"], agg["yesno"]["n"], agg["color"]["k"], agg["color"]["n"]) == (3, 4, 1, 2)
    # Wilson 95% for 4/6 (textbook value 0.300-0.903)
    assert agg["all"]["ci_low"] == pytest.approx(0.3000, abs=1e-3)
    assert agg["all"]["ci_high"] == pytest.approx(0.9032, abs=1e-3)
    lo, hi = wilson(100, 200)
    assert hi - lo == pytest.approx(2 * 0.0686, abs=2e-3)   # ~±0.07 at p = 0.5, n = 200


def test_score_rows_names_per_type_means():
    fns = build_metrics(["exact", "answer_acc"])
    means, rows = score_rows(fns, ["blue", "The shape is red.", "yes"], ["The shape is blue.", "red", "no"],
                             ["color", "color", "yesno"])
    assert means["answer_acc_color"] == 1.0 and means["answer_acc_yesno"] == 0.0
    assert means["exact_color"] == 0.0 and rows[0]["answer_acc"] == 1.0


def test_blind_prior_is_scored_on_the_split_like_a_model():
    train = ([{"question": "what color is the shape?", "answer": "red"}] * 3
             + [{"question": "is there a red shape?", "answer": "no"}] * 2
             + [{"question": "is there a red shape?", "answer": "yes"}])
    split = [{"id": "a", "question": "what color is the shape?", "reference": "The shape is red.", "qtype": "color"},
             {"id": "b", "question": "what color is the shape?", "reference": "The shape is blue.", "qtype": "color"},
             {"id": "c", "question": "is there a red shape?", "reference": "No, there is no red shape.", "qtype": "yesno"},
             {"id": "d", "question": "unseen question?", "reference": "red", "qtype": "color"}]
    result, per_example = question_prior(train, {"dev": split[:1], "test": split})
    prior = result["test"]
    assert [r["answer_acc"] for r in per_example["test"]] == [1.0, 0.0, 1.0, 1.0]
    assert prior["n"] == 4 and prior["n_color"] == 3 and prior["n_yesno"] == 1
    # color: red right, blue wrong, the unseen question falls back to the overall majority (red): 2/3
    assert prior["answer_acc_color"] == pytest.approx(2 / 3) and prior["answer_acc_yesno"] == 1.0
    assert prior["answer_acc"] == pytest.approx(3 / 4)
    assert prior["answer_acc_color_ci_low"] < 2 / 3 < prior["answer_acc_color_ci_high"]
    assert prior["chance_color"] == 1 / 8 and prior["ci_method"] == "wilson95"
    json.dumps(prior)  # baseline.json must serialize

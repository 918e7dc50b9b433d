"""`% display examples`: test questions with their image, the reference and each score bundle's
answer, filtered by question type and verdict; built from real bundles (data -> infer -> score)."""

from picture_helpers import scored_study

from codalite.worksheets import interpret, parse, render
from codalite.worksheets.examples import ExamplesBlock, block


def test_examples_join_questions_images_references_and_answers(store, tmp_path):
    st = scored_study(store, tmp_path)
    good, bad = st["score"]["good"], st["score"]["bad"]
    b = block(store, [good, bad])
    assert [m.label for m in b.models] == ["score-good", "score-bad"] and b.metric == "answer_acc"
    assert b.count == b.total == 5 and b.qtypes == ["color", "shape", "yesno"]
    first = b.examples[0]
    assert (first.id, first.qtype, first.question, first.reference) == ("test-0", "color", "What color is the shape?", "red")
    assert first.image == (st["data"].uuid, "images/test-0.png")
    assert first.answers == [("red", True), ("black", False)]
    # filters: type, verdict over every model, verdict of one model, disagreement
    assert [e.id for e in block(store, [good, bad], qtype="shape").examples] == ["test-2", "test-3"]
    assert [e.id for e in block(store, [good, bad], verdict="wrong").examples] == ["test-0", "test-1", "test-2", "test-3"]
    assert [e.id for e in block(store, [good, bad], verdict="wrong", model=0).examples] == ["test-3"]
    assert [e.id for e in block(store, [good, bad], verdict="right").examples] == ["test-4"]
    assert [e.id for e in block(store, [good, bad], verdict="disagree", qtype="color").examples] == ["test-0", "test-1"]
    page = block(store, [good, bad], offset=2, limit=2)
    assert [e.id for e in page.examples] == ["test-2", "test-3"] and page.total == 5


def test_worksheet_display_examples_in_text_and_static_html(store, tmp_path):
    scored_study(store, tmp_path)
    ws = "% display examples qtype=color verdict=wrong\n% search name=score-% .limit=10\n"
    result = interpret(store, parse(ws))
    (b,) = [x for x in result.blocks if isinstance(x, ExamplesBlock)]
    assert {m.label for m in b.models} == {"score-good", "score-bad"} and len(b.examples) == 2
    text = render.to_text(result)
    assert "[examples: 2 of 2 shown (5 in all); right = answer_acc is 1]" in text
    assert "black ✗" in text and "red ✓" in text
    page = render.to_html(store, result, "t")
    assert page.count("<img src='data:image/png;base64,") == 2  # a static page embeds the images
    assert "What is the color of the circle?" in page and "td class='answer wrong'" in page


def test_bad_examples_properties_are_inline_errors(store, tmp_path):
    st = scored_study(store, tmp_path)
    for props, message in (("verdict=maybe", "verdict must be one of"), ("model=7", "model must be a number"),
                           ("limit=x", "invalid literal")):
        result = interpret(store, parse(f"% display examples {props}\n{{{st['score']['good'].uuid}}}\n"))
        assert result.blocks[0].error and message in result.blocks[0].text, result.blocks[0].text


def test_a_bundle_without_predictions_is_named_not_silently_empty(store, tmp_path):
    st = scored_study(store, tmp_path)
    b = block(store, [st["score"]["good"], st["data"]])
    assert b.models[1].problem == "no per_example.jsonl"
    assert b.examples[0].answers[1] == (None, None)
    assert "data: no per_example.jsonl" in render.to_text(interpret(store, parse(f"% display examples\n{{{st['data'].uuid}}}\n")))


def test_more_models_than_a_page_can_compare_are_refused(store, tmp_path):
    """`/examples?b=...` and `% display examples` read every bundle named (three JSON-lines files of up to
    256 MiB each): a URL with a thousand `b=` made `serve` read them all. 20 models is the cap; past it,
    one line in the block (and a 404 from serve)."""
    import pytest

    from codalite.worksheets.examples import MAX_MODELS

    st = scored_study(store, tmp_path)
    good = st["score"]["good"]
    assert len(block(store, [good] * MAX_MODELS).models) == MAX_MODELS
    with pytest.raises(ValueError, match=f"at most {MAX_MODELS} score bundles, not {MAX_MODELS + 1}"):
        block(store, [good] * (MAX_MODELS + 1))
    result = interpret(store, parse("% display examples\n" + f"{{{good.uuid}}}\n" * (MAX_MODELS + 1)))
    assert result.blocks[0].error and f"at most {MAX_MODELS} score bundles" in result.blocks[0].text

"""`prepare jsonl` with a researcher's own annotations: images with the same file name, and every kind of bad
input (not UTF-8, not JSON, broken pictures, duplicate ids, empty files...) as a one-line error."""
import json

import pytest

from PIL import Image

from bundles import prepare


def test_same_file_name_in_different_folders_stays_two_images(tmp_path):
    ann = tmp_path / "ann"
    for folder, color in (("day", "red"), ("night", "blue")):
        (ann / folder).mkdir(parents=True)
        Image.new("RGB", (8, 8), color).save(ann / folder / "cat.png")
    rows = [{"id": "d", "image": "day/cat.png", "question": "Color?", "reference": "It is red."},
            {"id": "n", "image": "night/cat.png", "question": "Color?", "reference": "It is blue."},
            {"id": "d2", "image": "day/cat.png", "question": "Shape?", "reference": "A square."}]
    (ann / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "data"
    prepare.main(["jsonl", "--train", str(ann / "train.jsonl"), "--image-root", str(ann), "--out", str(out)])
    recs = {r["id"]: r for r in map(json.loads, (out / "train.jsonl").read_text().splitlines())}
    for rid, folder in (("d", "day"), ("n", "night"), ("d2", "day")):
        assert (out / recs[rid]["image"]).read_bytes() == (ann / folder / "cat.png").read_bytes()
    assert recs["d"]["image"] != recs["n"]["image"] and recs["d"]["image"] == recs["d2"]["image"]
    assert len(list((out / "images").iterdir())) == 2


def _rows(*rows):
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


GOOD = {"id": "a", "image": "ok.png", "question": "Color?", "reference": "It is red."}


@pytest.mark.parametrize("content, message", [
    (b"", "no records (the file is empty)"),
    (b"\n  \n", "no records (the file is empty)"),
    ('{"question": "Qu\'est-ce?", "reference": "Caf\xe9"}\n'.encode("latin-1"), ":1: not UTF-8 (byte 0xe9"),
    (_rows(GOOD, '{"question": "q",').encode(), ":2: not a JSON object"),
    (_rows([GOOD]).encode(), ":1: expected a JSON object, got list"),
    (_rows(GOOD, {**GOOD, "reference": "other"}).encode(), ":2: duplicate id 'a' (also on line 1)"),
    (_rows({**GOOD, "id": 1}, {**GOOD, "id": "1"}).encode(), ":2: duplicate id '1'"),
    (_rows({**GOOD, "image": "broken.png"}).encode(), ":1: not a readable image"),
    (_rows({**GOOD, "image": "truncated.png"}).encode(), ":1: not a readable image"),
    (_rows({**GOOD, "image": "folder"}).encode(), ":1: image not found"),
    (_rows({**GOOD, "reference": 2}).encode(), ":1: 'reference' must be a string, got 2"),
    (_rows({**GOOD, "reference": "  "}).encode(), ":1: needs a non-empty 'reference' or 'answer'"),
    (_rows({**GOOD, "question": None, "prompt": None}).encode(), ":1: needs 'messages', 'question' or 'prompt'"),
    (_rows({**GOOD, "id": None}).encode(), ":1: 'id' must be a non-empty string or an integer"),
    (_rows({"id": "m", "image": "ok.png", "reference": "r",
            "messages": [{"role": "user", "content": "no image part"}]}).encode(), "no message has an"),
    (_rows({"id": "m", "reference": "r", "messages": [{"role": "user", "content": [{"type": "image"}]}]}).encode(),
     "a message has an image part but there is no 'image'"),
    (_rows({"id": "m", "reference": "r", "messages": [{"role": "user", "content": "q"},
                                                     {"role": "assistant", "content": "a"}]}).encode(),
     "ends with an assistant turn"),
    (_rows({"id": "m", "reference": "r", "messages": "q"}).encode(), "'messages' must be a non-empty list"),
    (_rows(GOOD, {"id": "b", "question": "Hi?", "reference": "Hi."}).encode(), "1 of 2 records have an image"),
])
def test_bad_annotations_are_one_line_errors_and_nothing_is_written(tmp_path, capsys, content, message):
    """Each of these passed silently (copied a broken picture, kept two rows with one id, wrote an empty
    split...) and failed only mid-training, or crashed with a traceback."""
    ann = tmp_path / "ann"
    (ann / "folder").mkdir(parents=True)
    Image.new("RGB", (8, 8), "red").save(ann / "ok.png")
    (ann / "broken.png").write_bytes(b"not a picture")
    (ann / "truncated.png").write_bytes((ann / "ok.png").read_bytes()[:40])
    (ann / "train.jsonl").write_text(_rows(GOOD))
    (ann / "test.jsonl").write_bytes(content)
    out = tmp_path / "data"
    with pytest.raises(SystemExit) as e:
        prepare.main(["jsonl", "--train", str(ann / "train.jsonl"), "--test", str(ann / "test.jsonl"),
                      "--out", str(out)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and err.startswith("bundles.prepare: error: ")
    assert message in err, err
    # the good train file was not written either: a failed prepare leaves no half-prepared folder
    assert not out.exists() or not any(out.iterdir())


def test_non_ascii_annotations_and_integer_ids_survive(tmp_path):
    ann = tmp_path / "ann"
    ann.mkdir()
    rows = [{"id": 7, "question": "¿Qué color?", "reference": "Rojo, como un 苹果."},
            {"question": "Wie heißt das?", "answer": "Ein Würfel."}]
    (ann / "dev.jsonl").write_text("\ufeff" + _rows(*rows), encoding="utf-8")  # with a BOM, as Windows tools save
    out = tmp_path / "data"
    prepare.main(["jsonl", "--dev", str(ann / "dev.jsonl"), "--out", str(out)])
    recs = [json.loads(x) for x in (out / "dev.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in recs] == ["7", "dev-1"]
    assert recs[0]["reference"] == rows[0]["reference"] and recs[1]["reference"] == "Ein Würfel."
    assert (out / "args.json").exists()

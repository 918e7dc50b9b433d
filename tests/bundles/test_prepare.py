import json
import subprocess
import sys

import pytest

from bundles.common import read_jsonl
from bundles.prepare import answer_sentence


@pytest.mark.parametrize("question,answer,sentence", [
    ("what color is the shape?", "blue", "The shape is blue."),
    ("what shape is in the image?", "circle", "The shape is a circle."),
    ("is there a red shape?", "yes", "Yes, there is a red shape."),
    ("is there not a red shape?", "yes", "Yes, there is no red shape."),
    ("is there not a red shape?", "no", "No, there is a red shape."),
    ("does the image contain a triangle?", "no", "No, there is no triangle."),
    ("is no circle present?", "no", "No, there is a circle."),
])
def test_answers_become_sentences_that_state_the_fact(question, answer, sentence):
    assert answer_sentence(question, answer) == sentence


def test_easy_vqa_splits_are_balanced_and_images_exist(data_dir):
    for split, n in [("train", 96), ("dev", 24), ("test", 24)]:
        rows = read_jsonl(data_dir / f"{split}.jsonl")
        assert len(rows) == n
        assert {r["qtype"]: 0 for r in rows}.keys() == {"yesno", "shape", "color"}
        assert sum(r["qtype"] == "color" for r in rows) == n // 3
        for r in rows:
            assert (data_dir / r["image"]).exists()
            assert r["messages"][0]["content"][0] == {"type": "image"}
            assert r["reference"].endswith(".")
    train_images = {r["image"] for r in read_jsonl(data_dir / "train.jsonl")}
    assert not train_images & {r["image"] for r in read_jsonl(data_dir / "dev.jsonl")}


def test_blind_question_prior_is_reported_per_type(data_dir):
    base = json.loads((data_dir / "baseline.json").read_text())
    assert set(base) == {"dev", "test"}
    t = base["test"]
    assert {"answer_acc", "answer_acc_yesno", "answer_acc_shape", "answer_acc_color", "n_shape"} <= set(t)
    assert t["n"] == 24 and t["n_shape"] == 8
    assert all(0 <= t[k] <= 1 for k in t if k.startswith(("answer_acc", "exact", "chance")))
    assert t["answer_acc_shape_ci_low"] <= t["answer_acc_shape"] <= t["answer_acc_shape_ci_high"]
    blind = read_jsonl(data_dir / "blind_test.jsonl")
    assert len(blind) == 24 and sum(r["answer_acc"] for r in blind) / 24 == pytest.approx(t["answer_acc"])


def test_jsonl_source_copies_images_and_fills_defaults(tmp_path, data_dir):
    src = tmp_path / "src"
    (src / "pics").mkdir(parents=True)
    img = next((data_dir / "images").iterdir())
    (src / "pics" / "a.png").write_bytes(img.read_bytes())
    (src / "train.jsonl").write_text(json.dumps({"image": "pics/a.png", "question": "What is it?",
                                                 "answer": "A shape."}) + "\n")
    (src / "dev.jsonl").write_text(json.dumps({"prompt": "Say hi.", "reference": "Hi."}) + "\n")
    from bundles import prepare
    out = tmp_path / "out"
    prepare.main(["jsonl", "--train", str(src / "train.jsonl"), "--dev", str(src / "dev.jsonl"), "--out", str(out)])
    rows = read_jsonl(out / "train.jsonl") + read_jsonl(out / "dev.jsonl")
    assert rows[0]["image"].startswith("images/") and rows[0]["image"].endswith("-a.png")  # content hash + name
    assert (out / rows[0]["image"]).read_bytes() == img.read_bytes()
    assert rows[0]["reference"] == "A shape." and rows[0]["qtype"] == "all"
    assert rows[1]["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Say hi."}]}]
    assert "image" not in rows[1]


def test_jsonl_source_missing_image_is_a_one_line_error(tmp_path):
    (tmp_path / "train.jsonl").write_text(json.dumps({"image": "nope.png", "question": "q", "answer": "a"}) + "\n")
    r = subprocess.run([sys.executable, "-m", "bundles.prepare", "jsonl", "--train", str(tmp_path / "train.jsonl"),
                        "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "image not found" in r.stderr

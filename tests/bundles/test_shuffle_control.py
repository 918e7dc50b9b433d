"""infer --shuffle-images SEED, the image-shuffle control: the same model answers the same questions,
each shown another question's image. The images are permuted (none kept where possible, the same
permutation for the same seed), and the model really sees the image it was given."""
import collections
import json

from bundles import infer
from bundles.common import read_jsonl
from bundles.infer import shuffle_images


def test_shuffle_is_a_seeded_derangement_of_the_images():
    recs = [{"id": str(i), "image": f"images/{i % 7}.png", "question": "q"} for i in range(40)]
    a, b, c = shuffle_images(recs, 0), shuffle_images(recs, 0), shuffle_images(recs, 1)
    assert a == b and a != c
    assert collections.Counter(r["image"] for r in a) == collections.Counter(r["image"] for r in recs)
    assert all(r["image"] != r["own_image"] for r in a)
    assert [r["id"] for r in a] == [r["id"] for r in recs]          # questions stay in place
    assert [r["own_image"] for r in a] == [r["image"] for r in recs]
    same = [{"id": "x", "image": "images/1.png"}, {"id": "y", "image": "images/1.png"}]
    assert [r["image"] for r in shuffle_images(same, 0)] == ["images/1.png"] * 2   # nothing to permute


def test_infer_feeds_each_question_the_shuffled_image(tiny_vlm, data_dir, tmp_path, monkeypatch):
    from bundles.batching import Batcher
    seen = []
    real = Batcher.image

    def image(self, rec):  # the pictures that really reach the processor, per question
        seen.append((rec["id"], rec["image"]))
        return real(self, rec)

    monkeypatch.setattr(Batcher, "image", image)
    out = tmp_path / "shuffled"
    infer.main(["--model", str(tiny_vlm), "--data", str(data_dir), "--split", "test", "--max-new-tokens", "2",
                "--batch-size", "8", "--shuffle-images", "3", "--out", str(out)])
    own = {r["id"]: r["image"] for r in read_jsonl(data_dir / "test.jsonl")}
    rows = read_jsonl(out / "shuffled_images.jsonl")
    assert len(rows) == len(own) == len(seen) == len(read_jsonl(out / "predictions.jsonl"))
    assert dict(seen) == {r["id"]: r["image"] for r in rows}        # generated from the image it reports
    assert all(r["own_image"] == own[r["id"]] != r["image"] for r in rows)
    assert collections.Counter(dict(seen).values()) == collections.Counter(own.values())
    assert json.loads((out / "metrics.json").read_text())["shuffle_images"] == 3
    seen.clear()
    infer.main(["--model", str(tiny_vlm), "--data", str(data_dir), "--split", "test", "--max-new-tokens", "2",
                "--batch-size", "8", "--out", str(tmp_path / "plain")])
    assert dict(seen) == own                                         # without the flag: its own image
    assert not (tmp_path / "plain" / "shuffled_images.jsonl").exists()

"""`prepare jsonl` with a researcher's own images: same file name in different folders."""
import json

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

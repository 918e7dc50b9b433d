"""The tiny VLM's vision pretraining (bundles.models --pretrain-vision-steps) and finetune --freeze-vision:
the demo's tower learns shape on an image-only task from the training split, then stays fixed while
the LM learns to answer (trained through the LM from random weights it never learned shape)."""
import json
import subprocess
import sys

import pytest
import torch

from bundles import finetune, models
from bundles.common import read_jsonl
from model_helpers import build


def tower_state(folder):
    from transformers import AutoModelForImageTextToText
    model = AutoModelForImageTextToText.from_pretrained(folder)
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_image_labels_come_from_the_training_split_only(data_dir):
    pairs = models.image_labels(data_dir)
    train_images = {r["image"] for r in read_jsonl(data_dir / "train.jsonl")}
    held_out = {r["image"] for s in ("dev", "test") for r in read_jsonl(data_dir / f"{s}.jsonl")}
    assert pairs and {img for img, _, _ in pairs} <= train_images
    assert not {img for img, _, _ in pairs} & held_out
    assert {q for _, q, _ in pairs} == {"shape", "color"}  # yes/no answers name no property alone


def test_pretraining_teaches_the_tower_the_training_images_shape_and_color(tmp_path, data_dir):
    out = build("tiny-vlm", tmp_path / "pre", data_dir, "--pretrain-vision-steps", "150",
                "--pretrain-vision-batch", "16", "--seed", "3")
    plain = build("tiny-vlm", tmp_path / "plain", data_dir, "--seed", "3")
    info = json.loads((out / "args.json").read_text())["vision_pretrain"]
    # well above chance (1/8 color, 1/3 shape) on these few training images (seeded: deterministic)
    assert info["train_acc_last_100_steps"]["color"] > 0.4 and info["train_acc_last_100_steps"]["shape"] > 0.55, info
    pre, rand = tower_state(out), tower_state(plain)
    changed = {n for n in pre if not torch.equal(pre[n], rand[n])}
    assert changed and all("vision_tower" in n for n in changed)  # the LM and projector stay as built


def test_freeze_vision_keeps_the_tower_and_trains_the_rest(tiny_vlm, data_dir, tmp_path):
    finetune.main(["--model", str(tiny_vlm), "--data", str(data_dir), "--out", str(tmp_path), "--full",
                   "--freeze-vision", "--steps", "3", "--batch-size", "8", "--eval-steps", "0", "--lr", "1e-2",
                   "--metrics", "exact"])
    before, after = tower_state(tiny_vlm), tower_state(tmp_path / "model")
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed and not any("vision_tower" in n for n in changed)
    assert any("language_model" in n for n in changed) and any("multi_modal_projector" in n for n in changed)


@pytest.mark.parametrize("args", [
    ["bundles.models", "tiny-vlm", "--pretrain-vision-steps", "5"],                   # nothing to learn from
    ["bundles.models", "tiny-lm", "--data", ".", "--pretrain-vision-steps", "5"],     # no vision tower
    ["bundles.finetune", "--model", ".", "--data", ".", "--metrics", "exact", "--eval-steps", "0",
     "--freeze-vision", "--train-vision"],
])
def test_contradictory_flags_are_one_line_exit_2(args, tmp_path):
    (tmp_path / "train.jsonl").write_text("")
    r = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and ": error:" in r.stderr, r.stderr

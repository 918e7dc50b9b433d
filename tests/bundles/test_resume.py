"""A fine-tune killed mid-training (a real process, SIGKILL) continues as a new run from its last complete
checkpoint, and ends as the uninterrupted run does: same evaluations, same best checkpoint."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from bundles import finetune

REPO = Path(__file__).resolve().parents[2]


def args(tiny_vlm, data_dir):
    # --best-metric exact stays 0 on a random model, so the first checkpoint (step 2, written by the run
    # that gets killed) stays the best: ties never replace it. That is what must survive the resume.
    return ["--model", str(tiny_vlm), "--data", str(data_dir), "--lora-r", "4", "--train-projector", "--steps", "6",
            "--batch-size", "4", "--lr", "1e-3", "--eval-steps", "2", "--eval-size", "4", "--max-new-tokens", "4",
            "--metrics", "exact,token_f1", "--best-metric", "exact", "--save-total-limit", "2"]


def evals(out):
    return [(h["step"], h["eval_exact"], round(h["eval_token_f1"], 6), round(h["eval_loss"], 4))
            for h in json.loads((out / "log_history.json").read_text()) if "eval_loss" in h]


def test_killed_finetune_resumes_from_its_last_complete_checkpoint(tiny_vlm, data_dir, tmp_path):
    # 1. a run in its own directory, as codalite starts it (--out .), killed after its first checkpoint
    first = tmp_path / "run1"
    first.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    with open(tmp_path / "run1.log", "w") as logf:
        proc = subprocess.Popen([sys.executable, "-m", "bundles.finetune", *args(tiny_vlm, data_dir), "--out", "."],
                                cwd=first, env=env, stdout=logf, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while not (first / "checkpoints" / "checkpoint-2" / "trainer_state.json").exists():
            assert proc.poll() is None, (tmp_path / "run1.log").read_text()[-2000:]
            assert time.time() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (first / "metrics.json").exists()  # it did not finish
    # a checkpoint the kill interrupted: weights written, trainer_state.json (written last) not yet
    ckpts = first / "checkpoints"
    last = max(ckpts.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    partial = ckpts / "checkpoint-5"
    shutil.copytree(last, partial)
    (partial / "trainer_state.json").unlink()
    # codalite publishes the failed run's directory elsewhere; the new run sees it as a dependency prev/
    published = tmp_path / "store" / "failed-run"
    published.parent.mkdir()
    shutil.move(str(first), published)
    second = tmp_path / "run2"
    second.mkdir()
    (second / "prev").symlink_to(published)

    # 2. the resumed run (in this process, in its own directory)
    cwd = os.getcwd()
    os.chdir(second)
    try:
        finetune.main([*args(tiny_vlm, data_dir), "--out", ".", "--resume-from", "prev/checkpoints"])
    finally:
        os.chdir(cwd)
    resumed = json.loads((second / "metrics.json").read_text())
    assert resumed["resumed_from"] == f"prev/checkpoints/{last.name}"  # not the partial checkpoint-5
    assert json.loads((second / "args.json").read_text())["resumed_from"] == resumed["resumed_from"]
    assert resumed["resumed_from_step"] == int(last.name.split("-")[1]) and resumed["steps"] == 6

    # 3. the same run, never interrupted
    ref = tmp_path / "ref"
    finetune.main([*args(tiny_vlm, data_dir), "--out", str(ref)])
    reference = json.loads((ref / "metrics.json").read_text())
    assert evals(second) == evals(ref)
    assert reference["best_step"] == resumed["best_step"] == 2 and resumed["eval_exact"] == reference["eval_exact"]
    # the best checkpoint came from the killed run, was carried into this run, and is the saved adapter
    best = load_file(str(second / "checkpoints" / "checkpoint-2" / "adapter_model.safetensors"))
    final = load_file(str(second / "adapter" / "adapter_model.safetensors"))
    assert best.keys() == final.keys() and all((best[k] == final[k]).all() for k in best)
    last_state = load_file(str(second / "checkpoints" / "checkpoint-6" / "adapter_model.safetensors"))
    assert any((best[k] != last_state[k]).any() for k in best)  # training moved on; the best was restored


def test_latest_checkpoint_needs_a_complete_one(tmp_path):
    (tmp_path / "checkpoint-3").mkdir()
    (tmp_path / "checkpoint-3" / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(SystemExit, match="no complete checkpoint"):
        finetune.latest_checkpoint(tmp_path)

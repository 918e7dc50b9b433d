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


def test_a_checkpoint_with_a_truncated_file_is_not_resumed_from(tmp_path):
    """trainer_state.json is there, but the weights (or the optimizer state) were cut short: resuming from
    it crashed with a traceback (or loaded garbage). The last intact checkpoint is taken instead."""
    import torch
    from safetensors.torch import save_file
    for step in (2, 4, 6):
        ck = tmp_path / f"checkpoint-{step}"
        ck.mkdir()
        save_file({"w": torch.ones(64, 64)}, str(ck / "adapter_model.safetensors"))
        torch.save({"state": torch.ones(64, 64)}, ck / "optimizer.pt")
        (ck / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    for step, name in ((6, "adapter_model.safetensors"), (4, "optimizer.pt")):
        f = tmp_path / f"checkpoint-{step}" / name
        f.write_bytes(f.read_bytes()[:-100])
    assert finetune.latest_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    assert finetune.complete(tmp_path / "checkpoint-2") and not finetune.complete(tmp_path / "checkpoint-6")


@pytest.fixture(scope="module")
def short_run(tiny_lm, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("short_run")
    finetune.main(short_args(tiny_lm, data_dir) + ["--out", str(out)])
    return out


def short_args(model, data_dir):
    return ["--model", str(model), "--data", str(data_dir), "--lora-r", "4", "--steps", "2", "--batch-size", "2",
            "--eval-steps", "2", "--eval-size", "3", "--max-new-tokens", "2", "--metrics", "exact",
            "--best-metric", "exact", "--no-eval-on-start"]


@pytest.mark.parametrize("change, message", [
    ("other_model", "that run used a different base model"),
    (["--lora-alpha", "16"], "that run used --lora-alpha 8.0, not 16.0"),
    (["--lora-r", "8"], "that run used --lora-r 4, not 8"),
    (["--seed", "3"], "a different dev subset"),
    (["--best-metric", "token_f1", "--metrics", "exact,token_f1"], "that run used --best-metric 'exact'"),
])
def test_resume_under_other_settings_is_refused(short_run, tiny_lm, data_dir, tmp_path, capsys, change, message):
    """Continuing a run from another base model of the same shape, or with another LoRA scale, trained on
    silently; another dev subset or best metric compared checkpoints' metrics over different things."""
    if change == "other_model":
        from model_helpers import build
        model, extra = build("tiny-lm", tmp_path / "other", data_dir, "--seed", "1"), []
    else:
        model, extra = tiny_lm, change
    with pytest.raises(SystemExit) as e:
        finetune.main(short_args(model, data_dir) + extra + ["--steps", "4", "--resume", str(short_run / "checkpoints"),
                                                             "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "o" / "args.json").exists()


def test_resume_with_the_same_settings_spelled_differently_continues(short_run, tiny_lm, data_dir, tmp_path):
    out = tmp_path / "o"
    finetune.main(short_args(tiny_lm, data_dir) + ["--lora-alpha", "8", "--steps", "4", "--resume",
                                                   str(short_run / "checkpoints"), "--out", str(out)])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == 2 and metrics["steps"] == 4


def test_infer_refuses_an_adapter_trained_on_another_base_model(short_run, tiny_lm, data_dir, tmp_path, capsys):
    """An adapter loads onto any base of the same shapes without a word: test answers would come from a
    model that was never trained. The fine-tune's args.json names its base (model_fingerprint)."""
    from bundles import infer
    from model_helpers import build
    other = build("tiny-lm", tmp_path / "other", data_dir, "--seed", "1")
    for adapter in (short_run, short_run / "adapter", short_run / "checkpoints" / "checkpoint-2"):
        with pytest.raises(SystemExit) as e:
            infer.main(["--model", str(other), "--adapter", str(adapter), "--data", str(data_dir), "--limit", "2",
                        "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count("\n") == 1 and "trained on another base model" in err, err
    assert not (tmp_path / "o").exists()
    infer.main(["--model", str(tiny_lm), "--adapter", str(short_run / "checkpoints" / "checkpoint-2"), "--data",
                str(data_dir), "--limit", "2", "--max-new-tokens", "2", "--out", str(tmp_path / "ok")])
    assert (tmp_path / "ok" / "predictions.jsonl").exists()

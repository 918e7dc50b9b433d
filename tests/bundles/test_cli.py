"""Every step: --help documents every flag; bad flags and missing inputs are one-line errors (exit 2)."""
import re
import subprocess
import sys

import pytest

STEPS = ["prepare", "models", "nli_train", "finetune", "infer", "score"]


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("step", STEPS)
def test_help_documents_every_flag(step):
    import importlib
    r = run(f"bundles.{step}", "--help")
    assert r.returncode == 0, r.stderr
    source = importlib.util.find_spec(f"bundles.{step}").origin
    flags = set(re.findall(r"add_argument\(\s*\"(--[a-z0-9-]+)\"", open(source).read()))
    assert flags, step
    for flag in flags:
        assert flag in r.stdout, f"{step} --help lacks {flag}"


@pytest.mark.parametrize("step", STEPS)
def test_unknown_flag_is_one_line_exit_2(step):
    r = run(f"bundles.{step}", "--no-such-flag")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"bundles.{step}: error:"), r.stderr


@pytest.mark.parametrize("args", [
    ["bundles.finetune", "--model", "missing-model", "--data", "."],
    ["bundles.infer", "--model", "missing-model", "--data", "."],
    ["bundles.score", "--predictions", "missing.jsonl", "--metrics", "exact"],
    ["bundles.models", "tiny-vlm", "--data", "missing-dir"],
])
def test_missing_input_is_one_line_exit_2(args, tmp_path):
    r = run(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "no such file or directory" in r.stderr, r.stderr


def test_steps_do_not_import_codalite_or_torch_for_help():
    code = ("import sys, bundles.finetune, bundles.infer, bundles.score, bundles.prepare, bundles.models, "
            "bundles.nli_train; print(any(m.split('.')[0] in ('codalite', 'torch') for m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "False", r.stderr

"""The store knows its project's environment: the Python interpreter its local runs use is recorded
once in the store, so runs, plans and memo hits do not depend on the caller's PATH (real processes:
the `codalite` program, its worker, and interpreters on this machine)."""

import os
import shutil
import subprocess
import sys

import pytest

VENV_BIN = os.path.dirname(sys.executable)  # the suite runs with the project's venv (make test)
VENV_PATH = f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin"
OTHER_PATH = "/usr/local/bin:/usr/bin:/bin"  # a shell without the venv
BASE = os.path.realpath(sys.executable)  # the interpreter the venv was made from: other packages


def reported(python):
    """What an interpreter says sys.executable is (what the store records)."""
    return subprocess.check_output([python, "-c", "import sys; print(sys.executable)"], text=True).strip()


PYTHON = reported(sys.executable)
needs_venv = pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="the suite does not run in a venv")

RECIPE = """\
name: envtoy
uploads:
  code: code
  data: data
grid:
  seed: [1, 2]
steps:
  train:
    command: python code/train.py --data data --out . && echo {{ seed }}
    deps: {code: code, data: data}
"""

@needs_venv
def test_a_shell_without_the_venv_plans_and_hits_the_same(project, cl):
    (project / "envtoy.yaml").write_text(RECIPE)
    venv, other = {"PATH": VENV_PATH}, {"PATH": OTHER_PATH}
    r = cl("recipe", "run", "envtoy.yaml", env=venv)
    notes = [line for line in r.stderr.splitlines() if "from now on" in line]
    assert len(notes) == 1 and VENV_BIN in notes[0] and "codalite env set" in notes[0], r.stderr
    assert cl.out("env", env=other).splitlines()[0].startswith(f"python: {VENV_BIN}/python")

    plan = cl.out("recipe", "plan", "envtoy.yaml", env=venv)
    assert plan.splitlines()[-1] == "2 done"
    assert cl.out("recipe", "plan", "envtoy.yaml", env=other) == plan  # same keys, same bundles
    r = cl("recipe", "run", "envtoy.yaml", env=other)
    assert "2 cells: 2 memo hits, 0 to run" in r.stderr and "from now on" not in r.stderr

    cmd = "python code/train.py --data data --out ."
    first = cl.out("run", "code:code", "data:data", cmd, "-W", env=venv)
    r = cl("run", "code:code", "data:data", cmd, env=other)
    assert r.stdout.strip() == first and "memo hit" in r.stderr


@needs_venv
def test_runs_use_the_recorded_interpreter_whatever_the_callers_path(cl):
    cl("init")
    assert f"runs use {PYTHON} from now on" in cl.out("env", "set", sys.executable)
    # a shell without the venv, the venv's shell, and one whose first python is another interpreter
    for path in (OTHER_PATH, VENV_PATH, f"{os.path.dirname(BASE)}:{OTHER_PATH}"):
        uuid = cl.out("run", "--force", "-W", 'python -c "import sys; print(sys.executable)"; command -v python',
                      env={"PATH": path})
        assert cl.out("cat", f"{uuid}/stdout").splitlines() == [PYTHON, os.path.join(VENV_BIN, "python")], path


@needs_venv
def test_changing_the_interpreter_is_explicit_makes_runs_new_and_why_says_so(cl):
    cl("init")
    cl("env", "set", sys.executable)
    cmd = 'python -c "import sys; print(sys.version_info[0])"'
    first = cl.out("run", "-n", "ver", cmd, "-W")
    base = reported(BASE)
    assert cl.out("env", "set", BASE).endswith(f"; was {PYTHON}")
    assert cl.out("env").splitlines()[0] == f"python: {base}"
    second = cl.out("run", "-n", "ver", cmd, "-W")
    assert second != first
    why = cl.out("why", second)
    assert "environment changed: py:" in why
    version = why.split(f"({PYTHON}) -> ")[0].split("python: ")[-1].strip()
    assert f"python: {version} ({PYTHON}) -> " in why and f" ({base})" in why, why
    # back to the venv: the first run's environment again, so its memo hit
    cl("env", "set", sys.executable)
    r = cl("run", "-n", "ver", cmd)
    assert r.stdout.strip() == first and "memo hit" in r.stderr


def test_a_missing_interpreter_is_a_one_line_error(project, cl, tmp_path):
    (tmp_path / "envtoy.yaml").write_text(RECIPE)
    cl("init")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "gone")], check=True)
    cl("env", "set", tmp_path / "gone" / "bin" / "python")
    shutil.rmtree(tmp_path / "gone")  # the venv is deleted: never fall back to another python
    for args in (("run", "echo hi"), ("recipe", "plan", "envtoy.yaml"), ("env",)):
        r = cl(*args, ok=False)
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
        assert "gone" in r.stderr and "codalite env set" in r.stderr and "Traceback" not in r.stderr
    assert cl.out("ls", "-u") == ""  # nothing was submitted
    (tmp_path / "notpy").write_text("#!/bin/sh\necho hello\n")
    (tmp_path / "notpy").chmod(0o755)
    for bad in (tmp_path / "nope", tmp_path / "notpy", "no-such-python-here"):
        r = cl("env", "set", bad, ok=False)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_docker_run_keeps_its_image_as_its_environment(store):
    b, _ = store.run("echo hi", requests={"request_docker_image": "python:3.11-slim"}, start_worker=False)
    assert b.runspec["environment"].startswith("docker:") and "python" not in b.runspec
    assert store.recorded_interpreter() is None  # a docker run records no local interpreter
    b, _ = store.run("echo hi", path_env=OTHER_PATH, start_worker=False)
    assert b.runspec["python"] == store.recorded_interpreter()
    assert b.runspec["path"].split(":")[0] == os.path.dirname(b.runspec["python"])

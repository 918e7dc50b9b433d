"""`codalite recipe run` progress: piped (a log, not a terminal) it prints one line per cell as it
finishes, with its state; on a terminal it shows a live bar instead."""

import re

import pytest

RECIPE = """\
name: prog
uploads:
  code: code
grid:
  seed: [1, 2]
steps:
  make:
    command: python code/step.py {{ seed }} > out.txt
    deps: {code: code}
    request: {cpus: 1, memory: 200m}
  use:
    command: cat m/out.txt > used.txt
    deps: {m: make}
"""

STEP = "import sys, time\ntime.sleep(0.5)\nif sys.argv[1] == '2' and len(sys.argv) > 2: sys.exit('boom')\nprint(sys.argv[1])\n"


@pytest.fixture
def prog(tmp_path, cl):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "step.py").write_text(STEP)
    (tmp_path / "prog.yaml").write_text(RECIPE)
    cl("init")
    return tmp_path


def finished_lines(stderr):
    return [l for l in stderr.splitlines() if re.match(r"\[\d+/\d+\] ", l)]


def test_piped_run_prints_one_line_per_finished_cell(prog, cl):
    r = cl("recipe", "run", "prog.yaml", timeout=180)
    lines = finished_lines(r.stderr)
    assert len(lines) == 4, r.stderr                      # 2 seeds x (make, use), each once
    assert [l.split()[0] for l in lines] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    assert all(l.split()[1] == "ready" for l in lines), lines
    names = [l.split()[2] for l in lines]
    assert len(set(names)) == 4 and sum(n.startswith("make") for n in names) == 2, names
    # a cell's line comes after the lines of the cells it depends on
    for seed in ("1", "2"):
        mine = [i for i, n in enumerate(names) if seed in n]
        assert names[mine[0]].startswith("make") and names[mine[1]].startswith("use"), names
    assert "\x1b[" not in r.stderr                        # no terminal control codes in a log
    # nothing left to run: memo hits, no finished-cell lines
    again = cl("recipe", "run", "prog.yaml")
    assert finished_lines(again.stderr) == [], again.stderr


def test_piped_run_names_a_failed_cell(prog, cl):
    (prog / "prog.yaml").write_text(RECIPE.replace("{{ seed }} > out.txt", "{{ seed }} x > out.txt"))
    r = cl("recipe", "run", "prog.yaml", ok=False, timeout=180)
    assert r.returncode != 0
    lines = finished_lines(r.stderr)
    assert len(lines) == 4, r.stderr
    state = {l.split()[2]: l.split()[1] for l in lines}
    # seed 2's make fails, and so does the cell that needs it; seed 1 is unaffected
    assert state == {"make-seed1": "ready", "use-seed1": "ready", "make-seed2": "failed", "use-seed2": "failed"}, lines

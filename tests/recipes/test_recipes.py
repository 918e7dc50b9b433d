"""Recipes end to end: real store, real worker, the real `codalite recipe` program."""

import json
import re

import pytest

from codalite import Store, recipes

TOY = """\
name: toy
uploads:
  code: code
  data: data
grid:
  lr: [1, 2]
  seed: [1, 2]
exclude:
  - {lr: 2, seed: 2}
steps:
  prepare:
    command: cat data/x.txt > prepared.txt
    deps: {data: data}
  train:
    command: python code/train.py --lr {{ lr }} --seed {{ seed }}
    deps: {code: code, prep: prepare}
    request: {cpus: 1, memory: 500m}
  score:
    command: cat t/stats.json > score.json
    deps: {t: train}
"""

TRAIN = """\
import argparse, json, sys
p = argparse.ArgumentParser(); p.add_argument('--lr', type=float); p.add_argument('--seed', type=int)
a = p.parse_args()
if a.lr == 3 and a.seed == 2:
    sys.exit('diverged')
n = sum(map(int, open('prep/prepared.txt').read().split()))
json.dump({'acc': n * a.lr / 100, 'seed': a.seed}, open('stats.json', 'w'))
"""


@pytest.fixture
def toy(tmp_path, cl):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text(TRAIN)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.txt").write_text("1 2 3\n")
    (tmp_path / "toy.yaml").write_text(TOY)
    cl("init")
    return tmp_path


def statuses(cl):
    out = cl.out("recipe", "plan", "toy.yaml")
    return {tuple(line.split()[:3]) for line in out.splitlines()[1:-1]}, out.splitlines()[-1]


def test_grid_runs_only_what_is_missing(toy, cl):
    _, summary = statuses(cl)
    assert summary == "7 missing"  # 1 prepare + 3 train + 3 score
    r = cl("recipe", "run", "toy.yaml")
    assert "7 cells: 0 memo hits, 7 to run" in r.stderr
    rows, summary = statuses(cl)
    assert summary == "7 done" and ("train", "lr=2", "seed=1") in rows
    store = Store.find(toy)
    assert json.loads(open(store.path_in(store.resolve("score-lr2-seed1"), "score.json")).read())["acc"] == 0.12
    assert store.query("name = ?", ("train-lr2-seed2",)) == []  # excluded cell
    r = cl("recipe", "run", "toy.yaml")
    assert "7 cells: 7 memo hits, 0 to run (worksheet toy)" in r.stderr
    printed = cl.out("print", "toy")
    assert "score-lr2-seed1" in printed and "train-lr1-seed2" in printed

    # a new value of a variable runs only the new cells
    (toy / "toy.yaml").write_text(TOY.replace("lr: [1, 2]", "lr: [1, 2, 3]"))
    before = cl.out("search", ".count")
    r = cl("recipe", "run", "toy.yaml", ok=False)
    assert "11 cells: 7 memo hits, 4 to run" in r.stderr
    assert r.returncode == 1 and "train-lr3-seed2 (failed), score-lr3-seed2 (failed)" in r.stderr
    assert int(cl.out("search", ".count")) == int(before) + 4
    assert "Parent bundles failed" in cl.out("info", "-f", "failure_message", "score-lr3-seed2")
    _, summary = statuses(cl)
    assert summary == "1 blocked, 9 done, 1 failed"

    # a failure is not retried by default, only with --retry-failed
    failed = cl.out("info", "-f", "uuid", "train-lr3-seed2")
    cl("recipe", "run", "toy.yaml", ok=False)
    assert cl.out("info", "-f", "uuid", "train-lr3-seed2") == failed
    cl("recipe", "run", "toy.yaml", "--retry-failed", ok=False)
    assert cl.out("info", "-f", "uuid", "train-lr3-seed2") != failed

    # editing the training code reruns train and score, not prepare
    (toy / "code" / "train.py").write_text(TRAIN + "# faster\n")
    rows, summary = statuses(cl)
    assert summary == "1 done, 10 stale"
    r = cl("recipe", "run", "toy.yaml", "--only", "train", ok=False)
    assert "11 cells: 0 memo hits, 5 to run" in r.stderr and "score" not in r.stderr


def test_dry_run_and_export_cl(toy, cl):
    out = cl.out("recipe", "run", "toy.yaml", "--dry-run")
    assert "missing" in out and cl.out("search", ".count") == "0"
    script = cl.out("recipe", "export-cl", "toy.yaml")
    assert re.search(r"b_code=\$\(cl upload \S+/code -n code\)", script)
    assert "cl run prep:${b_prepare} code:${b_code}" in script or "cl run code:${b_code} prep:${b_prepare}" in script
    assert "-n train-lr2-seed1 --request-cpus 1 --request-memory 500m" in script
    assert script.count("cl run ") == 7


@pytest.mark.parametrize("edit,message", [
    (("  prepare:\n", "  prepare:\n    comand: x\n"), "toy.yaml:12: steps.prepare.comand: unknown key"),
    (("{{ seed }}", "{{ sed }}"), "toy.yaml:15: steps.train.command: undefined variable 'sed'"),
    (("{t: train}", "{t: trian}"), "toy.yaml:20: steps.score.deps.t: 'trian' is neither a step nor an upload"),
    (("{data: data}", "{data: data, s: score}"), "dependency cycle: prepare -> score -> train -> prepare"),
    (("memory: 500m", "memory: lots"), "toy.yaml:17: steps.train.request: malformed size 'lots'"),
    (("- {lr: 2, seed: 2}", "- {rate: 2}"), "toy.yaml:9: exclude.0: 'rate' is not a grid variable"),
])
def test_recipe_errors_name_file_line_key(toy, cl, edit, message):
    (toy / "toy.yaml").write_text(TOY.replace(*edit))
    r = cl("recipe", "run", "toy.yaml", ok=False)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and cl.out("search", ".count") == "0"


def test_steps_use_only_their_variables(toy):
    r = recipes.load(str(toy / "toy.yaml"))
    assert r.order == ["prepare", "train", "score"]
    assert r.step_vars == {"prepare": [], "train": ["lr", "seed"], "score": ["lr", "seed"]}
    assert [c.name for c in recipes.cells(r)][:2] == ["prepare", "train-lr1-seed1"]


def test_paper_verify_sees_a_stale_recipe_cell(toy, cl):
    """A number in the paper is stale as soon as the recipe's plan says its inputs changed, even
    before anything reran."""
    (toy / "cl_recipes").mkdir()
    (toy / "cl_recipes" / "toy.yaml").write_text(TOY.replace("name: toy\n", "name: toy\nroot: ..\n"))
    cl("recipe", "run", "cl_recipes/toy.yaml")
    (toy / "acc.yaml").write_text("name: acc\nbundles: [name=score-%]\nrows: {seed: /score.json:seed}\n"
                                  "columns: {step: /score.json:seed}\nvalue: /score.json:acc\n")
    cl("export", "acc.yaml", "-o", "paper")
    assert cl("verify", "paper").returncode == 0
    (toy / "code" / "train.py").write_text(TRAIN + "# changed\n")
    r = cl("verify", "paper", ok=False)
    assert r.returncode == 1
    assert "stale: recipe toy now plans score-lr1-seed1 as stale" in r.stdout + r.stderr

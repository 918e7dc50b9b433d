"""Recipe profiles (`--profile NAME`): overrides of grid values, vars, requests and step fields."""

import pytest

from codalite import recipes
from codalite.errors import UsageError

RECIPE = """name: p
grid: {seed: [1, 2]}
vars: {steps: 100}
profiles:
  small:
    grid: {seed: [7]}
    vars: {steps: 2}
    request: {gpus: null, docker_image: null}
    steps:
      b: {command: echo tiny, request: {cpus: 1}}
  {bad}
steps:
  a:
    command: train --steps {{ steps }} --seed {{ seed }}
    request: {gpus: 1, docker_image: img:1, memory: 8g}
  b:
    command: echo big
    deps: {a: a}
    request: {cpus: 4, gpus: 1}
"""


def write(tmp_path, bad=""):
    path = tmp_path / "p.yaml"
    path.write_text(RECIPE.replace("{bad}", bad))
    return str(path)


def test_profile_overrides_vars_grid_requests_and_steps(tmp_path):
    path = write(tmp_path)
    full, small = recipes.load(path), recipes.load(path, "small")
    assert [c.command for c in recipes.cells(full) if c.step == "a"] == ["train --steps 100 --seed 1",
                                                                       "train --steps 100 --seed 2"]
    assert [c.name for c in recipes.cells(small)] == ["a-seed7", "b-seed7"]  # vars never enter cell names
    assert [c.command for c in recipes.cells(small)] == ["train --steps 2 --seed 7", "echo tiny"]
    assert small.steps["a"].request.metadata() == {"request_memory": "8g"}
    assert small.steps["b"].request.metadata() == {"request_cpus": 1}
    assert small.worksheet == "p-small" and full.worksheet is None


@pytest.mark.parametrize("bad, message", [
    ("", "no profile 'nope'; profiles: small"),
    ("typo: {vars: {step: 2}}", "'step' is not in the recipe's vars"),
    ("typo: {grid: {sed: [1]}}", "'sed' is not in the recipe's grid"),
    ("typo: {steps: {c: {command: x}}}", "'c' is not a step of the recipe"),
])
def test_profile_mistakes_are_one_line_errors(tmp_path, bad, message):
    path = write(tmp_path, bad)
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        recipes.load(path, "nope" if not bad else "typo")

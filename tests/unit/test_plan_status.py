"""A recipe plan's status decision (recipes.plan.cell_status), every status it can produce, and
what `submit` leaves alone; no store or worker: bundles are plain records."""

import pytest

from codalite.bundle import Bundle
from codalite.recipes.plan import (BLOCKED, DONE, FAILED_, MISSING, RUNNING, STALE, Dep, GridCell, cell_parents,
                                   cell_status, skipped)

pytestmark = pytest.mark.fast

KEY, OLD_KEY = "k" * 64, "o" * 64


def bundle(state, memo_key=KEY):
    return Bundle(id=1, uuid="0x" + "a" * 32, bundle_type="run", command="c", state=state, is_dir=True,
                  content_hash=None, memo_key=memo_key, metadata={"name": "train-seed1"})


@pytest.mark.parametrize("key, match, previous, upstream_failed, status, behind", [
    # the inputs are known (a memo key)
    (KEY, "ready", None, False, DONE, "match"),
    (KEY, "running", None, False, RUNNING, "match"),
    (KEY, "staged", None, False, RUNNING, "match"),
    (KEY, None, None, False, MISSING, None),
    (KEY, None, ("failed", KEY), False, FAILED_, "previous"),
    (KEY, None, ("killed", KEY), False, FAILED_, "previous"),
    (KEY, None, ("failed", OLD_KEY), False, STALE, "previous"),  # failed with other inputs: try these
    (KEY, None, ("ready", OLD_KEY), False, STALE, "previous"),
    # an upstream cell is not done (no key yet)
    (None, None, ("running", OLD_KEY), False, RUNNING, "previous"),
    (None, None, ("running", OLD_KEY), True, RUNNING, "previous"),  # running beats blocked
    (None, None, ("ready", OLD_KEY), True, BLOCKED, "previous"),
    (None, None, None, True, BLOCKED, None),
    (None, None, ("ready", OLD_KEY), False, STALE, "previous"),
    (None, None, ("failed", OLD_KEY), False, STALE, "previous"),
    (None, None, None, False, MISSING, None),
])
def test_cell_status(key, match, previous, upstream_failed, status, behind):
    m = bundle(match) if match else None
    p = bundle(*previous) if previous else None
    got_status, got_bundle = cell_status(key, m, p, upstream_failed)
    assert got_status == status
    assert got_bundle is {"match": m, "previous": p, None: None}[behind]


def test_every_status_is_reachable():
    seen = {cell_status(k, m, p, u)[0] for k in (KEY, None) for u in (False, True)
            for m in (None, bundle("ready"), bundle("running"))
            for p in (None, bundle("failed"), bundle("running", OLD_KEY), bundle("ready", OLD_KEY))}
    assert seen == {DONE, MISSING, STALE, FAILED_, RUNNING, BLOCKED}


def cell(status, deps=(), step="score"):
    return GridCell(step, {"seed": 1}, f"{step}-seed1", "python score.py", status=status, deps=list(deps))


DEPS = [Dep("data", "upload", "data", "data", ""), Dep("model", "step", "train", "train-seed1", "out/model")]


def test_parents_by_name_and_only_once_every_parent_has_a_bundle():
    c = cell(MISSING, DEPS)
    assert cell_parents(c, {"data": "0xd"}, {}) is None
    assert cell_parents(c, {"data": "0xd"}, {"train-seed1": "0xt"}) == [("data", "0xd", ""), ("model", "0xt", "out/model")]


@pytest.mark.parametrize("status, parents, retry, only, left", [
    (MISSING, [], False, set(), False),
    (MISSING, None, False, set(), True),  # a parent has no bundle to point at
    (FAILED_, [], False, set(), True),
    (FAILED_, [], True, set(), False),
    (BLOCKED, [], False, set(), True),
    (BLOCKED, [], True, set(), False),
    (STALE, [], False, {"train"}, True),  # another step was asked for
    (STALE, [], False, {"score"}, False),
])
def test_what_submit_leaves_alone(status, parents, retry, only, left):
    assert skipped(cell(status), parents, retry, only) is left

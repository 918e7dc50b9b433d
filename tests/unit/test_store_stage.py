"""Staging with a parent that has no contents (killed before it started) and
--allow-failed-dependencies: the run has no memo key, so it is nobody's twin (found by mypy: the
key was the hash of `null`, shared by every such run, so a different command became a copy)."""

import os
import sys

import pytest

from codalite import Store
from codalite.bundle import CREATED, KILLED, STAGED

pytestmark = pytest.mark.fast


def test_runs_on_a_parent_without_contents_are_not_each_others_twins(tmp_path):
    store = Store.init(tmp_path)
    path_env = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    parent, _ = store.run("sleep 100", name="parent", path_env=path_env, start_worker=False)
    allow = {"allow_failed_dependencies": True}
    a, _ = store.run("echo a", [("p", parent.uuid)], requests=allow, path_env=path_env, start_worker=False)
    b, _ = store.run("echo b", [("p", parent.uuid)], requests=allow, path_env=path_env, start_worker=False)
    assert a.state == b.state == CREATED
    store.kill(parent)  # staged, so killed at once: no contents, no content hash
    assert store.get(parent.uuid).state == KILLED and store.get(parent.uuid).content_hash is None
    assert store.stage(store.get(a.uuid)) == STAGED
    assert store.stage(store.get(b.uuid)) == STAGED  # not "waiting for identical run a"
    a, b = store.get(a.uuid), store.get(b.uuid)
    assert a.memo_key is None and b.memo_key is None and "staged_status" not in b.metadata
    store.close()

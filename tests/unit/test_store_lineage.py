"""The one walk up the dependency graph (Store.lineage) and the parents-first order built on it
(Store.upstream), which Store.ancestors, paper provenance, push and the web UI's graph use."""

import os
import sys

import pytest

from codalite import Store

pytestmark = pytest.mark.fast


@pytest.fixture
def dag(tmp_path):
    """a, b uploads; c runs on (p: b, q: a); d runs on (c: c, z: a). Ids: a < b < c < d."""
    store = Store.init(tmp_path)
    path_env = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    ids = {}
    for name in "ab":
        (tmp_path / name).write_text(name)
        ids[name] = store.upload([str(tmp_path / name)], name=name).bundle.uuid
    ids["c"] = store.run("true", [("p", ids["b"]), ("q", ids["a"])], name="c", path_env=path_env,
                         start_worker=False).bundle.uuid
    ids["d"] = store.run("true", [("c", ids["c"]), ("z", ids["a"])], name="d", path_env=path_env,
                         start_worker=False).bundle.uuid
    yield store, ids
    store.close()


def test_lineage_walks_level_by_level_in_dependency_order(dag):
    store, i = dag
    levels = store.lineage([i["d"]])
    assert [list(level) for level in levels] == [[i["d"]], [i["c"], i["a"]], [i["b"]]]
    assert all(b is not None and b.uuid == u for level in levels for u, b in level.items())
    assert [list(level) for level in store.lineage([i["d"]], depth=1)] == [[i["d"]], [i["c"], i["a"]]]
    assert store.ancestors(i["d"]) == {i["a"], i["b"], i["c"]}
    assert store.ancestors(i["d"], depth=1) == {i["a"], i["c"]}
    assert store.ancestors(i["a"]) == set() and store.ancestors(i["d"], depth=0) == set()


def test_upstream_is_parents_first(dag):
    store, i = dag
    order = [u for u, _ in store.upstream([i["d"]])]
    assert order == [i["b"], i["a"], i["c"], i["d"]]  # depth-first: c's parents p (b), q (a)
    order = [u for u, _ in store.upstream([i["d"]], oldest_first=True)]
    assert order == [i["a"], i["b"], i["c"], i["d"]]


def test_a_missing_parent_is_none_and_not_walked(dag):
    store, i = dag
    store.rm([store.get(i["b"])], force=True)  # c's parent gone, c left dangling
    assert store.lineage([i["c"]])[1] == {i["b"]: None, i["a"]: store.get(i["a"])}
    assert [(u, b is None) for u, b in store.upstream([i["c"]])] == [(i["b"], True), (i["a"], False), (i["c"], False)]
    assert store.lineage(["0x" + "0" * 32]) == [{"0x" + "0" * 32: None}]

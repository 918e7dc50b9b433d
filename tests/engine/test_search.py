"""`search` keywords on a real store, as CodaLab 1.7.5's search_bundles answers them
(codalab/model/bundle_model.py): bundles are inserted with the metadata a run or upload has, the
same way a pulled bundle is, and each answer is what CodaLab's SQL gives on the same rows."""

import datetime

import pytest

from codalite import search, spec
from codalite.bundle import Dependency
from codalite.errors import CodaliteError, UsageError
from codalite.worksheets import model
from codalite.worksheets.interpret import interpret
from codalite.worksheets.parse import parse

T0 = datetime.datetime(2024, 3, 1, 12, 0, 0).timestamp()  # local time, as CodaLab's isoparse


def add(store, name, uuid=None, bundle_type="run", state="ready", deps=(), command="true", **md):
    uuid = uuid or spec.new_uuid()
    metadata = {"name": name, "description": "", "tags": [], "request_gpus": 0, "request_network": False}
    metadata.update(md)
    with store.tx():
        store._insert(uuid, bundle_type, state, metadata, command=command if bundle_type == "run" else None,
                      deps=[Dependency(k, p, "") for k, p in deps])
    return uuid


@pytest.fixture
def bundles(store):
    """Created in this order; uuids deliberately descending so uuid order is the reverse of creation."""
    u = {}
    u["raw"] = add(store, "raw", "0xf" + "0" * 31, "dataset", data_size=9, created=T0 + 0.7, tags=["data", "v1"])
    u["ok"] = add(store, "train-ok", "0xe" + "0" * 31, exitcode=0, data_size=10, request_gpus=1, time=1.5,
                  created=T0 + 86400 + 0.2, deps=[("data", u["raw"])], command="python train.py",
                  request_network=True)
    u["bad"] = add(store, "train-bad", "0xd" + "0" * 31, state="failed", exitcode=1, data_size=100,
                   created=T0 + 2 * 86400, deps=[("d", u["raw"])])
    u["run"] = add(store, "eval", "0xc" + "0" * 31, state="running", created=T0 + 3 * 86400, time=None)
    return u


def names(result):
    return [b.name for b in result]


def test_numbers_match_as_codalab_stores_them(store, bundles):
    """CodaLab keeps str(value) in a text column: exitcode=0 matches the JSON number 0."""
    assert names(search(store, ["exitcode=0"])) == ["train-ok"]
    assert names(search(store, ["data_size=100"])) == ["train-bad"]
    assert names(search(store, ["size=9"])) == ["raw"]
    assert names(search(store, ["request_gpus=1"])) == ["train-ok"]
    assert names(search(store, ["exitcode=0,1", "id=.sort"])) == ["train-ok", "train-bad"]
    assert names(search(store, ["time=1.5"])) == ["train-ok"]
    assert names(search(store, ["request_network=True"])) == ["train-ok"]  # str(True)
    assert names(search(store, ["request_network=true"])) == ["train-ok"]  # MySQL compares without case
    assert search(store, ["request_network=1"]) == []  # a boolean is 'True', never '1'
    assert names(search(store, [f"created={int(T0)}"])) == ["raw"]  # CodaLab's created is whole seconds
    assert search(store, ["time=None"]) == []  # None values are not stored
    assert names(search(store, ["tags=v1"])) == ["raw"]  # one row per list element
    assert names(search(store, ["state=READY", "id=.sort"])) == ["raw", "train-ok"]
    assert names(search(store, ["name=train%", "id=.sort"])) == ["train-ok", "train-bad"]
    assert names(search(store, ["name=train-.*", "id=.sort"])) == ["train-ok", "train-bad"]


def test_id_sort_is_creation_order_and_sorts_are_numeric(store, bundles):
    assert names(search(store, ["id=.sort"])) == ["raw", "train-ok", "train-bad", "eval"]
    assert names(search(store, ["id=.sort-"])) == ["eval", "train-bad", "train-ok", "raw"]
    assert names(search(store, [".last"])) == ["eval", "train-bad", "train-ok", "raw"]
    # 9 < 10 < 100 as numbers (as text 10 < 100 < 9); only bundles that have the key (CodaLab's join)
    assert names(search(store, ["size=.sort"])) == ["raw", "train-ok", "train-bad"]
    assert names(search(store, ["size=.sort-"])) == ["train-bad", "train-ok", "raw"]
    assert names(search(store, ["name=.sort"])) == ["eval", "raw", "train-bad", "train-ok"]
    # only the last .sort counts, as in CodaLab
    assert names(search(store, ["name=.sort", "id=.sort-", ".limit=2"])) == ["eval", "train-bad"]


def test_bare_words_are_infixes_of_uuid_or_name(store, bundles):
    assert names(search(store, ["rain", "id=.sort"])) == ["train-ok", "train-bad"]  # inside the name
    assert names(search(store, ["f000"])) == ["raw"]  # inside the uuid, not its prefix
    assert names(search(store, ["AW"])) == ["raw"]
    assert names(search(store, ["=python"])) == ["train-ok"]  # =VALUE: uuid, command or any metadata
    assert names(search(store, ["=v1"])) == ["raw"]


def test_floating_shared_mine(store, bundles, tmp_path):
    ws = model.new(store, "exp")
    model.add_bundles(store, ws, [store.get(bundles["ok"])])
    (tmp_path / "worksheets").mkdir()
    (tmp_path / "worksheets" / "paper.ws").write_text("## paper\n{train-bad}\n")
    floating = names(search(store, [".mine", ".floating", "id=.sort"]))
    assert floating == ["raw", "eval"]  # not the worksheet's bundle, nor the worksheet file's
    assert search(store, [".floating", ".count"]) == 2
    assert search(store, [".shared"]) == []  # shared with you through a group: a store has no groups
    assert len(search(store, [".mine"])) == 4
    with pytest.raises(UsageError, match="one user"):
        search(store, ["owner_id=0"])
    with pytest.raises(UsageError, match="group"):
        search(store, ["group=public"])


def test_host_worksheet(store, bundles):
    ws = model.new(store, "exp")
    model.add_bundles(store, ws, [store.get(bundles["bad"]), store.get(bundles["raw"])])
    assert names(search(store, [f"host_worksheet={ws.uuid}", "id=.sort"])) == ["raw", "train-bad"]
    assert names(search(store, ["worksheet=exp", "id=.sort"])) == ["raw", "train-bad"]
    assert names(search(store, [f"worksheet={ws.uuid[:6]}", "id=.sort"])) == ["raw", "train-bad"]
    with pytest.raises(CodaliteError, match="no worksheet"):
        search(store, ["worksheet=nosuch"])


def test_before_after_iso_dates(store, bundles):
    assert names(search(store, [".before=2024-03-02", "id=.sort"])) == ["raw"]
    assert names(search(store, [".after=2024-03-02", "id=.sort"])) == ["train-ok", "train-bad", "eval"]
    assert names(search(store, [".after=2024-03-02T12:00:00", ".before=2024-03-03T12:00", "id=.sort"])) == \
        ["train-ok", "train-bad"]
    assert search(store, [".before=2024", ".count"]) == 0
    assert search(store, [".after=2024-02", ".count"]) == 4
    with pytest.raises(UsageError, match="ISO-8601"):
        search(store, [".before=yesterday"])


def test_aggregates_limit_offset_and_format(store, bundles):
    assert search(store, [".count"]) == 4
    assert search(store, [".count", ".limit=2"]) == 2  # CodaLab counts the page
    assert search(store, [".limit=2", ".count"]) == 4  # .count after .limit lifts it
    assert search(store, [".count", ".offset=3"]) == 1
    assert search(store, ["size=.sum"]) == 119.0  # MySQL sums text * 1 as a double
    assert search(store, ["tags=nosuch", "size=.sum"]) is None
    assert search(store, ["size=.sum", ".format=size"]) == "119 bytes"
    assert search(store, [".count", ".format=%.1f"]) == "4.0"
    assert names(search(store, ["id=.sort", ".format=size"])) == ["raw", "train-ok", "train-bad", "eval"]
    assert len(search(store, [])) == 4  # default limit 10
    for i in range(10):
        add(store, f"x{i}")
    assert len(search(store, [])) == 10 and len(search(store, [".limit=12"])) == 12
    with pytest.raises(UsageError):
        search(store, [".count", "size=.sum"])


def test_dependency_keywords(store, bundles):
    raw = bundles["raw"]
    assert names(search(store, [f"dependency={raw}", "id=.sort"])) == ["train-ok", "train-bad"]
    assert names(search(store, [f"dependency/data={raw}"])) == ["train-ok"]
    assert names(search(store, ["dependency=raw", "id=.sort"])) == ["train-ok", "train-bad"]  # name resolved
    assert search(store, [f"dependency/nokey={raw}"]) == []


def test_refused_keywords(store, bundles):
    for bad, match in [([".bogus"], "unknown option"), (["a b=1"], "invalid field"),
                       (["1abc=.sort"], "invalid field"), ([".limit=-1"], ".limit"),
                       (["dependency=.sort"], "not supported")]:
        with pytest.raises(UsageError, match=match):
            search(store, bad)


def test_worksheet_search_and_wsearch_limit(store, bundles):
    for name in ("w1", "w2", "w3"):
        model.new(store, name)
    text = "% search exitcode=0\n\n% search .count .format=%d\n\n% wsearch w .limit=2\n"
    blocks = interpret(store, parse(text)).blocks
    kinds = [type(b).__name__ for b in blocks]
    table = blocks[0]
    assert kinds[0] == "TableBlock" and [r.uuid for r in table.rows] == [bundles["ok"]]
    assert any("4" == getattr(b, "text", "").strip() for b in blocks)
    ws_block = [b for b in blocks if type(b).__name__ == "WorksheetsBlock"][0]
    assert len(ws_block.worksheets) == 2
    (err,) = interpret(store, parse("% wsearch tag=paper\n")).blocks  # CodaLab's tag= is not kept: refused
    assert err.error and "tag=paper" in err.text and "not supported" in err.text


def test_codalab_cli_test_search_cases(store):
    """CodaLab's own tests/cli/test_cli.py `search` and `search_time` cases, on a store."""
    u1 = add(store, "same", bundle_type="dataset", data_size=3, created=T0)
    u2 = add(store, "same", bundle_type="dataset", data_size=4, created=T0 + 2)
    uuids = lambda kws: [b.uuid for b in search(store, kws)]  # noqa: E731
    assert uuids([u1]) == [u1]
    assert uuids(["uuid=" + u1]) == [u1]
    assert uuids(["uuid=" + u1[:8]]) == []  # an exact field is not a prefix
    assert uuids(["uuid=" + u1[:8] + ".*"]) == [u1]
    assert uuids(["uuid=" + u1[:8] + "%"]) == [u1]
    assert uuids(["uuid=" + u1, "name=same"]) == [u1]
    assert uuids(["name=same", "id=.sort"]) == [u1, u2]
    assert uuids([f"uuid={u1},{u2}", "id=.sort"]) == [u1, u2]
    assert uuids(["name=same", "id=.sort-"]) == [u2, u1]
    assert search(store, ["name=same", ".count"]) == 2
    assert search(store, ["name=same", "data_size=.sum"]) == 7.0
    ws = model.new(store, "main")
    model.add_bundles(store, ws, [store.get(u1), store.get(u2)])
    assert uuids([".floating"]) == []
    u3 = add(store, "floater", bundle_type="dataset")
    assert uuids([".floating"]) == [u3]
    assert search(store, [".shared"]) == []  # "Check search when groups empty"
    # search_time: .before/.after take datetime.now().isoformat() (microseconds, no zone)
    iso = lambda t: datetime.datetime.fromtimestamp(t).isoformat()  # noqa: E731
    for kws, want in [([".before=" + iso(T0 - 1)], []), ([".after=" + iso(T0 + 3)], []),
                      ([".before=" + iso(T0 + 1.5), "id=.sort"], [u1]),
                      ([".after=" + iso(T0 + 1.5), "id=.sort"], [u2]),
                      ([".after=" + iso(T0 - 1), ".before=" + iso(T0 + 3), "id=.sort"], [u1, u2])]:
        assert uuids(["name=same"] + kws) == want, kws

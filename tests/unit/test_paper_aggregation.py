"""Paper tables' aggregation: cells grouped and averaged (table.tabulate, aggregate, mark_best),
per-example data read and checked (stats.parse_jsonl, select, matrix), intervals and paired
tests (stats.interval, paired), all from plain values: no store."""

import pytest

from codalite.paper import stats
from codalite.paper.declare import TableSpec
from codalite.paper.table import format_cell, mark_best, tabulate

pytestmark = pytest.mark.fast


def spec(**kw):
    return TableSpec(**dict(dict(name="t", bundles=["recipe:x"], rows={"model": "/m"}, columns={"data": "/d"},
                                 value="/acc"), **kw))


def test_cells_mean_sd_and_order():
    t = tabulate(spec(), [("0x1", ("lora",), ("b",), (), 0.5), ("0x2", ("lora",), ("b",), (), 0.7),
                          ("0x3", ("full",), ("b",), (), 0.9), ("0x4", ("full",), ("a",), (), 0.25)])
    assert t.rows == [("full",), ("lora",)] and t.columns == [("a",), ("b",)]
    c = t.cells[("lora",), ("b",)]
    assert c.uuids == ["0x1", "0x2"] and c.n == 2 and c.mean == pytest.approx(0.6)
    assert c.sd == pytest.approx(0.1414213562) and c.text == "0.600 ± 0.141"
    one = t.cells[("full",), ("a",)]
    assert one.sd is None and one.text == "0.250"  # no sd of one value
    assert t.usual_n() == 1


def test_rows_sort_numbers_as_numbers_then_text():
    t = tabulate(spec(), [(f"0x{i}", (r,), ("a",), (), 1.0) for i, r in enumerate(["10", "9", "b", "1.5", "a"])])
    assert t.rows == [("1.5",), ("9",), ("10",), ("a",), ("b",)]


def test_over_keeps_the_newest_value_per_key():
    s = spec(over={"seed": "/seed"})
    t = tabulate(s, [("0x1", ("m",), ("d",), ("1",), 0.1), ("0x2", ("m",), ("d",), ("2",), 0.3),
                     ("0x3", ("m",), ("d",), ("1",), 0.5)])  # a rerun of seed 1 replaces 0x1
    assert t.cells[("m",), ("d",)].values == [("0x3", 0.5), ("0x2", 0.3)]


@pytest.mark.parametrize("best, marked", [("max", {"a"}), ("min", {"b"}), ("none", set())])
def test_best_compares_what_is_printed(best, marked):
    s = spec(best=best, format="%.1f", aggregate="mean")
    t = tabulate(s, [("0x1", ("a",), ("c",), (), 0.91), ("0x2", ("b",), ("c",), (), 0.5)])
    mark_best(t)
    assert {r[0] for (r, _), c in t.cells.items() if c.best} == marked
    t = tabulate(s, [("0x1", ("a",), ("c",), (), 0.91), ("0x2", ("b",), ("c",), (), 0.94)])
    mark_best(t)  # both print 0.9: both are best
    assert sum(c.best for c in t.cells.values()) == (0 if best == "none" else 2)


def test_format_cell():
    assert format_cell(spec(), 0.5, 0.1) == "0.500 ± 0.100"
    assert format_cell(spec(aggregate="mean"), 0.5, 0.1) == "0.500"
    assert format_cell(spec(), 0.5, 0.1, 0.4, 0.6) == "0.500 [0.400, 0.600]"  # an interval replaces the sd


def test_per_example_rows_are_read_and_checked():
    rows = stats.parse_jsonl('{"id": 1, "ok": 1, "type": "color"}\n\n{"id": 2, "ok": 0, "type": "shape"}\n', "f")
    assert stats.select(rows, "ok") == {1: 1.0, 2: 0.0}
    assert stats.select(rows, "ok", {"type": "shape"}) == {2: 0.0}
    with pytest.raises(stats.StatsError, match=r"f:2: not JSON"):
        stats.parse_jsonl('{"id": 1}\n{oops\n', "f")
    with pytest.raises(stats.StatsError, match="has no number in column 'ok'"):
        stats.select([{"id": 1, "ok": True}], "ok")
    with pytest.raises(stats.StatsError, match="appears twice"):
        stats.select([{"id": 1, "ok": 1}, {"id": 1, "ok": 0}], "ok")
    with pytest.raises(stats.StatsError, match="no example with column 'ok' where type=x"):
        stats.select(rows, "ok", {"type": "x"})
    ids, M = stats.matrix([{"b": 1.0, "a": 0.0}, {"a": 1.0, "b": 1.0}], ["s1", "s2"])
    assert ids == ["a", "b"] and M.tolist() == [[0.0, 1.0], [1.0, 1.0]]
    with pytest.raises(stats.StatsError, match="s2 and s1 scored different examples"):
        stats.matrix([{"a": 1.0}, {"b": 1.0}], ["s1", "s2"])


def test_intervals_and_paired_tests():
    import numpy as np

    M = np.array([[1.0] * 80 + [0.0] * 20])
    low, high = stats.interval(M, "wilson")
    assert low < 0.8 < high and (round(low, 3), round(high, 3)) == (0.711, 0.867)
    low, high = stats.interval(M, "bootstrap")
    assert low < 0.8 < high
    assert stats.interval(M, "bootstrap") == (low, high)  # a fixed seed: verify re-derives it exactly
    with pytest.raises(stats.StatsError, match="one bundle per cell"):
        stats.interval(np.vstack([M, M]), "wilson")
    B = np.array([[1.0] * 50 + [0.0] * 50])
    differs, detail = stats.paired(M, B, "mcnemar")
    assert differs and detail["b"] == 30 and detail["c"] == 0 and detail["p"] < 1e-8
    differs, detail = stats.paired(M, M, "mcnemar")
    assert not differs and detail == {"p": 1.0, "b": 0, "c": 0}
    differs, detail = stats.paired(M, B, "paired_bootstrap")
    assert differs and 0 < detail["low"] < 0.3 < detail["high"]
    assert stats.ci_text([1, 0, 1, 1], "wilson", "%.2f").startswith("0.75 [")

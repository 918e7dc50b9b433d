"""Compute a paper table from the store: group bundles by the row and column variables and
aggregate the value over the rest (mean ± sample sd, with n); with per-example files declared, a 95%
interval per cell and a paired test of each cell against a baseline row (stats.py)."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import CodaliteError
from . import stats
from ..search import search
from ..worksheets.genpath import display
from ..worksheets.interpret import Interpreter
from .declare import TableSpec

if TYPE_CHECKING:
    from ..bundle import Bundle
    from ..store import Store


class TableError(CodaliteError):
    """A bundle lacks a variable or a numeric value, or the search found nothing."""


@dataclass
class TableCell:
    """One cell of a paper table: the values gathered there and their statistics."""

    row: tuple[str, ...]
    column: tuple[str, ...]
    values: list[tuple[str, float]]  # [(uuid, value)], oldest first
    mean: float
    sd: float | None  # None when n == 1
    text: str
    best: bool = False
    low: float | None = None  # the 95% interval, when declared
    high: float | None = None
    n_examples: int | None = None  # examples per bundle, when per-example files are declared
    differs: bool | None = None  # significantly different from the baseline row's cell
    test: dict[str, Any] | None = None  # the test's p-value or the difference's interval
    unanimous: bool = False  # a bootstrap cell whose examples all agree: Wilson's interval (stats.unanimous)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def uuids(self) -> list[str]:
        return [u for u, _ in self.values]


@dataclass
class Table:
    spec: TableSpec
    rows: list[tuple[str, ...]]
    columns: list[tuple[str, ...]]
    cells: dict[tuple[tuple[str, ...], tuple[str, ...]], TableCell] = field(default_factory=dict)

    def label(self, key: tuple[str, ...]) -> str:
        return " / ".join(key)

    def usual_n(self) -> int:
        return _usual([c.n for c in self.cells.values()])

    def usual_examples(self) -> int | None:
        return _usual([c.n_examples for c in self.cells.values()])

    def baseline_uuids(self, col: tuple[str, ...]) -> list[str]:
        base = self.cells.get((tuple(self.spec.baseline.split(" / ")), col)) if self.spec.baseline else None
        return base.uuids if base else []


def _usual(ns: list[Any]) -> Any:
    return max(set(ns), key=ns.count) if ns else 0


def number(v: Any) -> float:
    """A finite number: NaN or infinity (JSON's NaN, Infinity) has no mean, sd or best to print."""
    if isinstance(v, bool):
        raise ValueError
    x = float(v)
    if not math.isfinite(x):
        raise ValueError
    return x


def format_cell(spec: TableSpec, mean: float, sd: float | None, low: float | None = None,
                high: float | None = None) -> str:
    text = spec.format % mean
    if low is not None:  # the interval replaces the sd: it says what the sd of 2 seeds cannot
        return f"{text} [{spec.format % low}, {spec.format % high}]"
    if spec.aggregate == "mean_sd" and sd is not None:
        text += " ± " + spec.format % sd
    return text


def aggregate(spec: TableSpec, values: Sequence[tuple[str, float]]) -> tuple[float, float | None, str]:
    """(mean, sample sd or None for one value, the cell's text) of [(uuid, value)]."""
    nums = [v for _, v in values]
    mean = statistics.fmean(nums)
    sd = statistics.stdev(nums) if len(nums) > 1 else None
    return mean, sd, format_cell(spec, mean, sd)


def _sort_key(values: Iterable[str]) -> tuple:
    """Numbers in numeric order, then text."""
    def one(v):
        try:
            return (0, float(v), "")
        except ValueError:
            return (1, 0.0, v)
    return tuple(one(v) for v in values)


def read_values(store: Store, spec: TableSpec,
                bundles: Iterable[Bundle]) -> list[tuple[Bundle, tuple, tuple, tuple, float]]:
    """[(bundle, row, column, over, value)] for the given bundles; fails naming the bundle."""
    interp = Interpreter(store)
    out = []
    for b in bundles:
        def var(genpath, what):
            v = interp.value(b, genpath, None)
            if v is None:
                raise TableError(f"bundle {b.uuid} ({b.name}) has no {what} ({genpath}); "
                                 "fix the declaration's genpath or narrow `bundles`")
            return display(v)
        row = tuple(var(g, f"row variable {k!r}") for k, g in spec.rows.items())
        col = tuple(var(g, f"column variable {k!r}") for k, g in spec.columns.items())
        over = tuple(var(g, f"variable {k!r}") for k, g in spec.over.items())
        raw = interp.value(b, spec.value, None)
        if raw is None:
            raise TableError(f"bundle {b.uuid} ({b.name}) has no value {spec.value} (no such file or key; a "
                             "value is a genpath without post-processors); fix `value` or narrow `bundles`")
        try:
            value = number(raw)
        except (TypeError, ValueError, OverflowError):
            raise TableError(f"bundle {b.uuid} ({b.name}): value {spec.value} is {display(raw)!r}, not a finite "
                             "number") from None
        out.append((b, row, col, over, value))
    return out


def compute(store: Store, spec: TableSpec) -> Table:
    """The table the declaration describes, from the bundles its search finds now."""
    bundles = search(store, spec.keywords())
    if not bundles:
        raise TableError(f"table {spec.name}: no ready bundle matches {' '.join(spec.bundles)}")
    bundles.sort(key=lambda b: b.id)  # oldest first: with `over`, the newest of a duplicate wins
    values = read_values(store, spec, bundles)
    if spec.over:
        seen: dict[tuple, Bundle] = {}
        for b, row, col, over, _ in values:
            old = seen.setdefault((row, col, over), b)
            if old.command != b.command:  # not a rerun: a variable the declaration lacks tells them apart
                raise TableError(f"table {spec.name}: bundles {old.uuid} ({old.name}) and {b.uuid} ({b.name}) have "
                                 f"the same {', '.join([*spec.rows, *spec.columns, *spec.over])} but ran different "
                                 "commands; only one would be shown: declare the variable that tells them apart "
                                 "(in rows, columns or over) or narrow `bundles`")
    table = tabulate(spec, [(b.uuid, row, col, over, value) for b, row, col, over, value in values])
    if spec.examples:
        add_statistics(store, table)
    mark_best(table)
    return table


def tabulate(spec: TableSpec, values: Iterable[tuple[str, tuple, tuple, tuple, float]]) -> Table:
    """Group (uuid, row, column, over, value), oldest first, into cells and aggregate each: with
    `over`, one value per over-key (the newest wins), else one per bundle."""
    groups: dict[tuple, dict] = {}
    for uuid, row, col, over, value in values:
        groups.setdefault((row, col), {})[over if spec.over else uuid] = (uuid, value)
    table = Table(spec, sorted({r for r, _ in groups}, key=_sort_key), sorted({c for _, c in groups}, key=_sort_key))
    for what, keys in (("rows", table.rows), ("columns", table.columns)):
        labels: dict[str, tuple[str, ...]] = {}
        for k in keys:  # verify, trace and the files name a cell by its label: two keys, one label is ambiguous
            if (other := labels.setdefault(table.label(k), k)) != k:
                raise TableError(f"table {spec.name}: {what} {other} and {k} both print as {table.label(k)!r} "
                                 "(a value holds ' / '); change the values or the variables")
    for (row, col), members in groups.items():
        cell_values = list(members.values())  # oldest first (insertion order)
        mean, sd, text = aggregate(spec, cell_values)
        table.cells[(row, col)] = TableCell(row, col, cell_values, mean, sd, text)
    return table


def read_examples(store: Store, spec: TableSpec, uuid: str) -> dict[Any, float]:
    """{example id: value} from a bundle's per-example file (read whole, not a genpath's first lines)."""
    b = store.get(uuid)
    ex = spec.examples
    assert ex is not None  # only tables that declare per-example files read them
    where = f"bundle {b.uuid} ({b.name}): {ex.file}"
    try:
        with open(store.path_in(b, ex.file[1:]), encoding="utf-8") as f:
            rows = stats.parse_jsonl(f.read(), where)
        return stats.select(rows, ex.value, ex.where, ex.id, where)
    except (OSError, UnicodeDecodeError, CodaliteError, stats.StatsError) as e:
        raise TableError(f"table {spec.name}: {e}") from None


def add_statistics(store: Store, table: Table) -> None:
    """n, the interval and the baseline test of every cell, from its bundles' per-example files."""
    spec, data = table.spec, {}
    assert spec.examples is not None  # called only for tables that declare them
    for key, c in table.cells.items():
        per = [read_examples(store, spec, u) for u in c.uuids]
        for (u, value), vals in zip(c.values, per):
            m = statistics.fmean(vals.values())
            if abs(m - value) > 1e-9 * max(1.0, abs(value)):  # the declaration pairs a value with other examples
                raise TableError(f"table {spec.name}: bundle {u}: {spec.value} is {value!r} but the mean of "
                                 f"{spec.examples.value} in {spec.examples.file} is {m!r} (the file changed, or "
                                 "`examples` selects other examples than the value averages)")
        where = f"table {spec.name} [{table.label(c.row)}, {table.label(c.column)}]"
        try:
            ids, M = stats.matrix(per, [f"bundle {u}" for u in c.uuids])
            c.n_examples = len(ids)
            if spec.interval != "none":
                c.low, c.high = stats.interval(M, spec.interval)
                c.unanimous = stats.unanimous(M, spec.interval)
                c.text = format_cell(spec, c.mean, c.sd, c.low, c.high)
        except stats.StatsError as e:
            raise TableError(f"{where}: {e}") from None
        data[key] = (ids, M)
    if spec.baseline is None:
        return
    base_row = tuple(spec.baseline.split(" / "))
    if base_row not in table.rows:
        raise TableError(f"table {spec.name}: baseline {spec.baseline!r} is not a row; rows: "
                         f"{', '.join(table.label(r) for r in table.rows)}")
    for (row, col), c in table.cells.items():
        if row == base_row or (base_row, col) not in data:
            continue
        (ids, M), (base_ids, B) = data[row, col], data[base_row, col]
        if ids != base_ids:
            raise TableError(f"table {spec.name} [{table.label(row)}, {table.label(col)}]: a paired test needs "
                             f"the baseline's examples; {len(set(ids) ^ set(base_ids))} example ids differ")
        try:
            c.differs, c.test = stats.paired(M, B, spec.test)
        except stats.StatsError as e:
            raise TableError(f"table {spec.name} [{table.label(row)}, {table.label(col)}]: {e}") from None


def mark_best(table: Table) -> None:
    """Mark the best cell of each column (max or min of what is printed; ties are all best)."""
    if table.spec.best == "none":
        return
    pick = max if table.spec.best == "max" else min
    for col in table.columns:
        column = [c for (r, cc), c in table.cells.items() if cc == col]
        if len(column) < 2:
            continue
        # compare what is printed: two cells that print the same are both best
        best = pick(printed(table.spec, c.mean) for c in column)
        for c in column:
            c.best = printed(table.spec, c.mean) == best


NUMBER_RE = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def printed(spec: TableSpec, x: float) -> float:
    """The number as the table prints it (rounded), also in a format with text around it ('%.1f%%')."""
    text = spec.format % x
    try:
        return float(text)
    except ValueError:
        m = NUMBER_RE.search(text)
        return float(m.group()) if m else x

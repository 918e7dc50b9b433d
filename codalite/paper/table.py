"""Compute a paper table from the store: group bundles by the row and column variables and
aggregate the value over the rest (mean ± sample sd, with n)."""

import statistics
from dataclasses import dataclass, field

from ..errors import CodaliteError
from ..search import search
from ..worksheets.genpath import display
from ..worksheets.interpret import Interpreter


class TableError(CodaliteError):
    """A bundle lacks a variable or a numeric value, or the search found nothing."""


@dataclass
class Cell:
    row: tuple
    column: tuple
    values: list  # [(uuid, float)], oldest first
    mean: float
    sd: float | None  # None when n == 1
    text: str
    best: bool = False

    @property
    def n(self):
        return len(self.values)

    @property
    def uuids(self):
        return [u for u, _ in self.values]


@dataclass
class Table:
    spec: object
    rows: list  # [tuple of row values]
    columns: list
    cells: dict = field(default_factory=dict)  # (row, column) -> Cell

    def label(self, key):
        return " / ".join(key)

    def usual_n(self):
        ns = [c.n for c in self.cells.values()]
        return max(set(ns), key=ns.count) if ns else 0


def number(v):
    if isinstance(v, bool):
        raise ValueError
    return float(v)


def format_cell(spec, mean, sd):
    text = spec.format % mean
    if spec.aggregate == "mean_sd" and sd is not None:
        text += " ± " + spec.format % sd
    return text


def aggregate(spec, values):
    nums = [v for _, v in values]
    mean = statistics.fmean(nums)
    sd = statistics.stdev(nums) if len(nums) > 1 else None
    return mean, sd, format_cell(spec, mean, sd)


def _sort_key(values):
    """Numbers in numeric order, then text."""
    def one(v):
        try:
            return (0, float(v), "")
        except ValueError:
            return (1, 0.0, v)
    return tuple(one(v) for v in values)


def read_values(store, spec, bundles):
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
        try:
            value = number(raw)
        except (TypeError, ValueError):
            raise TableError(f"bundle {b.uuid} ({b.name}): value {spec.value} is {display(raw)!r}, not a number") from None
        out.append((b, row, col, over, value))
    return out


def compute(store, spec):
    """The table the declaration describes, from the bundles its search finds now."""
    bundles = search(store, spec.keywords())
    if not bundles:
        raise TableError(f"table {spec.name}: no ready bundle matches {' '.join(spec.bundles)}")
    bundles.sort(key=lambda b: b.id)  # oldest first: with `over`, the newest of a duplicate wins
    groups = {}
    for b, row, col, over, value in read_values(store, spec, bundles):
        cell = groups.setdefault((row, col), {})
        cell[over if spec.over else b.uuid] = (b.uuid, value)
    table = Table(spec, sorted({r for r, _ in groups}, key=_sort_key), sorted({c for _, c in groups}, key=_sort_key))
    for (row, col), members in groups.items():
        values = list(members.values())  # oldest first (insertion order)
        mean, sd, text = aggregate(spec, values)
        table.cells[(row, col)] = Cell(row, col, values, mean, sd, text)
    mark_best(table)
    return table


def mark_best(table):
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


def printed(spec, x):
    try:
        return float(spec.format % x)
    except ValueError:  # a format with text around the number
        return x

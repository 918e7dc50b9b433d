"""95% intervals and paired tests from per-example values, with scipy.

numpy and scipy are imported inside the functions: `codalite` must start fast, and only tables that
ask for intervals pay for them. A bootstrap uses a fixed seed, so `verify` re-derives the very same
interval from the same files.

A cell's data is a matrix: one row per bundle (seed), one column per example, examples aligned by id.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 9999
BATCH = 1000  # resamples per step: bounds memory (a batch is BATCH x seeds x examples floats)
SEED = 0

METHODS = {
    "bootstrap": "percentile bootstrap",
    "wilson": "Wilson binomial interval",
}
TESTS = {
    "paired_bootstrap": "paired bootstrap over the same examples, 95% interval of the difference excluding 0",
    "mcnemar": "exact McNemar test over the same examples, p < 0.05",
}


class StatsError(ValueError):
    """Per-example data that cannot give the declared interval or test."""


def parse_jsonl(text: str, where: str) -> list[Any]:
    rows = []
    for i, line in enumerate(text.splitlines()):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise StatsError(f"{where}:{i + 1}: not JSON ({e.msg})") from None
    return rows


def select(rows: Sequence[Any], column: str, where: dict[str, Any] | None = None, id_key: str = "id",
           source: str = "examples") -> dict[Any, float]:
    """{id: value} of the rows whose columns equal `where`; every selected row needs a number."""
    out = {}
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or any(str(r.get(k)) != str(v) for k, v in (where or {}).items()):
            continue
        v = r.get(column)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise StatsError(f"{source}: example {r.get(id_key, i)!r} has no number in column {column!r}")
        key = r.get(id_key, i)
        if isinstance(key, bool) or not isinstance(key, (str, int, float)):  # a list or mapping cannot align examples
            raise StatsError(f"{source}: example {i + 1} has id {json.dumps(key)}; ids are strings or numbers")
        if key in out:
            raise StatsError(f"{source}: example id {key!r} appears twice")
        out[key] = float(v)
    if not out:
        raise StatsError(f"{source}: no example with column {column!r}"
                         + (f" where {', '.join(f'{k}={v}' for k, v in where.items())}" if where else ""))
    return out


def matrix(per_bundle: Sequence[dict[Any, float]], names: Sequence[str]) -> tuple[list[Any], np.ndarray]:
    """(ids, k x n array) of several bundles' {id: value}; they must cover the same examples."""
    import numpy as np

    ids = sorted(per_bundle[0], key=str)
    for vals, name in zip(per_bundle[1:], names[1:]):
        if set(vals) != set(ids):
            raise StatsError(f"{name} and {names[0]} scored different examples "
                             f"({len(vals)} vs {len(ids)}); bootstrap over seeds needs the same test set")
    return ids, np.array([[vals[i] for i in ids] for vals in per_bundle])


def _bootstrap(fn: Callable[..., Any], sizes: list[int]) -> tuple[float, float]:
    """Percentile interval of fn(*index arrays), each index array resampled independently with
    replacement (an axis of size 1 stays fixed: there is nothing to resample)."""
    import numpy as np
    from scipy import stats

    free = [i for i, s in enumerate(sizes) if s > 1]
    if not free:  # one seed and one example: nothing varies, and [v, v] would claim certainty
        raise StatsError("a bootstrap interval needs at least 2 examples or 2 seeds; this cell has 1 of each")

    def statistic(*resampled, axis=-1):
        batch = resampled[0].shape[:-1]
        it = iter(resampled)
        return fn(*[next(it) if s > 1 else np.zeros(batch + (1,), int) for s in sizes])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate data (all equal) gives [v, v], which is right
        res = stats.bootstrap(tuple(np.arange(sizes[i]) for i in free), statistic, vectorized=True, paired=False,
                              method="percentile", n_resamples=RESAMPLES, batch=BATCH,
                              confidence_level=CONFIDENCE, rng=np.random.default_rng(SEED))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _mean(M: np.ndarray) -> Callable[..., Any]:
    return lambda s, e: M[s[..., :, None], e[..., None, :]].mean(axis=(-2, -1))


AGREED = "‡"  # marks a bootstrap cell given Wilson's interval instead (`unanimous`)
AGREED_NOTE = (f"{AGREED}: every example scored the same (all 1 or all 0), where a percentile bootstrap has zero "
               "width: Wilson interval over the examples")


def unanimous(M: np.ndarray, method: str) -> bool:
    """A bootstrap cell whose every value (every example, every seed) is 1, or every one 0 (all
    correct, all wrong): each resample is the same, so the percentile bootstrap prints [1, 1], a
    certainty 40 examples do not give. Wilson's interval is the one for a proportion at 0 or 1
    ([0.912, 1] for 40 of 40); `interval` gives it, and the table marks the cell."""
    return method == "bootstrap" and M.size > 1 and (bool((M == 1).all()) or bool((M == 0).all()))


def interval(M: np.ndarray, method: str) -> tuple[float, float]:
    """(low, high): over examples, and over bundles (rows) too when there are several."""
    if method == "wilson" or unanimous(M, method):
        if method == "wilson" and M.shape[0] != 1:
            raise StatsError(f"a Wilson interval is for one bundle per cell, this one has {M.shape[0]}; "
                             "use interval: bootstrap (it resamples seeds too)")
        from scipy import stats

        k = _successes(M[0])  # unanimous: every seed is the same, and n is the examples (seeds are not a sample of them)
        ci = stats.binomtest(k, M.shape[1]).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
        return float(ci.low), float(ci.high)
    return _bootstrap(_mean(M), list(M.shape))


def _successes(row: np.ndarray) -> int:
    if not all(v in (0.0, 1.0) for v in row):
        raise StatsError("a Wilson interval or McNemar test needs 0/1 values per example; use bootstrap")
    return int(row.sum())


def paired(M: np.ndarray, B: np.ndarray, test: str) -> tuple[bool, dict[str, float]]:
    """Compare a cell (M) with the baseline's cell (B) over the same examples (columns aligned):
    -> (significant, detail) where detail is the p-value (McNemar) or the difference's interval."""
    if test == "mcnemar":
        if M.shape[0] != 1 or B.shape[0] != 1:
            raise StatsError("McNemar compares one bundle with one; a cell aggregates several: "
                             "use test: paired_bootstrap")
        from scipy import stats

        _successes(M[0]), _successes(B[0])
        b = int(((M[0] == 1) & (B[0] == 0)).sum())
        c = int(((M[0] == 0) & (B[0] == 1)).sum())
        p = float(stats.binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0
        return bool(p < 1 - CONFIDENCE), {"p": p, "b": b, "c": c}
    ma, mb = _mean(M), _mean(B)
    low, high = _bootstrap(lambda sa, sb, e: ma(sa, e) - mb(sb, e), [M.shape[0], B.shape[0], M.shape[1]])
    return bool(low > 0 or high < 0), {"low": low, "high": high}


def ci_text(values: Sequence[float], method: str = "bootstrap", fmt: str = "%.3f") -> str:
    """'mean [low, high] (n=N)' of one list of per-example values (the worksheet `ci` post-processor)."""
    import numpy as np

    M = np.array([values], dtype=float)
    low, high = interval(M, method)
    how = ", Wilson: every example scored the same" if unanimous(M, method) else ""
    return f"{fmt % M.mean()} [{fmt % low}, {fmt % high}] (n={M.shape[1]}{how})"

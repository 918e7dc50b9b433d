"""Training curves: numbers per step read from a bundle's own files, for `% display graph`, the web
UI's bundle page and paper figures.

A file is read as records (dicts): a `.json` file holding a list of them (Hugging Face's
`log_history.json`) or an object with a `log_history` list (`trainer_state.json`), or a `.jsonl`
file (one per line). A series is one key (`loss`, `eval_exact`) against another (`step`), over the
records holding both as numbers. A fine-tune writes log_history.json only when it ends; while it
runs, the newest checkpoint's trainer_state.json holds the same history up to that checkpoint, so
a running bundle's `/log_history.json` is read from there (marked live): the curve grows at each
checkpoint (each --eval-steps in bundles.finetune).
"""

import glob
import json
import math
import os
import re

from ..errors import CodaliteError
from ..hashing import NotRegular, open_regular

MAX_RECORDS = 10_000  # as genpaths (CodaLab's cap): a worksheet never reads an unbounded file
MAX_BYTES = 64 << 20
LIVE_FALLBACK = "log_history.json"
# keys of a Hugging Face log that are bookkeeping, not curves
NOT_CURVES = re.compile(r"^(step|epoch|grad_norm|learning_rate|total_flos|train_.*|.*_runtime|.*_per_second|"
                        r"eval_gen_len|eval_gen_hit_limit|num_input_tokens_seen)$")


class Records:
    """Records read from one bundle file; live: read from a running bundle (it may grow)."""

    def __init__(self, rows, live=False, source=None, truncated=False):
        self.rows, self.live, self.source, self.truncated = rows, live, source, truncated


def is_records_path(path):
    return path.endswith((".json", ".jsonl"))


def _read(full):
    """The bytes of a regular file, at most MAX_BYTES. Opened without blocking and checked once open: a
    running bundle can swap its log for a FIFO after path_in looked, and a FIFO would hang the reader."""
    try:
        f = open_regular(full)
    except NotRegular:
        raise CodaliteError(f"{os.path.basename(full)} is not a regular file; not graphed") from None
    with f:
        if os.fstat(f.fileno()).st_size > MAX_BYTES:
            raise CodaliteError(f"{os.path.basename(full)} is over {MAX_BYTES >> 20} MiB; not graphed")
        return f.read(MAX_BYTES + 1)


def _load(full):
    text = _read(full).decode(errors="replace")
    # RecursionError: JSON nested deeper than the parser goes ([[[[...) is no log either
    if full.endswith(".jsonl"):
        rows = []
        for line in text.splitlines():
            try:
                rows.append(json.loads(line))
            except (ValueError, RecursionError):
                continue  # a half-written last line of a running bundle
    else:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            return None
        rows = data.get("log_history") if isinstance(data, dict) else data
    if not isinstance(rows, list):
        return None
    rows = [r for r in rows if isinstance(r, dict)]
    return rows[:MAX_RECORDS], len(rows) > MAX_RECORDS


def newest_checkpoint_state(store, bundle):
    """checkpoints/checkpoint-N/trainer_state.json with the largest N that parses (a checkpoint being
    written may be incomplete), inside the bundle; None if there is none."""
    try:
        root = store.path_in(bundle, "checkpoints")
    except CodaliteError:
        return None

    def step(p):
        m = re.search(r"checkpoint-(\d+)$", os.path.dirname(p))
        return int(m.group(1)) if m else -1
    for path in sorted(glob.glob(os.path.join(glob.escape(root), "checkpoint-*", "trainer_state.json")),
                       key=step, reverse=True):
        rel = os.path.relpath(path, store.location(bundle))
        try:
            full = store.path_in(bundle, rel)  # realpath check: no link out of the bundle
            loaded = _load(full)
        except (CodaliteError, OSError):
            continue
        if loaded is not None:
            return rel, loaded
    return None


def read_records(store, bundle, path):
    """Records of bundle/path, or None when there are none (missing, not a list of objects)."""
    path = path.lstrip("/")
    try:
        full = store.path_in(bundle, path)
        if os.path.isfile(full):
            loaded = _load(full)
            if loaded is not None:
                return Records(loaded[0], live=not bundle.final, source=path, truncated=loaded[1])
            return None
    except (CodaliteError, OSError):
        pass
    if os.path.basename(path) == LIVE_FALLBACK and not bundle.final:
        found = newest_checkpoint_state(store, bundle)
        if found:
            rel, (rows, truncated) = found
            return Records(rows, live=True, source=rel, truncated=truncated)
    return None


def number(v):
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        return None
    try:
        f = float(v)
    except (ValueError, OverflowError):  # OverflowError: an integer past float's range (10**400)
        return None
    return f if math.isfinite(f) else None


def points(rows, x, y):
    """[(x, y)] over the records holding both as finite numbers, sorted by x (a resumed run's
    history is already in order; a duplicated step keeps its last value)."""
    out = {}
    for r in rows:
        a, b = number(r.get(x)), number(r.get(y))
        if a is not None and b is not None:
            out[a] = b
    return sorted(out.items())


def curve_keys(rows):
    """The keys worth drawing in a log (loss, eval_* metrics), in first-seen order."""
    keys = {}
    for r in rows:
        for k, v in r.items():
            if not NOT_CURVES.match(k) and number(v) is not None:
                keys.setdefault(k, None)
    return list(keys)


def default_panels(rows):
    """(losses, metrics) of a Hugging Face log: two graphs, as their scales differ."""
    keys = curve_keys(rows)
    losses = [k for k in keys if k.endswith("loss")]
    return losses, [k for k in keys if k not in losses]

"""What every step shares: an argparse parser with one-line errors, file helpers, torch threads.

Steps talk to the engine only through files, so these helpers are the whole contract:
arguments in, `args.json` / `metrics.json` / `*.jsonl` out, one-line errors (exit 2) for bad usage.
"""
import argparse
import json
import os
import re
import sys
from pathlib import Path


class ArgParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (`prog: error: ...`, exit 2), not usage + error."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def existing_path(s):
    """argparse type: a file or folder that must exist (checked before any heavy import)."""
    if not Path(s).exists():
        raise argparse.ArgumentTypeError(f"no such file or directory: {s}")
    return s


def model_ref(s):
    """argparse type: a local model folder, or a hub id such as `org/name` (machines with a hub)."""
    if Path(s).exists() or (re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", s) and not Path(s.split("/")[0]).exists()):
        return s
    raise argparse.ArgumentTypeError(f"no such file or directory: {s}")


def csv_list(s):
    return [x.strip() for x in s.split(",") if x.strip()]


def int_list(s):
    try:
        return [int(x) for x in csv_list(s)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}")


def read_jsonl(path):
    """The JSON objects of a .jsonl file; a line that is not one (or bytes that are not UTF-8) is a
    one-line error naming the file and line, exit 2, not a traceback."""
    rows = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
                if line.strip():
                    rows.append(json.loads(line))
            except ValueError as e:  # UnicodeDecodeError and JSONDecodeError both are
                fail(f"bundles.{Path(sys.argv[0]).stem}", f"{path}:{n}: not a JSON line ({e})")
            if line.strip() and not isinstance(rows[-1], dict):
                fail(f"bundles.{Path(sys.argv[0]).stem}", f"{path}:{n}: expected a JSON object")
    return rows


def write_jsonl(path, rows):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def write_json(path, obj):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def save_args(out, args, **extra):
    """args.json: the step's resolved arguments, so a bundle says how it was made."""
    write_json(Path(out) / "args.json", {**vars(args), **extra})


def set_threads():
    """Use exactly the threads the engine granted (OMP_NUM_THREADS = --request-cpus).

    Two torch processes that each take every core run ~6x slower on a small machine.
    """
    import torch
    n = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if n > 0:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def quiet():
    """No per-file progress bars from transformers in a step's stderr (it is kept in the bundle)."""
    from transformers.utils import logging
    logging.disable_progress_bar()


def log(*parts):
    print(*parts, flush=True)


def fail(prog, message):
    """A one-line error for problems found after parsing (bad file contents...), exit 2."""
    sys.stderr.write(f"{prog}: error: {message}\n")
    sys.exit(2)

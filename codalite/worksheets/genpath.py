"""Genpaths and post-processors: how a schema column gets its value from a bundle.

A genpath is a bundle field (uuid, command, state, ...), a metadata key (name, time, exitcode, ...),
a special (summary, args, dependencies, dependencies/<key>, owner, host_worksheets), or a file in
the bundle: `/stats.json:train/acc` reads stats.json (TSV, else JSON, else YAML, else text) and
walks the keys. Post-processors follow, separated by ' | ': duration, date, size, %printf, s/a/b,
[a:b], str, key k, add k v. All of it follows codalab/lib/worksheet_util.py and rest/interpret.py.
One extension, `ci`: a 95% interval and n from per-example values (see ci_func).
"""

import datetime
import getpass
import json
import os
import re

import regex
import yaml

from .. import spec
from ..bundle import READY
from ..errors import UsageError
from ..hashing import open_regular

NONE = "<none>"
MAX_LINES = 10000  # CodaLab reads at most this many lines of a file for a genpath
MAX_EXPANDED = 1_000_000  # items a YAML file's aliases may expand to (ten lines of them make 10**10)
FUNC_DELIM = " | "
REGEX_SECONDS = 1  # an `s/old/new` post-processor per value: past it the cell says so


def is_file_genpath(genpath):
    return genpath.startswith("/")


# --- formatting, as codalab/lib/formatting.py ------------------------------------------------------

def duration_str(s):
    m = int(s // 60)
    if m == 0:
        return "%.1fs" % s
    s -= m * 60
    h = int(m // 60)
    if h == 0:
        return "%dm%ds" % (m, s)
    m -= h * 60
    d = int(h // 24)
    if d == 0:
        return "%dh%dm" % (h, m)
    h -= d * 24
    y = int(d // 365)
    return "%dd%dh" % (d, h) if y == 0 else "%dy%dd" % (y, d - y * 365)


def size_str(size):
    for unit in ("", "k", "m", "g", "t"):
        if size < 100 and size != int(size):
            return "%.1f bytes" % size if unit == "" else "%.1f%s" % (size, unit)
        if size < 1024:
            return "%d bytes" % size if unit == "" else "%d%s" % (size, unit)
        size /= 1024.0
    return "%dt" % size


def date_str(ts):
    # CodaLab stores whole seconds; ours are floats, so drop the fraction to print the same text
    return datetime.datetime.fromtimestamp(int(ts)).isoformat(sep=" ")


def apply_func(func, arg):
    """Apply a post-processor chain. A function that fails leaves the value as it was (CodaLab)."""
    if func is None:
        return arg
    if isinstance(arg, dict):
        arg = dict(arg)  # `add k v` must not change a cached file's contents
    try:
        for f in func.split(FUNC_DELIM):
            if f == "str":
                arg = str(arg)
            elif f == "date":
                arg = date_str(float(arg)) if arg is not None else None
            elif f == "duration":
                arg = duration_str(float(arg)) if arg is not None else None
            elif f == "size":
                arg = size_str(float(arg)) if arg is not None else None
            elif f.startswith("%"):
                try:
                    spec.check_printf(f)
                except UsageError as e:
                    return f"<{e}>"
                arg = (f % float(arg)) if arg is not None else None
            elif f.startswith("s/"):
                tokens = f.replace("\\/", "\0").split("/")
                if len(tokens) != 3:
                    return "<invalid regex: %s>" % f
                try:  # `regex`, not re: a pattern that backtracks (s/(a|aa)+$/x) must not hold a thread for hours
                    arg = regex.sub(tokens[1].replace("\0", "/"), tokens[2].replace("\0", "/"), arg,
                                    timeout=REGEX_SECONDS)
                except TimeoutError:
                    return f"<{f}: the regex ran for more than {REGEX_SECONDS:g} s>"
            elif f.startswith("["):
                m = re.match(r"\[(.*):(.*)\]", f)
                if not m:
                    return "<invalid function: %s>" % f
                arg = arg[int(m.group(1) or 0):int(m.group(2) or len(arg))]
            elif f.startswith("add "):
                if not isinstance(arg, dict):
                    return "arg (%s) not a dictionary" % type(arg)
                k, v = f.split(" ")[1:]
                arg[k] = v
            elif f.startswith("key "):
                arg = {f.split(" ")[1]: arg}
            elif f == "ci" or f.startswith("ci "):
                arg = ci_func(f, arg)
            else:
                return "<invalid function: %s>" % f
        return arg
    except Exception:
        return arg


def ci_func(f, arg):
    """codalite's extension: `ci [COLUMN] [KEY=VALUE ...] [bootstrap|wilson] [%FMT]` turns per-example
    values into 'mean [low, high] (n=N)', a 95% interval: percentile bootstrap over the examples
    (default) or Wilson's binomial interval (0/1 values). The value is a JSON-lines file
    (`/per_example.jsonl`: rows, COLUMN picked, KEY=VALUE keeps matching rows) or a list of numbers.
    A genpath reads at most 10,000 lines, so n tops out there; paper tables read whole files."""
    from ..paper import stats

    tokens = f.split()[1:]
    fmt = next((t for t in tokens if t.startswith("%")), "%.3f")
    method = next((t for t in tokens if t in stats.METHODS), "bootstrap")
    where = dict(t.split("=", 1) for t in tokens if "=" in t and not t.startswith("%"))
    column = next((t for t in tokens if not t.startswith("%") and t not in stats.METHODS and "=" not in t), None)
    try:
        spec.check_printf(fmt)
        if isinstance(arg, str):
            arg = stats.parse_jsonl(arg, "ci")
        elif isinstance(arg, dict):  # a one-line file parses as JSON
            arg = [arg]
        if isinstance(arg, list) and arg and all(isinstance(x, dict) for x in arg):
            if column is None:
                return "<ci: name the column of per-example values, e.g. ci exact>"
            values = list(stats.select(arg, column, where).values())
        elif isinstance(arg, list) and arg and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in arg):
            values = arg
        else:
            return "<ci: needs per-example rows or a list of numbers>" if arg is not None else None
        return stats.ci_text(values, method, fmt)
    except (stats.StatsError, UsageError, TypeError, ValueError) as e:
        return f"<ci: {e}>"


def display(value):
    """A computed value as the text a table shows."""
    if type(value) is str:
        return value
    if value is None:
        return NONE
    if isinstance(value, dict) and "text" in value:
        return str(value["text"])
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, bool):
        return str(value)
    return str(value)


# --- bundle genpaths -----------------------------------------------------------------------------

def _render_dep(dep, names, anonymous, show_key=True, show_uuid=False):
    parent_name = names(dep.parent_uuid)
    if show_key and not anonymous:
        a = dep.child_path + ":" if show_uuid or dep.child_path != parent_name else ":"
    else:
        a = ""
    b = dep.parent_uuid if show_uuid else (parent_name or "")
    return a + b + ("/" + dep.parent_path if dep.parent_path else "")


def codalab_quote(token):
    """CodaLab's formatting.quote, which `args` uses (not a shell's quoting: `$x` stays unquoted)."""
    if " " in token or '"' in token:
        return '"' + token.replace('"', '\\"') + '"'
    return token


def bundle_genpath(bundle, genpath, names, host_worksheets=None):
    """The value of a non-file genpath for a bundle. names(uuid) -> a parent's name or None."""
    deps = bundle.dependencies
    anonymous = len(deps) == 1 and deps[0].child_path == ""
    if genpath == "dependencies":
        return ",".join(_render_dep(d, names, anonymous) for d in deps)
    if genpath.startswith("dependencies/"):
        key = genpath.split("/", 1)[1]
        for d in deps:
            if d.child_path == key:
                return _render_dep(d, names, anonymous, show_key=False)
        return NONE
    if genpath == "args":
        if bundle.bundle_type not in ("make", "run"):
            return None
        args = [bundle.bundle_type] + [_render_dep(d, names, anonymous, show_uuid=True) for d in deps]
        if bundle.command:
            args.append(codalab_quote(bundle.command))
        for key, value in sorted(bundle.metadata.items()):  # CodaLab's server gives them sorted by key
            if key.startswith("request_") and value:
                flag = "--" + key.replace("_", "-")
                args += [flag] if isinstance(value, bool) else [flag, codalab_quote(str(value))]
        return " ".join(args)
    if genpath == "summary":
        return summary(bundle, names)
    if genpath in ("owner", "owner_name"):
        return getpass.getuser()  # a local store has one owner: whoever runs it
    if genpath == "permission":
        return "all"  # CodaLab's permission_str for the owner, who has every permission here
    if genpath == "metadata":
        return dict(bundle.metadata)  # the whole metadata dict, as CodaLab's bundle_info['metadata']
    if genpath == "host_worksheets":
        if host_worksheets is None:
            return None
        return " ".join(f"{name}({uuid})" for uuid, name in host_worksheets(bundle.uuid))
    value = getattr(bundle, genpath, None) if genpath in FIELDS else None
    if value is not None:
        return value
    return bundle.metadata.get(genpath)


FIELDS = ("uuid", "bundle_type", "command", "state", "is_dir", "content_hash", "memo_key")


def summary(bundle, names):
    if bundle.bundle_type in ("dataset", "program"):
        return "[uploaded]" if bundle.state == READY else ""
    if bundle.bundle_type == "make":
        parts = []
        for d in bundle.dependencies:
            parent = names(d.parent_uuid)
            key = d.child_path or parent
            parts.append("%s{%s%s}" % (key, (parent or NONE) + ":" if key != parent else "", d.parent_uuid[:4]))
        text = "= " + " ".join(parts)
    else:
        text = "! " + (bundle.command or "")
    return text[:1024] + "..." if len(text) > 1024 else text


# --- file genpaths -------------------------------------------------------------------------------

def split_file_genpath(genpath):
    """'/stats.json:train/acc' -> ('stats.json', 'train/acc'); one ':' at most, as CodaLab."""
    path = genpath[1:]
    if ":" in path:
        subpath, key = path.split(":", 1)
        return subpath, key
    return path, None


def parse_contents(lines):
    """A file's first lines -> TSV dict, JSON, YAML or plain text (CodaLab's order)."""
    if not lines:
        return ""
    if all("\t" in x for x in lines):
        info = {}
        for x in lines:
            kv = x.strip().split("\t", 1)
            if len(kv) == 2:
                info[kv[0]] = kv[1]
        return info
    text = "".join(lines)
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth ([[[[...)
        pass
    try:
        info = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):
        return text
    if "*" in text and _expanded(info) > MAX_EXPANDED:  # aliases: shared lists, expanded when shown
        return f"<YAML whose aliases expand past {MAX_EXPANDED:,} items: not shown>"
    return info


def _expanded(value):
    """How many items showing value builds (an alias's target counts each time it is reached), counted
    up to just past MAX_EXPANDED (a list that holds itself never ends); the stack never holds more."""
    stack, n = [value], 0
    while stack and n <= MAX_EXPANDED:
        v = stack.pop()
        if isinstance(v, (dict, list)):
            n += len(v)
            stack.extend(v.values() if isinstance(v, dict) else v)
    return n


def walk(info, key):
    if key is None:
        return info
    for k in key.split("/"):
        if isinstance(info, dict):
            info = info.get(k)
        elif isinstance(info, list):
            try:
                info = info[int(k)]
            except (IndexError, ValueError):
                info = None
        else:
            info = None
        if info is None:
            break
    return info


def head_lines(path, max_lines):
    with open_regular(path) as f:  # a FIFO a run made must not block the render
        # as CodaLab's summarize_file: at most 1 KiB per line; a file longer than that is cut there
        # and its cut last line dropped, a whole file's last line gets the newline it lacks
        limit = max_lines * 1024
        size = os.fstat(f.fileno()).st_size
        data = f.read(min(size, limit))  # read(n) allocates n bytes up front: no more than the file holds
    lines = data.decode(errors="replace").splitlines(True)[:max_lines]
    if lines and not lines[-1].endswith("\n"):
        if size > limit:
            lines.pop()
        else:
            lines[-1] += "\n"
    return lines


def dependency_target(store, bundle, subpath):
    """A path missing from a bundle whose first part is a dependency's key is that dependency's
    path, as CodaLab's download_manager.get_target_info reads `run/KEY/file`: (parent, path) or None."""
    head, _, rest = subpath.partition("/")
    for dep in bundle.dependencies:
        if dep.child_path == head:
            parent = store.get_many([dep.parent_uuid])
            if not parent:
                return None
            return parent[0], "/".join(p for p in (dep.parent_path, rest) if p)
    return None


class FileReader:
    """Reads and parses files in bundles for genpaths. Finished (ready) bundles never change, so
    what was read from them is kept for the life of the process: a warm render reads no files."""

    _ready_cache = {}  # store home -> {(uuid, subpath): parsed contents}
    MAX_CACHED = 200_000

    def __init__(self, store):
        self.store = store
        self.ready = self._ready_cache.setdefault(store.home, {})
        self.cache = {}  # per render: bundles still running
        self.bundles = os.path.realpath(os.path.join(store.home, "bundles"))

    def info(self, bundle, subpath, depth=0):
        key = (bundle.uuid, subpath)
        ready = bundle.state == READY
        cache = self.ready if ready else self.cache
        try:
            return cache[key]
        except KeyError:
            pass
        if ready:
            base = f"{self.bundles}/{bundle.uuid}"
        else:
            where = self.store.location(bundle)
            base = os.path.join(os.path.realpath(os.path.dirname(where)), bundle.uuid)
        info = None
        # the path must resolve inside the bundle: a run's output may hold `leak -> /etc/passwd`
        # (one realpath per file; a ready bundle's files are read once per process)
        real = os.path.realpath(f"{base}/{subpath}")
        if real == base or real.startswith(base + os.sep):
            try:
                info = parse_contents(head_lines(real, MAX_LINES))
            except FileNotFoundError:  # not in the bundle: maybe in one of its dependencies
                target = dependency_target(self.store, bundle, subpath) if depth < 32 else None
                info = None if target is None else self.info(*target, depth + 1)
            except OSError:  # a directory, not a regular file, unreadable: no value
                info = None
        if ready and len(cache) > self.MAX_CACHED:
            cache.clear()
        cache[key] = info
        return info

    def value(self, bundle, genpath):
        subpath, key = split_file_genpath(genpath)
        return walk(self.info(bundle, subpath), key)

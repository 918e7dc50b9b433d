"""`verify`: re-derive every number of exported tables from the store; `trace`: the chain of
executions behind one number. Both read the provenance JSON written beside each table."""

import csv
import glob
import json
import os
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, ValidationError

from .. import recipes
from ..bundle import READY
from ..errors import CodaliteError, UsageError
from .declare import TableSpec
from .declare import FigureSpec
from .figure import compute as compute_figure
from .figure import figure_hash, read_series, series_hash, sha256
from .latex import csv_text, pm, tex
from .table import aggregate, compute, read_values

SUFFIX = ".provenance.json"


def provenance_files(path, allow_none=False):
    if os.path.isdir(path):
        found = sorted(glob.glob(os.path.join(path, "*" + SUFFIX)))
        if not found and not allow_none:
            raise UsageError(f"no exported table (*{SUFFIX}) in {path}; run `codalite export` first")
        return found
    if not os.path.isfile(path):
        raise UsageError(f"no such file or directory: {path}")
    return [path]


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Dep(_Loose):
    key: str
    parent_uuid: str
    parent_path: str = ""


class _Ancestor(_Loose):
    uuid: str
    missing: bool = False
    name: str | None = None
    bundle_type: str = ""
    state: str | None = None
    command: str | None = None
    dependencies: list[_Dep] = []
    content_hash: str | None = None
    environment: str | None = None


class _Input(_Loose):
    uuid: str
    name: str | None = None
    content_hash: str | None = None


class _Bundle(_Loose):
    uuid: str
    name: str | None = None
    content_hash: str | None = None
    value: Any = None
    inputs: list[_Input] = []
    ancestors: list[_Ancestor] = []


class _Cell(_Loose):
    row: str
    column: str
    text: str
    n: int
    bundles: list[_Bundle]


class _Provenance(_Loose):
    declaration: dict
    cells: list[_Cell]
    files: dict[str, str] = {}  # sha256 of each written file (exports before it have none)


class ProvenanceError(CodaliteError):
    def __init__(self, path, detail):
        super().__init__(f"{path}: not a provenance file ({detail}); re-export the table with `codalite export`")


def load(path):
    """(provenance dict, TableSpec) of a .provenance.json; its shape is checked here, so that a file
    edited by hand or cut short is one clear error rather than a crash deep in verify or trace."""
    raw = read_json(path)
    try:
        prov = _Provenance.model_validate(raw).model_dump()  # defaults filled in: every key is there
    except ValidationError as e:
        raise ProvenanceError(path, first_error(e)) from None
    return prov, declaration(path, prov, TableSpec)


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise ProvenanceError(path, f"cannot read it: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ProvenanceError(path, f"not UTF-8 text at byte {e.start}") from None
    except json.JSONDecodeError as e:
        raise ProvenanceError(path, f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None


def first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc']) or 'top level'}: {err['msg'].lower()}"


def declaration(path, prov, kind):
    """The recorded declaration, checked as export checks it now (a `.limit=` exported by an older
    codalite is refused here too, not verified as if the table covered every run)."""
    try:
        return kind.model_validate(prov["declaration"])
    except ValidationError as e:
        if e.errors()[0]["loc"] == ("bundles",) and e.errors()[0]["type"] == "value_error":
            raise CodaliteError(f"{path}: its declaration is refused now ({first_error(e)}); fix the declaration "
                                "and re-export") from None
        raise ProvenanceError(path, f"declaration.{first_error(e)}") from None


class Checked(NamedTuple):
    cells: int  # table cells
    lines: int  # figure lines
    problems: list[str]


def verify(store, path) -> Checked:
    """Every table and figure exported into path (a directory, or one .provenance.json): how many table
    cells and figure lines were checked, and the problems, each naming its table and cell (or figure
    and line)."""
    problems: list[str] = orphans(path) if os.path.isdir(path) else []
    cells = lines = 0
    plans: dict = {}
    checked_any = bool(problems)  # whether anything under path was checked (an orphan counts)
    for f in provenance_files(path, allow_none=bool(problems)):
        try:  # one broken or foreign file is one problem: the others are still checked
            if is_figure(f):
                n, found = verify_figure(store, f, plans)
                lines += n
            else:
                prov, spec = load(f)
                n, found = verify_table(store, f, prov, spec, plans)
                cells += n
        except CodaliteError as e:
            found = [str(e)]
        else:
            checked_any = True
        problems += found
    if not checked_any:  # nothing here could be checked (another tool's files, or all broken): one line
        raise CodaliteError(problems[0] if len(problems) == 1 else
                            f"nothing under {path} could be checked: {'; '.join(problems)}")
    return Checked(cells, lines, problems)


def counted(cells, lines):
    """'4 cells', '6 figure lines', '4 cells and 6 figure lines': what verify checked, each by its name."""
    parts = ([f"{cells} cell{'s' * (cells != 1)}"] if cells or not lines else []) + \
        ([f"{lines} figure line{'s' * (lines != 1)}"] if lines else [])
    return " and ".join(parts)


def orphans(directory):
    """Files that `codalite export` wrote into directory whose provenance is gone: nothing would
    check their numbers, and a verify that skipped them would pass. A user's own files are left alone."""
    from .export import CSV_HEADER, OLD_CSV_HEADERS
    from .figure import CSV_HEADER as FIGURE_CSV_HEADER

    out = []
    for f in sorted(os.listdir(directory)):
        stem, ext = os.path.splitext(f)
        if ext not in (".tex", ".csv") or os.path.exists(os.path.join(directory, stem + SUFFIX)):
            continue
        try:
            with open(os.path.join(directory, f), encoding="utf-8") as fh:
                first = fh.readline().rstrip("\r\n")
        except (OSError, UnicodeDecodeError):
            continue
        if first.startswith("% generated by `codalite export`") or first in (
                ",".join(CSV_HEADER), ",".join(FIGURE_CSV_HEADER), *(",".join(h) for h in OLD_CSV_HEADERS)):
            out.append(f"{stem}: {f} was written by `codalite export` but {stem}{SUFFIX} is missing: "
                       "its numbers cannot be checked; re-export")
    return out


def verify_table(store, path, prov, spec, plans=None):
    problems = []
    cells = prov["cells"]
    plans = {} if plans is None else plans
    for cell in cells:
        where = f"{spec.name} [{cell['row']}, {cell['column']}]"
        problems += [f"{where}: {p}" for p in check_cell(store, spec, cell, plans)]
    try:
        now = compute(store, spec)
        current = {(now.label(r), now.label(c)): set(cell.uuids) for (r, c), cell in now.cells.items()}
        fresh = {(now.label(r), now.label(c)): cell for (r, c), cell in now.cells.items()}
    except CodaliteError as e:  # a TableError, or a keyword naming a bundle now gone
        current = None
        problems.append(f"{spec.name}: the declaration no longer computes: {e}")
    if current is not None:
        recorded = {(c["row"], c["column"]): {b["uuid"] for b in c["bundles"]} for c in cells}
        for key in sorted(set(current) | set(recorded)):
            where = f"{spec.name} [{key[0]}, {key[1]}]"
            if key not in recorded:
                problems.append(f"{where}: stale: the store now has this cell, the exported table lacks it; re-export")
            elif key not in current:
                problems.append(f"{where}: stale: the declaration no longer selects any bundle for it; re-export")
            elif current[key] != recorded[key]:
                new = ", ".join(sorted(current[key] - recorded[key])) or "-"
                gone = ", ".join(sorted(recorded[key] - current[key])) or "-"
                problems.append(f"{where}: stale: the declaration now selects other bundles "
                                f"(new: {new}; no longer: {gone}); rerun what is missing and re-export")
            elif spec.examples:
                problems += [f"{where}: {p}" for p in check_statistics(fresh[key], next(
                    c for c in cells if (c["row"], c["column"]) == key))]
    in_files = check_files(path, spec, cells)
    named = {f"{spec.name}.{ext}" for ext in ("csv", "tex") if any(f"{spec.name}.{ext} " in p for p in in_files)}
    fresh = rerender(store, now, prov) if current is not None and not problems + in_files else {}
    problems += in_files + edited_files(path, prov, fresh, skip=named)  # one line per edited file
    problems += [f"{spec.name}: {p}" for p in declaration_drift(prov, spec)]
    return len(cells), problems


def rerender(store, fresh, prov):
    """{file name: text} that export writes from the store as it is now (the provenance aside)."""
    from .export import render

    files = render(store, fresh, prov.get("base_url") or "", prov.get("source") or "")
    return {f: text for f, text in files.items() if not f.endswith(SUFFIX)}


def edited_files(path, prov, fresh, skip=frozenset()):
    """Each written file is byte for byte what export wrote (the sha256 the provenance recorded) and,
    when the store still gives the same numbers, what export writes now (a provenance edited to
    match an edited file does not pass either): a bold moved, a row added, a caption changed."""
    out, base = [], os.path.dirname(path)
    name = prov.get("table") or prov.get("figure") or os.path.basename(path)[: -len(SUFFIX)]
    recorded = prov.get("files") or {}
    for fname in sorted((set(recorded) | set(fresh)) - set(skip)):
        full = os.path.join(base, os.path.basename(fname))
        try:
            with open(full, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError):
            out.append(f"{name}: {fname} is missing or unreadable; re-export")
            continue
        if fname in recorded and sha256(text) != recorded[fname]:
            out.append(f"{name}: {fname} is not the file export wrote (edited since); re-export")
        elif fname in fresh and text != fresh[fname]:
            out.append(f"{name}: {fname} is not what export writes from the store now (edited by hand, or "
                       "exported by another codalite version); re-export")
    return out


def declaration_drift(prov, spec):
    """The declaration file the table or figure was exported from, edited since: the paper shows
    numbers of a declaration that is no longer the author's (a moved file is not checked)."""
    from .declare import load as load_declarations

    source = prov.get("source") or ""
    if not source or not os.path.isfile(source):
        return []
    try:
        now = next((d for d in load_declarations(source) if d.name == spec.name), None)
    except CodaliteError as e:
        return [f"stale: its declaration no longer loads: {e}"]
    if now is None:
        return [f"stale: {source} no longer declares {spec.name}; re-export or remove its files"]
    if type(now) is not type(spec) or now.model_dump() != spec.model_dump():
        changed = sorted(k for k, v in now.model_dump().items() if spec.model_dump().get(k) != v) or ["kind"]
        return [f"stale: its declaration in {source} changed since export ({', '.join(changed)}); re-export"]
    return []


def recorded_bundle(store, rec):
    """-> (bundle, None) while a provenance record's bundle is still ready with the recorded contents,
    else (None, the problem)."""
    b = store.get_or_none(rec["uuid"])
    if b is None:
        return None, f"bundle {rec['uuid']} ({rec['name']}) is gone from the store"
    if b.state != READY or b.content_hash != rec["content_hash"]:
        return None, (f"bundle {b.uuid} ({b.name}) changed: {b.state}, content hash {b.content_hash} "
                      f"(recorded {rec['content_hash']})")
    return b, None


def staleness(store, plans, b, rec):
    """What would make a recorded bundle stale: a newer version of an input, or its recipe rerunning it."""
    out = [f"stale: input {inp['name']} ({inp['uuid']}) has a newer version {newer.uuid}; rerun on it and re-export"
           for inp in rec["inputs"] if (newer := newer_version(store, inp))]
    return out + recipe_staleness(store, plans, b)


def check_cell(store, spec, cell, plans):
    out, values = [], []
    for rec in cell["bundles"]:
        b, problem = recorded_bundle(store, rec)
        if b is None:
            out.append(problem)
            continue
        try:
            (_, _, _, _, value), = read_values(store, spec, [b])
        except CodaliteError as e:
            out.append(str(e))
            continue
        if value != rec["value"]:
            out.append(f"bundle {b.uuid} ({b.name}) now gives {value!r}, the table recorded {rec['value']!r}")
        values.append((b.uuid, value))
        out += staleness(store, plans, b, rec)
    if values and len(values) == len(cell["bundles"]) and spec.interval == "none":  # else: check_statistics
        _, _, text = aggregate(spec, values)
        if text != cell["text"]:
            out.append(f"the table says {cell['text']}, the store gives {text}")
    return out


def check_statistics(now, cell):
    """The interval, n and baseline test re-derived from the per-example files as they are now."""
    out = []
    if now.text != cell["text"]:
        out.append(f"the table says {cell['text']}, the per-example files now give {now.text}")
    if now.n_examples != cell.get("n_examples"):
        out.append(f"n: the table says {cell.get('n_examples')} examples, the per-example files now have {now.n_examples}")
    if now.differs != cell.get("differs"):
        out.append(f"the baseline test now says {'differs' if now.differs else 'does not differ'}, "
                   f"the table says {'differs' if cell.get('differs') else 'does not differ'}")
    return out


def recipe_staleness(store, plans, bundle):
    """What the recipe that made a bundle (tag `recipe:<name>`, recipe file cl_recipes/<name>.yaml in
    the project) now plans for its cell: stale when its code, data or environment changed since,
    even before anything was rerun. plans caches one plan per recipe."""
    tags = bundle.metadata.get("tags") or []
    name = next((t[len("recipe:"):] for t in tags if t.startswith("recipe:")), None)
    if name is None:
        return []
    profile = next((t[len("profile:"):] for t in tags if t.startswith("profile:")), None)  # recipe run --profile
    if (name, profile) not in plans:
        path = os.path.join(os.path.dirname(store.home), "cl_recipes", f"{name}.yaml")
        try:
            r = recipes.load(path, profile) if os.path.exists(path) else None
            plans[name, profile] = r and (path, {c.name: c for c in recipes.plan(store, r, os.environ.get("PATH", ""))})
        except CodaliteError as e:
            plans[name, profile] = (path, e)
    if not plans[name, profile]:
        return []
    path, cells = plans[name, profile]
    if isinstance(cells, CodaliteError):
        return [f"cannot check recipe {name}: {cells}"]
    cell = cells.get(bundle.name)
    if cell is None or (cell.status == "done" and cell.bundle.memo_key == bundle.memo_key):
        return []
    return [f"stale: recipe {name} now plans {bundle.name} as {cell.status} (its code, data or environment "
            f"changed); run `codalite recipe run {os.path.relpath(path)}{' --profile ' + profile if profile else ''}` "
            "and re-export"]


def newer_version(store, inp):
    """A ready upload with the same name, newer, with other contents: a new version of code or data."""
    old = store.get_or_none(inp["uuid"])
    if old is None:
        return None
    return store.newer_upload(inp["name"], old.id, inp["content_hash"])


def check_files(path, spec, cells):
    """The exported files still say what the provenance says (nobody edited a number by hand)."""
    out = []
    base = path[: -len(SUFFIX)]
    try:
        with open(base + ".csv", newline="", encoding="utf-8") as f:
            rows = {(r["row"], r["column"]): r for r in csv.DictReader(f)}
        for r in rows.values():
            r["n"] = int(r["n"])
    except OSError:
        return [f"{spec.name}: {os.path.basename(base)}.csv is missing"]
    except (KeyError, TypeError, ValueError) as e:  # edited by hand: not the CSV that export wrote
        return [f"{spec.name}: {os.path.basename(base)}.csv is not the table export wrote ({type(e).__name__}: {e}); "
                "re-export it"]
    try:
        with open(base + ".tex", encoding="utf-8") as f:
            tex_text: str | None = f.read()
    except (OSError, UnicodeDecodeError):
        tex_text = None
        out.append(f"{spec.name}: {os.path.basename(base)}.tex is missing or unreadable")
    for c in cells:
        where = f"{spec.name} [{c['row']}, {c['column']}]"
        line = rows.get((csv_text(c["row"]), csv_text(c["column"])))
        if line is None or line["text"] != c["text"] or line["n"] != c["n"]:
            out.append(f"{where}: {os.path.basename(base)}.csv says {line['text'] if line else 'nothing'}, "
                       f"the provenance says {c['text']}")
        if tex_text is not None and pm(tex(c["text"])) not in tex_text:
            out.append(f"{where}: {os.path.basename(base)}.tex does not contain {c['text']}")
    return out


def find_table(text, search_dirs):
    """A provenance file from a path or a table name (looked up in paper/ directories)."""
    if os.path.isfile(text):
        return text
    for d in search_dirs:
        for cand in (os.path.join(d, text + SUFFIX), os.path.join(d, "paper", text + SUFFIX)):
            if os.path.isfile(cand):
                return cand
    raise UsageError(f"no exported table {text!r}: give its .provenance.json or run `codalite export`")


def trace(store, path, row, column):
    """The chain of executions behind one cell (or one line of a figure: ROW its label, COLUMN its
    y key): [str] lines, oldest execution first."""
    if is_figure(path):
        return trace_line(store, path, row, column)
    prov, spec = load(path)
    cell = next((c for c in prov["cells"] if c["row"] == row and c["column"] == column), None)
    if cell is None:
        rows = sorted({c["row"] for c in prov["cells"]})
        cols = sorted({c["column"] for c in prov["cells"]})
        raise UsageError(f"table {spec.name} has no cell [{row}, {column}]; rows: {', '.join(rows)}; "
                         f"columns: {', '.join(cols)}")
    examples = f" x {cell['n_examples']} examples" if cell.get("n_examples") is not None else ""
    lines = [f"{spec.name} [{row}, {column}] = {cell['text']} (n={cell['n']}{examples}; {spec.value})"]
    for rec in cell["bundles"]:
        lines.append(f"  {rec['value']!r} from {rec['uuid']} ({rec['name']})")
        lines += executions(store, rec)
    return lines


def trace_line(store, path, label, key):
    """A figure's line: the bundle it was read from and the executions behind that bundle."""
    prov, spec = load_figure(path)
    series = next((s for s in prov["series"] if s["label"] == label and s["key"] == key), None)
    if series is None:
        labels = sorted({s["label"] for s in prov["series"]})
        raise UsageError(f"figure {spec.name} has no line [{label}, {key}]; labels: {', '.join(labels)}; "
                         f"keys: {', '.join(spec.y)}")
    rec = next((b for b in prov["bundles"] if b["uuid"] == series["uuid"]), None)
    if rec is None:
        raise ProvenanceError(path, f"line [{label}, {key}] names bundle {series['uuid']}, which it does not list")
    return [f"{spec.name} [{label}, {key}] = {series['n_points']} points ({spec.x}, {key} from {spec.file}; "
            f"sha256 {series['points_sha256'][:12]})",
            f"  from {rec['uuid']} ({rec['name']})", *executions(store, rec)]


def executions(store, rec):
    """A recorded bundle's chain of executions, oldest first: command, dependencies, hash, environment."""
    lines = []
    for a in rec["ancestors"]:
        if a.get("missing"):
            lines.append(f"    {a['uuid']}  (missing from the store)")
            continue
        state = _state(store, a["uuid"])
        deps = " ".join(f"{d['key']}:{d['parent_uuid'][:10]}" + (f"/{d['parent_path']}" if d["parent_path"] else "")
                        for d in a["dependencies"])
        what = f"! {a['command']}" if a["command"] else ("[uploaded]" if a["bundle_type"] == "dataset" else f"= {deps}")
        lines.append(f"    {a['bundle_type']:<7} {a['uuid']}  {a['name']}  {state}")
        lines.append(f"            {what}")
        if deps and a["command"]:
            lines.append(f"            deps: {deps}")
        lines.append(f"            hash: {a['content_hash']}" + (f"  env: {a['environment']}" if a["environment"] else ""))
    return lines


def _state(store, uuid):
    b = store.get_or_none(uuid)
    return b.state if b else "GONE"


# --- figures ---------------------------------------------------------------------------------------

class _Series(_Loose):
    uuid: str
    name: str | None = None
    label: str
    key: str
    n_points: int
    points_sha256: str


class _FigureBundle(_Bundle):
    label: str


class _FigureProvenance(_Loose):
    figure: str
    declaration: dict
    points_sha256: str
    series: list[_Series]
    bundles: list[_FigureBundle]
    files: dict[str, str]


def is_figure(path):
    """Whether a .provenance.json is a figure's (else a table's, or broken: the table reader says how)."""
    try:
        with open(path, encoding="utf-8") as f:
            return isinstance(data := json.load(f), dict) and "figure" in data
    except (OSError, ValueError):
        return False


def load_figure(path):
    raw = read_json(path)
    try:
        prov = _FigureProvenance.model_validate(raw).model_dump()
    except ValidationError as e:
        raise ProvenanceError(path, first_error(e)) from None
    return prov, declaration(path, prov, FigureSpec)


def verify_figure(store, path, plans=None):
    """-> (number of series checked, [problem]): every series' points re-derived from its bundle's
    log as it is now, the selection re-run, the written files unchanged."""
    prov, spec = load_figure(path)
    plans = {} if plans is None else plans
    problems = []
    recorded = {(s["uuid"], s["key"]): s for s in prov["series"]}
    for rec in prov["bundles"]:
        b, problem = recorded_bundle(store, rec)
        if b is None:
            problems.append(problem)
            continue
        try:
            now = read_series(store, spec, b, rec["label"])
        except CodaliteError as e:
            problems.append(str(e))
            continue
        for s in now:
            r = recorded.get((s.uuid, s.key))
            if r is None or series_hash(s.points) != r["points_sha256"]:
                drew = f"{r['n_points']} points (sha256 {r['points_sha256'][:12]})" if r else "no such line"
                problems.append(f"{s.key} of bundle {b.uuid} ({b.name}) changed: {spec.file} now gives "
                                f"{len(s.points)} points (sha256 {series_hash(s.points)[:12]}), the figure drew {drew}")
        problems += staleness(store, plans, b, rec)
    try:
        fig = compute_figure(store, spec)
    except CodaliteError as e:
        problems.append(f"the declaration no longer computes: {e}")
    else:
        was, now = {b["uuid"] for b in prov["bundles"]}, {b.uuid for b in fig.bundles}
        if was != now:
            problems.append(f"stale: the declaration now selects other bundles (new: {', '.join(sorted(now - was)) or '-'}; "
                            f"no longer: {', '.join(sorted(was - now)) or '-'}); rerun what is missing and re-export")
        elif figure_hash(fig.series) != prov["points_sha256"] and not problems:
            problems.append("the points re-derived from the store differ from the exported figure's; re-export")
    fresh = {}
    if not problems:
        from .figure import render

        fresh = {f: t for f, t in render(store, fig, prov.get("base_url") or "", prov.get("source") or "").items()
                 if not f.endswith(SUFFIX)}
    problems += [p.split(": ", 1)[1] for p in edited_files(path, prov, fresh)]
    problems += declaration_drift(prov, spec)
    return len(prov["series"]), [f"{spec.name}: {p}" for p in problems]

"""Worksheets in the store: a row per worksheet and its ordered items (CodaLab's worksheet and
worksheet_item tables), plus worksheet files (`worksheets/*.ws`) in a project."""

import os
import time
from dataclasses import dataclass

from .. import spec
from ..errors import CodaliteError, UsageError
from .parse import BUNDLE, DIRECTIVE, ITEM_TYPES, WORKSHEET, Item, parse

EXT = ".ws"


class WorksheetNotFound(CodaliteError):
    def __init__(self, text):
        super().__init__(f"no worksheet matches {text!r}; list them with `codalite wls`")


@dataclass
class Worksheet:
    uuid: str
    name: str
    title: str
    created: float
    items: list  # [Item]
    path: str | None = None  # set for a worksheet file, not stored


def _row_to_ws(store, row, with_items=True):
    items = []
    if with_items:
        rows = store.db.execute(
            "SELECT * FROM worksheet_item WHERE worksheet_uuid = ? ORDER BY sort_key, id", (row["uuid"],))
        items = [Item(r["type"], r["value"], i + 1, r["bundle_uuid"], r["subworksheet_uuid"])
                 for i, r in enumerate(rows)]
    return Worksheet(row["uuid"], row["name"], row["title"], row["created"], items)


def new(store, name, title=""):
    spec.check_name(name)
    if store.db.execute("SELECT 1 FROM worksheet WHERE name = ?", (name,)).fetchone():
        raise UsageError(f"a worksheet named {name!r} already exists; pick another name")
    uuid = spec.new_uuid()
    with store.tx():
        store.db.execute("INSERT INTO worksheet (uuid, name, title, created) VALUES (?,?,?,?)",
                         (uuid, name, title, time.time()))
    return get(store, uuid)


def get(store, text, with_items=True):
    """A stored worksheet by uuid, unique uuid prefix or name."""
    row = store.worksheet_row(text)
    if row is None:
        raise WorksheetNotFound(text)
    return _row_to_ws(store, row, with_items)


def list_worksheets(store, keywords=()):
    """Worksheets whose name or title contains every keyword (`cl wls`/`% wsearch` words)."""
    where, params = [], []
    for kw in keywords:
        if kw.startswith("."):
            continue  # .mine, .shared, ...: one user, every worksheet is mine
        key, eq, value = kw.partition("=")
        if eq and key == "name":
            where.append("name LIKE ?")
            params.append(value.replace(".*", "%"))
        else:
            where.append("(name LIKE ? OR title LIKE ? OR uuid LIKE ?)")
            params += [f"%{kw}%", f"%{kw}%", kw + "%"]
    rows = store.db.execute(f"SELECT * FROM worksheet WHERE {' AND '.join(where) or '1'} ORDER BY id", params)
    return [_row_to_ws(store, r, with_items=False) for r in rows]


def count_items(store, uuid):
    return store.db.execute("SELECT COUNT(*) FROM worksheet_item WHERE worksheet_uuid = ?", (uuid,)).fetchone()[0]


def resolve_bundle_spec(store, text):
    """A bundle line's spec -> uuid. A full uuid is kept even when the bundle is gone (it renders
    as <invalid>, as in CodaLab); a name or prefix must resolve."""
    if spec.UUID_RE.match(text):
        return text
    return store.resolve(text).uuid


def resolve_items(store, items):
    """Bind bundle and worksheet lines to uuids at write time, as CodaLab does; a spec that does
    not resolve is an error here (the user is told which line)."""
    for item in items:
        try:
            if item.type == BUNDLE:
                item.bundle_uuid = resolve_bundle_spec(store, item.value)
                item.value = item.bundle_uuid
            elif item.type == WORKSHEET:
                item.subworksheet_uuid = get(store, item.value, with_items=False).uuid
                item.value = item.subworksheet_uuid
        except CodaliteError as e:
            raise type(e)(f"line {item.line}: {e}") from None
    return items


def _insert(store, ws_uuid, items, start):
    store.db.executemany(
        "INSERT INTO worksheet_item (worksheet_uuid, sort_key, type, value, bundle_uuid, subworksheet_uuid) "
        "VALUES (?,?,?,?,?,?)",
        [(ws_uuid, start + i, it.type, it.value, it.bundle_uuid, it.subworksheet_uuid) for i, it in enumerate(items)])


def set_source(store, ws, text, name=None, title=None):
    """Replace a worksheet's items with the given source (`wedit -f`), and optionally rename it."""
    items = resolve_items(store, parse(text))
    with store.tx():
        store.db.execute("DELETE FROM worksheet_item WHERE worksheet_uuid = ?", (ws.uuid,))
        _insert(store, ws.uuid, items, 0)
        if name:
            spec.check_name(name)
            store.db.execute("UPDATE worksheet SET name = ? WHERE uuid = ?", (name, ws.uuid))
        if title is not None:
            store.db.execute("UPDATE worksheet SET title = ? WHERE uuid = ?", (title, ws.uuid))
    return get(store, ws.uuid)


def add_items(store, ws, items):
    """Append items (`add bundle|text`)."""
    for it in items:
        if it.type not in ITEM_TYPES:
            raise UsageError(f"unknown worksheet item type {it.type!r}")
    row = store.db.execute("SELECT COALESCE(MAX(sort_key), -1) FROM worksheet_item WHERE worksheet_uuid = ?",
                           (ws.uuid,)).fetchone()
    with store.tx():
        _insert(store, ws.uuid, items, row[0] + 1)


def add_text(store, ws, text):
    add_items(store, ws, resolve_items(store, parse(text)))


def add_bundles(store, ws, bundles):
    add_items(store, ws, [Item(BUNDLE, b.uuid, 0, bundle_uuid=b.uuid) for b in bundles])


def host_worksheets(store, bundle_uuid):
    rows = store.db.execute(
        "SELECT DISTINCT w.uuid, w.name FROM worksheet_item i JOIN worksheet w ON w.uuid = i.worksheet_uuid "
        "WHERE i.bundle_uuid = ? ORDER BY w.id", (bundle_uuid,))
    return [(r[0], r[1]) for r in rows]


def bundle_line(store, uuid):
    """`[run train -- :code,data:raw : python train.py]{0x...}`: a bundle line as `cl print -r` writes it."""
    from .genpath import bundle_genpath

    found = store.query("uuid = ?", (uuid,))
    if not found:
        return "[<none>]{%s}" % uuid
    b = found[0]
    text = f"{b.bundle_type} {b.name}"
    deps = bundle_genpath(b, "dependencies", lambda u: bundle_name(store, u))
    if deps:
        text += " -- " + deps
    if b.command:
        text += " : " + b.command.replace("\n", " ")
    return "[%s]{%s}" % (text, uuid)


def bundle_name(store, uuid):
    row = store.db.execute("SELECT name FROM bundle WHERE uuid = ?", (uuid,)).fetchone()
    return row[0] if row else None


def source(store, ws):
    """A worksheet's source text, with bundle and worksheet lines regenerated (`cl print -r`)."""
    if ws.path:
        with open(ws.path) as f:
            return f.read()
    lines = []
    for it in ws.items:
        if it.type == BUNDLE:
            lines.append(bundle_line(store, it.bundle_uuid or it.value))
        elif it.type == WORKSHEET:
            try:
                sub = get(store, it.subworksheet_uuid or it.value, with_items=False)
                lines.append("[worksheet %s]{{%s}}" % (sub.name, sub.uuid))
            except CodaliteError:
                lines.append("[worksheet <none>]{{%s}}" % it.value)
        elif it.type == DIRECTIVE and not it.is_comment:
            lines.append("% " + it.value)
        else:
            lines.append(it.value)
    return "\n".join(lines) + ("\n" if lines else "")


def project_dir(store):
    """The project a store belongs to: the directory holding .codalite/."""
    return os.path.dirname(store.home)


def worksheet_files(store):
    """`worksheets/*.ws` in the store's project, sorted by name."""
    d = os.path.join(project_dir(store), "worksheets")
    if not os.path.isdir(d):
        return []
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(EXT))


def load_file(path):
    with open(path) as f:
        text = f.read()
    name = os.path.basename(path)[: -len(EXT)] if path.endswith(EXT) else os.path.basename(path)
    return Worksheet(uuid="", name=name, title=name, created=os.path.getmtime(path), items=parse(text),
                     path=os.path.abspath(path))


def open_worksheet(store, text):
    """What `print` and `serve` accept: a path to a .ws file, a stored worksheet's name or uuid,
    or the name of a file under the project's worksheets/."""
    if text.endswith(EXT) or os.sep in text:
        if not os.path.isfile(text):
            raise UsageError(f"no such worksheet file: {text}")
        return load_file(text)
    try:
        return get(store, text)
    except WorksheetNotFound:
        path = os.path.join(project_dir(store), "worksheets", text + EXT)
        if os.path.isfile(path):
            return load_file(path)
        raise

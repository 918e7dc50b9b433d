"""Worksheets in the store: a row per worksheet and its ordered items (CodaLab's worksheet and
worksheet_item tables), plus worksheet files (`worksheets/*.ws`) in a project."""

import os
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
        items = [Item(r["type"], r["value"], i + 1, r["bundle_uuid"], r["subworksheet_uuid"])
                 for i, r in enumerate(store.worksheet_items(row["uuid"]))]
    return Worksheet(row["uuid"], row["name"], row["title"], row["created"], items)


def new(store, name, title=""):
    return get(store, store.new_worksheet(name, title))


def get(store, text, with_items=True):
    """A stored worksheet by uuid, unique uuid prefix or name."""
    row = store.worksheet_row(text)
    if row is None:
        raise WorksheetNotFound(text)
    return _row_to_ws(store, row, with_items)


def list_worksheets(store, keywords=()):
    """Worksheets whose name or title contains every keyword (`cl wls`/`% wsearch` words)."""
    names, words = [], []
    for kw in keywords:
        if kw.startswith("."):
            continue  # .mine, .shared, ...: one user, every worksheet is mine
        key, eq, value = kw.partition("=")
        if eq and key == "name":
            names.append(value.replace(".*", "%"))
        else:
            words.append(kw)
    return [_row_to_ws(store, r, with_items=False) for r in store.worksheets(names, words)]


def count_items(store, uuid):
    return store.count_worksheet_items(uuid)


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


def _rows(items):
    return [(it.type, it.value, it.bundle_uuid, it.subworksheet_uuid) for it in items]


def set_source(store, ws, text, name=None, title=None):
    """Replace a worksheet's items with the given source (`wedit -f`), and optionally rename it."""
    items = resolve_items(store, parse(text))
    store.edit_worksheet(ws.uuid, name=name or None, title=title, items=_rows(items))
    return get(store, ws.uuid)


def add_items(store, ws, items):
    """Append items (`add bundle|text`)."""
    for it in items:
        if it.type not in ITEM_TYPES:
            raise UsageError(f"unknown worksheet item type {it.type!r}")
    store.append_worksheet_items(ws.uuid, _rows(items))


def add_text(store, ws, text):
    add_items(store, ws, resolve_items(store, parse(text)))


def add_bundles(store, ws, bundles):
    add_items(store, ws, [Item(BUNDLE, b.uuid, 0, bundle_uuid=b.uuid) for b in bundles])


def host_worksheets(store, bundle_uuid):
    return store.host_worksheets(bundle_uuid)


def bundle_line(store, uuid):
    """`[run train -- :code,data:raw : python train.py]{0x...}`: a bundle line as `cl print -r` writes it."""
    from .genpath import bundle_genpath

    b = store.get_or_none(uuid)
    if b is None:
        return "[<none>]{%s}" % uuid
    text = f"{b.bundle_type} {b.name}"
    deps = bundle_genpath(b, "dependencies", lambda u: bundle_name(store, u))
    if deps:
        text += " -- " + deps
    if b.command:
        text += " : " + b.command.replace("\n", " ")
    return "[%s]{%s}" % (text, uuid)


def bundle_name(store, uuid):
    return store.name_of(uuid)


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

"""Worksheets in the store: a row per worksheet and its ordered items (CodaLab's worksheet and
worksheet_item tables), plus worksheet files (`worksheets/*.ws`) in a project."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import spec
from ..errors import CodaliteError, UsageError
from .parse import BUNDLE, DIRECTIVE, ITEM_TYPES, WORKSHEET, Item, parse

if TYPE_CHECKING:
    from ..bundle import Bundle
    from ..store import Store

EXT = ".ws"


class WorksheetNotFound(CodaliteError):
    def __init__(self, text: str) -> None:
        super().__init__(f"no worksheet matches {text!r}; list them with `codalite wls`")


@dataclass
class Worksheet:
    uuid: str
    name: str
    title: str
    created: float
    items: list[Item]
    path: str | None = None  # set for a worksheet file, not stored


def _row_to_ws(store: Store, row: Any, with_items: bool = True) -> Worksheet:
    items = []
    if with_items:
        items = [Item(r["type"], r["value"], i + 1, r["bundle_uuid"], r["subworksheet_uuid"])
                 for i, r in enumerate(store.worksheet_items(row["uuid"]))]
    return Worksheet(row["uuid"], row["name"], row["title"], row["created"], items)


def new(store: Store, name: str, title: str = "") -> Worksheet:
    return get(store, store.new_worksheet(name, title))


def get(store: Store, text: str, with_items: bool = True) -> Worksheet:
    """A stored worksheet by uuid, unique uuid prefix or name."""
    row = store.worksheet_row(text)
    if row is None:
        raise WorksheetNotFound(text)
    return _row_to_ws(store, row, with_items)


def _like(pattern: str, text: str) -> bool:
    """MySQL's LIKE as CodaLab's server runs it: any case, `%` and `_` wildcards, a backslash escapes.
    Not one regex with `.*` for each `%`: `%a%a%a%a%a%a%a%b` backtracked for minutes over a 60-character
    name. The pieces between `%`s have fixed lengths, so each can take its leftmost place in turn (as a
    glob matcher does): no backtracking."""
    pieces = [""]  # regexes of the text between `%`s: literals and `.` for `_`
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            i += 1
            pieces[-1] += re.escape(pattern[i])
        elif c == "%":
            pieces.append("")
        else:
            pieces[-1] += "." if c == "_" else re.escape(c)
        i += 1
    flags = re.IGNORECASE | re.DOTALL
    if len(pieces) == 1:
        return re.fullmatch(pieces[0], text, flags) is not None
    first, *middle, last = pieces
    m = re.match(first, text, flags)
    if m is None:
        return False
    pos = m.end()
    for piece in middle:
        m = re.compile(piece, flags).search(text, pos)
        if m is None:
            return False
        pos = m.end()
    return re.compile(f"(?:{last})\\Z", flags).search(text, pos) is not None


def _equal(value: str, text: str) -> bool:
    """MySQL's `=` under CodaLab's collation: any case, trailing spaces do not count."""
    return value.rstrip(" ").lower() == text.rstrip(" ").lower()


def list_worksheets(store: Store, keywords: Iterable[str] = ()) -> list[Worksheet]:
    """Worksheets as CodaLab's search_worksheets finds them (`cl wls`, `% wsearch`): a word matches
    the uuid, name or title anywhere (LIKE %word%); `name=v` is equal (a list: any of them; with a
    `%`: LIKE); `.*` is `%`; `.limit=N` and `.offset=N` cut the list when given; other `.` options are
    one user's (every worksheet is mine). Oldest first (CodaLab: last changed first)."""
    conditions = []
    limit = offset = None
    for kw in keywords:
        kw = kw.replace(".*", "%")
        key, eq, value = kw.partition("=")
        if key in (".limit", ".offset") and eq:
            try:
                n = int(value)
            except ValueError:
                raise UsageError(f"{key} needs a number, not {value!r}") from None
            if n < 0:
                raise UsageError(f"{key} must be 0 or more, not {value}")
            limit, offset = (n, offset) if key == ".limit" else (limit, n)
        elif kw.startswith("."):
            continue
        elif eq and key == "name":
            if "," in value:
                conditions.append(lambda w, vs=value.split(","): any(_equal(v, w.name) for v in vs))
            elif "%" in value:
                conditions.append(lambda w, v=value: _like(v, w.name))
            else:
                conditions.append(lambda w, v=value: _equal(v, w.name))
        else:
            pattern = f"%{kw}%"
            conditions.append(lambda w, p=pattern: any(_like(p, t or "") for t in (w.uuid, w.name, w.title)))
    found = [w for w in (_row_to_ws(store, r, with_items=False) for r in store.worksheets())
             if all(c(w) for c in conditions)]
    start = offset or 0
    return found[start:] if limit is None else found[start:start + limit]


def count_items(store: Store, uuid: str) -> int:
    return store.count_worksheet_items(uuid)


def resolve_bundle_spec(store: Store, text: str) -> str:
    """A bundle line's spec -> uuid. A full uuid is kept even when the bundle is gone (it renders
    as <invalid>, as in CodaLab); a name or prefix must resolve."""
    if spec.UUID_RE.match(text):
        return text
    return store.resolve(text).uuid


def resolve_items(store: Store, items: list[Item]) -> list[Item]:
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


def _rows(items: Iterable[Item]) -> list[tuple[str, str, str | None, str | None]]:
    return [(it.type, it.value, it.bundle_uuid, it.subworksheet_uuid) for it in items]


def set_source(store: Store, ws: Worksheet, text: str, name: str | None = None,
               title: str | None = None) -> Worksheet:
    """Replace a worksheet's items with the given source (`wedit -f`), and optionally rename it."""
    items = resolve_items(store, parse(text))
    store.edit_worksheet(ws.uuid, name=name or None, title=title, items=_rows(items))
    return get(store, ws.uuid)


def add_items(store: Store, ws: Worksheet, items: Iterable[Item]) -> None:
    """Append items (`add bundle|text`)."""
    for it in items:
        if it.type not in ITEM_TYPES:
            raise UsageError(f"unknown worksheet item type {it.type!r}")
    store.append_worksheet_items(ws.uuid, _rows(items))


def add_text(store: Store, ws: Worksheet, text: str) -> None:
    add_items(store, ws, resolve_items(store, parse(text)))


def add_bundles(store: Store, ws: Worksheet, bundles: Iterable[Bundle]) -> None:
    add_items(store, ws, [Item(BUNDLE, b.uuid, 0, bundle_uuid=b.uuid) for b in bundles])


def host_worksheets(store: Store, bundle_uuid: str) -> list[tuple[str, str]]:
    return store.host_worksheets(bundle_uuid)


def bundle_line(store: Store, uuid: str) -> str:
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


def bundle_name(store: Store, uuid: str) -> str | None:
    return store.name_of(uuid)


def source(store: Store, ws: Worksheet) -> str:
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


def project_dir(store: Store) -> str:
    """The project a store belongs to: the directory holding .codalite/."""
    return os.path.dirname(store.home)


def worksheet_files(store: Store) -> list[str]:
    """`worksheets/*.ws` in the store's project, sorted by name."""
    d = os.path.join(project_dir(store), "worksheets")
    if not os.path.isdir(d):
        return []
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(EXT))


def load_file(path: str) -> Worksheet:
    with open(path) as f:
        text = f.read()
    name = os.path.basename(path)[: -len(EXT)] if path.endswith(EXT) else os.path.basename(path)
    return Worksheet(uuid="", name=name, title=name, created=os.path.getmtime(path), items=parse(text),
                     path=os.path.abspath(path))


def open_worksheet(store: Store, text: str) -> Worksheet:
    """What `print` and `serve` accept: a path to a .ws file, a stored worksheet's name or uuid,
    or the name of a file under the project's worksheets/."""
    if text.endswith(EXT) or os.sep in text:
        if not text.endswith(EXT):  # as `cl print`: /etc/passwd is no worksheet (any text parses as markup)
            raise UsageError(f"{text}: not a worksheet file (their names end in {EXT}); give a {EXT} file or a "
                             "stored worksheet's name or uuid")
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

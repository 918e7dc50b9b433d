"""Items -> blocks: directives, schemas, display modes and searches, as CodaLab's `interpret_items`.

Rules kept from CodaLab (codalab/lib/worksheet_util.py, codalab/rest/interpret.py):
- `% search` / `% wsearch` expand in place into bundle / worksheet items (an aggregate such as
  `.count` into a markup line), so consecutive searches under one `% display` make one table.
- A display directive applies to the bundle lines right after it; any other item resets it to
  `table default`. `% schema` starts a schema that `% add` / `% addschema` lines extend; any other
  item ends it. Named schemas last for the rest of the worksheet.
- Consecutive non-blank markup lines make one block.
- An error becomes an inline block "Error in source line N: ..." and the rest still renders.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import spec
from ..errors import CodaliteError, PathEscape
from ..search import search
from . import curves, examples, model
from .genpath import (FIELDS, FileReader, apply_func, bundle_genpath, dependency_target, display, head_lines,
                      is_file_genpath, split_file_genpath, walk)
from .parse import BUNDLE, DIRECTIVE, MARKUP, WORKSHEET, Item

if TYPE_CHECKING:
    from ..bundle import Bundle
    from ..store import Store

DEFAULT_CONTENTS_MAX_LINES = 10
SPECIAL = ("dependencies", "args", "summary", "owner", "owner_name", "host_worksheets", "permission", "metadata")
SIMPLE_FIELDS = FIELDS  # Bundle attributes a genpath may name
DEFAULT_DISPLAY = ("table", "default")


class WorksheetError(Exception):
    """A problem in one worksheet line; shown inline, never raised past interpret()."""


# --- blocks --------------------------------------------------------------------------------------

@dataclass(slots=True)
class ShownValue:
    """One value a worksheet table or record shows: its text, the raw value, and what it links to."""

    text: str
    value: object = None
    uuid: str | None = None  # the bundle the cell came from: cells link to its page
    path: str | None = None  # a file in that bundle to link to (`key uuid | add path /stdout`)


@dataclass(slots=True)
class Row:
    uuid: str
    state: str
    cells: list


@dataclass
class MarkupBlock:
    text: str
    error: bool = False
    mode: str = "markup"


@dataclass
class TableBlock:
    header: list
    rows: list
    mode: str = "table"


@dataclass
class RecordBlock:
    uuid: str
    name: str
    rows: list  # [(key, ShownValue)]
    mode: str = "record"


@dataclass
class ContentsBlock:
    uuid: str
    path: str
    lines: list | None  # None: not found
    mode: str = "contents"


@dataclass
class ImageBlock:
    uuid: str
    path: str
    width: str | None = None
    height: str | None = None
    mode: str = "image"


@dataclass
class GraphBlock:
    trajectories: list  # [{'uuid', 'name', 'path', 'points': [(x, y)], 'live', 'key'?: the y key of a JSON log}]
    xlabel: str | None = None
    ylabel: str | None = None
    mode: str = "graph"


@dataclass
class SchemaBlock:
    """A `% schema` definition, as CodaLab shows it (`cl print`: [SchemaBlock]; the web: its fields)."""

    name: str
    rows: list  # [(field, genpath, post-processor or None, the schema it came from or None)]
    mode: str = "schema"


@dataclass
class WorksheetsBlock:
    worksheets: list  # [(uuid, name, title)]
    mode: str = "worksheets"


@dataclass
class Interpreted:
    blocks: list[Any]  # MarkupBlock, TableBlock, RecordBlock, ... (the classes above)
    bundles: dict[str, Bundle] = field(default_factory=dict)  # uuid -> Bundle shown

    @property
    def live(self):
        """Whether any bundle shown may still change (the web page keeps refreshing then)."""
        return any(not b.final for b in self.bundles.values())


# --- schemas -------------------------------------------------------------------------------------

def schema_item(args, from_schema=None):
    """(name, genpath, post, the schema the item was added to), as CodaLab's canonicalize_schema_item."""
    if len(args) == 1:
        return (os.path.basename(args[0]).split(":")[-1], args[0], None, from_schema)
    if len(args) == 2:
        return (args[0], args[1], None, from_schema)
    if len(args) == 3:
        return (*args, from_schema)
    raise WorksheetError("Invalid number of arguments: %s" % (args,))


def default_schemas():
    uuid = ["uuid[0:8]", "uuid", "[0:8]"]
    name, state, description = ["name"], ["state"], ["description"]
    summary = ["summary[0:1024]", "summary"]
    data_size = ["data_size", "data_size", "size"]
    time = ["time", "time", "duration"]
    created = ["created", "created", "date"]
    schemas = {
        "uuid": [uuid], "name": [name], "summary": [summary], "data_size": [data_size], "time": [time],
        "state": [state], "description": [description], "created": [created],
        "default": [uuid, name, summary, data_size, state, description],
        "program": [uuid, name, data_size, description],
        "dataset": [uuid, name, data_size, description],
        "make": [uuid, name, summary, data_size, state, description],
        "run": [uuid, name, summary, data_size, time, state, description],
    }
    return {k: [schema_item(i) for i in v] for k, v in schemas.items()}


def parse_properties(args):
    props = {}
    for a in args:
        if "=" not in a:
            raise WorksheetError("Expected <key>=<value>, but got %s" % a)
        k, v = a.split("=", 1)
        props[k] = v
    return props


# --- a page being interpreted ------------------------------------------------------------------

@dataclass
class Page:
    """What interpreting carries from one item to the next."""
    schemas: dict  # name -> [schema item]: the defaults, then each `% schema`
    blocks: list = field(default_factory=list)
    pending: list = field(default_factory=list)  # bundle uuids waiting for the end of their run of lines
    worksheets: list = field(default_factory=list)  # worksheet lines waiting to become one block
    schema: list | None = None  # the `% schema` being built (extended by `% add` / `% addschema`)
    schema_name: str | None = None
    display: tuple = DEFAULT_DISPLAY  # the `% display` for the bundle lines that follow
    display_line: int | None = None
    last_blank: bool = True  # consecutive non-blank markup lines make one block

    def error(self, line, message):
        self.blocks.append(MarkupBlock(f"Error in source line {line}: {message}", error=True))

    def markup(self, text, after_blank):
        if not text:
            self.last_blank = True
        elif self.blocks and isinstance(self.blocks[-1], MarkupBlock) and not self.blocks[-1].error and not after_blank:
            self.blocks[-1].text += "\n" + text
            self.last_blank = False
        else:
            self.blocks.append(MarkupBlock(text))
            self.last_blank = False

    def flush_worksheets(self):
        if self.worksheets:
            self.blocks.append(WorksheetsBlock(list(self.worksheets)))
            self.worksheets.clear()

    def end_schema(self):
        # a finished `% schema` becomes a block, as in CodaLab (not one with an error in it)
        if self.schema is not None:
            self.blocks.append(SchemaBlock(self.schema_name, list(self.schema)))
        self.schema = None

    def directive(self, tokens, line):
        command = tokens[0]
        if command == "%":  # `%% text`: a comment, as CodaLab's `command == '%'`
            return
        if command == "schema":
            if len(tokens) < 2:
                raise WorksheetError("`schema` missing name")
            self.schemas[tokens[1]] = self.schema = []
            self.schema_name = tokens[1]
        elif command == "addschema":
            if self.schema is None:
                raise WorksheetError("`addschema` must be preceded by `schema` directive")
            if len(tokens) < 2:
                raise WorksheetError("`addschema` missing name")
            if tokens[1] not in self.schemas:
                raise WorksheetError(f"unknown schema `{tokens[1]}`")
            self.schema += self.schemas[tokens[1]]
        elif command == "add":
            if self.schema is None:
                raise WorksheetError("`add` must be preceded by `schema` directive")
            self.schema.append(schema_item(tokens[1:], self.schema_name))
        elif command == "display":
            self.display, self.display_line = tuple(tokens[1:]), line
        else:
            raise WorksheetError(f"unknown directive `{command}`")


def schema_of(args, schemas):
    """The columns of `% display table|record [SCHEMA ...]` (default: the default schema)."""
    schema = []
    for name in args or ["default"]:
        # an unknown schema name is read as a single column (CodaLab: `% display table uuid`);
        # a known but empty schema adds no column, as CodaLab's schemas.get(name, ...)
        schema += schemas[name] if name in schemas else [schema_item(name.split(":", 2))]
    return schema


def genpath_arg(mode, args):
    """The file a contents, image or graph display shows (`/path` -> path)."""
    if not args:
        raise WorksheetError(f"Expected '% display {mode} (genpath)', but got '% display {' '.join([mode] + args)}'")
    if not is_file_genpath(args[0]):
        raise WorksheetError("Not file genpath: %s" % args[0])
    return args[0][1:]


MAX_CONTENTS_LINES = 10_000  # each line is read up to 1 KiB, as CodaLab's summarize_file: 10 MiB at most


def maxlines_of(props):
    try:
        n = int(props.get("maxlines", DEFAULT_CONTENTS_MAX_LINES))
    except ValueError:
        raise WorksheetError("maxlines must be integer") from None
    if not 0 <= n <= MAX_CONTENTS_LINES:  # a negative count read the whole file, a huge one as much
        raise WorksheetError(f"maxlines must be between 0 and {MAX_CONTENTS_LINES}")
    return n


# --- the interpreter -----------------------------------------------------------------------------

class Interpreter:
    def __init__(self, store):
        self.store = store
        self.files = FileReader(store)
        self.bundles = {}  # uuid -> Bundle (None: not in the store)
        self.names = {}  # parent uuid -> name, for summaries and dependencies
        self.host_cache = None

    # bundles --------------------------------------------------------------------------------
    def load(self, uuids):
        missing = [u for u in dict.fromkeys(uuids) if u not in self.bundles]
        for b in self.store.get_many(missing):
            self.bundles[b.uuid] = b
        for u in missing:
            self.bundles.setdefault(u, None)

    def name_of(self, uuid):
        if uuid not in self.names:
            b = self.bundles.get(uuid)
            if b is None:
                self.names[uuid] = self.store.name_of(uuid)
            else:
                self.names[uuid] = b.name
        return self.names[uuid]

    def host_worksheets(self, uuid):
        return model.host_worksheets(self.store, uuid)

    def value(self, bundle, genpath, post, uuid=None):
        if bundle is None:  # a bundle line whose bundle is gone: CodaLab shows it as <invalid>
            v = {"name": "<invalid>", "uuid": uuid}.get(genpath)
        elif is_file_genpath(genpath):
            v = self.files.value(bundle, genpath)
        else:
            v = bundle_genpath(bundle, genpath, self.name_of, self.host_worksheets)
        return apply_func(post, v)

    def cell(self, uuid, genpath, post):
        return self.getter(genpath, post)(self.bundles.get(uuid), uuid)

    def getter(self, genpath, post):
        """A column's cell maker, with the genpath parsed once (a table may have 10,000 rows)."""
        if is_file_genpath(genpath):
            subpath, key = split_file_genpath(genpath)
            info = self.files.info

            def value(b, u):
                return None if b is None else walk(info(b, subpath), key)
        elif genpath in SIMPLE_FIELDS or not (genpath in SPECIAL or genpath.startswith("dependencies/")):
            # a bundle field or a metadata key: the common case, looked up directly
            field_ = genpath in SIMPLE_FIELDS

            def value(b, u):
                if b is None:
                    return {"name": "<invalid>", "uuid": u}.get(genpath)
                v = getattr(b, genpath) if field_ else None
                return b.metadata.get(genpath) if v is None else v
        else:
            def value(b, u):
                return self.value(b, genpath, None, u)

        def make(b, u):
            v = value(b, u)
            if post is not None:
                v = apply_func(post, v)
            # a missing value is an empty cell, as CodaLab's contents_str(None)
            return ShownValue("" if v is None else display(v), v, u, v.get("path") if isinstance(v, dict) else None)
        return make

    # expansion ------------------------------------------------------------------------------
    def expand(self, items):
        """Resolve bundle/worksheet specs and expand searches. Yields (item, payload or error)."""
        out = []
        for item in items:
            try:
                if item.type == BUNDLE:
                    if not item.bundle_uuid:
                        item.bundle_uuid = model.resolve_bundle_spec(self.store, item.value)
                    out.append((item, None))
                elif item.type == WORKSHEET:
                    try:
                        ws = model.get(self.store, item.subworksheet_uuid or item.value)
                        out.append((item, (ws.uuid, ws.name, ws.title)))
                    except CodaliteError as e:
                        out.append((Item(MARKUP, f"{e}: {{{{{item.value}}}}}", item.line), None))
                elif item.type == DIRECTIVE and item.tokens()[:1] == ["search"]:
                    out += self.run_search(item)
                elif item.type == DIRECTIVE and item.tokens()[:1] == ["wsearch"]:
                    for ws in wsearch(self.store, item.tokens()[1:]):
                        out.append((Item(WORKSHEET, ws.uuid, item.line, subworksheet_uuid=ws.uuid),
                                    (ws.uuid, ws.name, ws.title)))
                else:
                    out.append((item, None))
            except (CodaliteError, WorksheetError, ValueError) as e:
                out.append((item, WorksheetError(str(e))))
        self.load([i.bundle_uuid for i, _ in out if i.type == BUNDLE])
        return out

    def run_search(self, item):
        result = search(self.store, item.tokens()[1:])  # .format= applies to an aggregate, as in CodaLab
        if not isinstance(result, list):  # an aggregate: rendered as text, like a markup line
            return [(Item(MARKUP, str(result), item.line), None)]
        for b in result:
            self.bundles[b.uuid] = b
        return [(Item(BUNDLE, b.uuid, item.line, bundle_uuid=b.uuid), None) for b in result]

    # the main loop --------------------------------------------------------------------------
    def interpret(self, items):
        page = Page(default_schemas())
        item = None
        for item, payload in self.expand(items):
            try:
                self.line(page, item, payload)
            except WorksheetError as e:  # shown inline; what the line was part of is dropped
                page.schema = None
                page.pending.clear()
                page.worksheets.clear()
                page.error(item.line, e)
        if item is not None:  # the end of the worksheet ends everything
            self.flush_pending(page, item.line)
            page.flush_worksheets()
            page.end_schema()
        return Interpreted(page.blocks, {u: b for u, b in self.bundles.items() if b is not None})

    def line(self, page, item, payload):
        """One item: first what it ends (the bundles before it, worksheet lines, the display, a
        schema), then what it does."""
        bad = payload if isinstance(payload, WorksheetError) else None
        try:
            tokens = item.tokens() if item.type == DIRECTIVE else []
        except ValueError as e:  # shlex: an unclosed quote
            tokens, bad = ["?"], WorksheetError(str(e))
        after_blank, page.last_blank = page.last_blank, True  # only a non-blank markup line is not
        is_bundle = item.type == BUNDLE and not bad  # a bad line ends the bundles before it
        if not is_bundle:
            self.flush_pending(page, item.line)
        if item.type != WORKSHEET:
            page.flush_worksheets()
        if not is_bundle:
            page.display, page.display_line = DEFAULT_DISPLAY, None
        if item.type != DIRECTIVE or tokens[:1] not in (["add"], ["addschema"]):
            page.end_schema()
        if bad:
            raise bad
        if is_bundle:
            page.pending.append(item.bundle_uuid)
        elif item.type == WORKSHEET:
            page.worksheets.append(payload)
        elif item.type == MARKUP:
            page.markup(item.value, after_blank)
        elif tokens and not item.is_comment:
            page.directive(tokens, item.line)

    def flush_pending(self, page, line):
        """The bundle lines collected so far become blocks in the current display."""
        if page.pending:
            uuids, page.pending = page.pending, []
            try:
                self.flush(uuids, page.display, page.schemas, page.blocks)
            except WorksheetError as e:
                # CodaLab names the line after the bundles; the display line is the one to fix
                page.error(page.display_line or line, e)

    def flush(self, uuids, display_args, schemas, blocks):
        """The collected bundle lines become blocks according to the display mode (appended one by
        one: blocks made before an error stay)."""
        mode, args = (display_args[0], list(display_args[1:])) if display_args else ("", [])
        if mode == "hidden":
            return
        if mode == "table":
            blocks.append(self.table_block(uuids, schema_of(args, schemas)))
        elif mode == "record":
            schema = schema_of(args, schemas)
            for u in uuids:
                b = self.bundles.get(u)
                blocks.append(RecordBlock(u, b.name if b else "<invalid>",
                                          [(name + ":", self.cell(u, g, p)) for name, g, p, _ in schema]))
        elif mode in ("contents", "image"):
            for u in uuids:
                blocks.append(self.file_block(u, mode, args))
        elif mode == "graph":
            if not args:
                genpath_arg(mode, args)
            props = parse_properties(args[1:])  # as CodaLab: a bad property is reported before a bad genpath
            path = genpath_arg(mode, args)
            if curves.is_records_path(path):  # codalite: JSON logs, keys x= and y=K1,K2 (one series each)
                maxlines_of(props)  # checked as for a TSV graph
                blocks.append(self.records_graph(uuids, path, props))
            else:
                blocks.append(self.tsv_graph(uuids, path, props))
        elif mode == "examples":  # codalite: questions, images, reference and each score bundle's answers
            blocks.append(self.examples_block(uuids, parse_properties(args)))
        else:
            raise WorksheetError("Unknown display mode: %s" % mode)

    def table_block(self, uuids, schema):
        getters = [self.getter(g, p) for _, g, p, _ in schema]
        rows = []
        for u in uuids:
            b = self.bundles.get(u)
            rows.append(Row(u, b.state if b else "<invalid>", [get(b, u) for get in getters]))
        return TableBlock([name for name, _, _, _ in schema], rows)

    def file_block(self, uuid, mode, args):
        """`% display contents|image /path [maxlines=N | width= height=]` for one bundle."""
        b = self.bundles.get(uuid)
        if b is None:
            return MarkupBlock("ERROR: cannot access bundle", error=True)
        path, props = genpath_arg(mode, args), parse_properties(args[1:])
        if mode == "image":
            return ImageBlock(uuid, path, props.get("width"), props.get("height"))
        return ContentsBlock(uuid, path, read_head(self.store, b, path, maxlines_of(props)))

    def tsv_graph(self, uuids, path, props):
        """`% display graph /file`: CodaLab's, from a TSV file's first two columns."""
        n = maxlines_of(props)
        trajectories = []
        for u in uuids:
            b = self.bundles.get(u)
            name = self.value(b, props.get("display_name", "name"), None)
            lines = read_head(self.store, b, path, n) if b else None
            trajectories.append({"uuid": u, "name": display(name), "path": path,
                                 "points": graph_points(lines or []), "live": bool(b and not b.final)})
        return GraphBlock(trajectories, props.get("xlabel"), props.get("ylabel"))

    def examples_block(self, uuids, props):
        """`% display examples [metric=K] [qtype=T] [verdict=right|wrong|disagree] [model=I] [limit=N]`."""
        try:
            limit = int(props.get("limit", 20))
            model_index = int(props["model"]) if "model" in props else None
            return examples.block(self.store, [b for b in (self.bundles.get(u) for u in uuids) if b],
                                  props.get("metric"), props.get("qtype"), props.get("verdict", "all"),
                                  model_index, 0, limit)
        except ValueError as e:
            raise WorksheetError(f"display examples: {e}") from None

    def records_graph(self, uuids, path, props):
        """One series per bundle and y key, from a JSON (list of objects, or trainer_state.json's
        log_history) or JSON-lines file; a running fine-tune's log_history.json is read from its
        newest checkpoint (curves.py). Without y=, every curve key the first file holds."""
        x = props.get("x", "step")
        ys = [k for k in props.get("y", "").split(",") if k]
        trajectories, found = [], False
        for u in uuids:
            b = self.bundles.get(u)
            name = display(self.value(b, props.get("display_name", "name"), None, u))
            recs = curves.read_records(self.store, b, path) if b else None
            found = found or bool(recs)
            keys = ys or (curves.curve_keys(recs.rows) if recs else [])
            if not ys and recs:
                ys = keys  # the same keys for every bundle: one legend, comparable lines
            for k in keys or [None]:
                trajectories.append({
                    "uuid": u, "name": name, "key": k, "path": path, "live": bool(b and not b.final),
                    "source": recs.source if recs else None, "truncated": bool(recs and recs.truncated),
                    "points": curves.points(recs.rows, x, k) if recs and k else []})
        ylabel = props.get("ylabel") or (ys[0] if len(ys) == 1 else None)
        # no records anywhere (a JSON object, a missing file): CodaLab's empty graph, without labels
        return GraphBlock(trajectories, props.get("xlabel") or (x if found else None), ylabel)


def read_head(store, bundle, path, maxlines, depth=0):
    """The first lines of a file in a bundle (or, as CodaLab, in the dependency its path starts
    with); ['<directory>'] for a directory; None if missing."""
    try:
        full = store.path_in(bundle, path)
    except PathEscape:
        return None
    except CodaliteError:
        target = dependency_target(store, bundle, path) if depth < 32 else None
        return None if target is None else read_head(store, *target, maxlines, depth + 1)
    if os.path.isdir(full):
        return ["<directory>"]
    try:
        return head_lines(full, maxlines)  # as CodaLab reads them (and never blocked by a FIFO)
    except OSError:
        return None


def graph_points(lines):
    """TSV lines -> [(x, y)] from columns 0 and 1, skipping what is not numeric (headers)."""
    points = []
    for line in lines:
        cols = line.rstrip("\n").split("\t")
        try:
            points.append((float(cols[0]), float(cols[1])))
        except (ValueError, IndexError):
            continue
    return points


def wsearch(store, keywords):
    """`% wsearch`: worksheets whose name, title or uuid match, as CodaLab's search_worksheets for
    what a store can mean: .limit=N (default 10, as CodaLab) and .offset=N; .mine keeps all (one
    user); .shared and .notmine match none (no groups, no other users); other options are refused."""
    limit, offset, words, none = 10, 0, [], False
    for kw in keywords:
        key, eq, value = kw.partition("=")
        if key in (".limit", ".offset") and eq:
            try:
                n = int(value)
            except ValueError:
                raise WorksheetError(f"wsearch: {key} needs a number, not {value!r}") from None
            if not 0 <= n <= spec.INDEX_MAX:
                raise WorksheetError(f"wsearch: {key} must be between 0 and {spec.INDEX_MAX}, not {value}")
            limit, offset = (n, offset) if key == ".limit" else (limit, n)
        elif kw == ".mine":
            continue
        elif kw in (".shared", ".notmine"):
            none = True
        elif kw.startswith(".") or (eq and key != "name"):
            raise WorksheetError(f"wsearch: {kw!r} is not supported here (only words, name=, .limit= .offset= "
                                 ".mine .shared .notmine)")
        else:
            words.append(kw)
    found = [] if none else model.list_worksheets(store, words)
    return found[offset : offset + limit]


def interpret(store: Store, items: list[Item]) -> Interpreted:
    """Items (from parse() or a stored worksheet) -> Interpreted(blocks, bundles)."""
    return Interpreter(store).interpret(items)

"""`codalite search`: CodaLab's bundle search keywords (bundle_model.search_bundles), compiled to SQL.

CodaLab keeps metadata as text rows, one per value (one per element of a list such as tags), and
compares them with MySQL's case-insensitive text rules; codalite keeps metadata as JSON, so each
value is first written as CodaLab writes it (`str(value)`: 0, 1.5, True, each tag) and then
compared the same way. Keywords, in CodaLab's order of precedence:

word               uuid or name contains word (`.*` or `%` are wildcards everywhere)
key=value          a column (uuid, id, type, state, command, name) or any metadata key, in any
                   case (size = data_size); v1,v2 = any of them; a `%` makes it a LIKE pattern
                   (a backslash makes % and _ literal); trailing spaces do not count (MySQL's PAD SPACE)
=value             uuid, command or any metadata value contains value
dependency=U       bundles that depend on U; dependency/KEY=U with that key
host_worksheet=W   bundles on worksheet W (worksheet=W)
.floating          bundles on no worksheet (nor in a bundle line of the project's worksheet files)
.before=D .after=D created at or before/after an ISO-8601 date or time (YYYY-MM-DD[THH:MM[:SS]])
key=.sort(-)       order by key (numbers as numbers; the last .sort wins); .last = id=.sort-
.limit=N (10)  .offset=N  .count  key=.sum  .format=POSTPROCESSOR (for .count/.sum)
.mine              every bundle (a store has one user); .shared matches none (no groups)
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from . import spec
from .errors import UsageError

if TYPE_CHECKING:
    from .bundle import Bundle
    from .store import Store

COLUMNS = {"uuid": "uuid", "id": "id", "bundle_type": "bundle_type", "state": "state", "command": "command",
           "name": "name", "memo_key": "memo_key"}
SHORTCUTS = {"type": "bundle_type", "size": "data_size", "worksheet": "host_worksheet"}
# metadata CodaLab types as int: codalite's float times (created, started, ...) compare as CodaLab's ints
INT_KEYS = {"created", "data_size", "request_cpus", "request_gpus", "request_priority", "started",
            "last_updated", "exitcode"}
KEYWORD_RE = re.compile(r"^([.\w/]*)=(.*)\Z", re.S)
DEFAULT_LIMIT = 10  # CodaLab's SEARCH_RESULTS_LIMIT
MAX_KEYWORDS = 200
MAX_KEYWORD_CHARS = 4096  # SQLite refuses LIKE patterns over 50,000 bytes; no real keyword nears this
DATE_HELP = ("Unable to parse datetime. Datetime must be specified as an ISO-8601 datetime string such as "
             "YYYY-MM-DD.")


def _as_text(key, value="j.value", kind="j.type"):
    """SQL for a JSON value as CodaLab stores it in metadata_value: str(value)."""
    real = f"CAST(CAST({value} AS INTEGER) AS TEXT)" if key in INT_KEYS else f"codalab_float({value})"
    return (f"(CASE {kind} WHEN 'true' THEN 'True' WHEN 'false' THEN 'False' WHEN 'integer' THEN "
            f"CAST({value} AS TEXT) WHEN 'real' THEN {real} ELSE {value} END)")


def _path(key):
    return f'$."{key}"'


LIKE = "LIKE ? ESCAPE '\\'"  # MySQL's LIKE: a backslash escapes % and _ (SQLite's has no escape by default)


def _condition(expr, value, params, trimmed=False):
    """CodaLab's make_condition for an ordinary value: IN for a list, LIKE with %, else equality.
    MySQL's default collation compares text case-insensitively and PAD SPACE: trailing spaces do
    not count in = and IN (`name=train ` is 'train'), but do in LIKE. `trimmed`: the stored values
    never end in a space (uuid, name, state: an index can then be used)."""
    if "%" in value and not isinstance(value, list):
        params.append(value)
        return f"{expr} {LIKE}"
    values = value if isinstance(value, list) else [value]
    params += [v.rstrip(" ") for v in values]
    if not trimmed:
        expr = f"rtrim({expr}, ' ')"
    if isinstance(value, list):
        return f"{expr} COLLATE NOCASE IN ({','.join('?' * len(value))})"
    return f"{expr} = ? COLLATE NOCASE"


def parse_date(value: str) -> int:
    """An ISO-8601 date or time -> epoch seconds, as CodaLab's `.before`/`.after` (dateutil's
    isoparse; a time without a zone is local time)."""
    v = value.strip()
    try:
        if re.fullmatch(r"\d{4}", v):
            d = datetime.datetime(int(v), 1, 1)
        elif re.fullmatch(r"\d{4}-\d{2}", v):
            d = datetime.datetime(int(v[:4]), int(v[5:]), 1)
        else:
            d = datetime.datetime.fromisoformat(v)
        return int(d.timestamp())
    except (ValueError, OverflowError, OSError):
        raise UsageError(f"search: {value!r}: {DATE_HELP}") from None


class Order(NamedTuple):
    sql: str  # an ORDER BY expression over `bundle`
    params: list[Any]


class Sum(NamedTuple):
    sql: str  # the summed expression over `bundle` (and `j`, a metadata value, when path is set)
    params: list[Any]
    path: str | None  # the metadata key's JSON path: one term per value of a list


@dataclass
class Query:
    """A compiled search: where/params, one sort, limit/offset, and the aggregate asked for."""
    where: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    order: Order | None = None
    limit: int | None = DEFAULT_LIMIT
    offset: int = 0
    count: bool = False
    sum: Sum | None = None
    format: str | None = None  # a post-processor for .count and .sum
    reads_all: bool = False  # a .count, .sum or .sort: every matching bundle is read, no early stop

    def sql_where(self) -> str:
        return " AND ".join(self.where) or "1"


def compile_search(keywords: Sequence[str], store: Store | None = None) -> Query:
    """Keywords -> Query. `store` resolves names given to dependency=, host_worksheet= and finds
    bundles on worksheet files for .floating; without it those need uuids."""
    if len(keywords) > MAX_KEYWORDS:  # SQLite refuses expressions deeper than 1000 terms
        raise UsageError(f"search: {len(keywords)} keywords is too many; use at most {MAX_KEYWORDS}")
    long = next((k for k in keywords if len(k) > MAX_KEYWORD_CHARS), None)
    if long is not None:
        raise UsageError(f"search: a keyword of {len(long)} characters ({long[:20]}...) is too long; "
                         f"use at most {MAX_KEYWORD_CHARS}")
    q = Query()
    q.reads_all = any(k == ".count" or (k.endswith(("=.sort", "=.sort-", "=.sum")) and not k.startswith("id="))
                      for k in keywords)
    for raw in keywords:
        kw = raw.replace(".*", "%")
        if kw == ".mine":
            continue  # owner_id = me: in a store every bundle is the user's
        if kw == ".shared":
            kw = ".shared=True"
        elif kw == ".last":
            kw = "id=.sort-"
        elif kw == ".count":
            q.count, q.limit = True, None
            continue
        elif kw == ".floating":
            q.where.append("NOT EXISTS (SELECT 1 FROM worksheet_item wi WHERE wi.bundle_uuid = bundle.uuid)")
            on_files = sorted(_bundles_on_worksheet_files(store)) if store is not None else []
            if on_files:
                q.where.append(f"uuid NOT IN ({','.join('?' * len(on_files))})")
                q.params += on_files
            continue
        m = KEYWORD_RE.match(kw)
        if not m:
            if "=" in kw:
                raise UsageError(f"search: invalid field in {raw!r}: a key is letters, digits, _ . and /")
            if kw.startswith("."):
                raise UsageError(f"search: unknown option {raw!r} (options: .mine .floating .count .last .limit= "
                                 ".offset= .before= .after= .format=)")
            q.where.append(f"(uuid {LIKE} OR name {LIKE})")
            q.params += [f"%{kw}%", f"%{kw}%"]
            continue
        key, value = m.group(1), m.group(2)
        key = SHORTCUTS.get(key, key)
        if "," in value:
            value = value.split(",")
        _keyword(q, raw, key, value, store)
    if q.count and q.sum:
        raise UsageError("search: .count and =.sum cannot be combined; use one of them")
    return q


def _number(raw, key, value):
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"search: {key} needs a number, not {value!r}") from None
    if not 0 <= n <= spec.INDEX_MAX:  # SQLite reads a negative LIMIT as none; huge ones overflow
        raise UsageError(f"search: {key} must be between 0 and {spec.INDEX_MAX}, not {value}")
    return n


def _keyword(q, raw, key, value, store):
    special = value in (".sort", ".sort-", ".sum")
    if key == ".offset":
        q.offset = _number(raw, key, value)
    elif key == ".limit":
        q.limit = _number(raw, key, value)
    elif key == ".format":
        q.format = ",".join(value) if isinstance(value, list) else value
    elif key == ".shared":
        q.where.append("0")  # shared with me through a group: a store has no groups or other users
    elif key in ("owner_id", "owner", "group"):
        raise UsageError(f"search: {key}= selects bundles by CodaLab user or group, and a codalite store has one "
                         "user and no groups: every bundle is yours (.mine); drop it")
    elif key in (".before", ".after"):
        if isinstance(value, list):
            raise UsageError(f"search: {key} takes one date, not a list")
        op = "<=" if key == ".before" else ">="
        q.where.append(f"json_type(metadata, '$.created') IN ('integer', 'real') AND "
                       f"CAST(json_extract(metadata, '$.created') AS INTEGER) {op} ?")
        q.params.append(parse_date(value))
    elif key == "":
        if isinstance(value, list):
            raise UsageError(f"search: {raw!r}: =VALUE (any field contains VALUE) takes one value, not a list")
        text = _as_text("", "j.atom", "j.type")
        q.where.append(f"(uuid {LIKE} OR command {LIKE} OR EXISTS (SELECT 1 FROM json_tree(bundle.metadata) j "
                       f"WHERE j.atom IS NOT NULL AND j.key IS NOT NULL AND {text} {LIKE}))")
        q.params += [f"%{value}%"] * 3
    elif key.startswith("."):
        raise UsageError(f"search: unknown option {raw!r} (options: .mine .floating .count .last .limit= "
                         ".offset= .before= .after= .format=)")
    elif key == "dependency" or key.startswith("dependency/"):
        if special:
            raise UsageError(f"search: {raw!r}: sorting or summing by dependency is not supported")
        dep_key = key.partition("/")[2]
        params: list[Any] = []
        cond = _condition("d.parent_uuid", _uuid_values(value, store, "bundle"), params, trimmed=True)
        if dep_key:
            cond += " AND d.child_path = ?"
            params.append(dep_key)
        q.where.append(f"EXISTS (SELECT 1 FROM dependency d WHERE d.child_uuid = bundle.uuid AND {cond})")
        q.params += params
    elif key == "host_worksheet":
        if special:
            raise UsageError(f"search: {raw!r}: sorting or summing by worksheet is not supported")
        params = []
        cond = _condition("wi.worksheet_uuid", _uuid_values(value, store, "worksheet"), params, trimmed=True)
        q.where.append(f"EXISTS (SELECT 1 FROM worksheet_item wi WHERE wi.bundle_uuid = bundle.uuid AND {cond})")
        q.params += params
    elif key in COLUMNS or key.lower() == "name":
        col = COLUMNS.get(key, "name")
        if value in (".sort", ".sort-"):
            desc = " DESC" if value == ".sort-" else ""
            # CodaLab sorts every field but name as a number (MySQL's `field * 1`: '2g' -> 2, text -> 0);
            # among equal numbers its order is unspecified, and codalite orders those as text
            order = f"{col} COLLATE NOCASE{desc}" if key == "name" else f"({col} * 1){desc}, {col} COLLATE NOCASE{desc}"
            q.order = Order(order, [])
        elif value == ".sum":
            q.sum = Sum(f"({col} * 1)", [], None)
        else:
            q.where.append(_condition(col, value, q.params, trimmed=col != "command"))
    else:
        if "/" in key or not spec.NAME_RE.match(key):
            raise UsageError(f"search: invalid field {key!r}")
        # MySQL compares CodaLab's metadata_key without case: NAME=, Tags= are name=, tags=
        text = _as_text(key.lower())
        # a query that reads every bundle anyway (.count, .sort, .sum) first looks at the keys stored
        # (a cost of one more read): when no bundle holds another spelling, the key's path alone is read
        exact = q.reads_all and store is not None and store.metadata_key_spellings(key) in ([], [key])
        either = _any_case(key, exact)
        if value in (".sort", ".sort-", ".sum"):
            q.where.append(either(lambda v: f"EXISTS (SELECT 1 {v})", []))  # CodaLab's join: only bundles with the key
            q.params += either.params
            if value == ".sum":
                q.sum = Sum(f"({text} * 1)", [], _path(_stored_key(store, key)))
            else:
                # CodaLab sorts one row per value of a list (tags): a bundle first shows up at its
                # smallest value (its largest with .sort-); each is listed once here
                desc, agg = (" DESC", "MAX") if value == ".sort-" else ("", "MIN")
                txt = either(lambda v: f"(SELECT {agg}({text} COLLATE NOCASE) {v})", [])
                txt_params = either.params
                if key == "name":
                    q.order = Order(f"{txt}{desc}", txt_params)
                else:
                    num = either(lambda v: f"(SELECT {agg}({text} * 1) {v})", [])
                    q.order = Order(f"{num}{desc}, {txt}{desc}", either.params + txt_params)
        else:
            cond_params: list[Any] = []
            cond = _condition(text, value, cond_params)
            q.where.append(either(lambda v: f"EXISTS (SELECT 1 {v} AND {cond})", cond_params))
            q.params += either.params


class _any_case:
    """SQL over the values of a metadata key matched in any case, as MySQL compares CodaLab's
    metadata_key (walking every key of every bundle: 2-3x slower at 10,000 bundles), or, `exact`,
    where no bundle holds the key in another spelling, over its path alone.
    Call it with expr_of(values_sql) -> SQL and the parameters that SQL takes; `params` then holds
    the parameters of the SQL returned, in order."""

    def __init__(self, key, exact=False):
        self.key, self.exact = key, exact
        self.params: list[Any] = []

    def __call__(self, expr_of, params):
        if self.exact:
            self.params = list(params)
            return expr_of(f"FROM json_each(bundle.metadata, '{_path(self.key)}') j WHERE j.type != 'null'")
        self.params = [self.key, *params]
        return expr_of("FROM json_each(bundle.metadata) k, json_each(bundle.metadata, '$.\"' || replace(k.key, '\"', '') "
                       "|| '\"') j WHERE k.key = ? COLLATE NOCASE AND j.type != 'null'")


def _stored_key(store, key):
    """The metadata key as stored, for a key given in another case (`Data_Size=.sum`)."""
    if store is None:
        return key
    found = store.metadata_key_spellings(key)
    if len(found) > 1:
        raise UsageError(f"search: {key}=.sum: the metadata keys {', '.join(found)} differ only in case; CodaLab "
                         "reads them as one key: sum each one with its exact name")
    return found[0] if found else key


def _uuid_values(value, store, kind):
    """A full uuid, a list or a LIKE pattern is compared as CodaLab does; a uuid prefix or a name is
    first resolved to its uuid (CodaLab compares with the full uuid only and would match nothing)."""
    if isinstance(value, list) or "%" in value or spec.UUID_RE.match(value):
        return value
    if store is None:
        raise UsageError(f"search: {value!r} is not a full uuid")
    if kind == "worksheet":
        return store.worksheet_uuid(value)
    return store.resolve(value).uuid


def _bundles_on_worksheet_files(store):
    """Bundles named by the bundle lines of the project's worksheets/*.ws: on a worksheet, so not
    floating (a `.floating` cleanup must never delete what a worksheet file shows)."""
    from .errors import CodaliteError
    from .worksheets import model
    from .worksheets.parse import BUNDLE, parse

    found = set()
    for path in model.worksheet_files(store):
        try:
            with open(path) as f:
                items = parse(f.read())
        except (OSError, UnicodeError, CodaliteError, ValueError):
            continue
        for item in items:
            if item.type == BUNDLE:
                try:
                    found.add(item.value if spec.UUID_RE.match(item.value) else store.resolve(item.value).uuid)
                except CodaliteError:
                    pass
    return found


def _format(fmt, value):
    if fmt is None:
        return value
    from .worksheets.genpath import apply_func

    return apply_func(fmt, value)


def search(store: Store, keywords: Sequence[str]) -> list[Bundle] | Any:
    """Bundles matching the keywords, or a number (formatted by .format=) for .count / field=.sum."""
    q = compile_search(list(keywords), store)
    where, params = q.sql_where(), list(q.params)
    if q.sum:
        # a list's path: one term per (bundle, value), each element counts, as CodaLab's rows do
        total = store.search_sum(q.sum.sql, where, params, q.sum.path)
        # MySQL sums text * 1 as a double: CodaLab answers 5.0 for a sum of 2 and 3
        return _format(q.format, None if total is None else float(total))
    order, order_params = q.order or ("id DESC", [])
    if q.order:
        order += ", id DESC"
    # CodaLab counts the page: .offset and a .limit given after .count apply
    found = store.search_page(where, params + order_params, order, q.limit, q.offset, count=q.count)
    return _format(q.format, found) if q.count else found

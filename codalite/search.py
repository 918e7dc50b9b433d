"""`codalite search`: CodaLab's keyword language, compiled to one SQL query.

word            uuid prefix or name contains word
key=value       a column (uuid, type, state, command, name) or any metadata key;
                v1,v2 = any of them; % or .* = a LIKE pattern
dependency=U    bundles that depend on U; dependency/KEY=U with that key
key=.sort       order by key (.sort- descending)
.limit=N .offset=N .count  size=.sum
"""

from . import spec
from .errors import UsageError

COLUMNS = {"uuid": "uuid", "id": "uuid", "type": "bundle_type", "bundle_type": "bundle_type",
           "state": "state", "command": "command", "name": "name", "memo_key": "memo_key"}
ALIASES = {"size": "data_size"}
MAX_KEYWORDS = 200


def _field(key):
    if key in COLUMNS:
        return COLUMNS[key]
    key = ALIASES.get(key, key)
    if not spec.NAME_RE.match(key):
        raise UsageError(f"search: invalid field {key!r}")
    return f"json_extract(metadata, '$.{key}')"


def compile_search(keywords):
    """-> (where, params, order, limit, offset, aggregate) where aggregate is None, 'count' or a sum field."""
    where, params, order = [], [], []
    limit, offset, aggregate = 10, 0, None
    if len(keywords) > MAX_KEYWORDS:  # SQLite refuses expressions deeper than 1000 terms
        raise UsageError(f"search: {len(keywords)} keywords is too many; use at most {MAX_KEYWORDS}")
    for kw in keywords:
        key, eq, value = kw.partition("=")
        if not eq:
            if kw == ".count":
                aggregate = "count"
            elif kw in (".last", ".mine", ".floating", ".shared"):
                pass  # a single-user store: every bundle is mine and none is on a worksheet filter
            elif kw.startswith("."):
                raise UsageError(f"search: unknown option {kw!r}")
            else:
                where.append("(uuid LIKE ? OR name LIKE ?)")
                params += [kw + "%", f"%{kw}%"]
            continue
        if key == ".limit" or key == ".offset":
            try:
                n = int(value)
            except ValueError:
                raise UsageError(f"search: {key} needs a number, not {value!r}") from None
            if not 0 <= n <= spec.INDEX_MAX:  # SQLite reads a negative LIMIT as none; huge ones overflow
                raise UsageError(f"search: {key} must be between 0 and {spec.INDEX_MAX}, not {value}")
            limit, offset = (n, offset) if key == ".limit" else (limit, n)
        elif value in (".sort", ".sort-"):
            order.append(f"{_field(key)} {'DESC' if value == '.sort-' else 'ASC'}")
        elif value == ".sum":
            aggregate = _field(key)
        elif key == "dependency" or key.startswith("dependency/"):
            dep_key = key.partition("/")[2]
            sub = "SELECT child_uuid FROM dependency WHERE parent_uuid LIKE ?" + (" AND child_path = ?" if dep_key else "")
            where.append(f"uuid IN ({sub})")
            params += [value + "%"] + ([dep_key] if dep_key else [])
        else:
            field = _field(key)
            if "," in value:
                values = value.split(",")
                where.append(f"{field} IN ({','.join('?' * len(values))})")
                params += values
            elif "%" in value or ".*" in value:
                where.append(f"{field} LIKE ?")
                params.append(value.replace(".*", "%"))
            else:
                where.append(f"{field} = ?")
                params.append(value)
    return " AND ".join(where) or "1", params, ", ".join(order + ["id DESC"]), limit, offset, aggregate


def search(store, keywords):
    """Bundles matching the keywords, or a number for .count / field=.sum."""
    where, params, order, limit, offset, aggregate = compile_search(keywords)
    if aggregate == "count":
        return store.db.execute(f"SELECT COUNT(*) FROM bundle WHERE {where}", params).fetchone()[0]
    if aggregate:
        return store.db.execute(f"SELECT COALESCE(SUM({aggregate}), 0) FROM bundle WHERE {where}", params).fetchone()[0]
    return store.query(where, params, order=order, limit=limit, offset=offset)

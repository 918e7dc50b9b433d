"""The embedded bundle store: `.codalite/` with one SQLite database and one directory per bundle.

Layout:  .codalite/codalite.db   metadata (WAL)
         .codalite/bundles/<uuid> finished bundles (file or directory), read-only, never changed
         .codalite/runs/<uuid>    a run's working directory while it runs
         .codalite/tmp/<uuid>     uploads and makes being assembled

A bundle's directory is moved into bundles/ (an atomic rename) before its state becomes ready, so a
crash can leave an orphan directory or a run that never finished, never a ready bundle with
partial contents.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, NamedTuple

from . import db, hashing, launch, memo, spec
from .bundle import (
    ACTIVE_STATES, CREATED, FAILED, FINAL_STATES, KILLED, PREPARING, READY, RUN_REQUESTS, RUNNING, FINALIZING,
    STAGED, Bundle, Dependency, default_metadata,
)
from .errors import (
    AmbiguousBundle, BundleNotFound, BundleStateError, CodaliteError, DependencyError, PathEscape,
    StoreNotFound, UsageError,
)

DIRNAME = ".codalite"
NO_MEMO = "no-memo"  # force=NO_MEMO: a new run that later runs never reuse (CodaLab's plain `cl run`)
NOT_FINAL = (CREATED, STAGED) + ACTIVE_STATES
# The library's notices (the store's first run records its interpreter): the CLI prints them on
# stderr; a program using the library sees them through logging.
log = logging.getLogger("codalite")

DepSpec = tuple[str, "str | spec.Target"]  # (key, target text or parsed Target)


class Created(NamedTuple):
    """What `Store.run`, `make` and `upload` give: the bundle, and whether it is an existing one
    (a memo hit, or an upload with the same contents and name)."""
    bundle: Bundle
    memo_hit: bool


class Why(NamedTuple):
    """`Store.why`: the earlier run compared with (None when there is none), and what differs."""
    other: Bundle | None
    lines: list[str]


class _Reused(Exception):
    """An upload found its twin inside the publishing transaction: nothing new is published."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle


class Store:
    """A codalite store. `Store.find()` locates it upward from cwd (like git) or via CODALITE_HOME."""

    def __init__(self, home: str) -> None:
        self.home = os.path.abspath(home)
        if not os.path.isdir(os.path.join(self.home, "bundles")):
            raise StoreNotFound(self.home)
        self.db = db.connect(os.path.join(self.home, "codalite.db"))
        self._environments: dict[str, tuple[list[list[Any]], str]] = {}  # interpreter -> (site-packages stamp, fingerprint), checked on each use
        self._found: dict[str, str] = {}  # PATH -> the python found there, while the store has none recorded

    # --- opening ---------------------------------------------------------------------------

    @classmethod
    def init(cls, directory: str = ".") -> Store:
        home = os.path.join(os.path.abspath(directory), DIRNAME)
        for sub in ("bundles", "runs", "tmp"):
            os.makedirs(os.path.join(home, sub), exist_ok=True)
        return cls(home)

    @classmethod
    def locate(cls, start: str | None = None) -> str | None:
        """The store's directory, or None: $CODALITE_HOME, else .codalite in start or a parent."""
        if os.environ.get("CODALITE_HOME"):
            return os.path.abspath(os.environ["CODALITE_HOME"])
        d = os.path.abspath(start or os.getcwd())
        while True:
            if os.path.isdir(os.path.join(d, DIRNAME)):
                return os.path.join(d, DIRNAME)
            parent = os.path.dirname(d)
            if parent == d:
                return None
            d = parent

    @classmethod
    def find(cls, start: str | None = None) -> Store:
        home = cls.locate(start)
        if home is None or not os.path.isdir(os.path.join(home, "bundles")):
            raise StoreNotFound(home or os.path.abspath(start or os.getcwd()))
        return cls(home)

    def close(self) -> None:
        self.db.close()

    def tx(self) -> AbstractContextManager[Any]:
        return db.transaction(self.db)

    # --- paths -----------------------------------------------------------------------------

    def bundle_dir(self, uuid: str) -> str:
        return os.path.join(self.home, "bundles", uuid)

    def run_dir(self, uuid: str) -> str:
        return os.path.join(self.home, "runs", uuid)

    def tmp_dir(self, uuid: str) -> str:
        """Where this process assembles uuid's contents: tmp/<pid>-<uuid>. The pid says who owns an
        entry: one whose process is gone is debris that the next writer (clean_tmp) deletes, and
        one whose process lives is never touched."""
        if not getattr(self, "_tmp_cleaned", False):  # a writer is at work: sweep once per process
            self.clean_tmp()
        return os.path.join(self.home, "tmp", f"{os.getpid()}-{uuid}")

    def location(self, bundle: Bundle) -> str:
        """Where a bundle's contents are now: its working directory while it runs."""
        final = self.bundle_dir(bundle.uuid)
        return final if os.path.lexists(final) else self.run_dir(bundle.uuid)

    def path_in(self, bundle: Bundle, subpath: str = "") -> str:
        """The real filesystem path of bundle/subpath: every reader (cat, make, genpaths, the web UI)
        comes here. Refuses what resolves outside the bundle (through '..' or a symlink, also a
        bundle that is itself a link) and what is not a regular file or directory (a FIFO a run
        made would block the reader)."""
        base = self.location(bundle)
        path = os.path.join(base, subpath) if subpath else base
        # the bundle's own entry is not resolved: a bundle that is a link must not move the fence
        real_base = os.path.join(os.path.realpath(os.path.dirname(base)), os.path.basename(base))
        real = os.path.realpath(path)
        if real != real_base and not real.startswith(real_base + os.sep):
            raise PathEscape(f"{bundle.uuid}/{hashing.shown(subpath)}")
        try:
            st = os.stat(real)
        except OSError:
            raise CodaliteError(f"no such path {hashing.shown(subpath or '.')!r} in bundle {bundle.uuid} "
                                f"({bundle.name}, {bundle.state})") from None
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            raise CodaliteError(f"{hashing.shown(subpath)!r} in bundle {bundle.uuid} is not a regular file or "
                                "directory (a FIFO, socket or device); it cannot be read")
        return real

    # --- reading ---------------------------------------------------------------------------

    def _bundles(self, rows: Iterable[sqlite3.Row]) -> list[Bundle]:
        rows = list(rows)
        deps: dict[str, list[Dependency]] = {}
        uuids = [r["uuid"] for r in rows]
        for i in range(0, len(uuids), 500):
            chunk = uuids[i : i + 500]
            q = f"SELECT * FROM dependency WHERE child_uuid IN ({','.join('?' * len(chunk))})"
            for d in self.db.execute(q, chunk):
                deps.setdefault(d["child_uuid"], []).append(
                    Dependency(d["child_path"], d["parent_uuid"], d["parent_path"])
                )
        return [
            Bundle(
                id=r["id"], uuid=r["uuid"], bundle_type=r["bundle_type"], command=r["command"],
                state=r["state"], is_dir=None if r["is_dir"] is None else bool(r["is_dir"]),
                content_hash=r["content_hash"], memo_key=r["memo_key"],
                metadata=json.loads(r["metadata"]), runspec=json.loads(r["runspec"]),
                dependencies=sorted(deps.get(r["uuid"], []), key=lambda d: d.child_path),
            )
            for r in rows
        ]

    def query(self, where: str = "1", params: Sequence[Any] = (), order: str = "id DESC", limit: int | None = None,
              offset: int = 0) -> list[Bundle]:
        sql = f"SELECT * FROM bundle WHERE {where} ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        return self._bundles(self.db.execute(sql, params))

    def get(self, uuid: str) -> Bundle:
        found = self.query("uuid = ?", (uuid,))
        if not found:
            raise BundleNotFound(uuid)
        return found[0]

    def resolve(self, text: str | spec.BundleSpec) -> Bundle:
        """A bundle from what a user typed: uuid, unique uuid prefix, name (newest), name^N, ^N, or
        any of these after `worksheet//` (CodaLab: a name or ^N counts that worksheet's bundle items,
        newest item first; a uuid or prefix is found wherever it is)."""
        worksheet = None
        if isinstance(text, spec.BundleSpec):
            s, shown = text, text.base
        else:
            worksheet, s = spec.parse_bundle_ref(text)
            shown = text
        if worksheet is not None:
            if not s.is_uuid:
                return self._resolve_on_worksheet(worksheet, s, shown)
            self.worksheet_uuid(worksheet)  # as CodaLab: the worksheet must exist even for a uuid
        if not s.base:
            found = self.query(limit=1, offset=s.index - 1)
        elif s.is_uuid:
            if spec.UUID_RE.match(s.base):
                found = self.query("uuid = ?", (s.base,))
            else:
                found = self.query("uuid LIKE ?", (s.base + "%",), limit=6)
                if len(found) > 1:
                    raise AmbiguousBundle(shown, [b.uuid for b in found])
        else:
            found = self.query("name = ?", (s.base,), limit=1, offset=s.index - 1)
        if not found:
            raise BundleNotFound(shown)
        return found[0]

    def worksheet_row(self, text: str) -> sqlite3.Row | None:
        """A stored worksheet's row from its uuid, unique uuid prefix or name; None when none matches."""
        if spec.UUID_PREFIX_RE.match(text or ""):
            rows = self.db.execute("SELECT * FROM worksheet WHERE uuid LIKE ? LIMIT 2", (text + "%",)).fetchall()
            if len(rows) > 1:
                raise UsageError(f"{text!r} matches several worksheets; give more of the uuid")
        else:
            rows = self.db.execute("SELECT * FROM worksheet WHERE name = ?", (text,)).fetchall()
        return rows[0] if rows else None

    def worksheet_uuid(self, text: str) -> str:
        """A stored worksheet's uuid (see worksheet_row), for WS//bundle targets and search keywords."""
        row = self.worksheet_row(text)
        if row is None:
            raise CodaliteError(f"no worksheet matches {text!r}; list them with `codalite wls` (only stored "
                                "worksheets hold bundles for WS//bundle, not worksheet files)")
        return row["uuid"]

    def worksheet_bundle_uuids(self, worksheet_uuid: str) -> set[str]:
        """The uuids of the bundles a stored worksheet's items show."""
        return {r[0] for r in self.db.execute(
            "SELECT bundle_uuid FROM worksheet_item WHERE worksheet_uuid = ? AND bundle_uuid IS NOT NULL",
            (worksheet_uuid,))}

    def _resolve_on_worksheet(self, worksheet: str, s: spec.BundleSpec, shown: str) -> Bundle:
        ws = self.worksheet_uuid(worksheet)
        where, params = "i.worksheet_uuid = ? AND i.bundle_uuid IS NOT NULL", [ws]
        if s.base:
            where += " AND b.name = ?"
            params.append(s.base)
        row = self.db.execute(
            f"SELECT i.bundle_uuid FROM worksheet_item i LEFT JOIN bundle b ON b.uuid = i.bundle_uuid WHERE {where} "
            "ORDER BY i.sort_key DESC, i.id DESC LIMIT 1 OFFSET ?", params + [s.index - 1]).fetchone()
        found = self.query("uuid = ?", (row[0],)) if row else []
        if not found:
            raise BundleNotFound(shown)
        return found[0]

    def resolve_target(self, text: str | spec.Target) -> tuple[Bundle, str]:
        """A bundle and a subpath in it from `[ws//]bundle[/subpath]`."""
        t = text if isinstance(text, spec.Target) else spec.parse_target(text)
        if t.worksheet is not None:
            if not t.spec.is_uuid:
                return self._resolve_on_worksheet(t.worksheet, t.spec, t.text), t.subpath
            self.worksheet_uuid(t.worksheet)
        return self.resolve(t.spec), t.subpath

    def children(self, uuid: str) -> list[str]:
        rows = self.db.execute("SELECT DISTINCT child_uuid FROM dependency WHERE parent_uuid = ?", (uuid,))
        return [r[0] for r in rows]

    def ls(self, limit: int = 20) -> list[Bundle]:
        return self.query(limit=limit)

    def get_or_none(self, uuid: str) -> Bundle | None:
        """The bundle with this uuid, or None (deleted meanwhile, or never in this store)."""
        found = self.query("uuid = ?", (uuid,))
        return found[0] if found else None

    def get_many(self, uuids: Iterable[str]) -> list[Bundle]:
        """The bundles with these uuids that exist, in the order given (unknown ones left out)."""
        uuids, found = list(uuids), {}
        for i in range(0, len(uuids), 500):
            chunk = uuids[i:i + 500]
            for b in self.query(f"uuid IN ({','.join('?' * len(chunk))})", chunk):
                found[b.uuid] = b
        return [found[u] for u in uuids if u in found]

    def exists(self, uuid: str) -> bool:
        return self.db.execute("SELECT 1 FROM bundle WHERE uuid = ?", (uuid,)).fetchone() is not None

    def name_of(self, uuid: str) -> str | None:
        """A bundle's name, or None when there is no such bundle."""
        row = self.db.execute("SELECT name FROM bundle WHERE uuid = ?", (uuid,)).fetchone()
        return row[0] if row else None

    def newest(self, name: str) -> Bundle | None:
        """The newest bundle of this name, or None."""
        found = self.query("name = ?", (name,), limit=1)
        return found[0] if found else None

    def overlaps(self, real: str, holding: bool = True) -> bool:
        """Whether a resolved path is, holds (unless holding=False: writing files into the folder that
        holds the store is fine) or is inside the store: nothing may upload it, write or replace it (as
        root, read-only bundle modes stop nothing)."""
        home = os.path.realpath(self.home)
        return os.path.commonpath([real, home]) in ((home, real) if holding else (home,))

    def ready_upload(self, content_hash: str, name: str) -> Bundle | None:
        """The newest ready bundle of this name with these contents, or None (an upload to reuse)."""
        found = self.query("content_hash = ? AND name = ? AND state = ?", (content_hash, name, READY), limit=1)
        return found[0] if found else None

    def newer_upload(self, name: str, after_id: int, content_hash: str | None) -> Bundle | None:
        """The newest ready upload of this name made after bundle id after_id, with other contents."""
        found = self.query("name = ? AND bundle_type = 'dataset' AND state = ? AND id > ? AND content_hash != ?",
                           (name, READY, after_id, content_hash or ""), limit=1)
        return found[0] if found else None

    def count(self, state: str | None = None) -> int:
        """How many bundles (in this state)."""
        if state is None:
            return self.db.execute("SELECT COUNT(*) FROM bundle").fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM bundle WHERE state = ?", (state,)).fetchone()[0]

    # --- what the worker reads ---------------------------------------------------------------

    def pending_count(self) -> int:
        """Bundles created or staged: work a worker still has to do."""
        return self.db.execute("SELECT COUNT(*) FROM bundle WHERE state IN (?, ?)", (CREATED, STAGED)).fetchone()[0]

    def stageable(self) -> list[Bundle]:
        """Created bundles whose parents are all final, oldest first (the rest would be looked at in
        vain)."""
        return self.query(f"state = '{CREATED}' AND NOT EXISTS (SELECT 1 FROM dependency d JOIN bundle p ON "
                          "p.uuid = d.parent_uuid WHERE d.child_uuid = bundle.uuid AND p.state NOT IN "
                          f"({','.join(repr(s) for s in FINAL_STATES)}))", order="id")

    def staged(self) -> list[Bundle]:
        """Staged bundles, highest request_priority first, then oldest."""
        return self.query("state = ?", (STAGED,), order="json_extract(metadata, '$.request_priority') DESC, id")

    def active(self) -> list[Bundle]:
        """Bundles preparing, running or finalizing."""
        return self.query(f"state IN ({','.join('?' * len(ACTIVE_STATES))})", ACTIVE_STATES)

    def kill_requests(self) -> list[str]:
        """uuids of active bundles whose kill was requested (`codalite kill`)."""
        rows = self.db.execute(f"SELECT uuid FROM bundle WHERE kill_requested = 1 AND state IN "
                               f"({','.join('?' * len(ACTIVE_STATES))})", ACTIVE_STATES)
        return [r[0] for r in rows]

    def integrity(self, uuid: str) -> tuple[str | None, str | None] | None:
        """(stat signature, content hash) recorded for a bundle, or None when it is gone."""
        row = self.db.execute("SELECT stat_sig, content_hash FROM bundle WHERE uuid = ?", (uuid,)).fetchone()
        return (row["stat_sig"], row["content_hash"]) if row else None

    # --- writing ---------------------------------------------------------------------------

    def _insert(self, uuid, bundle_type, state, metadata, command=None, deps=(), runspec=None,
                is_dir=None, content_hash=None, memo_key=None, stat_sig=None):
        metadata.setdefault("created", time.time())
        self.db.execute(
            "INSERT INTO bundle (uuid, bundle_type, name, command, state, is_dir, content_hash, "
            "stat_sig, memo_key, metadata, runspec) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (uuid, bundle_type, metadata.get("name"), command, state, is_dir, content_hash, stat_sig,
             memo_key, json.dumps(metadata), json.dumps(runspec or {})),
        )
        self.db.executemany(
            "INSERT INTO dependency VALUES (?,?,?,?)",
            [(uuid, d.child_path, d.parent_uuid, d.parent_path) for d in deps],
        )

    def _change(self, uuid, state=None, metadata=None, from_states=None, **columns):
        """Change a bundle's state and columns and merge keys into its metadata, in one transaction,
        only while its state is one of from_states (any when None). Returns whether it changed."""
        with self.tx():
            cond, params = "uuid = ?", [uuid]
            if from_states is not None:
                cond += f" AND state IN ({','.join('?' * len(from_states))})"
                params += list(from_states)
            row = self.db.execute(f"SELECT metadata FROM bundle WHERE {cond}", params).fetchone()
            if row is None:
                return False
            if metadata:
                md = json.loads(row[0])
                md.update(metadata)
                md["last_updated"] = time.time()
                columns["metadata"] = json.dumps(md)
            if state:
                columns["state"] = state
            if columns:
                sets = ", ".join(f"{k} = ?" for k in columns)
                self.db.execute(f"UPDATE bundle SET {sets} WHERE uuid = ?", (*columns.values(), uuid))
            return True

    # --- named transitions: each says whether it happened ----------------------------------------

    def fail(self, uuid: str, message: str, **metadata: Any) -> bool:
        """created/staged/preparing/running/finalizing -> failed, with its failure_message. A final
        bundle (ready, failed, killed) never changes: returns False."""
        return self._change(uuid, FAILED, dict(metadata, failure_message=message), from_states=NOT_FINAL)

    def start(self, uuid: str) -> bool:
        """staged -> preparing: the worker claims a run; False when it is no longer staged (killed)."""
        return self._change(uuid, PREPARING, from_states=(STAGED,))

    def running(self, uuid: str, metadata: dict[str, Any]) -> bool:
        """preparing -> running, with what the worker knows of the process (pid, cpus, sandbox)."""
        return self._change(uuid, RUNNING, metadata, from_states=(PREPARING,))

    def finalizing(self, uuid: str) -> bool:
        """running -> finalizing: the process exited; its outputs are being kept."""
        return self._change(uuid, FINALIZING, from_states=(PREPARING, RUNNING))

    def finish(self, uuid: str, state: str, metadata: dict[str, Any], content_hash: str | None, is_dir: bool | None,
               stat_sig: str | None) -> bool:
        """-> ready, failed or killed, with the published contents' hash and signature."""
        assert state in FINAL_STATES, state
        return self._change(uuid, state, metadata, from_states=NOT_FINAL, content_hash=content_hash,
                            is_dir=is_dir, stat_sig=stat_sig)

    def set_stat_sig(self, uuid: str, sig: str) -> bool:
        """Record a bundle's new stat signature (touched, contents unchanged)."""
        return self._change(uuid, stat_sig=sig)

    def publish(self, src: str, uuid: str, content_hash: str | None = None,
                size: int | None = None) -> tuple[str, int, str]:
        """Make assembled contents the bundle's: read-only, renamed into place. Returns (hash, size,
        stat signature); the hash and size are computed unless the caller has them already."""
        content_hash = content_hash or hashing.hash_path(src)
        size = hashing.tree_size(src) if size is None else size
        final = self.bundle_dir(uuid)
        # moving a directory to another parent rewrites its '..' entry, which needs its write bit:
        # drop the write bits once it is in place (its state is not ready before the caller says so)
        os.rename(src, final)
        hashing.set_read_only(final)
        return content_hash, size, hashing.stat_signature(final)

    def upload(self, paths: Sequence[str], name: str | None = None, description: str = "", tags: Iterable[str] = (),
               follow_symlinks: bool = False, force: bool = False) -> Created:
        """Upload files or directories as one dataset bundle. Returns (bundle, reused).

        Identical contents under the same name return the existing bundle (unless force).
        Symlinks: see hashing.copy_and_hash (kept when they resolve inside, else refused or, with
        follow_symlinks, copied as their targets)."""
        paths = [os.path.abspath(p) for p in paths]
        home = os.path.realpath(self.home)
        for p in paths:
            if not os.path.lexists(p):
                raise UsageError(f"no such file or directory: {p}")
            # a top-level link counts as its target only when it is followed (else it is refused)
            real = os.path.realpath(p if follow_symlinks else os.path.dirname(p))
            real = real if follow_symlinks else os.path.join(real, os.path.basename(p))
            staged = os.path.join(home, "tmp", f"{os.getpid()}-")  # this process's own staging (cli upload)
            if self.overlaps(real) and not real.startswith(staged):
                raise UsageError(f"{p} is, holds or is inside the codalite store ({self.home}); "
                                 "upload the files you mean, not the store")
        if len(paths) > 1 and len({os.path.basename(p) for p in paths}) < len(paths):
            raise UsageError("two uploaded paths have the same base name; rename one of them")
        name = spec.check_name(name) if name else default_name(os.path.basename(paths[0]))
        self.clean_tmp()
        st = os.stat(self.home)
        refuse = [(st.st_dev, st.st_ino)]  # the store, should a followed link lead into it
        uuid = spec.new_uuid()
        tmp = self.tmp_dir(uuid)
        try:
            if len(paths) == 1:
                content_hash, size = hashing.copy_and_hash(paths[0], tmp, follow_symlinks, refuse)
            else:
                os.mkdir(tmp)
                for p in paths:
                    hashing.copy_and_hash(p, os.path.join(tmp, os.path.basename(p)), follow_symlinks, refuse)
                content_hash, size = hashing.hash_path(tmp), hashing.tree_size(tmp)
            same = None if force else self.ready_upload(content_hash, name)
            if same:  # at once, before the copy is made read-only (the check in insert is the one that counts)
                return Created(same, True)
            is_dir = os.path.isdir(tmp) and not os.path.islink(tmp)
            md = default_metadata("dataset", name, description, tags)
            md["data_size"] = size

            def insert() -> None:
                # the check for a twin and the insert in one write transaction: the same data uploaded
                # by several clients at once makes one bundle (as a run's memo check does)
                same = None if force else self.ready_upload(content_hash, name)
                if same:
                    raise _Reused(same)
                self._insert(uuid, "dataset", READY, md, is_dir=is_dir, content_hash=content_hash)
            self._publish_new(tmp, uuid, insert)
        except _Reused as r:
            return Created(r.bundle, True)
        except OSError as e:  # e.g. a full disk: one line; nothing was published
            raise CodaliteError(f"upload failed: {e.strerror or e}" + (f": {e.filename}" if e.filename else "")) from None
        finally:
            remove_tree(tmp)
        return Created(self.get(uuid), False)

    def _publish_new(self, tmp, uuid, insert):
        """Rename assembled contents into bundles/ and insert their row in one transaction, so a
        directory in bundles/ without a row is always debris (`fsck --repair` holds the same lock).
        The write bits go first (but the top directory's: moving a directory to another parent
        rewrites its '..', which needs it); the stat signature follows the commit (a missing one
        only costs the first run that reads the bundle a re-hash)."""
        hashing.set_read_only(tmp)
        is_dir = os.path.isdir(tmp) and not os.path.islink(tmp)
        if is_dir:
            hashing.chmod_w(tmp, True)
        final, renamed = self.bundle_dir(uuid), False
        try:
            with self.tx():
                insert()
                os.rename(tmp, final)
                renamed = True
                if is_dir:
                    hashing.chmod_w(final, False)
        except BaseException:
            if renamed:  # the row was not committed: the contents must not stay behind as an orphan
                remove_tree(final)
            raise
        try:
            self.set_stat_sig(uuid, hashing.stat_signature(final))
        except sqlite3.Error:  # e.g. a full disk: the bundle is ready; its signature can wait
            pass

    def add_imported(self, tmp: str, uuid: str, bundle_type: str, state: str, metadata: dict[str, Any],
                     command: str | None = None, deps: Iterable[Dependency] = (), runspec: dict[str, Any] | None = None,
                     is_dir: bool | None = None, content_hash: str | None = None, memo_key: str | None = None) -> Bundle:
        """Publish contents assembled in tmp (fetched from a CodaLab server) as bundle uuid with its own
        row, replacing what an earlier import of the same uuid left: row and contents land together."""
        def insert():
            self.db.execute("DELETE FROM dependency WHERE child_uuid = ?", (uuid,))
            self.db.execute("DELETE FROM bundle WHERE uuid = ?", (uuid,))
            remove_tree(self.bundle_dir(uuid))
            self._insert(uuid, bundle_type, state, metadata, command=command, deps=deps, runspec=runspec,
                         is_dir=is_dir, content_hash=content_hash, memo_key=memo_key)
        self._publish_new(tmp, uuid, insert)
        return self.get(uuid)

    def resolve_deps(self, deps: Iterable[DepSpec], allow_failed: bool) -> list[Dependency]:
        """[(key, target text or Target)] -> [Dependency], checking keys and parents' states."""
        out: list[Dependency] = []
        keys: set[str] = set()
        for key, target in deps:
            if key in keys:
                raise UsageError(f"dependency key {key!r} is used twice; give each dependency its own key")
            nested = next((k for k in keys if key.startswith(k + "/") or k.startswith(key + "/")), None)
            if nested is not None:  # as `cl run`: ./a and ./a/b cannot both be dependencies (nor in a make)
                raise UsageError(f"dependency key {key!r} is inside {nested!r} (or the reverse); give them keys "
                                 "that do not nest")
            keys.add(key)
            parent, subpath = self.resolve_target(target)
            if parent.state in (FAILED, KILLED) and not allow_failed:
                raise DependencyError(
                    f"dependency {key}:{parent.uuid} ({parent.name}) {parent.state}; "
                    "rerun it, or pass --allow-failed-dependencies to run anyway"
                )
            if parent.state == READY and subpath:
                self.path_in(parent, subpath)  # raises if missing or escaping
            out.append(Dependency(key, parent.uuid, subpath))
        return out

    def memo_inputs(self, bundle_type: str, command: str | None, deps: Sequence[Dependency], runspec: dict[str, Any],
                    metadata: dict[str, Any]) -> dict[str, Any] | None:
        """The memo inputs of a bundle, or None while a dependency has no content hash yet."""
        hashes = {}
        for d in deps:
            row = self.db.execute("SELECT state, content_hash FROM bundle WHERE uuid = ?", (d.parent_uuid,)).fetchone()
            if row is None:
                raise DependencyError(f"dependency {d.child_path}:{d.parent_uuid} is not in this store")
            if row["state"] not in FINAL_STATES or row["content_hash"] is None:
                return None
            hashes[d.child_path] = row["content_hash"]
        return memo.memo_inputs(
            bundle_type, command, [(d.child_path, hashes[d.child_path], d.parent_path) for d in deps],
            runspec.get("environment"), runspec.get("env_vars", {}), metadata.get("exclude_patterns", []),
        )

    def memo_match(self, key: str, exclude_uuid: str | None = None) -> Bundle | None:
        """The newest bundle with this memo key that is ready, else one still on its way; never a failure."""
        found = self.query(
            "memo_key = ? AND state NOT IN (?, ?, 'worker_offline') AND uuid != ?",
            (key, FAILED, KILLED, exclude_uuid or ""), order=f"state = '{READY}' DESC, id DESC", limit=1,
        )
        return found[0] if found else None

    def metadata_key_spellings(self, key: str) -> list[str]:
        """Every spelling of a metadata key stored in any bundle that equals `key` ignoring case
        (CodaLab's MySQL compares keys without case)."""
        rows = self.db.execute("SELECT DISTINCT k.key FROM bundle, json_each(bundle.metadata) k "
                               "WHERE k.key = ? COLLATE NOCASE", [key])
        return sorted({r[0] for r in rows})

    def memo_matches(self, keys: Iterable[str]) -> dict[str, Bundle]:
        """memo_match for many keys at once: {key: bundle} (a recipe plan asks for every cell of a step)."""
        wanted = list(keys)
        out: dict[str, Bundle] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            for b in self.query(f"memo_key IN ({','.join('?' * len(chunk))}) AND state NOT IN (?, ?, 'worker_offline')",
                                (*chunk, FAILED, KILLED), order=f"state = '{READY}' DESC, id DESC"):
                out.setdefault(b.memo_key or "", b)
        return out

    def run(self, command: str, deps: Iterable[DepSpec] = (), name: str | None = None, description: str = "",
            tags: Iterable[str] = (), requests: dict[str, Any] | None = None, env_vars: dict[str, str] | None = None,
            force: bool | str = False, path_env: str | None = None, start_worker: bool = True) -> Created:
        """Create a run bundle (or find its memo twin). Returns (bundle, memo_hit).

        deps: [(key, target)]. requests: CodaLab run metadata (request_*, exclude_patterns, ...).
        env_vars: {NAME: value} set in the run and part of its memo key.
        """
        md = run_metadata(command, name, description, tags, requests)
        for key, _ in deps:  # the run's own output files: a dependency there would hide one or the other
            if key in ("stdout", "stderr"):
                raise UsageError(f"dependency key {key!r} is where the run's {key} is written; give it another key")
        dependencies = self.resolve_deps(deps, md["allow_failed_dependencies"])
        path_env = path_env if path_env is not None else os.environ.get("PATH", "")
        runspec: dict[str, Any] = {"env_vars": dict(env_vars or {})}
        if md["request_docker_image"]:  # the image is the environment; the host's PATH never enters it
            runspec.update(environment=self.run_environment(md["request_docker_image"], path_env), path=path_env)
        else:
            # the store's interpreter, whatever the caller's PATH: its bin directory first, so `python`
            # and the venv's console scripts resolve to it
            python = self.interpreter(path_env, record=True)
            bindir = os.path.dirname(python)
            path = os.pathsep.join([bindir] + [p for p in path_env.split(os.pathsep) if p and p != bindir])
            runspec.update(environment=self.local_environment(python), path=path, python=python)
        return self._create("run", command, dependencies, md, runspec, force, start_worker)

    def make(self, deps: Sequence[DepSpec], name: str | None = None, description: str = "", tags: Iterable[str] = (),
             force: bool | str = False, start_worker: bool = True) -> Created:
        """A make bundle: the given targets copied into one bundle (`key:target`; a single target
        with an empty key makes the bundle that target itself)."""
        md = default_metadata("make", spec.check_name(name) if name else "make", description, tags)
        if any(not k for k, _ in deps) and len(deps) > 1:
            raise UsageError("a make with several targets needs a key for each (key:target)")
        dependencies = self.resolve_deps(deps, False)
        return self._create("make", None, dependencies, md, {}, force, start_worker)

    def _create(self, bundle_type: str, command: str | None, dependencies: list[Dependency], md: dict[str, Any],
                runspec: dict[str, Any], force: bool | str, start_worker: bool) -> Created:
        inputs = self.memo_inputs(bundle_type, command, dependencies, runspec, md)
        memoize = force != NO_MEMO  # a no-memo run (not a function of its inputs) is never a memo target
        key = memo.memo_key(inputs) if inputs and memoize else None
        runspec.update(memo_inputs=inputs, force=bool(force))
        if not memoize:
            runspec["memoize"] = md["memoize"] = False
        uuid = spec.new_uuid()
        # the memo check and the insert in one write transaction: identical runs submitted at the
        # same instant by several clients make one bundle, not one each
        with self.tx():
            hit = self.memo_match(key) if key and not force else None
            if not hit:
                ready = all(self.get(d.parent_uuid).final for d in dependencies)
                self._insert(uuid, bundle_type, STAGED if ready else CREATED, md, command=command,
                             deps=dependencies, runspec=runspec, memo_key=key)
        if hit:
            return Created(hit, True)
        if start_worker:
            launch.ensure_worker(self.home)
        return Created(self.get(uuid), False)

    def run_environment(self, image: str | None, path_env: str | None) -> str:
        """The environment part of a run's memo key: its docker image, or the fingerprint of the
        store's interpreter (path_env only matters while none is recorded: see interpreter)."""
        if image:  # the image's digest when an engine has it, so a retagged image is a new environment
            from .docker_runtime import resolve_digest
            return f"docker:{resolve_digest(image) or image}"
        return self.local_environment(self.interpreter(path_env))

    def local_environment(self, python: str) -> str:
        """Fingerprint of a Python interpreter's environment (version and installed distributions),
        cached until a package is installed or removed there."""
        cached = self._environments.get(python)
        if cached and memo.dirs_stamp([d for d, _ in cached[0]]) == cached[0]:
            return cached[1]
        row = self.db.execute("SELECT * FROM python_cache WHERE executable = ?", (python,)).fetchone()
        stamp = json.loads(row["dirs_stamp"]) if row else []
        if row is not None and stamp == memo.dirs_stamp([d for d, _ in stamp]):
            self._environments[python] = (stamp, row["fingerprint"])
            return row["fingerprint"]
        try:
            version, dirs = memo.site_dirs(python)
        except (OSError, ValueError, subprocess.SubprocessError) as e:
            raise CodaliteError(f"this store's python {python} does not run ({e}); "
                                "set another with `codalite env set PATH_TO_PYTHON`") from None
        packages = memo.packages_in(dirs)
        fp = memo.fingerprint(version, packages)
        with self.tx():
            self.db.execute("INSERT OR REPLACE INTO environment (fingerprint, python, packages, executable) "
                            "VALUES (?,?,?,?)", (fp, version, json.dumps(packages), python))
            self.db.execute("INSERT OR REPLACE INTO python_cache VALUES (?,?,?,?)",
                            (python, version, json.dumps(memo.dirs_stamp(dirs)), fp))
        self._environments[python] = (memo.dirs_stamp(dirs), fp)
        return fp

    def packages_of(self, fingerprint: str) -> dict[str, str] | None:
        """{name: version} of an environment, with "python": its version and interpreter (for `why`)."""
        row = self.db.execute("SELECT * FROM environment WHERE fingerprint = ?", (fingerprint,)).fetchone()
        if row is None:
            return None
        python = row["python"].split()[0] + (f" ({row['executable']})" if row["executable"] else "")
        return dict(json.loads(row["packages"]), python=python)

    # --- the project's environment: the interpreter local runs use -------------------------------

    def interpreter(self, path_env: str | None = None, record: bool = False) -> str:
        """The Python interpreter local runs use: the one in the store's config. While none is
        recorded, the python on path_env (the caller's PATH), recorded when record is set (the
        store's first run). Fails, never falls back, when the recorded one is gone."""
        recorded = self.recorded_interpreter()
        if recorded:
            if not os.access(recorded, os.X_OK):
                raise CodaliteError(f"this store's python {recorded} is gone (was its venv deleted?); recreate it, "
                                    "or set another with `codalite env set PATH_TO_PYTHON`")
            return recorded
        path_env = path_env if path_env is not None else os.environ.get("PATH", "")
        if path_env not in self._found:
            _, found = memo.python_on_path(path_env)
            if not found:
                raise CodaliteError("no python on PATH for this store's runs; "
                                    "set one with `codalite env set PATH_TO_PYTHON`")
            try:
                self._found[path_env] = memo.executable_of(found)
            except ValueError as e:
                raise CodaliteError(f"the python on PATH ({found}) does not run ({e}); "
                                    "set another with `codalite env set PATH_TO_PYTHON`") from None
        python = self._found[path_env]
        if record:
            with self.tx():  # two first runs at once: one records, both use what it recorded
                added = self.db.execute("INSERT OR IGNORE INTO config VALUES ('python', ?)", (python,)).rowcount
                python = self.recorded_interpreter() or python
            if added:  # said once per store, when it happens (the CLI prints it on stderr)
                log.warning("this store's runs use %s from now on, whatever your PATH; "
                            "change it with `codalite env set PATH_TO_PYTHON`", python)
        return python

    def recorded_interpreter(self) -> str | None:
        """The interpreter in the store's config, or None before the first run (no checks)."""
        row = self.db.execute("SELECT value FROM config WHERE key = 'python'").fetchone()
        return row[0] if row else None

    def set_interpreter(self, python: str) -> tuple[str | None, str]:
        """Record the interpreter local runs use from now on (a path, or a command on PATH).
        Returns (previous or None, new): runs whose environment differs are new runs."""
        found = python if os.sep in python else shutil.which(python)
        if not found or os.path.isdir(found) or not os.access(found, os.X_OK):
            raise UsageError(f"no python at {python!r}; give the path of a Python interpreter, e.g. .venv/bin/python")
        try:
            exe = memo.executable_of(os.path.abspath(found))
        except ValueError as e:
            raise UsageError(f"{python!r} is not a working Python interpreter ({e})") from None
        with self.tx():
            old = self.recorded_interpreter()
            self.db.execute("INSERT OR REPLACE INTO config VALUES ('python', ?)", (exe,))
        return old, exe

    # --- staging (called by the worker) ------------------------------------------------------

    def stage(self, bundle: Bundle) -> str:
        """Move a created bundle on once its parents are final: failed (a parent failed), ready (its
        memo twin finished meanwhile: contents shared by hard links), or staged. Returns the new state."""
        parents = [self.get(d.parent_uuid) for d in bundle.dependencies]
        if not all(p.final for p in parents):
            return bundle.state
        bad = [p.uuid for p in parents if p.state != READY]
        if bad and not bundle.metadata.get("allow_failed_dependencies"):
            self.fail(bundle.uuid, f"Parent bundles failed: {', '.join(bad)} (use --allow-failed-dependencies to run anyway)")
            return FAILED
        inputs = self.memo_inputs(bundle.bundle_type, bundle.command, bundle.dependencies, bundle.runspec, bundle.metadata)
        # no inputs (a parent without contents, allowed to have failed): no key, nobody's twin
        key = memo.memo_key(inputs) if inputs is not None and bundle.runspec.get("memoize", True) else None
        runspec = dict(bundle.runspec, memo_inputs=inputs)
        twin = None if bundle.runspec.get("force") or key is None else self.memo_match(key, exclude_uuid=bundle.uuid)
        if twin and twin.state == READY:
            return READY if self.share_contents(bundle.uuid, twin) else self.get(bundle.uuid).state
        if twin:  # an identical run is on its way: wait for it, saying so once (not every round)
            status = f"waiting for identical run {twin.uuid}"
            if bundle.metadata.get("staged_status") != status:
                self._change(bundle.uuid, None, {"staged_status": status}, from_states=(CREATED,), memo_key=key,
                             runspec=json.dumps(runspec))
            return bundle.state
        return STAGED if self._change(bundle.uuid, STAGED, from_states=(CREATED,), memo_key=key,
                                      runspec=json.dumps(runspec)) else self.get(bundle.uuid).state

    def share_contents(self, uuid: str, twin: Bundle) -> bool:
        """Finish a bundle as a copy of its ready memo twin; hard links cost no space. Returns whether
        it became ready (else it failed, saying why, or was killed meanwhile)."""
        tmp = self.tmp_dir(uuid)
        remove_tree(tmp)  # a stale copy (this pid, reused) must not fail the copy forever
        src = self.bundle_dir(twin.uuid)
        try:
            if os.path.isdir(src) and not os.path.islink(src):
                shutil.copytree(src, tmp, symlinks=True, copy_function=lambda a, b: os.link(a, b, follow_symlinks=False))
            else:
                os.link(src, tmp, follow_symlinks=False)  # a link is shared as the link, never its target
            _, _, sig = self.publish(tmp, uuid, twin.content_hash, twin.metadata.get("data_size") or 0)
        except OSError as e:  # e.g. a full disk: this bundle fails, saying why; the worker goes on
            remove_tree(tmp)
            self.fail(uuid, f"could not share the contents of its memo twin {twin.uuid}: {e}")
            return False
        return self._change(uuid, READY, {"memo_hit_of": twin.uuid, "data_size": twin.metadata.get("data_size"),
                                   "exitcode": twin.metadata.get("exitcode")}, from_states=(CREATED,),
                     content_hash=twin.content_hash, is_dir=twin.is_dir, memo_key=twin.memo_key, stat_sig=sig)

    # --- other verbs -----------------------------------------------------------------------

    def kill(self, bundle: Bundle) -> None:
        """Kill a bundle that is not final: at once when it has not started, else by the worker."""
        if bundle.final:
            raise BundleStateError(f"bundle {bundle.uuid} ({bundle.name}) is already {bundle.state}")
        with self.tx():
            # not started yet: kill it here; otherwise the worker sees the request and stops it
            self.db.execute(
                "UPDATE bundle SET state = ?, metadata = json_set(metadata, '$.failure_message', 'Kill requested') "
                "WHERE uuid = ? AND state IN (?, ?)", (KILLED, bundle.uuid, CREATED, STAGED))
            self.db.execute("UPDATE bundle SET kill_requested = 1 WHERE uuid = ?", (bundle.uuid,))
        launch.wake(self.home)  # a sleeping worker stops the run now, not at its next look

    def descendants(self, uuids: Sequence[str], depth: int | None = None) -> list[str]:
        """Every bundle downstream of the given ones (breadth first, up to depth levels)."""
        seen, frontier, level = [], list(uuids), 0
        while frontier and (depth is None or level < depth):
            nxt = []
            for u in frontier:
                for c in self.children(u):
                    if c not in seen and c not in uuids:
                        seen.append(c)
                        nxt.append(c)
            frontier, level = nxt, level + 1
        return seen

    def rm(self, bundles: Sequence[Bundle], recursive: bool = False, force: bool = False,
           dry_run: bool = False) -> list[str]:
        """Delete bundles (with their descendants if recursive). Returns the uuids removed."""
        uuids = [b.uuid for b in bundles]
        if recursive:
            uuids += self.descendants(uuids)
        for u in uuids:
            b = self.get(u)
            if b.state in ACTIVE_STATES:
                raise BundleStateError(f"bundle {u} ({b.name}) is {b.state}; kill it first with `codalite kill {u}`")
            others = [c for c in self.children(u) if c not in uuids]
            if others and not force:
                raise BundleStateError(
                    f"bundle {u} ({b.name}) has {len(others)} dependent bundle(s) ({', '.join(o[:10] for o in others[:3])}); "
                    "pass -r to delete them too, or --force to leave them dangling")
        if dry_run:
            return uuids
        # crash-safe: in one transaction, the rows go and each bundle's contents are renamed into
        # tmp/<pid>-<uuid>.rm (atomic); the slow delete comes after the commit. Killed before the
        # commit: the rows are still there and clean_tmp renames the contents back; after it:
        # clean_tmp deletes them. bundles/ never holds a half-deleted bundle.
        self.clean_tmp()
        moved = []
        with self.tx():
            for u in uuids:
                self.db.execute("DELETE FROM dependency WHERE child_uuid = ?", (u,))
                self.db.execute("DELETE FROM bundle WHERE uuid = ?", (u,))
            for u in uuids:
                for src, suffix in ((self.bundle_dir(u), ".rm"), (self.run_dir(u), ".rmrun")):
                    if os.path.lexists(src):
                        if os.path.isdir(src) and not os.path.islink(src):  # (a file may be a shared hard link)
                            hashing.chmod_w(src, True)  # moving a directory to another parent rewrites its '..'
                        os.rename(src, self.tmp_dir(u) + suffix)
                        moved.append(self.tmp_dir(u) + suffix)
        for path in moved:
            remove_tree(path)
        return uuids

    def wait(self, bundle: Bundle, timeout: float | None = None,
             on_poll: Callable[[Bundle], None] | None = None) -> Bundle:
        """Block until the bundle is final; returns it. Starts a worker or recovers orphaned runs
        when no worker is alive."""
        start, delay, last_check = time.time(), 0.01, 0.0
        while True:
            b = self.get(bundle.uuid)
            if on_poll:
                on_poll(b)
            if b.final:
                return b
            if timeout is not None and time.time() - start > timeout:
                return b
            if time.time() - last_check > 1.0:
                last_check = time.time()
                launch.ensure_worker(self.home)  # a no-op while a worker is alive
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def why(self, bundle: Bundle) -> Why:
        """Explain a bundle's memo key against the nearest earlier run of the same name or command."""
        mine = bundle.runspec.get("memo_inputs")
        other = None
        for where, params in (("name = ?", (bundle.name,)), ("command = ?", (bundle.command,))):
            if not mine:
                break
            earlier = self.query(f"{where} AND id < ? AND bundle_type = ?", (*params, bundle.id, bundle.bundle_type))
            other = next((b for b in earlier if b.runspec.get("memo_inputs")), None)
            if other:
                break
        return Why(other, memo.why(mine, other, self.packages_of))

    def mimic(self, old: Bundle, new: Bundle | None = None, name: str | None = None, depth: int = 10,
              force: bool | str = False, start_worker: bool = True) -> list[tuple[Bundle, Bundle]]:
        """Rerun bundles by analogy (`cl mimic`). With one bundle, rerun it (forced). With old and
        new, rerun everything downstream of old with new in its place. Returns [(old, new_bundle)]."""
        if new is None:
            if old.bundle_type == "dataset":
                raise UsageError(f"{old.uuid} is an upload; there is nothing to rerun")
            targets, mapping, force = [old.uuid], {}, True
        else:
            targets, mapping = self.descendants([old.uuid], depth), {old.uuid: new.uuid}
            if not targets:
                raise UsageError(f"no bundle depends on {old.uuid} ({old.name}); nothing to mimic")
        # creation order is a topological order: a bundle's parents exist before it
        ordered = sorted((self.get(u) for u in targets), key=lambda b: b.id)
        return self._rerun(ordered, mapping, name, force, start_worker, old.uuid if new is None else None)

    def _rerun(self, ordered: list[Bundle], mapping: dict[str, str], name: str | None, force: bool | str,
               start_worker: bool, output: str | None = None) -> list[tuple[Bundle, Bundle]]:
        """Make or run each bundle again, parents first, with its dependencies replaced through mapping
        (old uuid -> new uuid, extended as copies are made). As CodaLab's mimic_bundles, name goes to
        the output's copy and every other copy is named NAME-OLDNAME (without name, copies keep theirs)."""
        names = {b.uuid: b.name if not name else name if b.uuid == output else f"{name}-{b.name}" for b in ordered}
        for n in names.values():
            spec.check_name(n)  # before any copy is made
        copied = {b.uuid for b in ordered}

        def deps_of(b: Bundle) -> list[tuple[str, str]]:
            return [(d.child_path, mapping.get(d.parent_uuid, d.parent_uuid) + (f"/{d.parent_path}" if d.parent_path else ""))
                    for d in b.dependencies]

        for b in ordered:  # what run/make would refuse (a missing path, a failed parent), before any copy is made
            kept = [(k, t) for (k, t), d in zip(deps_of(b), b.dependencies) if d.parent_uuid not in copied]
            self.resolve_deps(kept, b.bundle_type == "run" and bool(b.metadata.get("allow_failed_dependencies")))
        done = []
        for b in ordered:
            deps = deps_of(b)
            bname = names[b.uuid]
            # a --no-memo bundle (not a function of its inputs) stays one when rerun: its copy must not
            # become what later identical runs reuse
            force_b = NO_MEMO if b.runspec.get("memoize") is False else force
            if b.bundle_type == "make":
                nb, _ = self.make(deps, name=bname, force=force_b, start_worker=start_worker)
            else:
                requests = {k: b.metadata[k] for k in RUN_REQUESTS if k in b.metadata}
                nb, _ = self.run(b.command or "", deps, name=bname, description=b.metadata.get("description", ""),
                                 tags=b.metadata.get("tags", []), requests=requests,
                                 env_vars=b.runspec.get("env_vars"), force=force_b,
                                 path_env=b.runspec.get("path"), start_worker=start_worker)
            mapping[b.uuid] = nb.uuid
            done.append((b, nb))
        return done

    def fsck(self) -> list[str]:
        """Re-verify every ready bundle's content hash. Returns a list of problems (strings)."""
        problems = []
        for b in self.query(f"state = '{READY}'", order="id"):
            path = self.bundle_dir(b.uuid)
            if not os.path.lexists(path):
                problems.append(f"{b.uuid} ({b.name}): contents are missing"
                                + (" (an interrupted rm: `codalite fsck --repair` puts them back)"
                                   if any(e.endswith(f"-{b.uuid}.rm") for e in self._tmp_entries()) else ""))
            elif hashing.hash_path(path) != b.content_hash:
                problems.append(f"{b.uuid} ({b.name}): contents changed since it was finalized (hash mismatch)")
        for entry in self._orphans():
            problems.append(f"{entry}: directory without a bundle record (left by a crash); "
                            "`codalite fsck --repair` deletes it")
        return problems

    def leftovers(self) -> list[str]:
        """Debris that fsck --repair deletes: tmp/ entries of processes that are gone (interrupted
        uploads, makes, rms) and runs/ directories of bundles that are not running."""
        return [f"tmp/{e}" for e in self._tmp_entries() if not owner_alive(e)] + \
               [f"runs/{e}" for e in self._stale_runs()]

    def repair(self) -> list[str]:
        """Delete the debris crashes leave (see leftovers, and bundles/ directories without a row);
        put back the contents of an rm that was killed before it committed. Returns what it did."""
        done = self.clean_tmp(report=True, unowned=True) or []
        with self.tx():  # the lock uploads hold from rename to insert: an orphan seen here is debris
            for entry in self._orphans():
                remove_tree(self.bundle_dir(entry))
                done.append(f"deleted bundles/{entry} (no bundle record)")
            for entry in self._stale_runs():
                remove_tree(self.run_dir(entry))
                done.append(f"deleted runs/{entry} (its bundle is not running)")
        return done

    def clean_tmp(self, report: bool = False, unowned: bool = False) -> list[str] | None:
        """Delete tmp/ entries whose owning process is gone (tmp_dir names them <pid>-...), and roll
        back a killed rm (its rows are still there: its contents go back to bundles/). Called by
        every command that writes, so a killed upload's partial copy does not stay for long.
        Entries named without a pid (older versions) go only when asked (unowned: fsck --repair)."""
        self._tmp_cleaned, done = True, []
        for entry in self._tmp_entries():
            owner = re.match(r"\d+-", entry)
            if (owner and owner_alive(entry)) or (not owner and not unowned):
                continue
            m = re.match(r"\d+-(0x[0-9a-f]{32})\.rm$", entry)
            if m:
                with self.tx():  # the row's presence decides: committed rm or not
                    row = self.db.execute("SELECT 1 FROM bundle WHERE uuid = ?", (m[1],)).fetchone()
                    final = self.bundle_dir(m[1])
                    if row and not os.path.lexists(final):
                        try:
                            os.rename(os.path.join(self.home, "tmp", entry), final)
                        except FileNotFoundError:  # another process got there first
                            continue
                        hashing.chmod_w(final, False)
                        done.append(f"put back bundles/{m[1]} (an rm killed before it finished)")
                        continue
            # claim it first (a rename within tmp/), so two cleaners never delete the same entry
            mine = os.path.join(self.home, "tmp", f"{os.getpid()}-gc-{entry}")
            try:
                os.rename(os.path.join(self.home, "tmp", entry), mine)
            except FileNotFoundError:
                continue
            remove_tree(mine)
            done.append(f"deleted tmp/{entry} (left by an interrupted upload, make or rm)")
        return done if report else None

    def _tmp_entries(self):
        try:
            return sorted(os.listdir(os.path.join(self.home, "tmp")))
        except FileNotFoundError:
            return []

    def _orphans(self):
        """Entries of bundles/ without a row (read with the rows in one snapshot)."""
        entries = os.listdir(os.path.join(self.home, "bundles"))
        known = {r[0] for r in self.db.execute("SELECT uuid FROM bundle")}
        return sorted(e for e in entries if e not in known)

    def _stale_runs(self):
        """runs/ directories of bundles that are not active. Listed before the states are read: the
        worker makes a run's directory only after marking it preparing, so one listed here whose
        bundle is not active (or gone) afterwards is left over."""
        entries = os.listdir(os.path.join(self.home, "runs"))
        active = {r[0] for r in self.db.execute(
            f"SELECT uuid FROM bundle WHERE state IN ({','.join('?' * len(ACTIVE_STATES))})", ACTIVE_STATES)}
        return sorted(e for e in entries if e not in active)


    # --- the store's settings, a current worksheet, editable metadata (`cl` verbs) ------------------

    def config_value(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM config WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_config_value(self, key: str, value: str | None) -> None:
        """Set (or with None, delete) one of the store's settings."""
        with self.tx():
            if value is None:
                self.db.execute("DELETE FROM config WHERE key = ?", (key,))
            else:
                self.db.execute("INSERT OR REPLACE INTO config VALUES (?, ?)", (key, value))

    EDITABLE = ("name", "description", "tags", "license", "source_url")  # and any key not generated by a run

    def edit_metadata(self, bundle: Bundle, changes: dict[str, Any]) -> Bundle:
        """`cl edit`: change a bundle's editable metadata (name, description, tags, ...). Its contents,
        command, dependencies, state and memo key stay as they are: they are what the bundle is."""
        from .bundle import GENERATED, RUN_REQUESTS as requests
        # what a run or the worker recorded, the bundle's own columns, and the names `info` (-v) shows
        # beside metadata: editing any would make `info` and search say something untrue about it
        fixed = {"uuid", "id", "bundle_type", "command", "state", "content_hash", "memo_key", "is_dir", "stat_sig",
                 "runspec", "kill_requested", "location", "dependencies", "children", "host_worksheets",
                 "contents", "stdout", "stderr", *GENERATED, *requests}
        for key in changes:
            if key in fixed:
                raise UsageError(f"{key!r} is not editable: it records how {bundle.uuid} was made (a bundle's "
                                 "contents, command and run settings are immutable; `codalite mimic` makes a new one)")
            if not spec.NAME_RE.match(key):
                raise UsageError(f"invalid metadata field {key!r}: use letters, digits, _ . -")
        if "name" in changes:
            spec.check_name(changes["name"])
        if isinstance(changes.get("tags"), str):  # `-f tags "a b"`: a list, as -T makes (search reads a list)
            changes = dict(changes, tags=changes["tags"].replace(",", " ").split())
        with self.tx():
            row = self.db.execute("SELECT metadata FROM bundle WHERE uuid = ?", (bundle.uuid,)).fetchone()
            if row is None:
                raise BundleNotFound(bundle.uuid)
            md = json.loads(row[0])
            md.update(changes)
            self.db.execute("UPDATE bundle SET metadata = ?, name = ? WHERE uuid = ?",
                            (json.dumps(md), md.get("name"), bundle.uuid))
        return self.get(bundle.uuid)

    def ancestors(self, uuid: str, depth: int | None = None) -> set[str]:
        """Every bundle upstream of uuid (its parents, theirs, ... up to depth levels)."""
        return {u for level in self.lineage([uuid], depth)[1:] for u in level}

    def lineage(self, uuids: Iterable[str], depth: int | None = None) -> list[dict[str, Bundle | None]]:
        """The one walk up the dependency graph, level by level: [0] the bundles themselves, [1] their
        parents, [2] the parents' parents not met before, ... up to depth levels. Each level keeps the
        order met (bundle by bundle, a bundle's dependencies in their order); a uuid missing from the
        store maps to None and nothing above it is walked."""
        levels: list[dict[str, Bundle | None]] = [{}]
        for u in uuids:
            levels[0].setdefault(u, None)
        levels[0].update({b.uuid: b for b in self.get_many(levels[0])})
        seen = set(levels[0])
        while levels[-1] and (depth is None or len(levels) <= depth):
            parents = [d.parent_uuid for b in levels[-1].values() if b is not None for d in b.dependencies]
            nxt = dict.fromkeys(p for p in parents if p not in seen)
            if not nxt:
                break
            seen.update(nxt)
            nxt.update({b.uuid: b for b in self.get_many(nxt)})
            levels.append(nxt)
        return levels

    def upstream(self, uuids: Sequence[str], oldest_first: bool = False) -> list[tuple[str, Bundle | None]]:
        """The bundles and all their ancestors, parents before children (an order to re-execute
        them in): depth-first from each of uuids in turn, or with oldest_first from every bundle met
        in creation order. A bundle missing from the store comes as (uuid, None)."""
        found = {u: b for level in self.lineage(uuids) for u, b in level.items()}
        roots = list(uuids)
        if oldest_first:
            ids = {u: b.id for u, b in found.items() if b is not None}
            roots = sorted(found, key=lambda u: ids.get(u, 0))
        order: list[tuple[str, Bundle | None]] = []
        done: set[str] = set()

        def visit(u: str) -> None:
            if u in done:
                return
            done.add(u)
            b = found[u]
            for d in b.dependencies if b is not None else ():
                visit(d.parent_uuid)
            order.append((u, b))

        for u in roots:
            visit(u)
        return order

    def mimic_analogy(self, olds: Sequence[Bundle], news: Sequence[Bundle], output: Bundle | None = None,
                      name: str | None = None, depth: int = 10, force: bool | str = False, start_worker: bool = True,
                      dry_run: bool = False) -> list[tuple[Bundle, Bundle | None]]:
        """`cl mimic A1.. [X] B1..`: rerun the bundles downstream of the old inputs (and, given X, only
        those that X was made from, X included) with each old input replaced by its new one.
        Returns [(old, new_bundle)] in creation order; name goes to X's copy (see _rerun)."""
        mapping = {o.uuid: n.uuid for o, n in zip(olds, news)}
        targets = set(self.descendants(list(mapping), depth))
        if output is not None:
            upstream = self.ancestors(output.uuid, depth) | {output.uuid}
            if not set(mapping) & self.ancestors(output.uuid, depth):
                raise UsageError(f"{output.uuid} ({output.name}) was not made from "
                                 f"{', '.join(o.uuid for o in olds)} (within --depth {depth}); nothing to mimic")
            targets &= upstream
        if not targets:
            raise UsageError(f"no bundle depends on {', '.join(o.uuid for o in olds)}; nothing to mimic")
        ordered = sorted((self.get(u) for u in targets), key=lambda b: b.id)  # parents before children
        if dry_run:
            return [(b, None) for b in ordered]
        return list(self._rerun(ordered, mapping, name, force, start_worker, output.uuid if output else None))

    # --- stored worksheets (CodaLab's worksheet and worksheet_item tables) -------------------------
    # An item is (type, value, bundle_uuid, subworksheet_uuid); worksheets/model.py gives them meaning.

    def worksheet_items(self, worksheet_uuid: str) -> list[sqlite3.Row]:
        """A stored worksheet's items in order."""
        return self.db.execute("SELECT * FROM worksheet_item WHERE worksheet_uuid = ? ORDER BY sort_key, id",
                               (worksheet_uuid,)).fetchall()

    def count_worksheet_items(self, worksheet_uuid: str) -> int:
        return self.db.execute("SELECT COUNT(*) FROM worksheet_item WHERE worksheet_uuid = ?",
                               (worksheet_uuid,)).fetchone()[0]

    def worksheets(self, names: Sequence[str] = (), words: Sequence[str] = ()) -> list[sqlite3.Row]:
        """Worksheets whose name is LIKE every pattern in names and whose name, title or uuid holds
        every word (a uuid starts with it), oldest first."""
        where: list[str] = []
        params: list[str] = []
        for pattern in names:
            where.append("name LIKE ?")
            params.append(pattern)
        for w in words:
            where.append("(name LIKE ? OR title LIKE ? OR uuid LIKE ?)")
            params += [f"%{w}%", f"%{w}%", w + "%"]
        return self.db.execute(f"SELECT * FROM worksheet WHERE {' AND '.join(where) or '1'} ORDER BY id",
                               params).fetchall()

    def _check_worksheet_name_free(self, name: str, uuid: str | None = None) -> None:
        if self.db.execute("SELECT 1 FROM worksheet WHERE name = ? AND uuid IS NOT ?", (name, uuid)).fetchone():
            raise UsageError(f"a worksheet named {name!r} already exists; pick another name")

    def new_worksheet(self, name: str, title: str = "") -> str:
        """Create an empty stored worksheet; returns its uuid. Names are unique."""
        spec.check_name(name)
        uuid = spec.new_uuid()
        with self.tx():
            self._check_worksheet_name_free(name)
            self.db.execute("INSERT INTO worksheet (uuid, name, title, created) VALUES (?,?,?,?)",
                            (uuid, name, title, time.time()))
        return uuid

    def edit_worksheet(self, uuid: str, name: str | None = None, title: str | None = None,
                       items: Sequence[tuple[str, str, str | None, str | None]] | None = None) -> None:
        """Rename a worksheet, set its title and/or replace its items, all or nothing."""
        if name is not None:
            spec.check_name(name)
        with self.tx():
            if name is not None:
                self._check_worksheet_name_free(name, uuid)
                self.db.execute("UPDATE worksheet SET name = ? WHERE uuid = ?", (name, uuid))
            if title is not None:
                self.db.execute("UPDATE worksheet SET title = ? WHERE uuid = ?", (title, uuid))
            if items is not None:
                self.db.execute("DELETE FROM worksheet_item WHERE worksheet_uuid = ?", (uuid,))
                self._insert_worksheet_items(uuid, items, 0)

    def append_worksheet_items(self, uuid: str, items: Sequence[tuple[str, str, str | None, str | None]]) -> None:
        with self.tx():
            last = self.db.execute("SELECT COALESCE(MAX(sort_key), -1) FROM worksheet_item WHERE worksheet_uuid = ?",
                                   (uuid,)).fetchone()[0]
            self._insert_worksheet_items(uuid, items, last + 1)

    def _insert_worksheet_items(self, uuid, items, start):
        self.db.executemany(
            "INSERT INTO worksheet_item (worksheet_uuid, sort_key, type, value, bundle_uuid, subworksheet_uuid) "
            "VALUES (?,?,?,?,?,?)", [(uuid, start + i, *item) for i, item in enumerate(items)])

    def bundle_item_ids(self, worksheet_uuid: str, bundle_uuid: str) -> list[int]:
        """The ids of a bundle's items on a worksheet, the last one first."""
        return [r[0] for r in self.db.execute(
            "SELECT id FROM worksheet_item WHERE worksheet_uuid = ? AND bundle_uuid = ? ORDER BY sort_key DESC, id DESC",
            (worksheet_uuid, bundle_uuid))]

    def delete_worksheet_item(self, item_id: int) -> None:
        with self.tx():
            self.db.execute("DELETE FROM worksheet_item WHERE id = ?", (item_id,))

    def host_worksheets(self, bundle_uuid: str) -> list[tuple[str, str]]:
        """(uuid, name) of the stored worksheets showing a bundle, oldest first."""
        rows = self.db.execute(
            "SELECT DISTINCT w.uuid, w.name FROM worksheet_item i JOIN worksheet w ON w.uuid = i.worksheet_uuid "
            "WHERE i.bundle_uuid = ? ORDER BY w.id", (bundle_uuid,))
        return [(r[0], r[1]) for r in rows]

    # --- search's compiled queries (search.py writes the WHERE and ORDER BY over `bundle`) -----------

    def _search_sql(self) -> None:
        # codalab_float(x): a JSON real as CodaLab's metadata_value holds it, str(float(x))
        self.db.create_function("codalab_float", 1, lambda x: None if x is None else str(float(x)),
                                deterministic=True)

    def search_sum(self, expr: str, where: str, params: Sequence[Any], json_path: str | None = None) -> Any:
        """SUM of expr over the distinct matching bundles; with json_path, one term per (bundle, value
        at that path), `j` being the value (each element of a list counts)."""
        self._search_sql()
        if json_path:
            sql = (f"SELECT SUM(n) FROM (SELECT DISTINCT bundle.uuid, {expr} AS n FROM bundle, "
                   f"json_each(bundle.metadata, ?) j WHERE j.type != 'null' AND {where})")
            params = [json_path, *params]
        else:
            sql = f"SELECT SUM(n) FROM (SELECT DISTINCT uuid, {expr} AS n FROM bundle WHERE {where})"
        return self.db.execute(sql, list(params)).fetchone()[0]

    def search_page(self, where: str, params: Sequence[Any], order: str, limit: int | None = None,
                    offset: int = 0, count: bool = False) -> list[Bundle] | int:
        """The matching bundles in that order (params: the WHERE's, then the ORDER BY's), limited to
        a page; with count, how many are on the page."""
        self._search_sql()
        page = ""
        if limit is not None or offset:
            page = f" LIMIT {-1 if limit is None else int(limit)} OFFSET {int(offset)}"
        if count:
            sql = f"SELECT COUNT(*) FROM (SELECT uuid FROM bundle WHERE {where} ORDER BY {order}{page})"
            return int(self.db.execute(sql, list(params)).fetchone()[0])
        return self._bundles(self.db.execute(f"SELECT * FROM bundle WHERE {where} ORDER BY {order}{page}",
                                             list(params)))


def validate_requests(requests: dict[str, Any]) -> dict[str, Any]:
    """Check run metadata values the way `cl run` does; returns them normalized."""
    out = {}
    for key, value in requests.items():
        if key not in RUN_REQUESTS:
            raise UsageError(f"unknown run metadata key {key!r}; known: {', '.join(RUN_REQUESTS)}")
        if value is None:
            continue
        if key in ("request_memory", "request_disk") and value != "":
            spec.parse_size(value)
        elif key == "request_time" and value != "":
            spec.parse_duration(value)
        elif key in ("request_cpus", "request_gpus", "request_priority"):
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise UsageError(f"{key} must be a whole number, not {value!r}") from None
            if key != "request_priority" and value < 0:
                raise UsageError(f"{key} cannot be negative")
            if key == "request_cpus" and value < 1:
                raise UsageError("request_cpus must be at least 1: a run needs a CPU")
        elif key == "request_network":  # CodaLab's server takes a boolean only
            value = bool(value)
        elif key == "exclude_patterns":
            value = list(value)
            for pattern in value:  # patterns delete files: they must stay inside the run's directory
                if not pattern or os.path.isabs(pattern) or ".." in pattern.split("/"):
                    raise UsageError(f"bad exclude pattern {pattern!r}: use a relative path inside the run's "
                                     "directory, without '..' (e.g. checkpoints/*)")
        out[key] = value
    return out


def run_metadata(command: str, name: str | None = None, description: str = "", tags: Iterable[str] = (),
                 requests: dict[str, Any] | None = None) -> dict[str, Any]:
    """A run's metadata, the one way for local runs, remote runs and recipe cells: CodaLab's defaults,
    its name (checked; from the command's first word when not given), the checked requests."""
    if not command or not command.strip():
        raise UsageError("the run has no command; give it as the last argument, quoted")
    md = default_metadata("run", spec.check_name(name) if name else default_name("run-" + command.split()[0]),
                          description, tags)
    md.update(validate_requests(requests or {}))
    return md


def default_name(text: str) -> str:
    """A valid bundle name from a file name or command word ('my data.csv' -> 'my_data.csv')."""
    name = "".join(c if c.isalnum() or c in "_.-" else "_" for c in os.path.basename(text.rstrip("/")))
    return name if name and (name[0].isalpha() or name[0] == "_") else "_" + name


def remove_tree(path: str) -> None:
    """Remove a file or tree, restoring the write bits that finished bundles drop: on directories
    only (what unlinking needs), never through a link, never on files (they may be hard links
    shared with another bundle, which must stay read-only)."""
    if not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        hashing.set_read_only(path, writable=True, dirs_only=True)
        shutil.rmtree(path)
    else:
        os.unlink(path)


def owner_alive(entry: str) -> bool:
    """Whether the process that named a tmp/ entry <pid>-... still runs (another user's counts).
    Entries without a pid (made by older versions) have no owner."""
    m = re.match(r"(\d+)-", entry)
    if not m or int(m[1]) <= 0:
        return False
    try:
        os.kill(int(m[1]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

"""The store's SQLite database: schema, migrations, connections and transactions.

WAL mode lets readers run beside one writer; every change is one `BEGIN IMMEDIATE` transaction,
and a busy timeout makes concurrent codalite processes wait for each other instead of failing.
"""

import contextlib
import os
import sqlite3
import urllib.parse

# Each entry migrates the schema from version i to i+1 (PRAGMA user_version).
MIGRATIONS = [
    """
    CREATE TABLE bundle (
        id INTEGER PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        bundle_type TEXT NOT NULL,
        name TEXT,
        command TEXT,
        state TEXT NOT NULL,
        is_dir INTEGER,
        content_hash TEXT,
        stat_sig TEXT,
        memo_key TEXT,
        kill_requested INTEGER NOT NULL DEFAULT 0,
        metadata TEXT NOT NULL,
        runspec TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX bundle_name ON bundle(name, id);
    CREATE INDEX bundle_state ON bundle(state);
    CREATE INDEX bundle_memo ON bundle(memo_key);
    CREATE INDEX bundle_hash ON bundle(content_hash);
    CREATE TABLE dependency (
        child_uuid TEXT NOT NULL,
        child_path TEXT NOT NULL,
        parent_uuid TEXT NOT NULL,
        parent_path TEXT NOT NULL,
        PRIMARY KEY (child_uuid, child_path)
    );
    CREATE INDEX dependency_parent ON dependency(parent_uuid);
    CREATE TABLE environment (
        fingerprint TEXT PRIMARY KEY,
        python TEXT NOT NULL,
        packages TEXT NOT NULL
    );
    CREATE TABLE python_cache (
        executable TEXT PRIMARY KEY,
        version TEXT NOT NULL,
        dirs_stamp TEXT NOT NULL,
        fingerprint TEXT NOT NULL
    );
    """,
    # 2: worksheets (CodaLab's worksheet and worksheet_item tables)
    """
    CREATE TABLE worksheet (
        id INTEGER PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL
    );
    CREATE TABLE worksheet_item (
        id INTEGER PRIMARY KEY,
        worksheet_uuid TEXT NOT NULL REFERENCES worksheet(uuid) ON DELETE CASCADE,
        sort_key INTEGER NOT NULL,
        type TEXT NOT NULL CHECK (type IN ('markup', 'directive', 'bundle', 'worksheet')),
        value TEXT NOT NULL DEFAULT '',
        bundle_uuid TEXT,
        subworksheet_uuid TEXT
    );
    CREATE INDEX worksheet_item_order ON worksheet_item(worksheet_uuid, sort_key);
    CREATE INDEX worksheet_item_bundle ON worksheet_item(bundle_uuid);
    """,
    # 3: the store's config (key "python": the interpreter local runs use), and the interpreter each
    # environment fingerprint was last computed from (so `why` can name a changed interpreter)
    """
    CREATE TABLE config (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    ALTER TABLE environment ADD COLUMN executable TEXT;
    """,
]


def connect(path):
    if read_only_filesystem(path):
        # a store on a read-only filesystem (a snapshot, a mounted archive): nobody can change it, so
        # SQLite may read it as immutable (WAL mode would need to write its -shm file); writes fail
        # with "attempt to write a readonly database"
        conn = sqlite3.connect(f"file:{urllib.parse.quote(os.path.abspath(path))}?immutable=1", uri=True,
                               isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        if conn.execute("PRAGMA user_version").fetchone()[0] < len(MIGRATIONS):
            raise sqlite3.OperationalError("attempt to write a readonly database (its schema needs an upgrade)")
        return conn
    conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    migrate(conn)
    return conn


def read_only_filesystem(path):
    """Whether the file system holding path (a database file) is mounted read-only."""
    try:
        return bool(os.statvfs(os.path.dirname(os.path.abspath(path))).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def migrate(conn):
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version >= len(MIGRATIONS):
        return
    with transaction(conn):
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for i in range(version, len(MIGRATIONS)):
            for statement in MIGRATIONS[i].split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version={len(MIGRATIONS)}")


@contextlib.contextmanager
def transaction(conn):
    """One write transaction, taken up front so two writers never deadlock upgrading a read lock."""
    if conn.in_transaction:  # nested: join the outer one
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")

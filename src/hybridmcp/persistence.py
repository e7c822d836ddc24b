"""Where runs and learned statistics live between processes: one database.

By default a SQLite file under the user's data directory holds both the LangGraph checkpoints
(durable, resumable runs) and the LangGraph store (provider statistics). ``--db PATH`` or the
``HYBRIDMCP_DB`` environment variable choose another file; ``postgresql://...`` uses PostgreSQL
(the ``postgres`` extra); ``:memory:`` keeps everything in the process (nothing survives it).

Beside it, ``<name>.audit-heads.db`` anchors the heads of audit trails (:class:`SqliteHeads`),
so that a trail cut or rewritten on disk no longer matches what the database remembers. It is a
file of its own, not a table in the run database, because the gate appends audit records (and
saves the head) synchronously on the event loop, while the async checkpointer holds the run
database's write lock across ``await``s (``execute`` ... ``await commit()``): a head saved in that
file would wait on a lock only the blocked loop can release (seen in a test run: the last record
written, its head never saved).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, closing
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore

from hybridmcp.audit import Head
from hybridmcp.errors import AuditError, ConfigError

ENV_DB = "HYBRIDMCP_DB"
DB_FILENAME = "hybridmcp.db"
MEMORY = ":memory:"
APPLICATION_ID = 0x48594D43  # "HYMC" in the SQLite header: a file hybridmcp made
SCHEMA_VERSION = 1  # PRAGMA user_version of the databases this version makes
# Tables LangGraph's SQLite checkpointer and store create: a file holding only these (and no
# application id) was made by a hybridmcp from before the id, and is adopted.
_OWN_TABLES = frozenset(
    {"checkpoints", "writes", "store", "store_migrations", "store_vectors", "vector_migrations"}
)


def default_db_path() -> Path:
    """``<user data dir>/hybridmcp/hybridmcp.db``: platformdirs' answer when it is installed,
    else ``$XDG_DATA_HOME`` or ``~/.local/share``."""
    try:
        import platformdirs
    except ImportError:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
        return base / "hybridmcp" / DB_FILENAME
    return Path(platformdirs.user_data_dir("hybridmcp")) / DB_FILENAME


def resolve_db(db: str | None) -> str:
    """The database to use: the given one, else ``$HYBRIDMCP_DB``, else the default file."""
    return db or os.environ.get(ENV_DB) or str(default_db_path())


def is_postgres(db: str) -> bool:
    return db.startswith(("postgresql://", "postgres://"))


@asynccontextmanager
async def open_persistence(db: str) -> AsyncIterator[tuple[BaseCheckpointSaver, BaseStore]]:
    """The checkpointer and the store on ``db``, their tables created if needed."""
    if db == MEMORY:
        from langgraph.checkpoint.memory import InMemorySaver
        from langgraph.store.memory import InMemoryStore

        yield InMemorySaver(), InMemoryStore()
    elif is_postgres(db):
        async with _postgres(db) as opened:
            yield opened
    else:
        async with _sqlite(db) as opened:
            yield opened


def _prepare_file(db: str) -> str:
    """The database file's path, its directory created."""
    path = Path(db).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


@asynccontextmanager
async def _sqlite(path: str) -> AsyncIterator[tuple[BaseCheckpointSaver, BaseStore]]:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
    from langgraph.store.sqlite.aio import AsyncSqliteStore

    async with AsyncExitStack() as stack:
        try:
            path = _prepare_file(path)
            check_sqlite(path)
            _stamp(path)
            saver = await stack.enter_async_context(AsyncSqliteSaver.from_conn_string(path))
            store = await stack.enter_async_context(AsyncSqliteStore.from_conn_string(path))
            await saver.setup()
            await store.setup()
        except (OSError, sqlite3.Error) as err:
            raise ConfigError(
                f"database {path!r} cannot be used: {err} "
                f"(choose another file with --db or ${ENV_DB})"
            ) from None
        yield saver, store


RUN_DB_HINT = f"choose another file with --db or ${ENV_DB}"


def _refuse(path: str, why: str, hint: str = RUN_DB_HINT) -> ConfigError:
    return ConfigError(f"database {path!r} {why}; it was not written to ({hint})")


def check_sqlite(
    path: str, own_tables: frozenset[str] = _OWN_TABLES, hint: str = RUN_DB_HINT
) -> None:
    """Refuse a damaged or foreign SQLite file before anything writes to it.

    Read-only: ``PRAGMA quick_check`` must answer ``ok``, and the file must carry hybridmcp's
    application id, or none with only LangGraph's tables (made before the id, or empty).
    A missing or empty file is new. Raises :class:`ConfigError`, the file untouched."""
    file = Path(path)
    if not file.exists() or file.stat().st_size == 0:
        return
    sidecars = [Path(f"{path}-wal"), Path(f"{path}-shm")]
    existed = [p.exists() for p in sidecars]
    try:
        with closing(sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            problem = _sqlite_problem(conn, own_tables)
    except sqlite3.DatabaseError as err:
        problem = f"is not a usable SQLite database ({err})"
    if problem:
        _remove_new_sidecars(sidecars, existed)
        raise _refuse(path, problem, hint)


def _remove_new_sidecars(sidecars: list[Path], existed: list[bool]) -> None:
    """A read-only look at a WAL-mode file leaves an empty -wal and a -shm behind (SQLite
    removes them only on a writable close): remove the ones the look made, if still empty."""
    wal = sidecars[0]
    if wal.exists() and wal.stat().st_size > 0:
        return
    for sidecar, was_there in zip(sidecars, existed, strict=True):
        if not was_there:
            sidecar.unlink(missing_ok=True)


def _sqlite_problem(conn: sqlite3.Connection, own_tables: frozenset[str]) -> str | None:
    check = [str(row[0]) for row in conn.execute("PRAGMA quick_check(5)")]
    if check != ["ok"]:
        first = " ".join(" ".join(check).split())
        return f"is damaged (PRAGMA quick_check: {first[:200]})"
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if app_id == APPLICATION_ID:
        if version > SCHEMA_VERSION:
            return (
                f"was made by a newer hybridmcp (schema {version}, this one knows {SCHEMA_VERSION})"
            )
        return None
    if app_id != 0:
        return f"belongs to another application (SQLite application_id {app_id:#x})"
    tables = {
        str(row[0])
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    }
    foreign = sorted(tables - own_tables)
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        return f"belongs to another application (tables: {shown})"
    return None


def _stamp(path: str) -> None:
    """Mark the file as hybridmcp's (a new one, or one adopted from an older hybridmcp)."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        if conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


@asynccontextmanager
async def _postgres(url: str) -> AsyncIterator[tuple[BaseCheckpointSaver, BaseStore]]:
    try:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from langgraph.store.postgres.aio import AsyncPostgresStore
    except ImportError:
        raise ConfigError(
            "a postgresql:// database needs the postgres extra: pip install 'hybridmcp[postgres]'"
        ) from None
    async with (
        AsyncPostgresSaver.from_conn_string(url) as saver,
        AsyncPostgresStore.from_conn_string(url) as store,
    ):
        await saver.setup()
        await store.setup()
        yield saver, store


class SqliteHeads:
    """Audit-trail heads in a SQLite file, one row per trail (``audit.HeadAnchor``).

    A connection per call: appends come from worker threads and several processes, and SQLite's
    own locking (with a busy timeout) orders them."""

    TABLE = "hybridmcp_audit_heads"

    def __init__(self, db: str | os.PathLike[str]) -> None:
        self.db = _prepare_file(str(db))
        # Checked like the run database: a damaged or foreign file is refused, untouched.
        check_sqlite(self.db, frozenset({self.TABLE}), "choose another with audit.head_db")
        self._stamped = False

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.db, timeout=30, isolation_level=None)
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.TABLE} (trail TEXT PRIMARY KEY, "
                "seq INTEGER NOT NULL, mac TEXT NOT NULL, updated_at REAL NOT NULL)"
            )
            if not self._stamped:
                _stamp(self.db)
                self._stamped = True
        except sqlite3.Error as err:
            raise AuditError(
                f"audit head database {self.db!r} cannot be used: {err} "
                "(choose another with audit.head_db, --db or $HYBRIDMCP_DB)"
            ) from None
        return conn

    def load(self, trail: str) -> Head | None:
        with closing(self._connect()) as conn:
            row = conn.execute(
                f"SELECT seq, mac FROM {self.TABLE} WHERE trail = ?", (trail,)
            ).fetchone()
        return Head(int(row[0]), str(row[1])) if row else None

    def save(self, trail: str, head: Head) -> None:
        with closing(self._connect()) as conn:
            conn.execute(
                f"INSERT INTO {self.TABLE} (trail, seq, mac, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(trail) DO UPDATE SET seq = excluded.seq, mac = excluded.mac, "
                "updated_at = excluded.updated_at",
                (trail, head.seq, head.mac, time.time()),
            )


def heads_path(db: str) -> Path:
    """The audit-head file that goes with the SQLite run database ``db``."""
    path = Path(db).expanduser()
    return path.with_name(f"{path.stem}.audit-heads.db")


def head_anchor(db: str | None, head_db: str | None = None) -> SqliteHeads | None:
    """Where audit heads are anchored: ``head_db`` if given, else beside the run database ``db``
    (as :func:`resolve_db` reads it), beside the default SQLite file when the runs live in
    PostgreSQL; nowhere (``None``) for ``:memory:``, where nothing outlives the process, so a
    later run could not tell a lost anchor from a cut trail."""
    if head_db is not None:
        return None if head_db == MEMORY else SqliteHeads(head_db)
    where = resolve_db(db)
    if where == MEMORY:
        return None
    return SqliteHeads(heads_path(str(default_db_path()) if is_postgres(where) else where))


def tokens_path(db: str | None) -> Path | None:
    """The OAuth token file that goes with the run database ``db`` (as :func:`resolve_db` reads
    it): ``<name>.tokens.db`` beside a SQLite file, beside the default file for PostgreSQL;
    ``None`` (tokens kept in the process) for ``:memory:``. A file of its own, mode 0600: the
    run database holds checkpoints a user may share, never secrets."""
    where = resolve_db(db)
    if where == MEMORY:
        return None
    path = Path(str(default_db_path()) if is_postgres(where) else where).expanduser()
    return path.with_name(f"{path.stem}.tokens.db")

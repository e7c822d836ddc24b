"""Where runs and learned statistics live between processes: one database.

By default a SQLite file under the user's data directory holds both the LangGraph checkpoints
(durable, resumable runs) and the LangGraph store (provider statistics). ``--db PATH`` or the
``HYBRIDMCP_DB`` environment variable choose another file; ``postgresql://...`` uses PostgreSQL
(the ``postgres`` extra): one connection pool per process shared by the official
``AsyncPostgresSaver`` and ``AsyncPostgresStore``, any number of processes on one database;
``:memory:`` keeps everything in the process (nothing survives it).

Several processes on one machine may share a SQLite file: it is in WAL mode, every connection
waits up to :data:`BUSY_TIMEOUT_S` for another's write (then :class:`DatabaseBusy`, one line),
and every transaction that writes takes the write lock first (``IMMEDIATE``: the saver's
connection, and the store's writing batches, :func:`_store_class`). Across machines or on a
network file system SQLite's locks do not hold: PostgreSQL is the answer there.

Beside it, ``<name>.audit-heads.db`` anchors the heads of audit trails (:class:`SqliteHeads`),
so that a trail cut or rewritten on disk no longer matches what the database remembers. It is a
file of its own, not a table in the run database, because the gate appends audit records (and
saves the head) synchronously on the event loop, while the async checkpointer holds the run
database's write lock across ``await``s (``execute`` ... ``await commit()``): a head saved in that
file would wait on a lock only the blocked loop can release (seen in a test run: the last record
written, its head never saved). In PostgreSQL, whose locks are per row, the heads are a table
of the run database (:class:`PostgresHeads`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager, closing
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from hybridmcp.audit import Head
from hybridmcp.errors import AnchorUnanswered, AuditError, ConfigError, HybridMCPError
from hybridmcp.lazyimport import defer

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.store.base import BaseStore

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
_OWN_COLUMNS = {
    "checkpoints": {"thread_id", "checkpoint_ns", "checkpoint_id", "checkpoint", "metadata"},
    "writes": {"thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx", "channel"},
    "store": {"prefix", "key", "value"},
    "store_migrations": {"v"},
}
"""Columns LangGraph's tables have always had: a table of one of their names without them
belongs to another application, whose file is refused rather than written to."""


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


def shown_db(db: str) -> str:
    """The database as shown to a user: a PostgreSQL URL without its user and password."""
    return pg_where(db) if is_postgres(db) else db


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


@asynccontextmanager
async def open_for_reading(db: str) -> AsyncIterator[tuple[BaseCheckpointSaver, BaseStore]]:
    """The checkpointer and the store on ``db``, to read only: nothing is created, stamped,
    migrated or locked, and the database is opened read-only, so reading changes nothing.
    A database whose tables are too old to be read as they are is refused in one line, and
    left as it was."""
    if is_postgres(db):
        async with _postgres(db, read_only=True) as opened:
            yield opened
    elif db == MEMORY:
        async with open_persistence(db) as opened:
            yield opened
    else:
        async with _sqlite_read_only(db) as opened:
            yield opened


def _prepare_file(db: str) -> str:
    """The database file's path, its directory created."""
    path = Path(db).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


@asynccontextmanager
async def _sqlite(path: str) -> AsyncIterator[tuple[BaseCheckpointSaver, BaseStore]]:
    async with AsyncExitStack() as stack:
        try:
            path = _prepare_file(path)
            # One process at a time: LangGraph's SQLite migrations are not safe to run at once
            # (two processes opening a new file both add the same column).
            check_sqlite(path)  # read-only: a refused file gets no lock file beside it
            lock = lock_path(path)
            made_lock = not lock.exists()
            try:
                with await file_lock(lock, what=f"database {path!r}"):
                    check_sqlite(path)  # again, now that no other process is setting it up
                    _stamp(path)
                    # The connections LangGraph's saver and store would open themselves, with a
                    # busy timeout: a write waits for other processes' writes, bounded.
                    # The saver's implicit transactions begin IMMEDIATE; the store's explicit
                    # ones too when they write (_ImmediateStore).
                    conn = await _connect(stack, path, isolation_level="IMMEDIATE")
                    saver = _saver_class()(conn)
                    store = _store_class()(await _connect(stack, path, isolation_level=None))
                    await _wal(saver.conn, path)
                    await saver.setup()
                    await store.setup()
                    saver.watch(path)
            except BaseException:
                if made_lock:  # a database refused leaves nothing new beside it
                    lock.unlink(missing_ok=True)
                raise
        except (OSError, sqlite3.Error) as err:
            raise ConfigError(
                f"database {path!r} cannot be used: {err} "
                f"(choose another file with --db or ${ENV_DB})"
            ) from None
        try:
            yield saver, store
        except sqlite3.Error as err:  # raised by the saver or the store inside a run
            raise sqlite_failure(path, err) from None
        except BaseExceptionGroup as group:  # the same, through a task group
            raise sqlite_failure(path, _only(group, sqlite3.Error)) from None


@asynccontextmanager
async def _sqlite_read_only(path: str) -> AsyncIterator[tuple[BaseCheckpointSaver, BaseStore]]:
    """LangGraph's saver and store on read-only connections to ``path``, told their tables are
    set up (their ``setup`` would create and migrate them); the ``-wal`` and ``-shm`` files a
    read-only look makes are removed after it (:func:`_remove_new_sidecars`)."""
    path = _expanded(path)
    sidecars = [Path(f"{path}-wal"), Path(f"{path}-shm")]
    existed = [p.exists() for p in sidecars]
    try:
        check_sqlite(path)
        async with AsyncExitStack() as stack:
            try:
                uri = _read_only_uri(path)
                saver = _saver_class()(await _connect(stack, uri, None, uri=True))
                store = _store_class()(await _connect(stack, uri, None, uri=True))
                saver.is_setup = store.is_setup = True
                await _check_tables(saver.conn, path)
            except (OSError, sqlite3.Error) as err:
                raise ConfigError(f"database {path!r} cannot be read: {err}") from None
            try:
                yield saver, store
            except sqlite3.OperationalError as err:
                raise _older(path, err) from None
            except sqlite3.Error as err:
                raise sqlite_failure(path, err) from None
    finally:
        _remove_new_sidecars(sidecars, existed)


def _expanded(path: str) -> str:
    return str(Path(path).expanduser())


def _read_only_uri(path: str) -> str:
    return f"{Path(path).resolve().as_uri()}?mode=ro"


_READ_TABLES = ("checkpoints", "writes", "store")
"""The tables a run is read from: the checkpoints, their pending writes, the store."""


async def _check_tables(conn: Any, path: str) -> None:
    """A file with none of the tables holds no run; one with some of them was made by an
    older version and cannot be read until it is migrated."""
    async with conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'") as cursor:
        tables = {str(row[0]) for row in await cursor.fetchall()}
    missing = [t for t in _READ_TABLES if t not in tables]
    if len(missing) == len(_READ_TABLES):
        raise ConfigError(
            f"database {path!r} holds no run (give the --db the run was started with)"
        )
    if missing:
        raise _older(path, sqlite3.OperationalError(f"no such table: {missing[0]}"))


def _older(path: str, err: sqlite3.OperationalError) -> HybridMCPError:
    """A table or column this version reads is missing: the file is from an older version."""
    text = " ".join(str(err).split())
    if not text.startswith(("no such table", "no such column")):
        return sqlite_failure(path, err)
    return ConfigError(f"database {path!r} {_needs_migrating(text)}")


def _needs_migrating(why: str) -> str:
    """What is said of a database too old to be read without migrating its tables."""
    return (
        f"was made by an older hybridmcp and cannot be read without migrating it ({why}); "
        "it was not changed (a `hybridmcp run` or `hybridmcp stats` with this --db migrates it)"
    )


E = TypeVar("E", bound=BaseException)


def _only(group: BaseExceptionGroup[Any], kind: type[E]) -> E:
    """The first error of ``group`` when all of them are ``kind``s; else ``group`` raised."""
    found, rest = group.split(kind)
    if found is None or rest is not None:
        raise group
    first: BaseException = found
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first  # type: ignore[return-value]


BUSY_TIMEOUT_S = 60.0
"""Longest wait of a write for the other processes' writes to the same SQLite file (each
takes milliseconds): then :class:`DatabaseBusy`, never a hang."""


class DatabaseBusy(HybridMCPError):
    """A SQLite file stayed locked by other processes for longer than :data:`BUSY_TIMEOUT_S`."""


def _locked(err: sqlite3.Error) -> bool:
    """The error is SQLite's busy timeout running out (another process holds the lock)."""
    text = str(err)
    return "locked" in text or "busy" in text


def sqlite_failure(path: str, err: sqlite3.Error) -> HybridMCPError:
    """One line for a SQLite error met while using the database ``path``."""
    text = " ".join(str(err).split())
    if _locked(err):
        return DatabaseBusy(
            f"database {path!r} stayed locked by other processes for over "
            f"{BUSY_TIMEOUT_S:.0f} s ({text})"
        )
    return HybridMCPError(f"database {path!r} failed: {text}")


async def _connect(
    stack: AsyncExitStack, path: str, isolation_level: str | None, *, uri: bool = False
) -> Any:
    """An aiosqlite connection to ``path`` (a ``file:`` URI with ``uri``) closed with
    ``stack``, waiting up to :data:`BUSY_TIMEOUT_S` for a lock another connection holds."""
    import aiosqlite

    conn = aiosqlite.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=isolation_level, uri=uri)
    return await stack.enter_async_context(conn)


_immediate: contextvars.ContextVar[bool] = contextvars.ContextVar("immediate", default=False)


def _store_class() -> Any:
    """LangGraph's SQLite store, its writing transactions begun ``IMMEDIATE``.

    The store runs each batch of operations in one ``BEGIN`` (deferred) transaction, and
    batches mix reads and writes (an ``aget`` and an ``aput`` from two tasks of a run). A
    deferred transaction that has read takes the write lock only at its first write, and in WAL
    mode, if another process committed in between, SQLite refuses it at once with "database is
    locked" (SQLITE_BUSY_SNAPSHOT: no busy timeout applies, the snapshot it read is stale). An
    ``IMMEDIATE`` transaction takes the write lock first, waiting on the busy timeout, so that
    cannot happen; read-only batches keep the deferred ``BEGIN`` (readers never wait in WAL).
    """
    global _STORE_CLASS
    if _STORE_CLASS is not None:
        return _STORE_CLASS
    from langgraph.store.base import PutOp

    defer("sqlite_vec")  # numpy, for vector search only: never loaded by this store
    from langgraph.store.sqlite.aio import AsyncSqliteStore

    class ImmediateSqliteStore(AsyncSqliteStore):
        async def abatch(self, ops: Iterable[Any]) -> list[Any]:
            ops = list(ops)
            token = _immediate.set(any(isinstance(op, PutOp) for op in ops))
            try:
                return await super().abatch(ops)
            finally:
                _immediate.reset(token)

        @asynccontextmanager
        async def _cursor(self, *, transaction: bool = True) -> AsyncIterator[Any]:
            if not self.is_setup:
                await self.setup()
            async with self.lock:
                try:
                    if transaction:
                        await self.conn.execute("BEGIN IMMEDIATE" if _immediate.get() else "BEGIN")
                    async with self.conn.cursor() as cur:
                        yield cur
                    if transaction:
                        await self.conn.execute("COMMIT")
                except BaseException:
                    if transaction:  # nothing of it is kept, even of a BEGIN still running
                        await _roll_back(self.conn)
                    raise

    _STORE_CLASS = ImmediateSqliteStore
    return _STORE_CLASS


_STORE_CLASS: Any = None


async def _roll_back(conn: Any) -> None:
    """End whatever transaction an operation cut short began. A cancelled caller's statement
    still runs in aiosqlite's thread (its ``BEGIN`` included): the rollback, queued at once,
    runs right after it, before any other statement. A transaction left open would hold the
    file's write lock from every other process, and fail the connection's next ``BEGIN``."""
    with contextlib.suppress(sqlite3.Error, ValueError):  # the first error tells; closed
        await conn.rollback()  # a no-op outside a transaction


T = TypeVar("T")


async def _whole(conn: Any, write: Awaitable[T]) -> T:
    """``write``, rolled back (:func:`_roll_back`) when its caller is cancelled."""
    try:
        return await write
    except asyncio.CancelledError:
        await _roll_back(conn)
        raise


def _saver_class() -> Any:
    """LangGraph's SQLite checkpointer, each write whole or not at all: one cancelled (its
    run cancelled by its caller) is rolled back (:func:`_roll_back`), where LangGraph's left
    its implicit transaction open."""
    global _SAVER_CLASS
    if _SAVER_CLASS is not None:
        return _SAVER_CLASS
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    class WholeWritesSqliteSaver(AsyncSqliteSaver):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._one_write = asyncio.Lock()
            self.busy_until = 0.0
            """``time.monotonic()`` until which a write does not wait for the lock again:
            the file stayed locked by another process for the whole busy timeout before."""
            self.file: tuple[str, int, int] | None = None
            """The database's path, device and inode, once opened (:meth:`watch`)."""

        def watch(self, path: str) -> None:
            """Check before each write that ``path`` is still the file opened: SQLite goes
            on writing to a file deleted under it, and what it writes is lost with it."""
            st = os.stat(path)
            self.file = (path, st.st_dev, st.st_ino)

        def _moved(self) -> None:
            if self.file is None:
                return
            path, dev, ino = self.file
            try:
                st = os.stat(path)
                if (st.st_dev, st.st_ino) == (dev, ino):
                    return
                what = "replaced by another file"
            except FileNotFoundError:
                what = "deleted"
            raise sqlite3.OperationalError(
                f"the file was {what} while in use: what this process wrote to it since is "
                "lost with the old file, and nothing more is written"
            )

        async def aput(self, *args: Any, **kwargs: Any) -> Any:
            return await self._write(
                lambda: super(WholeWritesSqliteSaver, self).aput(*args, **kwargs)
            )

        async def aput_writes(self, *args: Any, **kwargs: Any) -> None:
            await self._write(
                lambda: super(WholeWritesSqliteSaver, self).aput_writes(*args, **kwargs)
            )

        async def adelete_thread(self, thread_id: str) -> None:
            await self._write(lambda: super(WholeWritesSqliteSaver, self).adelete_thread(thread_id))

        async def adelete_for_runs(self, run_ids: Iterable[str]) -> None:
            """Delete the checkpoints the given runs saved, and their writes: the LangGraph
            server's ``rollback`` of a run it cancelled (its ``multitask_strategy``)."""
            ids = [str(r) for r in run_ids]
            if not ids:
                return
            marks = ", ".join("?" * len(ids))
            theirs = f"json_extract(CAST(metadata AS TEXT), '$.run_id') IN ({marks})"

            async def delete() -> None:
                async with self.lock, self.conn.cursor() as cur:
                    await cur.execute(
                        "DELETE FROM writes WHERE (thread_id, checkpoint_ns, checkpoint_id) IN "
                        f"(SELECT thread_id, checkpoint_ns, checkpoint_id FROM checkpoints "
                        f"WHERE {theirs})",
                        ids,
                    )
                    await cur.execute(f"DELETE FROM checkpoints WHERE {theirs}", ids)
                    await self.conn.commit()

            await self._write(delete)

        async def _write(self, write: Callable[[], Awaitable[T]]) -> T:
            """One write, whole (:func:`_whole`). After a write that waited the whole busy
            timeout in vain, the next ones for as long again try the lock without waiting:
            a run's writes (its checkpoint, its pending writes, the clean-up of a run without
            a thread) each waited the whole timeout, one after the other (three minutes for
            one failed run)."""
            async with self._one_write:  # (they run one at a time on the connection anyway)
                self._moved()
                hurry = time.monotonic() < self.busy_until
                if hurry:
                    await self.conn.execute("PRAGMA busy_timeout = 0")
                try:
                    return await _whole(self.conn, write())
                except sqlite3.OperationalError as err:
                    if not hurry and _locked(err):
                        self.busy_until = time.monotonic() + BUSY_TIMEOUT_S
                    raise
                finally:
                    if hurry:
                        with contextlib.suppress(sqlite3.Error, ValueError):
                            await self.conn.execute(
                                f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}"
                            )

    _SAVER_CLASS = WholeWritesSqliteSaver
    return _SAVER_CLASS


_SAVER_CLASS: Any = None


async def _wal(conn: Any, path: str) -> None:
    """Write-ahead logging: readers never wait for a writer, and writers queue on the busy
    timeout (the checkpointer asks for it too; a file that cannot have it is refused here)."""
    async with conn.execute("PRAGMA journal_mode=WAL") as cursor:
        row = await cursor.fetchone()
    mode = str(row[0]).lower() if row else "?"
    if mode != "wal":
        raise sqlite3.OperationalError(f"journal mode {mode!r} where WAL is needed")


RUN_DB_HINT = f"choose another file with --db or ${ENV_DB}"


# --------------------------------------------------------------------------------------------
# SQLite: one lock file beside the database orders its set-up and the statistics updates of
# every process using it.
# --------------------------------------------------------------------------------------------

FILE_LOCK_TIMEOUT_S = 60.0


class LockTimeout(HybridMCPError):
    """Another process held a lock for longer than allowed."""


def lock_path(db: str) -> Path:
    """``<db>.lock``: hybridmcp's lock file beside the SQLite database ``db``."""
    return Path(f"{db}.lock")


class HeldLock:
    """An exclusive ``flock`` held on an open descriptor; closing it releases the lock (so does
    the process's death)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


async def file_lock(
    path: Path, timeout_s: float = FILE_LOCK_TIMEOUT_S, what: str = "the database"
) -> HeldLock:
    """An exclusive lock on ``path`` (made if missing), waited for without blocking the event
    loop; :class:`LockTimeout` after ``timeout_s``. Use as ``with await file_lock(p): ...``."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    deadline = time.monotonic() + timeout_s
    pause = 0.002
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return HeldLock(fd)
            except BlockingIOError:
                pass
            if time.monotonic() > deadline:
                raise LockTimeout(
                    f"{what} stayed locked by another process for {timeout_s:.0f} s ({path})"
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise


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
        with closing(sqlite3.connect(_read_only_uri(path), uri=True)) as conn:
            problem = _sqlite_problem(conn, own_tables)
    except sqlite3.DatabaseError as err:
        problem = _unopened(file, err)
    if problem:
        _remove_new_sidecars(sidecars, existed)
        raise _refuse(path, problem, hint)


LOW_DISK_BYTES = 1 << 20
"""Free space below which an I/O error opening a database is put down to a full disk (a WAL
file needs room for its shared-memory index, 32 KiB, before it can even be read)."""


def _unopened(file: Path, err: sqlite3.DatabaseError) -> str:
    """Why a database could not even be read: a full disk, said as such (SQLite says only
    "disk I/O error", which reads as a damaged file), or the file not being a database."""
    name = str(getattr(err, "sqlite_errorname", ""))
    if name.startswith(("SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN", "SQLITE_READONLY")):
        if not os.access(file.parent, os.W_OK):  # (EROFS even for root)
            return (
                f"cannot be opened: its directory cannot be written to ({err}), and SQLite "
                "keeps its write-ahead log and index beside the file (a read-only file "
                "system?)"
            )
        with contextlib.suppress(OSError):
            free = shutil.disk_usage(file.parent).free
            if free < LOW_DISK_BYTES:
                return (
                    f"cannot be opened: the disk holding it is full ({free:,} bytes free; "
                    f"{err}); free some space"
                )
    return f"is not a usable SQLite database ({err})"


def _remove_new_sidecars(sidecars: list[Path], existed: list[bool]) -> None:
    """A read-only look at a WAL-mode file leaves an empty -wal and a -shm behind (SQLite
    removes them only on a writable close): remove the ones the look made, if still empty."""
    wal = sidecars[0]
    if wal.exists() and wal.stat().st_size > 0:
        return
    for sidecar, was_there in zip(sidecars, existed, strict=True):
        if not was_there:
            with contextlib.suppress(OSError):  # (a read-only directory: none was made)
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
    for table in sorted(tables & _OWN_COLUMNS.keys()):
        columns = {str(row[1]) for row in conn.execute(f'PRAGMA table_info("{table}")')}
        if missing := sorted(_OWN_COLUMNS[table] - columns):
            return (
                f"belongs to another application (table {table} has no column "
                f"{', '.join(missing[:3])})"
            )
    return None


def _stamp(path: str) -> None:
    """Mark the file as hybridmcp's (a new one, or one adopted from an older hybridmcp)."""
    with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)) as conn:
        if conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


# --------------------------------------------------------------------------------------------
# PostgreSQL: one pool per process, shared by the checkpointer and the store.
# --------------------------------------------------------------------------------------------

PG_CONNECT_TIMEOUT_S = 10
"""How long to wait for the server before saying it is unreachable."""
PG_POOL_MAX = 8
"""Connections per process (the checkpointer, the store and the learning locks share them)."""
SETUP_TIMEOUT_S = 120.0
"""Longest wait for another process creating or migrating the tables."""
PG_ANSWER_TIMEOUT_S = 60.0
"""Longest wait for the database's answer to a statement of a run (to each round trip of it):
a lock another session holds on a table the run needs, or a server that stopped answering,
ends the run in one line instead of hanging it. ``$HYBRIDMCP_DB_TIMEOUT_S`` sets another
limit (seconds; ``0``: none). Creating or migrating the tables may take
:data:`SETUP_TIMEOUT_S` if that is longer."""
ENV_DB_TIMEOUT = "HYBRIDMCP_DB_TIMEOUT_S"
SCHEMA_TABLE = "hybridmcp_schema"
_SETUP_LOCK = 0x48594D43  # advisory lock held while a process creates or migrates the tables


def pg_where(url: str) -> str:
    """The server and database of a PostgreSQL URL, without its password: for messages."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        info = conninfo_to_dict(url)
    except Exception:
        return "postgresql://?"
    host = info.get("host") or "localhost"
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{host}{port}/{info.get('dbname') or ''}"


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _pg_refuse(url: str, why: str) -> ConfigError:
    return ConfigError(f"database {pg_where(url)} {why} (choose another with --db or ${ENV_DB})")


def _pg_imports() -> None:
    try:
        import langgraph.checkpoint.postgres.aio
        import langgraph.store.postgres.aio  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        raise ConfigError(
            "a postgresql:// database needs the postgres extra: pip install 'hybridmcp[postgres]'"
        ) from None


def pg_answer_timeout() -> float | None:
    """The longest wait for the database's answer (:data:`PG_ANSWER_TIMEOUT_S`, or
    ``$HYBRIDMCP_DB_TIMEOUT_S``); None: no limit."""
    text = os.environ.get(ENV_DB_TIMEOUT, "").strip()
    if not text:
        return PG_ANSWER_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise ConfigError(
            f"${ENV_DB_TIMEOUT} must be a number of seconds (0: no limit), not {text[:40]!r}"
        )
    return value or None


def no_answer_error() -> type[Exception]:
    """The error of a statement the database did not answer in time (an ``OperationalError``,
    so it ends a run as a server gone does); raised by the bounded connections below."""
    global _NO_ANSWER
    if _NO_ANSWER is None:
        import psycopg

        class NoAnswer(psycopg.OperationalError):
            pass

        _NO_ANSWER = NoAnswer
    return _NO_ANSWER


def _no_answer(limit: float) -> Exception:
    return no_answer_error()(
        f"no answer from the database within {limit:g} s (a lock another session holds on a "
        f"table it needs, or a server that stopped answering; ${ENV_DB_TIMEOUT} sets the limit)"
    )


_NO_ANSWER: type[Exception] | None = None

_ANSWER_LIMIT: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "hybridmcp_db_answer_limit", default=None
)
"""Set while the tables are created or migrated: a longer limit for those statements."""


def _bounded_connection(limit: float | None) -> Any:
    """psycopg's async connection, each wait for the server's answer bounded by ``limit``
    seconds: past it, psycopg cancels the statement (or, with a server that does not answer
    that either, closes the connection, within seconds) and the statement fails with an
    ``OperationalError`` saying so, which ends the run in one line like a server gone."""
    cls = _BOUNDED.get(limit)
    if cls is not None:
        return cls
    import psycopg

    class BoundedConnection(psycopg.AsyncConnection[Any]):
        async def wait(self, *args: Any, **kwargs: Any) -> Any:
            bound = limit if limit is None else max(limit, _ANSWER_LIMIT.get() or 0.0)
            if bound is None:
                return await super().wait(*args, **kwargs)
            try:
                async with asyncio.timeout(bound):
                    return await super().wait(*args, **kwargs)
            except TimeoutError:
                raise _no_answer(bound) from None

    _BOUNDED[limit] = BoundedConnection
    return BoundedConnection


_BOUNDED: dict[float | None, Any] = {}


def _bounded_sync_connection(limit: float | None) -> Any:
    """psycopg's blocking connection, each wait for the server's answer bounded by ``limit``
    seconds (the audit heads'): past it the statement is cancelled, the connection closed, and
    it fails with an ``OperationalError`` saying so."""
    cls = _BOUNDED_SYNC.get(limit)
    if cls is not None:
        return cls
    import psycopg

    class BoundedSyncConnection(psycopg.Connection[Any]):
        def wait(self, gen: Any, *args: Any, **kwargs: Any) -> Any:
            if limit is None or kwargs.get("timeout") is not None or len(args) > 1:
                return super().wait(gen, *args, **kwargs)
            kwargs["timeout"] = limit
            try:
                return super().wait(gen, *args, **kwargs)
            except psycopg.OperationalError as err:
                if type(err).__name__ != "_WaitTimeout":  # psycopg's own, for a wait cut
                    raise
                with contextlib.suppress(Exception):
                    self.cancel_safe(timeout=5.0)
                with contextlib.suppress(Exception):
                    self.pgconn.finish()
                raise _no_answer(limit) from None

    _BOUNDED_SYNC[limit] = BoundedSyncConnection
    return BoundedSyncConnection


_BOUNDED_SYNC: dict[float | None, Any] = {}


async def _pg_connect(url: str) -> Any:
    """One autocommit connection, or the one-line reason the server cannot be reached."""
    import psycopg
    from psycopg.rows import dict_row

    try:
        return await _bounded_connection(pg_answer_timeout()).connect(
            url,
            autocommit=True,
            row_factory=dict_row,
            connect_timeout=PG_CONNECT_TIMEOUT_S,
        )
    except psycopg.Error as err:
        raise _pg_refuse(url, f"is unreachable: {_one_line(err)}") from None


async def _pg_versions(conn: Any) -> dict[str, int | None]:
    """The highest migration of each schema found in the database (None: no such table)."""
    found: dict[str, int | None] = {}
    for table in (SCHEMA_TABLE, "checkpoint_migrations", "store_migrations"):
        exists = await (await conn.execute("SELECT to_regclass(%s) AS t", (table,))).fetchone()
        if exists["t"] is None:
            found[table] = None
            continue
        column = "version" if table == SCHEMA_TABLE else "v"
        row = await (await conn.execute(f"SELECT max({column}) AS v FROM {table}")).fetchone()
        found[table] = row["v"]
    return found


def pg_schema_problem(versions: dict[str, int | None]) -> str | None:
    """Why a database whose schemas are at ``versions`` cannot be used by this version, if so:
    tables migrated further than this hybridmcp (or its LangGraph savers) knows."""
    from langgraph.checkpoint.postgres.base import BasePostgresSaver
    from langgraph.store.postgres.base import BasePostgresStore

    known = {
        SCHEMA_TABLE: (SCHEMA_VERSION, "hybridmcp"),
        "checkpoint_migrations": (len(BasePostgresSaver.MIGRATIONS) - 1, "checkpointer"),
        "store_migrations": (len(BasePostgresStore.MIGRATIONS) - 1, "store"),
    }
    for table, (newest, what) in known.items():
        found = versions.get(table)
        if found is not None and found > newest:
            return (
                f"has a schema from a newer version ({what} schema {found}, this hybridmcp "
                f"knows up to {newest}); it was not written to. Upgrade hybridmcp"
            )
    return None


async def _pg_setup_lock(url: str, conn: Any) -> None:
    """Wait for the setup lock by polling: a backend blocked in ``pg_advisory_lock`` holds a
    snapshot, which the holder's ``CREATE INDEX CONCURRENTLY`` (a store migration) would wait
    for: a deadlock PostgreSQL does not detect."""
    deadline = time.monotonic() + SETUP_TIMEOUT_S
    while True:
        row = await (
            await conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (_SETUP_LOCK,))
        ).fetchone()
        if row["ok"]:
            return
        if time.monotonic() > deadline:
            raise _pg_refuse(
                url, f"is being set up by another process for over {SETUP_TIMEOUT_S:.0f} s"
            )
        await asyncio.sleep(0.05)


async def _pg_setup(url: str, saver: BaseCheckpointSaver, store: BaseStore) -> None:
    """Check the schema versions, then create or migrate the tables: one process at a time
    (an advisory lock), since LangGraph's migrations are not safe to run concurrently."""
    conn = await _pg_connect(url)
    try:
        await _pg_setup_lock(url, conn)
        problem = pg_schema_problem(await _pg_versions(conn))
        if problem:
            raise _pg_refuse(url, problem)
        migrating = _ANSWER_LIMIT.set(SETUP_TIMEOUT_S)  # creating indexes may take long
        try:
            await saver.setup()  # type: ignore[attr-defined]
            await store.setup()  # type: ignore[attr-defined]
        finally:
            _ANSWER_LIMIT.reset(migrating)
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} (version INTEGER PRIMARY KEY)"
        )
        await conn.execute(
            f"INSERT INTO {SCHEMA_TABLE} (version) VALUES (%s) ON CONFLICT DO NOTHING",
            (SCHEMA_VERSION,),
        )
        await conn.execute(PostgresHeads.CREATE)
        await conn.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK,))
    finally:
        await conn.close()


async def _pg_check_readable(url: str) -> None:
    """A database to read only: one with no checkpoint tables holds no run; one migrated
    further than this version knows is refused, as for writing."""
    conn = await _pg_connect(url)
    try:
        versions = await _pg_versions(conn)
    finally:
        await conn.close()
    if versions.get("checkpoint_migrations") is None:
        raise _pg_refuse(url, "holds no run")
    problem = pg_schema_problem(versions)
    if problem:
        raise _pg_refuse(url, problem)


PG_POOL_WAIT_S = 60.0
"""Longest wait of a run for a connection of its process's pool (all of them busy)."""


def _pool_class() -> Any:
    """psycopg's connection pool, each connection checked as it is handed out, and a server
    that cannot be reached said so within :data:`PG_CONNECT_TIMEOUT_S` or so.

    A connection the server closed while it sat idle in the pool (the server restarted, a
    failover, an idle-session timeout) would fail the first statement of the run given it:
    its socket, readable when nothing should be (the server's farewell, or its end), tells
    without a round trip (:func:`closed_by_server`); then every idle connection of the pool
    is checked at once (they were most likely all closed together) and replaced. psycopg's
    own ``check`` option costs a round trip per checkout (2.5x a small query's time here), and
    sleeps 1, 2, 4, ... s between broken connections: a pool of 8 stale ones takes a minute.

    While no connection can be made, a run would wait the pool's whole :data:`PG_POOL_WAIT_S`
    for one: instead, once a wait has lasted :data:`PG_CONNECT_TIMEOUT_S`, one connection is
    tried directly, and if the server does not answer, that is the error at once."""
    global _POOL_CLASS
    if _POOL_CLASS is not None:
        return _POOL_CLASS
    import psycopg
    from psycopg_pool import AsyncConnectionPool, PoolTimeout

    class CheckedPool(AsyncConnectionPool[Any]):
        async def getconn(self, timeout: float | None = None) -> Any:  # noqa: ASYNC109
            deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
            for _ in range(self.max_size + 2):  # each idle connection once, then new ones
                conn = await self._wait_conn(deadline)
                if not closed_by_server(conn):
                    return conn  # (no await in between: a cancelled caller loses nothing)
                # Given back and the others checked whole, even if the caller is cancelled
                # meanwhile: the pool must not lose count of a connection, nor psycopg's
                # check() the idle connections it took out to look at.
                await self._whole(self._replace(conn))
            await self._probe()  # the server is there (else that is the error), but:
            raise PoolTimeout(f"no working connection after {self.max_size + 2} tries")

        async def _replace(self, conn: Any) -> None:
            with contextlib.suppress(psycopg.Error):
                await conn.close()
            await self.putconn(conn)  # (discarded: it is closed)
            await self.check()  # the others, closed with it most likely

        async def _whole(self, work: Any) -> None:
            task = asyncio.ensure_future(work)
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)
            await asyncio.shield(task)

        async def _wait_conn(self, deadline: float) -> Any:
            probed = False
            while True:
                left = deadline - time.monotonic()
                wait = left if probed else min(left, float(PG_CONNECT_TIMEOUT_S))
                try:
                    return await super().getconn(timeout=max(wait, 0.0))
                except PoolTimeout:
                    if probed or time.monotonic() >= deadline:
                        raise
                await self._probe()  # waited long: is the server there at all?
                probed = True  # it is: the pool is only busy

        async def _probe(self) -> None:
            """One connection made directly: OperationalError (refused, timed out, shutting
            down) when the server cannot be reached."""
            conn = await psycopg.AsyncConnection.connect(
                str(self.conninfo), connect_timeout=PG_CONNECT_TIMEOUT_S
            )
            await conn.close()

    _POOL_CLASS = CheckedPool
    return _POOL_CLASS


def closed_by_server(conn: Any) -> bool:
    """Has the server closed (or begun closing) this idle connection? Without a round trip:
    an idle connection's socket has nothing to read, unless the server sent its farewell
    ("terminating connection ...") or closed it; a socket that cannot be looked at is
    taken as closed."""
    import select

    if conn.closed or conn.broken:
        return True
    try:
        fd = conn.pgconn.socket
        if hasattr(select, "poll"):  # any descriptor (select() stops at 1024)
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([fd], [], [], 0)
    except Exception:  # the connection is no longer usable
        return True
    return bool(readable)


_POOL_CLASS: Any = None
_BACKGROUND: set[asyncio.Task[Any]] = set()
"""Pool upkeep under way, held until it ends (a task only the loop references may vanish)."""


def _pg_saver_class() -> Any:
    """LangGraph's PostgreSQL checkpointer, with the deletion of a run's checkpoints the
    LangGraph server's ``rollback`` asks of it (:meth:`adelete_for_runs`)."""
    global _PG_SAVER_CLASS
    if _PG_SAVER_CLASS is not None:
        return _PG_SAVER_CLASS
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    class RunsPostgresSaver(AsyncPostgresSaver):
        async def adelete_for_runs(self, run_ids: Iterable[str]) -> None:
            """Delete the checkpoints the given runs saved, and their writes (their channel
            values stay: they are keyed by version, and may be shared with other checkpoints;
            deleting the thread deletes them)."""
            ids = [str(r) for r in run_ids]
            if not ids:
                return
            async with self._cursor(pipeline=True) as cur:
                await cur.execute(
                    "DELETE FROM checkpoint_writes w USING checkpoints c "
                    "WHERE c.metadata->>'run_id' = ANY(%s) AND w.thread_id = c.thread_id "
                    "AND w.checkpoint_ns = c.checkpoint_ns AND w.checkpoint_id = c.checkpoint_id",
                    (ids,),
                )
                await cur.execute(
                    "DELETE FROM checkpoints WHERE metadata->>'run_id' = ANY(%s)", (ids,)
                )

    _PG_SAVER_CLASS = RunsPostgresSaver
    return _PG_SAVER_CLASS


_PG_SAVER_CLASS: Any = None


@asynccontextmanager
async def _postgres(
    url: str, read_only: bool = False
) -> AsyncIterator[tuple[BaseCheckpointSaver, BaseStore]]:
    """The saver and the store on one pool; ``read_only``: its sessions read only, and the
    tables neither created nor migrated (:func:`_pg_check_readable`)."""
    _pg_imports()
    import psycopg
    from langgraph.store.postgres.aio import AsyncPostgresStore
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    pool: AsyncConnectionPool[Any] = _pool_class()(
        url,
        connection_class=_bounded_connection(pg_answer_timeout()),
        min_size=1,
        max_size=PG_POOL_MAX,
        open=False,
        timeout=PG_POOL_WAIT_S,
        kwargs={
            "autocommit": True,
            "prepare_threshold": 0,
            "row_factory": dict_row,
            "connect_timeout": PG_CONNECT_TIMEOUT_S,
        }
        | ({"options": "-c default_transaction_read_only=on"} if read_only else {}),
    )
    await (await _pg_connect(url)).close()  # unreachable: one clear line, before the pool
    try:
        await pool.open(wait=True, timeout=PG_CONNECT_TIMEOUT_S * 2)
    except Exception as err:
        await pool.close()
        raise _pg_refuse(url, f"is unreachable: {_one_line(err)}") from None
    try:
        saver = _pg_saver_class()(conn=pool)
        store = AsyncPostgresStore(conn=pool)
        try:
            await (_pg_check_readable(url) if read_only else _pg_setup(url, saver, store))
        except psycopg.Error as err:
            raise _pg_refuse(url, f"cannot be used: {_one_line(err)}") from None
        try:
            yield saver, store
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as err:
            raise _pg_refuse(url, _needs_migrating(_one_line(err))) from None
        except psycopg.Error as err:  # the server went away, or refused a statement, mid-run
            raise pg_failure(url, err) from None
        except BaseExceptionGroup as group:  # the same, through a task group
            raise pg_failure(url, _only(group, psycopg.Error)) from None
    finally:
        await pool.close()


def pg_failure(url: str, err: BaseException) -> HybridMCPError:
    """One line for a PostgreSQL error met inside a run (the server stopped, restarted or
    unreachable): what happened and how to go on, without the user or password."""
    return HybridMCPError(
        f"database {pg_where(url)} failed: {_one_line(err)[:300]} (the run stopped there; "
        "run it again with the same --thread once the database answers again: it resumes where "
        "its checkpoints stop)"
    )


class SqliteHeads:
    """Audit-trail heads in a SQLite file, one row per trail (``audit.HeadAnchor``).

    Appends come from the event loop, worker threads and several processes: each thread keeps
    a connection of its own (opened again when the file was removed or replaced), and SQLite's
    own locking (with a busy timeout) orders them. The file is in WAL mode, so saving a head is
    one append to its log: with ``durable`` (``audit.fsync``) flushed to disk before it returns,
    as the trail's records are; without, it survives the process (a crash between a record and
    its head is the one-record slack ``verify`` allows), as the trail's unflushed records do."""

    TABLE = "hybridmcp_audit_heads"

    def __init__(self, db: str | os.PathLike[str], *, durable: bool = True) -> None:
        self.db = _prepare_file(str(db))
        # Checked like the run database: a damaged or foreign file is refused, untouched.
        check_sqlite(self.db, frozenset({self.TABLE}), "choose another with audit.head_db")
        self.durable = durable
        self._stamped = False
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._opened_lock = threading.Lock()

    def _error(self, err: sqlite3.Error) -> AuditError:
        return AuditError(
            f"audit head database {self.db!r} cannot be used: {' '.join(str(err).split())} "
            "(choose another with audit.head_db, --db or $HYBRIDMCP_DB)"
        )

    def _file(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.db)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.db, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            with contextlib.suppress(sqlite3.OperationalError):  # a file only to be read
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {'FULL' if self.durable else 'NORMAL'}")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.TABLE} (trail TEXT PRIMARY KEY, "
                "seq INTEGER NOT NULL, mac TEXT NOT NULL, updated_at REAL NOT NULL)"
            )
            if not self._stamped:
                _stamp(self.db)
                self._stamped = True
        except sqlite3.Error as err:
            raise self._error(err) from None
        return conn

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection to the file at ``db`` now (a new one if the file was
        removed or replaced since)."""
        file = self._file()
        held: tuple[sqlite3.Connection, tuple[int, int] | None] | None = getattr(
            self._local, "held", None
        )
        if held is not None and file is not None and held[1] == file:
            return held[0]
        if held is not None:
            self._forget(held[0])
        conn = self._connect()
        self._local.held = (conn, self._file())
        with self._opened_lock:
            self._opened.append(conn)
        return conn

    def _forget(self, conn: sqlite3.Connection) -> None:
        self._local.held = None
        with self._opened_lock:
            if conn in self._opened:
                self._opened.remove(conn)
        conn.close()

    def close(self) -> None:
        """Close every thread's connection (a later use opens new ones)."""
        with self._opened_lock:
            opened, self._opened = self._opened, []
        self._local = threading.local()
        for conn in opened:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def load(self, trail: str) -> Head | None:
        conn = self._connection()
        try:
            row = conn.execute(
                f"SELECT seq, mac FROM {self.TABLE} WHERE trail = ?", (trail,)
            ).fetchone()
        except sqlite3.Error as err:  # e.g. locked by another process past the timeout
            raise self._error(err) from None
        return Head(int(row[0]), str(row[1])) if row else None

    def save(self, trail: str, head: Head) -> None:
        conn = self._connection()
        try:
            conn.execute(
                f"INSERT INTO {self.TABLE} (trail, seq, mac, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(trail) DO UPDATE SET seq = excluded.seq, "
                "mac = excluded.mac, updated_at = excluded.updated_at",
                (trail, head.seq, head.mac, time.time()),
            )
        except sqlite3.Error as err:
            raise self._error(err) from None


class PostgresHeads:
    """Audit-trail heads in a PostgreSQL table (``audit.HeadAnchor``), beside the runs.

    Appends save heads synchronously (under the trail file's lock), so this holds one
    synchronous connection of its own, made on first use and made again if it broke."""

    TABLE = SqliteHeads.TABLE
    CREATE = (
        f"CREATE TABLE IF NOT EXISTS {TABLE} (trail TEXT PRIMARY KEY, "
        "seq BIGINT NOT NULL, mac TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL)"
    )

    def __init__(self, url: str) -> None:
        self.url = url
        self.db = pg_where(url)
        self._conn: Any = None
        self._lock = threading.Lock()

    def _error(self, err: BaseException) -> AuditError:
        return AuditError(
            f"audit head database {self.db} cannot be used: {_one_line(err)} "
            "(choose another with audit.head_db, --db or $HYBRIDMCP_DB)"
        )

    def _execute(self, sql: str, params: tuple[Any, ...]) -> Any:
        try:
            import psycopg
        except ImportError:
            raise AuditError(
                "audit heads in PostgreSQL need the postgres extra: "
                "pip install 'hybridmcp[postgres]'"
            ) from None
        with self._lock:
            for attempt in (1, 2):  # a connection broken since the last call is made again
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = _bounded_sync_connection(pg_answer_timeout()).connect(
                            self.url, autocommit=True, connect_timeout=PG_CONNECT_TIMEOUT_S
                        )
                        try:
                            self._conn.execute(self.CREATE)
                        except psycopg.errors.UniqueViolation:
                            pass  # another process created it at the same moment
                    return self._conn.execute(sql, params).fetchall()
                except psycopg.OperationalError as err:
                    self.close_connection()
                    if isinstance(err, no_answer_error()):
                        raise AnchorUnanswered(str(self._error(err))) from None
                    if attempt == 2:
                        raise self._error(err) from None
                except psycopg.Error as err:
                    raise self._error(err) from None
        raise AssertionError("unreachable")

    def close_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def close(self) -> None:
        with self._lock:
            self.close_connection()

    def load(self, trail: str) -> Head | None:
        rows = self._execute(f"SELECT seq, mac FROM {self.TABLE} WHERE trail = %s", (trail,))
        return Head(int(rows[0][0]), str(rows[0][1])) if rows else None

    def save(self, trail: str, head: Head) -> None:
        self._execute(
            f"INSERT INTO {self.TABLE} (trail, seq, mac, updated_at) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (trail) DO UPDATE SET seq = excluded.seq, mac = excluded.mac, "
            "updated_at = excluded.updated_at RETURNING seq",
            (trail, head.seq, head.mac, time.time()),
        )


def heads_path(db: str) -> Path:
    """The audit-head file that goes with the SQLite run database ``db``."""
    path = Path(db).expanduser()
    return path.with_name(f"{path.stem}.audit-heads.db")


def head_anchor(
    db: str | None, head_db: str | None = None, *, durable: bool = True
) -> SqliteHeads | PostgresHeads | None:
    """Where audit heads are anchored: ``head_db`` if given, else with the run database ``db``
    (as :func:`resolve_db` reads it): beside a SQLite file, in a table of a PostgreSQL one;
    nowhere (``None``) for ``:memory:``, where nothing outlives the process, so a later run
    could not tell a lost anchor from a cut trail."""
    where = resolve_db(db) if head_db is None else head_db
    if where == MEMORY:
        return None
    if is_postgres(where):
        return PostgresHeads(where)
    return SqliteHeads(where if head_db is not None else heads_path(where), durable=durable)


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

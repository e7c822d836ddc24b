"""One run per thread at a time, across the processes sharing a database.

A thread id names one durable run. Two runs of it at once (a job retried on another worker
while the first still runs it, or started twice in one process) would each make the calls its
checkpoints do not hold yet, and a write would be written twice. :class:`ThreadLocks` lets one
run have a thread at a time; the others are refused at once with :class:`ThreadBusy`.

- In one process: the thread ids running now (a run waits up to ``LOCAL_GRACE_S`` for another
  run of its thread to end: a stream whose reader stopped reading ends only once the event
  loop closes it).
- On PostgreSQL: a session-level advisory lock per thread (``pg_try_advisory_lock``), taken on
  one connection of the process's own, opened on first use beside the store's pool (whose
  connections are lent out per statement and cannot hold a lock for a whole run).
- On SQLite: an exclusive POSIX record lock on one byte per thread of ``<db>.threads.lock``
  beside the file, on one descriptor per process (closing any descriptor of a file ends all of
  the process's record locks on it).

Both are released by the database or the kernel when the process dies, so a thread whose
process was killed is resumed by the next process that runs it. On a store of another kind
(in memory: one process), the first is enough.

A PostgreSQL connection that ends mid-run (a database restart, a network cut, an
administrator's ``pg_terminate_backend``) ends its locks with it, and another process may then
start the thread. So while it holds threads, the connection is checked every ``WATCH_S``
seconds; once it fails, each run holding a lock on it is cancelled and fails with
:class:`ThreadLockLost` (run again, it resumes where its checkpoints stop). A run is cancelled
where it waits: a stream's reader waiting on something else than the stream gets the
cancellation there.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from langgraph.store.base import BaseStore

from hybridmcp.errors import ThreadBusy, ThreadLockLost
from hybridmcp.persistence import LockTimeout, closed_by_server
from hybridmcp.stats_store import StoreFiles, postgres_pool, sqlite_path

_KEY_PREFIX = b"hybridmcp-thread:"
LOCAL_GRACE_S = 2.0
"""How long a run waits for another run of its thread in this process to end before it is
refused: a stream its reader stopped reading ends only once the event loop closes it."""
DB_TIMEOUT_S = 30.0
"""The longest wait for PostgreSQL to connect, or to take or give back a thread's lock."""
WATCH_S = 5.0
"""How often the connection holding this process's thread locks on PostgreSQL is checked while
it holds any (one ``SELECT 1``): the longest a run goes on after its lock was lost."""


def thread_key(thread_id: str) -> int:
    """A stable signed 64-bit id of a thread (PostgreSQL's advisory lock key)."""
    digest = hashlib.blake2b(_KEY_PREFIX + thread_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def threads_lock_path(db: str) -> Path:
    """``<db>.threads.lock``: the record locks of the SQLite database ``db``'s threads."""
    return Path(f"{db}.threads.lock")


def _busy(thread_id: str, where: str) -> ThreadBusy:
    return ThreadBusy(
        f"thread {thread_id!r} is already running in {where}; run it again once that run has "
        "ended (a finished thread returns its stored result, an unfinished one resumes)"
    )


class ThreadLocks:
    """The threads this process runs now, and its handles on the databases' thread locks."""

    def __init__(self) -> None:
        self.running: dict[str, asyncio.Event] = {}
        """The threads running here, each with the event set when its run ends."""
        self._pg: dict[int, Any] = {}
        """A connection of its own per PostgreSQL pool (by the pool's id)."""
        self._pool_of: dict[int, int] = {}
        self._releasing: set[asyncio.Task[None]] = set()
        self._pg_lock = asyncio.Lock()
        self._files: dict[str, int] = {}
        """One open descriptor per SQLite lock file."""
        self.watch_s = WATCH_S
        """How often a connection holding thread locks is checked (:data:`WATCH_S`)."""
        self._holders: dict[int, dict[object, tuple[asyncio.Task[Any], asyncio.Event]]] = {}
        """By connection: the runs holding a lock on it, each with the event set if lost."""
        self._watchers: dict[int, asyncio.Task[None]] = {}

    @asynccontextmanager
    async def hold(
        self, store: BaseStore | None, thread_id: str, files: StoreFiles | None = None
    ) -> AsyncIterator[None]:
        """Hold ``thread_id`` for a run; :class:`ThreadBusy` when another run has it."""
        ended = self.running.get(thread_id)
        if ended is not None:  # a stream its reader left is closed by the loop a moment later
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), LOCAL_GRACE_S)
            if thread_id in self.running:
                raise _busy(thread_id, "this process")
        mine = self.running[thread_id] = asyncio.Event()
        try:
            pool = postgres_pool(store) if store is not None else None
            if pool is not None:
                async with self._pg_hold(pool, thread_id):
                    yield
                return
            path = await sqlite_path(store, files) if store is not None else None
            if path:
                with self._file_hold(threads_lock_path(path), thread_id):
                    yield
                return
            yield
        finally:
            del self.running[thread_id]
            mine.set()

    # -- PostgreSQL ------------------------------------------------------------------------------

    async def _pg_connection(self, pool: Any) -> Any:
        """This process's lock session on ``pool``'s database, opened again when the server
        closed it (a restart: its locks ended with it; a run still holding one is stopped by
        its watch)."""
        conn = self._pg.get(id(pool))
        if conn is not None and closed_by_server(conn):
            await self._forget(conn)
            conn = None
        if conn is None:
            import psycopg

            conn = await psycopg.AsyncConnection.connect(
                pool.conninfo, autocommit=True, connect_timeout=int(DB_TIMEOUT_S)
            )
            self._pg[id(pool)] = conn
            self._pool_of[id(conn)] = id(pool)
        return conn

    @asynccontextmanager
    async def _pg_hold(self, pool: Any, thread_id: str) -> AsyncIterator[None]:
        key = thread_key(thread_id)
        try:
            async with self._pg_lock, asyncio.timeout(DB_TIMEOUT_S):
                conn = await self._pg_connection(pool)
                try:
                    cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))
                    row = await cursor.fetchone()
                except BaseException:  # cut (cancelled, timed out): granted all the same?
                    await self._shielded(self._pg_release(conn, key))
                    raise
        except TimeoutError:
            raise LockTimeout(
                f"thread {thread_id!r}: the database did not answer within {DB_TIMEOUT_S:.0f} s "
                "when asked whether another process runs the thread"
            ) from None
        if not (row and row[0]):
            raise _busy(thread_id, "another process")
        holder = asyncio.current_task()
        assert holder is not None
        token, lost = object(), asyncio.Event()
        self._watch(conn, token, holder, lost)
        try:
            try:
                yield
            finally:
                self._holders.get(id(conn), {}).pop(token, None)
                await self._shielded(self._pg_release_locked(conn, key))
        except BaseException:  # the watch's cancellation, or what the run made of it
            if not lost.is_set():
                raise
            if holder.cancelling():
                holder.uncancel()  # cancelled by the watch: the run fails, its caller is not cut
            raise ThreadLockLost(
                f"thread {thread_id!r}: the PostgreSQL connection holding its lock ended "
                "mid-run, which freed the thread for any other process; the run was stopped "
                "so that two processes do not run it at once unnoticed. Run it again: it "
                "resumes where its checkpoints stop"
            ) from None

    def _watch(
        self, conn: Any, token: object, holder: asyncio.Task[Any], lost: asyncio.Event
    ) -> None:
        """Watch ``conn`` while ``holder`` holds a lock on it (one watch per connection)."""
        self._holders.setdefault(id(conn), {})[token] = (holder, lost)
        watcher = self._watchers.get(id(conn))
        if watcher is None or watcher.done():
            self._watchers[id(conn)] = asyncio.create_task(
                self._watching(conn), name="hybridmcp-thread-locks-watch"
            )

    async def _watching(self, conn: Any) -> None:
        """Check ``conn`` every :attr:`watch_s` while runs hold locks on it; once it fails,
        mark their locks lost and cancel them (their holds raise :class:`ThreadLockLost`)."""
        try:
            while self._holders.get(id(conn)):
                await asyncio.sleep(self.watch_s)
                try:
                    async with self._pg_lock, asyncio.timeout(DB_TIMEOUT_S):
                        await conn.execute("SELECT 1")
                except Exception:  # ended, or cannot say within the deadline: the locks are gone
                    break
            else:
                return
            for holder, lost in self._holders.pop(id(conn), {}).values():
                lost.set()
                holder.cancel()
            await self._forget(conn)
        finally:
            if self._watchers.get(id(conn)) is asyncio.current_task():
                del self._watchers[id(conn)]

    async def _forget(self, conn: Any) -> None:
        """Close a connection this process no longer trusts (the next hold opens another)."""
        if self._pg.get(self._pool_of.get(id(conn), -1)) is conn:
            del self._pg[self._pool_of[id(conn)]]
        with contextlib.suppress(Exception):
            await conn.close()

    async def _pg_release_locked(self, conn: Any, key: int) -> None:
        async with self._pg_lock:
            await self._pg_release(conn, key)

    async def _shielded(self, release: Coroutine[Any, Any, None]) -> None:
        """Run a release to its end even when the caller is cancelled (again) meanwhile."""
        task = asyncio.ensure_future(release)
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)
        await asyncio.shield(task)

    async def _pg_release(self, conn: Any, key: int) -> None:
        """Give a thread's lock back (a no-op when the session does not hold it). A session
        that cannot say is closed, which ends every lock it holds: a lock this process no
        longer knows of must not hold a thread from every other process for its lifetime."""
        try:
            async with asyncio.timeout(DB_TIMEOUT_S):
                await conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
            return
        except Exception:
            pass
        await self._forget(conn)

    # -- SQLite ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _file_hold(self, path: Path, thread_id: str) -> Any:
        import fcntl

        fd = self._files.get(str(path))
        if fd is None:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
            self._files[str(path)] = fd
        offset = thread_key(thread_id) & (2**62 - 1)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset, os.SEEK_SET)
        except OSError:  # held by another process (EAGAIN, EACCES)
            raise _busy(thread_id, "another process") from None
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset, os.SEEK_SET)

    async def close(self) -> None:
        """Close the handles (releasing whatever they still hold)."""
        watchers, self._watchers = list(self._watchers.values()), {}
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        if self._releasing:
            await asyncio.wait(list(self._releasing), timeout=DB_TIMEOUT_S)
        conns, self._pg = list(self._pg.values()), {}
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.close()
        fds, self._files = list(self._files.values()), {}
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

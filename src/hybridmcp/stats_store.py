"""Provider statistics in the LangGraph Store: what every run learned, for the next one.

Several processes may learn into one database at once (scale-out): each update of a provider's
statistics is a read-modify-write, so it runs under :func:`stats_lock`, which holds those
statistics exclusively across every process using the database until the update is saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import sys
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

from langgraph.store.base import BaseStore, GetOp, Item, PutOp

from hybridmcp.errors import StoredRecordError
from hybridmcp.persistence import LockTimeout, file_lock, lock_path
from hybridmcp.policy.learning import ProviderStats

NAMESPACE = ("hybridmcp", "provider_stats")
T = TypeVar("T")
ADVICE_NAMESPACE = ("hybridmcp", "advice_stats")
"""Where the learned accuracies of LM advice live (:mod:`hybridmcp.prompts.trust`)."""


StoreFiles = weakref.WeakKeyDictionary[Any, tuple[Any, str | None]]
"""Each SQLite store's file, by store (with the connection it was read on): its main database
never changes. Owned by the runtime resources (invariant 11), not by this module."""


def stats_key(provider: str, skill: str) -> str:
    return f"{provider}|{skill}"


async def load_stats(
    store: BaseStore, pairs: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], ProviderStats]:
    """Stats for each (provider, skill) pair; a pair never seen gets empty stats. One store
    batch for all of them (one query on a database), read as ``aget`` reads each."""
    found, _learned = await load_run_stats(store, pairs, None)
    return found


LEARNED_NAMESPACE = ("hybridmcp", "learned_runs")
"""One record per run that learned: saved with the statistics it changed, in the same write."""
LEARNED_KEPT_DAYS = 30
"""How long a run's record is kept: a run resumed within this many days of its start is
learned from once, however many runs learned meanwhile."""


def _day(at: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(at))


def learned_key(run_id: str, started_at: float) -> str:
    """A run's record key: the UTC day it started first, so the old ones are one range of
    keys (:func:`forget_old_runs`)."""
    return f"{_day(started_at)}|{run_id}@{started_at!r}"


async def load_run_stats(
    store: BaseStore, pairs: Iterable[tuple[str, str]], run: str | None
) -> tuple[dict[tuple[str, str], ProviderStats], bool]:
    """:func:`load_stats`, and whether the run keyed ``run`` (:func:`learned_key`) has
    already learned (its statistics were saved: a run resumed after its learn step wrote
    them and before its checkpoint did), in the same store batch."""
    wanted = list(set(pairs))
    if not wanted and run is None:
        return {}, False
    refresh = _refresh_on_read(store)
    ops = [GetOp(NAMESPACE, stats_key(provider, skill), refresh) for provider, skill in wanted]
    if run is not None:
        ops.append(GetOp(LEARNED_NAMESPACE, run, refresh))
    items = cast("list[Item | None]", await _decoded(store.abatch(ops)))
    learned = run is not None and items.pop() is not None
    found = {}
    for (provider, skill), item in zip(wanted, items, strict=True):
        found[(provider, skill)] = _read(item) if item else ProviderStats(provider, skill)
    return found, learned


def _read(item: Item) -> ProviderStats:
    """The statistics an item holds, or :class:`StoredRecordError` naming the item."""
    try:
        stats = ProviderStats.from_dict(item.value)
    except StoredRecordError as err:
        raise StoredRecordError(_unreadable(item, str(err))) from None
    if item.key != stats_key(stats.provider, stats.skill):
        raise StoredRecordError(_unreadable(item, "holds another provider's statistics"))
    return stats


def _unreadable(item: Item | None, problem: str) -> str:
    record = (
        f"the learned statistics record {item.key!r}" if item else "a learned statistics record"
    )
    return (
        f"{record} {problem}: it was written by another "
        "application or version and was not read (forget what was learned with "
        "`hybridmcp stats --reset`, or use another database with --db)"
    )


async def save_stats(
    store: BaseStore, stats: Iterable[ProviderStats], run: str | None = None
) -> None:
    """Write each record as ``aput`` writes it, in one store batch (one statement, so one
    transaction, on a database); with ``run`` (:func:`learned_key`), the run's record that
    it learned goes in the same write."""
    ttl = _default_ttl(store)
    ops = [
        PutOp(NAMESPACE, stats_key(s.provider, s.skill), s.to_dict(), index=None, ttl=ttl)
        for s in stats
    ]
    if run is not None:
        kept = LEARNED_KEPT_DAYS * 24 * 60 if store.supports_ttl else None
        ops.append(PutOp(LEARNED_NAMESPACE, run, {"at": time.time()}, index=False, ttl=kept))
    if ops:
        await store.abatch(ops)


async def forget_old_runs(
    store: BaseStore, now: float, done: weakref.WeakKeyDictionary[Any, str]
) -> int:
    """Delete the records of runs that started more than :data:`LEARNED_KEPT_DAYS` ago, on
    the databases hybridmcp opens (one range of keys), once a UTC day per store: ``done``
    holds the day each store last had them deleted. Another store lets its TTL expire them.
    Returns how many went."""
    today = _day(now)
    if done.get(store) == today:
        return 0
    deleted = await _delete_rows(
        store, LEARNED_NAMESPACE, "AND key < ?", (_day(now - LEARNED_KEPT_DAYS * 86400),)
    )
    done[store] = today
    return deleted or 0


async def _delete_rows(
    store: BaseStore, namespace: tuple[str, ...], where: str = "", params: tuple[Any, ...] = ()
) -> int | None:
    """``DELETE FROM store WHERE prefix = <namespace> <where>`` (``?`` placeholders) on the
    databases hybridmcp opens, in one statement, without reading a record; the rows deleted,
    or None on another store."""
    query = f"DELETE FROM store WHERE prefix = ? {where}".rstrip()
    args = (".".join(namespace), *params)
    pg_pool = postgres_pool(store)
    if pg_pool is not None:
        async with pg_pool.connection() as conn:
            cursor = await conn.execute(query.replace("?", "%s"), args)
            return int(cursor.rowcount)
    sqlite = _sqlite_store(store)
    if sqlite is not None:
        async with sqlite.lock:  # the store's connection, in autocommit: one transaction
            cursor = await sqlite.conn.execute(query, args)
            deleted = int(cursor.rowcount)
            await cursor.close()
            return deleted
    return None


def _refresh_on_read(store: BaseStore) -> bool:
    """What ``aget`` passes for a read without ``refresh_ttl``: the store's TTL setting."""
    ttl_config = store.ttl_config
    return ttl_config.get("refresh_on_read", True) if ttl_config is not None else True


def _default_ttl(store: BaseStore) -> float | None:
    """What ``aput`` passes for a write without ``ttl``: the store's default TTL, if any."""
    ttl_config = store.ttl_config
    return ttl_config.get("default_ttl") if ttl_config else None


async def all_stats(store: BaseStore) -> list[ProviderStats]:
    """Every learned record. Reading writes nothing: statistics have no TTL to refresh (the
    PostgreSQL store would refresh it with an ``UPDATE``, refused in a read-only session)."""
    items = await _decoded(store.asearch(NAMESPACE, limit=10_000, refresh_ttl=False))
    return [_read(i) for i in items]


async def _decoded(read: Awaitable[T]) -> T:
    """What the store read, or :class:`StoredRecordError` when it could not decode a record
    (LangGraph's PostgreSQL store decodes a JSON value that is not an object itself, and
    fails on it before the value is seen here)."""
    try:
        return await read
    except json.JSONDecodeError as err:
        raise StoredRecordError(
            _unreadable(None, f"is not a JSON object the store can read ({err})")
        ) from None


async def reset_stats(store: BaseStore) -> int:
    """Forget everything learned, the statistics of providers and the accuracies of LM
    advice, without reading any record (one another version wrote goes too); returns how many
    records were deleted."""
    deleted = 0
    for namespace in (NAMESPACE, ADVICE_NAMESPACE):
        # On the databases hybridmcp opens, one DELETE: a search decodes each value, and
        # fails on one that is not JSON, which is what a reset must clear.
        rows = await _delete_rows(store, namespace)
        if rows is not None:
            deleted += rows
            continue
        items = await store.asearch(namespace, limit=10_000)
        for item in items:
            await store.adelete(namespace, item.key)
        deleted += len(items)
    return deleted


def stats_record(stats: ProviderStats) -> dict[str, Any]:
    """One provider's statistics as shown to a user: the stored fields plus derived rates."""
    return stats.to_dict() | {"failures": stats.failures, "agreement_rate": stats.agreement_rate}


LOCK_TIMEOUT_S = 60.0
"""Longest wait for another process's update of the same statistics (each takes milliseconds)."""


class StatsLockTimeout(LockTimeout):
    """Another process held the statistics for longer than :data:`LOCK_TIMEOUT_S`."""


def lock_id(provider: str, skill: str) -> int:
    """A stable signed 64-bit id of one (provider, skill) record: PostgreSQL advisory locks."""
    digest = hashlib.blake2b(stats_key(provider, skill).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@asynccontextmanager
async def stats_lock(
    store: BaseStore,
    pairs: Iterable[tuple[str, str]],
    local: asyncio.Lock,
    files: StoreFiles | None = None,
) -> AsyncIterator[None]:
    """Hold the statistics of ``pairs`` exclusively while they are read, updated and saved.

    ``local`` orders the updates of this process; across processes the database orders them:
    on PostgreSQL a transaction-scoped advisory lock per record (taken in one global order, so
    two updates never deadlock), on SQLite an exclusive ``flock`` on ``<db>.lock`` beside the
    file (:func:`hybridmcp.persistence.file_lock`). Both are released by the database or the
    kernel if the process dies. A store of another kind (in memory) lives in one process,
    where ``local`` is enough. ``files``: where the caller remembers each SQLite store's file
    (the runtime resources' :attr:`~hybridmcp.runtime.Resources.store_files`), so that it is
    asked once, not at every update.
    """
    async with local:
        pg_pool = postgres_pool(store)
        if pg_pool is not None:
            async with _pg_locks(pg_pool, pairs):
                yield
            return
        path = await sqlite_path(store, files)
        if path:
            with await file_lock(lock_path(path), LOCK_TIMEOUT_S, "learned statistics"):
                yield
            return
        yield


def postgres_pool(store: BaseStore) -> Any:
    """The connection pool of a PostgreSQL store (``AsyncPostgresStore`` on a pool), else
    None: where the advisory locks of the processes sharing the database are taken."""
    if "langgraph.store.postgres.aio" not in sys.modules:
        return None  # no PostgreSQL store was made in this process: psycopg is not imported
    try:
        from langgraph.store.postgres.aio import AsyncPostgresStore
        from psycopg_pool import AsyncConnectionPool
    except ImportError:
        return None
    if isinstance(store, AsyncPostgresStore) and isinstance(store.conn, AsyncConnectionPool):
        return store.conn
    return None


@asynccontextmanager
async def _pg_locks(pool: Any, pairs: Iterable[tuple[str, str]]) -> AsyncIterator[None]:
    import psycopg

    ids = sorted({lock_id(p, s) for p, s in pairs})
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = '{int(LOCK_TIMEOUT_S * 1000)}ms'")
        try:
            for i in ids:
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (i,))
        except psycopg.errors.LockNotAvailable:
            raise StatsLockTimeout(
                f"learned statistics stayed locked by another process for {LOCK_TIMEOUT_S:.0f} s"
            ) from None
        yield  # the transaction's end releases the locks, after the update was saved


def _sqlite_store(store: BaseStore) -> Any:
    """The store itself if it is LangGraph's SQLite store, else None."""
    if "langgraph.store.sqlite.aio" not in sys.modules:
        return None
    try:
        from langgraph.store.sqlite.aio import AsyncSqliteStore
    except ImportError:
        return None
    return store if isinstance(store, AsyncSqliteStore) else None


async def sqlite_path(store: Any, files: StoreFiles | None = None) -> str | None:
    """The file of a SQLite store (``AsyncSqliteStore``), else None: what the file locks of
    the processes sharing it are taken beside (``files`` remembers it per store)."""
    if _sqlite_store(store) is None:
        return None
    try:
        known = files.get(store) if files is not None else None
    except TypeError:  # a store that cannot be a weak key: asked every time
        known = None
    if known is not None and known[0] is store.conn:
        return known[1]
    async with store.conn.execute("PRAGMA database_list") as cursor:
        rows = await cursor.fetchall()
    path = next((str(r[2]) for r in rows if r[1] == "main" and r[2]), None)
    if files is not None:
        with contextlib.suppress(TypeError):
            files[store] = (store.conn, path)
    return path

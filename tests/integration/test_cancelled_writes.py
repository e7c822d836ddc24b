"""A run cancelled by its caller while it writes to the SQLite run database (a checkpoint, a
statistic, a dispatch): its write is dropped whole, and the database stays usable, by this
process's other runs and by the other processes on the file.

aiosqlite runs each statement in a thread of its own: a caller cancelled while its ``BEGIN`` or
``INSERT`` waits there gets ``CancelledError`` at once, but the statement still runs, and a
transaction it opens is never ended, holding the file's write lock (every other process then
waits, and fails after the busy timeout) or, on the store's connection, failing every later
batch with "cannot start a transaction within a transaction".
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from hybridmcp.config import parse_config
from hybridmcp.coordinator import Coordinator
from hybridmcp.persistence import open_persistence
from hybridmcp.task import parse_task
from hybridmcp.testing.harness import faultserver_stdio

pytestmark = pytest.mark.integration

OUTER_S = 240


def another_process_can_write(db: str) -> bool:
    """Can another connection take the file's write lock (within a generous 5 s)?"""
    conn = sqlite3.connect(db, timeout=5)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def checkpoint_args(i: int) -> tuple[Any, ...]:
    from langgraph.checkpoint.base import empty_checkpoint

    config = {"configurable": {"thread_id": f"t{i}", "checkpoint_ns": ""}}
    return config, empty_checkpoint(), {"source": "input", "step": -1, "parents": {}}, {}


@pytest.mark.parametrize("write", ["checkpoint", "writes", "store_put", "store_get"])
async def test_a_write_cancelled_at_any_point_leaves_the_database_usable(
    tmp_path: Path, write: str
) -> None:
    db = str(tmp_path / "runs.db")
    async with asyncio.timeout(OUTER_S), open_persistence(db) as (saver, store):
        for i in range(40):
            if write == "checkpoint":
                op = saver.aput(*checkpoint_args(i))
            elif write == "writes":
                config = {
                    "configurable": {"thread_id": "w", "checkpoint_ns": "", "checkpoint_id": "1"}
                }
                op = saver.aput_writes(config, [("attempts", [i])], f"task-{i}")
            elif write == "store_put":
                op = store.aput(("ns",), f"k{i}", {"v": i})
            else:
                op = store.aget(("ns",), f"k{i}")
            task = asyncio.ensure_future(op)
            for _ in range(i % 8):  # cancelled a few loop turns later each time
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await asyncio.sleep(0.02)  # what the cancelled statement left queued has run
            # nothing is left locked or open, and the process's next writes and reads work
            assert not saver.conn.in_transaction and not store.conn.in_transaction, i
            assert another_process_can_write(db), i
            await store.aput(("ns",), "after", {"v": i})
            assert (await store.aget(("ns",), "after")).value == {"v": i}  # type: ignore[union-attr]
            await saver.aput(*checkpoint_args(1000 + i))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_durable_runs_cancelled_by_their_callers_leave_the_database_usable(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """Durable runs, ten at a time, most cut by ``asyncio.wait_for`` at random points while
    they checkpoint and learn: every later run of the process still runs, and (SQLite) another
    process can still write."""
    sqlite = backend == "sqlite"
    db = str(tmp_path / "runs.db") if sqlite else request.getfixturevalue("pg_url")
    cfg = parse_config({"mcpServers": {"f": faultserver_stdio()}})
    task = parse_task(
        {
            "requests": [
                {"id": f"r{i}", "skill": "f.echo", "args": {"text": str(i)}} for i in range(4)
            ]
        }
    )
    rng = random.Random(20261130)
    async with (
        asyncio.timeout(OUTER_S),
        open_persistence(db) as (saver, store),
        Coordinator.open(cfg, checkpointer=saver, store=store) as co,
    ):

        async def one(thread: str) -> None:
            try:
                await asyncio.wait_for(co.run(task, thread_id=thread), rng.uniform(0.0, 0.3))
            except TimeoutError:
                pass

        for batch in range(30):
            await asyncio.gather(*(one(f"t{batch}-{i}") for i in range(10)))
        after = await co.run(task, thread_id="after")
        assert after["status"] == "ok"
        if sqlite:
            await asyncio.sleep(0.05)  # what a cancelled statement left queued has run
            assert not saver.conn.in_transaction and not store.conn.in_transaction
            assert another_process_can_write(db)

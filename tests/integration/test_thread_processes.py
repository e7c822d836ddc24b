"""One thread run by several coordinator processes at once, on one SQLite file and on one
PostgreSQL: a retried job started again on another worker while the first still runs it.

A thread names one run: whichever process gets it first runs it, the others are refused in one
clear line (:class:`~hybridmcp.errors.ThreadBusy`) instead of making its calls again beside it
(each call is made once, each write written once), and once it is finished any process returns
its stored result.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from hybridmcp.config import parse_config
from hybridmcp.coordinator import Coordinator
from hybridmcp.errors import ThreadBusy
from hybridmcp.persistence import open_persistence
from hybridmcp.task import parse_task
from hybridmcp.testing.harness import faultserver_stdio
from tests.integration.test_durable import cli_env

pytestmark = pytest.mark.integration

THREADS = [f"job-{i}" for i in range(6)]
PROCESSES = 3
REQUESTS = [
    {"id": "sum", "skill": "faults.calculate", "args": {"expression": "6*7"}},
    {"id": "echo", "skill": "faults.echo", "args": {"text": "hi"}},
    {"id": "count", "skill": "faults.word_count", "args": {"text": "a b c"}},
]
WORKER = """
import asyncio, json, sys
from hybridmcp.config import parse_config
from hybridmcp.coordinator import Coordinator
from hybridmcp.errors import HybridMCPError
from hybridmcp.persistence import open_persistence
from hybridmcp.task import parse_task

async def main(db, config, task, threads):
    async with (
        open_persistence(db) as (saver, store),
        Coordinator.open(parse_config(config), checkpointer=saver, store=store) as co,
    ):
        print(json.dumps({"ready": True}), flush=True)
        await asyncio.to_thread(sys.stdin.readline)

        async def one(thread):
            try:
                out = await co.run(parse_task(task), thread_id=thread)
            except HybridMCPError as err:
                return {"thread": thread, "error": type(err).__name__, "message": str(err)}
            return {"thread": thread, "status": out["status"]}

        for line in await asyncio.gather(*(one(t) for t in threads)):
            print(json.dumps(line), flush=True)

db, config, task, threads = sys.argv[1:]
asyncio.run(main(db, json.loads(config), json.loads(task), threads.split(",")))
"""


def the_same_threads_at_once(db: str, tmp_path: Path) -> None:
    record = tmp_path / "calls.jsonl"
    config = {"mcpServers": {"faults": faultserver_stdio({"*": {"jitter_ms": 30}}, record=record)}}
    task = {"requests": REQUESTS}
    args = [db, json.dumps(config), json.dumps(task), ",".join(THREADS)]
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, *args], env=cli_env(), text=True,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(PROCESSES)
    ]  # fmt: skip
    for p in procs:  # all ready (servers started, database open), then released together
        assert p.stdout is not None and p.stdout.readline().startswith('{"ready"'), p.stderr
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("\n")
        p.stdin.flush()
    outcomes: list[dict[str, Any]] = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        outcomes += [json.loads(line) for line in out.splitlines() if line.strip()]

    assert len(outcomes) == PROCESSES * len(THREADS)
    refused = [o for o in outcomes if "error" in o]
    assert all(o["error"] == "ThreadBusy" for o in refused), refused
    assert all("another" in o["message"] and "\n" not in o["message"] for o in refused), refused
    ran = Counter(o["thread"] for o in outcomes if "status" in o)
    assert all(ran[t] >= 1 for t in THREADS), outcomes  # every thread ran somewhere
    # each call of each thread made once, whoever ran it (finished threads replay nothing)
    calls = Counter(json.loads(line)["tool"] for line in record.read_text().splitlines())
    assert calls == {r["skill"].split(".")[1]: len(THREADS) for r in REQUESTS}, calls

    async def again() -> list[dict[str, Any]]:
        async with (
            open_persistence(db) as (saver, store),
            Coordinator.open(parse_config(config), checkpointer=saver, store=store) as co,
        ):
            return [await co.run(parse_task(task), thread_id=t) for t in THREADS]

    assert all(out["status"] == "ok" for out in asyncio.run(again()))
    calls_after = Counter(json.loads(line)["tool"] for line in record.read_text().splitlines())
    assert calls_after == calls  # finished: the stored results, no call


def test_the_same_threads_in_processes_at_once_on_sqlite(tmp_path: Path) -> None:
    the_same_threads_at_once(str(tmp_path / "runs.db"), tmp_path)


def test_the_same_threads_in_processes_at_once_on_postgres(pg_url: str, tmp_path: Path) -> None:
    the_same_threads_at_once(pg_url, tmp_path)


async def test_the_same_thread_twice_in_one_process_is_refused(tmp_path: Path) -> None:
    """Two runs of one thread in one process at once: the second is refused (after a grace of
    2 s for the first to end), the first runs."""
    faults = {"*": {"latency_ms": 8000}}  # far longer than the grace
    cfg = parse_config({"mcpServers": {"faults": faultserver_stdio(faults, timeout_ms=60_000)}})
    task = parse_task({"requests": REQUESTS})
    async with (
        asyncio.timeout(120),
        open_persistence(str(tmp_path / "runs.db")) as (saver, store),
        Coordinator.open(cfg, checkpointer=saver, store=store) as co,
    ):
        first = asyncio.create_task(co.run(task, thread_id="job"))
        while co.resources.pool.status("faults").in_flight == 0:  # noqa: ASYNC110 (a counter)
            await asyncio.sleep(0.01)
        with pytest.raises(ThreadBusy, match="already running"):
            await co.run(task, thread_id="job")
        assert (await first)["status"] == "ok"
        assert (await co.run(task, thread_id="job"))["status"] == "ok"  # its stored result


async def test_a_stream_left_early_does_not_hold_its_thread(tmp_path: Path) -> None:
    """A caller that stops reading a run's stream (``break``) and runs the thread again: the
    left stream is closed by the event loop a moment later, so the new run goes on (it resumes
    or returns the stored result) instead of being refused."""
    cfg = parse_config({"mcpServers": {"faults": faultserver_stdio()}})
    task = parse_task({"requests": REQUESTS})
    async with (
        asyncio.timeout(120),
        open_persistence(str(tmp_path / "runs.db")) as (saver, store),
        Coordinator.open(cfg, checkpointer=saver, store=store) as co,
    ):
        async for event in co.stream(task, thread_id="job"):
            if event.get("type") == "phase":
                break
        assert (await co.run(task, thread_id="job"))["status"] == "ok"


async def test_a_run_cancelled_while_it_takes_its_thread_leaves_it_free(pg_url: str) -> None:
    """Runs cancelled by their callers at any point while they take their thread's lock on
    PostgreSQL (the lock may be granted after the caller is gone): each thread is free for
    another process at once, not held for as long as this process lives."""
    import psycopg

    from hybridmcp.thread_lock import ThreadLocks, thread_key

    async with asyncio.timeout(240), open_persistence(pg_url) as (_saver, store):
        locks = ThreadLocks()
        other = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
        held: list[str] = []
        try:
            for i in range(120):
                thread = f"t{i}"

                async def run(thread: str = thread) -> None:
                    async with locks.hold(store, thread):
                        await asyncio.sleep(60)

                task = asyncio.ensure_future(run())
                for _ in range(i % 12):  # cut a few loop turns later each time
                    await asyncio.sleep(0)
                if i % 3 == 0:  # or while the query is at the server
                    await asyncio.sleep(0.001 * (i % 7))
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                cursor = await other.execute(
                    "SELECT pg_try_advisory_lock(%s)", (thread_key(thread),)
                )
                row = await cursor.fetchone()
                if row and row[0]:
                    await other.execute("SELECT pg_advisory_unlock(%s)", (thread_key(thread),))
                else:
                    held.append(thread)
        finally:
            await locks.close()
            await other.close()
    assert held == [], f"{len(held)} of 120 threads left locked"


async def test_a_run_whose_thread_lock_connection_drops_is_stopped(pg_url: str) -> None:
    """The connection holding a running thread's advisory lock on PostgreSQL is ended (a
    database restart, a network cut: here ``pg_terminate_backend``), which frees the lock for
    any other process: the run notices and stops with :class:`ThreadLockLost` instead of
    going on unguarded; run again, the thread resumes (a new connection takes its lock) and
    finishes."""
    import psycopg

    from hybridmcp.errors import ThreadLockLost
    from hybridmcp.thread_lock import thread_key

    faults = {"*": {"latency_ms": 4000}}
    cfg = parse_config({"mcpServers": {"faults": faultserver_stdio(faults, timeout_ms=60_000)}})
    task = parse_task({"requests": REQUESTS})
    key = thread_key("job")
    async with (
        asyncio.timeout(120),
        open_persistence(pg_url) as (saver, store),
        Coordinator.open(cfg, checkpointer=saver, store=store) as co,
        await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as other,
    ):
        co.resources.thread_locks.watch_s = 0.2
        first = asyncio.create_task(co.run(task, thread_id="job"))
        while co.resources.pool.status("faults").in_flight == 0:  # noqa: ASYNC110 (a counter)
            await asyncio.sleep(0.01)
        cursor = await other.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1",
            ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF),
        )
        assert await cursor.fetchall() == [(True,)]  # the lock's connection, ended
        with pytest.raises(ThreadLockLost, match="'job'"):
            await first
        out = await co.run(task, thread_id="job")
    assert out["status"] == "ok", out

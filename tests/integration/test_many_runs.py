"""Many runs at once on one coordinator and one MCP server: runs cancelled by their callers
while their calls are queued or in flight, and the coordinator closed under runs in flight.

What the coordinator itself does to a call (its queue, its own close) or what a caller does to
its run (cancel it) is never the server's fault: no circuit opens, no degradation is flagged,
nothing is learned against the server, and the session stays usable for the other runs.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from hybridmcp.config import parse_config
from hybridmcp.coordinator import Coordinator
from hybridmcp.errors import CoordinatorClosed
from hybridmcp.persistence import open_persistence
from hybridmcp.stats_store import all_stats
from hybridmcp.task import parse_task
from hybridmcp.testing.harness import faultserver_stdio, no_children_left

pytestmark = pytest.mark.integration

SRC = str(Path(__file__).resolve().parents[2] / "src")
OUTER_S = 240
"""Every test's whole bound: generous on a loaded 2-core machine; never a timing assertion."""


def sleepy(ms: int, n: int = 3) -> Any:
    requests = [{"id": f"r{i}", "skill": "faulty.sleep", "args": {"ms": ms}} for i in range(n)]
    return parse_task({"requests": requests})


async def in_flight(co: Coordinator, server: str, at_least: int) -> None:
    """Wait until ``at_least`` calls are in flight on the server's session."""
    while co.resources.pool.status(server).in_flight < at_least:  # noqa: ASYNC110 (a counter)
        await asyncio.sleep(0.01)


def assert_not_blamed(co: Coordinator, provider: str) -> None:
    windows = co.resources.breaker_windows()
    seen = windows.get(provider, {"state": "closed", "trips": 0, "failure_rate": 0.0})
    assert seen["state"] == "closed" and seen["trips"] == 0, seen
    assert seen["failure_rate"] == 0.0, seen


async def test_closing_the_coordinator_under_runs_in_flight_fails_them_clearly_blaming_no_one(
    tmp_path: Path,
) -> None:
    """20 runs of 3 calls (8 in flight, the others queued) when the coordinator closes: each
    run fails with one clear error (not a 'failed' run blaming the server), the circuit stays
    closed, nothing is learned, the server process ends, and each run resumes on its thread
    with a new coordinator."""
    cfg = parse_config({"mcpServers": {"faulty": faultserver_stdio()}})
    db = str(tmp_path / "runs.db")
    threads = [f"t{i}" for i in range(20)]
    async with asyncio.timeout(OUTER_S), open_persistence(db) as (saver, store):
        async with Coordinator.open(cfg, checkpointer=saver, store=store) as co:
            runs = [asyncio.create_task(co.run(sleepy(2000), thread_id=t)) for t in threads]
            await in_flight(co, "faulty", 8)
            first = co
        outcomes = await asyncio.gather(*runs, return_exceptions=True)
        assert all(isinstance(o, CoordinatorClosed) for o in outcomes), outcomes
        assert "closed" in str(outcomes[0]) and "resume" in str(outcomes[0]), outcomes[0]
        assert_not_blamed(first, "mcp:faulty/sleep")
        assert [s for s in await all_stats(store) if s.provider == "mcp:faulty/sleep"] == []
        assert not await no_children_left(10), "the server process outlived the coordinator"
        with pytest.raises(CoordinatorClosed):
            await first.run(sleepy(1), thread_id="after")
        async with Coordinator.open(cfg, checkpointer=saver, store=store) as again:
            resumed = await asyncio.gather(
                *(again.run(sleepy(2000), thread_id=t) for t in threads[:3])
            )
    for out in resumed:
        assert out["status"] == "ok", {k: v["error"] for k, v in out["results"].items()}


@pytest.mark.parametrize("ended_by", ["close", "cancel"])
async def test_writes_still_queued_when_a_run_ends_are_sent_once_on_resume(
    tmp_path: Path, ended_by: str
) -> None:
    """One slot on a write tool, three writes: the one in flight when the coordinator closes
    (or the caller cancels the run) keeps its unknown outcome (not repeated on resume); the two
    still queued were never sent, so the resumed run sends them. Each entry is written exactly
    once."""
    journal = tmp_path / "journal.jsonl"
    server = {
        "command": sys.executable,
        "args": ["-m", "hybridmcp.testing.journal_server", "--journal", str(journal)],
        "env": {"PYTHONPATH": SRC},
        "max_concurrency": 1,
    }
    cfg = parse_config({"mcpServers": {"journal": server}})
    requests = [
        {"id": f"w{i}", "skill": "journal.append", "args": {"entry": f"e{i}", "sleep_ms": 1500}}
        for i in range(3)
    ]
    task = parse_task({"requests": requests})
    async with asyncio.timeout(OUTER_S), open_persistence(str(tmp_path / "runs.db")) as db:
        async with Coordinator.open(cfg, checkpointer=db[0], store=db[1]) as co:
            run = asyncio.create_task(co.run(task, thread_id="writes"))
            await in_flight(co, "journal", 1)
            if ended_by == "cancel":
                run.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await run
        if ended_by == "close":
            with pytest.raises(CoordinatorClosed):
                await run
        async with Coordinator.open(cfg, checkpointer=db[0], store=db[1]) as again:
            out = await again.run(task, thread_id="writes")
    entries = sorted(json.loads(line)["entry"] for line in journal.read_text().splitlines())
    assert entries == ["e0", "e1", "e2"], entries
    results = out["results"]
    assert [r for r in results if results[r]["status"] == "ok"] == ["w1", "w2"], results
    assert results["w0"]["error"].startswith("outcome_unknown"), results["w0"]

"""Many runs at once on one coordinator and one MCP server: runs cancelled by their callers
while their calls are queued or in flight, and the coordinator closed under runs in flight.

What the coordinator itself does to a call (its queue, its own close) or what a caller does to
its run (cancel it) is never the server's fault: no circuit opens, no degradation is flagged,
nothing is learned against the server, and the session stays usable for the other runs.
"""

from __future__ import annotations

import asyncio
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

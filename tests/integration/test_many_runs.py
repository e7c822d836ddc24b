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
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from hybridmcp.audit import iter_records, load_key, verify
from hybridmcp.capabilities.mcp_pool import SessionPool
from hybridmcp.config import PoolConfig, parse_config
from hybridmcp.coordinator import Coordinator
from hybridmcp.errors import CoordinatorClosed
from hybridmcp.persistence import open_persistence
from hybridmcp.stats_store import all_stats
from hybridmcp.task import parse_task
from hybridmcp.testing.harness import HttpFaultServer, faultserver_stdio, no_children_left

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


@pytest.mark.parametrize("transport", ["stdio", "streamable_http"])
async def test_closing_the_coordinator_under_runs_in_flight_fails_them_clearly_blaming_no_one(
    tmp_path: Path, transport: str
) -> None:
    """20 runs of 3 calls (8 in flight, the others queued) when the coordinator closes: each
    run fails with one clear error (not a 'failed' run blaming the server), the circuit stays
    closed, nothing is learned, a stdio server's process ends, and each run resumes on its
    thread with a new coordinator."""
    if transport == "stdio":
        await closing_under_runs(tmp_path, faultserver_stdio(), frozenset())
        return
    async with HttpFaultServer() as server:
        assert server.proc is not None
        await closing_under_runs(tmp_path, server.server_config(), frozenset({server.proc.pid}))


async def closing_under_runs(tmp_path: Path, server: dict[str, Any], mine: frozenset[int]) -> None:
    db = str(tmp_path / "runs.db")
    audit = {"path": str(tmp_path / "trail.jsonl"), "run_db": db}
    cfg = parse_config({"mcpServers": {"faulty": server}, "audit": audit})
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
        trail = tmp_path / "trail.jsonl"  # written before the trail closed: each call once
        assert verify(trail, key=load_key(f"{trail}.key", create=False)).ok
        calls = [r for r in iter_records(trail) if r["kind"] == "external_call"]
        assert len(calls) == 20 * 3, len(calls)
        assert all(r["outcome"].startswith("closed: ") for r in calls), calls
        assert [s for s in await all_stats(store) if s.provider == "mcp:faulty/sleep"] == []
        assert not await no_children_left(10, allowed=mine), "a server outlived the coordinator"
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


# -- many runs, some cancelled by their callers at any point -----------------------------------

SKILLS = {
    "sleep": lambda i, ms: {"skill": "faulty.sleep", "args": {"ms": ms}},
    "echo": lambda i, ms: {"skill": "faulty.echo", "args": {"text": f"m{i}"}},
    "time": lambda i, ms: {"skill": "time.now", "args": {"timezone": "UTC"}},  # both sides
}
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
"""Each example runs dozens of runs: a failure is reported as found (shrinking takes hours)."""
ENDS = ("finish", "cancel_queued", "cancel_in_flight", "wait_for")

run_plans = st.lists(
    st.tuples(
        st.lists(
            st.tuples(st.sampled_from(sorted(SKILLS)), st.sampled_from([0, 5, 40])),
            min_size=1,
            max_size=4,
        ),
        st.sampled_from(ENDS),
        st.sampled_from([0.0, 0.001, 0.02, 0.2]),
    ),
    min_size=20,
    max_size=60,
)


async def one_run(co: Coordinator, n: int, plan: Any) -> dict[str, Any] | str:
    """A run that finishes, or that its caller cancels: while its calls are still queued, once
    one of its calls is in flight (after ``delay``), or by ``asyncio.wait_for``."""
    wanted, end, delay = plan
    requests = [{"id": f"q{j}", **SKILLS[kind](n, ms)} for j, (kind, ms) in enumerate(wanted)]
    task = parse_task({"requests": requests})
    if end == "finish":
        return await co.run(task)
    if end == "wait_for":
        try:
            return await asyncio.wait_for(co.run(task), delay)
        except TimeoutError:
            return "cancelled"
    sent = asyncio.Event()

    async def streamed() -> dict[str, Any]:
        async for event in co.stream(task):
            if event.get("type") == "attempt" and event.get("side") == "external":
                sent.set()
            if event.get("type") == "result":
                return dict(event["output"])
        raise AssertionError("a stream without its result")

    run = asyncio.create_task(streamed())
    if end == "cancel_in_flight":
        waiting = asyncio.create_task(sent.wait())
        await asyncio.wait({run, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        await asyncio.sleep(delay)
    run.cancel()
    try:
        return await run
    except asyncio.CancelledError:
        return "cancelled"


async def many_runs(
    server: dict[str, Any], plans: list[Any], mine: frozenset[int] = frozenset()
) -> None:
    """The runs on one coordinator over one server; no child process but ``mine`` left."""
    cfg = parse_config(
        {
            "mcpServers": {"faulty": server},
            "skills": {
                "time.now": {
                    "providers": [
                        {"side": "external", "server": "faulty", "tool": "get_current_time"}
                    ]
                }
            },
        }
    )
    async with asyncio.timeout(OUTER_S), Coordinator.open(cfg) as co:
        outs = await asyncio.gather(*(one_run(co, n, p) for n, p in enumerate(plans)))
        pool = co.resources.pool
        for _ in range(2000):  # abandoned calls run out in the pool (at most 40 ms each)
            if pool.status("faulty").in_flight == 0:
                break
            await asyncio.sleep(0.01)
        finished = [o for o in outs if not isinstance(o, str)]
        for out in finished:
            assert out["status"] == "ok", {k: v["error"] for k, v in out["results"].items()}
            codes = [e["code"] for e in out["events"]]
            assert "CIRCUIT_OPENED" not in codes, out["events"]
            failed = [a for r in out["results"].values() for a in r["attempts"] if not a["ok"]]
            assert all(a.get("censored") for a in failed), failed  # cut by us, never failed
        for provider, window in co.resources.breaker_windows().items():
            assert window["failure_rate"] == 0.0 and window["trips"] == 0, (provider, window)
        for stats in await all_stats(co.store):
            assert stats.failures == stats.censored, stats  # nothing failed but what we cut
        status = pool.status("faulty")
        assert (status.opens, status.replacements, status.in_flight) == (1, 0, 0), status
        after = await co.run(parse_task({"requests": [{"id": "x", **SKILLS["echo"](0, 0)}]}))
        assert after["status"] == "ok" and after["results"]["x"]["allocation"] == "external"
    assert not await no_children_left(10, allowed=mine)


HEAVY = {"suppress_health_check": list(HealthCheck), "phases": NO_SHRINK}


@settings(max_examples=4, **HEAVY)
@given(plans=run_plans)
def test_runs_cancelled_at_any_point_blame_no_one_over_stdio(plans: list[Any]) -> None:
    asyncio.run(many_runs(faultserver_stdio(), plans))


@settings(max_examples=3, **HEAVY)
@given(plans=run_plans)
def test_runs_cancelled_at_any_point_blame_no_one_over_streamable_http(plans: list[Any]) -> None:
    async def over_http() -> None:
        async with HttpFaultServer() as server:
            assert server.proc is not None
            await many_runs(server.server_config(), plans, frozenset({server.proc.pid}))

    asyncio.run(over_http())


async def test_a_call_handed_to_the_pool_as_it_closes_is_answered_not_left_waiting() -> None:
    """The pool's close begins, then a call takes a free slot before the close reaches its
    session: the call's request is cancelled before it ever ran. Its caller gets
    :class:`CoordinatorClosed` at once (it waited for good, its slot lost with it)."""
    cfg = parse_config({"mcpServers": {"faulty": faultserver_stdio()}})
    pool = await SessionPool(cfg.mcpServers, PoolConfig(health_interval_ms=0)).open()
    closing = asyncio.create_task(pool.close())
    caller = asyncio.create_task(pool.call_tool("faulty", "echo", {"text": "x"}, 5.0))
    async with asyncio.timeout(OUTER_S):
        await closing
        done, _ = await asyncio.wait({caller}, timeout=30)  # generous: an answer comes at once
    assert caller in done, "the caller was left waiting after the pool closed"
    with pytest.raises(CoordinatorClosed):
        caller.result()
    assert not await no_children_left(10)


pool_plans = st.fixed_dictionaries(
    {
        "slots": st.sampled_from([1, 2, 8]),
        "calls": st.lists(
            st.tuples(st.sampled_from([0, 5, 50, 300]), st.sampled_from([0.05, 1.0, 5.0])),
            min_size=1,
            max_size=40,
        ),
        "cancel": st.lists(st.booleans(), min_size=40, max_size=40),
        "before_cancel_s": st.sampled_from([0, 0.001, 0.05]),
        "before_close_s": st.sampled_from([0, 0.001, 0.05, 0.3]),
    }
)


@settings(max_examples=30, **HEAVY)
@given(plan=pool_plans)
def test_a_pool_closed_at_any_point_answers_every_caller(plan: dict[str, Any]) -> None:
    """Calls (some of which hang) queued and in flight, some cancelled by their callers, then
    the pool closed at any point: every caller ends, with its answer, its deadline,
    :class:`CoordinatorClosed`, or its own cancellation; no server process is left."""

    async def scenario() -> None:
        faults = {"sleep": {"hang_rate": 0.1}}
        server = faultserver_stdio(faults, max_concurrency=plan["slots"])
        cfg = parse_config({"mcpServers": {"faulty": server}})
        pool = await SessionPool(cfg.mcpServers, PoolConfig(health_interval_ms=0)).open()
        callers = [
            asyncio.create_task(pool.call_tool("faulty", "sleep", {"ms": ms}, deadline_s))
            for ms, deadline_s in plan["calls"]
        ]
        await asyncio.sleep(plan["before_cancel_s"])
        for caller, cancel in zip(callers, plan["cancel"], strict=False):
            if cancel:
                caller.cancel()
        await asyncio.sleep(plan["before_close_s"])
        async with asyncio.timeout(OUTER_S):
            await pool.close()
            done, _ = await asyncio.wait(callers, timeout=60)
        assert len(done) == len(callers), "callers left waiting after the pool closed"
        ends = {
            "CallToolResult" if not c.cancelled() and c.exception() is None else
            "CancelledError" if c.cancelled() else type(c.exception()).__name__
            for c in callers
        }  # fmt: skip
        allowed = {"CallToolResult", "CancelledError", "CoordinatorClosed", "DeadlineExceededError"}
        assert ends <= allowed, ends
        assert not await no_children_left(10)

    asyncio.run(scenario())

"""Fault patterns the rest of the suite does not drive, through the session pool against the
fault server in a real process over stdio, streamable HTTP and SSE: a server that dies or
stalls in the middle of its answer. Each call ends in one line, at once where the transport
can tell (never asserted as a time: a far deadline stands in, so a call left to it would end
as a DeadlineExceededError), and the next call is answered."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from langgraph.store.memory import InMemoryStore

from hybridmcp.capabilities.mcp_pool import SessionPool
from hybridmcp.config import parse_config
from hybridmcp.coordinator import Coordinator
from hybridmcp.errors import DeadlineExceededError, ProviderError, ServerUnavailableError
from hybridmcp.stats_store import all_stats
from hybridmcp.task import parse_task
from hybridmcp.testing.harness import HttpFaultServer, faultserver_stdio

pytestmark = pytest.mark.integration
FAR_S = 30.0
"""A deadline no test here waits for: a call that ends by it has failed the test."""


@asynccontextmanager
async def pool_entry(transport: str, faults: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """The ``mcpServers`` entry of a fault server; over HTTP, its process runs meanwhile."""
    if transport == "stdio":
        yield faultserver_stdio(faults)
        return
    http = HttpFaultServer(faults, transport=transport)
    await http.start()
    try:
        yield http.server_config()
    finally:
        await http.stop()


@asynccontextmanager
async def pool_on(
    transport: str, faults: dict[str, Any]
) -> AsyncIterator[tuple[SessionPool, HttpFaultServer | None]]:
    """A pool holding one fault server ``f``; over HTTP, its process too."""
    http = None
    if transport == "stdio":
        entry = faultserver_stdio(faults)
    else:
        http = HttpFaultServer(faults, transport=transport)
        await http.start()
        entry = http.server_config()
    pool = SessionPool(parse_config({"mcpServers": {"f": entry}}).mcpServers)
    try:
        await pool.open()
        assert pool.is_up("f"), pool.status("f").error
        yield pool, http
    finally:
        await pool.close()
        if http is not None:
            await http.stop()


async def echo(pool: SessionPool, text: str, timeout_s: float = FAR_S) -> Any:
    result = await pool.call_tool("f", "echo", {"text": text}, timeout_s=timeout_s)
    return json.loads(result.content[0].text)  # type: ignore[union-attr]


DEATHS = {"crash": {"crash": True}, "mid-answer": {"partial": "crash"}}


@pytest.mark.parametrize("death", sorted(DEATHS))
@pytest.mark.parametrize("transport", ["stdio", "streamable-http", "sse"])
async def test_a_server_dying_mid_call_fails_the_call_at_once(transport: str, death: str) -> None:
    """The process exits in the middle of the call: before answering, or (over stdio) with
    the first half of the answer's line written. Over HTTP its response has begun. Over
    streamable HTTP the MCP client drops the broken response and the call waited for its
    deadline; it is heard now, as on the others."""
    async with asyncio.timeout(3 * FAR_S), pool_on(transport, {}) as (pool, http):
        await pool.call_tool(
            "f", "fault_control", {"faults": {"echo": DEATHS[death]}}, timeout_s=FAR_S
        )
        with pytest.raises(ServerUnavailableError) as failed:
            await echo(pool, "dies")
        message = str(failed.value)
        assert message.startswith("f/echo: the connection closed mid-call"), message
        assert "\n" not in message and len(message) < 600, message
        if http is not None:
            assert await http.wait_exit() == 1
            await http.start()  # back on the same port, without the fault
            # A re-open tried while it was down backs off; the next call after that re-opens.
            await asyncio.sleep(max(0.0, pool.status("f").retry_at - time.monotonic()))
        assert await echo(pool, "next") == {"text": "next"}
        assert pool.status("f").opens == 2


@pytest.mark.parametrize("transport", ["stdio", "streamable-http", "sse"])
async def test_a_server_stalling_mid_answer_ends_at_the_deadline_and_the_next_call_works(
    transport: str,
) -> None:
    """Half an answer, then nothing (over stdio its later answers are written after the cut
    line, so the line they share is garbage): the call ends at its deadline in one line; the
    session is checked before the next call and replaced where it no longer answers."""
    async with asyncio.timeout(3 * FAR_S), pool_on(transport, {}) as (pool, _):
        await pool.call_tool(
            "f", "fault_control", {"faults": {"echo": {"partial": "stall"}}}, timeout_s=FAR_S
        )
        with pytest.raises(DeadlineExceededError) as failed:
            await echo(pool, "stalls", timeout_s=1.0)
        message = str(failed.value)
        assert message.startswith("f/echo did not answer within 1000 ms"), message
        if transport == "stdio":  # what it left: half a line
            assert message.endswith(" bytes of a message, not ended"), message
        await pool.call_tool("f", "fault_control", {"faults": {}}, timeout_s=FAR_S)
        assert await echo(pool, "next") == {"text": "next"}


@pytest.mark.parametrize("transport", ["stdio", "streamable-http", "sse"])
async def test_an_answer_past_max_message_bytes_fails_its_call_at_once_saying_so(
    transport: str,
) -> None:
    """Over stdio the line, over streamable HTTP the POST's event, over SSE the one stream of
    answers: refused as it passes the bound, the call failing then, naming the bound (over
    SSE the stream was taken for a crash), and the next call answered."""
    faults = {"echo": {"oversized_bytes": 300_000}}
    async with asyncio.timeout(3 * FAR_S), pool_entry(transport, faults) as entry:
        entry = entry | {"max_message_bytes": 100_000}
        pool = SessionPool(parse_config({"mcpServers": {"f": entry}}).mcpServers)
        try:
            await pool.open()
            with pytest.raises(ServerUnavailableError if transport != "streamable-http"
                               else ProviderError) as failed:  # fmt: skip
                await echo(pool, "too long")
            assert not isinstance(failed.value, DeadlineExceededError), failed.value
            message = str(failed.value)
            assert "more than 100,000 bytes" in message and "max_message_bytes" in message
            assert "\n" not in message and len(message) < 700, message
            value = await pool.call_tool("f", "calculate", {"expression": "6*7"}, timeout_s=FAR_S)
            assert json.loads(value.content[0].text) == {"value": 42}  # type: ignore[union-attr]
        finally:
            await pool.close()


# -- through the coordinator: what is learned from each pattern ---------------------------------

EXTERNAL = "mcp:f/calculate"


def coordinator_config(entry: dict[str, Any], **resilience: Any) -> Any:
    """``calc``: the fault server's ``calculate``, and an internal twin that is always 50 ms
    (so a healthy server is the better side, and a slowed one the worse)."""
    providers = [
        {"side": "internal", "function": "tests.helpers:slow_calculate", "timeout_ms": 10_000},
        {"side": "external", "server": "f", "tool": "calculate", "timeout_ms": 10_000},
    ]
    return parse_config(
        {
            "mcpServers": {"f": entry},
            "skills": {"calc": {"providers": providers}},
            "resilience": resilience,
        }
    )


async def calc_run(co: Coordinator, n: int, **request: Any) -> dict[str, Any]:
    requests = [
        {"id": f"q{i}", "skill": "calc", "args": {"expression": f"{n} * 10 + {i}"}, **request}
        for i in range(2)
    ]
    out = await co.run(parse_task({"requests": requests}))
    for i in range(2):
        result = out["results"][f"q{i}"]
        assert result["status"] == "ok" and result["value"] == {"value": n * 10 + i}, result
    return out


def served(out: dict[str, Any]) -> list[str]:
    return [r["served_by"]["side"] for r in out["results"].values()]


async def set_faults(co: Coordinator, faults: dict[str, Any]) -> None:
    task = {"requests": [{"id": "c", "skill": "f.fault_control", "args": {"faults": faults}}]}
    assert (await co.run(parse_task(task)))["status"] == "ok"


async def test_a_provider_that_turns_slow_halfway_loses_its_work_to_the_other_side() -> None:
    """Drift: the fault server answers in a few ms, then 400 ms a call. Before, the learner
    serves the requests externally (faster than the internal 50 ms); after, it moves them to
    the internal side and keeps them there, every answer right."""
    entry = faultserver_stdio({"calculate": {"latency_ms": 2}})
    async with asyncio.timeout(240), Coordinator.open(coordinator_config(entry)) as co:
        before = [served(await calc_run(co, n)) for n in range(20)]
        assert sum(sides.count("external") for sides in before[10:]) >= 10, before
        await set_faults(co, {"calculate": {"latency_ms": 400}})
        after = [served(await calc_run(co, n)) for n in range(20, 40)]
        assert all(sides == ["internal", "internal"] for sides in after[-8:]), after


@pytest.mark.parametrize("transport", ["stdio", "streamable-http"])
async def test_a_circuit_opened_by_a_broken_server_closes_again_once_it_recovers(
    transport: str,
) -> None:
    """Every call fails: the circuit opens and the work goes internal. The server recovers:
    once the open period is over, trial calls (probes, or the pinned requests themselves)
    close the circuit, and the requests are served externally again."""
    async with asyncio.timeout(240), pool_entry(transport, {"calculate": {"fail_rate": 1.0}}) as e:
        cfg = coordinator_config(e, breaker={"open_ms": 200, "max_open_ms": 400})
        async with Coordinator.open(cfg) as co:
            codes: list[str] = []
            for n in range(5):
                out = await calc_run(co, n, strategy="external")
                codes += [ev["code"] for ev in out["events"]]
            assert "CIRCUIT_OPENED" in codes, codes
            await set_faults(co, {})
            n, closed = 5, False
            while not closed and n < 60:  # bounded: each round waits out part of a period
                await asyncio.sleep(0.1)
                out = await calc_run(co, n, strategy="external")
                closed = any(ev["code"] == "CIRCUIT_CLOSED" for ev in out["events"])
                n += 1
            assert closed, co.resources.gate.breaker.snapshot(0.0)
            after = [served(await calc_run(co, m, strategy="external")) for m in range(n, n + 5)]
            assert all(sides == ["external", "external"] for sides in after), after


async def test_every_third_call_failing_moves_each_failure_and_never_opens_the_circuit() -> None:
    """Intermittent: calls 3, 6, 9, ... fail. A third of the calls failing stays under the
    breaker's 50%, and no three fail in a row: each failed call is moved to the internal side
    and answered, no circuit opens, and the learned success rate says about two in three."""
    entry = faultserver_stdio({"calculate": {"fail_every": 3}})
    async with asyncio.timeout(240), Coordinator.open(coordinator_config(entry)) as co:
        failed = 0
        for n in range(15):
            out = await calc_run(co, n, strategy="external")
            assert "CIRCUIT_OPENED" not in [ev["code"] for ev in out["events"]]
            for result in out["results"].values():
                tried = [(a["side"], a["ok"]) for a in result["attempts"]]
                assert tried in ([("external", True)], [("external", False), ("internal", True)])
                failed += tried[0] == ("external", False)
        assert failed == 30 // 3
        stats = {s.provider: s for s in await all_stats(co.resources.store)}[EXTERNAL]
        assert stats.calls == 30 and stats.successes == 20


async def test_bimodal_latency_is_hedged_and_each_call_is_learned_once() -> None:
    """One call in eight takes 400 ms more (the server's seed fixes which): once the
    provider's latency is known, such a call is not waited for (a hedge, or a move past its
    degradation threshold, to the internal side), the request answered all the same. Each
    external call enters the statistics once: answered ones as calls, cut ones as censored
    lower bounds, never as failures; the circuit stays closed."""
    entry = faultserver_stdio({"calculate": {"latency_ms": 2, "slow_rate": 0.125, "slow_ms": 400}})
    async with asyncio.timeout(240), Coordinator.open(coordinator_config(entry)) as co:
        external: list[dict[str, Any]] = []
        for n in range(40):
            out = await calc_run(co, n, strategy="external")
            assert "CIRCUIT_OPENED" not in [ev["code"] for ev in out["events"]]
            for result in out["results"].values():
                external += [a for a in result["attempts"] if a["side"] == "external"]
        cut = [a for a in external if a.get("censored")]
        answered = [a for a in external if a["ok"]]
        assert cut and len(cut) + len(answered) == len(external) == 80, external
        stats = {s.provider: s for s in await all_stats(co.resources.store)}[EXTERNAL]
        assert (stats.calls, stats.successes, stats.censored) == (
            len(answered),
            len(answered),
            len(cut),
        )


async def test_a_server_slow_at_its_start_then_healthy_keeps_its_circuit_closed() -> None:
    """Learned healthy in one process; in the next, its server (a new process) is slow for
    its first six calls, a cold start, and answers in time after. Those calls are judged slow
    against what was learned (hedged or moved, and counted for the breaker), but the calls
    that show it healthy again do not open its circuit: the requests stay with it."""
    store = InMemoryStore()
    healthy = faultserver_stdio({"calculate": {"latency_ms": 2}})
    async with (
        asyncio.timeout(240),
        Coordinator.open(coordinator_config(healthy), store=store) as co,
    ):
        for n in range(15):
            await calc_run(co, n, strategy="external")
    cold = faultserver_stdio({"calculate": {"latency_ms": 2, "slow_first": 6, "slow_ms": 300}})
    async with asyncio.timeout(240), Coordinator.open(coordinator_config(cold), store=store) as co:
        codes: list[str] = []
        sides: list[list[str]] = []
        for n in range(12):
            out = await calc_run(co, n, strategy="external")
            codes += [ev["code"] for ev in out["events"]]
            sides.append(served(out))
        assert "CIRCUIT_OPENED" not in codes, (codes, sides)
        assert "internal" in sides[0], sides  # its slow start was not waited for
        assert all(s == ["external", "external"] for s in sides[-4:]), sides

"""Resilience against real misbehaving MCP servers: the project's fault server over stdio and
streamable HTTP, and ``@modelcontextprotocol/server-everything`` from npm.

Each fault ends in a completed run (or a clear per-request error when no side can serve), with
the right events, and leaves no process behind. Every test runs under an outer deadline; none
asserts a wall-clock upper bound.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from hybridmcp.config import HybridConfig, parse_config
from hybridmcp.coordinator import Coordinator
from hybridmcp.task import parse_task
from hybridmcp.testing.harness import (
    HttpFaultServer,
    child_processes,
    faultserver_stdio,
    free_port,
    no_children_left,
)

pytestmark = pytest.mark.integration
TRANSPORTS = ["stdio", "http"]
CALL_TIMEOUT_MS = 500
OUTER_S = 60


def config(server: dict[str, Any], **resilience: Any) -> HybridConfig:
    """Built-in internal skills, extended with the fault server's tools as external providers."""
    ext = {"side": "external", "server": "faulty", "timeout_ms": CALL_TIMEOUT_MS}
    return parse_config(
        {
            "mcpServers": {"faulty": server},
            "skills": {
                "math.calculate": {"providers": [{**ext, "tool": "calculate"}]},
                "time.now": {"providers": [{**ext, "tool": "get_current_time"}]},
            },
            "resilience": resilience,
        }
    )


@asynccontextmanager
async def fault_server(
    transport: str, faults: dict[str, Any] | None = None
) -> AsyncIterator[tuple[dict[str, Any], HttpFaultServer | None]]:
    """The ``mcpServers`` entry for a fault server; over HTTP, also the process to control."""
    if transport == "stdio":
        yield faultserver_stdio(faults), None
        return
    async with HttpFaultServer(faults) as server:
        yield server.server_config(), server
    assert server.proc is None


@asynccontextmanager
async def coordinator(
    cfg: HybridConfig, http: HttpFaultServer | None = None
) -> AsyncIterator[Coordinator]:
    """A coordinator; on exit, no child process of ours may be left but the HTTP server's."""
    before = set(child_processes())
    async with Coordinator.open(cfg) as co:
        yield co
    ours = before | ({http.proc.pid} if http is not None and http.proc is not None else set())
    left = await no_children_left(10, allowed=ours)
    assert not left, f"leaked processes: {left}"


def calc(rid: str, strategy: str = "external", expression: str = "6*7") -> dict[str, Any]:
    return {
        "id": rid,
        "skill": "math.calculate",
        "args": {"expression": expression},
        "strategy": strategy,
    }


async def run(co: Coordinator, *requests: dict[str, Any], **constraints: Any) -> dict[str, Any]:
    return await co.run(parse_task({"requests": list(requests), "constraints": constraints}))


def attempts(out: dict[str, Any], rid: str) -> list[tuple[str, bool, int]]:
    return [(a["side"], a["ok"], a["round"]) for a in out["results"][rid]["attempts"]]


def codes(out: dict[str, Any]) -> list[str]:
    return [e["code"] for e in out["events"]]


# -- each fault, over both transports ---------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_latency_past_the_deadline_moves_work_and_the_session_stays_usable(transport):
    async with (
        asyncio.timeout(OUTER_S),
        fault_server(transport, {"calculate": {"latency_ms": 5000}}) as (server, _),
        coordinator(config(server)) as co,
    ):
        echo = {"id": "echo", "skill": "faulty.echo", "args": {"text": "hi"}}
        out = await run(co, calc("slow"), echo)
        assert out["status"] == "ok"
        assert out["results"]["slow"]["value"] == {"value": 42}
        assert attempts(out, "slow") == [("external", False, 1), ("internal", True, 2)]
        assert "did not answer within 500 ms" in out["results"]["slow"]["attempts"][0]["error"]
        assert out["results"]["echo"]["value"] == {"text": "hi"}
        # pinned external, served internal: said so
        assert codes(out) == ["EXTERNAL_DEGRADATION_DETECTED", "REALLOCATION", "PIN_OVERRIDDEN"]
        event = out["events"][0]
        assert event["reallocation_strategy"] == "SHIFT_TO_INTERNAL_PROCESSING"
        assert event["performance_impact"]["served_by"] == "internal:math.calculate"
        # the session that timed out still serves calls, without being re-opened
        again = await run(co, echo)
        assert again["results"]["echo"]["value"] == {"text": "hi"}
        assert co.resources.pool.status("faulty").opens == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_errors_move_work_and_open_the_circuit(transport):
    async with (
        asyncio.timeout(OUTER_S),
        fault_server(transport, {"calculate": {"fail_rate": 1.0}}) as (server, _),
        coordinator(config(server)) as co,
    ):
        out = await run(co, *(calc(f"r{i}") for i in range(6)))
        assert out["status"] == "ok"
        assert all(r["value"] == {"value": 42} for r in out["results"].values())
        assert all(attempts(out, f"r{i}")[-1] == ("internal", True, 2) for i in range(6))
        (opened,) = [e for e in out["events"] if e["code"] == "CIRCUIT_OPENED"]
        assert opened["provider"] == "mcp:faulty/calculate"
        assert "in a row" in opened["reason"]
        assert out["metrics"]["circuits"]["mcp:faulty/calculate"]["state"] == "open"
        # the next run does not even try the open provider
        breaker = co.resources.gate.breaker
        assert "circuit breaker open" in breaker.blocked("mcp:faulty/calculate", time.time())
        out = await run(co, calc("later", strategy="auto"))
        assert attempts(out, "later") == [("internal", True, 1)]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_hang_ends_at_the_deadline_and_work_moves(transport):
    async with (
        asyncio.timeout(OUTER_S),
        fault_server(transport, {"calculate": {"hang": True}}) as (server, _),
        coordinator(config(server)) as co,
    ):
        out = await run(co, calc("a"), calc("b"))
        assert out["status"] == "ok"
        for rid in ("a", "b"):
            assert attempts(out, rid) == [("external", False, 1), ("internal", True, 2)]
        stats = await run(co, {"id": "s", "skill": "faulty.fault_control", "args": {}})
        assert stats["results"]["s"]["value"]["counters"]["calculate"] == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_crash_mid_call_moves_work_and_the_session_reopens(transport):
    # The first calculate call answers; the second crashes the server process mid-call.
    faults = {"calculate": {"crash_after": 1}}
    async with (
        asyncio.timeout(OUTER_S),
        fault_server(transport, faults) as (server, http),
        coordinator(config(server), http) as co,
    ):
        first = await run(co, calc("first"))
        assert attempts(first, "first") == [("external", True, 1)]
        crashed = await run(co, calc("crash"))
        assert crashed["status"] == "ok"
        assert attempts(crashed, "crash") == [("external", False, 1), ("internal", True, 2)]
        error = crashed["results"]["crash"]["attempts"][0]["error"]
        assert "connection closed mid-call" in error, error  # over HTTP too, not the deadline
        if http is not None:
            assert await http.wait_exit() == 1
            await http.start()  # the server comes back on the same port
        if http is None:  # the pool started a new process at once; let it come up
            assert await co.resources.pool.opened("faulty")
        after = await run(co, calc("after"))
        assert attempts(after, "after") == [("external", True, 1)]
        assert co.resources.pool.status("faulty").opens == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("malformed", ["invalid_json", "wrong_shape"])
async def test_malformed_answer_is_a_failed_attempt(transport, malformed):
    async with (
        asyncio.timeout(OUTER_S),
        fault_server(transport, {"calculate": {"malformed": malformed}}) as (server, _),
        coordinator(config(server)) as co,
    ):
        out = await run(co, calc("m"))
        assert out["status"] == "ok"
        assert out["results"]["m"]["value"] == {"value": 42}
        assert attempts(out, "m") == [("external", False, 1), ("internal", True, 2)]
        assert "malformed answer" in out["results"]["m"]["attempts"][0]["error"]
        assert codes(out) == ["EXTERNAL_DEGRADATION_DETECTED", "REALLOCATION", "PIN_OVERRIDDEN"]


# -- coordination: deadlines, both sides lost, hedges, stragglers -----------------------------


async def test_run_deadline_reports_unfinished_work():
    cfg = config(faultserver_stdio({"calculate": {"hang": True}}))
    cfg.skills["math.calculate"].providers[-1].timeout_ms = 30_000  # type: ignore[union-attr]
    async with asyncio.timeout(OUTER_S), coordinator(cfg) as co:
        out = await run(co, calc("late"), calc("quick", strategy="internal"), deadline_ms=700)
        assert out["status"] == "partial"
        assert out["results"]["quick"]["value"] == {"value": 42}
        late = out["results"]["late"]
        assert "deadline passed" in late["error"]
        # cut by the run's deadline: censored, not the provider's failure
        assert late["attempts"][0]["error"] == "cancelled: the run's deadline"


async def test_hybrid_request_losing_both_sides_is_a_coordination_failure():
    cfg = parse_config(
        {
            "mcpServers": {"faulty": faultserver_stdio({"get_current_time": {"fail_rate": 1}})},
            "skills": {
                "clock.broken": {
                    "input_schema": {
                        "type": "object",
                        "properties": {"timezone": {"type": "string"}},
                    },
                    "providers": [
                        {"side": "internal", "function": "tests.helpers:broken_time"},
                        {"side": "external", "server": "faulty", "tool": "get_current_time"},
                    ],
                }
            },
        }
    )
    async with asyncio.timeout(OUTER_S), coordinator(cfg) as co:
        both = {"id": "both", "skill": "clock.broken", "args": {"timezone": "UTC"}}
        out = await run(co, both | {"strategy": "hybrid"}, calc("fine", "hybrid"))
        assert out["status"] == "partial"
        assert out["results"]["fine"]["value"] == {"value": 42}
        assert "every provider failed" in out["results"]["both"]["error"]
        (failure,) = [e for e in out["events"] if e["code"] == "COORDINATION_FAILURE"]
        assert failure["fallback_strategy"] == "SEQUENTIAL_PROCESSING_WITH_BEST_AVAILABLE"
        assert failure["request_id"] == "both"


async def test_the_callers_error_on_both_sides_is_a_request_error_not_a_coordination_failure():
    async with asyncio.timeout(OUTER_S), coordinator(config(faultserver_stdio())) as co:
        out = await run(co, calc("div0", "hybrid", "1/0"), calc("fine", "hybrid"))
        assert out["status"] == "partial"
        assert out["results"]["fine"]["agreement"] is True
        assert out["results"]["div0"]["error"].startswith("request error")
        assert "COORDINATION_FAILURE" not in codes(out) and "REQUEST_ERROR" in codes(out)


async def set_faults(co: Coordinator, faults: dict[str, Any]) -> None:
    out = await run(co, {"id": "f", "skill": "faulty.fault_control", "args": {"faults": faults}})
    assert out["status"] == "ok", out["results"]["f"]["error"]


async def test_slow_single_side_request_is_hedged_and_the_loser_cancelled():
    cfg = config(
        faultserver_stdio(),
        hedging={"min_observations": 1, "budget_ratio": 1.0},
        breaker={"consecutive_failures": 100},
    )
    cfg.skills["math.calculate"].providers[-1].timeout_ms = 10_000  # type: ignore[union-attr]
    async with asyncio.timeout(OUTER_S), coordinator(cfg) as co:
        for i in range(3):  # learn the external provider's latency
            warm = await run(co, calc(f"w{i}"))
            assert attempts(warm, f"w{i}") == [("external", True, 1)]
        await set_faults(co, {"calculate": {"latency_ms": 3000}})
        out = await run(co, calc("h"))
        assert out["status"] == "ok" and out["results"]["h"]["value"] == {"value": 42}
        by_side = {a["side"]: a for a in out["results"]["h"]["attempts"]}
        assert by_side["internal"]["ok"] is True
        assert by_side["external"]["error"] == "cancelled: hedge lost"
        # the loser is the coordinator's own cancellation, not a call the server failed
        assert out["metrics"]["failed_calls"] == {"internal": 0, "external": 0}
        assert out["metrics"]["cancelled_calls"] == {"internal": 0, "external": 1}
        (hedge,) = [e for e in out["events"] if e["code"] == "HEDGE_STARTED"]
        assert hedge["provider"] == "mcp:faulty/calculate"
        assert hedge["hedge_provider"] == "internal:math.calculate"


async def test_a_call_is_not_hedged_to_a_side_lacking_what_the_request_needs():
    """As above, but the skill needs a strength only the external side has (real-time data):
    the internal answer would not do, so the slow call is waited for, not hedged."""
    cfg = config(
        faultserver_stdio(),
        hedging={"min_observations": 1, "budget_ratio": 1.0},
        breaker={"consecutive_failures": 100},
    )
    cfg.skills["math.calculate"].providers[-1].timeout_ms = 10_000  # type: ignore[union-attr]
    cfg.skills["math.calculate"].tags = ["real_time_data"]
    async with asyncio.timeout(OUTER_S), coordinator(cfg) as co:
        for i in range(3):
            warm = await run(co, calc(f"w{i}"))
            assert attempts(warm, f"w{i}") == [("external", True, 1)]
        await set_faults(co, {"calculate": {"latency_ms": 2000}})
        out = await run(co, calc("h"))
        assert out["status"] == "ok" and out["results"]["h"]["value"] == {"value": 42}
        assert attempts(out, "h") == [("external", True, 1)]
        assert not [e for e in out["events"] if e["code"] == "HEDGE_STARTED"]


async def _hybrid_once_external_slows(co: Coordinator) -> dict[str, Any]:
    """Three hybrid calculations that agree, then one (``s``) with the external side 3 s slow."""
    for i in range(3):
        warm = await run(co, calc(f"w{i}", "hybrid"))
        assert warm["results"][f"w{i}"]["agreement"] is True
    await set_faults(co, {"calculate": {"latency_ms": 3000}})
    return await run(co, calc("s", "hybrid"))


async def test_straggler_in_a_hybrid_request_is_cut_as_degraded():
    cfg = config(faultserver_stdio(), degradation={"min_observations": 1})
    cfg.skills["math.calculate"].providers[-1].timeout_ms = 10_000  # type: ignore[union-attr]
    async with asyncio.timeout(OUTER_S), coordinator(cfg) as co:
        out = await _hybrid_once_external_slows(co)
        assert out["status"] == "ok" and out["results"]["s"]["value"] == {"value": 42}
        by_side = {a["side"]: a for a in out["results"]["s"]["attempts"]}
        assert by_side["external"]["error"].startswith("cancelled: straggler")
        (event,) = [e for e in out["events"] if e["code"] == "EXTERNAL_DEGRADATION_DETECTED"]
        assert event["detected_by"] == ["latency"]
        assert event["reallocation_strategy"] == "SHIFT_TO_INTERNAL_PROCESSING"
        metrics = event["degradation_metrics"]
        assert metrics["response_time_increase"].startswith("+")
        assert metrics["latency_ms"] > metrics["slow_threshold_ms"]
        assert event["performance_impact"]["basis"] == "measured"
        assert event["cost_impact"]["cost"] == 0.0


async def test_the_side_a_conflict_would_keep_is_waited_for_not_cut():
    """As above, but the skill needs a strength only the external side has (real-time data):
    its answer is the one a disagreement would keep, so the request does not settle on the
    internal answer alone; the slow external call is waited for, and both are compared."""
    cfg = config(faultserver_stdio(), degradation={"min_observations": 1})
    cfg.skills["math.calculate"].providers[-1].timeout_ms = 10_000  # type: ignore[union-attr]
    cfg.skills["math.calculate"].tags = ["real_time_data"]
    async with asyncio.timeout(OUTER_S), coordinator(cfg) as co:
        out = await _hybrid_once_external_slows(co)
        assert out["status"] == "ok" and out["results"]["s"]["value"] == {"value": 42}
        by_side = {a["side"]: a for a in out["results"]["s"]["attempts"]}
        assert by_side["external"]["ok"] is True, by_side["external"]
        assert by_side["external"]["latency_ms"] >= 3000
        assert out["results"]["s"]["agreement"] is True


# -- a third-party server: @modelcontextprotocol/server-everything ----------------------------

EVERYTHING_INSTALL = "npm install -g @modelcontextprotocol/server-everything"


def everything_entry() -> str | None:
    """The server-everything entry point: ``$MCP_EVERYTHING_DIR`` (an ``npm install --prefix``
    directory), or the ``mcp-server-everything`` command of a global install."""
    prefix = os.environ.get("MCP_EVERYTHING_DIR")
    if prefix:
        entry = Path(prefix, "node_modules/@modelcontextprotocol/server-everything/dist/index.js")
        return str(entry) if entry.exists() else None
    found = shutil.which("mcp-server-everything")
    return str(Path(found).resolve()) if found else None


requires_everything = pytest.mark.skipif(
    shutil.which("node") is None or everything_entry() is None,
    reason=f"needs node and @modelcontextprotocol/server-everything ({EVERYTHING_INSTALL}, "
    "or npm install --prefix DIR ... with MCP_EVERYTHING_DIR=DIR)",
)


@asynccontextmanager
async def everything(transport: str) -> AsyncIterator[dict[str, Any]]:
    entry = everything_entry()
    assert entry is not None
    node = shutil.which("node") or "node"
    if transport == "stdio":
        yield {"command": node, "args": [entry, "stdio"], "env": {"PATH": os.environ["PATH"]}}
        return
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        node,
        entry,
        "streamableHttp",
        env={**os.environ, "PORT": str(port)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        yield {"transport": "streamable_http", "url": f"http://127.0.0.1:{port}/mcp"}
    finally:
        proc.terminate()
        await proc.wait()


@requires_everything
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_server_everything_long_running_operation(transport):
    async with asyncio.timeout(OUTER_S), everything(transport) as server:
        cfg = parse_config({"mcpServers": {"everything": {**server, "timeout_ms": 5000}}})
        async with coordinator(cfg) as co:
            long = "everything.trigger-long-running-operation"
            args = {"duration": 1, "steps": 2}
            out = await run(
                co,
                {"id": "long", "skill": long, "args": args},
                {"id": "echo", "skill": "everything.echo", "args": {"message": "hi"}},
            )
            assert out["status"] == "ok"
            assert out["results"]["echo"]["value"] == "Echo: hi"
            assert "completed" in out["results"]["long"]["value"]
            (attempt,) = out["results"]["long"]["attempts"]
            # the operation's real latency (1 s), as provider time: the loop's own lag is taken
            # off it, which a loaded machine makes up to a few hundred ms
            assert attempt["latency_ms"] >= 600
            # past the run's deadline, with no internal side: a clear per-request error
            late = await run(
                co, {"id": "late", "skill": long, "args": {"duration": 5}}, deadline_ms=400
            )
            assert late["status"] == "failed"
            assert "deadline" in late["results"]["late"]["error"]
            # the session still answers afterwards
            out = await run(co, {"id": "e", "skill": "everything.echo", "args": {"message": "x"}})
            assert out["results"]["e"]["value"] == "Echo: x"


async def test_degraded_single_side_call_moves_at_once_without_hedge_budget():
    cfg = config(
        faultserver_stdio(),
        hedging={"min_observations": 1, "budget_ratio": 0.0},
        degradation={"min_observations": 1},
        breaker={"consecutive_failures": 100},
    )
    cfg.skills["math.calculate"].providers[-1].timeout_ms = 10_000  # type: ignore[union-attr]
    async with asyncio.timeout(OUTER_S), coordinator(cfg) as co:
        for i in range(3):
            await run(co, calc(f"w{i}"))
        await set_faults(co, {"calculate": {"latency_ms": 3000}})
        out = await run(co, calc("d"))
        assert out["results"]["d"]["value"] == {"value": 42}
        (hedge,) = [e for e in out["events"] if e["code"] == "HEDGE_STARTED"]
        assert hedge["reason"] == "degraded"
        (event,) = [e for e in out["events"] if e["code"] == "EXTERNAL_DEGRADATION_DETECTED"]
        assert event["detected_by"] == ["latency"]


async def test_a_suspect_provider_is_hedged_at_its_tail_until_it_answers_in_time():
    """After a degraded call, the provider's next calls are hedged at the tail estimate with no
    hedge budget (not at the degradation threshold); one call in normal time clears it."""
    cfg = config(
        faultserver_stdio(),
        hedging={"min_observations": 1, "budget_ratio": 0.0, "budget_burst": 0},
        degradation={"min_observations": 1},
        breaker={"consecutive_failures": 100},
    )
    cfg.skills["math.calculate"].providers[-1].timeout_ms = 10_000  # type: ignore[union-attr]
    async with asyncio.timeout(OUTER_S), coordinator(cfg) as co:
        for i in range(3):
            await run(co, calc(f"w{i}"))
        await set_faults(co, {"calculate": {"latency_ms": 3000}})
        first = await run(co, calc("d1"))
        second = await run(co, calc("d2"))
        await set_faults(co, {})
        healed = await run(co, calc("ok"))
        after = await run(co, calc("after"))
    reasons = [
        [e["reason"] for e in out["events"] if e["code"] == "HEDGE_STARTED"]
        for out in (first, second, healed, after)
    ]
    assert reasons[:2] == [["degraded"], ["suspect"]]
    assert second["results"]["d2"]["value"] == {"value": 42}
    (cut,) = [a for a in second["results"]["d2"]["attempts"] if a["side"] == "external"]
    (hedge,) = [e for e in second["events"] if e["code"] == "HEDGE_STARTED"]
    assert cut["error"] == "cancelled: hedge lost"
    assert hedge["elapsed_ms"] < cut["latency_ms"] < 3000  # cut soon after the tail, not waited
    # The server answers in time again: at most the first call after healing is still hedged
    # (it may run past the tail estimate), and then the provider is no longer suspect.
    assert healed["results"]["ok"]["value"] == {"value": 42}
    assert reasons[3] == [] and after["results"]["after"]["attempts"][0]["side"] == "external"


async def test_calls_beyond_max_concurrency_wait_for_a_slot():
    server = faultserver_stdio(max_concurrency=1)
    cfg = parse_config({"mcpServers": {"faulty": {**server, "timeout_ms": 10_000}}})
    async with asyncio.timeout(OUTER_S), coordinator(cfg) as co:
        sleep = {"skill": "faulty.sleep", "args": {"ms": 300}}
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        out = await run(co, {"id": "a", **sleep}, {"id": "b", **sleep})
        assert out["status"] == "ok"
        assert loop.time() - t0 >= 0.6  # one after the other, not side by side


async def test_sse_transport_deadline_and_recovery():
    async with (
        asyncio.timeout(OUTER_S),
        HttpFaultServer({"calculate": {"hang": True}}, transport="sse") as http,
        coordinator(config(http.server_config())) as co,
    ):
        echo = {"id": "echo", "skill": "faulty.echo", "args": {"text": "sse"}}
        out = await run(co, calc("h"), echo)
        assert out["status"] == "ok"
        assert attempts(out, "h") == [("external", False, 1), ("internal", True, 2)]
        assert out["results"]["echo"]["value"] == {"text": "sse"}

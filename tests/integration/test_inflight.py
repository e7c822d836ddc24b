"""Many calls in flight on one session are our load, not the server's degradation: with the
default settings, a healthy server that works through 8 calls at a time (under CPU load, too)
is never flagged, while a server that turns 10x slower is caught, with 8 calls in flight and
alone, and work moves to the other side."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hybridmcp.config import DegradationConfig, parse_config
from hybridmcp.coordinator import Coordinator
from hybridmcp.task import parse_task
from hybridmcp.testing.harness import faultserver_stdio
from tests.integration.test_load_thresholds import cpu_load

pytestmark = pytest.mark.integration
OUTER_S = 300
N = 120
MIN_SLOW_MS = DegradationConfig().min_slow_ms
TIME_SERVER = {"command": "mcp-server-time", "args": ["--local-timezone", "UTC"]}
SERVERS = {
    "mcp-server-time": (TIME_SERVER, "time.get_current_time", {"timezone": "UTC"}),
    "faultserver": (faultserver_stdio(), "faulty.echo", {"text": "hello"}),
}


async def run(co: Coordinator, requests: list[dict[str, Any]]) -> dict[str, Any]:
    return await co.run(parse_task({"requests": requests}))


def codes(out: dict[str, Any]) -> list[str]:
    return [e["code"] for e in out["events"]]


def judged(out: dict[str, Any]) -> list[dict[str, Any]]:
    """What the judgements were made of (for failure messages)."""
    seen = []
    for e in out["events"]:
        m = e.get("degradation_metrics") or {}
        keys = ("latency_ms", "slow_threshold_ms", "in_flight", "service_ms")
        seen.append({"code": e["code"], **{k: m[k] for k in keys if k in m}} | {
            k: e[k] for k in ("reason", "after_ms", "elapsed_ms", "reason") if k in e
        })  # fmt: skip
    return seen


@pytest.mark.parametrize("name", sorted(SERVERS))
async def test_a_healthy_server_with_8_calls_in_flight_is_not_degraded(name: str) -> None:
    server, skill, args = SERVERS[name]
    cfg = parse_config({"mcpServers": {skill.split(".")[0]: server}})  # the defaults
    async with asyncio.timeout(OUTER_S), Coordinator.open(cfg) as co:
        for i in range(6):  # a baseline of lone calls
            alone = await run(co, [{"id": f"w{i}", "skill": skill, "args": args}])
            assert alone["status"] == "ok"
        batch = [{"id": f"r{i}", "skill": skill, "args": args} for i in range(N)]
        with cpu_load(processes=1, seconds=120):
            outs = [await run(co, batch) for _ in range(2)]
    for out in outs:
        assert out["status"] == "ok", {r: v["error"] for r, v in out["results"].items()}
        attempts = [a for r in out["results"].values() for a in r["attempts"]]
        assert len(attempts) == N and all(a["ok"] and a["side"] == "external" for a in attempts)
        assert max(a["in_flight"] for a in attempts) == 7  # 8 in flight on the session
        assert "CIRCUIT_OPENED" not in codes(out)
        assert_only_stalls(out, 0.05 * N)  # as for internal calls (test_load_thresholds)


def assert_only_stalls(out: dict[str, Any], most: float) -> None:
    """Our own calls in flight are never the server's fault: a call is never flagged for time
    the server spent answering the calls beside it. What may still be flagged is the server
    answering nothing at all for longer than ``min_slow_ms`` while it held a late call (its
    process starved of CPU on the loaded machine: every call in flight then waits), at most
    ``most`` calls."""
    flagged = [e for e in judged(out) if e["code"] == "EXTERNAL_DEGRADATION_DETECTED"]
    seen = [(e["latency_ms"], e["service_ms"]) for e in flagged]
    assert all(service > MIN_SLOW_MS for _, service in seen), seen
    assert len(flagged) <= most, seen


def calc(rid: str) -> dict[str, Any]:
    return {
        "id": rid,
        "skill": "math.calculate",
        "args": {"expression": "6*7"},
        "strategy": "external",
    }


@pytest.mark.parametrize("at_once", [40, 1])
async def test_a_server_ten_times_slower_is_caught_with_8_in_flight_and_alone(
    at_once: int,
) -> None:
    ext = {"side": "external", "server": "faulty", "tool": "calculate", "timeout_ms": 20_000}
    cfg = parse_config(
        {
            "mcpServers": {"faulty": faultserver_stdio({"calculate": {"latency_ms": 40}})},
            "skills": {"math.calculate": {"providers": [ext]}},  # beside the built-in one
        }
    )
    async with asyncio.timeout(OUTER_S), Coordinator.open(cfg) as co:
        for i in range(12):  # the baseline: lone calls, then 8 at a time (or one)
            await run(co, [calc(f"w{i}")])
        healthy = await run(co, [calc(f"h{i}") for i in range(40 if at_once > 1 else 1)])
        assert healthy["status"] == "ok"
        assert_only_stalls(healthy, 8)  # one stall: the calls in flight move to the other side
        assert max(a.get("in_flight", 0) for r in healthy["results"].values()
                   for a in r["attempts"]) == (7 if at_once > 1 else 0)  # fmt: skip
        control = {"id": "f", "skill": "faulty.fault_control"}
        slow = {"faults": {"calculate": {"latency_ms": 400}}}
        assert (await run(co, [control | {"args": slow}]))["status"] == "ok"
        if at_once > 1:
            outs = [await run(co, [calc(f"s{i}") for i in range(at_once)])]
        else:  # one at a time (the first may be hedged at its tail, from the budget)
            outs = [await run(co, [calc(f"s{i}")]) for i in range(4)]
    for out in outs:
        assert out["status"] == "ok"
        assert all(r["value"] == {"value": 42} for r in out["results"].values())
        attempts = [a for r in out["results"].values() for a in r["attempts"]]
        if at_once > 1:
            loads = [a["in_flight"] for a in attempts if a["side"] == "external"]
            assert max(loads) == 7
    # The work moved to the other side (alone: at once; its next calls may still find a lost
    # hedge's call in flight at the server, abandoned, not cancelled: it counts as load).
    first = [a for r in outs[0]["results"].values() for a in r["attempts"]]
    assert [a for a in first if a["ok"] and a["side"] == "internal"], judged(outs[0])
    events = [e for out in outs for e in out["events"]]
    hedged = [e["reason"] for e in events if e["code"] == "HEDGE_STARTED"]
    flagged = [e for e in events if e["code"] == "EXTERNAL_DEGRADATION_DETECTED"]
    # Caught: flagged past its threshold (its calls moved at once), or, once a call was late,
    # its next calls hedged at the provider's healthy tail (suspect) and moved before that.
    assert flagged or "suspect" in hedged, [judged(out) for out in outs]
    assert "degraded" in hedged or "suspect" in hedged
    assert all(e["detected_by"] == ["latency"] for e in flagged)

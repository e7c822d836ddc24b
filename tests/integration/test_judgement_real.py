"""Judgement on real servers nobody tuned for: the provider is measured, not the coordinator."""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.store.memory import InMemoryStore

from hybridmcp import Coordinator, parse_task
from hybridmcp.stats_store import all_stats
from tests.conftest import time_server_config

EXTERNAL = "mcp:time/get_current_time"


def events(out: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [e for e in out["events"] if e["code"] == code]


async def test_thousands_of_pinned_requests_on_one_healthy_server_open_no_circuit() -> None:
    """5,000 requests pinned external on one healthy mcp-server-time, default configuration:
    every one served by it; the queue for its session slots is the coordinator's, so no circuit
    opens and the learned success stays at 100%."""
    n = 5000
    zones = ["UTC", "Europe/Paris", "Asia/Tokyo", "America/New_York"]
    task = parse_task(
        {
            "requests": [
                {
                    "id": f"r{i}",
                    "skill": "time.now",
                    "args": {"timezone": zones[i % len(zones)]},
                    "strategy": "external",
                }
                for i in range(n)
            ]
        }
    )
    store = InMemoryStore()
    async with asyncio.timeout(300), Coordinator.open(time_server_config(), store=store) as co:
        out = await co.run(task)
    assert out["status"] == "ok"
    served = [r["served_by"] for r in out["results"].values()]
    assert all(s == {"provider": EXTERNAL, "side": "external"} for s in served)
    assert not events(out, "CIRCUIT_OPENED") and not events(out, "PIN_OVERRIDDEN")
    attempts = [a for r in out["results"].values() for a in r["attempts"]]
    assert all(a["provider"] == EXTERNAL and a["ok"] for a in attempts)
    learned = {s.provider: s for s in await all_stats(store)}[EXTERNAL]
    assert learned.calls == n and learned.successes == n


async def test_a_pinned_request_served_by_the_other_side_says_so() -> None:
    """The time server is configured but cannot start: a request pinned external is served
    internally with PIN_OVERRIDDEN; with fallback off it fails instead, naming why."""
    cfg = time_server_config(
        mcpServers={"time": {"command": "/nonexistent/mcp-server-time", "startup_timeout_ms": 3000}}
    )
    task = parse_task(
        {
            "requests": [
                {
                    "id": "a",
                    "skill": "time.now",
                    "args": {"timezone": "UTC"},
                    "strategy": "external",
                },
                {
                    "id": "b",
                    "skill": "time.now",
                    "args": {"timezone": "UTC"},
                    "strategy": "external",
                    "fallback": False,
                },
            ]
        }
    )
    async with asyncio.timeout(60), Coordinator.open(cfg) as co:
        out = await co.run(task)
    a, b = out["results"]["a"], out["results"]["b"]
    assert a["status"] == "ok" and a["served_by"]["side"] == "internal"
    (pin,) = events(out, "PIN_OVERRIDDEN")
    assert pin["request_id"] == "a" and "down" in pin["reason"]
    assert b["status"] == "error" and "fallback is off" in b["error"]
    assert out["status"] == "partial"


async def test_a_callers_bad_input_is_a_request_error_not_a_provider_fault() -> None:
    """An unknown time zone fails on both sides: the request ends with a request error, and
    neither provider's statistics nor the circuit count it."""
    store = InMemoryStore()
    task = parse_task(
        {
            "requests": [
                {
                    "id": f"bad{i}",
                    "skill": "time.now",
                    "args": {"timezone": "Mars/Olympus_Mons"},
                    "critical": True,
                }
                for i in range(8)
            ]
        }
    )
    async with asyncio.timeout(60), Coordinator.open(time_server_config(), store=store) as co:
        out = await co.run(task)
    assert out["status"] == "failed"
    assert all("request error" in r["error"] for r in out["results"].values())
    assert len(events(out, "REQUEST_ERROR")) == 8 and not events(out, "CIRCUIT_OPENED")
    learned = {s.provider: s for s in await all_stats(store)}
    assert all(s.calls == 0 for s in learned.values())

"""Learning across runs: predictions next to what happened, statistics in a real SQLite store."""

from __future__ import annotations

import asyncio

from langgraph.store.sqlite.aio import AsyncSqliteStore

from hybridmcp import Coordinator, parse_task
from hybridmcp.memory import all_stats

TIME_TASK = {
    "requests": [
        {"id": "a", "skill": "time.now", "args": {"timezone": "UTC"}, "strategy": "hybrid"},
        {"id": "b", "skill": "time.now", "args": {"timezone": "Asia/Tokyo"}, "strategy": "hybrid"},
    ]
}


async def test_predictions_sit_next_to_outcomes_and_are_scored(time_config, tmp_path):
    async with (
        asyncio.timeout(60),
        AsyncSqliteStore.from_conn_string(str(tmp_path / "stats.db")) as store,
    ):
        await store.setup()
        async with Coordinator.open(time_config, store=store) as co:
            first = await co.run(parse_task(TIME_TASK))
            second = await co.run(parse_task(TIME_TASK))
        learned = {s.provider: s for s in await all_stats(store)}
    external = "mcp:time/get_current_time"
    assert learned[external].calls == 4 and learned[external].agreements == 4
    # first run: priors (25 ms external, 1 ms internal); second: what the first measured
    before = first["results"]["a"]["attempts"]
    assert {a["provider"]: a["predicted"]["latency_ms"] for a in before}[external] == 25.0
    after = {a["provider"]: a for a in second["results"]["a"]["attempts"]}
    assert after[external]["predicted"]["latency_ms"] != 25.0
    for a in after.values():
        assert set(a["predicted"]) == {"latency_ms", "p95_latency_ms", "success"}
        assert a["ok"] is True and a["latency_ms"] >= 0
    metric = second["metrics"]["prediction"]
    assert metric["attempts"] == 4
    assert 0.0 <= metric["accuracy"] <= 1.0
    assert metric["success_accuracy"] == 1.0  # every call predicted to succeed did

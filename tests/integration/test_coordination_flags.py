"""coordination_config's switches in a real run (built-in skills beside mcp-server-time)."""

from __future__ import annotations

from hybridmcp.coordinator import Coordinator
from hybridmcp.task import parse_task
from tests.conftest import time_server_config

TASK = {
    "requests": [
        {"id": f"t{i}", "skill": "time.now", "args": {"timezone": "UTC"}} for i in range(4)
    ]
    + [{"id": "c", "skill": "time.now", "args": {"timezone": "UTC"}, "critical": True}]
}


async def run(**coordination: bool) -> dict:
    cfg = time_server_config(coordination_config=coordination)
    async with Coordinator.open(cfg) as co:
        return await co.run(parse_task(TASK))


async def test_switched_off_the_run_neither_races_nor_judges_latency_nor_cross_validates() -> None:
    on = await run()
    off = await run(
        quality_validation=False, performance_monitoring=False, parallel_execution=False
    )
    # quality_validation: undecided requests go to one side; the critical one is still checked.
    assert {r["allocation"] for rid, r in on["results"].items() if rid != "c"} == {"hybrid"}
    assert {r["allocation"] for rid, r in off["results"].items() if rid != "c"} <= {
        "internal",
        "external",
    }
    assert off["results"]["c"]["allocation"] == "hybrid"
    assert off["results"]["c"]["agreement"] is True
    assert all(r["status"] == "ok" for r in off["results"].values())
    # performance_monitoring / parallel_execution: nothing raced, nothing judged slow.
    codes = {e["code"] for e in off["events"]}
    assert "HEDGE_STARTED" not in codes
    assert not any(e["code"].endswith("DEGRADATION_DETECTED") for e in off["events"])

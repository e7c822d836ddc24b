"""A finished run leaves nothing of its state behind (hybridmcp.callcontext): the timers of its
calls' deadlines stay in the event loop's queue after the calls end, and the loop-lag probe
lives as long as the resources; none of them may keep the run's state alive."""

from __future__ import annotations

import gc
import uuid
from typing import Any

import pytest

from hybridmcp import Coordinator, parse_config, parse_task

pytestmark = pytest.mark.integration


async def answered(key: str) -> dict[str, Any]:
    """An internal skill that answers at once."""
    return {"ok": True}


CONFIG = parse_config(
    {
        "mcpServers": {"time": {"command": "mcp-server-time", "args": ["--local-timezone", "UTC"]}},
        "skills": {
            "t.answer": {
                "description": "test skill",
                "input_schema": {"type": "object", "properties": {"key": {"type": "string"}}},
                "providers": [{"side": "internal", "function": f"{__name__}:answered"}],
            },
            "time.now": {
                "providers": [{"side": "external", "server": "time", "tool": "get_current_time"}]
            },
        },
    }
)


def _requests_alive(marker: str) -> int:
    """How many of the run's requests (as the graph's state holds them) are still in memory."""
    gc.collect()
    return sum(
        1
        for o in gc.get_objects()
        if isinstance(o, dict) and "skill" in o and str(o.get("id", "")).startswith(marker)
    )


@pytest.mark.parametrize("parallel", [True, False])
async def test_a_finished_run_keeps_nothing_of_its_state(parallel: bool) -> None:
    config = CONFIG.model_copy(deep=True)
    config.coordination_config.parallel_execution = parallel
    async with Coordinator.open(config) as co:
        for _ in range(2):  # the first run also starts the loop-lag probe
            marker = uuid.uuid4().hex
            requests: list[dict[str, Any]] = [
                {"id": f"{marker}-{i}", "skill": "t.answer", "args": {"key": str(i)}}
                for i in range(5)
            ]
            requests.append(
                {"id": f"{marker}-ext", "skill": "time.now", "args": {"timezone": "UTC"}}
            )
            out = await co.run(parse_task(requests))
            assert out["status"] == "ok", out
            assert all(r["status"] == "ok" for r in out["results"].values())
            del out, requests
            assert _requests_alive(marker) == 0

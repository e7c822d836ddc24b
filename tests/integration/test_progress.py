"""Progress as it happens: custom stream events from a real run, the live view, clean --json."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from hybridmcp import Coordinator, parse_task
from hybridmcp.live import LiveProgress
from hybridmcp.progress import emit
from tests.conftest import time_server_config

pytestmark = pytest.mark.integration
HYBRIDMCP = str(Path(sys.executable).with_name("hybridmcp"))


def test_emit_outside_a_run_is_a_no_op() -> None:
    emit({"type": "phase", "node": "nowhere", "status": "started"})


async def stream(config, requests):
    events = []
    async with asyncio.timeout(60), Coordinator.open(config) as co:
        async for event in co.stream(parse_task({"requests": requests})):
            events.append(event)
    return events[:-1], events[-1]


async def test_stream_reports_phases_attempts_and_the_result(time_config) -> None:
    events, last = await stream(
        time_config,
        [
            {"id": "now", "skill": "time.now", "args": {"timezone": "UTC"}, "strategy": "hybrid"},
            {"id": "calc", "skill": "math.calculate", "args": {"expression": "6*7"}},
        ],
    )
    assert last["type"] == "result"
    out = last["output"]
    assert out["status"] == "ok" and out["results"]["calc"]["value"] == {"value": 42}
    assert "pending" not in out
    phases = [(e["node"], e["status"]) for e in events if e["type"] == "phase"]
    for node in ("analyze", "arbitrate", "monitor", "synchronize", "learn"):
        assert phases.index((node, "started")) < phases.index((node, "finished"))
    arbitrated = next(e for e in events if e["type"] == "phase" and e.get("attempts"))
    assert arbitrated["node"] == "arbitrate" and arbitrated["attempts"] == 3
    attempts = [e for e in events if e["type"] == "attempt"]
    started = {(e["request_id"], e["side"]) for e in attempts if e["status"] == "started"}
    assert started == {("now", "internal"), ("now", "external"), ("calc", "internal")}
    finished = [e for e in attempts if e["status"] == "finished"]
    assert len(finished) == 3 and all(e["ok"] for e in finished)
    for e in finished:  # each attempt is announced before its result
        key = (e["request_id"], e["provider"])
        first = next(i for i, a in enumerate(attempts) if (a["request_id"], a["provider"]) == key)
        assert attempts[first]["status"] == "started"


async def test_failure_and_reallocation_are_reported_live() -> None:
    config = time_server_config(
        skills={
            "clock.now": {
                "input_schema": {
                    "type": "object",
                    "properties": {"timezone": {"type": "string"}},
                    "required": ["timezone"],
                },
                "providers": [
                    {"side": "internal", "function": "tests.helpers:broken_time", "name": "broken"},
                    {"side": "external", "server": "time", "tool": "get_current_time"},
                ],
            }
        }
    )
    requests = [
        {"id": "now", "skill": "clock.now", "args": {"timezone": "UTC"}, "strategy": "internal"}
    ]
    events, last = await stream(config, requests)
    assert last["output"]["results"]["now"]["error"] is None
    failed = [e for e in events if e["type"] == "attempt" and e.get("ok") is False]
    assert failed and "broken" in failed[0]["error"]
    moved = [e for e in events if e["type"] == "reallocation"]
    assert moved and moved[0]["request_id"] == "now" and moved[0]["to_side"] == "external"

    buffer = io.StringIO()
    with LiveProgress(Console(file=buffer, force_terminal=True, width=120)) as display:
        for event in events:
            display.update(event)
    shown = buffer.getvalue()
    assert "failed" in shown and "reallocated to mcp:time/get_current_time" in shown


def test_cli_json_output_is_one_clean_object() -> None:
    proc = subprocess.run(
        [HYBRIDMCP, "run", "--json"], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["status"] == "ok"

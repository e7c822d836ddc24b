"""The coordinator end to end, against the real mcp-server-time over stdio."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from hybridmcp import (
    Context,
    Coordinator,
    HybridConfig,
    Resources,
    TaskError,
    build_graph,
    parse_task,
)
from tests.conftest import time_server_config

pytestmark = pytest.mark.integration
HYBRIDMCP = str(Path(sys.executable).with_name("hybridmcp"))


async def run(config, requests, **task):
    async with asyncio.timeout(60), Coordinator.open(config) as co:
        return await co.run(parse_task({"requests": requests, **task}))


async def test_hybrid_request_runs_on_both_sides_and_agrees(time_config):
    out = await run(
        time_config,
        [
            {
                "id": "now",
                "skill": "time.now",
                "args": {"timezone": "Asia/Tokyo"},
                "strategy": "hybrid",
            },
            {
                "id": "conv",
                "skill": "time.convert",
                "critical": True,
                "args": {
                    "source_timezone": "Europe/London",
                    "time": "09:15",
                    "target_timezone": "America/Los_Angeles",
                },
            },
        ],
    )
    assert out["status"] == "ok"
    for rid in ("now", "conv"):
        r = out["results"][rid]
        assert r["allocation"] == "hybrid"
        assert {a["side"] for a in r["attempts"]} == {"internal", "external"}
        assert all(a["ok"] for a in r["attempts"])
        assert r["agreement"] is True and r["confidence"] > 0.9
    assert out["results"]["conv"]["value"]["target"]["timezone"] == "America/Los_Angeles"
    assert out["conflicts"] == []
    assert out["quality"]["consistency"] == 1.0 and out["quality"]["cross_validated"] == 2
    assert out["metrics"]["calls"] == {"internal": 2, "external": 2}


async def test_generic_server_tool_skill_is_external_only(time_config):
    out = await run(
        time_config, [{"id": "x", "skill": "time.get_current_time", "args": {"timezone": "UTC"}}]
    )
    r = out["results"]["x"]
    assert r["allocation"] == "external" and r["value"]["timezone"] == "UTC"
    assert [a["provider"] for a in r["attempts"]] == ["mcp:time/get_current_time"]


async def test_missing_server_falls_back_to_internal_with_an_event():
    config = time_server_config(
        mcpServers={"time": {"command": "hybridmcp-no-such-server", "startup_timeout_ms": 5000}}
    )
    out = await run(
        config,
        [
            {"id": "now", "skill": "time.now", "args": {"timezone": "UTC"}, "strategy": "external"},
            {"id": "calc", "skill": "math.calculate", "args": {"expression": "6*7"}},
        ],
    )
    assert out["status"] == "ok"
    assert out["results"]["now"]["allocation"] == "internal"
    assert out["results"]["now"]["value"]["timezone"] == "UTC"
    assert out["results"]["calc"]["value"] == {"value": 42}
    (event,) = [e for e in out["events"] if e["code"] == "EXTERNAL_DEGRADATION_DETECTED"]
    assert event["reallocation_strategy"] == "SHIFT_TO_INTERNAL_PROCESSING"
    assert event["affected_requests"] == ["now"]
    assert event["degradation_metrics"]["available"] is False


async def test_external_error_moves_work_to_internal():
    # The server answers this tool with an error (it has no such tool): real failover.
    config = time_server_config(
        skills={
            "time.now": {
                "providers": [{"side": "external", "server": "time", "tool": "get_current_time_v2"}]
            }
        }
    )
    out = await run(
        config,
        [{"id": "now", "skill": "time.now", "args": {"timezone": "UTC"}, "strategy": "external"}],
    )
    assert out["status"] == "ok"
    r = out["results"]["now"]
    assert [(a["side"], a["ok"], a["round"]) for a in r["attempts"]] == [
        ("external", False, 1),
        ("internal", True, 2),
    ]
    assert "get_current_time_v2" in r["attempts"][0]["error"]
    codes = [e["code"] for e in out["events"]]
    assert codes == ["EXTERNAL_DEGRADATION_DETECTED", "REALLOCATION", "PIN_OVERRIDDEN"]
    assert out["events"][0]["reallocation_strategy"] == "SHIFT_TO_INTERNAL_PROCESSING"
    assert r["served_by"] == {"provider": "internal:time.now", "side": "internal"}
    assert out["metrics"]["reallocations"] == 1 and out["metrics"]["rounds"] == 2


async def test_request_nobody_can_serve_fails_alone(time_config):
    out = await run(
        time_config,
        [
            {"id": "bad", "skill": "math.calculate", "args": {"expression": "1 / 0"}},
            {"id": "good", "skill": "math.calculate", "args": {"expression": "2 + 2"}},
            {
                "id": "tz",
                "skill": "time.now",
                "args": {"timezone": "Not/AZone"},
                "strategy": "hybrid",
            },
        ],
    )
    assert out["status"] == "partial"
    assert out["results"]["good"]["value"] == {"value": 4}
    bad = out["results"]["bad"]
    # the caller's own errors: ended as request errors, never moved or held against a provider
    assert bad["value"] is None and "division by zero" in bad["error"]
    assert bad["error"].startswith("request error")
    tz = out["results"]["tz"]
    assert tz["error"].startswith("request error") and "Not/AZone" in tz["error"]
    assert {e["request_id"] for e in out["events"] if e["code"] == "REQUEST_ERROR"} == {"bad", "tz"}
    assert {a["side"] for a in tz["attempts"]} == {"internal", "external"}
    # both sides refused the caller's input: the request's fault, not a coordination failure
    assert not any(e["code"] == "COORDINATION_FAILURE" for e in out["events"])


async def test_invalid_task_is_refused_before_anything_runs(time_config):
    with pytest.raises(TaskError, match="request 'a'.*unknown skill 'no.such'"):
        await run(time_config, [{"id": "a", "skill": "no.such"}])
    with pytest.raises(TaskError, match="argument expression: 5 is not of type 'string'"):
        await run(time_config, [{"id": "a", "skill": "math.calculate", "args": {"expression": 5}}])


async def test_graph_embeds_with_a_checkpointer_and_keeps_state(time_config):
    graph = build_graph().compile(checkpointer=InMemorySaver(), store=InMemoryStore())
    async with asyncio.timeout(60), await Resources.open(time_config) as res:
        cfg = {"configurable": {"thread_id": "t1"}}
        out = await graph.ainvoke(
            {"requests": [{"id": "a", "skill": "math.calculate", "args": {"expression": "3*3"}}]},
            cfg,
            context=Context(resources=res),
        )
        assert out["results"]["a"]["value"] == {"value": 9}
        snapshot = await graph.aget_state(cfg)
        state = snapshot.values
        assert state["allocations"]["a"]["scores"]  # the numbers behind the decision
        key = json.loads(state["attempts"][0]["idempotency_key"])  # run, request, provider, round
        assert key[1:] == ["a", "internal:math.calculate", 1]
        json.dumps(state)  # state is plain data


async def test_learning_informs_the_next_run(time_config):
    store = InMemoryStore()
    async with asyncio.timeout(60), Coordinator.open(time_config, store=store) as co:
        task = parse_task(
            {
                "requests": [
                    {
                        "id": "a",
                        "skill": "time.now",
                        "args": {"timezone": "UTC"},
                        "strategy": "hybrid",
                    }
                ]
            }
        )
        await co.run(task)
        out = await co.run(task)
    items = await store.asearch(("hybridmcp", "provider_stats"))
    by_provider = {i.value["provider"]: i.value for i in items}
    assert by_provider["mcp:time/get_current_time"]["calls"] == 2
    assert by_provider["mcp:time/get_current_time"]["agreements"] == 2
    assert out["results"]["a"]["agreement"] is True
    # the second run's arbitration saw the first run's observations
    assert out["results"]["a"]["attempts"][0]["latency_ms"] >= 0


def test_cli_runs_the_demo_and_prints_json():
    proc = subprocess.run([HYBRIDMCP, "run", "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["status"] == "ok"
    assert {"status", "results", "conflicts", "events", "quality", "metrics"} <= set(data)
    for r in data["results"]:
        assert {"id", "skill", "value", "allocation", "attempts", "agreement", "confidence"} <= set(
            r
        )
        for a in r["attempts"]:
            assert {"provider", "side", "ok", "latency_ms"} <= set(a)
            assert a["side"] in ("internal", "external")
    sides = {a["side"] for r in data["results"] for a in r["attempts"]}
    assert sides == {"internal", "external"}


def test_cli_human_output_and_bad_task(tmp_path):
    proc = subprocess.run(
        [HYBRIDMCP, "run"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "160", "PATH": str(Path(sys.executable).parent)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "paris-now" in proc.stdout and "quality" in proc.stdout
    bad = tmp_path / "t.json"
    bad.write_text('{"requests": [{"id": "a", "skill": "no.such"}]}')
    proc = subprocess.run([HYBRIDMCP, "run", str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "unknown skill 'no.such'" in proc.stderr


def wrong_clock_config(tags: list[str]) -> HybridConfig:
    """``clock.now``: an internal clock two hours fast beside the honest mcp-server-time."""
    return time_server_config(
        skills={
            "clock.now": {
                "tags": tags,
                "input_schema": {
                    "type": "object",
                    "properties": {"timezone": {"type": "string"}},
                    "required": ["timezone"],
                },
                "comparator": {
                    "type": "fields",
                    "fields": {"datetime": {"type": "datetime", "tolerance": 60}},
                },
                "providers": [
                    {"side": "internal", "function": "tests.helpers:wrong_time"},
                    {"side": "external", "server": "time", "tool": "get_current_time"},
                ],
            }
        }
    )


@pytest.mark.parametrize(
    ("tags", "winner"), [(["real_time_data"], "external"), (["context_awareness"], "internal")]
)
async def test_a_conflict_is_led_by_the_side_whose_strengths_the_request_needs(tags, winner):
    """A clock two hours fast against mcp-server-time, no evidence yet of which is right, a
    non-critical request: on real-time data the external answer leads the conflict; on work
    that needs context, the internal one (capability_mapping)."""
    config = wrong_clock_config(tags)
    request = {"id": "now", "skill": "clock.now", "args": {"timezone": "UTC"}, "strategy": "hybrid"}
    out = await run(config, [request])
    result = out["results"]["now"]
    assert result["agreement"] is False and len(out["conflicts"]) == 1
    assert out["conflicts"][0]["resolution_strategy"] == "HIGHER_CONFIDENCE_WINS"
    details = out["conflicts"][0]["conflict_details"]
    loser = "internal" if winner == "external" else "external"
    assert details[f"{winner}_confidence"] > details[f"{loser}_confidence"]
    truth = datetime.now(UTC)
    led = abs(datetime.fromisoformat(result["value"]["datetime"]) - truth) < timedelta(minutes=5)
    assert led is (winner == "external")  # the external clock is the honest one
    assert result["sources"][0].startswith("mcp:" if winner == "external" else "internal:")


async def test_a_critical_conflict_nothing_decides_is_unresolved_not_ok():
    """The same wrong clock on a critical request: no evidence, no third provider, so neither
    answer is returned as the answer; both are on the result and the run says unresolved."""
    config = wrong_clock_config(["real_time_data"])
    request = {"id": "now", "skill": "clock.now", "args": {"timezone": "UTC"}, "critical": True}
    out = await run(config, [request])
    result = out["results"]["now"]
    assert out["status"] == "unresolved" and result["status"] == "unresolved"
    assert result["value"] is None and result["served_by"] is None
    assert set(result["values"]) == {"internal:clock.now", "mcp:time/get_current_time"}
    assert out["conflicts"][0]["resolution"] == "unresolved"
    assert [e["code"] for e in out["events"]].count("CONFLICT_UNRESOLVED") == 1

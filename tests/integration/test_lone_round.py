"""A round whose work is one batch settles in its branch's node; a round of several batches
settles once in ``settle``. Either way the run ends in the same state, against the real
mcp-server-time over stdio (internal and external sides, and a failover that moves work)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

import hybridmcp.graph as graph_module
from hybridmcp import Context, Resources, build_graph
from hybridmcp.nodes.execute import batches
from hybridmcp.state import Batch, WorkItem
from tests.conftest import time_server_config

pytestmark = pytest.mark.integration

CONVERT = {"source_timezone": "Europe/London", "time": "09:15", "target_timezone": "Asia/Tokyo"}


MOVING_NOW = {
    "time.now": {  # the server has no such tool: its calls fail, and the work moves internal
        "providers": [{"side": "external", "server": "time", "tool": "get_current_time_v2"}]
    },
    "time.convert": {"providers": [{"side": "external", "server": "time", "tool": "convert_time"}]},
}


def convert(rid: str, **extra: Any) -> dict[str, Any]:
    return {"id": rid, "skill": "time.convert", "args": CONVERT, **extra}


async def run(config, requests) -> tuple[list[str], list[dict[str, Any]], dict[str, Any]]:
    """The nodes the run stepped through, its progress events, and its final state."""
    graph = build_graph().compile(checkpointer=InMemorySaver(), store=InMemoryStore())
    cfg = {"configurable": {"thread_id": "t"}}
    nodes: list[str] = []
    custom: list[dict[str, Any]] = []
    async with asyncio.timeout(60), await Resources.open(config) as res:
        async for mode, chunk in graph.astream(
            {"requests": requests},
            cfg,
            context=Context(resources=res),
            stream_mode=["updates", "custom"],
        ):
            if mode == "updates":
                nodes.extend(chunk)
            else:
                custom.append(chunk)
        state = (await graph.aget_state(cfg)).values
    return nodes, custom, state


def settled_phases(custom: list[dict[str, Any]]) -> list[str]:
    return [e["node"] for e in custom if e["type"] == "phase" and e["status"] == "finished"]


async def test_a_round_of_one_batch_settles_in_its_branch():
    nodes, custom, state = await run(
        time_server_config(), [convert("a", strategy="external"), convert("b", strategy="external")]
    )
    assert nodes == ["assess", "external"]  # no step of its own to settle
    assert settled_phases(custom) == ["analyze", "arbitrate", "monitor", "synchronize", "learn"]
    assert state["status"] == "ok" and state["metrics"]["rounds"] == 1
    for r in "ab":
        assert state["results"][r]["value"]["target"]["timezone"] == "Asia/Tokyo"


async def test_a_round_of_several_batches_settles_once():
    nodes, custom, state = await run(time_server_config(), [convert("a", strategy="hybrid")])
    assert Counter(nodes) == Counter(["assess", "internal", "external", "settle"])
    assert nodes[-1] == "settle"
    assert settled_phases(custom).count("learn") == 1
    assert state["results"]["a"]["agreement"] is True


async def test_work_moved_to_the_other_side_settles_in_its_branch_too():
    config = time_server_config(skills=MOVING_NOW)
    now = {"id": "now", "skill": "time.now", "args": {"timezone": "UTC"}, "strategy": "external"}
    nodes, _custom, state = await run(config, [now])
    # round 1 fails on the server (it has no such tool) and moves; round 2 runs internal
    assert nodes == ["assess", "external", "reallocate", "internal"]
    assert state["status"] == "ok" and state["metrics"]["reallocations"] == 1
    assert [(a["side"], a["ok"]) for a in state["results"]["now"]["attempts"]] == [
        ("external", False),
        ("internal", True),
    ]


def always_sent(pending: list[WorkItem]) -> list[tuple[str, Batch]]:
    """Every attempt a batch of its own, and one empty batch more: every round goes out as
    several ``Send`` batches and settles in ``settle``."""
    work = [(side, Batch(items=[item])) for side, b in batches(pending) for item in b["items"]]
    return [*work, (work[0][0], Batch(items=[]))]


def comparable(state: dict[str, Any]) -> dict[str, Any]:
    """What a run decided and answered, without its timings, ids and the clock's reading."""
    results = {
        rid: {
            "value": {k: v for k, v in r["value"].items() if k != "datetime"},
            "served_by": r.get("served_by"),
            "agreement": r.get("agreement"),
            "attempts": [(a["provider"], a["side"], a["round"], a["ok"]) for a in r["attempts"]],
        }
        for rid, r in state["results"].items()
    }
    return {
        "status": state["status"],
        "results": results,
        "events": sorted(e["code"] for e in state["events"]),
        "settled": sorted(state["settled"]),
        "rounds": state["metrics"]["rounds"],
        "reallocations": state["metrics"]["reallocations"],
    }


@pytest.mark.parametrize(
    ("requests", "settles_in_branch"),
    [
        ([convert("a", strategy="external"), convert("b", strategy="external")], True),
        ([convert("a", strategy="internal"), convert("b", strategy="external")], False),
        (
            [
                {
                    "id": "now",
                    "skill": "time.now",
                    "args": {"timezone": "UTC"},
                    "strategy": "external",
                }
            ],
            True,
        ),
    ],
    ids=["one-side", "mixed", "moved"],
)
async def test_settled_in_the_branch_or_in_settle_the_run_ends_alike(
    requests, settles_in_branch, monkeypatch
):
    config = time_server_config(skills=MOVING_NOW)
    lone_nodes, _, lone = await run(config, requests)
    monkeypatch.setattr(graph_module, "batches", always_sent)
    sent_nodes, _, sent = await run(config, requests)
    assert ("settle" not in lone_nodes) is settles_in_branch
    assert sent_nodes.count("settle") == lone["metrics"]["rounds"]  # each round settles there
    assert comparable(lone) == comparable(sent)

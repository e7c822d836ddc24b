"""Every LangGraph stream mode of a run, at the root and as a parent's subgraph
(``subgraphs=True``): each chunk is plain JSON (strict: no NaN), ``updates`` name the graph's
nodes (docs/server.md), and ``custom`` events are of the documented types
(``hybridmcp.progress``). Against the real ``mcp-server-time``, cross-validated."""

from __future__ import annotations

import json
from typing import Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.store.memory import InMemoryStore

from hybridmcp import Context, HybridConfig, Resources, build_graph

pytestmark = pytest.mark.integration

MODES = ["values", "updates", "custom", "messages", "debug", "checkpoints", "tasks"]
NODES = {"assess", "internal", "external", "settle", "reallocate", "review"}
CUSTOM = {"phase", "attempt", "reallocation", "conflict", "progress", "event"}
REQUESTS = [
    {"id": "calc", "skill": "math.calculate", "args": {"expression": "1 / 3"}},
    {"id": "now", "skill": "time.now", "args": {"timezone": "Asia/Tokyo"}, "strategy": "hybrid"},
]


class Parent(TypedDict, total=False):
    requests: list[dict[str, Any]]
    status: str
    results: dict[str, Any]


def graphs() -> dict[str, Any]:
    parent = StateGraph(Parent, context_schema=Context)
    parent.add_node("coordinator", build_graph().compile())
    parent.add_edge(START, "coordinator")
    parent.add_edge("coordinator", END)
    return {
        "root": build_graph().compile(checkpointer=InMemorySaver(), store=InMemoryStore()),
        "parent": parent.compile(checkpointer=InMemorySaver(), store=InMemoryStore()),
    }


@pytest.mark.parametrize("where", ["root", "parent"])
async def test_every_stream_mode_is_plain_json(where: str, time_config: HybridConfig) -> None:
    seen: dict[str, int] = {}
    custom: set[str] = set()
    updated: set[str] = set()
    namespaces: set[tuple[str, ...]] = set()
    async with await Resources.open(time_config) as res:
        graph = graphs()[where]
        async for namespace, mode, chunk in graph.astream(
            {"requests": REQUESTS},
            {"configurable": {"thread_id": f"stream-{where}"}},
            context=Context(resources=res),
            stream_mode=MODES,
            subgraphs=True,
        ):
            json.dumps(chunk, allow_nan=False)
            seen[mode] = seen.get(mode, 0) + 1
            namespaces.add(tuple(n.partition(":")[0] for n in namespace))
            if mode == "custom":
                custom.add(chunk["type"])
            elif mode == "updates" and namespace[-1:] != ("coordinator",):
                updated |= set(chunk)
            elif mode == "values" and not namespace:
                last = chunk
    assert set(seen) >= set(MODES) - {"messages"}, seen  # no chat model: no messages
    assert custom <= CUSTOM and {"phase", "attempt"} <= custom, custom
    assert updated - {"coordinator"} <= NODES and {"assess"} <= updated, updated
    assert last["status"] == "ok" and last["results"]["now"]["agreement"] is True
    if where == "parent":
        assert ("coordinator",) in namespaces, namespaces

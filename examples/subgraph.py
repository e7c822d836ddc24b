"""Embed the coordinator in a parent graph, two ways.

1. **As a node, with shared keys**: ``parent.add_node("coordinator", coordinator)`` where the
   compiled coordinator reads the parent's ``requests`` (its input schema) and writes back its
   output keys (``status``, ``results``, ...). A ``plan`` node before it turns the parent's
   ``question`` into requests; a ``respond`` node after it turns the results into an ``answer``.
2. **Inside a node that maps state in and out**: the parent keeps its own keys
   (``question``/``answer`` only) and one node calls the coordinator with ``ainvoke``.

Both share the coordinator's live resources (MCP sessions) through the parent's runtime
context, so one MCP session per server serves every run.

    python examples/subgraph.py "What is 17 * 23.5 + 2 ** 10 / 4, and the time in Asia/Tokyo?"
"""

from __future__ import annotations

import asyncio
import re
import sys
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from hybridmcp import Context, Resources, build_graph, load_config

EXPRESSION = re.compile(r"[\d(][\d\s.+\-*/%()]*[\d)]")
TIMEZONE = re.compile(r"\b[A-Z][A-Za-z]+/[A-Za-z_]+(?:/[A-Za-z_]+)?\b|\bUTC\b")


def plan(question: str) -> list[dict[str, Any]]:
    """The requests a question needs: arithmetic is computed, times are cross-validated."""
    requests: list[dict[str, Any]] = []
    if m := EXPRESSION.search(question):
        expression = m.group().strip()
        requests.append(
            {"id": "calc", "skill": "math.calculate", "args": {"expression": expression}}
        )
    for i, zone in enumerate(TIMEZONE.findall(question)):
        requests.append(
            {"id": f"time-{i}", "skill": "time.now", "args": {"timezone": zone}, "critical": True}
        )
    return requests


def respond(requests: list[dict[str, Any]], results: dict[str, dict[str, Any]]) -> str:
    """One sentence per request, saying how far its answer was checked."""
    parts = []
    for request in requests:
        r = results[request["id"]]
        if r["error"]:
            parts.append(f"{request['id']}: could not be answered ({r['error']})")
        elif r["skill"] == "math.calculate":
            parts.append(f"{request['args']['expression']} = {r['value']['value']}")
        else:
            checked = "cross-validated" if r["agreement"] else f"{r['allocation']} only"
            parts.append(f"in {r['value']['timezone']} it is {r['value']['datetime']} ({checked})")
    return "; ".join(parts) or "nothing to coordinate in that question"


# 1. The coordinator as a node: the parent state shares the coordinator's keys.


class SharedState(TypedDict, total=False):
    question: str
    """What the user asks (input)."""
    requests: list[dict[str, Any]]
    """Written by plan; the coordinator's input."""
    status: str
    results: dict[str, dict[str, Any]]
    """Written by the coordinator (its output schema)."""
    answer: str
    """Written by respond (output)."""


def build_shared_parent(coordinator: CompiledStateGraph | None = None) -> CompiledStateGraph:
    coordinator = coordinator or build_graph().compile(name="hybridmcp")
    parent = StateGraph(SharedState, context_schema=Context)
    parent.add_node("plan", lambda s: {"requests": plan(s["question"])})
    parent.add_node("coordinator", coordinator)
    parent.add_node("respond", lambda s: {"answer": respond(s["requests"], s["results"])})
    parent.add_edge(START, "plan")
    parent.add_edge("plan", "coordinator")
    parent.add_edge("coordinator", "respond")
    parent.add_edge("respond", END)
    return parent.compile(name="qa-shared")


# 2. The coordinator inside a node: the parent state stays its own.


class QAState(TypedDict, total=False):
    question: str
    answer: str


def build_mapping_parent(coordinator: CompiledStateGraph | None = None) -> CompiledStateGraph:
    coordinator = coordinator or build_graph().compile(name="hybridmcp")

    async def coordinate(state: QAState, runtime: Runtime[Context]) -> dict[str, Any]:
        requests = plan(state["question"])
        if not requests:
            return {"answer": respond([], {})}
        out = await coordinator.ainvoke({"requests": requests}, context=runtime.context)
        return {"answer": respond(requests, out["results"])}

    parent = StateGraph(QAState, context_schema=Context)
    parent.add_node("coordinate", coordinate)
    parent.add_edge(START, "coordinate")
    parent.add_edge("coordinate", END)
    return parent.compile(name="qa-mapping")


async def main(question: str) -> None:
    async with await Resources.open(load_config()) as resources:  # the embedded default
        context = Context(resources=resources)
        for parent in (build_shared_parent(), build_mapping_parent()):
            out = await parent.ainvoke({"question": question}, context=context)
            print(f"{parent.name}: {out['answer']}")


if __name__ == "__main__":
    asyncio.run(main(" ".join(sys.argv[1:]) or "What is 6 * 7, and the time in Europe/Paris?"))

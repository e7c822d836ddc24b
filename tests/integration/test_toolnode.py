"""HybridToolNode in a small agent loop: model -> tools -> model, with a scripted chat model.

The tools run for real: built-in internal skills and the real mcp-server-time.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition

from hybridmcp import Context, Resources
from hybridmcp.toolnode import HybridToolNode, skill_name, tool_name, tools_for_model
from tests.conftest import time_server_config

pytestmark = pytest.mark.integration

TOOL_CALLS = [
    {"name": "time__now", "args": {"timezone": "Asia/Tokyo"}, "id": "call-now"},
    {"name": "math__calculate", "args": {"expression": "(17 * 23.5) + 2 ** 10 / 4"}, "id": "c2"},
    {"name": "no__such_tool", "args": {}, "id": "call-unknown"},
    {"name": "math__calculate", "args": {"expr": "1+1"}, "id": "call-bad-args"},
]


class ScriptedModel:
    """First asks for tools, then answers from what they returned; records what it saw."""

    def __init__(self, tool_calls: list[dict[str, Any]]) -> None:
        self.tool_calls = tool_calls
        self.tools: list[dict[str, Any]] = []
        self.seen: list[list[Any]] = []

    def bind_tools(self, tools: list[dict[str, Any]]) -> ScriptedModel:
        self.tools = [convert_to_openai_tool(t) for t in tools]
        return self

    async def ainvoke(self, messages: list[Any]) -> AIMessage:
        self.seen.append(list(messages))
        results = [m for m in messages if isinstance(m, ToolMessage)]
        if not results:
            return AIMessage("", tool_calls=self.tool_calls)
        lines = [f"{m.tool_call_id}: {m.status}: {m.content}" for m in results]
        return AIMessage("\n".join(lines))


def agent(model: ScriptedModel, tools: HybridToolNode, **compile_args: Any):
    async def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState, context_schema=Context)
    builder.add_node("model", call_model)
    builder.add_node("tools", tools)
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", tools_condition, {"tools": "tools", END: END})
    builder.add_edge("tools", "model")
    return builder.compile(**compile_args)


@pytest.fixture
async def resources():
    async with asyncio.timeout(60), await Resources.open(time_server_config()) as res:
        yield res


def test_tool_names_map_both_ways() -> None:
    from hybridmcp.capabilities.registry import build_registry

    registry = build_registry(time_server_config(), {})
    for skill in registry.skills:
        name = tool_name(skill)
        assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", name)
        assert skill_name(name, registry) == skill
    assert skill_name("time.now", registry) == "time.now"
    assert skill_name("nope", registry) == "nope"


async def test_agent_loop_runs_tool_calls_through_the_coordinator(resources) -> None:
    model = ScriptedModel(TOOL_CALLS).bind_tools(tools_for_model(resources.registry))
    names = {t["function"]["name"] for t in model.tools}
    assert {"time__now", "math__calculate", "time__get_current_time"} <= names
    graph = agent(model, HybridToolNode(critical=True), checkpointer=InMemorySaver())
    async with asyncio.timeout(60):
        out = await graph.ainvoke(
            {"messages": [HumanMessage("What time is it in Tokyo, and what is the total?")]},
            {"configurable": {"thread_id": "agent"}},
            context=Context(resources=resources),
        )
    messages = out["messages"]
    assert [type(m).__name__ for m in messages] == ["HumanMessage", "AIMessage"] + [
        "ToolMessage"
    ] * 4 + ["AIMessage"]
    tool_messages = {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}
    assert list(tool_messages) == [c["id"] for c in TOOL_CALLS]  # ids kept, in order

    now = tool_messages["call-now"]
    assert now.status == "success" and now.name == "time__now"
    assert json.loads(now.content)["timezone"] == "Asia/Tokyo"
    assert now.artifact["allocation"] == "hybrid" and now.artifact["agreement"] is True
    assert {a["side"] for a in now.artifact["attempts"]} == {"internal", "external"}

    assert json.loads(tool_messages["c2"].content) == {"value": 655.5}
    unknown = tool_messages["call-unknown"]
    assert unknown.status == "error" and "unknown skill 'no__such_tool'" in unknown.content
    bad = tool_messages["call-bad-args"]
    assert bad.status == "error" and "expression" in bad.content

    final = messages[-1]
    assert 'c2: success: {"value": 655.5}' in final.content
    assert len(model.seen) == 2  # the model saw the tool results once, then answered


async def test_a_list_of_messages_gives_a_list(resources) -> None:
    node = HybridToolNode(resources=resources, strategy="external")
    calls = [{"name": "time__now", "args": {"timezone": "UTC"}, "id": "ext"}]
    async with asyncio.timeout(60):
        out = await node.ainvoke([HumanMessage("now?"), AIMessage("", tool_calls=calls)])
    assert isinstance(out, list) and len(out) == 1
    assert out[0].status == "success" and out[0].artifact["allocation"] == "external"
    assert out[0].artifact["attempts"][0]["provider"] == "mcp:time/get_current_time"


async def test_a_failing_side_fails_over_to_the_other() -> None:
    config = time_server_config(
        skills={
            "clock.now": {
                "input_schema": {"type": "object", "properties": {"timezone": {"type": "string"}}},
                "providers": [
                    {"side": "internal", "function": "tests.helpers:broken_time"},
                    {"side": "external", "server": "time", "tool": "get_current_time"},
                ],
            }
        }
    )
    calls = [{"name": "clock__now", "args": {"timezone": "UTC"}, "id": "x"}]
    async with asyncio.timeout(60), await Resources.open(config) as res:
        node = HybridToolNode(resources=res, strategy="internal")
        out = await node.ainvoke({"messages": [AIMessage("", tool_calls=calls)]})
    [message] = out["messages"]
    assert message.status == "success" and json.loads(message.content)["timezone"] == "UTC"
    attempts = message.artifact["attempts"]
    assert [(a["side"], a["ok"]) for a in attempts] == [("internal", False), ("external", True)]


async def test_sensitive_calls_stay_inside(resources) -> None:
    node = HybridToolNode(resources=resources, critical=True, sensitivity="confidential")
    calls = [{"name": "time__now", "args": {"timezone": "UTC"}, "id": "private"}]
    async with asyncio.timeout(60):
        [message] = await node.ainvoke([AIMessage("", tool_calls=calls)])
    assert message.status == "success" and message.artifact["allocation"] == "internal"
    assert [a["side"] for a in message.artifact["attempts"]] == ["internal"]

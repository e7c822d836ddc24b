"""HybridToolNode where a ToolNode goes: ``create_react_agent`` and a hand-written loop with
``tools_condition``, async and sync, driven by a chat model that issues scripted tool calls.

The tools run for real: the user's own ``@tool`` functions and callables, the built-in skills,
the real ``mcp-server-time`` and ``@modelcontextprotocol/server-everything`` (images)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, create_react_agent, tools_condition
from pydantic import Field

from hybridmcp import Context, Resources, TaskError, parse_config
from hybridmcp.toolnode import (
    HybridToolError,
    HybridToolNode,
    InvalidToolCallError,
    skill_name,
    tool_name,
    tools_for_model,
)
from tests.conftest import time_server_config
from tests.integration.test_resilience import everything, requires_everything

pytestmark = pytest.mark.integration


class ScriptedChatModel(BaseChatModel):
    """A chat model that asks for the scripted tool calls, turn by turn, then answers with what
    the tools returned. Like a real model it can only call the tools it was bound to."""

    turns: list[list[dict[str, Any]]]
    bound: list[dict[str, Any]] = Field(default_factory=list)
    seen: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedChatModel:  # type: ignore[override]
        self.bound = [convert_to_openai_tool(t)["function"] for t in tools]
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.seen.append(list(messages))
        turn = sum(isinstance(m, AIMessage) for m in messages)
        if turn < len(self.turns):
            names = {t["name"] for t in self.bound}
            calls = self.turns[turn]
            unknown = [c["name"] for c in calls if c["name"] not in names]
            if unknown and not any(c.get("id", "").startswith("bad") for c in calls):
                raise ValueError(f"the model was not given {unknown}; it has {sorted(names)}")
            message = AIMessage("", tool_calls=calls)
        else:
            results = [m for m in messages if isinstance(m, ToolMessage)]
            message = AIMessage("\n".join(f"{m.tool_call_id}: {m.content}" for m in results))
        return ChatResult(generations=[ChatGeneration(message=message)])


@tool
def get_weather(city: str) -> dict[str, Any]:
    """Today's weather in a city."""
    return {"city": city, "sky": "clear", "celsius": 21}


def shout(text: str) -> str:
    """Upper-cases a text."""
    return text.upper()


@tool
def flaky_lookup(key: str) -> str:
    """Looks a key up; every key is missing."""
    raise LookupError(f"no entry for {key!r}")


def loop_graph(model: ScriptedChatModel, node: ToolNode, **compile_args: Any) -> Any:
    """The hand-written agent loop of the LangGraph docs: model -> tools -> model."""

    async def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState, context_schema=Context)
    builder.add_node("model", call_model)
    builder.add_node("tools", node)
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", tools_condition, {"tools": "tools", END: END})
    builder.add_edge("tools", "model")
    return builder.compile(**compile_args)


@pytest.fixture
async def resources() -> AsyncIterator[Resources]:
    async with asyncio.timeout(60), await Resources.open(time_server_config()) as res:
        yield res


def by_id(messages: list[BaseMessage]) -> dict[str, ToolMessage]:
    return {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}


def test_tool_names_map_both_ways() -> None:
    from hybridmcp.capabilities.registry import build_registry

    registry = build_registry(time_server_config(), {})
    for skill in registry.skills:
        name = tool_name(skill)
        assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", name)
        assert skill_name(name, registry) == skill
    assert skill_name("time.now", registry) == "time.now"
    assert skill_name("nope", registry) == "nope"


HAND_LOOP_CALLS = [
    {"name": "time__now", "args": {"timezone": "Asia/Tokyo"}, "id": "call-now"},
    {"name": "math__calculate", "args": {"expression": "(17 * 23.5) + 2 ** 10 / 4"}, "id": "c2"},
    {"name": "no__such_tool", "args": {}, "id": "bad-unknown"},
    {"name": "math__calculate", "args": {"expr": "1+1"}, "id": "bad-args"},
]


async def test_hand_written_loop_runs_tool_calls_through_the_coordinator(resources) -> None:
    model = ScriptedChatModel(turns=[HAND_LOOP_CALLS])
    model.bind_tools(tools_for_model(resources))
    assert {"time__now", "math__calculate", "time__get_current_time"} <= {
        t["name"] for t in model.bound
    }
    graph = loop_graph(model, HybridToolNode(critical=True), checkpointer=InMemorySaver())
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
    tool_messages = by_id(messages)
    assert list(tool_messages) == [c["id"] for c in HAND_LOOP_CALLS]  # ids kept, in order

    now = tool_messages["call-now"]
    assert now.status == "success" and now.name == "time__now"
    assert json.loads(now.content)["timezone"] == "Asia/Tokyo"
    assert now.artifact["allocation"] == "hybrid" and now.artifact["agreement"] is True
    assert {a["side"] for a in now.artifact["attempts"]} == {"internal", "external"}
    assert now.artifact["id"] == "call-now" and now.artifact["content"] == []

    assert json.loads(tool_messages["c2"].content) == {"value": 655.5}
    unknown = tool_messages["bad-unknown"]
    assert unknown.status == "error"
    assert unknown.content.startswith("Error: no__such_tool is not a valid tool, try one of [")
    bad = tool_messages["bad-args"]
    assert bad.status == "error"
    assert bad.content == (
        "Error: tool 'math__calculate' (skill 'math.calculate'): argument <arguments>: "
        "'expression' is a required property"
    )
    assert 'c2: {"value": 655.5}' in messages[-1].content
    assert len(model.seen) == 2  # the model saw the tool results once, then answered


@pytest.mark.parametrize("version", ["v1", "v2"])  # v1: one node run; v2: a Send per call
async def test_create_react_agent_with_the_users_tools_beside_mcp(resources, version) -> None:
    node = HybridToolNode([get_weather, shout], resources=resources)
    calls = [
        {"name": "get_weather", "args": {"city": "Oslo"}, "id": "w"},
        {"name": "shout", "args": {"text": "hello"}, "id": "s"},
        {"name": "time__get_current_time", "args": {"timezone": "Europe/Paris"}, "id": "t"},
    ]
    model = ScriptedChatModel(turns=[calls])
    agent = create_react_agent(model, tools=node, version=version)
    bound = {t["name"]: t for t in model.bound}
    assert {"get_weather", "shout", "time__now", "time__get_current_time"} <= set(bound)
    assert bound["get_weather"]["parameters"]["required"] == ["city"]
    assert bound["shout"]["description"].startswith("Upper-cases a text.")
    async with asyncio.timeout(60):
        out = await agent.ainvoke({"messages": [HumanMessage("weather, shout and time")]})
    messages = by_id(out["messages"])
    assert json.loads(messages["w"].content) == {"city": "Oslo", "sky": "clear", "celsius": 21}
    assert messages["s"].content == "HELLO" and messages["s"].status == "success"
    assert messages["w"].artifact["served_by"] == {
        "provider": "internal:tool/get_weather",
        "side": "internal",
    }
    paris = messages["t"]
    assert json.loads(paris.content)["timezone"] == "Europe/Paris"
    assert paris.artifact["served_by"]["provider"] == "mcp:time/get_current_time"
    final = out["messages"][-1]
    assert isinstance(final, AIMessage) and "s: HELLO" in final.content


async def test_a_users_tool_cross_validates_an_mcp_tool(resources) -> None:
    """A ``@tool`` serving the same skill as an MCP tool: critical calls run on both sides and
    are compared; a tool that disagrees leaves the conflict unresolved, as an error."""

    @tool
    def paris_time(timezone: str) -> dict[str, Any]:
        """A twin of mcp-server-time's get_current_time that answers for Paris only."""
        return {"timezone": "Europe/Paris", "datetime": "1999-01-01T00:00:00+01:00"}

    node = HybridToolNode(
        [paris_time],
        resources=resources,
        critical=True,
        provides={"paris_time": "time.get_current_time"},
        handle_tool_errors=HybridToolError,
    )
    assert "paris_time" not in node.tools_by_name  # it serves the skill offered as time__...
    call = {"name": "time__get_current_time", "args": {"timezone": "UTC"}, "id": "x"}
    async with asyncio.timeout(60):
        [message] = await node.ainvoke([AIMessage("", tool_calls=[call])])
    assert message.status == "error"
    assert "conflict unresolved" in message.content
    sides = {a["provider"] for a in message.artifact["attempts"]}
    assert sides == {"internal:tool/paris_time", "mcp:time/get_current_time"}

    # declared a write, it runs once, on one side: never cross-validated
    writer = HybridToolNode(
        [paris_time],
        resources=resources,
        critical=True,
        provides={"paris_time": "time.get_current_time"},
        effects={"paris_time": "write"},
    )
    assert writer.tools_by_name["time__get_current_time"].effect == "write"  # type: ignore[attr-defined]
    async with asyncio.timeout(60):
        [once] = await writer.ainvoke([AIMessage("", tool_calls=[call])])
    assert once.status == "success" and len(once.artifact["attempts"]) == 1


@pytest.mark.parametrize(
    ("handling", "expected"),
    [
        (True, {"bad": "Error: nope is not a valid tool", "fail": "Error: tool 'flaky_lookup'"}),
        ("try again later", {"bad": "try again later", "fail": "try again later"}),
        (InvalidToolCallError, {"bad": "Error: nope is not a valid tool", "fail": LookupError}),
        ((InvalidToolCallError, HybridToolError), {"bad": "Error: nope", "fail": "Error: tool"}),
        (False, {"bad": InvalidToolCallError}),
    ],
)
async def test_handle_tool_errors_as_tool_node(resources, handling: Any, expected: dict) -> None:
    node = HybridToolNode([flaky_lookup], resources=resources, handle_tool_errors=handling)
    for call_id, want in expected.items():
        name, args = ("nope", {}) if call_id == "bad" else ("flaky_lookup", {"key": "k"})
        calls = [{"name": name, "args": args, "id": call_id}]
        async with asyncio.timeout(60):
            if isinstance(want, type):
                error = InvalidToolCallError if want is InvalidToolCallError else HybridToolError
                with pytest.raises(error) as raised:
                    await node.ainvoke({"messages": [AIMessage("", tool_calls=calls)]})
                if want is LookupError:
                    assert "no entry for 'k'" in str(raised.value)
                continue
            out = await node.ainvoke({"messages": [AIMessage("", tool_calls=calls)]})
        [message] = out["messages"]
        assert message.status == "error" and message.content.startswith(want)
        assert message.tool_call_id == call_id and message.name == name


async def test_a_typed_callable_handles_only_its_errors(resources) -> None:
    def explain(e: InvalidToolCallError) -> str:
        return f"ask again: {e.tool}"

    node = HybridToolNode([flaky_lookup], resources=resources, handle_tool_errors=explain)
    bad = [{"name": "nope", "args": {}, "id": "b"}]
    async with asyncio.timeout(60):
        [message] = await node.ainvoke([AIMessage("", tool_calls=bad)])
        assert message.content == "ask again: nope"
        failing = [{"name": "flaky_lookup", "args": {"key": "k"}, "id": "f"}]
        with pytest.raises(HybridToolError, match="no entry for 'k'"):
            await node.ainvoke([AIMessage("", tool_calls=failing)])


async def test_skill_tools_work_in_a_plain_tool_node(resources) -> None:
    """The offered tools are real BaseTools: LangGraph's own ToolNode runs them, each call a
    coordinated request, the record as the artifact."""
    tools = tools_for_model(resources, ["time.now", "math.calculate"])
    model = ScriptedChatModel(
        turns=[[{"name": "math__calculate", "args": {"expression": "6*7"}, "id": "m"}]]
    )
    model.bind_tools(tools)
    graph = loop_graph(model, ToolNode(tools))
    async with asyncio.timeout(60):
        out = await graph.ainvoke({"messages": [HumanMessage("6*7?")]})
    [message] = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert json.loads(message.content) == {"value": 42}
    assert message.artifact["served_by"]["side"] == "internal"


def test_sync_create_react_agent_opens_its_own_resources(tmp_path: Path) -> None:
    """From sync code, a node given no resources opens its own (mcp-server-time included) on a
    loop of its own: at once with ``connect=True`` (every server's tools offered), else at the
    first call; close() stops them."""
    config = tmp_path / "hybridmcp.yaml"
    config.write_text(yaml.safe_dump({"mcpServers": {"time": {"command": "mcp-server-time"}}}))
    calls = [
        {"name": "shout", "args": {"text": "sync"}, "id": "s"},
        {"name": "math__calculate", "args": {"expression": "2+2"}, "id": "m"},
        {"name": "time__get_current_time", "args": {"timezone": "UTC"}, "id": "t"},
    ]
    connected = HybridToolNode([shout], config_path=str(config), connect=True)
    lazy = HybridToolNode([shout], config_path=str(config))
    assert "time__get_current_time" in connected.tools_by_name
    assert "time__get_current_time" not in lazy.tools_by_name  # not listed before it connects
    try:
        for node, turn in ((connected, calls), (connected, calls), (lazy, calls[:2])):
            model = ScriptedChatModel(turns=[turn])
            agent = create_react_agent(model, tools=node)
            out = agent.invoke({"messages": [HumanMessage("sync")]})
            messages = by_id(out["messages"])
            assert messages["s"].content == "SYNC"
            assert json.loads(messages["m"].content) == {"value": 4}
            if "t" in messages:
                assert json.loads(messages["t"].content)["timezone"] == "UTC"
                assert messages["t"].artifact["served_by"]["side"] == "external"
        pools = [n._portal.resources.pool for n in (connected, lazy)]  # type: ignore[union-attr]
        assert all(pool.status("time").up for pool in pools)
    finally:
        connected.close()
        lazy.close()
    assert not any(pool.status("time").up for pool in pools)
    assert connected.resources is None and lazy._portal is None


@pytest.fixture
def loop_in_a_thread() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


def test_sync_graph_with_resources_on_another_loop(loop_in_a_thread) -> None:
    """Resources opened on a loop in another thread serve a sync graph's node (its sessions
    stay on their loop); called from a running loop, invoke says to use ainvoke."""

    def on_loop(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop_in_a_thread).result(timeout=60)

    res = on_loop(Resources.open(time_server_config()))
    try:
        node = HybridToolNode(resources=res, strategy="external")
        model = ScriptedChatModel(
            turns=[[{"name": "time__now", "args": {"timezone": "Asia/Tokyo"}, "id": "n"}]]
        )
        model.bind_tools(list(node.tools_by_name.values()))

        def call_model(state: MessagesState) -> dict[str, Any]:
            return {"messages": [model.invoke(state["messages"])]}

        builder = StateGraph(MessagesState)
        builder.add_node("model", call_model)
        builder.add_node("tools", node)
        builder.add_edge(START, "model")
        builder.add_conditional_edges("model", tools_condition)
        builder.add_edge("tools", "model")
        out = builder.compile().invoke({"messages": [HumanMessage("time in Tokyo?")]})
        [message] = [m for m in out["messages"] if isinstance(m, ToolMessage)]
        assert json.loads(message.content)["timezone"] == "Asia/Tokyo"
        assert message.artifact["allocation"] == "external"

        async def sync_inside_a_loop() -> None:
            node.invoke([AIMessage("", tool_calls=[{"name": "time__now", "args": {}, "id": "x"}])])

        with pytest.raises(RuntimeError, match="use the async form"):
            asyncio.run(sync_inside_a_loop())
        # ainvoke from another loop runs on the resources' loop
        [again] = asyncio.run(
            node.ainvoke(
                [
                    AIMessage(
                        "",
                        tool_calls=[{"name": "time__now", "args": {"timezone": "UTC"}, "id": "y"}],
                    )
                ]
            )
        )
        assert again.status == "success", again.content
    finally:
        on_loop(res.close())


@requires_everything
async def test_images_and_resources_ride_as_artifacts() -> None:
    async with asyncio.timeout(60), everything("stdio") as server:
        cfg = parse_config({"mcpServers": {"everything": {**server, "timeout_ms": 10_000}}})
        async with await Resources.open(cfg) as res:
            node = HybridToolNode(resources=res)
            calls = [
                {"name": "everything__get-tiny-image", "args": {}, "id": "img"},
                {"name": "everything__get-resource-links", "args": {"count": 2}, "id": "links"},
            ]
            model = ScriptedChatModel(turns=[calls])
            agent = create_react_agent(model, tools=node)
            out = await agent.ainvoke({"messages": [HumanMessage("show me")]})
    messages = by_id(out["messages"])
    image = messages["img"]
    assert isinstance(image.content, str) and image.status == "success"
    assert "[image image/png, " in image.content and "artifact content[0]]" in image.content
    [part] = image.artifact["content"]
    assert part["type"] == "image" and part["mime_type"] == "image/png"
    assert base64.b64decode(part["data"]).startswith(b"\x89PNG")
    assert part["data"] not in image.content  # the model reads text, not base64
    links = messages["links"]
    assert [p["type"] for p in links.artifact["content"]] == ["resource_link"] * 2
    assert links.content.count("[resource link") == 2
    final = out["messages"][-1]
    assert "img: " in final.content and part["data"] not in final.content


async def test_direct_tool_calls_and_skill_tools_on_their_own(resources) -> None:
    node = HybridToolNode([shout], resources=resources)
    direct = [{"name": "shout", "args": {"text": "hi"}, "id": "d", "type": "tool_call"}]
    async with asyncio.timeout(60):
        out = await node.ainvoke(direct)
        [message] = out["messages"]
        assert message.content == "HI" and message.tool_call_id == "d"
        calculate = node.tools_by_name["math__calculate"]
        assert await calculate.ainvoke({"expression": "1+2"}) == '{"value": 3}'
        called = await calculate.ainvoke(
            {
                "name": "math__calculate",
                "args": {"expression": "2*3"},
                "id": "c",
                "type": "tool_call",
            }
        )
        assert (
            called.content == '{"value": 6}' and called.artifact["served_by"]["side"] == "internal"
        )
        with pytest.raises(InvalidToolCallError, match="'expression' is a required property"):
            await calculate.ainvoke({"expr": "1"})


def test_skills_of_servers_not_yet_listed_are_left_out(tmp_path: Path) -> None:
    config = tmp_path / "hybridmcp.yaml"
    config.write_text(yaml.safe_dump({"mcpServers": {"time": {"command": "mcp-server-time"}}}))
    node = HybridToolNode(config_path=str(config), skills=["time.get_current_time", "time.now"])
    assert set(node.tools_by_name) == {"time__now"}  # the server's tool: once it is listed
    typo = HybridToolNode(config_path=str(config), skills=["tme.now"])
    with pytest.raises(TaskError, match="unknown skill 'tme.now'"):
        assert typo.tools_by_name


async def test_a_call_to_a_down_servers_tool_says_it_is_down(tmp_path: Path) -> None:
    config = parse_config({"mcpServers": {"gone": {"command": str(tmp_path / "no-such-server")}}})
    async with asyncio.timeout(60), await Resources.open(config) as res:
        node = HybridToolNode(resources=res)
        calls = [{"name": "gone__read", "args": {}, "id": "g"}]
        [message] = await node.ainvoke([AIMessage("", tool_calls=calls)])
    assert message.status == "error"
    assert message.content.startswith(
        "Error: gone__read is not a valid tool (MCP server 'gone' is down:"
    )

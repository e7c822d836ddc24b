"""HybridToolNode's pure parts: content for the model and its artifacts, the user's tools as
providers (schemas, effects, joining a skill), what is refused, and the tools offered."""

from __future__ import annotations

import base64
import json
import re
from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.tools import BaseTool, StructuredTool, tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_mcp_adapters.tools import convert_mcp_tool_to_langchain_tool
from langgraph.prebuilt import InjectedState, ToolNode
from langgraph.types import Command
from mcp.types import Tool

from hybridmcp.capabilities.registry import Registry, Skill, build_registry, invoke_internal
from hybridmcp.config import ComparatorConfig
from hybridmcp.errors import TaskError, ToolError
from hybridmcp.toolnode import (
    HybridToolNode,
    SkillTool,
    register_tools,
    skill_name,
    split_content,
    tool_effect_of,
    tool_name,
    tools_for_model,
)
from tests.conftest import time_server_config

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(40)).decode()
IMAGE = {"type": "image", "mime_type": "image/png", "data": PNG}
LINK = {"type": "resource_link", "uri": "demo://r/1", "name": "r1", "mime_type": "text/plain"}
TEXT_RESOURCE = {"type": "resource", "uri": "demo://r/2", "mime_type": "text/plain", "text": "hi"}
BLOB_RESOURCE = {"type": "resource", "uri": "demo://r/3", "mime_type": None, "blob": PNG}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
parts = st.sampled_from([IMAGE, LINK, TEXT_RESOURCE, BLOB_RESOURCE])


@given(json_values)
def test_plain_values_are_text_and_carry_no_parts(value: Any) -> None:
    content, blocks = split_content(value)
    assert blocks == []
    assert content == (value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


@given(
    st.lists(st.one_of(st.text(), parts), min_size=1, max_size=6).filter(
        lambda v: any(isinstance(x, dict) for x in v)
    )
)
def test_every_non_text_part_moves_to_the_artifact_in_order(value: list[Any]) -> None:
    content, blocks = split_content(value)
    assert blocks == [x for x in value if isinstance(x, dict)]
    assert PNG not in content  # no base64 reaches the model
    for i, part in enumerate(blocks):
        assert f"artifact content[{i}]" in content
        if "text" in part:
            assert part["text"] in content  # a text resource's text is text for the model
    for text in (x for x in value if isinstance(x, str)):
        assert text in content


def test_a_lone_image_is_named_for_the_model() -> None:
    content, blocks = split_content(IMAGE)
    assert blocks == [IMAGE]
    assert content == "[image image/png, 48 bytes; artifact content[0]]"


@tool
def get_weather(city: str, unit: str = "celsius") -> dict[str, Any]:
    """The weather in a city."""
    return {"city": city, "temp": 21 if unit == "celsius" else 70}


def shout(text: str) -> str:
    """Upper-cases a text."""
    return text.upper()


def test_a_tool_becomes_a_skill_with_its_schema() -> None:
    registry = build_registry(time_server_config(), {})
    served = register_tools(registry, [get_weather], default_timeout_ms=5000)
    assert served == {"get_weather": "get_weather"}
    skill = registry.get("get_weather")
    assert skill.input_schema["required"] == ["city"]
    assert set(skill.input_schema["properties"]) == {"city", "unit"}
    assert skill.description == "The weather in a city."
    [provider] = skill.providers
    assert provider.side == "internal" and provider.id == "internal:tool/get_weather"
    assert registry.provider("internal:tool/get_weather") is provider  # index refreshed
    with pytest.raises(TaskError, match="argument <arguments>: 'city' is a required"):
        skill.validate_args({})


async def test_the_provider_runs_the_tool() -> None:
    registry = Registry()
    register_tools(registry, [get_weather], default_timeout_ms=5000)
    [provider] = registry.get("get_weather").providers
    assert await invoke_internal(provider, {"city": "Oslo", "unit": "f"}) == {
        "city": "Oslo",
        "temp": 70,
    }


def test_a_tool_named_after_a_skill_joins_its_providers() -> None:
    registry = build_registry(time_server_config(), {})
    before = [p.id for p in registry.get("time.now").providers]

    @tool("time__now")
    def clock(timezone: str) -> dict[str, str]:
        """My clock."""
        return {"timezone": timezone}

    @tool
    def my_calc(expression: str) -> float:
        """Evaluates."""
        return 0.0

    served = register_tools(
        registry, [clock, my_calc], default_timeout_ms=5000, provides={"my_calc": "math.calculate"}
    )
    assert served == {"time__now": "time.now", "my_calc": "math.calculate"}
    assert [p.id for p in registry.get("time.now").providers] == [
        *before,
        "internal:tool/time__now",
    ]
    assert "internal:tool/my_calc" in [p.id for p in registry.get("math.calculate").providers]
    # the same tools again change nothing
    register_tools(
        registry, [clock, my_calc], default_timeout_ms=5000, provides={"my_calc": "math.calculate"}
    )
    assert len(registry.get("time.now").providers) == len(before) + 1
    with pytest.raises(TaskError, match="provides\\['my_calc'\\] names an unknown skill 'nope'"):
        register_tools(registry, [my_calc], default_timeout_ms=5000, provides={"my_calc": "nope"})


def test_effects_declared_or_from_mcp_annotations_else_read() -> None:
    assert tool_effect_of(get_weather) == "read"
    assert tool_effect_of(get_weather, "write") == "write"
    annotated = StructuredTool.from_function(
        shout, metadata={"readOnlyHint": False, "idempotentHint": True}
    )
    assert tool_effect_of(annotated) == "idempotent"
    destructive = StructuredTool.from_function(shout, metadata={"destructiveHint": True})
    assert tool_effect_of(destructive) == "write"


def test_tools_that_need_graph_state_or_bypass_the_gate_are_refused() -> None:
    @tool
    def with_state(query: str, state: Annotated[dict[str, Any], InjectedState]) -> str:
        """Reads the state."""
        return query

    with pytest.raises(TypeError, match="injected graph state"):
        HybridToolNode([with_state], config_path=None)

    listing = Tool(name="get_current_time", inputSchema={"type": "object"})
    connection = {"transport": "stdio", "command": "mcp-server-time", "args": []}
    adapter = convert_mcp_tool_to_langchain_tool(None, listing, connection=connection)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Put the same connection under `mcpServers`"):
        HybridToolNode([adapter])
    with pytest.raises(TypeError, match="neither a BaseTool nor a callable"):
        HybridToolNode([42])  # type: ignore[list-item]


def test_offered_tools_are_base_tools_with_argument_schemas() -> None:
    node = HybridToolNode([get_weather, shout])
    assert isinstance(node, ToolNode)
    tools = node.tools_by_name
    assert {"get_weather", "shout", "time__now", "math__calculate"} <= set(tools)
    assert all(isinstance(t, BaseTool) and isinstance(t, SkillTool) for t in tools.values())
    schema = convert_to_openai_tool(tools["shout"])["function"]
    assert schema["parameters"]["required"] == ["text"] and schema["description"].startswith(
        "Upper-cases a text."
    )
    calc = convert_to_openai_tool(tools["math__calculate"])["function"]["parameters"]
    assert "expression" in calc["properties"]
    assert tools["time__now"].skill == "time.now"  # type: ignore[attr-defined]
    only = HybridToolNode([shout], skills=["time.now"])
    assert set(only.tools_by_name) == {"time__now", "shout"}
    registry = build_registry(time_server_config(), {})
    assert [t.name for t in tools_for_model(registry, ["math.calculate"])] == ["math__calculate"]


def test_error_handlers_are_typed_as_in_tool_node() -> None:
    def bad(e: int) -> str:  # not an exception type
        return ""

    with pytest.raises(ValueError, match="Arbitrary types are not supported"):
        HybridToolNode(handle_tool_errors=bad)


async def test_a_tool_returning_a_command_fails_with_what_to_do() -> None:
    @tool
    def jump(to: str) -> Command:
        """Moves the graph."""
        return Command(goto=to)

    registry = Registry()
    register_tools(registry, [jump], default_timeout_ms=5000)
    [provider] = registry.get("jump").providers
    with pytest.raises(ToolError, match="returned a Command"):
        await invoke_internal(provider, {"to": "x"})


_NAME_PARTS = st.sampled_from(["a", "b", ".", "_", "__", "-", "名前", "日本", "x" * 40, "é"])
skill_names = st.text(min_size=1, max_size=80) | st.lists(_NAME_PARTS, min_size=1).map("".join)


@settings(deadline=None)  # builds pydantic models: slow on a loaded machine
@given(st.lists(skill_names, unique=True, min_size=1, max_size=6))
def test_any_skill_names_map_to_distinct_valid_tool_names(names: list[str]) -> None:
    """Names a server may give its tools (unicode, dots beside underscores, 80 characters):
    each skill is a tool of its own, never refused for sharing a name with another."""
    registry = Registry()
    for name in names:
        registry.skills[name] = Skill(name, "", {"type": "object"}, (), ComparatorConfig())
    tool_names = [tool_name(n) for n in names]
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", t) for t in tool_names)
    assert len(set(tool_names)) == len(tool_names)
    tools = tools_for_model(registry)
    assert sorted(t.name for t in tools) == sorted(tool_names)
    for tool_, name in zip(tools, sorted(names), strict=True):
        assert tool_.skill == name  # type: ignore[attr-defined]
        assert skill_name(tool_.name, registry) == name

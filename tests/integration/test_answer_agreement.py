"""Two sides that mean the same answer agree, on a real server that spells it its own way:
``@modelcontextprotocol/server-everything`` (JavaScript) sends the reading ``36.0`` as ``36``;
a Python side keeps ``36.0``. Cross-validated under the ``exact`` comparator, they agree, and a
reading that really differs still conflicts."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from hybridmcp import Coordinator, parse_task
from hybridmcp.config import parse_config
from tests.integration.test_answer_shapes import shapes_stdio
from tests.integration.test_resilience import everything, requires_everything

pytestmark = pytest.mark.integration


@requires_everything
async def test_a_javascript_servers_integers_agree_with_a_python_sides_floats() -> None:
    async with asyncio.timeout(60), everything("stdio") as server:
        cfg = parse_config(
            {
                "mcpServers": {"everything": {**server, "timeout_ms": 10_000}},
                "skills": {
                    "weather.now": {
                        "description": "The weather in a city.",
                        "input_schema": {
                            "type": "object",
                            "properties": {"location": {"type": "string"}},
                            "required": ["location"],
                        },
                        "comparator": {"type": "exact"},
                        "providers": [
                            {"side": "internal", "function": "tests.helpers:station_weather"},
                            {
                                "side": "external",
                                "server": "everything",
                                "tool": "get-structured-content",
                            },
                        ],
                    }
                },
            }
        )
        cities = ["New York", "Chicago", "Los Angeles"]
        task = parse_task(
            [
                {"id": city, "skill": "weather.now", "args": {"location": city}, "critical": True}
                for city in cities
            ]
        )
        async with Coordinator.open(cfg) as co:
            out = await co.run(task)
    for city in ("New York", "Chicago"):
        result = out["results"][city]
        assert result["status"] == "ok" and result["agreement"] is True, result
        assert len(result["sources"]) == 2
    la = out["results"]["Los Angeles"]
    assert la["status"] == "unresolved" and la["agreement"] is False
    assert la["values"]["mcp:everything/get-structured-content"]["temperature"] == 73
    assert [c["request_id"] for c in out["conflicts"]] == ["Los Angeles"]


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        (
            "tests.helpers:lyon_weather_model",
            {"city": "Lyon", "temperature_c": 21.5, "conditions": "sunny"},
        ),
        (
            "tests.helpers:lyon_weather_dataclass",
            {
                "city": "Lyon",
                "temperature_c": 21.5,
                "conditions": "sunny",
                "measured": [2026, 6, 1],
            },
        ),
    ],
)
async def test_an_internal_twin_returning_a_model_agrees_with_its_fastmcp_tool(
    function: str, expected: dict[str, Any]
) -> None:
    """The same code served internally and as a FastMCP tool: the tool's pydantic model (or
    dataclass) reaches the coordinator as structured content; the internal side's is read as
    the same JSON value, so the two agree, and the result is plain data."""
    cfg = parse_config(
        {
            "mcpServers": {"shapes": shapes_stdio()},
            "skills": {
                "lyon.weather": {
                    "description": "The weather in Lyon.",
                    "input_schema": {"type": "object"},
                    "comparator": {"type": "json_subset", "fields": ["city", "temperature_c"]},
                    "providers": [
                        {"side": "internal", "function": function},
                        {"side": "external", "server": "shapes", "tool": "weather"},
                    ],
                }
            },
        }
    )
    task = parse_task(
        [{"id": "w", "skill": "lyon.weather", "args": {}, "critical": True, "strategy": "hybrid"}]
    )
    async with asyncio.timeout(60), Coordinator.open(cfg) as co:
        out = await co.run(task)
    result = out["results"]["w"]
    assert result["status"] == "ok" and result["agreement"] is True, result
    internal = next(a for a in result["attempts"] if a["side"] == "internal")
    assert internal["ok"], internal
    assert json.loads(json.dumps(result["value"])) == result["value"]
    assert result["value"] in (expected, {k: v for k, v in expected.items() if k != "measured"})


async def test_a_json_text_and_the_value_it_spells_agree() -> None:
    """A FastMCP ``str`` tool echoing JSON text of an object is read as that object (as
    ``mcp-server-time``'s twin needs); the internal twin returns the text itself. They mean
    the same answer and agree; a text that spells a different object conflicts."""
    cfg = parse_config(
        {
            "mcpServers": {"shapes": shapes_stdio()},
            "skills": {
                "text.echo": {
                    "description": "The text back.",
                    "input_schema": {
                        "type": "object",
                        "properties": {"text": {"type": "string"}},
                        "required": ["text"],
                    },
                    "comparator": {"type": "exact"},
                    "providers": [
                        {"side": "internal", "function": "tests.helpers:echo_str"},
                        {"side": "external", "server": "shapes", "tool": "echo"},
                    ],
                }
            },
        }
    )
    texts = {"object": '{"b": [2, 3.0], "a": 1}', "list": "[1, 2]", "plain": "hello"}
    task = parse_task(
        [
            {"id": k, "skill": "text.echo", "args": {"text": t}, "critical": True}
            for k, t in texts.items()
        ]
    )
    async with asyncio.timeout(60), Coordinator.open(cfg) as co:
        out = await co.run(task)
    for key in texts:
        result = out["results"][key]
        assert result["status"] == "ok" and result["agreement"] is True, result


def clock_config(*, third: bool, tags: list[str]) -> Any:
    """``clock.now``: an internal clock two hours fast, the honest mcp-server-time and (when
    ``third``) its FastMCP twin, whose answer is a ``str`` of JSON text."""
    providers: list[dict[str, Any]] = [
        {"side": "internal", "function": "tests.helpers:wrong_time"},
        {"side": "external", "server": "time", "tool": "get_current_time"},
    ]
    servers: dict[str, Any] = {
        "time": {"command": "mcp-server-time", "args": ["--local-timezone", "UTC"]}
    }
    if third:
        providers.append({"side": "external", "server": "shapes", "tool": "get_current_time"})
        servers["shapes"] = shapes_stdio()
    return parse_config(
        {
            "mcpServers": servers,
            "skills": {
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
                    "providers": providers,
                }
            },
        }
    )


async def test_after_learning_the_side_shown_wrong_never_wins() -> None:
    """Critical requests with a third provider show the fast clock wrong (the two time servers,
    one of them a FastMCP twin answering in another shape, agree). Afterwards, with only the
    two sides, the honest server wins every conflict on evidence, critical or not, even where
    the request's needs favour the internal side."""
    from langgraph.store.memory import InMemoryStore

    store = InMemoryStore()
    learn = [
        {"id": f"c{i}", "skill": "clock.now", "args": {"timezone": "UTC"}, "critical": True}
        for i in range(4)
    ]
    async with asyncio.timeout(120):
        cfg = clock_config(third=True, tags=["context_awareness"])
        async with Coordinator.open(cfg, store=store) as co:
            for request in learn:
                out = await co.run(parse_task([request]))
                result = out["results"][request["id"]]
                assert result["status"] == "ok" and result["agreement"] is False, result
                assert result["sources"][0] != "internal:clock.now"
        after = [
            {"id": "crit", "skill": "clock.now", "args": {"timezone": "UTC"}, "critical": True},
            {"id": "hyb", "skill": "clock.now", "args": {"timezone": "UTC"}, "strategy": "hybrid"},
        ]
        cfg = clock_config(third=False, tags=["context_awareness"])
        async with Coordinator.open(cfg, store=store) as co:
            out = await co.run(parse_task(after))
    for rid in ("crit", "hyb"):
        result = out["results"][rid]
        assert result["status"] == "ok", result
        assert result["served_by"]["provider"] == "mcp:time/get_current_time", result
    resolutions = {c["request_id"]: c["resolution_strategy"] for c in out["conflicts"]}
    assert resolutions == {"crit": "EVIDENCE_OF_CORRECTNESS", "hyb": "EVIDENCE_OF_CORRECTNESS"}


async def test_an_internal_side_answering_json_text_is_read_as_mcp_server_time_is() -> None:
    """An internal ``time.now`` that returns its answer as JSON text (``json.dumps``, as
    ``mcp-server-time`` and its FastMCP twin send it) is read as the object, so it passes the
    skill's shape check and cross-validates with the time server."""
    cfg = parse_config(
        {
            "mcpServers": {
                "time": {"command": "mcp-server-time", "args": ["--local-timezone", "UTC"]}
            },
            "builtin_skills": False,
            "skills": {
                "time.now": {
                    "input_schema": {
                        "type": "object",
                        "properties": {"timezone": {"type": "string"}},
                        "required": ["timezone"],
                    },
                    "comparator": {
                        "type": "fields",
                        "fields": {
                            "timezone": {"type": "exact"},
                            "datetime": {"type": "datetime", "tolerance": 5},
                        },
                    },
                    "providers": [
                        {"side": "internal", "function": "tests.helpers:time_as_text"},
                        {"side": "external", "server": "time", "tool": "get_current_time"},
                    ],
                }
            },
        }
    )
    task = parse_task(
        [{"id": "t", "skill": "time.now", "args": {"timezone": "Asia/Tokyo"}, "critical": True}]
    )
    async with asyncio.timeout(60), Coordinator.open(cfg) as co:
        out = await co.run(task)
    result = out["results"]["t"]
    assert result["status"] == "ok" and result["agreement"] is True, result
    assert all(a["ok"] for a in result["attempts"])
    assert result["value"]["timezone"] == "Asia/Tokyo"


async def test_a_result_field_of_a_server_that_is_not_fastmcp_is_its_answer() -> None:
    """A low-level server's ``add`` answers ``{"result": 5}`` beside the sentence ``The sum of 2
    and 3 is 5.``: its object is the answer (FastMCP's wrapper of a bare value always sends
    that value as its text), so ``result: $.result`` reads 5 and the generic skill reads the
    object; a FastMCP ``int`` tool's wrapper is still removed."""
    import sys

    server = {
        "command": sys.executable,
        "args": ["-m", "tests.result_field_server"],
        "env": shapes_stdio()["env"],
    }
    cfg = parse_config(
        {
            "mcpServers": {"calc": server, "shapes": shapes_stdio()},
            "skills": {
                "sum": {
                    "description": "a + b",
                    "input_schema": {"type": "object"},
                    "comparator": {"type": "numeric"},
                    "providers": [
                        {"side": "external", "server": "calc", "tool": "add", "result": "$.result"}
                    ],
                }
            },
        }
    )
    task = parse_task(
        [
            {"id": "mapped", "skill": "sum", "args": {"a": 2, "b": 3}},
            {"id": "generic", "skill": "calc.add", "args": {"a": 2, "b": 3}},
            {"id": "fastmcp", "skill": "shapes.count", "args": {}},
        ]
    )
    async with asyncio.timeout(60), Coordinator.open(cfg) as co:
        out = await co.run(task)
    results = out["results"]
    assert results["mapped"]["value"] == 5, results["mapped"]
    assert results["generic"]["value"] == {"result": 5}
    assert results["fastmcp"]["value"] == 42

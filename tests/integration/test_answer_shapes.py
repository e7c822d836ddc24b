"""Every answer shape from real MCP servers, read through the real session pool, gate,
coordinator and CLI: the project's FastMCP shapes server (one tool per shape), the real
``mcp-server-time``, and ``@modelcontextprotocol/server-everything`` (images, resources).

The headline: ``time.now`` served by a FastMCP tool that returns a ``str`` of JSON text (sent
as ``structuredContent = {"result": "<json text>"}``) is cross-validated, not refused as
malformed until its circuit opens.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hybridmcp.capabilities.mcp_pool import SessionPool
from hybridmcp.capabilities.registry import Provider, extract_result
from hybridmcp.config import parse_config
from hybridmcp.coordinator import Coordinator
from hybridmcp.errors import ProviderError
from hybridmcp.task import parse_task
from hybridmcp.testing.shapes_server import BLOB, DOC_URI, LINK_URI, TINY_PNG, TINY_WAV
from tests.integration.test_resilience import everything, requires_everything

pytestmark = pytest.mark.integration
HYBRIDMCP = str(Path(sys.executable).with_name("hybridmcp"))
TIME_KEYS = {"timezone", "datetime", "day_of_week", "is_dst"}


def shapes_stdio() -> dict[str, Any]:
    """The ``mcpServers`` entry of the shapes server over stdio, with this test's source."""
    return {
        "transport": "stdio",
        "command": sys.executable,
        "args": ["-m", "hybridmcp.testing.shapes_server"],
        "env": {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(sys.path)},
    }


def external(server: str, tool: str, result_path: str | None = None) -> Provider:
    return Provider(
        id=f"mcp:{server}/{tool}",
        skill=f"{server}.{tool}",
        side="external",
        quality=0.9,
        expected_latency_ms=50,
        cost_per_call=0.0,
        clearance="public",
        timeout_ms=10_000,
        server=server,
        tool=tool,
        result_path=result_path,
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


IMAGE = {"type": "image", "mime_type": "image/png", "data": b64(TINY_PNG)}
EXPECTED: dict[str, Any] = {
    "plain_text": "hello, shapes",
    "wrapped_error": "Error: the upstream store is unreachable",
    "count": 42,
    "primes": [2, 3, 5, 7],
    "city": {"name": "Lyon", "population": 522_250, "rivers": ["Rhône", "Saône"]},
    "weather": {"city": "Lyon", "temperature_c": 21.5, "conditions": "sunny"},
    "tiny_image": IMAGE,
    "beep": {"type": "audio", "mime_type": "audio/wav", "data": b64(TINY_WAV)},
    "link": {
        "type": "resource_link",
        "uri": LINK_URI,
        "name": "report.csv",
        "mime_type": "text/csv",
    },
    "embedded_text": {
        "type": "resource",
        "uri": DOC_URI,
        "mime_type": "text/markdown",
        "text": "# Shapes\n",
    },
    "embedded_blob": {
        "type": "resource",
        "uri": "shapes://blobs/1",
        "mime_type": "application/octet-stream",
        "blob": b64(BLOB),
    },
    "several_texts": ["first part", {"part": 2}],
    "captioned_image": ["a red pixel", IMAGE],
}


# -- through the session pool: each shape, with and without the tool's output schema -------


async def test_every_shape_of_the_shapes_server_reads_as_its_value() -> None:
    servers = parse_config({"mcpServers": {"shapes": shapes_stdio()}}).mcpServers
    async with asyncio.timeout(60), SessionPool(servers) as pool:
        schemas = {t.name: t.outputSchema for t in pool.status("shapes").tools}
        assert set(EXPECTED) | {"get_current_time", "fail"} <= set(schemas)
        wrong: dict[str, Any] = {}
        for tool, expected in EXPECTED.items():
            result = await pool.call_tool("shapes", tool, {}, 10)
            for schema in (None, schemas[tool]):
                got = extract_result(external("shapes", tool), result, output_schema=schema)
                if got != expected:
                    wrong[f"{tool} (schema={schema is not None})"] = got
        assert wrong == {}

        now = await pool.call_tool("shapes", "get_current_time", {"timezone": "Asia/Tokyo"}, 10)
        assert set(now.structuredContent or {}) == {"result"}  # FastMCP's wrapper of a str
        value = extract_result(external("shapes", "get_current_time"), now)
        assert set(value) == TIME_KEYS and value["timezone"] == "Asia/Tokyo"

        failed = await pool.call_tool("shapes", "fail", {}, 10)
        with pytest.raises(ProviderError, match="refuses on purpose"):
            extract_result(external("shapes", "fail"), failed)


async def test_the_twin_answers_in_mcp_server_time_s_shape() -> None:
    cfg = parse_config(
        {
            "mcpServers": {
                "time": {"command": "mcp-server-time", "args": ["--local-timezone", "UTC"]},
                "shapes": shapes_stdio(),
            }
        }
    )
    async with asyncio.timeout(60), SessionPool(cfg.mcpServers) as pool:
        args = {"timezone": "America/New_York"}
        real = await pool.call_tool("time", "get_current_time", args, 10)
        twin = await pool.call_tool("shapes", "get_current_time", args, 10)
    assert real.structuredContent is None  # text JSON only
    real_value = extract_result(external("time", "get_current_time"), real)
    twin_value = extract_result(external("shapes", "get_current_time"), twin)
    assert {k: type(v) for k, v in twin_value.items()} == {
        k: type(v) for k, v in real_value.items()
    }
    assert twin_value["timezone"] == real_value["timezone"]
    assert twin_value["day_of_week"] == real_value["day_of_week"]
    # the same JSON text, to the indentation (but for the second it was read)
    assert text_without_datetime(twin) == text_without_datetime(real)


def text_without_datetime(result: Any) -> list[str]:
    return [line for line in result.content[0].text.splitlines() if "datetime" not in line]


# -- through the coordinator ---------------------------------------------------------------


def twin_config(**extra: Any) -> Any:
    """``time.now`` with the shapes server's time twin as its external provider."""
    return parse_config(
        {
            "mcpServers": {"shapes": shapes_stdio()},
            "skills": {
                "time.now": {
                    "providers": [
                        {"side": "external", "server": "shapes", "tool": "get_current_time"}
                    ]
                }
            },
            **extra,
        }
    )


ZONES = ["UTC", "Europe/Paris", "Asia/Tokyo", "America/New_York", "Australia/Sydney"]
CRITICAL_NOW = [
    {"id": f"now-{i}", "skill": "time.now", "args": {"timezone": ZONES[i % 5]}, "critical": True}
    for i in range(10)
]


async def test_ten_critical_requests_against_a_fastmcp_str_tool_are_all_cross_validated() -> None:
    async with asyncio.timeout(90), Coordinator.open(twin_config()) as co:
        out = await co.run(parse_task({"requests": CRITICAL_NOW}))
    assert out["status"] == "ok"
    assert len(out["results"]) == 10
    for rid, r in out["results"].items():
        assert r["allocation"] == "hybrid", rid
        assert [a["ok"] for a in r["attempts"]] == [True, True], (rid, r["attempts"])
        assert r["agreement"] is True, (rid, r)
        assert set(r["value"]) >= TIME_KEYS
    codes = {e["code"] for e in out["events"]}
    assert "CIRCUIT_OPENED" not in codes and "EXTERNAL_DEGRADATION_DETECTED" not in codes
    assert out["conflicts"] == []
    assert out["quality"]["cross_validated"] == 10
    circuit = out["metrics"]["circuits"]["mcp:shapes/get_current_time"]
    assert circuit["state"] == "closed" and circuit["trips"] == 0, circuit


def test_the_cli_cross_validates_the_twin(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "mcpServers": {"shapes": shapes_stdio()},
                "skills": {
                    "time.now": {
                        "providers": [
                            {"side": "external", "server": "shapes", "tool": "get_current_time"}
                        ]
                    }
                },
            }
        )
    )
    task = tmp_path / "task.json"
    task.write_text(json.dumps({"requests": CRITICAL_NOW[:3]}))
    proc = subprocess.run(
        [HYBRIDMCP, "run", "--json", "-c", str(config), str(task)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["status"] == "ok"
    assert [r["agreement"] for r in data["results"]] == [True, True, True]


async def test_non_text_answers_and_a_wrapped_error_through_the_coordinator() -> None:
    tools = ["tiny_image", "captioned_image", "link", "count", "wrapped_error"]
    task = parse_task([{"id": t, "skill": f"shapes.{t}", "args": {}} for t in tools])
    async with asyncio.timeout(60), Coordinator.open(twin_config()) as co:
        out = await co.run(task)
    results = out["results"]
    for tool in tools[:-1]:
        assert results[tool]["error"] is None, results[tool]
        assert results[tool]["value"] == EXPECTED[tool]
    error = results["wrapped_error"]["error"]
    assert "error in disguise (isError=false): 'Error: the upstream store is unreachable'" in error


# -- a third-party server with images and resources ----------------------------------------


@requires_everything
async def test_server_everything_images_and_resources() -> None:
    async with asyncio.timeout(60), everything("stdio") as server:
        cfg = parse_config({"mcpServers": {"everything": {**server, "timeout_ms": 10_000}}})
        task = parse_task(
            [
                {"id": "img", "skill": "everything.get-tiny-image", "args": {}},
                {"id": "links", "skill": "everything.get-resource-links", "args": {"count": 2}},
                {
                    "id": "blob",
                    "skill": "everything.get-resource-reference",
                    "args": {"resourceType": "Blob", "resourceId": 2},
                },
                {
                    "id": "weather",
                    "skill": "everything.get-structured-content",
                    "args": {"location": "Chicago"},
                },
                {
                    "id": "annotated",
                    "skill": "everything.get-annotated-message",
                    "args": {"messageType": "error", "includeImage": True},
                },
            ]
        )
        async with Coordinator.open(cfg) as co:
            out = await co.run(task)
    r = out["results"]
    caption, image, note = r["img"]["value"]
    assert isinstance(caption, str) and isinstance(note, str)
    assert image["type"] == "image" and image["mime_type"] == "image/png"
    assert base64.b64decode(image["data"]).startswith(b"\x89PNG")
    intro, *links = r["links"]["value"]
    assert isinstance(intro, str) and len(links) == 2
    assert all(link["type"] == "resource_link" and link["uri"] for link in links)
    resource = r["blob"]["value"][1]
    assert resource["type"] == "resource" and resource["uri"].startswith("demo://")
    assert base64.b64decode(resource["blob"])
    assert set(r["weather"]["value"]) == {"temperature", "conditions", "humidity"}
    # a text "Error: ..." beside an image is still an error in disguise
    assert "error in disguise" in r["annotated"]["error"]


def test_generated_answers_of_a_real_fastmcp_server_read_as_sent() -> None:
    """Hypothesis over JSON values, each sent back by the real shapes server as a
    ``dict[str, Any]``, a ``list[Any]``, a ``str`` of its JSON text or a ``float``, read with
    and without the tool's output schema: the value read is the value the tool returned."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    leaves = (
        st.none()
        | st.booleans()
        | st.integers(-(2**53), 2**53)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=12)
    )
    values = st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
        max_leaves=12,
    )
    servers = parse_config({"mcpServers": {"shapes": shapes_stdio()}}).mcpServers
    with asyncio.Runner() as runner:
        pool = SessionPool(servers)
        runner.run(pool.__aenter__())
        try:
            schemas = {t.name: t.outputSchema for t in pool.status("shapes").tools}

            def read_back(tool: str, value: Any) -> list[Any]:
                doc = json.dumps(value)
                result = runner.run(pool.call_tool("shapes", tool, {"doc": doc}, 10))
                return [
                    extract_result(external("shapes", tool), result, output_schema=schema)
                    for schema in (None, schemas[tool])
                ]

            @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
            @given(values, st.floats(allow_nan=False, allow_infinity=False))
            def check(value: Any, number: float) -> None:
                if isinstance(value, dict):
                    assert read_back("give_object", value) == [value, value]
                if isinstance(value, list):
                    assert read_back("give_list", value) == [value, value]
                if isinstance(value, dict | list):  # a str tool returning json.dumps(value)
                    doc = json.dumps(value)
                    result = runner.run(pool.call_tool("shapes", "echo", {"text": doc}, 10))
                    assert extract_result(external("shapes", "echo"), result) == value
                assert read_back("give_number", number) == [number, number]

            check()
        finally:
            runner.run(pool.__aexit__(None, None, None))

"""Untrusted tool output from real MCP servers: errors in disguise (the fault server's
``error_text`` and the real ``mcp-server-sqlite``), answers over the size limit, and structured
content that breaks the tool's declared output schema. Each is a failed attempt, never a value:
the work moves to the internal side, or the request reports the error."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from hybridmcp.capabilities.mcp_pool import resolve_command
from hybridmcp.config import parse_config
from hybridmcp.coordinator import Coordinator
from hybridmcp.task import parse_task
from hybridmcp.testing.harness import faultserver_stdio

pytestmark = pytest.mark.integration


def calc_config(faults: dict[str, Any], tool: str = "calculate", **extra: Any) -> Any:
    ext = {"side": "external", "server": "faulty", "tool": tool, "timeout_ms": 10_000}
    return parse_config(
        {
            "mcpServers": {"faulty": faultserver_stdio(faults)},
            "skills": {"math.calculate": {"providers": [ext]}},
            **extra,
        }
    )


async def run_external(cfg: Any) -> dict[str, Any]:
    task = parse_task(
        [
            {
                "id": "q",
                "skill": "math.calculate",
                "args": {"expression": "6*7"},
                "strategy": "external",
            }
        ]
    )
    async with Coordinator.open(cfg) as co:
        out = await co.run(task)
    return out["results"]["q"]


async def test_error_text_with_is_error_false_is_a_failed_attempt() -> None:
    result = await run_external(
        calc_config({"calculate": {"error_text": "Error: database is locked"}})
    )
    external, internal = result["attempts"]
    assert not external["ok"]
    assert "error in disguise (isError=false): 'Error: database is locked'" in external["error"]
    assert internal["side"] == "internal" and internal["ok"]
    assert result["value"] == {"value": 42}


async def test_an_answer_over_the_size_limit_is_a_failed_attempt() -> None:
    cfg = calc_config({"calculate": {"oversized_bytes": 5000}}, tool_output={"max_bytes": 2000})
    result = await run_external(cfg)
    assert "exceeds the 2000-byte limit" in result["attempts"][0]["error"]
    assert result["value"] == {"value": 42}  # served internally instead
    fine = await run_external(
        calc_config({"calculate": {"oversized_bytes": 1500}}, tool_output={"max_bytes": 2000})
    )
    assert fine["attempts"][0]["ok"] and len(fine["attempts"]) == 1


async def test_structured_content_against_the_output_schema() -> None:
    good = await run_external(calc_config({}, tool="calculate_typed"))
    assert good["attempts"][0]["ok"] and good["value"] == {"value": 42.0}
    bad = await run_external(
        calc_config({"calculate_typed": {"malformed": "wrong_shape"}}, tool="calculate_typed")
    )
    assert (
        "Invalid structured content returned by tool calculate_typed" in bad["attempts"][0]["error"]
    )
    assert bad["attempts"][1]["side"] == "internal" and bad["value"] == {"value": 42}


SQLITE = resolve_command("mcp-server-sqlite")


@pytest.mark.skipif(
    shutil.which(SQLITE) is None, reason="needs mcp-server-sqlite (pip install mcp-server-sqlite)"
)
async def test_mcp_server_sqlite_errors_are_recognised(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE items (id INTEGER, name TEXT)")
        conn.execute("INSERT INTO items VALUES (1, 'tea')")
    cfg = parse_config(
        {"mcpServers": {"sqlite": {"command": SQLITE, "args": ["--db-path", str(db)]}}}
    )
    task = parse_task(
        [
            {"id": "ok", "skill": "sqlite.read_query", "args": {"query": "SELECT name FROM items"}},
            {"id": "bad", "skill": "sqlite.read_query", "args": {"query": "SELECT * FROM missing"}},
        ]
    )
    async with Coordinator.open(cfg) as co:
        out = await co.run(task)
    assert out["results"]["ok"]["error"] is None and "tea" in str(out["results"]["ok"]["value"])
    error = out["results"]["bad"]["error"]
    assert "error in disguise (isError=false): 'Database error: no such table: missing'" in error

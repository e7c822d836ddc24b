"""Who a real server's failed answer is held against, and what its answer is read as, on
servers nobody shaped the code around: ``mcp-server-sqlite`` (errors as plain text,
``isError=false``; rows as Python's ``str()`` of a list),
``@modelcontextprotocol/server-everything`` (a tool a provider names that the server does not
have), and a FastMCP tool that fails to serialize its own answer."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from langgraph.store.memory import InMemoryStore

from hybridmcp import Coordinator, parse_task
from hybridmcp.capabilities.mcp_pool import resolve_command
from hybridmcp.config import parse_config
from hybridmcp.stats_store import all_stats
from tests.integration.test_answer_shapes import shapes_stdio
from tests.integration.test_resilience import everything, requires_everything

pytestmark = pytest.mark.integration

SQLITE = resolve_command("mcp-server-sqlite")
READ = "mcp:sqlite/read_query"


def events(out: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [e for e in out["events"] if e["code"] == code]


def shop(tmp_path: Path) -> Path:
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE items (id INTEGER, name TEXT, price REAL)")
        conn.execute("INSERT INTO items VALUES (1, 'tea', 2.5), (2, 'milk', NULL)")
    return db


def sqlite_config(db: Path, **server: Any) -> Any:
    return parse_config(
        {"mcpServers": {"sqlite": {"command": SQLITE, "args": ["--db-path", str(db)], **server}}}
    )


@pytest.mark.skipif(
    shutil.which(SQLITE) is None, reason="needs mcp-server-sqlite (pip install mcp-server-sqlite)"
)
@pytest.mark.parametrize("read_only", [True, False])
async def test_bad_queries_on_mcp_server_sqlite_are_the_callers_not_the_servers(
    tmp_path: Path, read_only: bool
) -> None:
    """mcp-server-sqlite answers a bad query with ``Database error: no such table: ...`` as
    plain text (``isError=false``). Twelve such queries in a row are the caller's errors: each
    request says so, no circuit opens, nothing is learned against the server, and a good
    query after them is served. Its tools carry no annotations: on a server marked
    ``read_only`` they are reads, a plain request error; else writes, whose error answer
    leaves the outcome unknown (the tool ran), still the request's error."""
    store = InMemoryStore()
    bad = [
        {"id": f"bad{i}", "skill": "sqlite.read_query", "args": {"query": f"SELECT * FROM t{i}"}}
        for i in range(12)
    ]
    good = {"id": "good", "skill": "sqlite.read_query", "args": {"query": "SELECT id FROM items"}}
    cfg = sqlite_config(shop(tmp_path), read_only=read_only)
    async with asyncio.timeout(120), Coordinator.open(cfg, store=store) as co:
        out = await co.run(parse_task({"requests": bad}))
        after = await co.run(parse_task({"requests": [good]}))
    for i in range(12):
        error = out["results"][f"bad{i}"]["error"]
        assert f"no such table: t{i}" in error, error
        if read_only:
            assert error.startswith("request error"), error
        else:
            assert error.startswith("outcome_unknown") and "naming the request" in error, error
        assert [a["error_kind"] for a in out["results"][f"bad{i}"]["attempts"]] == ["request"]
    assert len(events(out, "REQUEST_ERROR")) == 12
    assert len(events(out, "WRITE_NOT_REPEATED")) == (0 if read_only else 12)
    assert not events(out, "CIRCUIT_OPENED")
    assert after["results"]["good"]["error"] is None
    learned = {s.provider: s for s in await all_stats(store)}
    assert learned[READ].calls == 1 and learned[READ].successes == 1


@requires_everything
async def test_a_tool_the_server_does_not_have_is_the_providers_fault() -> None:
    """A provider names a tool ``@modelcontextprotocol/server-everything`` does not have: its
    ``Tool ... not found`` (-32602, as a tool error) is the provider's failure, not the
    caller's, so a request pinned to it is served by the other side, saying so."""
    async with asyncio.timeout(60), everything("stdio") as server:
        cfg = parse_config(
            {
                "mcpServers": {"everything": {**server, "timeout_ms": 10_000}},
                "skills": {
                    "time.now": {
                        "providers": [
                            {"side": "external", "server": "everything", "tool": "get_time"}
                        ]
                    }
                },
            }
        )
        task = parse_task(
            [{"id": "t", "skill": "time.now", "args": {"timezone": "UTC"}, "strategy": "external"}]
        )
        async with Coordinator.open(cfg) as co:
            out = await co.run(task)
    result = out["results"]["t"]
    assert result["status"] == "ok" and result["served_by"]["side"] == "internal"
    missing = result["attempts"][0]
    assert missing["provider"] == "mcp:everything/get_time" and not missing["ok"]
    assert missing["error_kind"] == "provider" and "not found" in missing["error"]
    assert events(out, "PIN_OVERRIDDEN") and not events(out, "REQUEST_ERROR")


async def test_an_answer_the_server_cannot_serialize_is_the_servers_fault() -> None:
    """A FastMCP tool returning bytes that are not UTF-8 fails with ``Error serializing to
    JSON: invalid utf-8 ...``: the server's own failure (though it says "invalid"), so the
    request moves to the internal side instead of ending as the caller's error."""
    cfg = parse_config(
        {
            "mcpServers": {"shapes": shapes_stdio()},
            "skills": {
                "json.query": {
                    "providers": [
                        {
                            "side": "external",
                            "server": "shapes",
                            "tool": "raw_bytes",
                            "arguments": {},
                        }
                    ]
                }
            },
        }
    )
    task = parse_task(
        [
            {
                "id": "q",
                "skill": "json.query",
                "args": {"data": {"a": [1, 2]}, "path": "$.a[1]"},
                "strategy": "external",
            }
        ]
    )
    async with asyncio.timeout(60), Coordinator.open(cfg) as co:
        out = await co.run(task)
    result = out["results"]["q"]
    assert result["status"] == "ok" and result["served_by"]["side"] == "internal"
    broken = result["attempts"][0]
    assert broken["provider"] == "mcp:shapes/raw_bytes" and broken["error_kind"] == "provider"
    assert "serializing" in broken["error"] and not events(out, "REQUEST_ERROR")


@pytest.mark.skipif(
    shutil.which(SQLITE) is None, reason="needs mcp-server-sqlite (pip install mcp-server-sqlite)"
)
async def test_mcp_server_sqlite_rows_read_as_the_rows_it_means(tmp_path: Path) -> None:
    """mcp-server-sqlite answers ``str(rows)`` (``[{'id': 1, 'price': None}]``, Python's
    notation, not JSON): read as the rows, so a ``result`` path into them works, and a text
    that is not such a list stays text."""
    db = shop(tmp_path)
    cfg = parse_config(
        {
            "mcpServers": {"sqlite": {"command": SQLITE, "args": ["--db-path", str(db)]}},
            "skills": {
                "shop.first_name": {
                    "description": "The first item's name.",
                    "input_schema": {"type": "object", "properties": {"query": {}}},
                    "providers": [
                        {
                            "side": "external",
                            "server": "sqlite",
                            "tool": "read_query",
                            "result": "$[0].name",
                            "effect": "read",
                        }
                    ],
                }
            },
        }
    )
    query = "SELECT id, name, price FROM items ORDER BY id"
    task = parse_task(
        [
            {"id": "rows", "skill": "sqlite.read_query", "args": {"query": query}},
            {"id": "first", "skill": "shop.first_name", "args": {"query": query}},
            {"id": "tables", "skill": "sqlite.list_tables", "args": {}},
        ]
    )
    async with asyncio.timeout(60), Coordinator.open(cfg) as co:
        out = await co.run(task)
    results = out["results"]
    assert results["rows"]["value"] == [
        {"id": 1, "name": "tea", "price": 2.5},
        {"id": 2, "name": "milk", "price": None},
    ]
    assert results["first"]["value"] == "tea"
    assert results["tables"]["value"] == [{"name": "items"}]

"""Writes run once (invariant 9) on servers nobody shaped the code around: ``mcp-server-sqlite``
(PyPI; its tools carry no annotations), ``@modelcontextprotocol/server-filesystem`` and
``@modelcontextprotocol/server-memory`` (npm), and FastMCP servers whose annotations are
missing, contradictory or lying. The side effects are counted where they land (rows in the
SQLite file, files on disk, entities in the memory server's file), never from our own records.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from hybridmcp import Coordinator, parse_task
from hybridmcp.capabilities.mcp_pool import resolve_command
from hybridmcp.config import parse_config

pytestmark = pytest.mark.integration
SQLITE = resolve_command("mcp-server-sqlite")
requires_sqlite = pytest.mark.skipif(
    shutil.which(SQLITE) is None, reason="needs mcp-server-sqlite (pip install mcp-server-sqlite)"
)


def sqlite_db(path: Path) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (v TEXT)")
    return path


def rows(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [v for (v,) in db.execute("SELECT v FROM t ORDER BY rowid")]


def sqlite_config(db: Path, **server: Any) -> dict[str, Any]:
    return {"mcpServers": {"sqlite": {"command": SQLITE, "args": ["--db-path", str(db)]} | server}}


def insert(rid: str, value: str, **extra: Any) -> dict[str, Any]:
    query = f"INSERT INTO t (v) VALUES ('{value}')"
    return {"id": rid, "skill": "sqlite.write_query", "args": {"query": query}} | extra


@requires_sqlite
async def test_each_run_on_a_thread_makes_its_own_writes(tmp_path):
    """A thread on the LangGraph server takes run after run (each with its own input), as the
    compiled graph does: the second run's write, same request id, is made, and its result is
    its own, not the first run's."""
    db = sqlite_db(tmp_path / "t.db")
    cfg = parse_config(sqlite_config(db))
    async with asyncio.timeout(90), Coordinator.open(cfg, checkpointer=InMemorySaver()) as co:
        outs: list[dict[str, Any]] = []
        runs: list[tuple[str, list[str]]] = []
        for value in ("first", "second", "second"):  # asked twice: written twice
            task = parse_task({"requests": [insert("r1", value)]})
            outs.append(
                await co.graph.ainvoke(
                    co.graph_input(task),
                    co.run_config("one-thread"),
                    context=co._context(),
                    durability="sync",
                )
            )
            state = (await co.graph.aget_state(co.run_config("one-thread"))).values
            runs.append((state["run_id"], [a["idempotency_key"] for a in state["attempts"]]))
    assert rows(db) == ["first", "second", "second"]
    for out in outs:
        result = out["results"]["r1"]
        assert result["status"] == "ok" and len(result["attempts"]) == 1, result
        assert not result["attempts"][0].get("replayed"), result
    # each run is a run of its own: its id, its one attempt, its own idempotency key
    assert [run_id for run_id, _ in runs] == ["one-thread", "one-thread#2", "one-thread#3"]
    assert [keys for _, keys in runs] == [
        [f"{run_id}:r1:mcp:sqlite/write_query:1"] for run_id, _ in runs
    ], runs


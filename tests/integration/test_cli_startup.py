"""``hybridmcp run``'s start-up: what a plain run of the demo loads, and the servers started
while the rest of the start-up goes on (never left running when it fails)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hybridmcp.config import parse_config
from hybridmcp.errors import AuditError
from hybridmcp.runtime import opening
from hybridmcp.task import load_task
from hybridmcp.testing.harness import child_processes, faultserver_stdio, no_children_left
from tests.integration.test_durable import cli_env

# Loaded by a plain `hybridmcp run --json` of the demo, these would be start-up time spent on
# what the run does not use: the HTML report, numpy (LangGraph's SQLite store's vector search),
# the LMs, the NLP privacy engines, the MCP SDK's server side, PostgreSQL, OAuth's JWT signing,
# LangGraph's prebuilt agents.
HEAVY = (
    "jinja2",
    "numpy",
    "dspy",
    "litellm",
    "llama_cpp",
    "presidio_analyzer",
    "spacy",
    "mcp.server.fastmcp",
    "mcp.server.lowlevel",
    "starlette",
    "uvicorn",
    "psycopg",
    "jwt",
    "cryptography.x509",
    "langgraph.prebuilt",
)
# ...while these must be, or the run did not happen as the user's would.
USED = (
    "hybridmcp.coordinator",
    "langgraph.graph",
    "langgraph.checkpoint.sqlite.aio",
    "langgraph.store.sqlite.aio",
    "mcp.client.session",
    "mcp.client.stdio",
    "mcp.server.session",
)

# The modules loaded in the CLI's process (a deferred one's stand-in is not loaded).
RUN_AND_LIST_MODULES = """
import atexit, json, runpy, sys
def loaded():
    return sorted(n for n, m in list(sys.modules.items()) if type(m).__name__ != "_Deferred")
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps(loaded())))
sys.argv = ["hybridmcp", *sys.argv[2:]]
runpy.run_module("hybridmcp.cli", run_name="__main__", alter_sys=True)
"""


def run_listing_modules(
    tmp_path: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    listing = tmp_path / "modules.json"
    proc = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST_MODULES, str(listing), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(),
        cwd=tmp_path,
    )
    return proc, set(json.loads(listing.read_text()))


def test_a_plain_run_of_the_demo_loads_nothing_it_does_not_use(tmp_path: Path) -> None:
    proc, modules = run_listing_modules(tmp_path, "run", "--json", "--db", str(tmp_path / "r.db"))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    demo = [r.id for r in load_task(None).requests]
    assert out["status"] == "ok" and [r["id"] for r in out["results"]] == demo
    assert any(r["served_by"]["side"] == "external" for r in out["results"])  # the server ran
    assert [m for m in USED if m not in modules] == []
    loaded = sorted(m for m in modules if any(m == h or m.startswith(f"{h}.") for h in HEAVY))
    assert loaded == []


def test_a_report_still_loads_what_it_needs(tmp_path: Path) -> None:
    """The deferred modules still load when used: --report renders with Jinja2."""
    page = tmp_path / "run.html"
    proc, modules = run_listing_modules(
        tmp_path, "run", "--json", "--db", ":memory:", "--report", str(page)
    )
    assert proc.returncode == 0, proc.stderr
    assert "jinja2" in modules and page.read_text().startswith("<!DOCTYPE html>")


async def test_servers_started_for_a_start_up_that_fails_are_stopped(tmp_path: Path) -> None:
    """The servers start while the caller does the rest of its start-up; when that fails before
    the resources were taken, the open finishes and everything it started is closed."""
    config = parse_config({"mcpServers": {"fault": faultserver_stdio({})}})
    before = set(child_processes())
    with pytest.raises(RuntimeError, match="the database"):
        async with opening(config):
            # the server process is started (not waited for) when the caller goes on
            for _ in range(200):
                if set(child_processes()) - before:
                    break
                await asyncio.sleep(0.01)
            assert set(child_processes()) - before
            raise RuntimeError("the database could not be opened")
    assert await no_children_left(10, allowed=before) == []


async def test_an_open_that_fails_raises_its_error_to_the_caller(tmp_path: Path) -> None:
    trail = tmp_path / "trail.jsonl"
    trail.write_text("not a record\n")
    config = parse_config({"audit": {"path": str(trail)}})
    async with opening(config) as starting:
        with pytest.raises(AuditError, match="does not verify"):
            await starting.resources()


def test_the_module_listing_wrapper_sees_the_run_it_wraps(tmp_path: Path) -> None:
    """The listing is of the CLI's own process (not of a wrapper that ran nothing)."""
    proc, modules = run_listing_modules(tmp_path, "--version")
    assert proc.returncode == 0 and proc.stdout.startswith("hybridmcp ")
    # the CLI's imports ran in the listed process; the graph is not needed for --version
    assert "hybridmcp.config" in modules and "hybridmcp.coordinator" not in modules

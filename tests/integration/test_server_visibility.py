"""A server that cannot start or connect is never silent (invariant 10)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from hybridmcp import Coordinator, TaskError, parse_task
from hybridmcp.config import parse_config
from hybridmcp.events import EventCode
from tests.integration.test_durable import cli_env

pytestmark = pytest.mark.integration

SERVERS = {
    "time": {"command": "mcp-server-time", "args": ["--local-timezone", "UTC"]},
    "gone": {"command": "hybridmcp-no-such-server", "startup_timeout_ms": 5000},
    "closed": {"url": "http://127.0.0.1:9/mcp", "startup_timeout_ms": 5000},
    "off": {"command": "hybridmcp-no-such-server", "enabled": False},
}
CONFIG = {
    "mcpServers": SERVERS,
    "skills": {
        "time.now": {"providers": [{"side": "external", "server": "gone", "tool": "now"}]},
    },
}


async def test_a_down_server_is_an_event_in_every_run_that_uses_it():
    async with asyncio.timeout(60), Coordinator.open(parse_config(CONFIG)) as co:
        for _ in range(2):
            out = await co.run(
                parse_task(
                    [
                        {"id": "now", "skill": "time.now", "args": {"timezone": "UTC"}},
                        {"id": "calc", "skill": "math.calculate", "args": {"expression": "1+1"}},
                    ]
                )
            )
            assert out["status"] == "ok"  # the internal side served it
            (event,) = [e for e in out["events"] if e["code"] == EventCode.SERVER_UNAVAILABLE]
            assert event["server"] == "gone" and event["requests"] == ["now"]
            assert "hybridmcp-no-such-server" in event["reason"]
        # a run that uses no down server has no such event
        out = await co.run(
            parse_task([{"id": "c", "skill": "math.calculate", "args": {"expression": "2"}}])
        )
        assert not [e for e in out["events"] if e["code"] == EventCode.SERVER_UNAVAILABLE]
        # calling a down server's tool says the server is down, not "unknown skill"
        with pytest.raises(TaskError, match=r"MCP server 'closed' is down \(.*Connect"):
            await co.run(parse_task([{"id": "x", "skill": "closed.anything", "args": {}}]))


def hybridmcp(*args: str, config) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hybridmcp.cli", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(),
    )


def test_servers_and_tools_commands_and_the_run_warning(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(CONFIG))
    proc = hybridmcp("servers", "--json", config=config)
    assert proc.returncode == 1, proc.stderr  # a server is down
    servers = {r["server"]: r for r in json.loads(proc.stdout)}
    assert servers["time"] == {
        "server": "time",
        "transport": "stdio",
        "state": "up",
        "tools": 2,
        "reason": None,
    }
    assert servers["gone"]["state"] == "down" and "No such file" in servers["gone"]["reason"]
    assert servers["closed"]["transport"] == "streamable_http"
    assert servers["closed"]["state"] == "down" and servers["closed"]["reason"]
    assert servers["off"]["state"] == "disabled"
    table = hybridmcp("servers", config=config)
    assert "closed" in table.stdout and "disabled" in table.stdout

    proc = hybridmcp("tools", "--json", config=config)
    assert proc.returncode == 0, proc.stderr
    skills = {r["skill"]: r for r in json.loads(proc.stdout)}
    assert skills["time.get_current_time"]["providers"] == [
        {
            "id": "mcp:time/get_current_time",
            "side": "external",
            "effect": "read",
            "server": "time",
            "tool": "get_current_time",
        }
    ]
    # a tool of a server that is down says nothing of its effect: a write until it is known
    assert {p["id"]: p["effect"] for p in skills["time.now"]["providers"]} == {
        "internal:time.now": "read",
        "mcp:gone/now": "write",
    }
    assert "mcp:time/get_current_time" in hybridmcp("tools", config=config).stdout

    task = tmp_path / "task.json"
    task.write_text(json.dumps({"requests": [{"id": "c", "skill": "math.calculate",
                                              "args": {"expression": "1"}}]}))  # fmt: skip
    run = hybridmcp("run", str(task), "--json", config=config)
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 and any("'gone' is down" in w for w in warnings), run.stderr

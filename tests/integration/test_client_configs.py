"""Configuration files as MCP clients write them, run through the real CLI against real servers.

Each file has the shape its client documents: Claude Desktop's ``claude_desktop_config.json``,
Cursor's ``.cursor/mcp.json``, VS Code's ``.vscode/mcp.json``, Cline's
``cline_mcp_settings.json``, and the connections of langchain-mcp-adapters'
``MultiServerMCPClient`` (as YAML under ``mcpServers``).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from hybridmcp.testing.harness import HttpFaultServer
from tests.integration.test_durable import SRC, cli, cli_env
from tests.integration.test_resilience import everything_entry, requires_everything

TOKEN = "Bearer s3cret-token"
FAULTS = [sys.executable, "-m", "hybridmcp.testing.faultserver"]
TIME = {"command": "mcp-server-time", "args": ["--local-timezone", "UTC"]}


@contextmanager
def http_servers(*transports: str) -> Iterator[list[HttpFaultServer]]:
    """Fault servers over HTTP that answer 401 to any request without ``Authorization``."""
    servers = [
        HttpFaultServer(transport=t, require_header=f"Authorization: {TOKEN}") for t in transports
    ]
    loop = asyncio.new_event_loop()
    try:
        for server in servers:
            loop.run_until_complete(server.start())
        yield servers
    finally:
        for server in servers:
            loop.run_until_complete(server.stop())
        loop.close()


def listed(config: Path, cwd: Path | None = None) -> tuple[dict[str, dict[str, Any]], str, int]:
    """``hybridmcp servers --json``: each server's record by name, stderr, exit code."""
    proc = cli("servers", "--config", str(config), "--json", cwd=cwd, timeout=90)
    assert "Traceback" not in proc.stderr, proc.stderr
    records = {r["server"]: r for r in json.loads(proc.stdout)} if proc.stdout else {}
    return records, proc.stderr, proc.returncode


def run_task(config: Path, requests: list[dict[str, Any]], cwd: Path) -> dict[str, Any]:
    task = cwd / "task.json"
    task.write_text(json.dumps({"requests": requests}))
    proc = cli("run", str(task), "--config", str(config), "--json", "--db", ":memory:", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@requires_everything
def test_claude_desktop_config(tmp_path):
    """command/args/env, nothing else: a stdio server from PyPI, one from npm, ours."""
    config = tmp_path / "claude_desktop_config.json"
    config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "time": TIME,
                    "everything": {"command": "node", "args": [everything_entry()]},
                    "faults": {
                        "command": FAULTS[0],
                        "args": FAULTS[1:],
                        "env": {"PYTHONPATH": SRC},
                    },
                }
            },
            indent=2,
        )
    )
    records, stderr, code = listed(config)
    assert code == 0, stderr
    assert {name: r["state"] for name, r in records.items()} == dict.fromkeys(records, "up")
    assert set(records) == {"time", "everything", "faults"}
    assert all(r["tools"] > 0 for r in records.values())
    assert "warning" not in stderr


def test_vscode_mcp_json(tmp_path):
    """VS Code: the top-level key is ``servers``, each entry says its ``type``; ``inputs``
    (prompted variables) are not supported and said so in one warning line."""
    with http_servers("streamable-http", "sse") as (http, sse):
        folder = tmp_path / ".vscode"
        folder.mkdir()
        config = folder / "mcp.json"
        config.write_text(
            json.dumps(
                {
                    "inputs": [
                        {
                            "type": "promptString",
                            "id": "token",
                            "description": "API token",
                            "password": True,
                        }
                    ],
                    "servers": {
                        "time": {"type": "stdio", **TIME},
                        "remote": {
                            "type": "http",
                            "url": http.url,
                            "headers": {"Authorization": TOKEN},
                        },
                        "stream": {
                            "type": "sse",
                            "url": sse.url,
                            "headers": {"Authorization": TOKEN},
                        },
                    },
                },
                indent=2,
            )
        )
        records, stderr, code = listed(config)
    assert code == 0, stderr
    assert {n: (r["transport"], r["state"]) for n, r in records.items()} == {
        "time": ("stdio", "up"),
        "remote": ("streamable_http", "up"),
        "stream": ("sse", "up"),
    }
    warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "inputs" in warnings[0], stderr


def test_cline_settings(tmp_path):
    """Cline: ``disabled`` servers are not started and are listed as disabled; ``autoApprove``
    and ``alwaysAllow`` are accepted; ``timeout`` is in seconds."""
    marker = tmp_path / "started"
    touch = f"import pathlib; pathlib.Path({str(marker)!r}).touch()"
    with http_servers("streamable-http") as (http,):
        config = tmp_path / "cline_mcp_settings.json"
        config.write_text(
            json.dumps(
                {
                    "mcpServers": {
                        "time": {
                            **TIME,
                            "env": {},
                            "disabled": False,
                            "autoApprove": ["get_current_time"],
                            "timeout": 30,
                        },
                        "paused": {
                            "command": sys.executable,
                            "args": ["-c", touch],
                            "alwaysAllow": [],
                            "disabled": True,
                        },
                        "remote": {
                            "type": "streamableHttp",
                            "url": http.url,
                            "headers": {"Authorization": TOKEN},
                            "disabled": False,
                            "timeout": 60,
                        },
                    }
                },
                indent=2,
            )
        )
        records, stderr, code = listed(config)
        out = run_task(
            config, [{"id": "e", "skill": "remote.echo", "args": {"text": "hi"}}], tmp_path
        )
    assert code == 0, stderr
    assert records["time"]["state"] == "up" and records["remote"]["state"] == "up"
    assert records["paused"]["state"] == "disabled"
    assert records["paused"]["reason"] == "disabled in the configuration"
    assert not marker.exists()  # a disabled server is never started
    assert "warning" not in stderr
    assert out["results"][0]["value"] == {"text": "hi"}


def test_langchain_mcp_adapters_connections(tmp_path):
    """The connections dict of ``MultiServerMCPClient``: ``transport``, ``url``, ``headers``,
    ``timeout`` and ``sse_read_timeout`` (seconds), ``session_kwargs``; a key nothing reads
    is one warning line naming it, never a failure."""
    with http_servers("streamable-http", "sse") as (http, sse):
        config = tmp_path / "connections.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "mcpServers": {
                        "local": {
                            "transport": "stdio",
                            "command": FAULTS[0],
                            "args": FAULTS[1:],
                            "env": {"PYTHONPATH": SRC},
                            "encoding": "utf-8",
                            "session_kwargs": {"read_timeout_seconds": 30},
                        },
                        "remote": {
                            "transport": "streamable_http",
                            "url": http.url,
                            "headers": {"Authorization": TOKEN},
                            "timeout": 10,
                            "sse_read_timeout": 60,
                            "terminate_on_close": True,
                            "session_kwargs": {
                                "client_info": {"name": "my-agent", "version": "1.0"}
                            },
                            "httpx_client_factory": "not.in.a.file",
                        },
                        "stream": {
                            "transport": "sse",
                            "url": sse.url,
                            "headers": {"Authorization": TOKEN},
                            "timeout": 5,
                            "sse_read_timeout": 120,
                        },
                    }
                }
            )
        )
        records, stderr, code = listed(config)
        out = run_task(
            config,
            [
                {"id": "a", "skill": "remote.echo", "args": {"text": "over http"}},
                {"id": "b", "skill": "stream.echo", "args": {"text": "over sse"}},
                {"id": "c", "skill": "local.echo", "args": {"text": "over stdio"}},
            ],
            tmp_path,
        )
    assert code == 0, stderr
    assert {n: r["state"] for n, r in records.items()} == dict.fromkeys(records, "up")
    warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, stderr
    assert "mcpServers.remote.httpx_client_factory: unknown key, ignored" in warnings[0]
    values = {r["id"]: r["value"] for r in out["results"]}
    assert values == {
        "a": {"text": "over http"},
        "b": {"text": "over sse"},
        "c": {"text": "over stdio"},
    }


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
def test_headers_reach_http_servers(tmp_path, transport):
    """The server refuses every request without the header: up with it, down without."""
    with http_servers(transport) as (server,):
        kind = "http" if transport == "streamable-http" else "sse"
        config = tmp_path / "mcp.json"
        config.write_text(
            json.dumps(
                {
                    "mcpServers": {
                        "with": {
                            "type": kind,
                            "url": server.url,
                            "headers": {"Authorization": TOKEN},
                        },
                        "without": {"type": kind, "url": server.url, "startup_timeout_ms": 5000},
                        "wrong": {
                            "type": kind,
                            "url": server.url,
                            "headers": {"Authorization": "Bearer nope"},
                            "startup_timeout_ms": 5000,
                        },
                    }
                }
            )
        )
        records, _, code = listed(config)
        out = run_task(config, [{"id": "e", "skill": "with.echo", "args": {"text": "x"}}], tmp_path)
    assert records["with"]["state"] == "up", records
    assert records["without"]["state"] == "down" and records["wrong"]["state"] == "down"
    assert "401" in records["without"]["reason"] or "Unauthorized" in records["without"]["reason"]
    assert code == 1  # some server is down
    assert out["results"][0]["value"] == {"text": "x"}


def test_cursor_mcp_json_with_variables(tmp_path):
    """Cursor's ``.cursor/mcp.json``: ``${env:NAME}`` in a header (the server refuses the
    request without the right token), ``${workspaceFolder}`` and an ``envFile``."""
    project = tmp_path / "project"
    (project / ".cursor").mkdir(parents=True)
    (project / ".env").write_text(f"PYTHONPATH={SRC}\n")
    with http_servers("streamable-http") as (http,):
        config = project / ".cursor" / "mcp.json"
        config.write_text(
            json.dumps(
                {
                    "mcpServers": {
                        "remote": {
                            "url": http.url,
                            "headers": {"Authorization": "Bearer ${env:HYBRIDMCP_TEST_TOKEN}"},
                        },
                        "local": {
                            "type": "stdio",
                            "command": FAULTS[0],
                            "args": FAULTS[1:],
                            "cwd": "${workspaceFolder}",
                            "envFile": "${workspaceFolder}/.env",
                        },
                    }
                },
                indent=2,
            )
        )
        token = TOKEN.removeprefix("Bearer ")
        proc = cli(
            "servers",
            "--config",
            str(config),
            "--json",
            env=cli_env(HYBRIDMCP_TEST_TOKEN=token),
            cwd=tmp_path,
        )
        wrong = cli(
            "servers",
            "--config",
            str(config),
            "--json",
            env=cli_env(HYBRIDMCP_TEST_TOKEN="nope"),
            cwd=tmp_path,
        )
        unset = cli("servers", "--config", str(config), cwd=tmp_path)
    states = {r["server"]: r["state"] for r in json.loads(proc.stdout)}
    assert states == {"remote": "up", "local": "up"}, proc.stderr
    assert {r["server"]: r["state"] for r in json.loads(wrong.stdout)}["remote"] == "down"
    assert unset.returncode == 2
    assert unset.stderr.splitlines() == [
        f"error: invalid configuration in {config}: mcpServers.remote.headers.Authorization: "
        "environment variable 'HYBRIDMCP_TEST_TOKEN' is not set"
    ]



async def test_a_configured_servers_connection_opens_with_langchain_mcp_adapters():
    """``to_connection`` gives a server's connection as ``MultiServerMCPClient`` takes it (the
    criteria benchmark's adapters baseline opens every server so): nothing of the pool's own
    transports in it, over stdio and HTTP alike."""
    from langchain_mcp_adapters.client import MultiServerMCPClient

    from hybridmcp import parse_config
    from hybridmcp.capabilities.mcp_pool import to_connection

    http = HttpFaultServer(transport="streamable-http")
    await http.start()
    try:
        cfg = parse_config(
            {
                "mcpServers": {
                    "time": TIME | {"max_message_bytes": 1_000_000},
                    "remote": {"url": http.url, "max_message_bytes": 1_000_000},
                }
            }
        )
        connections = {name: to_connection(cfg.mcpServers[name]) for name in ("time", "remote")}
        client = MultiServerMCPClient(connections)  # type: ignore[arg-type]
        tools = {t.name: t for t in await asyncio.wait_for(client.get_tools(), 60)}
        answer = await asyncio.wait_for(tools["get_current_time"].ainvoke({"timezone": "UTC"}), 60)
        assert '"timezone": "UTC"' in str(answer)
        echoed = await asyncio.wait_for(tools["echo"].ainvoke({"text": "hi"}), 60)
        assert "hi" in str(echoed)
    finally:
        await http.stop()

"""Servers that break the MCP protocol itself (``hybridmcp.testing.hostile_server``, real
processes over stdio and HTTP), through the real command line and the pool: why a server is
down is one line naming what it sent, a start-up that times out says what came instead of an
answer, and an answer holding NaN never makes ``--json`` print something JSON cannot read.
Mid-call (answers under the wrong id, twice or without one, content parts MCP lacks, answers
dripped, floods, requests to the client it never reads, a closed stdout, lines of 100 MB or
not UTF-8, HTTP bodies held open, endless or garbled): each call ends within its deadline in
one line naming what the server did, and the next call is answered."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hybridmcp.capabilities.mcp_pool import SessionPool
from hybridmcp.config import parse_config
from hybridmcp.errors import DeadlineExceededError, ProviderError
from hybridmcp.testing.harness import HttpFaultServer
from hybridmcp.testing.hostile_server import SERVER_ERROR
from tests.integration.test_durable import cli as durable_cli

SERVER = [sys.executable, "-m", "hybridmcp.testing.hostile_server"]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return durable_cli(*args, cwd=cwd, timeout=90)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def http_port() -> Iterator[int]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([*SERVER, "--http", str(port)], env=env)
    try:
        for _ in range(200):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _stdio(mode: str) -> dict[str, object]:
    return {
        "command": SERVER[0],
        "args": [*SERVER[1:], mode],
        "env": {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(sys.path)},
        "timeout_ms": 5000,
        "startup_timeout_ms": 5000,
    }


def _write_config(tmp_path: Path, server: dict[str, object]) -> Path:
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps({"mcpServers": {"h": server}}))
    return path


def _down_reason(tmp_path: Path, server: dict[str, object]) -> str:
    proc = cli("servers", "--json", "--config", str(_write_config(tmp_path, server)), cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    (record,) = json.loads(proc.stdout)
    assert record["state"] == "down"
    reason = str(record["reason"])
    assert "\n" not in reason, reason
    assert len(reason) < 600
    return reason


@pytest.mark.parametrize(
    ("mode", "said"),
    [("bad_init", "InitializeResult"), ("bad_list", "ListToolsResult")],
)
def test_a_handshake_that_is_not_mcp_is_one_line_naming_it(mode, said, tmp_path) -> None:
    reason = _down_reason(tmp_path, _stdio(mode))
    assert said in reason
    assert "errors.pydantic.dev" not in reason


@pytest.mark.parametrize(
    ("mode", "transport", "said"),
    [
        ("e500", "http", "500"),
        ("html", "http", "text/html"),
        ("json", "http", "JSON-RPC"),
        ("html", "sse", "text/html"),
    ],
)
def test_an_http_endpoint_that_is_not_mcp_says_what_it_answered(
    mode, transport, said, http_port, tmp_path
) -> None:
    server = {
        "type": transport,
        "url": f"http://127.0.0.1:{http_port}/{mode}",
        "startup_timeout_ms": 2000,
    }
    reason = _down_reason(tmp_path, server)
    assert said in reason, reason


def test_a_server_that_writes_garbage_instead_of_a_handshake_says_so(tmp_path) -> None:
    server = _stdio("garbage_init") | {"startup_timeout_ms": 1500}
    reason = _down_reason(tmp_path, server)
    assert "did not start within 1.5 s" in reason
    assert "not JSON-RPC" in reason, reason


def _run_echo(tmp_path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    """``run --json`` of one call to the hostile server's echo, in ``mode``."""
    config = _write_config(tmp_path, _stdio(mode))
    task = tmp_path / "t.yaml"
    task.write_text("requests: [{id: e, skill: h.echo, args: {text: hi}}]\n")
    return cli(
        "run", str(task), "--config", str(config), "--json", "--db", ":memory:", cwd=tmp_path
    )


def test_a_call_answered_with_a_result_that_is_not_mcp_fails_in_one_line(tmp_path) -> None:
    proc = _run_echo(tmp_path, "bad_result")
    assert proc.returncode == 1, proc.stderr[-2000:]
    (result,) = json.loads(proc.stdout)["results"]
    (attempt,) = result["attempts"]
    assert "CallToolResult" in attempt["error"]
    assert "\n" not in attempt["error"] and "errors.pydantic.dev" not in attempt["error"]


def test_an_answer_holding_nan_still_prints_json(tmp_path) -> None:
    proc = _run_echo(tmp_path, "nan")
    assert "Traceback" not in proc.stderr

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} in --json output")

    out = json.loads(proc.stdout, parse_constant=refuse)
    (result,) = out["results"]
    assert result["status"] == "ok"
    assert result["value"] == {"v": None, "w": None}


@pytest.mark.parametrize(
    ("transport", "path", "said"),
    [
        # a URL without the endpoint's path: the SDK reads a 404 as "Session terminated"
        ("streamable_http", "/", "HTTP 404 Not Found: no MCP endpoint at http://127.0.0.1:"),
        ("streamable_http", "/", "(streamable HTTP servers usually serve /mcp)"),
        # the other transport's endpoint
        ("streamable_http", "/sse", "an SSE endpoint? give the entry type: sse"),
        ("sse", "/mcp", "a streamable HTTP endpoint? give the entry type: http"),
    ],
)
async def test_a_wrong_url_or_transport_says_what_to_change(transport, path, said) -> None:
    """A user's common slips: the server's base URL, or an SSE server entered as streamable
    HTTP (and the other way round). The reason names the URL and what to change."""
    fault_transport = "sse" if path == "/sse" else "streamable-http"
    async with HttpFaultServer(transport=fault_transport) as server:
        url = f"http://127.0.0.1:{server.port}{path}"
        entry = {"transport": transport, "url": url, "startup_timeout_ms": 5000}
        config = parse_config({"mcpServers": {"h": entry}})
        pool = SessionPool(config.mcpServers)
        try:
            await pool.open()
            reason = pool._sessions["h"].status.error or ""
        finally:
            await pool.close()
    assert said in reason, reason
    assert "Session terminated" not in reason


async def test_a_start_up_that_times_out_is_ended_at_once_not_left_running() -> None:
    config = parse_config({"mcpServers": {"h": _stdio("slow_init") | {"startup_timeout_ms": 500}}})
    pool = SessionPool(config.mcpServers)
    try:
        await pool.open()
        session = pool._sessions["h"]
        assert not session.status.up
        assert "did not start within 0.5 s" in (session.status.error or "")
        # the owner of the hung start-up was cancelled, not left waiting for the pool's close
        for _ in range(300):  # (a stdio transport gives its process 2 s to exit)
            if not session._retired:
                break
            await asyncio.sleep(0.05)
        assert not session._retired
    finally:
        await pool.close()


@pytest.mark.parametrize("command", ["servers", "run"])
def test_a_silent_server_that_ignores_its_stdin_closing_is_down_in_one_line(
    command, tmp_path
) -> None:
    """A process that never answers the handshake and does not exit when its stdin closes
    (``sleep``): its start-up times out, it is ended, and the command says so and exits, with
    no traceback from closing its half-stopped start-ups."""
    silent = {
        "command": sys.executable,
        "args": ["-c", "import time; time.sleep(120)"],
        "startup_timeout_ms": 1000,
    }
    if command == "servers":
        assert "did not start within 1 s" in _down_reason(tmp_path, silent)
        return
    config = _write_config(tmp_path, silent)
    task = tmp_path / "t.yaml"
    task.write_text("requests: [{id: a, skill: math.calculate, args: {expression: '1+1'}}]\n")
    proc = cli("run", str(task), "--config", str(config), "--db", ":memory:", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "CancelledError" not in proc.stderr
    assert "did not start within 1 s" in proc.stderr


@pytest.mark.parametrize("how", ["exits", "closes stdout"])
def test_a_stdio_server_that_dies_at_start_up_says_so_and_where_its_stderr_went(
    how, tmp_path
) -> None:
    code = {
        "exits": "import sys; sys.stderr.write('boom: no settings file\\n'); sys.exit(3)",
        "closes stdout": "import os, sys, time; os.close(1); sys.stdin.read(); time.sleep(60)",
    }[how]
    config = _write_config(tmp_path, {"command": sys.executable, "args": ["-c", code]})
    task = tmp_path / "t.yaml"
    task.write_text("requests: [{id: a, skill: math.calculate, args: {expression: '1+1'}}]\n")
    log = tmp_path / "servers.log"
    proc = cli(
        "run", str(task), "--config", str(config), "--db", ":memory:", "--server-log", str(log),
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (warning,) = [line for line in proc.stderr.splitlines() if "MCP server 'h'" in line]
    assert "before answering the MCP handshake" in warning, warning
    assert str(log) in warning
    assert "BrokenResourceError" not in warning and "Connection closed" not in warning


@pytest.mark.parametrize(
    ("tool", "text", "code", "said"),
    [
        ("broken", "hi", 0, None),  # the schema cannot check: the server judges the arguments
        ("remote_ref", "hi", 0, None),
        ("backtracking", "aaaa", 0, None),
        ("backtracking", "a" * 60 + "!", 2, "could not be checked"),
    ],
)
def test_a_servers_input_schema_never_hangs_or_breaks_a_run(tool, text, code, said, tmp_path):
    config = _write_config(tmp_path, _stdio("odd_schemas"))
    task = tmp_path / "t.json"
    request = {"id": "e", "skill": f"h.{tool}", "args": {"text": text}}
    task.write_text(json.dumps({"requests": [request]}))
    proc = cli(
        "run", str(task), "--config", str(config), "--json", "--db", ":memory:", cwd=tmp_path
    )
    assert proc.returncode == code, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "│" not in proc.stderr
    if said is not None:
        assert said in proc.stderr and "argument text" in proc.stderr
    else:
        (result,) = json.loads(proc.stdout)["results"]
        assert result["value"] == {"text": text}


PROTOCOL_FAULTS = {
    # mode: what the failed call's error says
    "wrong_id": "meanwhile it sent what answers no request: RuntimeError: an answer to id",
    "no_id": "meanwhile it sent what answers no request: ValidationError: the server's JSONRPC",
    "odd_part": "content.0: type 'video' is not one MCP has ('text', 'image'",
    "drip": "did not answer within 2000 ms; it had written ",  # "... bytes of a message"
    "latin1": "the server wrote a line that is not utf-8 (bytes e9 22",
    "huge_line": "the server sent a message of more than 16,000,000 bytes",
    "flood": "did not answer within 2000 ms",
    "asks": "did not answer within 2000 ms",
    "shut_stdout": "the connection closed mid-call",
}


@pytest.mark.parametrize("mode", sorted(PROTOCOL_FAULTS))
async def test_a_call_answered_against_the_protocol_fails_in_one_line_and_the_next_works(
    mode: str,
) -> None:
    """Each way a server can break JSON-RPC mid-call (a real process): the call ends within
    its deadline in one line naming what the server did, and the next call on the pool is
    answered (the session replaced where it broke)."""
    entry = _stdio(mode) | {"timeout_ms": 2000}
    config = parse_config({"mcpServers": {"h": entry}})
    pool = SessionPool(config.mcpServers)
    try:
        await pool.open()
        assert pool.is_up("h"), pool.status("h").error
        with pytest.raises(Exception) as failed:
            await pool.call_tool("h", "echo", {"text": "hostile"}, timeout_s=2.0)
        message = str(failed.value)
        assert PROTOCOL_FAULTS[mode] in message, message
        assert "\n" not in message and len(message) < 600, message
        result = await pool.call_tool("h", "echo", {"text": "next"}, timeout_s=20.0)
        assert json.loads(result.content[0].text) == {"text": "next"}  # type: ignore[union-attr]
    finally:
        await pool.close()


async def test_a_servers_own_error_of_the_connection_closed_code_leaves_its_session_alone() -> None:
    """A server may answer an error with code -32000 (JSON-RPC's first code for servers' own
    errors), the code the MCP client also gives a request whose connection ended. The answer
    is the server's error: its message, the session kept (no replacement, no restart of the
    process, the calls beside it not failed as lost)."""
    entry = _stdio("server_error") | {"timeout_ms": 5000}
    config = parse_config({"mcpServers": {"h": entry}})
    pool = SessionPool(config.mcpServers)
    try:
        await pool.open()
        beside = asyncio.create_task(
            pool.call_tool("h", "echo", {"text": "beside"}, timeout_s=20.0)
        )
        with pytest.raises(ProviderError) as failed:
            await pool.call_tool("h", "echo", {"text": "hostile"}, timeout_s=5.0)
        message = str(failed.value)
        assert SERVER_ERROR["message"] in message and "connection closed" not in message
        assert json.loads((await beside).content[0].text) == {"text": "beside"}  # type: ignore[union-attr]
        result = await pool.call_tool("h", "echo", {"text": "next"}, timeout_s=20.0)
        assert json.loads(result.content[0].text) == {"text": "next"}  # type: ignore[union-attr]
        status = pool.status("h")
        assert (status.opens, status.replacements) == (1, 0), status.describe()
    finally:
        await pool.close()


def test_an_answer_given_twice_is_taken_once(tmp_path) -> None:
    config = _write_config(tmp_path, _stdio("dup_id"))
    task = tmp_path / "t.json"
    texts = {"a": "hostile", "b": "next"}  # the first answered twice, the second once
    requests = [{"id": n, "skill": "h.echo", "args": {"text": t}} for n, t in texts.items()]
    task.write_text(json.dumps({"requests": requests}))
    proc = cli(
        "run", str(task), "--config", str(config), "--json", "--db", ":memory:", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    values = [r["value"] for r in json.loads(proc.stdout)["results"]]
    assert values == [{"first": 1}, {"text": "next"}]


@pytest.mark.parametrize("mode", ["huge_line", "latin1"])
def test_a_run_whose_server_writes_what_cannot_be_a_message_ends_at_once(mode, tmp_path) -> None:
    """Through the command line, with a deadline of ten minutes: the call fails as soon as
    the line is seen to be too long or not UTF-8 (a wait for the deadline would be the
    subprocess' timeout, 90 s), in one line, and the run exits."""
    config = _write_config(tmp_path, _stdio(mode) | {"timeout_ms": 600_000})
    task = tmp_path / "t.json"
    task.write_text(json.dumps([{"id": "e", "skill": "h.echo", "args": {"text": "hostile"}}]))
    proc = cli(
        "run", str(task), "--config", str(config), "--json", "--db", ":memory:", cwd=tmp_path
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    (result,) = json.loads(proc.stdout)["results"]
    assert PROTOCOL_FAULTS[mode] in result["error"], result["error"]


def test_a_start_up_answered_at_initialize_only_says_where_it_stopped(tmp_path) -> None:
    reason = _down_reason(tmp_path, _stdio("no_list") | {"startup_timeout_ms": 1000})
    assert reason == "did not start within 1 s (it answered initialize, never tools/list)"


HTTP_CALL_FAULTS = {
    "sse_silent": "did not answer within 2000 ms",
    "sse_garbage": "meanwhile it sent what answers no request: RuntimeError: an answer to id",
    "json_stall": "did not answer within 2000 ms",
}


@pytest.mark.parametrize("mode", sorted(HTTP_CALL_FAULTS))
async def test_an_http_call_held_open_or_answered_with_garbage_ends_at_its_deadline(
    mode: str, http_port: int
) -> None:
    """Streamable HTTP whose handshake works and whose call gets an event stream that never
    sends an event, events that are not JSON-RPC, a JSON body promised and never sent, or a
    body or an event that never ends (refused past max_message_bytes, never read whole): the
    call ends at its deadline in one line, the next call is answered, the pool closes."""
    entry = {"url": f"http://127.0.0.1:{http_port}/{mode}", "startup_timeout_ms": 5000}
    config = parse_config({"mcpServers": {"h": entry}})
    pool = SessionPool(config.mcpServers)
    try:
        await pool.open()
        assert pool.is_up("h"), pool.status("h").error
        with pytest.raises(DeadlineExceededError) as failed:
            await pool.call_tool("h", "echo", {"text": "hostile"}, timeout_s=2.0)
        message = str(failed.value)
        assert HTTP_CALL_FAULTS[mode] in message, message
        assert "\n" not in message and len(message) < 600, message
        result = await pool.call_tool("h", "echo", {"text": "next"}, timeout_s=20.0)
        assert json.loads(result.content[0].text) == {"text": "next"}  # type: ignore[union-attr]
    finally:
        await pool.close()


HTTP_ENDLESS = {
    "json_endless": "ServerMessageError: the server sent a response of more than 16,000,000",
    "sse_endless": "ServerMessageError: the server sent an event of more than 16,000,000",
}


@pytest.mark.parametrize("mode", sorted(HTTP_ENDLESS))
async def test_an_http_answer_past_the_bound_fails_its_call_as_it_streams(
    mode: str, http_port: int
) -> None:
    """A body or an event that never ends is refused past max_message_bytes as it streams,
    and its call fails then, naming why: not at the deadline (here far away, so a call left
    to it would end as a DeadlineExceededError), with the next call answered."""
    entry = {"url": f"http://127.0.0.1:{http_port}/{mode}", "startup_timeout_ms": 5000}
    config = parse_config({"mcpServers": {"h": entry}})
    pool = SessionPool(config.mcpServers)
    try:
        await pool.open()
        assert pool.is_up("h"), pool.status("h").error
        with pytest.raises(ProviderError) as failed:
            await pool.call_tool("h", "echo", {"text": "hostile"}, timeout_s=30.0)
        assert not isinstance(failed.value, DeadlineExceededError), failed.value
        message = str(failed.value)
        assert message.startswith("h/echo failed: " + HTTP_ENDLESS[mode]), message
        assert "\n" not in message and len(message) < 600, message
        result = await pool.call_tool("h", "echo", {"text": "next"}, timeout_s=20.0)
        assert json.loads(result.content[0].text) == {"text": "next"}  # type: ignore[union-attr]
    finally:
        await pool.close()


def test_an_sse_stream_that_never_gives_an_endpoint_is_down_in_time(http_port, tmp_path) -> None:
    server = {
        "type": "sse",
        "url": f"http://127.0.0.1:{http_port}/sse_mute",
        "startup_timeout_ms": 1500,
    }
    assert _down_reason(tmp_path, server).startswith("did not start within 1.5 s")


def test_an_sse_endpoint_on_another_origin_is_down_at_once_saying_so(http_port, tmp_path) -> None:
    """The MCP SDK refuses it where nobody hears: the start-up waited for its timeout (here
    far away, so a start-up left to it says "did not start within 60 s")."""
    url = f"http://127.0.0.1:{http_port}/sse_foreign"
    server = {"type": "sse", "url": url, "startup_timeout_ms": 60_000}
    reason = _down_reason(tmp_path, server)
    assert reason == (
        "ServerMessageError: the SSE server named its message endpoint on another origin "
        "(http://192.0.2.1:9/messages); the MCP client posts only to the stream's "
        f"(http://127.0.0.1:{http_port}): give the URL the server names itself by, or have "
        "it name a path"
    ), reason


def test_a_server_listing_odd_tool_names_still_serves_its_tools(tmp_path) -> None:
    """Tool names MCP does not forbid: empty, dotted, 5,000 characters, with a right-to-left
    override, listed twice. The server is up and its tools are called by name."""
    config = _write_config(tmp_path, _stdio("odd_names"))
    task = tmp_path / "t.json"
    requests = [{"id": s, "skill": f"h.{s}", "args": {"text": s}} for s in ("echo", "dup", "a.b")]
    task.write_text(json.dumps(requests))
    proc = cli(
        "run", str(task), "--config", str(config), "--json", "--db", ":memory:", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    values = [r["value"] for r in json.loads(proc.stdout)["results"]]
    assert values == [{"text": "echo"}, {"text": "dup"}, {"text": "a.b"}]

"""The fault server as a real process, driven by the plain ``mcp`` client over stdio and HTTP.

Every test runs under an outer ``asyncio.timeout`` and cleans up the processes it starts.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from asyncio.subprocess import Process
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError
from mcp.types import CallToolResult

from hybridmcp.testing.faultserver import FAULTABLE_TOOLS, FaultPlan, call_rng

pytestmark = pytest.mark.integration

SRC = str(Path(__file__).resolve().parents[2] / "src")
MODULE = "hybridmcp.testing.faultserver"
DEADLINE = 40.0  # outer deadline of every test, seconds
TRANSPORTS = ["stdio", "streamable-http"]


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HYBRIDMCP_FAULTS"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
    return {**env, **(extra or {})}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_for_port(port: int, proc: Process, limit: float = 20.0) -> None:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if proc.returncode is not None:
            raise RuntimeError(f"fault server exited early with code {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise TimeoutError(f"fault server did not listen on port {port} within {limit}s")


async def stop(proc: Process) -> bool:
    """Stop the server: SIGTERM, then SIGKILL after 5 s. True if SIGTERM was enough."""
    if proc.returncode is not None:
        return True
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), 5)
        return True
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return False


async def assert_gone(pid: int) -> None:
    """The process no longer exists (exited and reaped)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"fault server process {pid} is still alive")


class Server:
    """One running fault server and an initialized client session to it."""

    def __init__(self, session: ClientSession, pid: int, proc: Process | None) -> None:
        self.session = session
        self.pid = pid
        self.proc = proc
        self.stopped_by_sigterm: bool | None = None

    async def call(self, tool: str, read_timeout: float | None = None, **arguments: Any):
        seconds = timedelta(seconds=read_timeout) if read_timeout is not None else None
        return await self.session.call_tool(tool, arguments, read_timeout_seconds=seconds)

    async def value(self, tool: str, **arguments: Any) -> Any:
        result = await self.call(tool, **arguments)
        assert not result.isError, result.content
        data = json.loads(text_of(result))
        assert data == result.structuredContent
        return data


def text_of(result: CallToolResult) -> str:
    assert len(result.content) == 1 and result.content[0].type == "text"
    return result.content[0].text


@asynccontextmanager
async def fault_server(
    tmp_path: Path,
    *args: str,
    transport: str = "stdio",
    env: dict[str, str] | None = None,
) -> AsyncIterator[Server]:
    """Start ``python -m hybridmcp.testing.faultserver`` and open a session; stop both after."""
    errlog_path = tmp_path / f"server-{transport}-{time.monotonic_ns()}.stderr"
    with errlog_path.open("w") as errlog:
        if transport == "stdio":
            params = StdioServerParameters(
                command=sys.executable, args=["-m", MODULE, *args], env=server_env(env)
            )
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                pid = (await Server(session, 0, None).value("fault_control"))["pid"]
                yield Server(session, pid, None)
            await assert_gone(pid)
            return

        port = free_port()
        cmd = [sys.executable, "-m", MODULE, "--transport", transport, "--port", str(port), *args]
        proc = await asyncio.create_subprocess_exec(
            *cmd, env=server_env(env), stdin=subprocess.DEVNULL, stdout=errlog, stderr=errlog
        )
        server: Server | None = None
        try:
            await wait_for_port(port, proc)
            if transport == "sse":
                client = sse_client(f"http://127.0.0.1:{port}/sse")
            else:
                client = streamable_http_client(f"http://127.0.0.1:{port}/mcp")
            async with client as streams, ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                pid = (await Server(session, 0, proc).value("fault_control"))["pid"]
                assert pid == proc.pid
                server = Server(session, pid, proc)
                yield server
        finally:
            stopped_by_sigterm = await stop(proc)
            if server is not None:
                server.stopped_by_sigterm = stopped_by_sigterm
        assert proc.returncode is not None


# ---- normal results -------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_every_tool_answers_normally(tmp_path, transport):
    async with asyncio.timeout(DEADLINE), fault_server(tmp_path, transport=transport) as server:
        names = {tool.name for tool in (await server.session.list_tools()).tools}
        assert names == {*FAULTABLE_TOOLS, "echo_json", "fault_control"}

        assert await server.value("calculate", expression="(2 + 3) * 4 - 2 ** 3 / 8") == {
            "value": 19
        }
        assert await server.value("calculate", expression="7 // 2 + 7 % 2 + 0.5") == {"value": 4.5}
        assert await server.value("word_count", text="Hello there. How are you?") == {
            "words": 5,
            "characters": 25,
            "sentences": 2,
        }
        assert await server.value("echo", text="héllo ✓") == {"text": "héllo ✓"}
        assert await server.value("sleep", ms=20) == {"slept_ms": 20}
        nested = {"a": [1, {"b": "c"}], "n": 4111111111111111}
        assert await server.value("echo_json", payload=nested) == {"payload": nested}

        now = await server.value("get_current_time", timezone="Asia/Tokyo")
        assert set(now) == {"timezone", "datetime", "day_of_week", "is_dst"}
        moment = datetime.fromisoformat(now["datetime"])
        assert moment.utcoffset() == timedelta(hours=9)
        assert abs(moment - datetime.now(UTC)) < timedelta(seconds=30)

        converted = await server.value(
            "convert_time", source_timezone="UTC", time="12:00", target_timezone="Asia/Kathmandu"
        )
        assert converted["time_difference"] == "+5.75h"
        assert converted["target"]["datetime"].endswith("T17:45:00+05:45")


async def test_time_tools_agree_with_mcp_server_time(tmp_path):
    reference = pytest.importorskip("mcp_server_time.server").TimeServer()
    async with asyncio.timeout(DEADLINE), fault_server(tmp_path) as server:
        for source, hhmm, target in [("America/New_York", "09:30", "Europe/Berlin")]:
            ours = await server.value(
                "convert_time", source_timezone=source, time=hhmm, target_timezone=target
            )
            assert ours == reference.convert_time(source, hhmm, target).model_dump()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_tool_input_errors_are_tool_errors(tmp_path, transport):
    async with asyncio.timeout(DEADLINE), fault_server(tmp_path, transport=transport) as server:
        bad = await server.call("calculate", expression="__import__('os').getcwd()")
        assert bad.isError and "unsupported" in text_of(bad)
        huge = await server.call("calculate", expression="10 ** 10 ** 10")
        assert huge.isError and "too large" in text_of(huge)
        zone = await server.call("get_current_time", timezone="Mars/Olympus_Mons")
        assert zone.isError and "Invalid timezone" in text_of(zone)


async def test_sse_transport(tmp_path):
    async with asyncio.timeout(DEADLINE):
        async with fault_server(
            tmp_path, "--faults", '{"echo": {"fail_first": 1}}', transport="sse"
        ) as server:
            assert await server.value("calculate", expression="6 * 7") == {"value": 42}
            assert (await server.call("echo", text="a")).isError
            assert await server.value("echo", text="a") == {"text": "a"}


# ---- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_latency_is_injected(tmp_path, transport):
    faults = json.dumps({"echo": {"latency_ms": 300}, "*": {"latency_ms": 100, "jitter_ms": 50}})
    async with (
        asyncio.timeout(DEADLINE),
        fault_server(tmp_path, "--faults", faults, transport=transport) as server,
    ):
        start = time.monotonic()
        assert await server.value("echo", text="slow") == {"text": "slow"}
        assert time.monotonic() - start >= 0.3
        start = time.monotonic()
        assert await server.value("calculate", expression="1") == {"value": 1}
        assert time.monotonic() - start >= 0.1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_fail_first_produces_tool_errors_then_answers(tmp_path, transport):
    faults = json.dumps({"calculate": {"fail_first": 2}})
    async with (
        asyncio.timeout(DEADLINE),
        fault_server(tmp_path, "--faults", faults, transport=transport) as server,
    ):
        for _ in range(2):
            failed = await server.call("calculate", expression="1 + 1")
            assert failed.isError and "injected failure" in text_of(failed)
        assert await server.value("calculate", expression="1 + 1") == {"value": 2}
        assert await server.value("echo", text="unaffected") == {"text": "unaffected"}


async def test_fail_rate_is_deterministic_with_seed_and_matches_the_plan(tmp_path):
    config = {"echo": {"fail_rate": 0.5}}
    args = ("--faults", json.dumps(config), "--seed", "1234")
    runs = []
    async with asyncio.timeout(DEADLINE):
        for _ in range(2):
            async with fault_server(tmp_path, *args) as server:
                runs.append([(await server.call("echo", text="x")).isError for _ in range(30)])
    plan = FaultPlan.from_config(config)
    predicted = [
        plan.decide("echo", n, n, call_rng(1234, "echo", n)).action == "fail" for n in range(1, 31)
    ]
    assert runs[0] == runs[1] == predicted
    assert any(predicted) and not all(predicted)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_hang_is_ended_by_the_client_read_timeout(tmp_path, transport):
    faults = json.dumps({"echo": {"hang": True}, "sleep": {"hang_rate": 1.0}})
    async with (
        asyncio.timeout(DEADLINE),
        fault_server(tmp_path, "--faults", faults, transport=transport) as server,
    ):
        with pytest.raises(McpError, match="Timed out"):
            await server.call("echo", read_timeout=0.5, text="never")
        with pytest.raises(McpError, match="Timed out"):
            await server.call("sleep", read_timeout=0.5, ms=1)
        # The server is still alive and serves other calls meanwhile.
        assert await server.value("calculate", expression="2 + 2") == {"value": 4}


async def test_hang_is_ended_by_an_asyncio_deadline(tmp_path):
    async with (
        asyncio.timeout(DEADLINE),
        fault_server(tmp_path, "--faults", '{"echo": {"hang": true}}') as server,
    ):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await server.call("echo", text="never")
        assert await server.value("word_count", text="still here") == {
            "words": 2,
            "characters": 10,
            "sentences": 1,
        }


async def test_crash_ends_the_stdio_process_mid_call(tmp_path):
    record = tmp_path / "calls.jsonl"
    faults = json.dumps({"sleep": {"crash_after": 1}})
    async with asyncio.timeout(DEADLINE):
        async with fault_server(tmp_path, "--faults", faults, "--record", str(record)) as server:
            assert await server.value("sleep", ms=1) == {"slept_ms": 1}
            with pytest.raises(McpError):
                await server.call("sleep", read_timeout=10, ms=2)
            await assert_gone(server.pid)
        lines = [json.loads(line) for line in record.read_text().splitlines()]
        # The fatal call was received and recorded before the process died.
        assert lines[-1]["tool"] == "sleep" and lines[-1]["arguments"] == {"ms": 2}


async def test_crash_over_streamable_http_needs_a_client_deadline(tmp_path):
    # A streamable-HTTP server killed mid-call leaves the client waiting: only a deadline ends it.
    async with (
        asyncio.timeout(DEADLINE),
        fault_server(
            tmp_path, "--faults", '{"*": {"crash": true}}', transport="streamable-http"
        ) as server,
    ):
        with pytest.raises(McpError):
            await server.call("echo", read_timeout=3, text="boom")
        assert server.proc is not None
        assert await asyncio.wait_for(server.proc.wait(), 5) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_output_faults(tmp_path, transport):
    faults = {
        "calculate": {"malformed": True},
        "word_count": {"malformed": "wrong_shape"},
        "echo": {"oversized_bytes": 200_000},
        "get_current_time": {"error_text": "Error: upstream database is locked"},
    }
    async with (
        asyncio.timeout(DEADLINE),
        fault_server(tmp_path, "--faults", json.dumps(faults), transport=transport) as server,
    ):
        malformed = await server.call("calculate", expression="1 + 1")
        assert not malformed.isError and malformed.structuredContent is None
        with pytest.raises(json.JSONDecodeError):
            json.loads(text_of(malformed))

        shaped = await server.call("word_count", text="a b")
        assert not shaped.isError
        assert "words" not in json.loads(text_of(shaped))

        big = await server.call("echo", text="hi")
        assert not big.isError and len(text_of(big).encode()) == 200_000

        error = await server.call("get_current_time", timezone="UTC")
        assert not error.isError
        assert text_of(error) == "Error: upstream database is locked"


async def test_wrong_answers_are_plausible_but_different(tmp_path):
    faults = {tool: {"wrong_answer": True} for tool in FAULTABLE_TOOLS}
    async with (
        asyncio.timeout(DEADLINE),
        fault_server(tmp_path, "--faults", json.dumps(faults)) as server,
    ):
        assert await server.value("calculate", expression="40 + 1") == {"value": 42}
        counts = await server.value("word_count", text="one two three")
        assert counts == {"words": 4, "characters": 13, "sentences": 1}
        assert await server.value("echo", text="abc") == {"text": "ab"}
        assert await server.value("sleep", ms=3) == {"slept_ms": 4}
        now = await server.value("get_current_time", timezone="UTC")
        shift = datetime.fromisoformat(now["datetime"]) - datetime.now(UTC)
        assert timedelta(hours=3) - timedelta(seconds=30) < shift
        assert shift < timedelta(hours=3) + timedelta(seconds=30)
        converted = await server.value(
            "convert_time", source_timezone="UTC", time="12:00", target_timezone="Asia/Tokyo"
        )
        assert converted["target"]["datetime"].endswith("T00:00:00+09:00")
        assert converted["time_difference"] == "+12.0h"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_fault_control_changes_faults_at_runtime(tmp_path, transport):
    async with asyncio.timeout(DEADLINE), fault_server(tmp_path, transport=transport) as server:
        assert await server.value("echo", text="a") == {"text": "a"}
        state = await server.value(
            "fault_control", faults={"echo": {"fail_first": 1}, "*": {"crash": True}}
        )
        assert state["faults"] == {"echo": {"fail_first": 1}, "*": {"crash": True}}
        # fault_control itself is never faulted, even by a "*" crash.
        assert (await server.value("fault_control"))["counters"] == {"echo": 1}

        state = await server.value(
            "fault_control", faults={"echo": {"fail_first": 1}}, reset_counters=True
        )
        assert state["counters"] == {} and state["total_calls"] == 0
        assert (await server.call("echo", text="b")).isError
        assert await server.value("echo", text="c") == {"text": "c"}
        state = await server.value("fault_control")
        assert state["counters"] == {"echo": 2} and state["total_calls"] == 2

        bad = await server.call("fault_control", faults={"echo": {"fail_rate": 3}})
        assert bad.isError and "faults.echo.fail_rate" in text_of(bad)
        unknown = await server.call("fault_control", faults={"ecko": {}})
        assert unknown.isError and "unknown tool 'ecko'" in text_of(unknown)
        # A refused config leaves the previous one in force.
        assert (await server.value("fault_control"))["faults"] == {"echo": {"fail_first": 1}}

        assert (await server.value("fault_control", faults={}))["faults"] == {}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_record_writes_every_received_call(tmp_path, transport):
    record = tmp_path / "calls.jsonl"
    faults = json.dumps({"calculate": {"fail_first": 1}})
    async with asyncio.timeout(DEADLINE):
        async with fault_server(
            tmp_path, "--record", str(record), "--faults", faults, transport=transport
        ) as server:
            await server.call("calculate", expression="1 + 1")
            await server.value("echo", text="secret: 4111 1111 1111 1111")
        lines = [json.loads(line) for line in record.read_text().splitlines()]
    calls = [(line["tool"], line["arguments"]) for line in lines if line["tool"] != "fault_control"]
    assert calls == [
        ("calculate", {"expression": "1 + 1"}),
        ("echo", {"text": "secret: 4111 1111 1111 1111"}),
    ]
    assert all(isinstance(line["ts"], float) for line in lines)
    assert lines[0]["tool"] == "fault_control"  # the harness's own pid lookup


async def test_faults_from_environment_and_yaml_file(tmp_path):
    async with asyncio.timeout(DEADLINE):
        env = {"HYBRIDMCP_FAULTS": '{"echo": {"fail_first": 1}}'}
        async with fault_server(tmp_path, env=env) as server:
            assert (await server.call("echo", text="x")).isError
        path = tmp_path / "faults.yaml"
        path.write_text("calculate:\n  wrong_answer: true\n")
        async with fault_server(tmp_path, "--faults", str(path), env=env) as server:
            # --faults wins over the environment variable.
            assert await server.value("echo", text="x") == {"text": "x"}
            assert await server.value("calculate", expression="1") == {"value": 2}


def test_bad_fault_config_exits_with_a_clear_error():
    result = subprocess.run(
        [sys.executable, "-m", MODULE, "--faults", '{"echo": {"fail_rat": 1}}'],
        env=server_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "faults.echo.fail_rat" in result.stderr


async def test_http_server_with_a_hanging_call_stops_on_sigterm(tmp_path):
    async with asyncio.timeout(DEADLINE):
        async with fault_server(
            tmp_path, "--faults", '{"echo": {"hang": true}}', transport="streamable-http"
        ) as server:
            with pytest.raises(McpError):
                await server.call("echo", read_timeout=0.5, text="never")
        assert server.proc is not None and server.proc.returncode is not None
        assert server.stopped_by_sigterm, "a hanging call kept the server from stopping on SIGTERM"

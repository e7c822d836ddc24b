"""A stopped LangGraph server leaves no MCP server process behind.

``langgraph dev`` (the repository's ``langgraph.json``, a fresh directory, a free port) makes
one run that uses the ``time`` server, so its process starts ``mcp-server-time``; the server is
then stopped with SIGINT or SIGTERM, sent to the server alone (not its process group), and none
of the processes it started may be alive when it has exited (``http.app``'s lifespan closes the
shared resources).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client

from hybridmcp.testing.harness import langgraph_config_in
from tests.integration.test_server import (
    LANGGRAPH,
    REQUESTS,
    ROOT,
    RUN_DEADLINE_S,
    START_DEADLINE_S,
    _alive,
    _descendants,
    _free_port,
)

pytestmark = pytest.mark.integration
STOP_DEADLINE_S = 30.0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _start(folder: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *(str(LANGGRAPH), "dev", "--no-browser", "--no-reload"),
                *("--port", str(port), "--host", "127.0.0.1"),
                *("--config", str(langgraph_config_in(folder, ROOT))),
            ],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"langgraph dev exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"langgraph dev did not answer /ok in time:\n{log.read_text()}")
        time.sleep(0.5)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_stopping_the_server_stops_the_mcp_servers_it_started(
    tmp_path: Path, sig: signal.Signals
) -> None:
    log = tmp_path / "server.log"
    proc, url = _start(tmp_path, log)
    tree: set[int] = set()
    try:
        async with asyncio.timeout(RUN_DEADLINE_S):
            client = get_client(url=url)
            thread = await client.threads.create()
            out = await client.runs.wait(
                thread["thread_id"], "hybridmcp", input={"requests": REQUESTS}
            )
        assert out["results"]["now"]["agreement"] is True, out  # mcp-server-time answered
        tree = _descendants(proc.pid)
        assert any("mcp-server-time" in _cmdline(p) for p in tree), {p: _cmdline(p) for p in tree}

        proc.send_signal(sig)  # the server alone: a stdio MCP server has a session of its own
        try:
            proc.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"langgraph dev did not stop on {sig.name}:\n{log.read_text()}")
        # Checked at once: an orphan would exit soon after on its stdin's end of file, but a
        # server that ignores it (or hangs) would not; the lifespan stops them before exit.
        left = {p: _cmdline(p) for p in tree if _alive(p)}
        assert not left, f"processes outlived the server: {left}\n{log.read_text()[-3000:]}"
    finally:
        for pid in [proc.pid, *tree]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=15)

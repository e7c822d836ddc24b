"""Fault patterns the rest of the suite does not drive, through the session pool against the
fault server in a real process over stdio, streamable HTTP and SSE: a server that dies or
stalls in the middle of its answer. Each call ends in one line, at once where the transport
can tell (never asserted as a time: a far deadline stands in, so a call left to it would end
as a DeadlineExceededError), and the next call is answered."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from hybridmcp.capabilities.mcp_pool import SessionPool
from hybridmcp.config import parse_config
from hybridmcp.errors import DeadlineExceededError, ServerUnavailableError
from hybridmcp.testing.harness import HttpFaultServer, faultserver_stdio

pytestmark = pytest.mark.integration
FAR_S = 30.0
"""A deadline no test here waits for: a call that ends by it has failed the test."""


@asynccontextmanager
async def pool_on(
    transport: str, faults: dict[str, Any]
) -> AsyncIterator[tuple[SessionPool, HttpFaultServer | None]]:
    """A pool holding one fault server ``f``; over HTTP, its process too."""
    http = None
    if transport == "stdio":
        entry = faultserver_stdio(faults)
    else:
        http = HttpFaultServer(faults, transport=transport)
        await http.start()
        entry = http.server_config()
    pool = SessionPool(parse_config({"mcpServers": {"f": entry}}).mcpServers)
    try:
        await pool.open()
        assert pool.is_up("f"), pool.status("f").error
        yield pool, http
    finally:
        await pool.close()
        if http is not None:
            await http.stop()


async def echo(pool: SessionPool, text: str, timeout_s: float = FAR_S) -> Any:
    result = await pool.call_tool("f", "echo", {"text": text}, timeout_s=timeout_s)
    return json.loads(result.content[0].text)  # type: ignore[union-attr]


DEATHS = {"crash": {"crash": True}, "mid-answer": {"partial": "crash"}}


@pytest.mark.parametrize("death", sorted(DEATHS))
@pytest.mark.parametrize("transport", ["stdio", "streamable-http", "sse"])
async def test_a_server_dying_mid_call_fails_the_call_at_once(transport: str, death: str) -> None:
    """The process exits in the middle of the call: before answering, or (over stdio) with
    the first half of the answer's line written. Over HTTP its response has begun. Over
    streamable HTTP the MCP client drops the broken response and the call waited for its
    deadline; it is heard now, as on the others."""
    async with asyncio.timeout(3 * FAR_S), pool_on(transport, {}) as (pool, http):
        await pool.call_tool(
            "f", "fault_control", {"faults": {"echo": DEATHS[death]}}, timeout_s=FAR_S
        )
        with pytest.raises(ServerUnavailableError) as failed:
            await echo(pool, "dies")
        message = str(failed.value)
        assert message.startswith("f/echo: the connection closed mid-call"), message
        assert "\n" not in message and len(message) < 600, message
        if http is not None:
            assert await http.wait_exit() == 1
            await http.start()  # back on the same port, without the fault
            # A re-open tried while it was down backs off; the next call after that re-opens.
            await asyncio.sleep(max(0.0, pool.status("f").retry_at - time.monotonic()))
        assert await echo(pool, "next") == {"text": "next"}
        assert pool.status("f").opens == 2


@pytest.mark.parametrize("transport", ["stdio", "streamable-http", "sse"])
async def test_a_server_stalling_mid_answer_ends_at_the_deadline_and_the_next_call_works(
    transport: str,
) -> None:
    """Half an answer, then nothing (over stdio its later answers are written after the cut
    line, so the line they share is garbage): the call ends at its deadline in one line; the
    session is checked before the next call and replaced where it no longer answers."""
    async with asyncio.timeout(3 * FAR_S), pool_on(transport, {}) as (pool, _):
        await pool.call_tool(
            "f", "fault_control", {"faults": {"echo": {"partial": "stall"}}}, timeout_s=FAR_S
        )
        with pytest.raises(DeadlineExceededError) as failed:
            await echo(pool, "stalls", timeout_s=1.0)
        assert str(failed.value) == "f/echo did not answer within 1000 ms"
        await pool.call_tool("f", "fault_control", {"faults": {}}, timeout_s=FAR_S)
        assert await echo(pool, "next") == {"text": "next"}

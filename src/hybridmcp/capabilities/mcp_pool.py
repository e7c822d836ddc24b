"""Long-lived MCP sessions, one per server, shared by every call of a run.

Opening a stdio session starts a process (about 0.6 s here); a call on an open session costs
2-3 ms. So each server gets one session, opened once and held until :meth:`SessionPool.close`.

anyio's cancel scopes must be exited by the task that entered them, while LangGraph runs each
node in a task of its own. Each session therefore lives in an *owner task* that enters the
transport's context, publishes the session, and waits for the pool to close; other tasks only
send requests through the session's streams.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from langchain_mcp_adapters.client import MultiServerMCPClient
from mcp import ClientSession
from mcp.types import CallToolResult, Tool

from hybridmcp.config import HttpServer, ServerConfig, StdioServer
from hybridmcp.errors import DeadlineExceededError, ProviderError, ServerUnavailableError


def resolve_command(command: str) -> str:
    """Find a stdio server's command on PATH, or beside the running interpreter.

    A project installed in a virtual environment that is not activated still finds the console
    scripts it installed (``.venv/bin/mcp-server-time``).
    """
    if os.path.sep in command or shutil.which(command):
        return command
    beside = os.path.join(os.path.dirname(sys.executable), command)
    if os.path.exists(beside):
        return beside
    if command in ("python", "python3"):
        return sys.executable
    return command


def to_connection(server: ServerConfig) -> dict[str, Any]:
    """The ``langchain-mcp-adapters`` connection for a configured server."""
    if isinstance(server, StdioServer):
        conn: dict[str, Any] = {
            "transport": "stdio",
            "command": resolve_command(server.command),
            "args": list(server.args),
        }
        if server.env is not None:
            conn["env"] = dict(server.env)
        if server.cwd is not None:
            conn["cwd"] = server.cwd
        return conn
    assert isinstance(server, HttpServer)
    conn = {"transport": server.transport, "url": server.url}
    if server.headers:
        conn["headers"] = dict(server.headers)
    return conn


@dataclass
class ServerStatus:
    """What the pool knows of one server, for run output and arbitration."""

    name: str
    up: bool = False
    error: str | None = None
    tools: list[Tool] = field(default_factory=list)
    opened_at: float | None = None
    calls: int = 0


class _ServerSession:
    """One server's session, owned by a dedicated task."""

    def __init__(self, name: str, config: ServerConfig) -> None:
        self.name = name
        self.config = config
        self.status = ServerStatus(name)
        self._session: ClientSession | None = None
        self._ready = asyncio.Event()
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self._task = asyncio.create_task(self._own(), name=f"mcp-session:{self.name}")
        timeout = self.config.startup_timeout_ms / 1000
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            self.status.error = f"did not start within {timeout:g} s"
            await self.close()
        if self._session is None and self.status.error is None:
            self.status.error = "session ended during start-up"

    async def _own(self) -> None:
        client = MultiServerMCPClient({self.name: to_connection(self.config)})  # type: ignore[dict-item]
        try:
            async with client.session(self.name) as session:
                listed = await session.list_tools()
                self._session = session
                self.status.tools = list(listed.tools)
                self.status.up = True
                self.status.opened_at = time.time()
                self._ready.set()
                await self._closing.wait()
        except asyncio.CancelledError:
            raise
        except BaseException as err:
            self.status.error = _describe(err)
        finally:
            self.status.up = False
            self._session = None
            self._ready.set()

    async def call(self, tool: str, arguments: dict[str, Any], timeout_s: float) -> CallToolResult:
        session = self._session
        if session is None or not self.status.up:
            raise ServerUnavailableError(
                f"MCP server {self.name!r} is not available: {self.status.error or 'not open'}"
            )
        self.status.calls += 1
        try:
            async with asyncio.timeout(timeout_s):
                return await session.call_tool(
                    tool, arguments, read_timeout_seconds=timedelta(seconds=timeout_s)
                )
        except TimeoutError:
            raise DeadlineExceededError(
                f"{self.name}/{tool} did not answer within {timeout_s * 1000:.0f} ms"
            ) from None
        except ProviderError:
            raise
        except Exception as err:
            if self._task is not None and self._task.done():
                self.status.up = False
            raise ProviderError(f"{self.name}/{tool} failed: {_describe(err)}") from None

    async def close(self) -> None:
        self._closing.set()
        task = self._task
        if task is None or task.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), 5)
        except (TimeoutError, Exception):
            task.cancel()
            try:
                await task
            except BaseException:
                pass


def _describe(err: BaseException) -> str:
    """A one-line description, unwrapping the exception groups anyio raises."""
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    text = str(err) or type(err).__name__
    return f"{type(err).__name__}: {text}" if text != type(err).__name__ else text


class SessionPool:
    """The MCP sessions of a run: opened together, used concurrently, closed together."""

    def __init__(self, servers: dict[str, ServerConfig]) -> None:
        self._sessions = {
            name: _ServerSession(name, cfg) for name, cfg in servers.items() if cfg.enabled
        }

    async def open(self) -> SessionPool:
        await asyncio.gather(*(s.open() for s in self._sessions.values()))
        return self

    async def __aenter__(self) -> SessionPool:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await asyncio.gather(*(s.close() for s in self._sessions.values()))

    def status(self, server: str) -> ServerStatus:
        if server not in self._sessions:
            return ServerStatus(server, error="not configured or disabled")
        return self._sessions[server].status

    def statuses(self) -> dict[str, ServerStatus]:
        return {name: s.status for name, s in self._sessions.items()}

    def is_up(self, server: str) -> bool:
        return self.status(server).up

    async def call_tool(
        self, server: str, tool: str, arguments: dict[str, Any], timeout_s: float
    ) -> CallToolResult:
        """Call a tool on an open session, bounded by ``timeout_s``.

        Callers outside :mod:`hybridmcp.capabilities.gate` must not use this directly: every
        external call passes the gate.
        """
        if server not in self._sessions:
            raise ServerUnavailableError(f"MCP server {server!r} is not configured")
        return await self._sessions[server].call(tool, arguments, timeout_s)

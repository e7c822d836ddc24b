"""Long-lived MCP sessions, one per server, shared by every call of a run.

Opening a stdio session starts a process (about 0.6 s here); a call on an open session costs
2-3 ms. So each server gets one session, opened once and held until :meth:`SessionPool.close`.

anyio's cancel scopes must be exited by the task that entered them, while LangGraph runs each
node in a task of its own. Each session therefore lives in an *owner task* that enters the
transport's context, publishes the session, and waits to be told to stop; other tasks only
send requests through the session's streams.

Resilience, per server:

- **deadlines**: every call runs under an outer ``asyncio`` deadline (the MCP client's read
  timeout alone does not end a call whose streamable-HTTP server died mid-call). A call that
  misses its deadline, or whose caller is cancelled, sends the server ``notifications/cancelled``
  so the server stops the work, and marks the session *suspect*;
- **health**: a suspect session is pinged before its next call, and idle sessions are pinged
  every ``health_interval_ms``; a session that fails a ping, whose connection closed, or whose
  transport died is *broken*;
- **re-opening**: a broken session is replaced on the next call (one open shared by all the
  callers waiting for it). A request that could not even be sent on a dead session is retried
  once on the new one; a request that was in flight when the connection died fails (the server
  may have acted on it) and the coordinator reallocates it. Failed opens back off exponentially
  (``reopen_backoff_ms`` doubling up to ``reopen_backoff_max_ms``), and calls during the backoff
  fail fast with :class:`ServerUnavailableError`;
- **bounded concurrency**: at most ``max_concurrency`` calls in flight per server; the others wait
  for a slot within their own deadline;
- **clean shutdown**: :meth:`SessionPool.close` stops every owner task (stdio processes are ended
  by their transport), waiting at most a few seconds for each before cancelling it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import anyio
from langchain_mcp_adapters.sessions import create_session
from mcp import ClientSession
from mcp.shared.exceptions import McpError
from mcp.types import (
    CONNECTION_CLOSED,
    CallToolResult,
    CancelledNotification,
    CancelledNotificationParams,
    ClientNotification,
    Tool,
)

from hybridmcp.capabilities.timing import CallTiming
from hybridmcp.config import HttpServer, PoolConfig, ServerConfig, StdioServer
from hybridmcp.errors import DeadlineExceededError, ProviderError, ServerUnavailableError

REQUEST_TIMEOUT = 408
"""The JSON-RPC error code the MCP client raises when its own read timeout fires."""
STOP_GRACE_S = 5.0
"""How long a stopping owner task may take (a stdio transport waits 2 s for its process)."""
_SESSION_GONE = (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream)


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
    opens: int = 0
    """Sessions opened successfully (1 + re-opens)."""
    failed_opens: int = 0
    """Consecutive failed opens (reset by a successful one); drives the backoff."""
    retry_at: float = 0.0
    """``time.monotonic()`` before which no re-open is tried."""
    in_flight: int = 0

    @property
    def available(self) -> bool:
        """Up, or was up and is due for a re-open: worth routing a call to. A server that never
        started stays unavailable until the health loop opens it."""
        return self.up or (self.opens > 0 and time.monotonic() >= self.retry_at)

    def describe(self) -> dict[str, Any]:
        return {
            "up": self.up,
            "error": self.error,
            "calls": self.calls,
            "opens": self.opens,
            "in_flight": self.in_flight,
        }


def _describe(err: BaseException) -> str:
    """A one-line description, unwrapping the exception groups anyio raises."""
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    text = str(err) or type(err).__name__
    return f"{type(err).__name__}: {text}" if text != type(err).__name__ else text


class _ServerSession:
    """One server's session (re-opened as needed), owned by a dedicated task."""

    def __init__(self, name: str, config: ServerConfig, settings: PoolConfig) -> None:
        self.name = name
        self.config = config
        self.settings = settings
        self.status = ServerStatus(name)
        self._session: ClientSession | None = None
        self._owner: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._opening: asyncio.Task[None] | None = None
        self._retired: set[asyncio.Task[None]] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._slots = asyncio.Semaphore(config.max_concurrency)
        self._suspect = False
        self._closed = False
        self._last_used = time.monotonic()

    # -- opening and closing ------------------------------------------------------------------

    async def open(self) -> None:
        self._opening = asyncio.create_task(self._start(), name=f"mcp-open:{self.name}")
        await asyncio.shield(self._opening)

    async def _start(self) -> None:
        """One attempt to open a fresh session; the old one, if any, is retired first."""
        self._retire()
        ready, stop = asyncio.Event(), asyncio.Event()
        self._stop = stop
        owner = asyncio.create_task(self._own(ready, stop), name=f"mcp-session:{self.name}")
        self._owner = owner
        timeout = self.config.startup_timeout_ms / 1000
        try:
            await asyncio.wait_for(ready.wait(), timeout)
        except TimeoutError:
            self.status.error = f"did not start within {timeout:g} s"
            self._retire()
        if self._session is not None and self._owner is owner:
            self.status.opens += 1
            self.status.failed_opens = 0
            self.status.retry_at = 0.0
            self._suspect = False
            return
        self.status.error = self.status.error or "session ended during start-up"
        self.status.failed_opens += 1
        backoff = min(
            self.settings.reopen_backoff_max_ms,
            self.settings.reopen_backoff_ms * 2 ** (self.status.failed_opens - 1),
        )
        self.status.retry_at = time.monotonic() + backoff / 1000

    async def _own(self, ready: asyncio.Event, stop: asyncio.Event) -> None:
        me = asyncio.current_task()
        try:
            async with create_session(to_connection(self.config)) as session:  # type: ignore[arg-type]
                await session.initialize()
                listed = await session.list_tools()
                if self._owner is me:
                    self._session = session
                    self.status.tools = list(listed.tools)
                    self.status.up = True
                    self.status.error = None
                    self.status.opened_at = time.time()
                ready.set()
                await stop.wait()
        except asyncio.CancelledError:
            raise
        except BaseException as err:
            if self._owner is me:
                self.status.error = _describe(err)
        finally:
            if self._owner is me:
                self._session = None
                self.status.up = False
            ready.set()

    def _retire(self) -> None:
        """Tell the current owner task to stop; it finishes in the background."""
        if self._stop is not None:
            self._stop.set()
        owner, self._owner = self._owner, None
        self._session = None
        self.status.up = False
        if owner is not None and not owner.done():
            self._retired.add(owner)
            owner.add_done_callback(self._retired.discard)

    def _broken(self, why: str) -> None:
        """Retire a broken session and start its replacement now, so the next call finds it
        open (or opening)."""
        self.status.error = why
        self._retire()
        self.reopen_in_background()

    async def close(self) -> None:
        self._closed = True
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()
        self._retire()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*(_finish(t) for t in [*self._retired, *self._background]))

    # -- health ---------------------------------------------------------------------------------

    def _alive(self) -> bool:
        return self._session is not None and self._owner is not None and not self._owner.done()

    async def ping(self, timeout_s: float) -> bool:
        """An MCP ping within ``timeout_s``; a failure marks the session broken."""
        session = self._session
        if session is None or not self._alive():
            return False
        try:
            async with asyncio.timeout(timeout_s):
                await session.send_ping()
        except Exception as err:
            if session is self._session:
                self._broken(f"health check failed: {_describe(err) or 'no answer'}")
            return False
        self._suspect = False
        return True

    def reopen_in_background(self) -> None:
        """Start re-opening a broken session when its backoff allows (health loop)."""
        if self._closed or self._alive() or time.monotonic() < self.status.retry_at:
            return
        if self._opening is None or self._opening.done():
            self._opening = asyncio.create_task(self._start(), name=f"mcp-open:{self.name}")

    async def check(self) -> bool:
        """Ping an idle live session, or re-open a broken one; True when the server is up."""
        if self._alive():
            idle = time.monotonic() - self._last_used
            if self.status.in_flight == 0 and idle * 1000 >= self.settings.health_interval_ms / 2:
                await self.ping(self.settings.ping_timeout_ms / 1000)
        if not self._alive():
            self.reopen_in_background()
        return self._alive()

    async def _ensure(self) -> ClientSession:
        """The live session: a suspect one is pinged, a broken one re-opened (shared open)."""
        if self._closed:
            raise ServerUnavailableError(f"MCP server {self.name!r}: the session pool is closed")
        if self._alive() and self._suspect:
            await self.ping(self.settings.ping_timeout_ms / 1000)
        if not self._alive():
            if self._opening is None or self._opening.done():
                wait = self.status.retry_at - time.monotonic()
                if wait > 0:
                    raise ServerUnavailableError(
                        f"MCP server {self.name!r} is down ({self.status.error}); "
                        f"next re-open in {wait:.1f} s"
                    )
                self._opening = asyncio.create_task(self._start(), name=f"mcp-open:{self.name}")
            await asyncio.shield(self._opening)
        session = self._session
        if session is None:
            raise ServerUnavailableError(
                f"MCP server {self.name!r} is not available: {self.status.error or 'not open'}"
            )
        return session

    # -- calls ----------------------------------------------------------------------------------

    async def call(
        self,
        tool: str,
        arguments: dict[str, Any],
        timeout_s: float,
        timing: CallTiming | None = None,
    ) -> CallToolResult:
        where = f"{self.name}/{tool}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            async with asyncio.timeout_at(deadline), self._slots:
                for attempt in (1, 2):
                    session = await self._ensure()
                    if timing is not None:
                        timing.mark_sent()
                    try:
                        return await self._send(session, tool, arguments, deadline - loop.time())
                    except _SESSION_GONE as err:
                        # Nothing reached the server: safe to send again on a fresh session.
                        self._broken(f"session closed: {_describe(err)}")
                        if attempt == 2:
                            raise ServerUnavailableError(
                                f"{where}: the session closed and re-opening did not help"
                            ) from None
        except TimeoutError:
            raise DeadlineExceededError(
                f"{where} did not answer within {timeout_s * 1000:.0f} ms"
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(
        self, session: ClientSession, tool: str, arguments: dict[str, Any], remaining_s: float
    ) -> CallToolResult:
        """One ``tools/call``; on deadline or cancellation the server is told to stop."""
        where = f"{self.name}/{tool}"
        # The id the session gives this request: read synchronously, just before the call.
        request_id = getattr(session, "_request_id", None)
        self.status.calls += 1
        self.status.in_flight += 1
        try:
            return await session.call_tool(
                tool, arguments, read_timeout_seconds=timedelta(seconds=max(remaining_s, 0.001))
            )
        except asyncio.CancelledError:
            # The outer deadline, or a caller that no longer wants the answer (a lost hedge).
            self._suspect = True
            self._cancel_remote(session, request_id, "the caller cancelled the request")
            raise
        except McpError as err:
            code = err.error.code
            if code == CONNECTION_CLOSED:
                self._broken(f"connection closed during {where}")
                raise ServerUnavailableError(
                    f"{where}: the connection closed mid-call (server crashed or went away)"
                ) from None
            if code == REQUEST_TIMEOUT:
                self._suspect = True
                self._cancel_remote(session, request_id, "deadline exceeded")
                raise DeadlineExceededError(f"{where} did not answer in time") from None
            raise ProviderError(f"{where} failed: {err.error.message}") from None
        except _SESSION_GONE:
            raise
        except Exception as err:
            self._suspect = True
            raise ProviderError(f"{where} failed: {_describe(err)}") from None
        finally:
            self.status.in_flight -= 1
            self._last_used = time.monotonic()

    def _cancel_remote(self, session: ClientSession, request_id: Any, reason: str) -> None:
        """Send ``notifications/cancelled`` in the background (the caller may be cancelled)."""
        if request_id is None or session is not self._session:
            return
        note = ClientNotification(
            CancelledNotification(
                params=CancelledNotificationParams(requestId=request_id, reason=reason)
            )
        )

        async def send() -> None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await session.send_notification(note)

        task = asyncio.create_task(send(), name=f"mcp-cancel:{self.name}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)


async def _finish(task: asyncio.Task[Any]) -> None:
    """Wait for a task to end by itself for a few seconds, then cancel it."""
    if task.done():
        return
    try:
        await asyncio.wait_for(asyncio.shield(task), STOP_GRACE_S)
    except (TimeoutError, Exception):
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


class SessionPool:
    """The MCP sessions of a run: opened together, used concurrently, closed together."""

    def __init__(
        self, servers: dict[str, ServerConfig], settings: PoolConfig | None = None
    ) -> None:
        self.settings = settings or PoolConfig()
        self._sessions = {
            name: _ServerSession(name, cfg, self.settings)
            for name, cfg in servers.items()
            if cfg.enabled
        }
        self._health: asyncio.Task[None] | None = None

    async def open(self) -> SessionPool:
        await asyncio.gather(*(s.open() for s in self._sessions.values()))
        if self.settings.health_interval_ms > 0 and self._sessions:
            self._health = asyncio.create_task(self._health_loop(), name="mcp-health")
        return self

    async def __aenter__(self) -> SessionPool:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._health is not None:
            self._health.cancel()
            with contextlib.suppress(BaseException):
                await self._health
        await asyncio.gather(*(s.close() for s in self._sessions.values()))

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.health_interval_ms / 1000)
            await self.check_health()

    async def check_health(self) -> dict[str, bool]:
        """Ping idle sessions, start re-opening broken ones; which servers are up now."""
        names = list(self._sessions)
        results: list[Awaitable[bool]] = [self._sessions[n].check() for n in names]
        return dict(zip(names, await asyncio.gather(*results), strict=True))

    def status(self, server: str) -> ServerStatus:
        if server not in self._sessions:
            return ServerStatus(server, error="not configured or disabled")
        return self._sessions[server].status

    def statuses(self) -> dict[str, ServerStatus]:
        return {name: s.status for name, s in self._sessions.items()}

    def is_up(self, server: str) -> bool:
        return self.status(server).up

    async def opened(self, server: str) -> bool:
        """Wait for an open (or re-open) of the server's session in progress; is it up?"""
        session = self._sessions.get(server)
        if session is None:
            return False
        if session._opening is not None and not session._opening.done():
            await asyncio.shield(session._opening)
        return session.status.up

    async def call_tool(
        self,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        timeout_s: float,
        *,
        timing: CallTiming | None = None,
        queue_timeout_s: float | None = None,
    ) -> CallToolResult:
        """Call a tool on the server's session, bounded by ``timeout_s`` in all (waiting for a
        slot, re-opening, the call itself).

        Callers outside :mod:`hybridmcp.capabilities.gate` must not use this directly: every
        external call passes the gate.
        """
        if server not in self._sessions:
            raise ServerUnavailableError(f"MCP server {server!r} is not configured")
        return await self._sessions[server].call(tool, arguments, timeout_s, timing)

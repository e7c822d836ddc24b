"""Long-lived MCP sessions, one per server, shared by every call of a run.

Opening a stdio session starts a process (about 0.6 s here); a call on an open session costs
2-3 ms. So each server gets one session, opened once and held until :meth:`SessionPool.close`.

anyio's cancel scopes must be exited by the task that entered them, while LangGraph runs each
node in a task of its own. Each session therefore lives in an *owner task* that enters the
transport's context, publishes the session, and waits to be told to stop; other tasks only
send requests through the session's streams.

Queue time is not the provider's time. A call first *queues* (a slot of the server's
``max_concurrency``, then a live session, re-opened if need be), bounded by ``queue_timeout_s``
(``max_queue_wait_ms``); past it :class:`BackPressureError`, the request never sent. The
:class:`~hybridmcp.capabilities.timing.CallTiming` is marked *sent* when the request is written,
and ``timeout_s`` runs from that moment.

``max_concurrency`` stays at 8 by measurement: 5,000 concurrent ``get_current_time`` calls to
one ``mcp-server-time`` over stdio (2 cores) were all answered at every setting from 1 to 1,024,
at 180-320 calls/s whatever the setting (the server is the bottleneck), while the provider
latency grew with the calls in flight at the server: p50/p99 1.8/13 ms at 1, 33/92 ms at 8,
178/333 ms at 32, 3.7/6.7 s at 1,024. More slots only move the queue into the server, where it
is counted as the provider's time; the 5,000th call queued here for about 20 s, well within
``max_queue_wait_ms``.

Abandon, never cancel. A caller that stops waiting (a hedge that lost, a straggler cut, the
deadline) does not cancel the request inside the MCP client: the request runs in a task the pool
owns, its answer discarded, until it ends by itself or by the client's read timeout
(``STRAGGLER_GRACE_S`` after the deadline); it holds its slot until then. Measured here
(fault server over stdio, mcp 1.30, anyio 4.16; batches of 60 concurrent calls to ``sleep``
of 0-10 ms, a third of the callers cancelled at random points):

- caller cancelled inside ``ClientSession.call_tool``: the session broke in 5 of 5 trials
  with ``notifications/cancelled`` (after 1, 1, 2, 5 batches, once at exit; a rerun: 4, 4, 7),
  the server's session ending as described below; and in 5 of 5 without, the client's own
  session ending (its stdio transport fails with ``BrokenResourceError`` writing to the
  session's closed read stream; no error is logged by the session, the exact race inside the
  SDK was not pinned down);
- abandoned, no notification: 0 broken in 3 trials of 200 batches (36,000 calls); through the
  pool, 0 broken (``opens == 1``) in each of 5 runs of the stress test (10,000 calls, 3,000
  callers cancelled at random points);
- abandoned, with ``notifications/cancelled``: the *server* ends its session: 1 trial in 11 of
  the bare-session test, and 5 of 5 runs of the pool's stress test, each in its first batch of
  250. In mcp 1.30's server, ``RequestResponder.cancel()`` writes a "Request cancelled"
  response from the session's receive loop, and that loop is cancelled in the write; the
  session's streams close and the stdio server exits (upstream: python-sdk #2416, #2480).
  Hence ``cancel_notifications`` is off by default: an abandoned request costs the server the
  rest of its work (bounded by the deadline plus ``STRAGGLER_GRACE_S``) and holds its slot that
  long, never the session that every run shares.

Resilience, per server:

- **deadlines**: every call runs under a deadline of its own (the MCP client's read timeout
  alone does not end a call whose streamable-HTTP server died mid-call); a missed deadline marks
  the session *suspect*;
- **health**: a suspect session is pinged before its next call, and idle sessions are pinged
  every ``health_interval_ms``; a session that fails a ping, whose connection closed, or whose
  transport died is *broken*;
- **replacement**: a broken session is retired and re-opened at once (one open shared by all
  the callers waiting for it); calls still queued wait for the new one, and each replacement is
  logged (logger ``hybridmcp.pool``) and counted (``ServerStatus.replacements``). A request that
  could not even be written to a dead session is sent again on the new one; a request in flight
  when the connection died fails (the server may have acted on it) and the coordinator
  reallocates it. Failed opens back off exponentially (``reopen_backoff_ms`` doubling up to
  ``reopen_backoff_max_ms``), and calls during the backoff fail fast with
  :class:`ServerUnavailableError`;
- **errors**: JSON-RPC -32602 (invalid params) is the request's fault (:class:`RequestError`),
  never the provider's;
- **clean shutdown**: :meth:`SessionPool.close` stops every request task and owner task (stdio
  processes are ended by their transport), waiting at most a few seconds for each. Every
  caller still queued or in flight then, or calling after, gets :class:`CoordinatorClosed`
  (never held against the server), a request cancelled before its task even ran included.

What a server sends the client besides answers (log messages, progress, roots, elicitation and
sampling requests) is answered by the session's
:class:`~hybridmcp.capabilities.client_features.ServerFeatures`; a call's progress and the
server's questions during it reach the caller through the call's ``scope``. Progress may move
a call's deadline (``extend_deadline_on_progress``), never past ``max_call_ms`` from sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import shutil
import sys
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TextIO, cast

import anyio
import httpx
import pydantic
from anyio.abc import ObjectReceiveStream
from anyio.streams.memory import MemoryObjectReceiveStream
from langchain_mcp_adapters.sessions import (
    DEFAULT_HTTP_TIMEOUT,
    DEFAULT_SSE_READ_TIMEOUT,
    create_session,
)
from mcp import ClientSession, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.shared.exceptions import McpError
from mcp.types import (
    CONNECTION_CLOSED,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    CallToolResult,
    CancelledNotification,
    CancelledNotificationParams,
    ClientNotification,
    ClientRequest,
    Implementation,
    ListToolsRequest,
    PaginatedRequestParams,
    Result,
    Tool,
)

from hybridmcp.capabilities.bounded_http import AnswerLost, bounded_client_factory
from hybridmcp.capabilities.client_features import (
    CallScope,
    ClientHooks,
    ElicitationRequired,
    ServerFeatures,
)
from hybridmcp.capabilities.schemas import checked_validator
from hybridmcp.capabilities.stdio import LineFramer, stdio_client
from hybridmcp.capabilities.timing import CallTiming
from hybridmcp.config import HttpServer, PoolConfig, ServerConfig, StdioServer
from hybridmcp.errors import (
    BackPressureError,
    CoordinatorClosed,
    DeadlineExceededError,
    HybridMCPError,
    ProviderError,
    RequestError,
    ServerUnavailableError,
)
from hybridmcp.oauth import OAuthSessions, auth_problem, refused_mid_call

log = logging.getLogger("hybridmcp.pool")

REQUEST_TIMEOUT = 408
"""The JSON-RPC error code the MCP client raises when its own read timeout fires."""
STOP_GRACE_S = 5.0
"""How long a stopping owner task may take (a stdio transport waits 2 s for its process)."""
STRAGGLER_GRACE_S = 2.0
REARM_MIN_S = 0.005
"""A deadline timer that fires with less than this of the provider's time left expires."""
"""How long an abandoned request may outlive its deadline before the MCP client's own read
timeout ends it (a server that answers neither the call nor ``notifications/cancelled``)."""
_SESSION_GONE = (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream)
SESSION_TERMINATED = (32600, -32600)
"""The code the SDK's streamable HTTP client gives an HTTP 404 on a session's request (mcp
1.x: 32600, sic; JSON-RPC's invalid request is -32600)."""


def resolve_command(command: str) -> str:
    """Find a stdio server's command on PATH, or beside the running interpreter.

    A project installed in a virtual environment that is not activated still finds the console
    scripts it installed (``.venv/bin/mcp-server-time``). It reads the file system: call it off
    the event loop (the pool does, in a worker thread).
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
    """The ``langchain-mcp-adapters`` connection for a configured server: its transport's
    keys (``headers`` on every HTTP request; ``timeout`` and ``sse_read_timeout`` in seconds)
    and the ``ClientSession`` arguments of ``session_kwargs``. It opens the server with
    ``MultiServerMCPClient`` as it is; the pool adds what only its own transports take (the
    answer size bound, OAuth, its client features)."""
    conn: dict[str, Any]
    if isinstance(server, StdioServer):
        conn = {
            "transport": "stdio",
            "command": resolve_command(server.command),
            "args": list(server.args),
        }
        optional: dict[str, Any] = {
            "env": dict(server.env) if server.env is not None else None,
            "cwd": server.cwd,
            "encoding": server.encoding,
            "encoding_error_handler": server.encoding_error_handler,
        }
    else:
        assert isinstance(server, HttpServer)
        conn = {"transport": server.transport, "url": server.url}
        optional = {
            "headers": dict(server.headers) if server.headers else None,
            "timeout": server.timeout,
            "sse_read_timeout": server.sse_read_timeout,
        }
        if server.transport == "streamable_http":
            optional["terminate_on_close"] = server.terminate_on_close
    conn |= {key: value for key, value in optional.items() if value is not None}
    session = server.session_kwargs
    if session is not None:
        kwargs: dict[str, Any] = {}
        if session.read_timeout_seconds is not None:
            kwargs["read_timeout_seconds"] = timedelta(seconds=session.read_timeout_seconds)
        if session.client_info is not None:
            kwargs["client_info"] = Implementation(
                name=session.client_info.name, version=session.client_info.version
            )
        if kwargs:
            conn["session_kwargs"] = kwargs
    return conn


_BRACED_VAR = re.compile(r"\$\{([^}]+)\}")


def _from_environ(match: re.Match[str]) -> str:
    return os.environ.get(match.group(1), match.group(0))


PROGRESS_MESSAGE_CHARS = 500
"""The most of a server's progress message a progress event keeps (a server may send
megabytes, each time)."""


class _WatchedStream(ObjectReceiveStream[Any]):
    """A session's read stream that says when it ended. An SSE server's event stream that
    ends (the server restarted, or dropped the client) closes it, and the session never
    says so: its calls would go on being posted to an endpoint that no longer knows them."""

    def __init__(self, inner: ObjectReceiveStream[Any], ended: asyncio.Event) -> None:
        self._inner = inner
        self._ended = ended

    async def receive(self) -> Any:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self._ended.set()
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()


@contextlib.asynccontextmanager
async def _sse_session(
    connection: dict[str, Any], ended: asyncio.Event
) -> AsyncIterator[ClientSession]:
    """langchain-mcp-adapters' SSE session, with its read stream watched."""
    factory = connection.get("httpx_client_factory")
    async with (
        sse_client(
            connection["url"],
            connection.get("headers"),
            connection.get("timeout", DEFAULT_HTTP_TIMEOUT),
            connection.get("sse_read_timeout", DEFAULT_SSE_READ_TIMEOUT),
            auth=connection.get("auth"),
            **({"httpx_client_factory": factory} if factory is not None else {}),
        ) as (read, write),
        ClientSession(
            # the session only receives from it, as from any anyio object stream
            cast("MemoryObjectReceiveStream[Any]", _WatchedStream(read, ended)),
            write,
            **(connection.get("session_kwargs") or {}),
        ) as session,
    ):
        yield session


@contextlib.asynccontextmanager
async def _session_for(
    connection: dict[str, Any],
    server_log: str | None,
    ended: asyncio.Event,
    framer: LineFramer | None = None,
) -> AsyncIterator[ClientSession]:
    """A session on the connection. A stdio server runs under hybridmcp's own transport
    (:mod:`hybridmcp.capabilities.stdio`: lines framed in linear time and bounded by
    ``max_message_bytes``), its stderr appended to ``server_log`` when set (else the
    coordinator's own stderr). ``ended`` is set when an SSE server's event stream ends."""
    if connection["transport"] == "sse":
        async with _sse_session(connection, ended) as session:
            yield session
        return
    if connection["transport"] != "stdio":
        async with create_session(connection) as session:  # type: ignore[arg-type]
            yield session
        return
    keys = ("command", "args", "env", "cwd", "encoding", "encoding_error_handler")
    given = {k: connection[k] for k in keys if k in connection}
    if given.get("env") is not None:  # ${VAR} expanded, as langchain-mcp-adapters does
        given["env"] = {k: _BRACED_VAR.sub(_from_environ, v) for k, v in given["env"].items()}
    params = StdioServerParameters(**given)
    log: TextIO = sys.stderr
    if server_log is not None:
        log = await asyncio.to_thread(open, server_log, "a", encoding="utf-8", buffering=1)
    try:
        async with (
            stdio_client(
                params, log, max_bytes=connection["max_message_bytes"], framer=framer
            ) as streams,
            ClientSession(*streams, **(connection.get("session_kwargs") or {})) as session,
        ):
            yield session
    finally:
        if log is not sys.stderr:
            log.close()


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
    """Requests sent and not yet ended (abandoned ones included: they hold their slot)."""
    abandoned: int = 0
    """Requests whose caller stopped waiting (cancelled, or past the deadline) while in flight."""
    replacements: int = 0
    """Sessions found broken and replaced; never held against the server's record."""

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
            "replacements": self.replacements,
            "in_flight": self.in_flight,
            "abandoned": self.abandoned,
        }


_DESCRIBED_CHARS = 300
_LINK_LINES = ("For more information check:", "For further information visit")
"""Lines of httpx's and pydantic's messages that only link to their documentation."""


def _innermost(err: BaseException) -> BaseException:
    """The first error inside the exception groups anyio raises (``err`` when it is none)."""
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    return err


def _describe(err: BaseException) -> str:
    """A one-line description, unwrapping the exception groups anyio raises: a message that
    is not MCP (pydantic's validation of what the server sent) names the MCP type and the
    first fields at fault, and no message spans lines or links to a library's docs."""
    err = _innermost(err)
    if isinstance(err, pydantic.ValidationError):
        faults = "; ".join(_faults(err.errors())[:3])
        text = f"the server's {err.title} is not valid MCP ({faults})"
    else:
        text = str(err) or type(err).__name__
    lines = [line for line in text.splitlines() if not line.strip().startswith(_LINK_LINES)]
    text = " ".join(" ".join(lines).split())
    if len(text) > _DESCRIBED_CHARS:
        text = text[: _DESCRIBED_CHARS - 1] + "…"
    return f"{type(err).__name__}: {text}" if text != type(err).__name__ else text


def _faults(errors: list[Any]) -> list[str]:
    """Each fault as ``where: what``. A value whose ``type`` is none of a union's (a content
    part of a type MCP does not have) is one fault naming the types MCP has, not one per
    field of each type it is not."""
    kinds: dict[tuple[Any, ...], list[str]] = {}
    for e in errors:  # a union's variants each refusing the value's type: (..., Variant, "type")
        if e["type"] == "literal_error" and len(e["loc"]) >= 2 and e["loc"][-1] == "type":
            kinds.setdefault(tuple(e["loc"][:-2]), []).append(str(e["ctx"]["expected"]))
    faults = []
    for where, expected in kinds.items():
        if len(expected) > 1:
            given = next(e["input"] for e in errors if tuple(e["loc"][:-2]) == where)
            faults.append(
                f"{'.'.join(map(str, where)) or '<root>'}: type {str(given)[:40]!r} is not "
                f"one MCP has ({', '.join(expected)})"
            )
    unions = [w for w, expected in kinds.items() if len(expected) > 1]
    for e in errors:
        loc = tuple(e["loc"])
        if not any(loc[: len(w)] == w for w in unions):
            faults.append(f"{'.'.join(str(p) for p in loc) or '<root>'}: {e['msg']}")
    return faults


def _open_error(
    name: str,
    config: ServerConfig,
    err: BaseException,
    *,
    handshake: bool = False,
    server_log: str | None = None,
) -> str:
    """Why a session did not open: a server that needs the user's authorization says so, with
    the command to run; a stdio server whose process ended (or closed its stdout) during the
    ``handshake`` says so, and where its stderr went."""
    if problem := auth_problem(name, config, err):
        return problem
    if handshake and isinstance(config, StdioServer) and _closed(err):
        where = f"; its stderr is in {server_log}" if server_log else ""
        return f"the process exited or closed its stdout before answering the MCP handshake{where}"
    if handshake and isinstance(config, HttpServer) and (hint := _endpoint_hint(config, err)):
        return hint
    return _describe(err)


def _endpoint_hint(config: HttpServer, err: BaseException) -> str | None:
    """The handshake's answer when the URL is not the server's endpoint of that transport: the
    server's base URL (the SDK reads streamable HTTP's 404 as "Session terminated"), or the
    other transport's endpoint. None when the error says nothing of that."""
    err = _innermost(err)
    streamable = config.transport == "streamable_http"
    if streamable and isinstance(err, McpError) and err.error.message == "Session terminated":
        return (
            f"HTTP 404 Not Found: no MCP endpoint at {config.url} "
            "(streamable HTTP servers usually serve /mcp)"
        )
    if not isinstance(err, httpx.HTTPStatusError):
        return None
    status = err.response.status_code
    if streamable and status == 405:
        return f"{_describe(err)}: an SSE endpoint? give the entry type: sse"
    if not streamable and status == 404:
        return f"{_describe(err)} (SSE servers usually serve /sse)"
    if not streamable and status in (400, 405, 406):
        return f"{_describe(err)}: a streamable HTTP endpoint? give the entry type: http"
    return None


MAX_TOOL_PAGES = 1000
"""Most pages of ``tools/list`` read from one server (each page a round trip)."""


class ListingError(Exception):
    """A server's ``tools/list`` could not be read whole."""


class _ToolsPage(Result):
    """A page of ``tools/list`` whose tools are read one by one (:func:`list_all_tools`)."""

    model_config = pydantic.ConfigDict(extra="allow", title="ListToolsResult")
    tools: list[Any]
    nextCursor: str | None = None


@dataclass
class Listing:
    """A server's tools, and the entries of its list that are not MCP tools, each as one line
    (``tools/list entry 3 (name 5): ...``)."""

    tools: list[Tool]
    left_out: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    """Tools whose ``outputSchema`` is not valid JSON Schema, each with why: their answers
    are taken without that check (the MCP client would refuse every one)."""


async def list_all_tools(session: ClientSession) -> Listing:
    """Every tool the server lists, following ``nextCursor`` page after page. A listing that
    cannot be read whole is :class:`ListingError` naming the page: a page that fails, a cursor
    given before (the pages would loop for ever), more than :data:`MAX_TOOL_PAGES` pages. A
    catalogue in part would make a tool of a missing page an unknown skill.

    Each entry is read on its own: one that is not an MCP tool (no input schema, a name that
    is not a string) is left out, named in :attr:`Listing.left_out`, and the server's other
    tools are kept. A server that does not announce the ``tools`` capability and has no
    ``tools/list`` (prompts or resources only) has no tools. The MCP client's record of
    output schemas, which it checks answers against, is kept as its own listing would keep it
    (else it would list the tools again, strictly, before every call); an output schema that
    is not valid JSON Schema is recorded as none (:attr:`Listing.unchecked`), where the
    client would refuse every answer of the tool, whose work is done."""
    listing = Listing([])
    cursors: set[str] = set()
    cursor: str | None = None
    for page in range(1, MAX_TOOL_PAGES + 1):
        try:
            params = None if cursor is None else PaginatedRequestParams(cursor=cursor)
            request = ClientRequest(ListToolsRequest(params=params))
            listed = await session.send_request(request, _ToolsPage)
        except McpError as err:
            if page == 1 and err.error.code == METHOD_NOT_FOUND and not _offers_tools(session):
                return listing  # a server of prompts or resources only: up, with no tools
            if page == 1:
                raise
            raise ListingError(
                f"tools/list page {page} (cursor {_clip(cursor)}) failed: {_describe(err)}"
            ) from None
        for raw in listed.tools:
            entry = len(listing.tools) + len(listing.left_out) + 1
            try:
                tool = Tool.model_validate(raw)
            except pydantic.ValidationError as err:
                name = raw.get("name") if isinstance(raw, dict) else None
                listing.left_out.append(
                    f"tools/list entry {entry} (name {name!r:.80}): {_describe(err)}"
                )
                continue
            listing.tools.append(tool)
            output = tool.outputSchema
            if output is not None and (why := _unusable(output)) is not None:
                listing.unchecked.append(f"tool {tool.name!r:.80}: {why}")
                output = None
            schemas = getattr(session, "_tool_output_schemas", None)
            if isinstance(schemas, dict):
                schemas[tool.name] = output
        cursor = listed.nextCursor
        if not cursor:
            return listing
        if cursor in cursors:
            raise ListingError(
                f"tools/list page {page} gave the cursor {_clip(cursor)} of an earlier page: "
                "the pages loop"
            )
        cursors.add(cursor)
    raise ListingError(f"tools/list has more than {MAX_TOOL_PAGES} pages")


def _unusable(schema: dict[str, Any]) -> str | None:
    """Why an output schema cannot check anything (it is not valid JSON Schema), or None."""
    try:
        checked_validator(schema)
    except Exception as err:  # SchemaError, or a schema of a shape no draft has
        return " ".join(str(getattr(err, "message", err)).split())[:200] or type(err).__name__
    return None


def _offers_tools(session: ClientSession) -> bool:
    """Whether the server announced the ``tools`` capability (or announced nothing)."""
    capabilities = session.get_server_capabilities()
    return capabilities is None or capabilities.tools is not None


def _left_out(server: str, listing: Listing) -> list[Tool]:
    """The listing's tools, once each entry left out is logged (one warning line each)."""
    for why in listing.left_out:
        log.warning("MCP server %r: not an MCP tool, left out: %s", server, why)
    for why in listing.unchecked:
        log.warning(
            "MCP server %r: outputSchema not valid JSON Schema, answers not checked against it: %s",
            server,
            why,
        )
    return listing.tools


def _clip(cursor: str | None) -> str:
    text = repr(cursor)
    return text if len(text) <= 60 else text[:59] + "…"


async def _first_of(*events: asyncio.Event) -> None:
    """Wait until one of ``events`` is set."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


def _session_unknown(err: McpError) -> bool:
    """A streamable HTTP server answered 404 to a request on the session: it does not know the
    session (restarted, or it expired it), and handled nothing; the MCP specification has the
    client start a new session. The SDK turns that answer into this error."""
    return err.error.code in SESSION_TERMINATED and err.error.message == "Session terminated"


def _lost(err: McpError) -> bool:
    """The MCP client's own error for a request whose connection ended (the session gives
    each request still waiting this when its stream closes). Not every error of its code: a
    server may answer with ``-32000`` itself, the first code of JSON-RPC's range for server
    errors, and then the connection is alive and the answer is the server's."""
    error = err.error
    return (
        error.code == CONNECTION_CLOSED and error.message == "Connection closed" and not error.data
    )


def _closed(err: BaseException) -> bool:
    """The connection ended under the session (anyio's exception groups unwrapped)."""
    err = _innermost(err)
    if isinstance(err, McpError):
        return _lost(err)
    return isinstance(err, _SESSION_GONE)


class _ServerSession:
    """One server's session (re-opened as needed), owned by a dedicated task."""

    def __init__(
        self,
        name: str,
        config: ServerConfig,
        settings: PoolConfig,
        auth: httpx.Auth | None = None,
        hooks: ClientHooks | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.settings = settings
        self.auth = auth
        """The server's OAuth (held across re-opens, so its tokens are too)."""
        self.hooks = hooks or ClientHooks()
        self.features = ServerFeatures(
            name, config, self._sole_scope, self.hooks, self._scopes_in_flight
        )
        self.features.on_tools_changed = self._tools_changed
        self.status = ServerStatus(name)
        self._session: ClientSession | None = None
        self._owner: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._opening: asyncio.Task[None] | None = None
        self._retired: set[asyncio.Task[None]] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._relisting: asyncio.Task[None] | None = None
        self._relist_again = False
        self._requests: set[asyncio.Task[None]] = set()
        self._in_flight: set[_Call] = set()
        self._slots = asyncio.Semaphore(config.max_concurrency)
        self._call_name = f"mcp-call:{name}"
        self._suspect = False
        self._listing = False
        """The start-up under way has its ``initialize`` answered and waits for ``tools/list``."""
        self._closed = False
        self._last_used = time.monotonic()
        self._answered_at = 0.0
        """``time.perf_counter()`` when a request on the session last ended."""
        self._framer: LineFramer | None = None
        """The stdio session's line framer (what a server left mid-line is in it)."""
        self._starting: asyncio.Event | None = None
        """The start-up under way waits on it (set when the session is ready, or cannot be)."""
        self._start_refused: Exception | None = None
        """What the transport refused during that start-up: the start-up has failed."""

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
        self.features.unreadable = None
        self._listing = False
        self._starting, self._start_refused = ready, None
        try:
            await asyncio.wait_for(ready.wait(), timeout)
        except TimeoutError:
            got = self.features.unreadable  # what came instead of an answer, if anything
            self.status.error = f"did not start within {timeout:g} s" + (
                f" (it sent what is not JSON-RPC: {_describe(got)})"
                if got is not None
                else " (it answered initialize, never tools/list)"
                if self._listing
                else ""
            )
            self._retire()
            owner.cancel()  # a hung start-up has nothing to close gracefully: end it now
        finally:
            self._starting = None
        if (refused := self._start_refused) is not None:  # the transport cannot go on
            self._start_refused = None
            self.status.error = _describe(refused)
            self._retire()
            owner.cancel()
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
        published = False
        try:
            # Finding the command reads the file system: never on the event loop.
            connection = await asyncio.to_thread(to_connection, self.config)
            if self.auth is not None:
                connection["auth"] = self.auth
            opened: list[ClientSession] = []  # the session, once there is one
            if isinstance(self.config, HttpServer):  # responses bounded like stdio lines
                sse = self.config.transport == "sse"
                connection["httpx_client_factory"] = bounded_client_factory(
                    self.config.max_message_bytes,
                    functools.partial(self._refused, me),  # heard only while it is current
                    functools.partial(self._undelivered, opened),
                    self.config.url if sse else None,
                )
            else:  # our own stdio transport (:func:`_session_for`)
                connection["max_message_bytes"] = self.config.max_message_bytes
            # The configured session_kwargs (a client_info of the user's own) win over ours.
            connection["session_kwargs"] = {
                **self.features.session_kwargs(),
                **(connection.get("session_kwargs") or {}),
            }
            stream_ended = asyncio.Event()
            framer = None
            if isinstance(self.config, StdioServer):  # read at a deadline: a line left open?
                framer = self._framer = LineFramer(self.config.max_message_bytes)
            async with _session_for(
                connection, self.settings.server_log, stream_ended, framer
            ) as session:
                opened.append(session)
                self.features.read_requests(session)
                await session.initialize()
                self._listing = self._owner is me
                listed = await list_all_tools(session)
                self._listing = False
                if self._owner is me:
                    self._session = session
                    self.status.tools = _left_out(self.name, listed)
                    self.status.up = True
                    self.status.error = None
                    self.status.opened_at = time.time()
                    published = True
                    self._announce()  # a server up again (or up at last) may list other tools
                ready.set()
                await _first_of(stop, stream_ended)
                if not stop.is_set() and self._owner is me:
                    self.status.error = "the server closed its event stream"
        except asyncio.CancelledError:
            raise
        except BaseException as err:
            if self._owner is me:
                self.status.error = _open_error(
                    self.name,
                    self.config,
                    err,
                    handshake=not published,  # not a session that ended later
                    server_log=self.settings.server_log,
                )
        finally:
            if self._owner is me:
                ended, self._session = self._session, None
                self.status.up = False
                if published and not stop.is_set():  # ended by itself: replace it
                    self._fail_in_flight(ended, self.status.error or "transport closed")
                    self._broken(f"session ended: {self.status.error or 'transport closed'}")
            ready.set()

    def _undelivered(self, opened: list[ClientSession], request_id: Any) -> None:
        """The server refused the connection a request was to be POSTed on: that call was
        never delivered, whatever the session's end makes of it."""
        for call in self._in_flight:
            if opened and call.session is opened[0] and call.request_id == request_id:
                call.undelivered = True

    def _not_delivered(self, call: _Call, why: str) -> ServerUnavailableError:
        """The error of a call whose request never reached the server: never sent."""
        call.timing.mark_unsent()
        return ServerUnavailableError(
            f"{self.name}/{call.tool}: MCP server {self.name!r} is not available ({why}); "
            "the request was not delivered"
        )

    def _refused(self, owner: asyncio.Task[None] | None, err: Exception) -> None:
        """The HTTP transport refused what the server sent (too long, or an SSE endpoint on
        another origin), or lost it (the connection broke mid-answer), an error the MCP SDK
        would leave unheard: a start-up under way fails now, and a call whose answer it was
        fails now, not at its deadline. ``owner``: the task of the session whose transport it
        was; one already retired changes nothing."""
        self.features.on_refused(err)
        if owner is not self._owner:
            return
        starting = self._starting
        if starting is not None and not starting.is_set():
            self._start_refused = err
            starting.set()
            return
        request_id = getattr(err, "answering", None)
        if request_id is None:
            sse = isinstance(self.config, HttpServer) and self.config.transport == "sse"
            if sse and self._session is not None:  # its one stream of answers is gone
                if isinstance(err, AnswerLost):  # the message: how httpx saw it break
                    why = f"its event stream broke: {' '.join(str(err).split())[:200]}"
                else:
                    why = f"its event stream was refused: {_describe(err)}"
                self._broken(why, self._session)
            return
        for call in self._in_flight:
            if call.request_id == request_id and call.session is self._session:
                self._suspect = True  # pinged before the next call: replaced if it is gone
                where = f"{self.name}/{call.tool}"
                if isinstance(err, AnswerLost):
                    failed: Exception = ServerUnavailableError(
                        f"{where}: the connection closed mid-call (server crashed or went "
                        f"away: {' '.join(str(err).split())[:200]})"
                    )
                else:
                    failed = ProviderError(f"{where} failed: {_describe(err)}")
                _settle(call, failed)
                self._abandon(call, "its answer was refused")  # its request runs out alone
                return

    def _fail_in_flight(self, session: ClientSession | None, why: str) -> None:
        """The calls in flight on a session that ended by itself fail now, not at their
        deadline (their outcome is unknown: the server may have acted on them, unless their
        HTTP connection was refused)."""
        for call in [c for c in self._in_flight if c.session is session]:
            where = f"{self.name}/{call.tool}"
            if call.undelivered:
                _settle(call, self._not_delivered(call, why))
            elif why.startswith("needs authentication"):  # a step-up only a login can give
                _settle(call, ServerUnavailableError(f"{where}: MCP server {self.name!r} {why}"))
            else:
                _settle(
                    call, ServerUnavailableError(f"{where}: the connection closed mid-call ({why})")
                )

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

    def _broken(
        self, why: str, session: ClientSession | None = None, *, but: _Call | None = None
    ) -> None:
        """Retire a broken session and start its replacement now, so the next call finds it
        open (or opening). ``session``: the one the failure was seen on; a failure seen on a
        session already replaced changes nothing. The calls in flight on it fail now, their
        answers can no longer arrive; ``but`` the one that saw the failure (it settles itself:
        with its own error, or sent again on the new session when its request never left)."""
        if session is not None and session is not self._session:
            return
        retired = self._session
        if retired is not None:
            for call in [c for c in self._in_flight if c.session is retired and c is not but]:
                where = f"{self.name}/{call.tool}"
                _settle(
                    call,
                    ServerUnavailableError(
                        f"{where}: the connection closed mid-call (the session was replaced: "
                        f"{why}); the server may have acted on it"
                    ),
                )
        if self._owner is not None:
            self.status.replacements += 1
            log.warning(
                "MCP server %r: session broken (%s); replacing it (replacement %d)",
                self.name,
                why,
                self.status.replacements,
            )
        self.status.error = why
        self._retire()
        self.reopen_in_background()

    def _tools_changed(self) -> None:
        """The server said its tool list changed: list it again, apart from the session's
        reading of messages (which waits for this notification's handling to end, and would
        never read the listing's answer). One listing at a time: notifications that come
        while one runs are one more listing after it, however many (a server that sends
        thousands would otherwise have its tools listed, and the registry built, as often)."""
        if self._relisting is not None and not self._relisting.done():
            self._relist_again = True
            return
        task = asyncio.create_task(self._relists(), name=f"mcp-relist:{self.name}")
        self._relisting = task
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _relists(self) -> None:
        self._relist_again = True
        while self._relist_again:
            self._relist_again = False
            await self._relist()

    async def _relist(self) -> None:
        """The server's tools listed again, for the registry to take their annotations; a
        listing that fails or takes longer than a start-up may is logged and changes nothing."""
        session = self._session
        if session is None:
            return
        try:
            async with asyncio.timeout(self.config.startup_timeout_ms / 1000):
                listed = await list_all_tools(session)
        except Exception as err:
            log.warning(
                "MCP server %r: its tools changed and could not be listed again: %s",
                self.name,
                _describe(err) or type(err).__name__,
            )
            return
        if self._session is not session:  # replaced meanwhile: the new session listed them
            return
        self.status.tools = _left_out(self.name, listed)
        self._announce()

    def _announce(self) -> None:
        """Tell the registry the server's tools as last listed (once the pool's hooks are set:
        the first listing at start-up builds the registry)."""
        hook = self.hooks.tools_changed
        if hook is None:
            return
        task = asyncio.create_task(hook(self.name), name=f"mcp-tools-changed:{self.name}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        self._closed = True
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()
        for task in [*self._requests, *self._background]:
            task.cancel()
        self._retire()
        await asyncio.gather(
            *(_finish(t) for t in [*self._retired, *self._background, *self._requests])
        )

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
            self._broken(f"health check failed: {_describe(err) or 'no answer'}", session)
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
            raise self._closed_error()
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
            try:
                await asyncio.shield(self._opening)
            except asyncio.CancelledError:  # the open ended by the pool's close, not this caller
                task = asyncio.current_task()
                if self._closed and task is not None and not task.cancelling():
                    raise self._closed_error() from None
                raise
        if self._closed:
            raise self._closed_error()
        session = self._session
        if session is None:
            raise ServerUnavailableError(
                f"MCP server {self.name!r} is not available: {self.status.error or 'not open'}"
            )
        return session

    def _closed_error(self) -> CoordinatorClosed:
        return CoordinatorClosed(f"MCP server {self.name!r}: the session pool is closed")

    # -- calls ----------------------------------------------------------------------------------

    def _scopes_in_flight(self) -> list[CallScope]:
        """The scopes of every call in flight on the session."""
        return [call.scope for call in self._in_flight if call.scope is not None]

    def _sole_scope(self) -> CallScope | None:
        """The scope of the only call in flight: the call a server's request belongs to."""
        if len(self._in_flight) != 1:
            return None
        return next(iter(self._in_flight)).scope

    def _progressed(
        self, call: _Call, progress: float, total: float | None, message: str | None
    ) -> None:
        """A progress notification of ``call``: a progress event, and, where configured, a
        deadline restarted (never past ``max_call_ms`` from sending). Its message is the
        server's text in the run's events and state: kept to ``PROGRESS_MESSAGE_CHARS``."""
        if isinstance(message, str) and len(message) > PROGRESS_MESSAGE_CHARS:
            whole = len(message)
            message = f"{message[:PROGRESS_MESSAGE_CHARS]}... (cut: {whole:,} characters in all)"
        event = {"progress": progress, "total": total, "message": message}
        scope = call.scope
        if scope is not None:
            scope.progress, scope.notifications = event, scope.notifications + 1
            if scope.on_progress is not None:
                scope.on_progress(event)
        if not self.config.extend_deadline_on_progress or call.outcome.done():
            return
        loop = asyncio.get_running_loop()
        deadline = min(loop.time() + call.timeout_s, call.sent_at + self.config.max_call_ms / 1000)
        if call.timer is not None and deadline > call.deadline:
            call.timer.cancel()
            call.deadline = deadline
            call.timer = loop.call_at(deadline, self._expire, call)

    async def call(
        self,
        tool: str,
        arguments: dict[str, Any],
        timeout_s: float,
        timing: CallTiming,
        queue_timeout_s: float,
        meta: dict[str, Any] | None = None,
        scope: CallScope | None = None,
    ) -> CallToolResult:
        """Queue for a slot and a live session, then send; a caller that stops waiting (its
        cancellation, or the deadline) abandons the request instead of cancelling it."""
        try:
            session = await self._queue(tool, queue_timeout_s)
        except BaseException:
            timing.mark_ended()
            raise
        # From here the slot belongs to the request task: it releases it when the request ends.
        call = _Call(
            tool,
            arguments,
            timeout_s,
            timing,
            asyncio.get_running_loop().create_future(),
            meta,
            scope=scope,
        )
        request = asyncio.create_task(self._send(call, session), name=self._call_name)
        self._requests.add(request)
        request.add_done_callback(functools.partial(self._request_ended, call))
        try:
            # Awaited directly: the caller's cancellation cancels only this future (the
            # request task never awaits it), which is how the request learns it is abandoned.
            return await call.outcome
        except asyncio.CancelledError:
            timing.mark_ended()
            if call.outcome.cancelled():  # still in flight (or not even sent): abandon it
                self._abandon(call, "the caller cancelled the request")
            raise

    async def _queue(self, tool: str, queue_timeout_s: float) -> ClientSession:
        """A slot and a live session within ``queue_timeout_s``; the slot is held on return."""
        session = self._session
        if (
            session is not None
            and not self._slots.locked()
            and not self._suspect
            and not self._closed
            and self._alive()
        ):  # a free slot on a healthy session: nothing to wait for, so no timer to arm
            await self._slots.acquire()  # returns at once (not locked)
            return session
        try:
            async with asyncio.timeout(queue_timeout_s):
                await self._slots.acquire()
                try:
                    return await self._ensure()
                except BaseException:
                    self._slots.release()
                    raise
        except TimeoutError:
            raise BackPressureError(
                f"{self.name}/{tool}: no free slot or live session within "
                f"{queue_timeout_s * 1000:.0f} ms ({self.status.in_flight} calls in flight, "
                f"max_concurrency {self.config.max_concurrency}); the request was not sent. "
                "Raise the server's max_concurrency or resilience.pool.max_queue_wait_ms, "
                "or send fewer requests at once"
            ) from None

    def _request_ended(self, call: _Call, request: asyncio.Task[None]) -> None:
        """A request task ended; one cancelled (by the pool's close) before it even started
        still gives its slot back and its caller an answer."""
        self._requests.discard(request)
        if not call.started:
            self._slots.release()
            _settle(call, self._closed_error())

    async def _send(self, call: _Call, session: ClientSession) -> None:
        """The request task: one ``tools/call``, owned by the pool, never cancelled by a caller.

        Its answer settles ``call.outcome`` unless the caller gave up first, in which case it
        is discarded. The deadline runs from the moment the request is written; the MCP
        client's own read timeout, ``STRAGGLER_GRACE_S`` later, ends a request whose server
        answers neither the call nor its cancellation (twice the deadline, plus that).
        """
        call.started = True  # from here the task gives the slot back itself
        where = f"{self.name}/{call.tool}"
        loop = asyncio.get_running_loop()
        if call.outcome.done():  # the caller left before the request was written: skip it
            self._slots.release()
            return
        if call.scope is not None and call.scope.before_send is not None:
            try:
                await call.scope.before_send()
            except asyncio.CancelledError:  # the pool's own close
                self._slots.release()
                _settle(call, CoordinatorClosed(f"{where}: the session pool closed"))
                raise
            except Exception as err:  # not sent
                self._slots.release()
                _settle(call, err)
                return
            if call.outcome.done():  # the caller left meanwhile: not sent
                self._slots.release()
                return
        call.timing.last_answer = self._last_answer
        call.timing.mark_sent()
        self._in_flight.add(call)
        for other in self._in_flight:  # the load: most other calls in flight beside each one
            other.timing.in_flight = max(other.timing.in_flight or 0, len(self._in_flight) - 1)
        call.sent_at = loop.time()
        call.unreadable_before = self.features.unreadable_count
        call.deadline = deadline = call.sent_at + call.timeout_s
        call.timer = loop.call_at(deadline, self._expire, call)
        self.status.calls += 1
        self.status.in_flight += 1
        longest = (
            max(self.config.max_call_ms / 1000, call.timeout_s)
            if self.config.extend_deadline_on_progress
            else call.timeout_s
        )
        # A backstop for a server that answers neither the call nor its cancellation: late
        # enough that a deadline re-armed over the loop's lateness (see _expire) comes first.
        read_timeout = timedelta(seconds=2 * longest + STRAGGLER_GRACE_S)

        async def progressed(progress: float, total: float | None, message: str | None) -> None:
            self._progressed(call, progress, total, message)

        try:
            for attempt in (1, 2):
                # The id the session gives this request: read synchronously, just before it.
                call.session, call.request_id = session, getattr(session, "_request_id", None)
                try:
                    result = await session.call_tool(
                        call.tool,
                        call.arguments,
                        read_timeout_seconds=read_timeout,
                        progress_callback=progressed,
                        meta=call.meta,
                    )
                except (*_SESSION_GONE, McpError) as err:
                    # Nothing reached the server, or it did not know the session (a
                    # streamable HTTP server restarted since: HTTP 404, which the SDK reads as
                    # "Session terminated", and which it answers before acting on anything):
                    # safe to send again on a fresh session.
                    if isinstance(err, McpError) and not _session_unknown(err):
                        raise
                    why = (
                        "the server no longer knows the session (HTTP 404: restarted?)"
                        if isinstance(err, McpError)
                        else f"session closed: {_describe(err)}"
                    )
                    self._broken(why, session, but=call)
                    if attempt == 2 or call.outcome.done():
                        raise ServerUnavailableError(
                            f"{where}: the session closed and re-opening did not help"
                        ) from None
                    async with asyncio.timeout_at(deadline):
                        session = await self._ensure()
                    if isinstance(err, McpError):  # the refused request did reach the server
                        call.timing.resent += 1
                    continue
                question = call.scope.question if call.scope is not None else None
                _settle(call, ElicitationRequired(question) if question else result)
                return
        except asyncio.CancelledError:  # only the pool's own close cancels a request task
            _settle(call, CoordinatorClosed(f"{where}: the session pool closed mid-call"))
            raise
        except TimeoutError:  # no live session again before the deadline
            _settle(call, DeadlineExceededError(f"{where}: no live session before the deadline"))
        except Exception as err:
            _settle(call, self._call_error(where, call, err))
        finally:
            sent_at = call.timing.sent_at or 0.0  # the server answered nothing else since:
            call.timing.idle_from = max(sent_at, self._answered_at)
            self._answered_at = time.perf_counter()
            self._in_flight.discard(call)
            if call.timer is not None:
                call.timer.cancel()
            call.timing.mark_ended()
            self.status.in_flight -= 1
            self._last_used = time.monotonic()
            self._slots.release()

    def _last_answer(self) -> float:
        """When a request on the session last ended (``time.perf_counter()``)."""
        return self._answered_at

    def _call_error(self, where: str, call: _Call | None, err: Exception) -> Exception:
        """The project's error for a failed request (the session is marked as it deserves)."""
        if isinstance(err, HybridMCPError):
            return err
        if isinstance(err, RecursionError):  # the MCP client checking the answer's structure
            return ProviderError(
                f"{where} failed: its answer could not be checked against the tool's "
                "outputSchema (its references loop without end, or the answer nests deeper "
                "than can be checked)"
            )
        if not isinstance(err, McpError):
            self._suspect = True
            return ProviderError(f"{where} failed: {_describe(err)}")
        code = err.error.code
        if _lost(err):
            self._broken(
                f"connection closed during {where}", call.session if call else None, but=call
            )
            if call is not None and call.undelivered:
                return self._not_delivered(call, "it refused the connection")
            if why := refused_mid_call(self.auth):  # a step-up only a login can give
                return ServerUnavailableError(f"{where}: MCP server {self.name!r} {why}")
            return ServerUnavailableError(
                f"{where}: the connection closed mid-call (server crashed or went away)"
            )
        if code == REQUEST_TIMEOUT:
            self._suspect = True
            return DeadlineExceededError(f"{where} did not answer in time")
        if code == INVALID_PARAMS:
            return RequestError(f"{where} rejected the arguments: {err.error.message}")
        return ProviderError(f"{where} failed: {err.error.message}")

    def _expire(self, call: _Call) -> None:
        """The deadline (a timer, ``timeout_s`` after sending): the caller gets
        :class:`DeadlineExceededError` now; the request is abandoned, not cancelled.

        The deadline is the provider's time, like its latency: when the event loop ran late
        during the call (an answer may be waiting, unread, behind other work), the provider has
        not had ``timeout_s`` yet, and the timer is set again for what it has left."""
        if call.outcome.done():
            return
        left = (call.deadline - call.sent_at) - call.timing.since_sent_s()  # progress moves it
        if left > REARM_MIN_S:
            call.timer = asyncio.get_running_loop().call_later(left, self._expire, call)
            return
        call.timing.mark_ended()
        waited = f"within {call.timeout_s * 1000:.0f} ms"
        if call.deadline - call.sent_at > call.timeout_s + 1e-6:
            total_ms = (call.deadline - call.sent_at) * 1000
            waited += f" of its last progress ({total_ms:.0f} ms in all)"
        if self.features.unreadable_count > call.unreadable_before:
            got = self.features.unreadable
            waited += (
                f"; meanwhile it sent what answers no request: {_describe(got)}" if got else ""
            )
        framer = self._framer
        if framer is not None and framer.pending and call.session is self._session:
            waited += f"; it had written {framer.pending:,} bytes of a message, not ended"
        call.outcome.set_exception(
            DeadlineExceededError(f"{self.name}/{call.tool} did not answer {waited}")
        )
        self._suspect = True
        self._abandon(call, "deadline exceeded")

    def _abandon(self, call: _Call, reason: str) -> None:
        """The caller no longer wants the answer: tell the server it may stop (in the
        background), and let the request run out in its task, its answer discarded."""
        if call.timing.sent_at is None:  # never sent: _send will skip it
            return
        self.status.abandoned += 1
        session, request_id = call.session, call.request_id
        if not self.settings.cancel_notifications or request_id is None:
            return
        if session is None or session is not self._session:
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


@dataclass(eq=False)
class _Call:
    """One request on its way: what the caller awaits, and what identifies it on the wire."""

    tool: str
    arguments: dict[str, Any]
    timeout_s: float
    timing: CallTiming
    outcome: asyncio.Future[CallToolResult]
    meta: dict[str, Any] | None = None
    """The request's ``_meta`` (its idempotency key)."""
    session: ClientSession | None = None
    request_id: Any = None
    scope: CallScope | None = None
    """What the server's requests during the call are attributed to."""
    sent_at: float = 0.0
    """``loop.time()`` when the request was written."""
    deadline: float = 0.0
    """``loop.time()`` of the deadline (moved by progress where configured)."""
    timer: asyncio.TimerHandle | None = None
    unreadable_before: int = 0
    """The server's unreadable messages before this call was sent."""
    started: bool = False
    """Its request task has begun (and gives the slot back when it ends)."""
    undelivered: bool = False
    """Its HTTP connection was refused: the server never had the request."""


def _settle(call: _Call, answer: CallToolResult | Exception) -> None:
    """Give the caller its answer, unless it has already gone (the answer is discarded)."""
    if call.outcome.done():
        return
    call.timing.mark_ended()
    if isinstance(answer, Exception):
        call.outcome.set_exception(answer)
    else:
        call.outcome.set_result(answer)


async def _finish(task: asyncio.Task[Any]) -> None:
    """Wait for a task to end by itself for a few seconds, then cancel it."""
    if task.done():
        return
    try:
        await asyncio.wait_for(asyncio.shield(task), STOP_GRACE_S)
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if not task.cancelled() or (current is not None and current.cancelling()):
            raise  # this wait itself was cancelled: pass it on
        # the task was cancelled already (a start-up the close cancelled): it has ended
    except (TimeoutError, Exception):
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


class SessionPool:
    """The MCP sessions of a run: opened together, used concurrently, closed together."""

    def __init__(
        self,
        servers: dict[str, ServerConfig],
        settings: PoolConfig | None = None,
        *,
        oauth: OAuthSessions | None = None,
    ) -> None:
        self.settings = settings or PoolConfig()
        self.hooks = ClientHooks()
        """What the servers' requests reach beyond the pool (sampling), set once the gate
        exists."""
        self._sessions = {
            name: _ServerSession(
                name,
                cfg,
                self.settings,
                oauth.auth_for(name, cfg) if oauth else None,
                self.hooks,
            )
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
        meta: dict[str, Any] | None = None,
        scope: CallScope | None = None,
    ) -> CallToolResult:
        """Call a tool on the server's session; ``meta`` goes in the request's ``_meta``;
        ``scope`` receives the call's progress and answers the server's questions during it
        (:mod:`hybridmcp.capabilities.client_features`).

        Waiting for a slot and a live session is bounded by ``queue_timeout_s`` (default
        ``max_queue_wait_ms``; past it :class:`BackPressureError`, the request never sent).
        ``timeout_s`` bounds the call from the moment it is written (``timing.mark_sent()``).
        ``timing.sent_at`` stays ``None`` for a request that was never sent. A caller that is
        cancelled abandons the request (see the module docstring); the session survives.

        Raises :class:`RequestError` when the server rejects the arguments (JSON-RPC -32602),
        :class:`DeadlineExceededError`, :class:`ServerUnavailableError`, :class:`ProviderError`.

        Callers outside :mod:`hybridmcp.capabilities.gate` must not use this directly: every
        external call passes the gate.
        """
        timing = timing if timing is not None else CallTiming()
        if server not in self._sessions:
            timing.mark_ended()
            raise ServerUnavailableError(f"MCP server {server!r} is not configured")
        if queue_timeout_s is None:
            queue_timeout_s = self.settings.max_queue_wait_ms / 1000
        return await self._sessions[server].call(
            tool, arguments, timeout_s, timing, queue_timeout_s, meta, scope
        )

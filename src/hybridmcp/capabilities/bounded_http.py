"""HTTP clients for MCP sessions whose responses are bounded like a stdio server's lines.

httpx reads a JSON response whole, and an SSE parser gathers an event's lines until its blank
line: a server whose body never ends (or whose event never does) fills the memory at loopback
speed, about 1 GB in the 2 s of one call's deadline here, and the read goes on after the
caller gave up. Here a JSON body, or one event of an event stream, longer than ``max_bytes``
(the server's ``max_message_bytes``) ends with :class:`ServerMessageError`, never read
further. The SDK would hand that error to the session as something that answers no request,
leaving the call to its deadline; so the refusal is also told to ``refused``, with the id of
the request whose answer it was (the POST's JSON-RPC id), and the pool fails that call now.

An SSE server (the older transport) first names the endpoint its messages are posted to. The
SDK refuses one on another origin than the stream's, but while it is still waiting for that
event, so the error never reaches anyone and the start-up waits for its timeout. Here the
event is checked as it passes, by the SDK's rule, and refused the same way.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from mcp.shared._httpx_utils import MCP_DEFAULT_SSE_READ_TIMEOUT, MCP_DEFAULT_TIMEOUT

from hybridmcp.capabilities.stdio import ServerMessageError
from hybridmcp.errors import HybridMCPError

_EVENT_ENDS = (b"\n\n", b"\r\n\r\n", b"\r\r")
Refused = Callable[[Exception], None] | None
Undelivered = Callable[[Any], None] | None


class AnswerLost(HybridMCPError):
    """The connection broke while a response was under way (the message: how, as httpx
    said). ``answering``: the JSON-RPC id of the request it answered (None for an SSE
    server's own stream)."""

    def __init__(self, message: str, answering: Any = None) -> None:
        super().__init__(message)
        self.answering = answering


def describe_transport(err: httpx.TransportError) -> str:
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def _names_an_id(chunk: bytes) -> bool:
    """Does the chunk hold an event's ``id`` field (at a line's start; a field split across
    chunks is missed, which only makes a resumable stream's loss reported, once)?"""
    return chunk.startswith(b"id:") or b"\nid:" in chunk or b"\rid:" in chunk


def answering(request: httpx.Request) -> Any:
    """The JSON-RPC id of the request a POST carries (None for a notification, a batch, or
    anything else): the request a response to this POST answers."""
    if request.method != "POST":
        return None
    try:
        message = json.loads(request.content)
    except (ValueError, UnicodeDecodeError, httpx.RequestNotRead):
        return None
    return message.get("id") if isinstance(message, dict) and "method" in message else None


class EndpointCheck:
    """The first ``endpoint`` event of an SSE stream opened at ``url``, checked by the MCP
    SDK's rule: the endpoint (resolved against ``url``) must have its scheme and host:port.
    Pure: fed the stream's chunks; raises :class:`ServerMessageError` at a foreign one."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.done = False
        self._pending = b""  # the event under way, its line ends made ``\n``
        self._held = b""  # a ``\r`` at a chunk's end: half of a ``\r\n``, or a line end

    def feed(self, chunk: bytes) -> None:
        if self.done:
            return
        raw, self._held = self._held + chunk, b""
        if raw.endswith(b"\r"):
            raw, self._held = raw[:-1], b"\r"
        text = self._pending + raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *events, self._pending = text.split(b"\n\n")
        for event in events:
            name, data = _event(event)
            if name == "endpoint":
                self.done = True
                self._pending = b""
                self._check(data)
                return

    def _check(self, data: str) -> None:
        endpoint = urljoin(self.url, data)
        ours, theirs = urlsplit(self.url), urlsplit(endpoint)
        if (ours.scheme, ours.netloc) != (theirs.scheme, theirs.netloc):
            raise ServerMessageError(
                f"the SSE server named its message endpoint on another origin ({endpoint}); "
                f"the MCP client posts only to the stream's ({ours.scheme}://{ours.netloc}): "
                "give the URL the server names itself by, or have it name a path"
            )


def _event(block: bytes) -> tuple[str, str]:
    """An SSE event's type (``message`` when unnamed) and data, by the SSE rules."""
    name, data = "message", []
    for line in block.decode("utf-8", "replace").split("\n"):
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    return name, "\n".join(data)


class _BoundedStream(httpx.AsyncByteStream):
    """A response body passed through, refused once one message (the body, or one event of
    an event stream) passes ``max_bytes``."""

    def __init__(
        self,
        inner: Any,
        max_bytes: int,
        events: bool,
        url: str,
        refused: Refused,
        request: httpx.Request | None = None,
        endpoint: EndpointCheck | None = None,
    ) -> None:
        self._inner = inner
        self._max = max_bytes
        self._events = events
        self._url = url
        self._refused = refused
        self._request = request  # its JSON-RPC id read only when a refusal needs it
        self._endpoint = endpoint

    async def __aiter__(self) -> AsyncIterator[bytes]:
        resumable = False  # an event with an id: the SDK reconnects to resume the stream
        try:
            async for chunk in self._read():
                resumable = resumable or (self._events and _names_an_id(chunk))
                yield chunk
        except httpx.TransportError as err:
            # The connection broke before the answer to a request (or an SSE server's
            # endpoint) came whole: the SDK drops that error, and the call would wait for its
            # deadline. A stream it can resume (its events carry ids) it reconnects itself.
            if self._refused is not None and not resumable and self._answers_someone:
                self._refused(AnswerLost(describe_transport(err), self._answering()))
            raise

    @property
    def _answers_someone(self) -> bool:
        return self._endpoint is not None or self._answering() is not None

    async def _read(self) -> AsyncIterator[bytes]:
        size = 0  # of the message under way
        tail = b""  # the last bytes seen, for an event's end split across chunks
        async for chunk in self._inner:
            if self._events:
                seen = tail + chunk
                end = max((seen.rfind(mark) + len(mark) for mark in _EVENT_ENDS if mark in seen),
                          default=0)  # fmt: skip
                size = len(seen) - end if end else size + len(chunk)
                tail = seen[-3:]
            else:
                size += len(chunk)
            if size > self._max:
                what = "an event" if self._events else "a response"
                self._refuse(
                    ServerMessageError(
                        f"the server sent {what} of more than {self._max:,} bytes "
                        f"({size:,} so far, no end in sight; max_message_bytes) from {self._url}",
                        self._answering(),
                    )
                )
            if self._endpoint is not None:
                try:
                    self._endpoint.feed(chunk)
                except ServerMessageError as err:
                    self._refuse(err)
            yield chunk

    def _answering(self) -> Any:
        """The JSON-RPC id of the request this response answers (:func:`answering`)."""
        return None if self._request is None else answering(self._request)

    def _refuse(self, err: ServerMessageError) -> None:
        if self._refused is not None:
            self._refused(err)
        raise err

    async def aclose(self) -> None:
        await self._inner.aclose()


class _BoundedTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        max_bytes: int,
        refused: Refused,
        undelivered: Undelivered = None,
        sse_url: str | None = None,
    ) -> None:
        self._inner = inner
        self._max = max_bytes
        self._refused = refused
        self._undelivered = undelivered
        self._sse_url = sse_url

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self._inner.handle_async_request(request)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            # No connection, so nothing of the request reached the server.
            if self._undelivered is not None and (rid := answering(request)) is not None:
                self._undelivered(rid)
            raise
        events = response.headers.get("content-type", "").startswith("text/event-stream")
        check = None
        if events and self._sse_url is not None and request.method == "GET":
            check = EndpointCheck(self._sse_url)
        response.stream = _BoundedStream(
            response.stream,
            self._max,
            events,
            str(request.url),
            self._refused,
            request,
            check,
        )
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def bounded_client_factory(
    max_bytes: int,
    refused: Refused = None,
    undelivered: Undelivered = None,
    sse_url: str | None = None,
) -> Any:
    """An ``httpx_client_factory`` for the MCP SDK's HTTP transports: its clients are the
    SDK's (same timeouts, headers, auth), their responses bounded (see the module docstring);
    ``refused`` hears of each message refused (the SDK drops an event stream's errors), and
    ``undelivered`` of the JSON-RPC id of each request POSTed to a server that refused the
    connection (the SDK ends the session on it, as when a request was cut mid-call).
    ``sse_url``: the URL of an SSE server's stream, whose endpoint event is checked."""

    def factory(
        headers: dict[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
        auth: httpx.Auth | None = None,
    ) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            headers=headers,
            timeout=timeout
            or httpx.Timeout(MCP_DEFAULT_TIMEOUT, read=MCP_DEFAULT_SSE_READ_TIMEOUT),
            auth=auth,
            transport=_BoundedTransport(
                httpx.AsyncHTTPTransport(), max_bytes, refused, undelivered, sse_url
            ),
        )

    return factory

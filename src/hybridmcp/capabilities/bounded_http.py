"""HTTP clients for MCP sessions whose responses are bounded like a stdio server's lines.

httpx reads a JSON response whole, and an SSE parser gathers an event's lines until its blank
line: a server whose body never ends (or whose event never does) fills the memory at loopback
speed, about 1 GB in the 2 s of one call's deadline here, and the read goes on after the
caller gave up. Here a JSON body, or one event of an event stream, longer than ``max_bytes``
(the server's ``max_message_bytes``) ends with :class:`ServerMessageError`, never read
further: the session hears of it as something that answers no request, and the call's
deadline error says so.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from mcp.shared._httpx_utils import MCP_DEFAULT_SSE_READ_TIMEOUT, MCP_DEFAULT_TIMEOUT

from hybridmcp.capabilities.stdio import ServerMessageError

_EVENT_ENDS = (b"\n\n", b"\r\n\r\n", b"\r\r")
Refused = Callable[[Exception], None] | None
Undelivered = Callable[[Any], None] | None


class _BoundedStream(httpx.AsyncByteStream):
    """A response body passed through, refused once one message (the body, or one event of
    an event stream) passes ``max_bytes``."""

    def __init__(
        self, inner: Any, max_bytes: int, events: bool, url: str, refused: Refused
    ) -> None:
        self._inner = inner
        self._max = max_bytes
        self._events = events
        self._url = url
        self._refused = refused

    async def __aiter__(self) -> AsyncIterator[bytes]:
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
                err = ServerMessageError(
                    f"the server sent {what} of more than {self._max:,} bytes "
                    f"({size:,} so far, no end in sight; max_message_bytes) from {self._url}"
                )
                if self._refused is not None:
                    self._refused(err)
                raise err
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


def _request_id(request: httpx.Request) -> Any:
    """The JSON-RPC id of the request a POST carries, or None (a notification, a response,
    a body that is not one JSON-RPC request)."""
    try:
        body = json.loads(request.content)
    except (httpx.RequestNotRead, ValueError):
        return None
    return body.get("id") if isinstance(body, dict) and "method" in body else None


class _BoundedTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        max_bytes: int,
        refused: Refused,
        undelivered: Undelivered = None,
    ) -> None:
        self._inner = inner
        self._max = max_bytes
        self._refused = refused
        self._undelivered = undelivered

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self._inner.handle_async_request(request)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            # No connection, so nothing of the request reached the server.
            if self._undelivered is not None and request.method == "POST":
                if (rid := _request_id(request)) is not None:
                    self._undelivered(rid)
            raise
        events = response.headers.get("content-type", "").startswith("text/event-stream")
        response.stream = _BoundedStream(
            response.stream, self._max, events, str(request.url), self._refused
        )
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def bounded_client_factory(
    max_bytes: int, refused: Refused = None, undelivered: Undelivered = None
) -> Any:
    """An ``httpx_client_factory`` for the MCP SDK's HTTP transports: its clients are the
    SDK's (same timeouts, headers, auth), their responses bounded (see the module docstring);
    ``refused`` hears of each message refused (the SDK drops an event stream's errors), and
    ``undelivered`` of the JSON-RPC id of each request POSTed to a server that refused the
    connection (the SDK ends the session on it, as when a request was cut mid-call)."""

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
                httpx.AsyncHTTPTransport(), max_bytes, refused, undelivered
            ),
        )

    return factory

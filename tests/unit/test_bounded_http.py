"""The bound on an HTTP server's messages (:mod:`hybridmcp.capabilities.bounded_http`): an
event stream of events each within the bound passes whole, however it is cut into chunks;
an event (or a body) past the bound is refused as it passes it, and the refusal is heard."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridmcp.capabilities.bounded_http import AnswerLost, EndpointCheck, _BoundedStream, answering
from hybridmcp.capabilities.stdio import ServerMessageError


class _Chunks:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.given = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.given += 1
            yield chunk

    async def aclose(self) -> None:
        return None


def _read(stream: _BoundedStream) -> bytes:
    async def read() -> bytes:
        return b"".join([chunk async for chunk in stream])

    return asyncio.run(read())


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


ends = st.sampled_from([b"\n\n", b"\r\n\r\n", b"\r\r"])


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(st.integers(min_value=0, max_value=90), min_size=1, max_size=8),
    end=ends,
    cuts=st.lists(st.integers(min_value=0, max_value=2_000), max_size=10),
)
def test_events_within_the_bound_pass_whole_however_cut(events, end, cuts) -> None:
    data = b"".join(b"data: " + b"x" * n + end for n in events)  # each at most 96 + 4 bytes
    stream = _BoundedStream(_Chunks(_cut(data, cuts)), 100, True, "http://s/mcp", None)
    assert _read(stream) == data


@settings(max_examples=200, deadline=None)
@given(size=st.integers(min_value=101, max_value=1_000), events=st.booleans(),
       cuts=st.lists(st.integers(min_value=0, max_value=2_000), max_size=10))  # fmt: skip
def test_a_message_past_the_bound_is_refused_and_heard(size, events, cuts) -> None:
    data = (b"data: " if events else b"") + b"y" * size  # no end in sight
    refused: list[Exception] = []
    inner = _Chunks(_cut(data, cuts))
    stream = _BoundedStream(inner, 100, events, "http://s/mcp", refused.append)
    with pytest.raises(ServerMessageError, match="of more than 100 bytes") as err:
        _read(stream)
    assert refused == [err.value]
    assert ("an event" if events else "a response") in str(err.value)
    assert "http://s/mcp" in str(err.value)


ENDPOINTS = {
    "/messages/?session_id=1": None,
    "http://s:8/messages": None,
    "http://other:8/messages": "another origin (http://other:8/messages)",
    "https://s:8/messages": "another origin (https://s:8/messages)",
    "http://s:9/messages": "another origin (http://s:9/messages)",
    "//elsewhere/messages": "another origin (http://elsewhere/messages)",
}


@settings(max_examples=300, deadline=None)
@given(
    endpoint=st.sampled_from(sorted(ENDPOINTS)),
    before=st.lists(st.sampled_from([b": keep-alive", b"event: ping\ndata: x"]), max_size=3),
    end=ends,
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
)
def test_an_sse_endpoint_on_another_origin_is_refused_however_the_stream_is_cut(
    endpoint, before, end, cuts
) -> None:
    """The SDK's rule (scheme and host:port of the stream's URL), on the first ``endpoint``
    event, whatever comes before it and however its bytes are split into chunks."""
    nl = end[: len(end) // 2]
    named = b"event: endpoint\ndata: " + endpoint.encode()
    blocks = [b.replace(b"\n", nl) for b in [*before, named]]
    data = b"".join(b + end for b in blocks) + b"event: message\ndata: {}" + end
    refused: list[Exception] = []
    check = EndpointCheck("http://s:8/sse")
    stream = _BoundedStream(
        _Chunks(_cut(data, cuts)), 10_000, True, "http://s:8/sse", refused.append, None, check
    )
    said = ENDPOINTS[endpoint]
    if said is None:
        assert _read(stream) == data and not refused and check.done
        return
    with pytest.raises(ServerMessageError, match=re.escape(said)) as err:
        _read(stream)
    assert refused == [err.value]


@pytest.mark.parametrize(
    ("method", "body", "expected"),
    [
        ("POST", b'{"jsonrpc": "2.0", "id": 7, "method": "tools/call"}', 7),
        ("POST", b'{"jsonrpc": "2.0", "id": "a", "method": "ping"}', "a"),
        ("POST", b'{"jsonrpc": "2.0", "method": "notifications/initialized"}', None),
        ("POST", b'{"jsonrpc": "2.0", "id": 7, "result": {}}', None),  # our answer to it
        ("POST", b"[1, 2]", None),
        ("POST", b"\xff not json", None),
        ("GET", b"", None),
    ],
)
def test_a_refused_response_names_the_request_it_answers(method, body, expected) -> None:
    request = httpx.Request(method, "http://s/mcp", content=body or None)
    assert answering(request) == expected


class _Broken(_Chunks):
    """Chunks, then the connection breaks (as httpx reports a peer that went away)."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in super().__aiter__():
            yield chunk
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


@pytest.mark.parametrize(
    ("sent", "answering", "heard"),
    [
        ([b'event: message\ndata: {"jsonrpc"'], 7, True),  # an answer cut in two
        ([], 7, True),  # nothing came after the headers
        ([b"id: 1\nevent: message\ndata: {}\n\n"], 7, False),  # resumable: the SDK resumes
        ([b"data: {}"], None, False),  # a stream of the server's own: the SDK's to handle
    ],
)
def test_a_connection_broken_mid_answer_is_heard_with_the_request_it_answered(
    sent, answering, heard
) -> None:
    refused: list[Exception] = []
    request = None
    if answering is not None:  # the POST of the request the response answers
        call = {"jsonrpc": "2.0", "id": answering, "method": "tools/call"}
        request = httpx.Request("POST", "http://s/mcp", json=call)
    stream = _BoundedStream(_Broken(sent), 10_000, True, "http://s/mcp", refused.append, request)
    with pytest.raises(httpx.RemoteProtocolError):
        _read(stream)
    if not heard:
        assert refused == []
        return
    (lost,) = refused
    assert isinstance(lost, AnswerLost) and lost.answering == answering
    assert str(lost) == "RemoteProtocolError: peer closed connection without sending complete body"

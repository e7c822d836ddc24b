"""What a model outside the process may read of a server's sampling request
(``Gate.sample``): a value above ``public`` never reaches it, whole or cut at any position
across the request's messages (the system prompt and the turns), with text around it.
The model reads the turns one after another, so the request is read as they are, with
nothing of the protocol (roles) between them."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridmcp.capabilities.gate import Gate
from hybridmcp.capabilities.mcp_pool import SessionPool
from hybridmcp.config import parse_config
from hybridmcp.errors import PrivacyRefused
from hybridmcp.policy import privacy
from hybridmcp.testing.canary import SHAPE_KINDS, shaped_value, split_fields
from tests.privacy_cases import SCAN_SETTINGS, SURROUNDINGS

SERVER = parse_config({"mcpServers": {"s": {"command": "x"}}}).mcpServers["s"]


def _gate() -> Gate:
    privacy.scan({"to": "someone@example.com"})  # the detection engines built, as in a run
    return Gate(SessionPool({}))


GATE = _gate()


def _asked(messages: list[dict[str, str]]) -> bool:
    """Does a model cleared ``public`` get to read ``messages``?"""
    read: list[bool] = []

    async def complete() -> tuple[str, str]:
        read.append(True)
        return "ok", "remote/model"

    async def sample() -> None:
        await GATE.sample(
            "s", SERVER, messages, complete, None, timeout_s=5, model_clearance="public"
        )

    try:
        asyncio.run(sample())
    except PrivacyRefused:
        pass
    return bool(read)


@st.composite
def split_prompts(draw: st.DrawFn) -> tuple[str, list[dict[str, str]]]:
    kind = draw(st.sampled_from(SHAPE_KINDS))
    text, _ = shaped_value(kind, random.Random(draw(st.integers(0, 2**32))))
    before, after = draw(st.sampled_from(SURROUNDINGS))
    a, b = split_fields(text, draw(st.integers(1, len(text) - 1)), before, after)
    roles = draw(st.sampled_from([("user", "user"), ("system", "user"), ("user", "assistant")]))
    return kind, [{"role": roles[0], "content": a}, {"role": roles[1], "content": b}]


@SCAN_SETTINGS
@given(split_prompts())
def test_a_value_cut_across_a_sampling_requests_messages_never_reaches_an_outside_model(
    case: tuple[str, list[dict[str, str]]],
) -> None:
    kind, messages = case
    whole = [{"role": "user", "content": "".join(m["content"] for m in messages)}]
    if _asked(whole):  # a form the scanner does not know whole is not this test's concern
        return
    assert not _asked(messages), (kind, messages)


@pytest.mark.parametrize(
    "pieces",
    [
        ("my card is 4111 1111", "1111 1111 please"),
        ("4111", "1111", "1111", "1111"),
        ("the key is AKIAIOSF", "ODNN7EXAMPLE"),
    ],
)
def test_a_card_or_key_in_pieces_over_several_messages_is_not_shown(
    pieces: tuple[str, ...],
) -> None:
    messages = [{"role": "user", "content": p} for p in pieces]
    assert not _asked(messages)
    assert _asked([{"role": "user", "content": "the weather in Lisbon"}])


def test_a_request_larger_than_the_scan_limit_is_restricted_unscanned() -> None:
    """A server's request (or an answer) larger than ``privacy.max_scan_bytes`` is not
    scanned on the event loop (megabytes take seconds, and every call waits) but counted
    ``restricted``, as a call's arguments are: a model outside the process never reads it."""
    import time

    huge = "the weather in Lisbon is fine; " * 200_000  # 6 MB
    started = time.perf_counter()
    assert not _asked([{"role": "user", "content": huge}])
    assert time.perf_counter() - started < 2.0  # a scan takes over ten seconds
    record = list(GATE.audit.records)[-1]
    assert record["kind"] == "sampling" and record["prompt_sensitivity"] == "restricted", record
    assert "max_scan_bytes" in record["reason"], record

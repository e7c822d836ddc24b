"""The session pool under many concurrent calls whose callers are cancelled at random points.

A hedge that loses or a straggler that is cut cancels its caller; the pool must abandon the
request (not cancel it inside the MCP client), so the one shared session survives: the fault
server over stdio, one session for 10,000 calls, and every call not cancelled answered.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from hybridmcp.capabilities.mcp_pool import SessionPool
from hybridmcp.capabilities.timing import CallTiming
from hybridmcp.config import PoolConfig, parse_config
from hybridmcp.errors import BackPressureError, DeadlineExceededError, ServerUnavailableError
from hybridmcp.testing.harness import faultserver_stdio, no_children_left

pytestmark = pytest.mark.integration

CALLS = 10_000
BATCH = 250
CANCEL_SHARE = 0.3
OUTER_S = 120


@asynccontextmanager
async def pool(faults: dict[str, Any] | None = None, **server: Any) -> AsyncIterator[SessionPool]:
    """A pool over one fault server (stdio); no child process may outlive it."""
    cfg = parse_config({"mcpServers": {"faulty": faultserver_stdio(faults, **server)}})
    async with SessionPool(cfg.mcpServers, PoolConfig(health_interval_ms=0)) as opened:
        assert opened.is_up("faulty"), opened.status("faulty").error
        yield opened
    assert not await no_children_left(10), "the fault server outlived the pool"


def text(result: Any) -> dict[str, Any]:
    assert not result.isError, result.content
    return json.loads(result.content[0].text)


async def test_ten_thousand_calls_with_random_cancellations_keep_one_session() -> None:
    rng = random.Random(20261129)
    async with asyncio.timeout(OUTER_S), pool(max_concurrency=64) as p:

        async def one(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
            """(what the server must answer, what it answered)"""
            if i % 2:
                args: dict[str, Any] = {"text": f"m{i}"}
                return args, text(await p.call_tool("faulty", "echo", args, 10.0))
            ms = rng.choice((0, 1, 2, 5, 10))
            return {"slept_ms": ms}, text(await p.call_tool("faulty", "sleep", {"ms": ms}, 10.0))

        answered = cancelled = 0
        for start in range(0, CALLS, BATCH):
            tasks = {i: asyncio.create_task(one(i)) for i in range(start, start + BATCH)}
            cut = set(rng.sample(sorted(tasks), int(BATCH * CANCEL_SHARE)))
            for i in sorted(cut, key=lambda _: rng.random()):
                await asyncio.sleep(rng.choice((0, 0, 0.0005, 0.002)))  # queued, sent, answered
                tasks[i].cancel()
            results = await asyncio.gather(*tasks.values(), return_exceptions=True)
            for i, got in zip(tasks, results, strict=True):
                if i in cut and isinstance(got, asyncio.CancelledError):
                    cancelled += 1
                    continue
                assert not isinstance(got, BaseException), f"call {i}: {got!r}"
                expected, answer = got
                assert answer == expected, f"call {i}"
                answered += 1

        status = p.status("faulty")
        assert status.opens == 1 and status.replacements == 0, status.describe()
        assert answered + cancelled == CALLS and cancelled > CALLS * CANCEL_SHARE / 3
        # Abandoned requests ran out in the pool's tasks and gave their slots back.
        for _ in range(200):
            if status.in_flight == 0:
                break
            await asyncio.sleep(0.01)
        assert status.in_flight == 0, status.describe()
        assert text(await p.call_tool("faulty", "echo", {"text": "after"}, 5.0)) == {
            "text": "after"
        }


async def test_queue_time_is_not_the_providers_time() -> None:
    async with asyncio.timeout(OUTER_S), pool(max_concurrency=1) as p:
        first, second = CallTiming(), CallTiming()
        # Each call gets 0.5 s from the moment it is sent; the second waits 0.3 s for the slot.
        await asyncio.gather(
            p.call_tool("faulty", "sleep", {"ms": 300}, 0.5, timing=first),
            p.call_tool("faulty", "sleep", {"ms": 300}, 0.5, timing=second),
        )
        assert first.queue_ms < 50 and second.queue_ms >= 250
        assert 250 <= second.latency_ms() < 450, second

        # A call that cannot get a slot in its queue time is refused, never sent.
        holder = asyncio.create_task(p.call_tool("faulty", "sleep", {"ms": 400}, 2.0))
        await asyncio.sleep(0.05)
        refused = CallTiming()
        with pytest.raises(BackPressureError, match="was not sent"):
            await p.call_tool(
                "faulty", "sleep", {"ms": 0}, 2.0, timing=refused, queue_timeout_s=0.1
            )
        assert refused.sent_at is None and refused.ended_at is not None
        await holder

        # The deadline runs from sending: the request is abandoned, the session kept.
        late = CallTiming()
        with pytest.raises(DeadlineExceededError):
            await p.call_tool("faulty", "sleep", {"ms": 2_000}, 0.2, timing=late)
        assert late.sent_at is not None and 150 <= late.latency_ms() < 400
        assert text(await p.call_tool("faulty", "echo", {"text": "x"}, 5.0)) == {"text": "x"}
        status = p.status("faulty")
        assert status.opens == 1 and status.abandoned == 1, status.describe()


async def test_a_broken_session_is_replaced_without_failing_the_calls_not_on_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="hybridmcp.pool")
    async with (
        asyncio.timeout(OUTER_S),
        pool({"calculate": {"crash": True}}, max_concurrency=2) as p,
    ):
        on_it = [
            asyncio.create_task(p.call_tool("faulty", "sleep", {"ms": 500}, 10.0)),
            asyncio.create_task(p.call_tool("faulty", "calculate", {"expression": "1+1"}, 10.0)),
        ]
        await asyncio.sleep(0.1)  # both sent; the server dies in the second
        queued = [
            asyncio.create_task(p.call_tool("faulty", "echo", {"text": str(i)}, 10.0))
            for i in range(5)
        ]
        lost = await asyncio.gather(*on_it, return_exceptions=True)
        assert all(isinstance(e, ServerUnavailableError) for e in lost), lost
        answers = [text(r) for r in await asyncio.gather(*queued)]
        assert answers == [{"text": str(i)} for i in range(5)]
        status = p.status("faulty")
        assert status.replacements == 1 and status.opens == 2, status.describe()
        assert status.describe()["replacements"] == 1
    assert [r.getMessage() for r in caplog.records if "session broken" in r.getMessage()]


async def test_an_answer_waiting_behind_a_busy_loop_is_not_a_timeout() -> None:
    """The server answers at once, but the event loop is busy (blocked) for longer than the
    call's deadline right after sending: the answer waits unread in the pipe. The deadline is
    the provider's time, so the timer is set again for what the provider has left and the
    answer is read; the latency excludes the loop's lateness. Without a lag measure (no
    ``loop_lag``) the same call times out: the deadline is then wall-clock."""
    from hybridmcp.capabilities.timing import LoopLag

    lag = LoopLag()
    lag.ensure_running()
    await asyncio.sleep(0.05)  # the probe is running
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(OUTER_S), pool() as p:
        await p.call_tool("faulty", "echo", {"text": "warm"}, 10.0)  # the server's first call
        for measured in (True, False):
            timing = CallTiming(loop_lag=lag if measured else None)
            call = asyncio.create_task(
                p.call_tool("faulty", "echo", {"text": "hi"}, 0.3, timing=timing)
            )
            await timing.sent.wait()
            loop.call_soon(time.sleep, 0.8)  # the loop is busy elsewhere: 0.8 s > 0.3 s
            if measured:
                assert text(await call) == {"text": "hi"}
                assert timing.latency_ms() < 300
            else:
                with pytest.raises(DeadlineExceededError, match="did not answer within 300 ms"):
                    await call
    await lag.close()

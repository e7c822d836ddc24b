"""The provider's time: from the send, less the coordinator's queue and the loop's lateness."""

from __future__ import annotations

import asyncio
import time

from hybridmcp.capabilities.timing import CallTiming, LoopLag


async def test_queue_time_is_apart_from_latency() -> None:
    timing = CallTiming()
    await asyncio.sleep(0.05)  # waiting for a slot
    timing.mark_sent()
    await asyncio.sleep(0.02)
    timing.mark_ended()
    assert timing.queue_ms >= 45
    assert 15 <= timing.latency_ms() < 45


async def test_a_busy_event_loop_is_not_the_providers_latency() -> None:
    lag = LoopLag()
    lag.ensure_running()
    await asyncio.sleep(0.05)
    timing = CallTiming(lag_ms=lag.total_ms)
    timing.mark_sent()
    time.sleep(0.3)  # noqa: ASYNC251 - the loop is busy elsewhere: the answer waits
    timing.mark_ended()
    await lag.close()
    assert timing.latency_ms() < 100  # not the 300 ms the loop spent elsewhere


async def test_a_never_sent_call_has_no_latency() -> None:
    timing = CallTiming()
    timing.mark_ended()
    assert timing.latency_ms() == 0.0 and timing.sent_at is None

"""An internal function in a worker thread is timed from its first line to its last: the
thread's wait to hand its start to a busy event loop is the loop's queue, not the function."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hybridmcp.capabilities.registry import Provider, invoke_internal
from hybridmcp.capabilities.timing import CallTiming
from hybridmcp.capabilities.workers import Workers

_RAN: list[tuple[float, float]] = []


def _tiny(x: int) -> dict[str, int]:
    begun = time.perf_counter()
    value = {"value": x + 1}
    _RAN.append((begun, time.perf_counter()))
    return value


async def test_a_thread_function_is_timed_without_the_loops_wake_up() -> None:
    """Waking the loop from the worker thread writes to the loop's pipe, which hands the
    interpreter to a loop that is busy (a switch interval, 5 ms, or several): here that hand-
    over is held for a while on purpose. The attempt's interval lies inside the function's own,
    never before it, so a microsecond function is never measured at the loop's pace."""
    loop = asyncio.get_running_loop()
    woken: list[float] = []
    wake = loop.call_soon_threadsafe

    def busy_wake(callback: Any, *args: Any, **kwargs: Any) -> Any:
        handle = wake(callback, *args, **kwargs)
        if isinstance(getattr(callback, "__self__", None), asyncio.Event):  # "it has started"
            time.sleep(0.03)  # the thread waits for the interpreter the busy loop holds
            woken.append(time.perf_counter())
        return handle  # (the answer's own wake-up, after the function, is not held)

    provider = Provider("tiny", "t.tiny", "internal", 1.0, 1.0, 0.0, "public", 10_000.0, call=_tiny)
    workers = Workers()
    _RAN.clear()
    loop.call_soon_threadsafe = busy_wake  # type: ignore[method-assign]
    try:
        for x in range(5):
            timing = CallTiming()
            assert await invoke_internal(provider, {"x": x}, timing, workers) == {"value": x + 1}
            assert len(woken) == x + 1
            (begun, ended), woken_at = _RAN[-1], woken[-1]
            assert timing.sent_at is not None and timing.ended_at is not None
            assert woken_at <= timing.sent_at <= begun, (woken_at, timing.sent_at, begun)
            assert ended <= timing.ended_at
            assert timing.latency_ms() <= (timing.ended_at - woken_at) * 1000
    finally:
        del loop.call_soon_threadsafe
        workers.close()

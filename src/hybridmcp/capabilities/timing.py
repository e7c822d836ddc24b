"""When a call queued, was sent and ended: the provider is measured from the moment it was sent.

A :class:`CallTiming` travels with one attempt from the worker through the gate to the session
pool. The pool marks it *sent* when the request is written to the session (after waiting for a
slot and, if need be, for the session to open); time before that is the coordinator's queue,
never the provider's latency.

An answer that arrived while the event loop was busy elsewhere (many runs at once on one
server) is only noticed when the loop gets back to it. :class:`LoopLag` measures how late the
loop runs; the provider's latency leaves out the loop's lateness accumulated during the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import Callable
from dataclasses import dataclass, field

LAG_INTERVAL_S = 0.01
"""How often the loop-lag probe wakes."""


class LoopLag:
    """How late the event loop runs: a probe sleeps ``LAG_INTERVAL_S`` and adds up how much
    later than asked it woke. ``total_ms()`` only grows; the lag over an interval is the
    difference of two readings. Live state of the runtime resources, started on first use in a
    running loop, stopped by :meth:`close`."""

    def __init__(self) -> None:
        self._total_s = 0.0
        self._asked: float | None = None
        self._task: asyncio.Task[None] | None = None

    def total_ms(self) -> float:
        """The lateness so far, including the probe's own if it is overdue right now (the loop
        is busy at this very moment)."""
        overdue = 0.0
        if self._asked is not None:
            overdue = max(0.0, time.monotonic() - self._asked)
        return (self._total_s + overdue) * 1000

    def ensure_running(self) -> None:
        task = self._task
        loop = asyncio.get_running_loop()
        if task is not None and not task.done() and task.get_loop() is loop:
            return
        # In a context of its own: started by a run's first call, it would otherwise keep that
        # run's context (and through it the run's state) for as long as the resources live.
        self._task = loop.create_task(
            self._probe(), name="hybridmcp-loop-lag", context=contextvars.Context()
        )

    async def _probe(self) -> None:
        while True:
            self._asked = time.monotonic() + LAG_INTERVAL_S
            await asyncio.sleep(LAG_INTERVAL_S)
            asked, self._asked = self._asked, None
            self._total_s += max(0.0, time.monotonic() - asked)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is None or task.done():
            return
        if task.get_loop() is not asyncio.get_running_loop():
            task.get_loop().call_soon_threadsafe(task.cancel)
            return
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


@dataclass
class CallTiming:
    """The timeline of one attempt, in ``time.perf_counter()`` seconds."""

    queued_at: float = field(default_factory=time.perf_counter)
    sent_at: float | None = None
    ended_at: float | None = None
    sent: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    """Set when the request is written to the session (or an internal call starts)."""
    lag_ms: Callable[[], float] | None = field(default=None, repr=False)
    """The event loop's accumulated lateness (:meth:`LoopLag.total_ms`), when the call's end is
    noticed on the loop; None for a call timed where it runs (an internal worker thread)."""
    in_flight: int | None = None
    """The most other calls in flight on the session at any moment while this one was (set by
    the session pool from the moment it is sent; None for a call not sent on a session): its
    load, which latency judgements allow for."""
    idle_from: float | None = None
    """The later of its sending and the session's last answer before its own (set by the
    session pool when the request ends): from then on the server answered nothing else."""
    last_answer: Callable[[], float] | None = field(default=None, repr=False)
    """When the session last answered a request (``time.perf_counter()``; set by the pool at
    sending), for the service time of a call still running or abandoned."""
    _lag_at_sent: float = field(default=0.0, repr=False)
    _lag_at_end: float | None = field(default=None, repr=False)

    def mark_sent(self) -> None:
        if self.sent_at is None:
            self.sent_at = time.perf_counter()
            self._lag_at_sent = self.lag_ms() if self.lag_ms else 0.0
        self.sent.set()

    def mark_ended(self) -> None:
        if self.ended_at is None:
            self.ended_at = time.perf_counter()
            self._lag_at_end = self.lag_ms() if self.lag_ms else None

    @property
    def queue_ms(self) -> float:
        """Time waiting for a slot or a session (until sent, or until now/the end)."""
        until = self.sent_at or self.ended_at or time.perf_counter()
        return (until - self.queued_at) * 1000

    def _loop_lag_ms(self, ended: bool) -> float:
        if self.lag_ms is None:
            return 0.0
        at_end = self._lag_at_end if ended and self._lag_at_end is not None else self.lag_ms()
        return max(0.0, at_end - self._lag_at_sent)

    def latency_ms(self, now: float | None = None) -> float:
        """The provider's time: from sent to the end (or ``now``), less the event loop's
        lateness meanwhile; 0 if never sent."""
        if self.sent_at is None:
            return 0.0
        ended = self.ended_at is not None
        end = self.ended_at if ended else (now if now is not None else time.perf_counter())
        assert end is not None
        return max(0.0, (end - self.sent_at) * 1000 - self._loop_lag_ms(ended))

    def service_ms(self) -> float:
        """The provider's time on this call alone: from the later of its sending and the
        session's last answer to another request (:attr:`idle_from`; while it runs, or once
        abandoned, :attr:`last_answer`) to its end or now; never more than its latency."""
        latency = self.latency_ms()
        idle = self.idle_from
        if idle is None and self.last_answer is not None and self.sent_at is not None:
            idle = max(self.sent_at, self.last_answer())
        if idle is None:
            return latency
        end = self.ended_at if self.ended_at is not None else time.perf_counter()
        return min(latency, max(0.0, (end - idle) * 1000))

    def since_sent_s(self, now: float | None = None) -> float:
        """Seconds the provider has had the call so far, less the loop's lateness (0 while
        still queued)."""
        if self.sent_at is None:
            return 0.0
        return self.latency_ms(None if now is None else now) / 1000

"""When a call queued, was sent and ended: the provider is measured from the moment it was sent.

A :class:`CallTiming` travels with one attempt from the worker through the gate to the session
pool. The pool marks it *sent* when the request is written to the session (after waiting for a
slot and, if need be, for the session to open); time before that is the coordinator's queue,
never the provider's latency.

An answer that arrived while the event loop was busy elsewhere (many runs at once on one
server) is only noticed when the loop gets back to it. :class:`LoopLag` measures how late the
loop runs, and the provider's latency leaves out the lateness that can have held its answer
back: that of the loop's last turns before the answer was noticed (the probe's last
``RECENT_WAKES`` wakes and how overdue it is at that moment). Lateness earlier in the call, the
loop busy with other runs while the server was still working, overlapped the provider's own
work and stays in its latency: a loop kept busy in short turns throughout delays noticing an
answer by about one turn, not by all the turns of the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

LAG_INTERVAL_S = 0.01
"""How often the loop-lag probe wakes."""

RECENT_WAKES = 3
"""How many of the probe's last wakes before an answer is noticed count as the turns that can
have held it back: reading an answer off a session takes a few loop turns, the probe wakes at
most once every ``LAG_INTERVAL_S`` and every other turn."""


def held_back_s(late: Iterable[tuple[float, float]], since: float) -> float:
    """The loop's lateness within ``(since, …)``: the sum over the intervals ``(due, woke)``
    in which the probe was due but the loop had not yet run it, each counted from ``since``."""
    return sum(max(0.0, woke - max(due, since)) for due, woke in late)


class LoopLag:
    """How late the event loop runs: a probe sleeps ``LAG_INTERVAL_S`` and records, for its last
    ``RECENT_WAKES`` wakes, when it was due and when it woke. Live state of the runtime
    resources, started on first use in a running loop, stopped by :meth:`close`. ``clock`` is
    ``time.perf_counter`` (the clock of :class:`CallTiming`)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._due: float | None = None
        self._wakes: deque[tuple[float, float]] = deque(maxlen=RECENT_WAKES)
        self._task: asyncio.Task[None] | None = None

    def held_back_ms(self, since: float) -> float:
        """The lateness that can hold back an answer noticed now, counted from ``since`` (the
        call's sending): the probe's last wakes' lateness and its own if it is overdue right
        now (the loop is busy at this very moment)."""
        now = self._clock()
        late = list(self._wakes)
        if self._due is not None:
            late.append((self._due, now))
        return held_back_s(late, since) * 1000

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

    def _armed(self) -> None:
        self._due = self._clock() + LAG_INTERVAL_S

    def _woke(self) -> None:
        due, self._due = self._due, None
        if due is not None:
            self._wakes.append((due, self._clock()))

    async def _probe(self) -> None:
        while True:
            self._armed()
            await asyncio.sleep(LAG_INTERVAL_S)
            self._woke()

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
    loop_lag: LoopLag | None = field(default=None, repr=False)
    """The event loop's lateness, when the call's end is noticed on the loop; None for a call
    timed where it runs (an internal worker thread)."""
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
    clock: Callable[[], float] = field(default=time.perf_counter, repr=False)
    """The timeline's clock, the one its :class:`LoopLag` reads (given in tests)."""
    resent: int = 0
    """How many times the request was written again after reaching the server: a
    streamable HTTP server that no longer knew the session refused it (HTTP 404) before acting
    on it, and the pool sent it on a new session (set by the session pool; the audit counts
    each sending)."""
    _held_at_end: float | None = field(default=None, repr=False)

    def mark_sent(self) -> None:
        if self.sent_at is None:
            self.sent_at = self.clock()
        self.sent.set()

    def mark_unsent(self) -> None:
        """The request was written to the session but never reached the server (its HTTP
        connection was refused): it counts as never sent."""
        self.sent_at = None
        self.sent.clear()

    def mark_ended(self) -> None:
        if self.ended_at is None:
            self.ended_at = self.clock()
            self._held_at_end = self._loop_lag_ms()

    @property
    def queue_ms(self) -> float:
        """Time waiting for a slot or a session (until sent, or until now/the end)."""
        until = self.sent_at or self.ended_at or self.clock()
        return (until - self.queued_at) * 1000

    def _loop_lag_ms(self) -> float:
        """The loop's lateness that can have held back an answer noticed now (none before the
        call was sent)."""
        if self.loop_lag is None or self.sent_at is None:
            return 0.0
        return self.loop_lag.held_back_ms(since=self.sent_at)

    def latency_ms(self, now: float | None = None) -> float:
        """The provider's time: from sent to the end (or ``now``), less the event loop's
        lateness that can have kept the end unnoticed (its last turns, see the module); 0 if
        never sent."""
        if self.sent_at is None:
            return 0.0
        if self.ended_at is not None:
            end, held = self.ended_at, self._held_at_end or 0.0
        else:
            end, held = (now if now is not None else self.clock()), self._loop_lag_ms()
        return max(0.0, (end - self.sent_at) * 1000 - held)

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
        end = self.ended_at if self.ended_at is not None else self.clock()
        return min(latency, max(0.0, (end - idle) * 1000))

    def since_sent_s(self, now: float | None = None) -> float:
        """Seconds the provider has had the call so far, less the loop's lateness (0 while
        still queued)."""
        if self.sent_at is None:
            return 0.0
        return self.latency_ms(None if now is None else now) / 1000

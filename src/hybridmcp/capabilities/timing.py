"""When a call queued, was sent and ended: the provider is measured from the moment it was sent.

A :class:`CallTiming` travels with one attempt from the worker through the gate to the session
pool. The pool marks it *sent* when the request is written to the session (after waiting for a
slot and, if need be, for the session to open); time before that is the coordinator's queue,
never the provider's latency.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class CallTiming:
    """The timeline of one attempt, in ``time.perf_counter()`` seconds."""

    queued_at: float = field(default_factory=time.perf_counter)
    sent_at: float | None = None
    ended_at: float | None = None
    sent: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    """Set when the request is written to the session (or an internal call starts)."""

    def mark_sent(self) -> None:
        if self.sent_at is None:
            self.sent_at = time.perf_counter()
        self.sent.set()

    def mark_ended(self) -> None:
        if self.ended_at is None:
            self.ended_at = time.perf_counter()

    @property
    def queue_ms(self) -> float:
        """Time waiting for a slot or a session (until sent, or until now/the end)."""
        until = self.sent_at or self.ended_at or time.perf_counter()
        return (until - self.queued_at) * 1000

    def latency_ms(self, now: float | None = None) -> float:
        """The provider's time: from sent to the end (or ``now``); 0 if never sent."""
        if self.sent_at is None:
            return 0.0
        end = self.ended_at or (now if now is not None else time.perf_counter())
        return max(0.0, (end - self.sent_at) * 1000)

    def since_sent_s(self, now: float | None = None) -> float:
        """Seconds the provider has had the call so far (0 while still queued)."""
        if self.sent_at is None:
            return 0.0
        return (now if now is not None else time.perf_counter()) - self.sent_at

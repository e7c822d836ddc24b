"""Circuit breakers: stop calling a provider that keeps failing, and probe it before trusting it.

A pure state machine per provider, driven by outcomes and the time passed in (``now``, seconds):

- **closed**: calls flow. Each outcome enters a count-based window. The breaker opens when the
  last ``consecutive_failures`` outcomes all failed (Envoy's ``consecutive_5xx``; slow calls do
  not count here: they come in bursts when many runs share a server), or when the
  window holds at least ``minimum_calls`` outcomes and the share of failures, or of slow calls,
  reaches ``failure_rate_threshold`` (resilience4j's failure-rate and slow-call-rate rules),
  judged when a failed or slow call comes in: unlike resilience4j's, a call answered in time
  never opens the circuit, so a provider slow at its start (or warming up after a recovery)
  and healthy since is not taken out of rotation by the call that shows it healthy.
  A *slow* call is one that answered past the provider's degradation threshold, taken at the
  call's load (the calls in flight beside it on its session:
  :func:`hybridmcp.policy.hedging.at_load`), so a server working through our own calls in
  turn is not slow.
- **open**: calls are refused for ``open_ms``; each re-open without a successful close in
  between doubles the period, up to ``max_open_ms`` (Envoy's ejection time grows the same way).
- **half-open**: once the period is over, up to ``half_open_calls`` trial calls are let through.
  All succeed: closed, with a fresh window. Any fails (or is slow): open again.

:class:`BreakerBoard` holds one breaker per provider and is what the gate uses; it also keeps the
transitions so the run can report them (``CIRCUIT_OPENED``, ``CIRCUIT_CLOSED``...).
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from operator import itemgetter
from typing import Any, Literal

from hybridmcp.config import BreakerConfig
from hybridmcp.events import EventCode

State = Literal["closed", "open", "half_open"]
EVENT = {
    "open": EventCode.CIRCUIT_OPENED,
    "half_open": EventCode.CIRCUIT_HALF_OPEN,
    "closed": EventCode.CIRCUIT_CLOSED,
}


@dataclass(frozen=True)
class Transition:
    """A change of a breaker's state, with the numbers that caused it."""

    provider: str
    from_state: State
    to_state: State
    at: float
    reason: str
    failure_rate: float | None = None
    slow_rate: float | None = None
    window_calls: int = 0
    open_for_ms: float | None = None

    def to_event(self) -> dict[str, Any]:
        data = asdict(self)
        return {"code": EVENT[self.to_state], **{k: v for k, v in data.items() if v is not None}}


_FAILED, _SLOW = itemgetter(0), itemgetter(1)
"""The two flags of an outcome in a breaker's window: ``(failed, slow)``."""


@dataclass
class CircuitBreaker:
    """One provider's breaker. Every method takes ``now``; nothing reads a clock."""

    provider: str
    config: BreakerConfig = field(default_factory=BreakerConfig)
    state: State = "closed"
    window: deque[tuple[bool, bool]] = field(default_factory=deque)
    """The last outcomes while closed, as ``(failed, slow)``."""
    consecutive_bad: int = 0
    open_until: float = 0.0
    trips: int = 0
    """Opens since the last close: the exponent of the open period."""
    trials_started: int = 0
    trials_passed: int = 0

    def current(self, now: float) -> State:
        """The state at ``now`` (an open breaker whose period is over is half-open)."""
        if self.state == "open" and now >= self.open_until:
            return "half_open"
        return self.state

    def allow(self, now: float) -> tuple[bool, Transition | None]:
        """May a call start now? Half-open admits up to ``half_open_calls`` trials at once."""
        moved = self._tick(now)
        if self.state == "closed":
            return True, moved
        if self.state == "half_open" and self.trials_started < self.config.half_open_calls:
            self.trials_started += 1
            return True, moved
        return False, moved

    def release(self, now: float) -> None:
        """A call that was allowed ended without an outcome (cancelled): free its trial slot."""
        if self.state == "half_open" and self.trials_started > self.trials_passed:
            self.trials_started -= 1

    def record(self, ok: bool, now: float, *, slow: bool = False) -> Transition | None:
        """Fold one outcome in; returns the transition it caused, if any."""
        self._tick(now)
        bad = not ok or slow
        if self.state == "half_open":
            if bad:
                return self._open(now, "a trial call failed" if not ok else "a trial call was slow")
            self.trials_passed += 1
            if self.trials_passed >= self.config.half_open_calls:
                return self._close(now)
            return None
        if self.state == "open":
            return None  # a call that started before the breaker opened; already counted
        self.window.append((not ok, slow))
        while len(self.window) > self.config.window_size:
            self.window.popleft()
        # Failures in a row open at once (Envoy's consecutive_5xx); slowness only as a rate: slow
        # calls come in bursts when many runs share a server, and a burst is load, not a fault.
        self.consecutive_bad = self.consecutive_bad + 1 if not ok else 0
        if self.consecutive_bad >= self.config.consecutive_failures:
            return self._open(now, f"{self.consecutive_bad} failed calls in a row")
        # Only a bad outcome trips a rate: a call answered in time says the provider is well
        # now, whatever the window still holds (a slow start, a warm-up after recovery).
        if bad and len(self.window) >= self.config.minimum_calls:
            failure_rate, slow_rate = self.rates()
            threshold = self.config.failure_rate_threshold
            if failure_rate >= threshold:
                return self._open(now, f"failure rate {failure_rate:.0%} >= {threshold:.0%}")
            if slow_rate >= threshold:
                return self._open(now, f"slow-call rate {slow_rate:.0%} >= {threshold:.0%}")
        return None

    def rates(self) -> tuple[float, float]:
        """Failure and slow-call shares of the window (0 when empty)."""
        n = len(self.window)
        if not n:
            return 0.0, 0.0
        return sum(map(_FAILED, self.window)) / n, sum(map(_SLOW, self.window)) / n

    def snapshot(self, now: float) -> dict[str, Any]:
        failure_rate, slow_rate = self.rates()
        state = self.current(now)
        return {
            "state": state,
            "failure_rate": round(failure_rate, 3),
            "slow_rate": round(slow_rate, 3),
            "window_calls": len(self.window),
            "trips": self.trips,
            "open_for_ms": round((self.open_until - now) * 1000, 1) if state == "open" else None,
        }

    def _tick(self, now: float) -> Transition | None:
        if self.state == "open" and now >= self.open_until:
            self.state = "half_open"
            self.trials_started = self.trials_passed = 0
            return Transition(self.provider, "open", "half_open", now, "open period over")
        return None

    def _open(self, now: float, reason: str) -> Transition:
        failure_rate, slow_rate = self.rates()
        calls = len(self.window)
        previous = self.state
        self.trips += 1
        period_ms = min(self.config.max_open_ms, self.config.open_ms * 2 ** (self.trips - 1))
        self.state = "open"
        self.open_until = now + period_ms / 1000
        self.window.clear()
        self.consecutive_bad = 0
        self.trials_started = self.trials_passed = 0
        return Transition(
            self.provider,
            previous,
            "open",
            now,
            reason,
            round(failure_rate, 3),
            round(slow_rate, 3),
            calls,
            period_ms,
        )

    def _close(self, now: float) -> Transition:
        passed = self.trials_passed
        self.state = "closed"
        self.trips = 0
        self.window.clear()
        self.consecutive_bad = 0
        self.trials_started = self.trials_passed = 0
        return Transition(self.provider, "half_open", "closed", now, f"{passed} trial calls passed")


class BreakerBoard:
    """One :class:`CircuitBreaker` per provider: the gate's breaker step.

    Keeps the transitions until a worker takes them, so each appears once in some run's events.
    """

    def __init__(self, config: BreakerConfig | None = None) -> None:
        self.config = config or BreakerConfig()
        self._breakers: dict[str, CircuitBreaker] = {}
        self._transitions: list[Transition] = []

    def breaker(self, provider_id: str) -> CircuitBreaker:
        if provider_id not in self._breakers:
            self._breakers[provider_id] = CircuitBreaker(provider_id, self.config)
        return self._breakers[provider_id]

    def allow(self, provider_id: str, now: float) -> bool:
        if not self.config.enabled:
            return True
        allowed, moved = self.breaker(provider_id).allow(now)
        self._note(moved)
        return allowed

    def record(self, provider_id: str, ok: bool, now: float, *, slow: bool = False) -> None:
        if self.config.enabled:
            self._note(self.breaker(provider_id).record(ok, now, slow=slow))

    def release(self, provider_id: str, now: float) -> None:
        if self.config.enabled:
            self.breaker(provider_id).release(now)

    def blocked(self, provider_id: str, now: float) -> str | None:
        """Why arbitration should not pick this provider now, or None (no side effects)."""
        b = self._breakers.get(provider_id)
        if not self.config.enabled or b is None or b.current(now) != "open":
            return None
        return f"circuit breaker open for another {(b.open_until - now) * 1000:.0f} ms"

    def probing(self, provider_id: str, now: float) -> bool:
        """Is the circuit half-open, waiting for trial calls to decide (no side effects)?"""
        b = self._breakers.get(provider_id)
        return self.config.enabled and b is not None and b.current(now) == "half_open"

    def snapshot(self, now: float) -> dict[str, dict[str, Any]]:
        return {pid: b.snapshot(now) for pid, b in sorted(self._breakers.items())}

    def take_transitions(self, provider_id: str | None = None) -> list[Transition]:
        """Remove and return the recorded transitions (of one provider, or all)."""
        if not self._transitions:  # the usual case: nothing to take
            return []
        taken = [t for t in self._transitions if provider_id in (None, t.provider)]
        self._transitions = [t for t in self._transitions if provider_id not in (None, t.provider)]
        return taken

    def _note(self, transition: Transition | None) -> None:
        if transition is not None:
            self._transitions.append(transition)

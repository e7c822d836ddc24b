"""Latency judged at the call's load (calls already in flight on its session at send): a server
working through our own calls in turn is not degraded, a server that turns slow still is. Pure:
simulated servers (one call at a time, FIFO; or side by side) fed through the live health."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, replace

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from hybridmcp.config import DegradationConfig, HedgingConfig
from hybridmcp.policy.degradation import assess, threshold_ms
from hybridmcp.policy.hedging import (
    HealthWatch,
    HedgeBudget,
    at_load,
    load_bucket,
    service_limit,
    slow_threshold_ms,
)

BASE_MS = 20.0
"""A healthy call's service time is in [BASE_MS, JITTER x BASE_MS]."""
JITTER = 1.4
SLOWDOWN = 10.0


@dataclass(frozen=True)
class Call:
    sent: float
    completed: float
    in_flight: int
    """The most other calls in flight at any moment while it was (as the session pool
    records it)."""
    service: float
    idle_from: float = 0.0
    """The later of its sending and the last answer to another call before its own."""

    @property
    def latency(self) -> float:
        return self.completed - self.sent

    @property
    def service_ms(self) -> float:
        return self.completed - self.idle_from


def simulate(gaps: list[float], services: list[float], cap: int, serial: bool) -> list[Call]:
    """Calls become ready ``gaps`` apart and are sent in order with at most ``cap`` in flight
    (the pool's slots). A serial server serves them one at a time in the order sent; a
    concurrent one serves each at once."""
    calls: list[Call] = []
    ready = 0.0
    for gap, service in zip(gaps, services, strict=True):
        ready += gap
        sent = max(ready, calls[-1].sent if calls else 0.0)
        ends = sorted((c.completed for c in calls), reverse=True)
        if len(ends) >= cap:
            sent = max(sent, ends[cap - 1])  # the cap-th latest end frees a slot
        start = max(sent, calls[-1].completed) if serial and calls else sent
        calls.append(Call(sent, start + service, 0, service))
    answered = sorted(range(len(calls)), key=lambda i: (calls[i].completed, i))
    last_answer = {
        i: calls[answered[n - 1]].completed if n else 0.0 for n, i in enumerate(answered)
    }
    return [
        replace(c, in_flight=_load(c, calls), idle_from=max(c.sent, last_answer[i]))
        for i, c in enumerate(calls)
    ]


def _load(call: Call, calls: list[Call]) -> int:
    """The most other calls in flight at a moment ``call`` was (the peak is at a send)."""
    others = [c for c in calls if c is not call]
    moments = [call.sent] + [c.sent for c in others if call.sent < c.sent < call.completed]
    return max(sum(1 for c in others if c.sent <= t < c.completed) for t in moments)


def planned_ms() -> float:
    """A lone call's threshold, from a baseline learned on healthy lone calls."""
    prediction = {
        "latency_ms": BASE_MS * (1 + JITTER) / 2,
        "p95_latency_ms": BASE_MS * JITTER,
        "observations": 20,
    }
    threshold = slow_threshold_ms(prediction, DegradationConfig())
    assert threshold is not None
    return threshold


def judge(calls: list[Call], *, services: bool = True) -> list[tuple[Call, bool, bool]]:
    """Each call judged when it completes, as the workers do: (call, slow, bucket warm with
    healthy answers only)."""
    w = HealthWatch(HedgeBudget.from_config(HedgingConfig()), DegradationConfig())
    planned = planned_ms()
    judged = []
    seen: Counter[int] = Counter()
    degraded: defaultdict[int, bool] = defaultdict(bool)
    for call in sorted(calls, key=lambda c: c.completed):
        lone = w.threshold("p", planned)
        assert lone is not None
        threshold = w.slow_at_load("p", lone, call.in_flight)
        bucket = load_bucket(call.in_flight)
        warm = seen[bucket] >= 5 and not degraded[bucket]  # its load seen healthy, only
        seen[bucket] += 1
        degraded[bucket] |= call.service > BASE_MS * JITTER
        slow = w.remember(
            "p",
            latency_ms=call.latency,
            ok=True,
            threshold_ms=threshold,
            planned_ms=planned,
            in_flight=call.in_flight,
            service_ms=call.service_ms if services else None,
        )
        judged.append((call, slow, warm))
    return judged


gaps = st.floats(0.0, 3 * BASE_MS, allow_nan=False)
healthy = st.floats(BASE_MS, BASE_MS * JITTER, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 8),
    st.booleans(),
    st.lists(st.tuples(gaps, healthy), min_size=1, max_size=150),
)
def test_a_healthy_server_is_never_slow_at_any_load(
    cap: int, serial: bool, work: list[tuple[float, float]]
) -> None:
    calls = simulate([g for g, _ in work], [s for _, s in work], cap, serial)
    assert max(c.in_flight for c in calls) < cap
    flagged = [(c.in_flight, round(c.latency, 3)) for c, slow, _ in judge(calls) if slow]
    assert flagged == []


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 8),
    st.booleans(),
    st.lists(st.tuples(gaps, healthy), min_size=40, max_size=100),
    st.lists(st.tuples(gaps, healthy), min_size=20, max_size=40),
)
@example(cap=7, serial=True, before=[(0.0, 20.0)] * 40, after=[(20.0, 20.0)] + [(0.0, 20.0)] * 19)
# Alone until the slow era, which first fills the server: its first calls at that load stay
# under 8 lone thresholds while its queue builds, and then make the load's windows.
@example(cap=8, serial=True, before=[(60.0, 28.0)] * 39 + [(0.0, 20.0)], after=[(0.0, 20.0)] * 20)
def test_a_server_ten_times_slower_is_caught_alone_and_under_load(
    cap: int, serial: bool, before: list[tuple[float, float]], after: list[tuple[float, float]]
) -> None:
    work = before + [(g, s * SLOWDOWN) for g, s in after]
    calls = simulate([g for g, _ in work], [s for _, s in work], cap, serial)
    judged = judge(calls)
    slow_era = [(slow, warm) for c, slow, warm in judged if c.service > BASE_MS * JITTER]
    # Judged against what its load explains: a serial server's queue is allowed for from its
    # first call under load; a server that serves calls side by side once its calls at that
    # load have been seen (until then a call behind k others may take k + 1 lone thresholds).
    assume(serial or any(warm for _, warm in slow_era))
    assert any(slow for slow, _ in slow_era)


def test_at_load() -> None:
    kw = {"factor": 3.0, "quantile": 0.75, "min_observations": 5}
    assert at_load(30.0, 0, [500.0] * 10, **kw) == 30.0  # alone: as before
    assert at_load(30.0, None, None, **kw) == 30.0
    assert at_load(30.0, 7, None, **kw) == 240.0  # no calls seen at that load: 8 x
    assert at_load(30.0, 7, [10.0] * 4, **kw) == 240.0  # too few
    assert at_load(30.0, 7, [50.0] * 5, **kw) == 150.0  # 3 x what calls at that load take
    assert at_load(30.0, 7, [5.0] * 5, **kw) == 30.0  # never stricter than alone
    assert at_load(30.0, 1, [50.0] * 5, **kw) == 60.0  # never past what the one ahead explains
    assert [load_bucket(k) for k in (None, 0, 1, 2, 3, 4, 7, 8, 15, 16)] == [
        0, 0, 1, 2, 2, 3, 3, 4, 4, 5,
    ]  # fmt: skip


def test_a_load_not_seen_healthy_excuses_no_service_time_past_a_lone_calls_threshold() -> None:
    kw = {"factor": 3.0, "min_observations": 5, "floor_ms": 10.0}
    assert service_limit(7, [200.0] * 5, **kw) == 600.0
    assert service_limit(7, [200.0] * 5, lone_ms=84.0, **kw) == 84.0
    assert service_limit(7, [20.0] * 4 + [200.0] * 4, lone_ms=84.0, **kw) == 84.0
    assert service_limit(7, [20.0] * 5 + [200.0] * 3, lone_ms=84.0, **kw) == 600.0  # seen healthy
    assert service_limit(7, [20.0] * 5, lone_ms=84.0, **kw) == 60.0
    assert service_limit(7, [1.0] * 5, lone_ms=5.0, **kw) == 10.0  # never under the floor
    assert service_limit(0, [20.0] * 5, lone_ms=84.0, **kw) is None  # alone: nothing shared
    assert service_limit(7, [20.0] * 4, lone_ms=84.0, **kw) is None  # too few


def test_degradation_without_a_recorded_threshold_allows_for_the_calls_ahead() -> None:
    cfg = DegradationConfig()
    baseline = {"latency_ms": 10.0, "p95_latency_ms": 12.0, "observations": 20}
    alone = {"provider": "p", "ok": True, "latency_ms": 100.0}
    assert threshold_ms(alone, baseline, cfg) == 30.0
    assert assess(alone, baseline, cfg) == ["latency"]
    behind = alone | {"in_flight": 7}
    assert threshold_ms(behind, baseline, cfg) == 240.0
    assert assess(behind, baseline, cfg) == []
    assert assess(behind | {"latency_ms": 300.0}, baseline, cfg) == ["latency"]
    assert threshold_ms(behind | {"slow_after_ms": 50.0}, baseline, cfg) == 50.0


def test_a_stall_that_holds_up_every_call_in_flight_is_charged_once() -> None:
    """One call the server takes 30x longer over: the 7 queued behind it are late too, but the
    server answered each in its usual time once it got to it; only the stalled call is slow."""
    services = [BASE_MS * 1.2] * 200
    services[150] = BASE_MS * 30
    for serial in (True, False):
        calls = simulate([0.0] * 200, services, 8, serial)
        judged = judge(calls)
        slow = [c.service for c, s, _ in judged if s]
        assert slow == [BASE_MS * 30], serial
        if serial:  # held up past their thresholds, not slow: judged by latency alone they are
            by_latency = [c for c, s, _ in judge(calls, services=False) if s]
            assert len(by_latency) > 5

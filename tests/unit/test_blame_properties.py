"""Properties of the pure decision code over latency and failure sequences Hypothesis draws:
the coordinator's own doing (a call still queued or refused, a hedge cancelled, the run's own
deadline) is never held against a provider, and a breaker closes again after recovery."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hybridmcp.config import BreakerConfig, DegradationConfig
from hybridmcp.policy import blame
from hybridmcp.policy.breaker import CircuitBreaker
from hybridmcp.policy.degradation import HEDGE_LOST, assess, degradation_metrics, run_calls
from hybridmcp.policy.hedging import HedgeBudget

BASELINE = {
    "latency_ms": 10.0,
    "p95_latency_ms": 20.0,
    "observations": 20,
    "success": 0.9,
    "quality": 0.8,
}
THRESHOLD_MS = 30.0  # max(3 x 10, 1.5 x 20, 10) of BASELINE


def _sent(ok: bool, latency_ms: float) -> dict[str, Any]:
    attempt = {"request_id": "r", "provider": "p", "ok": ok, "sent": True}
    attempt["latency_ms"] = latency_ms
    if not ok:
        attempt |= {"error": "p failed", "error_kind": blame.PROVIDER}
    return attempt


def _ours(kind: str, latency_ms: float) -> dict[str, Any]:
    """An attempt the coordinator itself ended: never sent, refused, cut by the run's
    deadline, or a hedge it cancelled (latency: the provider's time, if it was sent)."""
    base = {"request_id": "r", "provider": "p", "ok": False}
    if kind == "queued":
        return base | {"sent": False, "latency_ms": 0.0, "error_kind": blame.QUEUED}
    if kind == "refused":
        return base | {"sent": False, "latency_ms": 0.0, "error_kind": blame.REFUSED,
                       "circuit_open": True}  # fmt: skip
    if kind == "run_deadline":
        return base | {"sent": True, "latency_ms": latency_ms, "censored": "run deadline",
                       "error": "cancelled: the run's deadline"}  # fmt: skip
    return base | {"sent": True, "latency_ms": latency_ms, "cancelled": HEDGE_LOST,
                   "censored": HEDGE_LOST, "error": "cancelled: hedge lost"}  # fmt: skip


latencies = st.floats(min_value=0.0, max_value=10_000.0, allow_nan=False)
provider_calls = st.lists(st.tuples(st.booleans(), latencies), max_size=30)
our_ends = st.lists(
    st.tuples(st.sampled_from(["queued", "refused", "run_deadline", "hedge_lost"]), latencies),
    min_size=1,
    max_size=20,
)


@settings(max_examples=300, deadline=None)
@given(calls=provider_calls, ours=our_ends, seed=st.randoms(use_true_random=False))
def test_our_own_ends_never_change_a_providers_observed_error_rate(calls, ours, seed) -> None:
    """The run's error rate of a provider (what ``EXTERNAL_DEGRADATION_DETECTED`` reports as
    ``observed_error_rate`` / ``observed_calls`` when its breaker has no window yet) counts
    the calls the provider answered or failed: a call still queued, refused by the gate, cut
    by the run's deadline or a cancelled hedge is neither a failure nor a call of its."""
    theirs = [_sent(ok, ms) for ok, ms in calls]
    mixed = theirs + [_ours(kind, ms) for kind, ms in ours]
    seed.shuffle(mixed)
    assert run_calls(mixed).get("p", (0, 0)) == run_calls(theirs).get("p", (0, 0))
    probe = _sent(False, 1.0)
    before = degradation_metrics(probe, [*theirs, probe], BASELINE, DegradationConfig())
    after = degradation_metrics(probe, [*mixed, probe], BASELINE, DegradationConfig())
    assert after["observed_error_rate"] == before["observed_error_rate"]
    assert after["observed_calls"] == before["observed_calls"]


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(["queued", "refused", "run_deadline", "hedge_lost"]), ms=latencies)
def test_our_own_ends_are_no_error_and_slow_only_past_the_threshold(kind, ms) -> None:
    """Never an ``error``; ``latency`` only where the provider, sent the call, had already
    taken longer than its threshold (a lower bound that says so by itself)."""
    reasons = assess(_ours(kind, ms), BASELINE, DegradationConfig())
    assert "error" not in reasons
    sent = kind in ("run_deadline", "hedge_lost")
    assert reasons == (["latency"] if sent and ms > THRESHOLD_MS else [])
    assert blame.learnable(_ours(kind, ms), set()) == ("censored" if sent else None)


# -- the circuit breaker ---------------------------------------------------------------------

CONFIG = BreakerConfig(
    window_size=6, minimum_calls=4, consecutive_failures=3, open_ms=100, max_open_ms=400,
    half_open_calls=2,
)  # fmt: skip
steps = st.lists(
    st.tuples(
        st.sampled_from(["ok", "fail", "slow", "cancel", "wait"]),
        st.floats(min_value=0.0, max_value=0.5, allow_nan=False),
    ),
    max_size=60,
)


def _drive(breaker: CircuitBreaker, history: list[tuple[str, float]], now: float) -> float:
    """Calls as the gate makes them: allowed or refused; an allowed one ends with an outcome,
    or cancelled (a hedge lost, the run's deadline), or is still in flight."""
    for step, dt in history:
        now += dt
        if step == "wait":
            continue
        allowed, _ = breaker.allow(now)
        if not allowed:
            continue
        if step == "cancel":
            breaker.release(now)
        else:
            breaker.record(step != "fail", now, slow=step == "slow")
    return now


@settings(max_examples=500, deadline=None)
@given(history=steps)
def test_a_breaker_closes_again_once_the_provider_recovers(history) -> None:
    """Whatever came before, a provider that answers in time from now on is let through
    again within one longest open period, closed after its trial calls, and stays closed:
    a call answered in time never opens it, whatever its window still holds."""
    breaker = CircuitBreaker("p", CONFIG)
    now = _drive(breaker, history, 0.0) + CONFIG.max_open_ms / 1000
    for _ in range(CONFIG.half_open_calls):
        allowed, _ = breaker.allow(now)
        assert allowed, breaker
        assert breaker.record(True, now) is None or breaker.state == "closed"
    assert breaker.current(now) == "closed", breaker
    for _ in range(3 * CONFIG.window_size):
        assert breaker.allow(now)[0], breaker
        assert breaker.record(True, now) is None


@settings(max_examples=500, deadline=None)
@given(history=steps, cancelled=st.integers(min_value=1, max_value=5))
def test_cancelled_calls_never_move_a_breaker(history, cancelled) -> None:
    """A call the coordinator cancelled gives its trial slot back and changes nothing else:
    the breaker's state, window and open period are those it had before."""
    breaker = CircuitBreaker("p", CONFIG)
    now = _drive(breaker, history, 0.0)
    before = (breaker.current(now), list(breaker.window), breaker.open_until, breaker.trips)
    for _ in range(cancelled):
        allowed, _ = breaker.allow(now)
        if allowed:
            breaker.release(now)
    after = (breaker.current(now), list(breaker.window), breaker.open_until, breaker.trips)
    assert after == before


@settings(max_examples=300, deadline=None)
@given(eligible=st.lists(st.booleans(), max_size=400))
def test_hedges_never_pass_their_budget(eligible) -> None:
    """Each request earns ``ratio`` of a hedge, ``burst`` at most saved: however often a
    hedge is asked for, at most ``burst + ratio x requests`` are paid."""
    budget = HedgeBudget(ratio=0.05, burst=2.0)
    for asks in eligible:
        budget.earn()
        if asks:
            budget.spend()
    assert budget.spent <= 2.0 + 0.05 * budget.earned

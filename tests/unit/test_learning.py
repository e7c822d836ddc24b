"""Provider statistics, predictions and prediction accuracy: pure functions."""

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridmcp.policy.learning import (
    ProviderStats,
    latency_prior_weight,
    latency_within_band,
    learned_from,
    mark_learned,
    observe_agreement,
    observe_call,
    observe_pass,
    percentile,
    predict,
    prediction_accuracy,
    prediction_hit,
)

PRIORS = {"prior_latency_ms": 25.0, "prior_quality": 0.9, "prior_cost": 0.001}


def feed(stats, latencies, ok=True, cost=0.001, t0=100.0, alpha=0.2):
    for i, latency in enumerate(latencies):
        stats = observe_call(stats, ok=ok, latency_ms=latency, cost=cost, now=t0 + i, alpha=alpha)
    return stats


def test_a_provider_never_seen_gets_its_priors():
    p = predict(None, **PRIORS)
    assert (p.latency_ms, p.p95_latency_ms, p.success, p.cost, p.quality) == (
        25.0,
        50.0,
        0.9,
        0.001,
        0.9,
    )
    assert p.observations == 0 and p.evidence == 0
    assert predict(ProviderStats("e", "s"), **PRIORS) == p


def test_first_calls_are_a_running_mean_then_an_ewma():
    s = feed(ProviderStats("e", "s"), [10.0, 20.0, 30.0])
    assert s.ewma_latency_ms == pytest.approx(20.0)  # the mean of three, not biased to 10
    assert s.calls == 3 and s.successes == 3 and s.evidence == 3
    # with plenty of evidence, a new call weighs alpha
    s = feed(ProviderStats("e", "s"), [10.0] * 20)
    after = observe_call(s, ok=True, latency_ms=110.0, cost=0.0, now=200.0, alpha=0.2)
    assert after.ewma_latency_ms == pytest.approx(10.0 + 0.2 * 100.0)


def test_counts_success_cost_and_times():
    s = feed(ProviderStats("e", "s"), [10.0, 10.0], cost=0.002)
    s = observe_call(s, ok=False, latency_ms=50.0, cost=0.0, now=500.0)
    assert (s.calls, s.successes, s.failures) == (3, 2, 1)
    assert s.success_rate == pytest.approx(2 / 3)
    assert s.cost_per_call == pytest.approx(0.004 / 3)
    assert s.last_call_at == 500.0 and s.updated_at == 500.0


def test_tail_estimate_sits_above_the_mean_for_varied_latencies():
    steady = feed(ProviderStats("e", "s"), [10.0] * 30)
    assert steady.p95_latency_ms == pytest.approx(10.0)
    varied = feed(ProviderStats("e", "s"), [10.0, 30.0] * 15)
    # alternating 10/30 ms: the estimate sits at the slow calls, not at the mean of 20
    assert 25.0 < varied.p95_latency_ms < 45.0


def test_agreement_rate_counts_cross_validations():
    s = ProviderStats("e", "s")
    assert s.agreement_rate is None
    for agreed in (True, True, False, True):
        s = observe_agreement(s, agreed=agreed, now=1.0)
    assert s.agreement_rate == 0.75 and s.cross_validations == 4


def test_a_disagreement_ends_the_streak_of_agreements():
    s = ProviderStats("e", "s")
    for _ in range(12):
        s = observe_agreement(s, agreed=True, now=1.0)
    assert s.agreement_streak == 12
    s = observe_agreement(s, agreed=False, now=2.0)
    assert s.agreement_streak == 0 and s.agreement_rate == pytest.approx(12 / 13)
    s = observe_agreement(s, agreed=True, now=3.0)
    assert s.agreement_streak == 1


def test_prediction_carries_the_agreement_evidence():
    never = predict(None, **PRIORS)  # a provider never seen: no evidence of agreement
    assert (never.cross_validations, never.agreement_rate, never.agreement_streak) == (0, None, 0)
    s = feed(ProviderStats("e", "s"), [10.0] * 4)
    assert predict(s, **PRIORS).agreement_rate is None  # called, never cross-validated
    for agreed in (False, True, True, True):
        s = observe_agreement(s, agreed=agreed, now=1.0)
    p = predict(s, **PRIORS)
    assert (p.cross_validations, p.agreement_rate, p.agreement_streak) == (4, 0.75, 3)
    assert p.to_dict()["agreement_streak"] == 3
    # records written before the streak was kept load with none: no evidence yet
    old = {k: v for k, v in s.to_dict().items() if k != "agreement_streak"}
    assert ProviderStats.from_dict(old).agreement_streak == 0


def test_disagreement_lowers_predicted_quality():
    s = feed(ProviderStats("e", "s"), [10.0] * 10)
    agreeing = predict(observe_agreement(s, agreed=True, now=1.0), **PRIORS)
    disagreeing = s
    for _ in range(5):
        disagreeing = observe_agreement(disagreeing, agreed=False, now=1.0)
    assert predict(disagreeing, **PRIORS).quality < agreeing.quality


def test_prediction_moves_from_the_prior_toward_the_measurements():
    one = predict(feed(ProviderStats("e", "s"), [5.0]), **PRIORS)
    many = predict(feed(ProviderStats("e", "s"), [5.0] * 30), **PRIORS)
    assert 5.0 < many.latency_ms < one.latency_ms < 25.0
    # calls that do not scatter: the prior's weight is its shrinkage alone, 3 / (30 + 3)
    assert many.latency_ms == pytest.approx(5.0 + 20.0 * (3 / 33) / (30 + 3 / 33))
    failing = predict(feed(ProviderStats("e", "s"), [5.0] * 30, ok=False), **PRIORS)
    assert failing.success == pytest.approx(0.9 * 3 / 33)  # the others keep prior_weight


def scattered(mean, spread, n):
    """``n`` latencies alternating ``mean - spread`` and ``mean + spread``."""
    return [mean + spread * (-1) ** i for i in range(n)]


def test_consistent_calls_outweigh_a_default_prior_sooner_than_scattered_ones():
    consistent = feed(ProviderStats("e", "s"), scattered(4.0, 0.5, 6))
    noisy = feed(ProviderStats("e", "s"), scattered(40.0, 60.0, 6))
    assert latency_prior_weight(consistent, 25.0, 3.0) < 0.5
    assert latency_prior_weight(noisy, 25.0, 3.0) == 3.0  # scatter far beyond the guess: capped
    like_the_guess = feed(ProviderStats("e", "s"), scattered(25.0, 20.0, 40))
    assert 0.6 < latency_prior_weight(like_the_guess, 25.0, 3.0) < 1.2  # about one
    near, far = predict(consistent, **PRIORS), predict(noisy, **PRIORS)
    mean = consistent.ewma_latency_ms
    assert mean < near.latency_ms < 1.3 * mean  # with the prior as 3 calls: about 2.8 x mean
    assert far.latency_ms - noisy.ewma_latency_ms == pytest.approx(
        (25.0 - noisy.ewma_latency_ms) * 3 / (6 + 3)
    )


def test_a_single_call_does_not_silence_the_prior():
    one = feed(ProviderStats("e", "s"), [4.0])
    assert one.ewma_latency_dev_ms == 0  # no scatter seen yet
    assert latency_prior_weight(one, 25.0, 3.0) == pytest.approx(3 / 4)
    assert 4.0 < predict(one, **PRIORS).latency_ms < 25.0


def test_a_consistent_provider_passed_over_still_drifts_back_to_its_prior():
    s = feed(ProviderStats("e", "s"), scattered(400.0, 10.0, 20))
    fresh = predict(s, **PRIORS)
    for i in range(250):  # ten half-lives
        s = observe_pass(s, now=1000.0 + i)
    aged = predict(s, **PRIORS)
    assert aged.latency_ms < 0.5 * fresh.latency_ms
    assert latency_prior_weight(s, 25.0, 3.0) > 0.9  # the scatter's evidence aged too


def test_without_a_prior_latency_the_configured_weight_applies():
    s = feed(ProviderStats("e", "s"), scattered(4.0, 0.5, 6))
    assert latency_prior_weight(s, 0.0, 3.0) == 3.0


def test_staleness_decays_evidence_toward_the_prior():
    slow = feed(ProviderStats("e", "s"), [400.0] * 20)
    fresh = predict(slow, **PRIORS)
    stale = slow
    for i in range(50):
        stale = observe_pass(stale, now=1000.0 + i, half_life=10.0)
    assert stale.passed_over == 50
    assert stale.evidence == pytest.approx(20 * 0.5**5)
    aged = predict(stale, **PRIORS)
    assert 25.0 < aged.latency_ms < fresh.latency_ms
    assert aged.observations == 20  # the call count stays; only the evidence ages
    # the next call, backed by little evidence, mostly replaces what was known
    recovered = observe_call(stale, ok=True, latency_ms=5.0, cost=0.001, now=2000.0)
    assert recovered.passed_over == 0
    assert recovered.ewma_latency_ms < 0.4 * 400.0


def test_old_records_load_with_evidence_from_their_call_count():
    s = ProviderStats.from_dict({"provider": "e", "skill": "s", "calls": 7, "future_key": 1})
    assert s.evidence == 7 and s.calls == 7


def test_latency_band_is_a_factor_or_a_few_milliseconds():
    assert latency_within_band(100.0, 190.0) and latency_within_band(100.0, 55.0)
    assert not latency_within_band(100.0, 250.0) and not latency_within_band(100.0, 40.0)
    assert latency_within_band(1.0, 0.05)  # within the absolute slack


def test_prediction_hit_needs_the_outcome_and_the_latency():
    p = {"success": 0.9, "latency_ms": 20.0}
    assert prediction_hit(p, ok=True, latency_ms=25.0)
    assert not prediction_hit(p, ok=True, latency_ms=400.0)
    assert not prediction_hit(p, ok=False, latency_ms=25.0)
    assert prediction_hit({"success": 0.2, "latency_ms": 20.0}, ok=False, latency_ms=999.0)


def test_prediction_accuracy_over_attempts():
    predictions = {
        ("r1", "e"): {"success": 0.9, "latency_ms": 20.0},
        ("r2", "e"): {"success": 0.9, "latency_ms": 20.0},
        ("r3", "i"): {"success": 0.9, "latency_ms": 1.0},
    }
    attempts = [
        {"request_id": "r1", "provider": "e", "ok": True, "latency_ms": 22.0},
        {"request_id": "r2", "provider": "e", "ok": True, "latency_ms": 300.0},
        {"request_id": "r3", "provider": "i", "ok": False, "latency_ms": 0.5},
        {"request_id": "r3", "provider": "x", "ok": True, "latency_ms": 1.0},  # not predicted
    ]
    acc = prediction_accuracy(attempts, predictions)
    assert acc["attempts"] == 3
    assert acc["accuracy"] == pytest.approx(1 / 3, abs=1e-3)
    assert acc["success_accuracy"] == pytest.approx(2 / 3, abs=1e-3)
    assert acc["latency_accuracy"] == pytest.approx(1 / 2)
    assert prediction_accuracy([], predictions)["accuracy"] is None


def test_a_run_is_remembered_so_it_is_never_counted_twice():
    s = ProviderStats("e", "s")
    assert not learned_from(s, "run-1@1.0")
    s = mark_learned(s, "run-1@1.0")
    assert learned_from(s, "run-1@1.0") and not learned_from(s, "run-1@2.0")
    for i in range(40):
        s = mark_learned(s, f"r{i}", keep=16)
    assert len(s.recent_runs) == 16 and learned_from(s, "r39") and not learned_from(s, "r0")
    assert ProviderStats.from_dict(s.to_dict() | {"recent_runs": list(s.recent_runs)}) == s


@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=60),
    st.integers(1, 99),
)
def test_percentile_is_linear_interpolation_between_ranks(values, q):
    """The same as numpy's default and the ``inclusive`` method of :mod:`statistics`."""
    expected = statistics.quantiles(values, n=100, method="inclusive")[q - 1]
    assert percentile(values, q) == pytest.approx(expected, rel=1e-9, abs=1e-6)


def test_percentile_ends_and_one_value():
    assert percentile([3.0], 99) == 3.0
    assert percentile([5.0, 1.0, 3.0], 0) == 1.0
    assert percentile([5.0, 1.0, 3.0], 100) == 5.0
    assert percentile([1.0, 2.0], 50) == 1.5
    with pytest.raises(ValueError):
        percentile([], 50)


def test_prediction_accuracy_scores_only_what_the_provider_did():
    """A hedge that lost, a straggler cut, a call cut by the run's deadline, one never sent
    (still queued, refused by the gate), one failed by its request's fault: none proves a
    prediction wrong (a run with one cancelled hedge scored 2 of 3 on success before)."""
    predicted = {"success": 0.9, "latency_ms": 10.0}
    ours = [
        {"ok": False, "latency_ms": 0.3, "censored": "hedge lost", "cancelled": "hedge lost"},
        {"ok": False, "latency_ms": 40.0, "censored": "straggler", "cancelled": "straggler"},
        {"ok": False, "latency_ms": 50.0, "censored": "run deadline"},
        {"ok": False, "latency_ms": 0.0, "sent": False, "error_kind": "queued"},
        {"ok": False, "latency_ms": 0.0, "sent": False, "error_kind": "refused"},
        {"ok": False, "latency_ms": 2.0, "error_kind": "request"},
    ]
    attempts = [{"request_id": "r0", "provider": "e", "ok": True, "latency_ms": 11.0}]
    attempts += [{"request_id": f"r{i}", "provider": "e", **a} for i, a in enumerate(ours, 1)]
    predictions = {(a["request_id"], "e"): predicted for a in attempts}
    acc = prediction_accuracy(attempts, predictions)
    assert (acc["attempts"], acc["accuracy"], acc["success_accuracy"]) == (1, 1.0, 1.0)

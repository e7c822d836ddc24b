"""``predict`` blends the learned statistics with the priors exactly as its reference does:
the prior's values taken from a built ``prior_prediction`` (Hypothesis, any statistics), and
the predictions the accuracy of a run is measured against are those numbers."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hybridmcp.policy.learning import (
    Prediction,
    ProviderStats,
    latency_prior_weight,
    predict,
    prior_prediction,
)


def reference_predict(
    stats: ProviderStats | None,
    *,
    prior_latency_ms: float,
    prior_quality: float,
    prior_cost: float,
    prior_weight: float,
) -> Prediction:
    """The blend as written against a built prior prediction."""
    prior = prior_prediction(latency_ms=prior_latency_ms, quality=prior_quality, cost=prior_cost)
    if stats is None or stats.calls == 0 or stats.ewma_latency_ms is None:
        return prior
    n = stats.evidence
    w = n / (n + prior_weight)
    w_latency = n / (n + latency_prior_weight(stats, prior_latency_ms, prior_weight))
    success = w * (stats.success_rate or 0.0) + (1 - w) * prior.success
    quality = success
    if stats.agreement_rate is not None:
        v = stats.cross_validations / (stats.cross_validations + prior_weight)
        quality = success * (v * stats.agreement_rate + (1 - v))
    if stats.refutations:
        quality *= 2 * min(0.5, stats.trust)
    latency = w_latency * stats.ewma_latency_ms + (1 - w_latency) * prior.latency_ms
    learned_p95 = stats.p95_latency_ms if stats.p95_latency_ms is not None else latency * 2
    p95 = w_latency * learned_p95 + (1 - w_latency) * prior.p95_latency_ms
    cost = w * (stats.cost_per_call or 0.0) + (1 - w) * prior.cost
    return Prediction(
        latency,
        max(p95, latency),
        success,
        cost,
        quality,
        stats.calls,
        round(n, 4),
        stats.cross_validations,
        None if stats.agreement_rate is None else round(stats.agreement_rate, 4),
        stats.agreement_streak,
        stats.confirmations,
        stats.refutations,
        round(w * (stats.slow_rate or 0.0), 4),
    )


RATE = st.none() | st.floats(0, 1)
MS = st.floats(0, 1e5, allow_subnormal=False)


@st.composite
def stats(draw: st.DrawFn) -> ProviderStats | None:
    if draw(st.booleans()) and draw(st.booleans()):
        return None
    cv = draw(st.integers(0, 30))
    return ProviderStats(
        "p",
        "s",
        calls=draw(st.integers(0, 100)),
        successes=draw(st.integers(0, 100)),
        ewma_latency_ms=draw(st.none() | MS),
        ewma_latency_dev_ms=draw(MS),
        p95_latency_ms=draw(st.none() | MS),
        success_rate=draw(RATE),
        slow_rate=draw(RATE),
        cross_validations=cv,
        agreements=draw(st.integers(0, cv)),
        agreement_streak=draw(st.integers(0, cv)),
        confirmations=draw(st.integers(0, 20)),
        refutations=draw(st.integers(0, 20)),
        cost_per_call=draw(st.none() | st.floats(0, 10)),
        evidence=draw(st.floats(0, 200)),
    )


@settings(max_examples=500, deadline=None)
@given(
    stats(),
    st.floats(0.01, 1e5),  # a configured latency (a tiny one overflows the prior's weight)
    st.floats(0, 1),
    st.floats(0, 10),
    st.floats(0.5, 10),
)
def test_predict_is_its_reference(
    learned: ProviderStats | None, latency: float, quality: float, cost: float, weight: float
) -> None:
    kwargs = dict(
        prior_latency_ms=latency, prior_quality=quality, prior_cost=cost, prior_weight=weight
    )
    assert predict(learned, **kwargs) == reference_predict(learned, **kwargs)

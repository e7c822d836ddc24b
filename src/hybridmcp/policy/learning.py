"""Per-provider performance memory: pure update functions over plain values.

Statistics are kept per (provider, skill): an exponentially weighted moving average (EWMA) of
latency, a running tail-latency estimate, success and agreement rates, cost, and call counts.
The moving average is the spec's ``performance_baseline: moving_average``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class ProviderStats:
    provider: str
    skill: str
    calls: int = 0
    successes: int = 0
    ewma_latency_ms: float | None = None
    ewma_latency_dev_ms: float = 0.0
    p95_latency_ms: float | None = None
    success_rate: float | None = None
    cross_validations: int = 0
    agreements: int = 0
    cost_per_call: float | None = None
    updated_at: float | None = None

    @property
    def agreement_rate(self) -> float | None:
        return self.agreements / self.cross_validations if self.cross_validations else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProviderStats:
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in fields})


def _ewma(old: float | None, new: float, alpha: float) -> float:
    return new if old is None else (1 - alpha) * old + alpha * new


def observe_call(
    stats: ProviderStats,
    *,
    ok: bool,
    latency_ms: float,
    cost: float,
    now: float,
    alpha: float = 0.2,
) -> ProviderStats:
    """Fold one attempt into the statistics.

    The tail estimate follows mean + 2 deviations of the EWMA (a Jacobson/Karels-style
    estimator, as TCP uses for retransmission timeouts), which tracks p95 for roughly normal
    latencies without keeping samples.
    """
    mean = _ewma(stats.ewma_latency_ms, latency_ms, alpha)
    dev = (
        0.0
        if stats.ewma_latency_ms is None
        else (1 - alpha) * stats.ewma_latency_dev_ms + alpha * abs(latency_ms - mean)
    )
    return replace(
        stats,
        calls=stats.calls + 1,
        successes=stats.successes + int(ok),
        ewma_latency_ms=mean,
        ewma_latency_dev_ms=dev,
        p95_latency_ms=mean + 2 * dev,
        success_rate=_ewma(stats.success_rate, 1.0 if ok else 0.0, alpha),
        cost_per_call=_ewma(stats.cost_per_call, cost, alpha),
        updated_at=now,
    )


def observe_agreement(stats: ProviderStats, *, agreed: bool, now: float) -> ProviderStats:
    """Fold one cross-validation outcome into the statistics."""
    return replace(
        stats,
        cross_validations=stats.cross_validations + 1,
        agreements=stats.agreements + int(agreed),
        updated_at=now,
    )


@dataclass(frozen=True)
class Prediction:
    """What arbitration expects of a provider: the spec's ``performance_prediction``."""

    latency_ms: float
    p95_latency_ms: float
    success: float
    cost: float
    quality: float
    observations: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def predict(
    stats: ProviderStats | None,
    *,
    prior_latency_ms: float,
    prior_quality: float,
    prior_cost: float,
    prior_weight: int = 3,
) -> Prediction:
    """Expected performance of a provider, blending priors with what was learned.

    A provider never seen gets its configured priors; each observation shifts the prediction
    toward the measurements, the prior counting as ``prior_weight`` observations.
    """
    if stats is None or stats.calls == 0 or stats.ewma_latency_ms is None:
        return Prediction(
            prior_latency_ms, prior_latency_ms * 2, prior_quality, prior_cost, prior_quality, 0
        )
    w = stats.calls / (stats.calls + prior_weight)
    success = w * (stats.success_rate or 0.0) + (1 - w) * prior_quality
    quality = success
    if stats.agreement_rate is not None:
        v = stats.cross_validations / (stats.cross_validations + prior_weight)
        quality = success * (v * stats.agreement_rate + (1 - v))
    latency = w * stats.ewma_latency_ms + (1 - w) * prior_latency_ms
    p95 = stats.p95_latency_ms if stats.p95_latency_ms is not None else latency * 2
    cost = w * (stats.cost_per_call or 0.0) + (1 - w) * prior_cost
    return Prediction(latency, max(p95, latency), success, cost, quality, stats.calls)

"""Hedged requests and stragglers: what a worker watches for while its call runs. Pure.

A *hedge* (Dean and Barroso, "The Tail at Scale") starts the other side of a single-side request
once the preferred provider has run past its tail-latency estimate (the p95 prediction); the first
valid answer wins and the other call is cancelled. Hedges are paid from a token budget, as gRPC
and Finagle bound their retries: each single-side request earns ``budget_ratio`` of a hedge (5%
by default), so hedging adds at most that share of extra calls, plus ``budget_burst``, however
slow a provider gets. A prediction needs ``min_observations`` calls behind it before it can
trigger a hedge, so a provider's first calls never do.

A *straggler* is one side of a hybrid (cross-validated) request that runs past its degradation
threshold after the other side has already answered: the worker stops waiting for it, and the
request settles on the answer it has.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hybridmcp.config import DegradationConfig, HedgingConfig, ResilienceConfig

OTHER_SIDE = {"internal": "external", "external": "internal"}


def slow_threshold_ms(prediction: Mapping[str, Any] | None, cfg: DegradationConfig) -> float | None:
    """The latency past which a call counts as degraded: ``max(3 x EWMA, 1.5 x p95)`` by
    default (never under ``min_slow_ms``), once the baseline has ``min_observations`` calls; None
    before that."""
    if not prediction or (prediction.get("observations") or 0) < cfg.min_observations:
        return None
    return max(
        cfg.latency_ewma_factor * float(prediction["latency_ms"]),
        cfg.latency_p95_factor * float(prediction["p95_latency_ms"]),
        cfg.min_slow_ms,
    )


def hedge_target(
    allocation: Mapping[str, Any], provider_id: str, cfg: HedgingConfig
) -> dict[str, Any] | None:
    """Where and when to hedge a single-side request's call to ``provider_id``, or None."""
    if not cfg.enabled or allocation.get("mode") not in ("internal", "external"):
        return None
    if allocation.get("effect") == "write":  # a hedge would write a second time
        return None
    scores = allocation.get("scores", {})
    mine = scores.get(provider_id, {})
    prediction = mine.get("prediction") or {}
    if (prediction.get("observations") or 0) < cfg.min_observations:
        return None
    other = OTHER_SIDE.get(mine.get("side", ""))
    alternative = next(
        (p for p in allocation.get("ranking", ()) if scores.get(p, {}).get("side") == other), None
    )
    if alternative is None:
        return None
    return {
        "provider": alternative,
        "side": other,
        "after_ms": round(max(float(prediction["p95_latency_ms"]), cfg.min_delay_ms), 3),
    }


def watch_plan(
    allocation: Mapping[str, Any],
    provider_id: str,
    cfg: ResilienceConfig,
    round_no: int = 1,
    *,
    monitoring: bool = True,
    parallel: bool = True,
) -> dict[str, Any]:
    """What the worker running ``provider_id`` for this allocation watches for.

    ``slow_after_ms``: the degradation threshold (a later answer counts as slow for the circuit
    breaker); ``hedge``: the provider to start past ``after_ms``; ``peer_side``: in a hybrid,
    non-critical request's first round, the side whose answer lets this one stop as a
    straggler. Without performance ``monitoring`` nothing is judged by its latency (no
    threshold, no hedge, no straggler cut); without ``parallel`` execution nothing races (no
    hedge, no straggler cut). Errors still move work either way.
    """
    mine = allocation.get("scores", {}).get(provider_id, {})
    plan: dict[str, Any] = {
        "slow_after_ms": slow_threshold_ms(mine.get("prediction"), cfg.degradation)
        if monitoring
        else None,
        "hedge": None,
        "peer_side": None,
    }
    if round_no == 1 and monitoring and parallel:
        plan["hedge"] = hedge_target(allocation, provider_id, cfg.hedging)
        # A critical request is never settled on one answer to save time: its slow side is
        # waited for (to its own deadline), so that it is cross-validated.
        hybrid = allocation.get("mode") == "hybrid" and not allocation.get("critical")
        if hybrid and cfg.degradation.cut_stragglers:
            plan["peer_side"] = OTHER_SIDE.get(mine.get("side", ""))
    return plan


@dataclass
class HedgeBudget:
    """Tokens for hedges: each eligible request earns ``ratio``; a hedge spends one."""

    ratio: float = 0.05
    burst: float = 10.0
    tokens: float = 0.0
    earned: int = 0
    spent: int = 0

    @classmethod
    def from_config(cls, cfg: HedgingConfig) -> HedgeBudget:
        return cls(cfg.budget_ratio, cfg.budget_burst)

    def earn(self) -> None:
        self.earned += 1
        self.tokens = min(self.burst, self.tokens + self.ratio)

    def spend(self) -> bool:
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        self.spent += 1
        return True


PIN_ALPHA = 0.05
"""How fast a provider's pinned slow threshold follows its healthy calls' thresholds."""


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class HealthWatch:
    """What the workers remember of each provider between calls. Pure state, no clock, no I/O;
    owned by the runtime resources, so two coordinators never share it.

    - the hedge budget;
    - a *pinned* slow threshold per provider, following its healthy calls slowly, so a slowdown
      that the moving average has begun to absorb still counts as one;
    - the *recent* answered latencies (provider time, queue excluded): the threshold never falls
      below ``latency_ewma_factor`` x their 75th percentile, so load that slows every call (CPU
      contention, many runs at once) becomes the new normal within a few calls instead of
      flagging them all. A provider that alone turns slow is flagged until a quarter of the
      window has seen it, long enough for its breaker and its learned slow rate;
    - *suspect* providers: their last judged call was slow, so their next calls are hedged at
      the tail estimate of their last healthy call until one answers in normal time.
    """

    hedges: HedgeBudget
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    pinned: dict[str, float] = field(default_factory=dict)
    recent: dict[str, deque[float]] = field(default_factory=dict)
    suspect: set[str] = field(default_factory=set)
    healthy_tail: dict[str, float] = field(default_factory=dict)
    _floor: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    """Per provider, the 75th percentile of ``recent``, until the window changes: calls
    started together share one sort."""

    @classmethod
    def from_config(cls, cfg: ResilienceConfig) -> HealthWatch:
        return cls(HedgeBudget.from_config(cfg.hedging), cfg.degradation)

    def threshold(self, provider: str, planned_ms: float | None) -> float | None:
        """The slow threshold to judge a call by: the planned one, lowered to the pinned
        healthy one, raised to the floor of recent healthy latencies."""
        if planned_ms is None:
            return None
        pinned = self.pinned.get(provider)
        current = planned_ms if pinned is None else min(planned_ms, pinned)
        recent = self.recent.get(provider)
        if recent and len(recent) >= self.degradation.min_observations:
            q75 = self._floor.get(provider)
            if q75 is None:
                q75 = self._floor[provider] = _quantile(recent, 0.75)
            current = max(current, self.degradation.latency_ewma_factor * q75)
        return max(current, self.degradation.min_slow_ms)

    def hedge_delay(self, provider: str, after_ms: float) -> float | None:
        """For a suspect provider, when to hedge (its last healthy tail); None otherwise."""
        if provider not in self.suspect:
            return None
        return min(after_ms, self.healthy_tail.get(provider, after_ms))

    def remember(
        self,
        provider: str,
        *,
        latency_ms: float,
        ok: bool,
        threshold_ms: float | None,
        planned_ms: float | None,
        hedge_after_ms: float | None = None,
    ) -> bool:
        """Fold one judged call in (provider time); True when it was slow."""
        if threshold_ms is None:
            if ok:
                self._answered(provider, latency_ms)
            return False
        slow = latency_ms > threshold_ms
        if ok:
            self._answered(provider, latency_ms)
        if slow:
            self.suspect.add(provider)
            return True
        if not ok:
            return False
        self.suspect.discard(provider)
        if hedge_after_ms is not None:
            self.healthy_tail[provider] = hedge_after_ms
        if planned_ms is not None:
            pinned = self.pinned.get(provider, planned_ms)
            self.pinned[provider] = pinned + PIN_ALPHA * (planned_ms - pinned)
        return False

    def _answered(self, provider: str, latency_ms: float) -> None:
        size = self.degradation.recent_window
        if size <= 0:
            return
        window = self.recent.setdefault(provider, deque(maxlen=size))
        window.append(latency_ms)
        self._floor.pop(provider, None)

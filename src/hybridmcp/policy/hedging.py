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
request settles on the answer it has. Only a side a conflict would not keep is cut so: when
its answer would win a disagreement (the side whose strengths the request needs, or with the
stronger evidence or a-priori confidence, :func:`~hybridmcp.policy.integration.kept_over`),
settling on the other side's answer would return the answer a conflict overrides, so it is
waited for.

*In flight.* Calls the coordinator sends at once share the server's session; a server that works
through them one at a time (a single stdio process) answers a call that shares it with ``k``
others up to ``k + 1`` times later than a lone call, through no fault of its own. Every latency
judgement (the slow threshold, the hedge and straggler timers, the breaker's slow flag) is
therefore made *at the call's load* ``k``, the most other calls in flight on its session at any
moment while it was (:func:`at_load`): against what that provider's recent calls at the same
load took (in power-of-two buckets: 0, 1, 2-3, 4-7, ...), and before there are enough of those,
against ``k + 1`` times what a lone call is held to. A call alone is judged exactly as before.
Whatever its calls at that load took, a call is held to no more than ``k + 1`` lone thresholds,
what the calls ahead of it can explain.
A call past its threshold that shared its session is still not slow when its *service time*
(from the later of its sending and the server's last answer to another call, to its own
answer) is within what the provider's calls at that load show (:func:`shared_lateness`; at a
load not seen healthy, within what a lone call is held to too): the server kept answering the
calls beside it, so its lateness was theirs (a call queued behind a long one is late, not
slow; a server that answers nothing at all is slow for every call it holds once that silence
outlasts its usual service time). The degraded hedge and the straggler
cut wait on the same terms.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hybridmcp.config import DegradationConfig, HedgingConfig, ResilienceConfig
from hybridmcp.policy.integration import kept_over

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
    """Where and when to hedge a single-side request's call to ``provider_id``, or None. Never
    to a side that lacks the strengths the request needs when this one has them
    (``strengths_needed``: e.g. real-time data, which a replica's answer may not hold): the
    call is waited for instead, and moves only if it fails."""
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
    needed = allocation.get("strengths_needed") or {}
    if needed.get(mine.get("side")) and not needed.get(other):
        return None  # the other side lacks what the request needs: its answer would not do
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
    straggler, unless ``kept``: a conflict would keep this side's answer, so it is waited for
    (the other side still stops when this one answers first). Without performance
    ``monitoring`` nothing is judged by its latency (no threshold, no hedge, no straggler
    cut); without ``parallel`` execution nothing races (no hedge, no straggler cut). Errors
    still move work either way.
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
            if _kept_over_peer(allocation, mine, plan["peer_side"]):
                plan["kept"] = True  # waited for: its answer would win a disagreement
    return plan


def _kept_over_peer(
    allocation: Mapping[str, Any], mine: Mapping[str, Any], peer_side: str | None
) -> bool:
    """Would a conflict keep this provider's answer over the other side's (its first chosen
    provider's)? Then it is never cut as a straggler."""
    scores = allocation.get("scores", {})
    peer = next(
        (
            scores[p]
            for p in allocation.get("providers", ())
            if p in scores and scores[p].get("side") == peer_side
        ),
        None,
    )
    return peer is not None and kept_over(mine, peer)


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


def load_bucket(in_flight: int | None) -> int:
    """A call's load as a bucket: most other calls in flight beside it on its session 0, 1,
    2-3, 4-7, 8-15, ... -> 0, 1, 2, 3, 4, ... (None, a call not sent on a session: 0)."""
    return max(0, in_flight or 0).bit_length()


def at_load(
    lone_ms: float,
    in_flight: int | None,
    recent: Sequence[float] | None,
    *,
    factor: float,
    quantile: float,
    min_observations: int,
    quantile_of: Callable[[Sequence[float], float], float] | None = None,
) -> float:
    """What a call with ``in_flight`` other calls in flight beside it on its session is held to,
    given ``lone_ms``, what it would be held to sent alone (a slow threshold, a hedge delay).

    ``recent``: the provider's recent answered latencies at the call's load
    (:func:`load_bucket`). With ``min_observations`` of them: ``lone_ms``, raised to ``factor``
    x their ``quantile``, so a server that works through its calls in turn is held to what its
    calls at that load take, and a server that serves them side by side (whose calls take as long
    at any load) to what it always was. Before that: ``(in_flight + 1) x lone_ms``, what a server
    serving one call at a time would need, at worst, for the others and this one. Never
    below ``lone_ms``: more calls in flight never make a judgement stricter; never above
    ``(in_flight + 1) x lone_ms``: a window that has learned a slowness (a server that turned
    slow at a load it had not been seen healthy at fills it within ``min_observations`` calls)
    does not excuse more than the calls ahead can explain.
    ``quantile_of``: what computes the quantile (:func:`_quantile`, or a memory of it)."""
    if not in_flight or in_flight <= 0:
        return lone_ms
    if recent is not None and len(recent) >= min_observations:
        worst = lone_ms * (in_flight + 1)
        return min(worst, max(lone_ms, factor * (quantile_of or _quantile)(recent, quantile)))
    return lone_ms * (in_flight + 1)


def service_limit(
    in_flight: int | None,
    recent_service: Sequence[float] | None,
    *,
    factor: float,
    min_observations: int,
    floor_ms: float,
    lone_ms: float | None = None,
    quantile_of: Callable[[Sequence[float], float], float] | None = None,
) -> float | None:
    """The longest service time a call sharing its session (``in_flight`` > 0) may take and
    still have shared its lateness (:func:`shared_lateness`): ``factor`` x the 75th percentile
    of the provider's recent service times at that load, never under ``floor_ms``; None for a
    call alone, or before ``min_observations`` service times at that load (``quantile_of``: as
    in :func:`at_load`). Never above ``lone_ms`` (what a lone call is held to, when known)
    unless ``min_observations`` of those service times are within it: a load not seen healthy
    (a server that turned slow as it first reached that load fills its window within
    ``min_observations`` calls) does not excuse a service time no queue explains, longer than
    a whole lone call may take."""
    if not in_flight or recent_service is None or len(recent_service) < min_observations:
        return None
    of = quantile_of or _quantile
    usual = factor * of(recent_service, 0.75)
    nth = (min_observations - 0.5) / len(recent_service)  # the min_observations-th smallest
    if lone_ms is not None and of(recent_service, nth) > lone_ms:
        usual = min(lone_ms, usual)
    return max(floor_ms, usual)


def shared_lateness(
    service_ms: float | None,
    in_flight: int | None,
    recent_service: Sequence[float] | None,
    *,
    factor: float,
    min_observations: int,
    floor_ms: float,
    lone_ms: float | None = None,
) -> bool:
    """Was a late call's lateness shared with the calls beside it? True when it shared its
    session (``in_flight`` > 0) and its service time (from the later of its sending and the
    server's last answer to another call, to its own answer) is within ``factor`` x the 75th
    percentile of the provider's recent service times at that load (``min_observations`` of
    them at least; within ``lone_ms`` too at a load not seen healthy: :func:`service_limit`),
    and under ``floor_ms``-at-least: the server answered the others meanwhile, at its usual
    pace. A server that turns slow answers every call later, so service times grow with
    latencies and nothing is excused; a stall that holds up every call in flight shows as one
    long service time, the first answer's after it."""
    limit = service_limit(
        in_flight,
        recent_service,
        factor=factor,
        min_observations=min_observations,
        floor_ms=floor_ms,
        lone_ms=lone_ms,
    )
    return limit is not None and service_ms is not None and service_ms <= limit


PIN_ALPHA = 0.05
"""How fast a provider's pinned slow threshold follows its healthy calls' thresholds."""


def _quantile(values: Sequence[float], q: float) -> float:
    return _of_sorted(sorted(values), q)


def _of_sorted(ordered: Sequence[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class HealthWatch:
    """What the workers remember of each provider between calls. Pure state, no clock, no I/O;
    owned by the runtime resources, so two coordinators never share it.

    - the hedge budget;
    - a *pinned* slow threshold per provider, following its healthy calls slowly, so a slowdown
      that the moving average has begun to absorb still counts as one;
    - the *recent* answered latencies (provider time, queue excluded), per load the calls were
      had (:func:`load_bucket`): a lone call's threshold never falls below
      ``latency_ewma_factor`` x the 75th percentile of the lone calls', so load that slows every
      call (CPU contention, many runs at once) becomes the new normal within a few calls instead
      of flagging them all; a call beside others is judged against the calls at its
      load (:func:`at_load`). A provider that alone turns slow is flagged until a quarter of the
      window has seen it, long enough for its breaker and its learned slow rate;
    - *suspect* providers: their last judged call was slow, so their next calls are hedged at
      the tail estimate of their last healthy call until one answers in normal time.
    """

    hedges: HedgeBudget
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    pinned: dict[str, float] = field(default_factory=dict)
    recent: dict[tuple[str, int], deque[float]] = field(default_factory=dict)
    """Recent answered latencies by (provider, :func:`load_bucket`)."""
    recent_service: dict[tuple[str, int], deque[float]] = field(default_factory=dict)
    """Recent answered service times by (provider, :func:`load_bucket`) (see
    :func:`shared_lateness`)."""
    suspect: set[str] = field(default_factory=set)
    healthy_tail: dict[str, float] = field(default_factory=dict)
    _floor: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    """Per provider, the 75th percentile of its lone calls in ``recent``, until that window
    changes: calls started together share one sort."""
    _sorted: dict[int, tuple[deque[float], list[float]]] = field(
        default_factory=dict, init=False, repr=False
    )
    """Each window of ``recent`` and ``recent_service`` (by its ``id``, held with it), sorted:
    a call's judgements (its slow threshold and whether its lateness was shared, in the gate
    and again when it is judged) share one sort, and a value added to the window moves in and
    out of the sorted copy as it does of the window (:meth:`_add`) instead of a new sort."""

    @classmethod
    def from_config(cls, cfg: ResilienceConfig) -> HealthWatch:
        return cls(HedgeBudget.from_config(cfg.hedging), cfg.degradation)

    def threshold(self, provider: str, planned_ms: float | None) -> float | None:
        """The slow threshold to judge a lone call by: the planned one, lowered to the pinned
        healthy one, raised to the floor of recent healthy lone latencies (a call sent behind
        others: :meth:`slow_at_load`)."""
        if planned_ms is None:
            return None
        pinned = self.pinned.get(provider)
        current = planned_ms if pinned is None else min(planned_ms, pinned)
        recent = self.recent.get((provider, 0))
        if recent and len(recent) >= self.degradation.min_observations:
            q75 = self._floor.get(provider)
            if q75 is None:
                q75 = self._floor[provider] = _quantile(recent, 0.75)
            current = max(current, self.degradation.latency_ewma_factor * q75)
        return max(current, self.degradation.min_slow_ms)

    def slow_at_load(self, provider: str, threshold_ms: float, in_flight: int | None) -> float:
        """The slow threshold of a call with ``in_flight`` other calls in flight beside it on its
        session, ``threshold_ms`` being a lone call's (:func:`at_load`; 75th percentile)."""
        cfg = self.degradation
        return at_load(
            threshold_ms,
            in_flight,
            self.recent.get((provider, load_bucket(in_flight))),
            factor=cfg.latency_ewma_factor,
            quantile=0.75,
            min_observations=cfg.min_observations,
            quantile_of=self._quantile,
        )

    def tail_at_load(self, provider: str, after_ms: float, in_flight: int | None) -> float:
        """When to hedge a call with ``in_flight`` other calls in flight beside it on its session,
        ``after_ms`` being a lone call's hedge delay (:func:`at_load`; 95th percentile)."""
        return at_load(
            after_ms,
            in_flight,
            self.recent.get((provider, load_bucket(in_flight))),
            factor=1.0,
            quantile=0.95,
            min_observations=self.degradation.min_observations,
            quantile_of=self._quantile,
        )

    def service_limit(self, provider: str, in_flight: int | None) -> float | None:
        """The longest service time at this load that still shares its lateness
        (:func:`service_limit`, a lone call's threshold being :meth:`lone_ms`); None: a late
        call is slow whatever its service time."""
        if not in_flight:
            return None
        cfg = self.degradation
        return service_limit(
            in_flight,
            self.recent_service.get((provider, load_bucket(in_flight))),
            factor=cfg.latency_ewma_factor,
            min_observations=cfg.min_observations,
            floor_ms=cfg.min_slow_ms,
            lone_ms=self.lone_ms(provider),
            quantile_of=self._quantile,
        )

    def lone_ms(self, provider: str) -> float | None:
        """What a lone call of the provider is held to, as remembered: its pinned healthy
        threshold, raised to the floor of its recent lone calls (:meth:`threshold`); None
        before a healthy call of it was judged."""
        return self.threshold(provider, self.pinned.get(provider))

    def _quantile(self, window: Sequence[float], q: float) -> float:
        """:func:`_quantile` of one of this watch's windows, sorted once until it changes."""
        kept = self._sorted.get(id(window))
        if kept is None or kept[0] is not window:
            ordered = sorted(window)
            if isinstance(window, deque) and not any(map(math.isnan, ordered)):
                # one of the windows (NaN, which orders with nothing, is never kept)
                self._sorted[id(window)] = (window, ordered)
            return _of_sorted(ordered, q)
        return _of_sorted(kept[1], q)

    def _add(self, window: deque[float], value: float) -> None:
        """Append to a window, and to its sorted copy if kept: the value leaving a full window
        is its oldest, the first of its equals in a stable sort (so taken out at the left), and
        the new one the last of its equals (put in at the right), just where ``sorted`` of the
        window puts them."""
        kept = self._sorted.get(id(window))
        leaving = window[0] if window.maxlen is not None and len(window) == window.maxlen else None
        window.append(value)
        if kept is None or kept[0] is not window:
            return
        if math.isnan(value) or (leaving is not None and math.isnan(leaving)):
            del self._sorted[id(window)]
            return
        ordered = kept[1]
        if leaving is not None:
            del ordered[bisect.bisect_left(ordered, leaving)]
        bisect.insort_right(ordered, value)

    def shared(self, provider: str, service_ms: float | None, in_flight: int | None) -> bool:
        """Was a late call's lateness shared with the calls beside it (:func:`shared_lateness`)?"""
        limit = self.service_limit(provider, in_flight)
        return limit is not None and service_ms is not None and service_ms <= limit

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
        in_flight: int | None = None,
        service_ms: float | None = None,
    ) -> bool:
        """Fold one judged call in (provider time; ``threshold_ms`` already at the call's load,
        ``in_flight`` other calls in flight beside it at most, ``service_ms`` its service time);
        True when it was slow: past the threshold, its lateness not shared
        (:meth:`shared`)."""
        if threshold_ms is None:
            if ok:
                self._answered(provider, latency_ms, in_flight, service_ms)
            return False
        slow = latency_ms > threshold_ms and not self.shared(provider, service_ms, in_flight)
        if ok:
            self._answered(provider, latency_ms, in_flight, service_ms)
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

    def _answered(
        self, provider: str, latency_ms: float, in_flight: int | None, service_ms: float | None
    ) -> None:
        size = self.degradation.recent_window
        if size <= 0:
            return
        key = (provider, load_bucket(in_flight))
        self._add(self.recent.setdefault(key, deque(maxlen=size)), latency_ms)
        if service_ms is not None:
            self._add(self.recent_service.setdefault(key, deque(maxlen=size)), service_ms)
        if key[1] == 0:
            self._floor.pop(provider, None)

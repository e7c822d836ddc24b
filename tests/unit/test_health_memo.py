"""The live health's sorted windows (kept until a window changes) give exactly the judgements
that sorting afresh gives: the pure functions applied to the watch's own windows, after any
sequence of judged calls, at any load and with any settings."""

from __future__ import annotations

import math
from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from hybridmcp.config import DegradationConfig, HedgingConfig
from hybridmcp.policy.hedging import (
    HealthWatch,
    HedgeBudget,
    at_load,
    load_bucket,
    service_limit,
)

PROVIDERS = ("a", "b")
latency = st.one_of(
    st.floats(0.0, 5000.0, allow_nan=False),
    st.sampled_from([0.0, -0.0, 12.0, 12.0, 30.0, math.inf]),  # equals, signed zeros
    st.just(math.nan),  # orders with nothing: never kept
)
in_flight = st.one_of(st.sampled_from((None, 0, 1, 7)), st.integers(0, 40))
remembered = st.tuples(
    st.sampled_from(PROVIDERS),
    latency,
    st.sampled_from((True, True, True, False)),
    st.one_of(st.none(), latency),  # threshold
    st.one_of(st.none(), latency),  # planned
    in_flight,
    st.one_of(st.none(), latency),  # service time
)
asked = st.tuples(st.sampled_from(PROVIDERS), latency, in_flight, st.one_of(st.none(), latency))
steps = st.lists(st.tuples(remembered, st.lists(asked, max_size=3)), min_size=10, max_size=80)
configs = st.builds(
    DegradationConfig,
    min_observations=st.integers(1, 4),
    recent_window=st.integers(0, 6),  # small: windows fill, and values leave them
    latency_ewma_factor=st.floats(1.0, 4.0),
)


def fresh_lone(w: HealthWatch, provider: str) -> float | None:
    """What a lone call of ``provider`` is held to (its pinned threshold raised to its lone
    calls' floor), the lone window sorted afresh."""
    pinned = w.pinned.get(provider)
    if pinned is None:
        return None
    cfg = w.degradation
    lone = w.recent.get((provider, 0))
    if lone and len(lone) >= cfg.min_observations:
        ordered = sorted(lone)
        q75 = ordered[min(len(ordered) - 1, int(0.75 * len(ordered)))]
        pinned = max(pinned, cfg.latency_ewma_factor * q75)
    return max(pinned, cfg.min_slow_ms)


def fresh(w: HealthWatch, provider: str, lone: float, k: int | None, service: float | None):
    """The judgements of a call, each window sorted afresh (the pure functions)."""
    cfg = w.degradation
    key = (provider, load_bucket(k))
    recent, recent_service = w.recent.get(key), w.recent_service.get(key)
    obs = cfg.min_observations
    limit = service_limit(
        k, recent_service, factor=cfg.latency_ewma_factor, min_observations=obs,
        floor_ms=cfg.min_slow_ms, lone_ms=fresh_lone(w, provider),
    )  # fmt: skip
    slow_factor = cfg.latency_ewma_factor
    return (
        at_load(lone, k, recent, factor=slow_factor, quantile=0.75, min_observations=obs),
        at_load(lone, k, recent, factor=1.0, quantile=0.95, min_observations=obs),
        limit,
        limit is not None and service is not None and service <= limit,
    )


def kept(w: HealthWatch, provider: str, lone: float, k: int | None, service: float | None):
    return (
        w.slow_at_load(provider, lone, k),
        w.tail_at_load(provider, lone, k),
        w.service_limit(provider, k),
        w.shared(provider, service, k),
    )


def same(w: HealthWatch, provider: str, lone: float, k: int | None, service: float | None) -> bool:
    """Kept and fresh judgements alike, to the bit (NaN alike, -0.0 not 0.0)."""
    return repr(kept(w, provider, lone, k, service)) == repr(fresh(w, provider, lone, k, service))


@settings(max_examples=300, deadline=None)
@given(configs, steps)
def test_kept_sorts_judge_as_fresh_ones(cfg: DegradationConfig, run: list) -> None:
    w = HealthWatch(HedgeBudget.from_config(HedgingConfig()), cfg)
    for (provider, lat, ok, threshold, planned, k, service), others in run:
        questions = [(provider, lat, k, service), *others]  # its own load, and others
        for asked_provider, lone, asked_k, asked_service in questions:
            # asked twice: the second answer comes from the kept sort
            assert same(w, asked_provider, lone, asked_k, asked_service)
            assert same(w, asked_provider, lone, asked_k, asked_service)
        slow = w.remember(
            provider, latency_ms=lat, ok=ok, threshold_ms=threshold, planned_ms=planned,
            in_flight=k, service_ms=service,
        )  # fmt: skip
        expected = (
            threshold is not None and lat > threshold and not fresh(w, provider, 0.0, k, service)[3]
        )
        if threshold is not None and not (ok and w.degradation.recent_window > 0):
            assert slow == expected  # nothing was added to the windows: same windows judged
        for asked_provider, lone, asked_k, asked_service in questions:
            assert same(w, asked_provider, lone, asked_k, asked_service)


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(1, 6),
    values=st.lists(st.sampled_from([0.0, -0.0, 1.0, 2.5, math.inf, math.nan]) | latency),
)
def test_a_kept_sort_is_the_windows_sort(size: int, values: list[float]) -> None:
    """Values moving through a window move through its kept sorted copy just as ``sorted``
    orders the window (equal values, signed zeros included, in the window's order)."""
    w = HealthWatch(HedgeBudget.from_config(HedgingConfig()), DegradationConfig())
    window: deque[float] = deque(maxlen=size)
    for value in values:
        w._add(window, value)
        w._quantile(window, 0.5)  # keeps (or refreshes) its sort
        kept = w._sorted.get(id(window))
        if kept is not None:
            assert repr(kept[1]) == repr(sorted(window))
        else:
            assert any(map(math.isnan, window))  # only a window holding NaN is not kept

"""Learning loop: fold this run's attempts and agreements into provider statistics."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from hybridmcp.events import EventCode
from hybridmcp.policy.blame import learnable, request_faults, slow
from hybridmcp.policy.learning import (
    ProviderStats,
    learned_from,
    mark_learned,
    observe_agreement,
    observe_call,
    observe_censored,
    observe_pass,
    observe_verdict,
    percentile,
    prediction_accuracy,
)
from hybridmcp.prompts.trust import advice_records, learn_advice
from hybridmcp.runtime import Context, Resources, resources_for
from hybridmcp.state import State
from hybridmcp.stats_store import load_stats, save_stats, stats_lock


def run_metrics(state: State, now: float) -> dict[str, Any]:
    attempts = state.get("attempts", [])
    latencies = [a["latency_ms"] for a in attempts if a["ok"]]
    by_side = {
        side: [a for a in attempts if a["side"] == side] for side in ("internal", "external")
    }
    return {
        "requests": len(state["requests"]),
        "answered": sum(1 for r in state.get("results", {}).values() if r["error"] is None),
        "rounds": state.get("round", 0),
        "calls": {side: len(v) for side, v in by_side.items()},
        "failed_calls": {side: sum(1 for a in v if not a["ok"]) for side, v in by_side.items()},
        "reallocations": sum(
            1 for e in state.get("events", []) if e.get("code") == EventCode.REALLOCATION
        ),
        "conflicts": len(state.get("conflicts", [])),
        "cost": round(sum(a.get("cost") or 0.0 for a in attempts), 6),
        "latency_ms": {
            "p50": round(percentile(latencies, 50), 3) if latencies else None,
            "p99": round(percentile(latencies, 99), 3) if latencies else None,
        },
        "wall_ms": round((now - state["started_at"]) * 1000, 3)
        if state.get("started_at")
        else None,
        "prediction": prediction_accuracy(attempts, _predictions(state)),
    }


def _predictions(state: State) -> dict[tuple[str, str], dict[str, Any]]:
    """What arbitration predicted of each (request, provider) it scored."""
    return {
        (rid, provider): score["prediction"]
        for rid, allocation in state.get("allocations", {}).items()
        for provider, score in allocation.get("scores", {}).items()
        if score.get("prediction")
    }


def passed_over(state: State) -> list[str]:
    """Providers arbitration scored for a request and did not use: one entry per request."""
    tried: dict[str, set[str]] = {}
    for a in state.get("attempts", []):
        tried.setdefault(a["request_id"], set()).add(a["provider"])
    return [
        provider
        for rid, allocation in state.get("allocations", {}).items()
        for provider in allocation.get("scores", {})
        if provider not in tried.get(rid, set())
    ]

ADVICE_LOCK = ("hybridmcp.advice", "*")
"""The lock record of the learned advice accuracies (one for all: advice is rare)."""


async def learn(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    res = await resources_for(runtime.context)
    store = runtime.store or res.store
    now = res.clock()
    attempts = state.get("attempts", [])
    skill_of = {p: res.registry.provider(p).skill for p in _providers(state)}
    passes = [(p, skill_of[p]) for p in passed_over(state)]
    pairs = [*((a["provider"], a["skill"]) for a in attempts), *passes]
    # Read, fold and save under a lock that other processes on the same database respect:
    # two runs finishing at once each add their own observations, neither overwrites the other.
    async with stats_lock(store, pairs, res.learn_lock):
        loaded = await load_stats(store, pairs)
        await save_stats(store, _fold_run(state, loaded, skill_of, passes, res, now))
    run = f"{state.get('run_id')}@{state.get('started_at')}"
    metrics = run_metrics(state, now)
    metrics["circuits"] = res.breaker_windows()  # each external provider's circuit breaker
    results = state.get("results", {})
    advice: dict[str, Any] = {}
    if advice_records(results):  # LM advice was given: its accuracies, under the same rule
        async with stats_lock(store, [ADVICE_LOCK], res.learn_lock):
            advice = await learn_advice(store, results, run)
    if advice:
        metrics["advice"] = advice  # each LM advice beside the rule, and learned accuracies
    return {"metrics": metrics}


def _fold_run(
    state: State,
    loaded: dict[tuple[str, str], ProviderStats],
    skill_of: dict[str, str],
    passes: list[tuple[str, str]],
    res: Resources,
    now: float,
) -> list[ProviderStats]:
    """The statistics ``loaded`` with this run's observations folded in (none for a record
    that already holds the run: a resumed run is counted once)."""
    arbitration = res.config.arbitration_config
    attempts = state.get("attempts", [])
    # A run is identified by its id and start (a thread can hold several runs when the
    # coordinator is embedded); statistics that already hold it are left alone on a resume.
    run = f"{state.get('run_id')}@{state.get('started_at')}"
    stats = {key: s for key, s in loaded.items() if not learned_from(s, run)}
    for key in passes:
        if key in stats:
            stats[key] = observe_pass(stats[key], now=now, half_life=arbitration.stale_half_life)
    faults = request_faults(attempts)
    for a in sorted(attempts, key=lambda a: a["started_at"]):
        key = (a["provider"], a["skill"])
        how = learnable(a, faults)
        if key not in stats or how is None:
            continue
        if how == "censored":
            stats[key] = observe_censored(
                stats[key],
                latency_ms=a["latency_ms"],
                now=now,
                alpha=arbitration.ewma_alpha,
                slow=slow(a),
            )
            continue
        stats[key] = observe_call(
            stats[key],
            ok=a["ok"],
            latency_ms=a["latency_ms"],
            cost=a.get("cost") or 0.0,
            now=now,
            alpha=arbitration.ewma_alpha,
            slow=slow(a),
        )
    for result in state.get("results", {}).values():
        for provider, confirmed in (result.get("verdicts") or {}).items():
            key = (provider, skill_of.get(provider, result["skill"]))
            if key in stats:
                stats[key] = observe_verdict(stats[key], confirmed=confirmed, now=now)
        agreed = result.get("agreement")
        if agreed is None:
            continue
        for provider in result.get("sources", []):
            key = (provider, skill_of.get(provider, result["skill"]))
            if key in stats:
                stats[key] = observe_agreement(stats[key], agreed=agreed, now=now)
    return [mark_learned(s, run) for s in stats.values()]


def _providers(state: State) -> set[str]:
    """Every provider the run scored or called."""
    scored = {p for a in state.get("allocations", {}).values() for p in a.get("scores", {})}
    return scored | {a["provider"] for a in state.get("attempts", [])}

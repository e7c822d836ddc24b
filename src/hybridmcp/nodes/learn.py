"""Learning loop: fold this run's attempts and agreements into provider statistics."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, cast

from langgraph.runtime import Runtime

from hybridmcp.events import EventCode
from hybridmcp.policy.blame import learnable, request_faults, slow
from hybridmcp.policy.learning import (
    ProviderStats,
    draft_of,
    fold_agreement,
    fold_call,
    fold_censored,
    fold_learned,
    fold_pass,
    fold_verdict,
    from_draft,
    learned_from,
    percentile,
    prediction_accuracy,
)
from hybridmcp.prompts.trust import advice_records, learn_advice
from hybridmcp.runtime import Context, Resources, resources_for
from hybridmcp.state import State
from hybridmcp.stats_store import (
    forget_old_runs,
    learned_key,
    load_run_stats,
    save_stats,
    stats_lock,
)


def run_metrics(state: State, now: float) -> dict[str, Any]:
    attempts = state.get("attempts", [])
    # One pass over the attempts for every figure (they are many at a large N).
    latencies: list[float] = []
    calls = {"internal": 0, "external": 0}
    failed = {"internal": 0, "external": 0}
    cancelled = {"internal": 0, "external": 0}  # by the coordinator: a hedge lost, ...
    cost: float = 0  # as sum() adds: an int until a float is added
    for a in attempts:
        side = a["side"]
        if a["ok"]:
            latencies.append(a["latency_ms"])
        elif side in failed:
            (cancelled if a.get("censored") else failed)[side] += 1
        if side in calls:
            calls[side] += 1
        cost += a.get("cost") or 0.0
    return {
        "requests": len(state["requests"]),
        "answered": sum(1 for r in state.get("results", {}).values() if r["error"] is None),
        "rounds": state.get("round", 0),
        "calls": calls,
        "failed_calls": failed,
        "cancelled_calls": cancelled,
        "reallocations": sum(
            1 for e in state.get("events", []) if e.get("code") == EventCode.REALLOCATION
        ),
        "conflicts": len(state.get("conflicts", [])),
        "cost": round(cost, 6),
        "latency_ms": {
            "p50": round(percentile(latencies, 50), 3) if latencies else None,
            "p99": round(percentile(latencies, 99), 3) if latencies else None,
        },
        "wall_ms": round((now - state["started_at"]) * 1000, 3)
        if state.get("started_at")
        else None,
        "prediction": prediction_accuracy(attempts, _Predictions(state.get("allocations", {}))),
    }


class _Predictions(Mapping[tuple[str, str], Mapping[str, Any]]):
    """What arbitration predicted of each (request, provider) it scored, read from the
    allocations where they are (not copied into a dict of their own)."""

    def __init__(self, allocations: Mapping[str, Mapping[str, Any]]) -> None:
        self.allocations = allocations

    def __getitem__(self, key: tuple[str, str]) -> Mapping[str, Any]:
        prediction = self.get(key)
        if prediction is None:
            raise KeyError(key)
        return cast(Mapping[str, Any], prediction)

    def get(self, key: tuple[str, str], default: Any = None) -> Any:
        allocation = self.allocations.get(key[0])
        score = allocation.get("scores", {}).get(key[1]) if allocation else None
        prediction = score.get("prediction") if score else None
        return prediction if prediction else default

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for rid, allocation in self.allocations.items():
            for provider, score in allocation.get("scores", {}).items():
                if score.get("prediction"):
                    yield rid, provider

    def __len__(self) -> int:
        return sum(1 for _ in self)


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
    # The run's own record is read and saved with them: a run resumed after this step saved
    # and before its checkpoint did learns nothing twice, however many runs learned since.
    marker = learned_key(state["run_id"], state["started_at"]) if state.get("started_at") else None
    async with stats_lock(store, pairs, res.learn_lock, res.store_files):
        loaded, learned = await load_run_stats(store, pairs, marker)
        if not learned:
            folded = _fold_run(state, loaded, skill_of, passes, res, now)
            await save_stats(store, folded, marker)
    await forget_old_runs(store, now, res.old_runs_forgotten)
    run = f"{state.get('run_id')}@{state.get('started_at')}"
    metrics = run_metrics(state, now)
    metrics["circuits"] = res.breaker_windows()  # each external provider's circuit breaker
    results = state.get("results", {})
    advice: dict[str, Any] = {}
    if advice_records(results):  # LM advice was given: its accuracies, under the same rule
        async with stats_lock(store, [ADVICE_LOCK], res.learn_lock, res.store_files):
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
    that already holds the run: a resumed run is counted once). Each record's observations
    are folded into one draft of it, in the order the ``observe_*`` functions would take them."""
    arbitration = res.config.arbitration_config
    attempts = state.get("attempts", [])
    # A run is identified by its id and start (a thread can hold several runs when the
    # coordinator is embedded); statistics that already hold it are left alone on a resume.
    run = f"{state.get('run_id')}@{state.get('started_at')}"
    drafts = {key: draft_of(s) for key, s in loaded.items() if not learned_from(s, run)}
    for key in passes:
        draft = drafts.get(key)
        if draft is not None:
            fold_pass(draft, now=now, half_life=arbitration.stale_half_life)
    faults = request_faults(attempts)
    alpha = arbitration.ewma_alpha
    for a in sorted(attempts, key=lambda a: a["started_at"]):
        draft = drafts.get((a["provider"], a["skill"]))
        if draft is None:
            continue
        how = learnable(a, faults)
        if how is None:
            continue
        if how == "censored":
            fold_censored(draft, latency_ms=a["latency_ms"], now=now, alpha=alpha, slow=slow(a))
            continue
        fold_call(
            draft,
            ok=a["ok"],
            latency_ms=a["latency_ms"],
            cost=a.get("cost") or 0.0,
            now=now,
            alpha=alpha,
            slow=slow(a),
        )
    for result in state.get("results", {}).values():
        for provider, confirmed in (result.get("verdicts") or {}).items():
            draft = drafts.get((provider, skill_of.get(provider, result["skill"])))
            if draft is not None:
                fold_verdict(draft, confirmed=confirmed, now=now)
        agreed = result.get("agreement")
        if agreed is None:
            continue
        for provider in result.get("sources", []):
            draft = drafts.get((provider, skill_of.get(provider, result["skill"])))
            if draft is not None:
                fold_agreement(draft, agreed=agreed, now=now)
    for draft in drafts.values():
        fold_learned(draft, run)
    return [from_draft(draft) for draft in drafts.values()]


def _providers(state: State) -> set[str]:
    """Every provider the run scored or called."""
    scored = {p for a in state.get("allocations", {}).values() for p in a.get("scores", {})}
    return scored | {a["provider"] for a in state.get("attempts", [])}

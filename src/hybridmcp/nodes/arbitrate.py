"""Phase 1: decide who serves each request, and queue the first round of work."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from hybridmcp.capabilities.registry import Provider
from hybridmcp.memory import load_stats
from hybridmcp.policy.hedging import watch_plan
from hybridmcp.policy.learning import ProviderStats, predict
from hybridmcp.policy.scoring import Candidate
from hybridmcp.policy.scoring import arbitrate as decide
from hybridmcp.prompts.advice import advise_allocations
from hybridmcp.runtime import Context, Resources, resources_for
from hybridmcp.state import State, WorkItem


def _candidate(res: Resources, provider: Provider, stats: ProviderStats) -> Candidate:
    prediction = predict(
        stats,
        prior_latency_ms=provider.expected_latency_ms,
        prior_quality=provider.quality,
        prior_cost=provider.cost_per_call,
    )
    available, reason = True, None
    if provider.server is not None:
        available, error = res.server_available(provider.server)
        reason = None if available else f"MCP server {provider.server!r} is down: {error}"
    if available and provider.side == "external":
        reason = res.gate.breaker.blocked(provider.id, res.clock())
        available = reason is None
    return Candidate(provider.id, provider.side, provider.clearance, prediction, available, reason)


def work_item(state: State, request: dict[str, Any], provider: Provider, round_no: int) -> WorkItem:
    run_id = state["run_id"]
    deadline_ms = (state.get("constraints") or {}).get("deadline_ms")
    return WorkItem(
        request_id=str(request["id"]),
        skill=provider.skill,
        args=request.get("args", {}),
        provider=provider.id,
        side=provider.side,
        round=round_no,
        idempotency_key=f"{run_id}:{request['id']}:{provider.id}:{round_no}",
        run_id=run_id,
        sensitivity=state["profiles"][str(request["id"])]["data_sensitivity"],
        deadline_at=state["started_at"] + deadline_ms / 1000 if deadline_ms else None,
    )


def _unavailable_events(allocations: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One event per external provider found down, listing the requests moved off it."""
    moved: dict[str, dict[str, Any]] = {}
    for rid, alloc in allocations.items():
        for ex in alloc["excluded"]:
            if ex["side"] == "external" and "down" in ex["reason"]:
                entry = moved.setdefault(ex["provider"], {"reason": ex["reason"], "requests": []})
                entry["requests"].append((rid, alloc["mode"]))
    events = []
    for provider, info in moved.items():
        served = [rid for rid, mode in info["requests"] if mode in ("internal", "hybrid")]
        events.append(
            {
                "code": "EXTERNAL_DEGRADATION_DETECTED",
                "coordination_status": "EXTERNAL_DEGRADATION_DETECTED",
                "degradation_metrics": {
                    "provider": provider,
                    "available": False,
                    "error": info["reason"],
                },
                "reallocation_strategy": "SHIFT_TO_INTERNAL_PROCESSING"
                if served
                else "NONE_AVAILABLE",
                "affected_requests": [rid for rid, _ in info["requests"]],
                "moved_to_internal": served,
            }
        )
    return events


async def arbitrate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    res = await resources_for(runtime.context)
    cfg = res.config
    requests = [r for r in state["requests"] if str(r["id"]) in state["profiles"]]
    skills = {str(r["id"]): res.registry.get(r["skill"]) for r in requests}
    stats = await load_stats(
        runtime.store or res.store,
        ((p.id, s.name) for s in skills.values() for p in s.providers),
    )
    allocations: dict[str, dict[str, Any]] = {}
    pending: list[WorkItem] = []
    errors: dict[str, str] = {}
    for request in requests:
        rid = str(request["id"])
        skill = skills[rid]
        candidates = [_candidate(res, p, stats[(p.id, skill.name)]) for p in skill.providers]
        allocation = decide(
            strategy=request.get("strategy", "auto"),
            critical=bool(request.get("critical", False)),
            profile=state["profiles"][rid],
            candidates=candidates,
            criteria=cfg.optimization_criteria,
            arbitration=cfg.arbitration_config,
            mapping=cfg.capability_mapping,
        )
        allocations[rid] = allocation
    advice_events = await advise_allocations(
        res, requests, allocations, state["profiles"], state.get("constraints")
    )
    for request in requests:
        rid = str(request["id"])
        skill, allocation = skills[rid], allocations[rid]
        if allocation["mode"] == "none":
            reasons = "; ".join(f"{e['provider']}: {e['reason']}" for e in allocation["excluded"])
            errors[rid] = f"no provider can serve skill {skill.name!r} ({reasons})"
            continue
        chosen = (
            allocation["providers"]
            if allocation["mode"] == "hybrid"
            else allocation["providers"][:1]
        )
        for pid in chosen:
            item = work_item(state, request, res.registry.provider(pid), 1)
            item["watch"] = watch_plan(allocation, pid, cfg.resilience)
            pending.append(item)
    return {
        "allocations": allocations,
        "pending": pending,
        "errors": errors,
        "round": 1,
        "events": _unavailable_events(allocations) + advice_events,
    }

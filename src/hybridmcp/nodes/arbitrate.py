"""Phase 1: decide who serves each request, and queue the first round of work."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from hybridmcp.capabilities.registry import Provider
from hybridmcp.events import EventCode
from hybridmcp.memory import load_stats
from hybridmcp.policy.cost import BudgetPlan, budget_criteria, pressure
from hybridmcp.policy.disclosure import ProviderView, decision_records, plan_disclosure
from hybridmcp.policy.hedging import watch_plan
from hybridmcp.policy.learning import ProviderStats, predict
from hybridmcp.policy.scoring import Candidate, add_probe
from hybridmcp.policy.scoring import arbitrate as decide
from hybridmcp.prompts.arbitrator import advise_allocations
from hybridmcp.runtime import Context, Resources, resources_for
from hybridmcp.state import State, WorkItem, work_item


def _candidate(
    res: Resources, provider: Provider, stats: ProviderStats, redacts: bool = False
) -> Candidate:
    prediction = predict(
        stats,
        prior_latency_ms=provider.expected_latency_ms,
        prior_quality=provider.quality,
        prior_cost=provider.cost_per_call,
        prior_weight=res.config.arbitration_config.prior_weight,
    )
    available, reason = True, None
    if provider.server is not None:
        available, error = res.server_available(provider.server)
        reason = None if available else f"MCP server {provider.server!r} is down: {error}"
    if available and provider.side == "external":
        reason = res.gate.breaker.blocked(provider.id, res.clock())
        available = reason is None
    return Candidate(
        provider.id, provider.side, provider.clearance, prediction, available, reason, redacts
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
                "code": EventCode.EXTERNAL_DEGRADATION_DETECTED,
                "coordination_status": EventCode.EXTERNAL_DEGRADATION_DETECTED,
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


def _server_events(res: Resources, skills: dict[str, Any]) -> list[dict[str, Any]]:
    """``SERVER_UNAVAILABLE`` for each server a request of this run could use that is down:
    its name, why, and the requests it cannot serve (invariant 10)."""
    using: dict[str, list[str]] = {}
    for rid, skill in skills.items():
        for p in skill.providers:
            if p.server is not None and rid not in using.setdefault(p.server, []):
                using[p.server].append(rid)
    events = []
    for server, rids in using.items():
        available, error = res.server_available(server)
        if not available:
            events.append(
                {
                    "code": EventCode.SERVER_UNAVAILABLE,
                    "server": server,
                    "reason": error or "not started",
                    "requests": rids,
                }
            )
    return events


def _budget_event(budget: BudgetPlan, allocations: dict[str, Any]) -> list[dict[str, Any]]:
    event = budget.event(allocations)
    return [event] if event else []


def _chosen(res: Resources, allocation: dict[str, Any]) -> list[Provider]:
    """The providers an allocation runs in its first round: both sides of a hybrid, else the
    best one."""
    ids = allocation["providers"] if allocation["mode"] == "hybrid" else allocation["providers"][:1]
    return [res.registry.provider(pid) for pid in ids]


def _probe(res: Resources, allocation: dict[str, Any], probed: set[str]) -> dict[str, Any]:
    """One request per run, per provider whose circuit is half-open, also runs on it: the
    trial call that closes its circuit, and whose answer teaches the statistics that it has
    recovered (otherwise a provider learned bad would never be chosen again)."""
    now = res.clock()
    for provider in allocation.get("ranking", ()):
        if provider in probed or not res.gate.breaker.probing(provider, now):
            continue
        probing = add_probe(allocation, provider, f"probe: {provider}'s circuit is half-open")
        if probing is not allocation:
            probed.add(provider)
            return probing
    return allocation


async def arbitrate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    res = await resources_for(runtime.context)
    cfg = res.config
    requests = [r for r in state["requests"] if str(r["id"]) in state["profiles"]]
    skills = {str(r["id"]): res.registry.get(r["skill"]) for r in requests}
    # Keyed as the workers record attempts: by the provider's own skill (a generic
    # ``server.tool`` skill shares its provider with the configured skill that wraps the tool).
    key = {
        p.id: (p.id, res.registry.provider(p.id).skill)
        for s in skills.values()
        for p in s.providers
    }
    stats = await load_stats(runtime.store or res.store, key.values())
    allocations: dict[str, dict[str, Any]] = {}
    probed: set[str] = set()
    pending: list[WorkItem] = []
    errors: dict[str, str] = {}
    events: list[dict[str, Any]] = []
    budget = BudgetPlan((state.get("constraints") or {}).get("budget"))
    projected = sum(max(p.cost_per_call for p in s.providers) for s in skills.values())
    criteria = budget_criteria(cfg.optimization_criteria, pressure(budget.limit, projected))
    # Computed once per provider (and fitness once per candidate and needs), not per request:
    # every request of a skill sees the same statistics and health in one arbitration.
    candidates_of: dict[tuple[str, bool], Candidate] = {}
    memo: dict[Any, Any] = {}

    def candidate(p: Provider, redacts: bool) -> Candidate:
        c = candidates_of.get((p.id, redacts))
        if c is None:
            c = candidates_of[p.id, redacts] = _candidate(res, p, stats[key[p.id]], redacts)
        return c

    for request in requests:
        rid = str(request["id"])
        skill = skills[rid]
        privacy = plan_disclosure(
            skill.name,
            state["profiles"][rid],
            [ProviderView(p.id, p.side, p.server, p.clearance) for p in skill.providers],
            res.config.privacy.policy_table(),
        )
        for record in decision_records(
            privacy, state["run_id"], rid, skill.name, state["profiles"][rid]
        ):
            res.gate.audit.append({**record, "kind": "policy_decision"})
            events.append({"code": EventCode.PRIVACY_DECISION, **record})
        if privacy.refused:
            errors[rid] = f"refused by privacy policy: {privacy.refused}"
            continue
        candidates = [
            budget.admit(rid, candidate(p, p.id in privacy.redacting), p.cost_per_call)
            for p in skill.providers
        ]
        allocation = decide(
            strategy=request.get("strategy", "auto"),
            critical=bool(request.get("critical", False)),
            profile=state["profiles"][rid],
            candidates=candidates,
            criteria=criteria,
            arbitration=cfg.arbitration_config,
            mapping=cfg.capability_mapping,
            audit_key=f"{state['run_id']}:{rid}",
            fallback=cfg.coordination_config.fallback
            if request.get("fallback") is None
            else bool(request["fallback"]),
            effect=skill.effect,
            memo=memo,
        )
        if budget.limit is not None:
            allocation["budget"] = {
                "remaining": budget.remaining,
                "cost_weight": round(criteria.cost_weight, 4),
            }
        allocation = _probe(res, allocation, probed)
        allocations[rid] = allocation
        if allocation["mode"] == "none":
            reasons = "; ".join(f"{e['provider']}: {e['reason']}" for e in allocation["excluded"])
            errors[rid] = f"no provider can serve skill {skill.name!r} ({reasons})"
            if allocation.get("pin", {}).get("overridden"):
                errors[rid] = allocation["rule"]
            if privacy.decisions:
                errors[rid] += f"; privacy policy {privacy.decisions[0]['action']}"
            continue
        # Reserve what the deterministic choice would spend; LM advice below can only narrow
        # a hybrid allocation to one side, so the reservation stays an upper bound.
        budget.commit(p.cost_per_call for p in _chosen(res, allocation))
    advice_events = await advise_allocations(
        res,
        requests,
        allocations,
        state["profiles"],
        state.get("constraints"),
        store=runtime.store or res.store,
    )
    for request in requests:
        planned = allocations.get(str(request["id"]))
        if planned is None or planned["mode"] == "none":
            continue
        for provider in _chosen(res, planned):
            item = work_item(state, request, provider.id, provider.skill, provider.side, 1)
            item["watch"] = watch_plan(planned, provider.id, cfg.resilience)
            pending.append(item)
    return {
        "allocations": allocations,
        "pending": pending,
        "errors": errors,
        "round": 1,
        "events": _server_events(res, skills)
        + events
        + _unavailable_events(allocations)
        + _budget_event(budget, allocations)
        + advice_events,
    }

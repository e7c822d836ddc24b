"""Phase 1: decide who serves each request, and queue the first round of work."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from langgraph.runtime import Runtime

from hybridmcp.audit import hand_over, written
from hybridmcp.capabilities.registry import Provider, Skill
from hybridmcp.events import EventCode
from hybridmcp.policy.arbitration import Candidate, add_probe
from hybridmcp.policy.arbitration import arbitrate as decide
from hybridmcp.policy.cost import BudgetPlan, budget_criteria, pressure
from hybridmcp.policy.disclosure import (
    DisclosurePlan,
    ProviderView,
    decision_records,
    plan_disclosure,
)
from hybridmcp.policy.hedging import watch_plan
from hybridmcp.policy.learning import ProviderStats, predict
from hybridmcp.prompts.arbitrator import advise_allocations
from hybridmcp.runtime import Context, Resources, resources_for
from hybridmcp.state import State, WorkItem, work_item
from hybridmcp.stats_store import load_stats


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
    using: dict[str, dict[str, None]] = {}  # server -> its requests, in order, once each
    for rid, skill in skills.items():
        for p in skill.providers:
            if p.server is not None:
                using.setdefault(p.server, {})[rid] = None
    events = []
    for server, requests in using.items():
        available, error = res.server_available(server)
        if not available:
            events.append(
                {
                    "code": EventCode.SERVER_UNAVAILABLE,
                    "server": server,
                    "reason": error or "not started",
                    "requests": list(requests),
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


def _probe(
    res: Resources, allocation: dict[str, Any], probed: set[str], half_open: dict[str, bool]
) -> dict[str, Any]:
    """One request per run, per provider whose circuit is half-open, also runs on it: the
    trial call that closes its circuit, and whose answer teaches the statistics that it has
    recovered (otherwise a provider learned bad would never be chosen again). ``half_open``
    keeps each circuit's answer for the arbitration pass (nothing changes it meanwhile)."""
    for provider in allocation.get("ranking", ()):
        if provider in probed:
            continue
        if provider not in half_open:
            half_open[provider] = res.gate.breaker.probing(provider, res.clock())
        if not half_open[provider]:
            continue
        probing = add_probe(allocation, provider, f"probe: {provider}'s circuit is half-open")
        if probing is not allocation:
            probed.add(provider)
            return probing
    return allocation


async def arbitrate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    res = await resources_for(runtime.context)
    requests = [r for r in state["requests"] if str(r["id"]) in state["profiles"]]
    skills = {str(r["id"]): res.registry.get(r["skill"]) for r in requests}
    # Keyed as the workers record attempts: by the provider's own skill (a generic
    # ``server.tool`` skill shares its provider with the configured skill that wraps the tool).
    key = {
        p.id: (p.id, res.registry.provider(p.id).skill)
        for s in {s.name: s for s in skills.values()}.values()  # each skill once, not per request
        for p in s.providers
    }
    stats = await load_stats(runtime.store or res.store, key.values())
    arbiter = _Arbiter(res, state, skills, {pid: stats[k] for pid, k in key.items()})
    allocations: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for request in requests:
        rid = str(request["id"])
        allocation, error = arbiter.allocate(request, skills[rid])
        if allocation is not None:
            allocations[rid] = allocation
        if error is not None:
            errors[rid] = error
    for noted in arbiter.noted:  # in the trail before any call is sent (by the next node)
        await written(noted)
    advice_events = await advise_allocations(
        res,
        requests,
        allocations,
        state["profiles"],
        state.get("constraints"),
        store=runtime.store or res.store,
        run_id=state.get("run_id"),
    )
    events = (
        _server_events(res, skills)
        + arbiter.events
        + _unavailable_events(allocations)
        + _budget_event(arbiter.budget, allocations)
        + advice_events
    )
    update: dict[str, Any] = {
        "allocations": allocations,
        "pending": _first_round(res, state, requests, allocations),
        "round": 1,
    }
    # analyze created both channels: an empty write would change nothing, at a cost per step
    if errors:
        update["errors"] = errors
    if events:
        update["events"] = events
    return update


class _Arbiter:
    """One arbitration pass: the run's budget, the candidates (computed once per provider, and
    fitness once per candidate set and needs, not per request: every request of a skill sees
    the same statistics and health), the circuits probed, and the events so far."""

    def __init__(
        self,
        res: Resources,
        state: State,
        skills: dict[str, Skill],
        stats: dict[str, ProviderStats],
    ) -> None:
        self.res, self.state, self.stats = res, state, stats
        self.budget = BudgetPlan((state.get("constraints") or {}).get("budget"))
        # cost_optimization: a budget's pressure raises the cost weight (off: the weights as
        # configured; the budget still refuses what it cannot pay for). No budget, no pressure.
        optimize = res.config.coordination_config.cost_optimization
        self.criteria = res.config.optimization_criteria
        if optimize and self.budget.limit is not None:
            projected = sum(max(p.cost_per_call for p in s.providers) for s in skills.values())
            self.criteria = budget_criteria(self.criteria, pressure(self.budget.limit, projected))
        # With a budget, each request's cheapest price is kept for it until it is planned.
        self.cheapest: dict[str, float] = {}
        if self.budget.limit is not None:
            self.cheapest = {
                rid: min((p.cost_per_call for p in s.providers), default=0.0)
                for rid, s in skills.items()
            }
            self.budget.owed = sum(self.cheapest.values())
        self.candidates: dict[tuple[str, bool], Candidate] = {}
        self.memo: dict[Any, Any] = {}
        self.decided: dict[tuple[Any, ...], dict[str, Any]] = {}
        """Allocations decided, by everything the decision reads: requests alike get a copy."""
        self.probed: set[str] = set()
        self.half_open: dict[str, bool] = {}
        self.plans: dict[tuple[Any, ...], DisclosurePlan] = {}
        self.policy = res.config.privacy.policy_table()
        self.events: list[dict[str, Any]] = []
        self.noted: list[Future[Any] | None] = []
        """The writes of the privacy decisions' audit records (handed to the trail's writer
        as they are made; waited for once the pass ends, before anything is sent)."""
        self.effects: dict[str, str] = {}
        """Each skill's effect class (a property computed from its providers at each read)."""
        self.lineups: dict[tuple[int, int], list[Candidate]] = {}
        """Without a budget, the candidates of a skill under a disclosure plan (both held by
        the pass, so their ids stay theirs): requests alike share the list (read-only)."""

    def candidate(self, p: Provider, redacts: bool) -> Candidate:
        c = self.candidates.get((p.id, redacts))
        if c is None:
            c = self.candidates[p.id, redacts] = _candidate(self.res, p, self.stats[p.id], redacts)
        return c

    def lineup(self, rid: str, skill: Skill, privacy: DisclosurePlan) -> list[Candidate]:
        """The request's candidates, each admitted by the budget (without one, every request
        of the skill under the same plan gets the same list)."""
        if self.budget.limit is None:
            key = (id(skill), id(privacy))
            lineup = self.lineups.get(key)
            if lineup is None:
                lineup = self.lineups[key] = [
                    self.candidate(p, p.id in privacy.redacting) for p in skill.providers
                ]
            return lineup
        return [
            self.budget.admit(rid, self.candidate(p, p.id in privacy.redacting), p.cost_per_call)
            for p in skill.providers
        ]

    def disclosure(self, rid: str, skill: Skill) -> DisclosurePlan:
        """The privacy decisions for the request, each audited and recorded as an event."""
        profile = self.state["profiles"][rid]
        # The plan depends on the skill and the profile's privacy fields only: requests alike
        # share it (read-only); each still gets its own audited decision records.
        key = (
            skill.name,
            profile.get("data_sensitivity"),
            profile.get("declared_sensitivity"),
            tuple(profile.get("sensitive_entities") or ()),
        )
        plan = self.plans.get(key)
        if plan is None:
            plan = self.plans[key] = plan_disclosure(
                skill.name,
                profile,
                [
                    ProviderView(p.id, p.side, p.server, p.clearance, p.effect)
                    for p in skill.providers
                ],
                self.policy,
            )
        if not plan.decisions:
            return plan  # nothing decided, nothing to audit
        for record in decision_records(plan, self.state["run_id"], rid, skill.name, profile):
            self.noted.append(hand_over(self.res.gate.audit, {**record, "kind": "policy_decision"}))
            self.events.append({"code": EventCode.PRIVACY_DECISION, **record})
        return plan

    def allocate(
        self, request: dict[str, Any], skill: Skill
    ) -> tuple[dict[str, Any] | None, str | None]:
        """The request's allocation, and why it cannot be served (or None)."""
        rid, cfg = str(request["id"]), self.res.config
        if self.budget.limit is not None:
            self.budget.start(self.cheapest.get(rid, 0.0))
        privacy = self.disclosure(rid, skill)
        if privacy.refused:
            return None, f"refused by privacy policy: {privacy.refused}"
        candidates = self.lineup(rid, skill, privacy)
        effect = self.effects.get(skill.name)
        if effect is None:
            effect = self.effects[skill.name] = skill.effect
        strategy = request.get("strategy", "auto")
        critical = bool(request.get("critical", False))
        profile = self.state["profiles"][rid]
        fallback = (
            cfg.coordination_config.fallback
            if request.get("fallback") is None
            else bool(request["fallback"])
        )
        # Everything the decision reads but the run's constants (criteria, configuration) and
        # the audit key (read only by validation sampling, whose allocations are not kept).
        # Without a budget the candidates are this pass's own, alive as long as it is.
        alike = (
            (
                strategy,
                critical,
                fallback,
                effect,
                tuple(map(id, candidates)),
                tuple(profile.get("needs", ())),
                str(profile.get("data_sensitivity", "public")),
                str(profile.get("declared_sensitivity", "public")),
            )
            if self.budget.limit is None
            else None
        )
        try:
            decided = self.decided.get(alike) if alike is not None else None
        except TypeError:  # a request's field of a kind no key can hold: decided on its own
            alike = decided = None
        if decided is not None:
            allocation = dict(decided)  # its lists are shared, read-only, like its scores
        else:
            while True:
                allocation = decide(
                    strategy=strategy,
                    critical=critical,
                    profile=profile,
                    candidates=candidates,
                    criteria=self.criteria,
                    arbitration=cfg.arbitration_config,
                    mapping=cfg.capability_mapping,
                    audit_key=f"{self.state['run_id']}:{rid}",
                    fallback=fallback,
                    effect=effect,
                    cross_validate=cfg.coordination_config.quality_validation,
                    memo=self.memo,
                )
                # Both sides of a hybrid each fit what is left, but not together: the dearer
                # one is excluded and the request decided again (a provider less each time).
                if allocation["mode"] != "hybrid" or self.budget.limit is None:
                    break
                chosen = _chosen(self.res, allocation)
                price = sum(p.cost_per_call for p in chosen)
                if self.budget.fits(price):
                    break
                dearer = max(chosen, key=lambda p: p.cost_per_call).id
                why = f"both sides cost {price:g}"
                candidates = [
                    self.budget.exclude(rid, c, why, price) if c.provider == dearer else c
                    for c in candidates
                ]
            if alike is not None and "validation_sampling" not in allocation:
                self.decided[alike] = dict(allocation)
        if self.budget.limit is not None:
            allocation["budget"] = {
                "remaining": self.budget.remaining,
                "cost_weight": round(self.criteria.cost_weight, 4),
            }
        allocation = _probe(self.res, allocation, self.probed, self.half_open)
        if allocation["mode"] == "none":
            return allocation, _why_none(skill, allocation, privacy)
        # Reserve what the deterministic choice would spend; LM advice can only narrow a
        # hybrid allocation to one side, so the reservation stays an upper bound. (Without a
        # budget nothing reads what is reserved.)
        if self.budget.limit is not None:
            self.budget.commit(p.cost_per_call for p in _chosen(self.res, allocation))
        return allocation, None


def _why_none(skill: Skill, allocation: dict[str, Any], privacy: DisclosurePlan) -> str:
    if allocation.get("pin", {}).get("overridden"):
        error = str(allocation["rule"])
    else:
        reasons = "; ".join(f"{e['provider']}: {e['reason']}" for e in allocation["excluded"])
        error = f"no provider can serve skill {skill.name!r} ({reasons})"
    if privacy.decisions:
        error += f"; privacy policy {privacy.decisions[0]['action']}"
    return error


def _first_round(
    res: Resources,
    state: State,
    requests: list[dict[str, Any]],
    allocations: dict[str, dict[str, Any]],
) -> list[WorkItem]:
    """The first round's work: each allocated request on its chosen providers, watched."""
    pending: list[WorkItem] = []
    coordination = res.config.coordination_config
    # A watch plan reads the provider, the allocation's mode, criticality and effect, and its
    # scores and ranking: requests whose allocations share those (copies of one decision) share
    # the plan's numbers (each item gets its own copy). The ids are those of objects the
    # allocations hold for the whole pass.
    plans: dict[tuple[Any, ...], dict[str, Any]] = {}
    # Copies of one decision share its list of providers: their chosen ones are looked up once.
    chosen: dict[tuple[str, int], list[Provider]] = {}
    for request in requests:
        planned = allocations.get(str(request["id"]))
        if planned is None or planned["mode"] == "none":
            continue
        who = (planned["mode"], id(planned["providers"]))
        providers = chosen.get(who)
        if providers is None:
            providers = chosen[who] = _chosen(res, planned)
        for provider in providers:
            item = work_item(state, request, provider.id, provider.skill, provider.side, 1)
            alike = (
                provider.id,
                planned["mode"],
                planned.get("critical"),
                planned.get("effect"),
                id(planned.get("scores")),
                id(planned.get("ranking")),
            )
            plan = plans.get(alike)
            if plan is None:
                plan = plans[alike] = watch_plan(
                    planned,
                    provider.id,
                    res.config.resilience,
                    monitoring=coordination.performance_monitoring,
                    parallel=coordination.parallel_execution,
                )
            item["watch"] = dict(plan)
            pending.append(item)
    return pending

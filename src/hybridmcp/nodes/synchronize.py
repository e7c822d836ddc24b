"""Phase 3: cross-validate, integrate, record conflicts, and score the run's quality."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langgraph.runtime import Runtime

from hybridmcp.events import EventCode
from hybridmcp.policy.cost import cost_report
from hybridmcp.policy.integration import (
    UNRESOLVED,
    Answer,
    Evidence,
    answer_for,
    integrate,
    quality_metrics,
    run_status,
)
from hybridmcp.prompts.synchronizer import refine_integration
from hybridmcp.records import Allocation, Attempt, failure_of
from hybridmcp.runtime import Context, Resources, resources_for
from hybridmcp.state import State

SIDES = ("internal", "external")
_NO_SCORE: Mapping[str, Any] = {}
"""The score of a provider arbitration did not score (read only)."""


_KEEP = ("provider", "side", "round", "ok", "sent", "latency_ms", "cost", "error")
_WHEN_SET = (
    "queue_ms",
    "in_flight",
    "service_ms",
    "error_kind",
    "cancelled",
    "censored",
    "hedge",
    "progress_notifications",
    "sampling",
    "client_refused",
    "replayed",
)
_PREDICTED = ("latency_ms", "p95_latency_ms", "success")


def _summary(
    attempt: Mapping[str, Any],
    scores: Mapping[str, Any],
    predicted: dict[int, dict[str, float]] | None = None,
) -> dict[str, Any]:
    """What happened, next to what arbitration predicted of the provider (None for a provider
    it did not score). ``predicted``: the rounded predictions so far, by the id of the
    prediction they came from (requests alike share their scores), each summary a copy."""
    get = attempt.get
    out = {k: get(k) for k in _KEEP}
    for k in _WHEN_SET:
        value = get(k)
        if value is not None:
            out[k] = value
    prediction = scores.get(attempt["provider"], {}).get("prediction")
    if not prediction:
        out["predicted"] = None
        return out
    if predicted is None:
        out["predicted"] = {k: round(prediction[k], 4) for k in _PREDICTED}
        return out
    rounded = predicted.get(id(prediction))
    if rounded is None:
        rounded = predicted[id(prediction)] = {k: round(prediction[k], 4) for k in _PREDICTED}
    out["predicted"] = dict(rounded)
    return out


def _served_by(result: dict[str, Any], sides: Mapping[str, str]) -> dict[str, str] | None:
    if result["status"] != "ok" or not result.get("sources"):
        return None
    provider = result["sources"][0]
    return {"provider": provider, "side": sides[provider]}


def _visibility_events(
    request: dict[str, Any], result: dict[str, Any], allocation: Allocation | None
) -> list[dict[str, Any]]:
    """A pin served by the other side, or cross-validation asked for and not done: each is an
    event, never silent (invariant 10)."""
    rid, events = result["id"], []
    pinned = request.get("strategy") if request.get("strategy") in SIDES else None
    served = result.get("served_by")
    if pinned and served and served["side"] != pinned:
        events.append(
            {
                "code": EventCode.PIN_OVERRIDDEN,
                "request_id": rid,
                "requested": pinned,
                "served_by": served,
                "reason": _why_not(result, allocation, pinned),
            }
        )
    asked = request.get("critical") or request.get("strategy") == "hybrid"
    if allocation is not None and allocation.get("mode") == "hybrid":
        asked = True
    if asked and result["agreement"] is None and result["status"] != "error":
        events.append(
            {
                "code": EventCode.CROSS_VALIDATION_SKIPPED,
                "request_id": rid,
                "critical": bool(request.get("critical")),
                "reason": _why_not(result, allocation, None),
            }
        )
    return events


def _why_not(
    result: Mapping[str, Any], allocation: Mapping[str, Any] | None, side: str | None
) -> str:
    """Why a side (or, for None, one of the two sides) did not serve: a write's effect, its
    exclusions at arbitration, else its failed attempts."""
    if side is None and (allocation or {}).get("effect") == "write":
        return "write effect"
    excluded = [
        f"{e['provider']}: {e['reason']}"
        for e in (allocation or {}).get("excluded", [])
        if side is None or e["side"] == side
    ]
    failed = [
        failure_of(a)
        for a in result["attempts"]
        if not a["ok"] and (side is None or a["side"] == side)
    ]
    reasons = excluded + failed
    if not reasons and allocation is not None:
        reasons = [str(allocation.get("rule"))]
    return "; ".join(reasons) or "not run"


async def synchronize(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    res = await resources_for(runtime.context)
    by_request: dict[str, list[Attempt]] = {}
    for a in state.get("attempts", []):
        by_request.setdefault(a["request_id"], []).append(a)
    sides = {a["provider"]: a["side"] for a in state.get("attempts", [])}
    results: dict[str, dict[str, Any]] = {}
    conflicts: list[dict[str, Any]] = []
    answered: dict[str, list[Answer]] = {}
    events: list[dict[str, Any]] = []
    allocations = state.get("allocations", {})
    errors = state.get("errors", {})
    predicted: dict[int, dict[str, float]] = {}
    evidence: Evidence = {}
    for request in state["requests"]:
        rid = str(request["id"])
        allocation = allocations.get(rid)
        result, answers, conflict = _integrate_request(
            res,
            request,
            by_request.get(rid, []),
            allocation,
            sides,
            errors,
            predicted,
            evidence,
        )
        results[rid] = result
        if answers:
            answered[rid] = answers
        if conflict:
            conflicts.append(conflict)
        events += _visibility_events(request, result, allocation)
    lm_events = await refine_integration(
        res,
        results,
        conflicts,
        answered,
        state.get("profiles", {}),
        store=runtime.store or res.store,
        run_id=state.get("run_id"),
    )
    _keep_unresolved(results)
    events = _conflict_events(conflicts, results) + events + lm_events
    quality = quality_metrics(results)
    quality["cross_validation_skipped"] = sum(
        1 for e in events if e.get("code") == EventCode.CROSS_VALIDATION_SKIPPED
    )
    status = run_status(results)
    min_quality = (state.get("constraints") or {}).get("min_quality")
    if min_quality is not None and quality["overall"] < min_quality and status != "failed":
        events.append(
            {
                "code": EventCode.QUALITY_BELOW_MINIMUM,
                "overall": quality["overall"],
                "min_quality": min_quality,
            }
        )
        status = "failed"
    update = {
        "results": results,
        "conflicts": conflicts,  # written even when empty: the output always lists them
        "quality": quality,
        "status": status,
        "cost": _cost(state, res),
    }
    if events:  # analyze created the channel: an empty write would change nothing
        update["events"] = events
    return update


def _integrate_request(
    res: Resources,
    request: Mapping[str, Any],
    attempts: list[Attempt],
    allocation: Allocation | None,
    sides: Mapping[str, str],
    errors: Mapping[str, str],
    predicted: dict[int, dict[str, float]] | None = None,
    evidence: Evidence | None = None,
) -> tuple[dict[str, Any], list[Answer], dict[str, Any] | None]:
    """One request's result (answered or not), the answers compared, and its conflict record
    if the answers disagreed (``predicted``: see :func:`_summary`; ``evidence``: see
    :func:`answer_for`)."""
    rid = str(request["id"])
    scores = allocation["scores"] if allocation else {}
    result: dict[str, Any] = {
        "id": rid,
        "skill": request.get("skill"),
        "status": "ok",
        "value": None,
        "served_by": None,
        "allocation": allocation["mode"] if allocation else "none",
        "allocation_rule": allocation["rule"] if allocation else None,
        "attempts": [_summary(a, scores, predicted) for a in attempts],
        "agreement": None,
        "confidence": 0.0,
        "error": None,
    }
    if allocation and allocation.get("advice"):
        result["allocation_advice"] = allocation["advice"]
    ok = [a for a in attempts if a["ok"]]
    if not ok:
        result["status"] = "error"
        result["error"] = errors.get(rid) or "no provider answered"
        return result, [], None
    skill = res.registry.get(request["skill"])
    answers = [answer_for(a, scores.get(a["provider"], _NO_SCORE), evidence) for a in ok]
    merged = integrate(
        rid,
        answers,
        skill.comparator,
        skill.integration or res.config.coordination_config.integration_strategy,
        critical=bool(request.get("critical")),
    )
    # written in this order: the keys already there keep their places, the others follow
    result["status"] = merged.status
    result["value"] = merged.value
    result["agreement"] = merged.agreement
    result["similarity"] = merged.similarity
    result["confidence"] = merged.confidence
    result["strategy"] = merged.strategy
    result["sources"] = merged.sources
    result["verdicts"] = merged.verdicts
    if merged.synthesis:
        result["synthesis"] = merged.synthesis
    if merged.status == UNRESOLVED:
        result["values"] = {a.provider: a.value for a in answers}
    result["served_by"] = _served_by(result, sides)
    return result, answers, merged.conflict


def _conflict_events(
    conflicts: list[dict[str, Any]], results: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """``RESULT_CONFLICT_DETECTED`` per conflict, ``CONFLICT_UNRESOLVED`` per critical request
    left undecided."""
    detected = [
        {
            "code": EventCode.RESULT_CONFLICT_DETECTED,
            "request_id": c["request_id"],
            "disagreement_level": c["conflict_details"]["disagreement_level"],
            "resolution_strategy": c["resolution_strategy"],
        }
        for c in conflicts
    ]
    unresolved = [
        {
            "code": EventCode.CONFLICT_UNRESOLVED,
            "request_id": rid,
            "values": r["values"],
            "reason": "the sides disagree on a critical request and no evidence of "
            "correctness (agreement history, a third provider, a review) decides",
        }
        for rid, r in results.items()
        if r["status"] == UNRESOLVED
    ]
    return detected + unresolved


def _keep_unresolved(results: dict[str, dict[str, Any]]) -> None:
    """An LM's expert arbitration is advice, not evidence: an unresolved critical conflict
    keeps no value (the LM's choice stays on record as ``expert_advice``)."""
    for result in results.values():
        if result["status"] == UNRESOLVED and result.get("resolution"):
            result["expert_advice"] = result.pop("resolution")
            result["value"] = None


def _cost(state: State, res: Resources) -> dict[str, Any]:
    skills = {str(r["id"]): str(r.get("skill")) for r in state["requests"]}
    prices: dict[str, float | None] = {}
    for name in set(skills.values()):
        external = (
            [p.cost_per_call for p in res.registry.skills[name].providers_on("external")]
            if name in res.registry.skills
            else []
        )
        prices[name] = min(external) if external else None
    budget = (state.get("constraints") or {}).get("budget")
    return cost_report(state.get("attempts", []), skills, prices, budget)

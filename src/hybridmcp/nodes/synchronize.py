"""Phase 3: cross-validate, integrate, record conflicts, and score the run's quality."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from hybridmcp.policy.cost import cost_report
from hybridmcp.policy.integration import Answer, integrate, quality_metrics
from hybridmcp.prompts.advice import refine_integration
from hybridmcp.runtime import Context, Resources, resources_for
from hybridmcp.state import State


def _summary(attempt: dict[str, Any], scores: dict[str, Any]) -> dict[str, Any]:
    """What happened, next to what arbitration predicted of the provider (None for a provider
    it did not score)."""
    keep = ("provider", "side", "round", "ok", "latency_ms", "cost", "error")
    prediction = scores.get(attempt["provider"], {}).get("prediction")
    predicted = (
        {k: round(prediction[k], 4) for k in ("latency_ms", "p95_latency_ms", "success")}
        if prediction
        else None
    )
    return {k: attempt.get(k) for k in keep} | {"predicted": predicted}


def _status(results: dict[str, dict[str, Any]]) -> str:
    answered = sum(1 for r in results.values() if r["error"] is None)
    if answered == len(results) and results:
        return "ok"
    return "partial" if answered else "failed"


def answer_confidence(score: dict[str, Any]) -> float:
    """How far an answer is trusted: the provider's quality as arbitration scored it, learned
    success and agreement plus the bonus of its side's strengths that the request needs
    (``capability_mapping``). So when the sides conflict on real-time data the external answer
    leads, on context or privacy-sensitive work the internal one."""
    if "quality" in score:
        return float(score["quality"])
    return float(score.get("prediction", {}).get("quality", 0.5))


async def synchronize(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    res = await resources_for(runtime.context)
    default_strategy = res.config.coordination_config.integration_strategy
    by_request: dict[str, list[dict[str, Any]]] = {}
    for a in state.get("attempts", []):
        by_request.setdefault(a["request_id"], []).append(a)
    results: dict[str, dict[str, Any]] = {}
    conflicts: list[dict[str, Any]] = []
    answered: dict[str, list[Answer]] = {}
    for request in state["requests"]:
        rid = str(request["id"])
        attempts = by_request.get(rid, [])
        allocation = state.get("allocations", {}).get(rid)
        scores = allocation["scores"] if allocation else {}
        result: dict[str, Any] = {
            "id": rid,
            "skill": request.get("skill"),
            "value": None,
            "allocation": allocation["mode"] if allocation else "none",
            "allocation_rule": allocation["rule"] if allocation else None,
            "attempts": [_summary(a, scores) for a in attempts],
            "agreement": None,
            "confidence": 0.0,
            "error": None,
        }
        if allocation and allocation.get("advice"):
            result["allocation_advice"] = allocation["advice"]
        ok = [a for a in attempts if a["ok"]]
        if not ok:
            result["error"] = state.get("errors", {}).get(rid) or "no provider answered"
            results[rid] = result
            continue
        skill = res.registry.get(request["skill"])
        answers = [
            Answer(
                a["provider"],
                a["side"],
                a["value"],
                answer_confidence(scores.get(a["provider"], {})),
                a["latency_ms"],
            )
            for a in ok
        ]
        answered[rid] = answers
        merged = integrate(rid, answers, skill.comparator, skill.integration or default_strategy)
        result |= {
            "value": merged.value,
            "agreement": merged.agreement,
            "similarity": merged.similarity,
            "confidence": merged.confidence,
            "strategy": merged.strategy,
            "sources": merged.sources,
        }
        if merged.synthesis:
            result["synthesis"] = merged.synthesis
        if merged.conflict:
            conflicts.append(merged.conflict)
        results[rid] = result
    lm_events = await refine_integration(
        res, results, conflicts, answered, state.get("profiles", {})
    )
    events = [
        {
            "code": "RESULT_CONFLICT_DETECTED",
            "request_id": c["request_id"],
            "disagreement_level": c["conflict_details"]["disagreement_level"],
            "resolution_strategy": c["resolution_strategy"],
        }
        for c in conflicts
    ] + lm_events
    quality = quality_metrics(results)
    status = _status(results)
    min_quality = (state.get("constraints") or {}).get("min_quality")
    if min_quality is not None and quality["overall"] < min_quality and status != "failed":
        events.append(
            {
                "code": "QUALITY_BELOW_MINIMUM",
                "overall": quality["overall"],
                "min_quality": min_quality,
            }
        )
        status = "failed"
    return {
        "results": results,
        "conflicts": conflicts,
        "events": events,
        "quality": quality,
        "status": status,
        "cost": _cost(state, res),
    }


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

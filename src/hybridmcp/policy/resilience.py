"""Between rounds: which requests are settled, which move to another provider, which failed.

Pure: takes the allocation and attempts of each request, returns decisions and the spec's
events (``EXTERNAL_DEGRADATION_DETECTED`` -> ``SHIFT_TO_INTERNAL_PROCESSING``,
``COORDINATION_FAILURE`` -> ``SEQUENTIAL_PROCESSING_WITH_BEST_AVAILABLE``), each carrying the
numbers that drove it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SHIFT = {"external": "SHIFT_TO_INTERNAL_PROCESSING", "internal": "SHIFT_TO_EXTERNAL_PROCESSING"}
DEGRADED = {
    "external": "EXTERNAL_DEGRADATION_DETECTED",
    "internal": "INTERNAL_DEGRADATION_DETECTED",
}


@dataclass
class RoundPlan:
    settled: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    moves: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def _pct(new: float, old: float | None) -> str | None:
    if not old:
        return None
    return f"{(new - old) / old * 100:+.0f}%"


def _degradation_event(
    request_id: str,
    attempt: Mapping[str, Any],
    baseline: Mapping[str, Any] | None,
    served_by: str | None,
) -> dict[str, Any]:
    side = attempt["side"]
    metrics: dict[str, Any] = {
        "provider": attempt["provider"],
        "error": attempt.get("error"),
        "latency_ms": attempt.get("latency_ms"),
    }
    if baseline:
        metrics["baseline_latency_ms"] = baseline.get("latency_ms")
        metrics["response_time_increase"] = _pct(
            attempt.get("latency_ms") or 0.0, baseline.get("latency_ms")
        )
        metrics["baseline_success_rate"] = baseline.get("success")
    return {
        "code": DEGRADED[side],
        "request_id": request_id,
        "coordination_status": DEGRADED[side],
        "degradation_metrics": metrics,
        "reallocation_strategy": SHIFT[side]
        if served_by and served_by != side
        else "NONE_AVAILABLE",
        "moved_to": served_by,
    }


def plan_round(
    *,
    requests: Sequence[str],
    allocations: Mapping[str, Mapping[str, Any]],
    attempts: Sequence[Mapping[str, Any]],
    round_no: int,
    max_rounds: int,
    sides: Mapping[str, str],
) -> RoundPlan:
    """Decide, after round ``round_no``, what happens to each open request.

    ``sides`` maps provider id to its side; ``allocations[...]["ranking"]`` orders every eligible
    provider best first, so a move always goes to the best provider not yet tried.
    """
    plan = RoundPlan()
    by_request: dict[str, list[Mapping[str, Any]]] = {}
    for a in attempts:
        by_request.setdefault(a["request_id"], []).append(a)
    for rid in requests:
        allocation = allocations.get(rid) or {}
        tried = by_request.get(rid, [])
        this_round = [a for a in tried if a.get("round") == round_no]
        ok = [a for a in tried if a["ok"]]
        failed_now = [a for a in this_round if not a["ok"]]
        ranking = list(allocation.get("ranking", ()))
        remaining = [p for p in ranking if p not in {a["provider"] for a in tried}]
        baselines = allocation.get("scores", {})

        if allocation.get("mode") == "none":
            plan.failed[rid] = allocation.get("rule", "no eligible provider")
            continue
        if ok:
            for a in failed_now:
                served = ok[0]["side"]
                base = baselines.get(a["provider"], {}).get("prediction")
                plan.events.append(_degradation_event(rid, a, base, served))
            plan.settled.append(rid)
            continue
        if not failed_now:
            continue  # nothing ran for it this round; still in flight elsewhere
        target = remaining[0] if remaining and round_no < max_rounds else None
        target_side = sides.get(target) if target else None
        for a in failed_now:
            base = baselines.get(a["provider"], {}).get("prediction")
            plan.events.append(_degradation_event(rid, a, base, target_side))
        if allocation.get("mode") == "hybrid" and len({a["side"] for a in failed_now}) > 1:
            plan.events.append(
                {
                    "code": "COORDINATION_FAILURE",
                    "request_id": rid,
                    "coordination_status": "COORDINATION_FAILURE",
                    "failure_point": "parallel_execution",
                    "affected_components": [a["provider"] for a in failed_now],
                    "fallback_strategy": "SEQUENTIAL_PROCESSING_WITH_BEST_AVAILABLE",
                    "next_provider": target,
                }
            )
        if target is None:
            errors = "; ".join(f"{a['provider']}: {a.get('error')}" for a in tried if not a["ok"])
            why = (
                "no other provider can serve it"
                if not remaining
                else (f"stopped after {max_rounds} rounds")
            )
            plan.failed[rid] = f"every provider failed ({errors}); {why}"
        else:
            plan.moves.append(
                {
                    "request_id": rid,
                    "provider": target,
                    "side": target_side,
                    "reason": failed_now[0].get("error"),
                }
            )
    return plan

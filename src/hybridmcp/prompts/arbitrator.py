"""The arbitrator's advice (``arbitrate``): ``CapabilityArbitratorSignature`` on the requests the
1.2 bias rule left undecided.

Asked only inside the hybrid band (both sides eligible, neither fitness above 1.2 times the
other, strategy ``auto``, not critical, not an audit, not a circuit's trial call); hard
constraints (clearance, availability, breaker, a requested strategy) were applied before and
are never revisited. The answer is bound to ``internal``, ``external`` or ``hybrid``. Advice
is a provider too (:mod:`hybridmcp.policy.advice_trust`): it is recorded beside the rule's
pick (the side with the higher fitness), and it narrows the allocation to one side only while
its learned accuracy for this skill beats the rule's. Until then the request stays
``hybrid``, both sides run, and the run shows which pick was right.

Privacy: the prompt carries fitness numbers and requirement profiles, never request arguments.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from hybridmcp.policy.advice_trust import trust_view, trusted
from hybridmcp.prompts.asking import ask_lm, clip, fallback_event, model_name, to_json

if TYPE_CHECKING:
    from langgraph.store.base import BaseStore

    from hybridmcp.policy.advice_trust import AdviceStats
    from hybridmcp.runtime import Resources

__all__ = [
    "ALLOCATION_CHOICES",
    "advice_signature",
    "advise_allocations",
    "in_hybrid_band",
    "rule_choice",
]

ALLOCATION_CHOICES = ("internal", "external", "hybrid")
TEXT_CHARS = 160  # the arbitrator's free-text fields: a sentence or two each


def in_hybrid_band(allocation: Mapping[str, Any], critical: bool, bias_ratio: float) -> bool:
    """True when the 1.2 rule left the request undecided: the one place advice may decide.

    Not when a user asked for a strategy or marked the request critical, not when only one
    side is eligible, not when one side clearly won (then the numbers decide), not for an
    audit of learned agreement (its point is to cross-validate), and not for a half-open
    circuit's trial call (``probe``: the rule had chosen one side; the other runs to test its
    recovery, which narrowing would skip).
    """
    if allocation.get("mode") != "hybrid" or allocation.get("strategy") != "auto" or critical:
        return False
    if (allocation.get("validation_sampling") or {}).get("audit") or allocation.get("probe"):
        return False
    i, e = allocation.get("internal_fitness"), allocation.get("external_fitness")
    if i is None or e is None:
        return False
    return not (i > e * bias_ratio or e > i * bias_ratio)


def rule_choice(allocation: Mapping[str, Any]) -> str:
    """The side the numbers favour inside the band: the deterministic pick advice is scored
    against (ties go internal, as the spec's bias does)."""
    i, e = allocation["internal_fitness"], allocation["external_fitness"]
    return "external" if e > i else "internal"


def _arbitration_inputs(
    res: Resources, allocation: Mapping[str, Any], profile: Mapping[str, Any], constraints: Any
) -> dict[str, Any]:
    scores = allocation["scores"]
    chosen = {scores[p]["side"]: scores[p] for p in allocation["providers"]}
    return {
        "capability_comparison": to_json(
            {
                side: {k: f[k] for k in ("provider", "performance", "cost", "quality", "total")}
                for side, f in chosen.items()
            }
            | {"bias_ratio": res.config.arbitration_config.bias_ratio}
        ),
        "performance_requirements": to_json(
            {
                k: profile.get(k)
                for k in (
                    "processing_complexity",
                    "real_time_requirements",
                    "scale_requirements",
                    "needs",
                )
            }
            | {
                "predicted": {s: f["prediction"] for s, f in chosen.items()},
                "deadline_ms": (constraints or {}).get("deadline_ms"),
            }
        ),
        "cost_constraints": to_json(
            {
                "budget": (constraints or {}).get("budget"),
                "cost_per_call": {s: f["prediction"].get("cost") for s, f in chosen.items()},
            }
        ),
        "security_considerations": to_json(
            {
                "data_sensitivity": profile.get("data_sensitivity"),
                "both_sides_cleared": True,
            }
        ),
    }


def advice_signature() -> Any:
    """The spec's ``CapabilityArbitratorSignature`` with its decision bound to the three
    choices (an ``enum`` in the answer's schema and grammar)."""
    from hybridmcp.prompts.signatures import CapabilityArbitratorSignature

    return CapabilityArbitratorSignature.with_updated_fields(
        "allocation_decision",
        type_=Literal["internal", "external", "hybrid"],
        desc="Optimal work allocation strategy: internal, external or hybrid (both)",
    )


def _apply_decision(allocation: dict[str, Any], decision: str) -> None:
    """Narrow a hybrid allocation to the side the arbitrator chose (its best provider)."""
    if decision == "hybrid":
        return
    scores = allocation["scores"]
    best = next(p for p in allocation["providers"] if scores[p]["side"] == decision)
    i, e = allocation["internal_fitness"], allocation["external_fitness"]
    allocation.update(
        mode=decision,
        providers=[best],
        validation_strategy="none",
        rule=(
            f"arbitrator advice {decision!r} inside the hybrid band "
            f"(internal {i:.3f}, external {e:.3f}; advice trusted: its learned accuracy "
            "beats the rule's)"
        ),
    )


async def _advise_one(
    res: Resources,
    lm: Any,
    rid: str,
    allocation: dict[str, Any],
    profile: Mapping[str, Any],
    constraints: Any,
    stats: AdviceStats,
    run_id: str | None = None,
) -> list[dict[str, Any]]:
    from hybridmcp.prompts.structured import StructuredAdapter

    prediction, error = await ask_lm(
        res,
        lm,
        advice_signature(),
        role="arbitrator",
        run_id=run_id,
        request_id=rid,
        adapter=StructuredAdapter(text_chars=TEXT_CHARS),
        **_arbitration_inputs(res, allocation, profile, constraints),
    )
    advice: dict[str, Any] = {
        "role": "arbitrator",
        "model": model_name(lm),
        "used": False,
        "deterministic_rule": allocation["rule"],
        "rule_choice": rule_choice(allocation),
        "trust": trust_view(stats),
    }
    if prediction is None:
        allocation["advice"] = advice | {"error": clip(error, 600)}
        return [fallback_event("arbitrator", "arbitrate", lm, error or "no answer", rid)]
    decision = str(prediction.allocation_decision)
    advice |= {
        "decision": decision,
        "performance_prediction": clip(prediction.performance_prediction),
        "cost_optimization": clip(prediction.cost_optimization),
        "risk_assessment": clip(prediction.risk_assessment),
    }
    if decision not in ALLOCATION_CHOICES:  # a custom adapter's answer, not bound by schema
        error = f"allocation_decision must be one of {list(ALLOCATION_CHOICES)}: {decision!r:.200}"
        allocation["advice"] = advice | {"error": error}
        return [fallback_event("arbitrator", "arbitrate", lm, error, rid)]
    if decision == "hybrid" or not trusted(stats):
        allocation["advice"] = advice | {
            "not_used": "agrees with the rule (hybrid)"
            if decision == "hybrid"
            else "advice has not yet beaten the rule's accuracy for this skill"
        }
        return []
    _apply_decision(allocation, decision)
    allocation["advice"] = advice | {"used": True}
    return []


async def advise_allocations(
    res: Resources,
    requests: Iterable[Mapping[str, Any]],
    allocations: dict[str, dict[str, Any]],
    profiles: Mapping[str, Mapping[str, Any]],
    constraints: Any = None,
    store: BaseStore | None = None,
    run_id: str | None = None,
) -> list[dict[str, Any]]:
    """Ask the arbitrator LM about the requests the 1.2 rule left in the hybrid band.

    Changes ``allocations`` in place (each asked one gets an ``advice`` record: the decision,
    the rule's pick, the learned trust, whether it was used) and returns ``LM_FALLBACK``
    events for the failures. ``store`` holds the learned advice accuracy (default: the
    resources' store).
    """
    lm = res.lms.get("arbitrator")
    if lm is None:
        return []
    from hybridmcp.prompts.trust import load_advice_stats

    ratio = res.config.arbitration_config.bias_ratio
    asked = []
    for request in requests:
        rid = str(request["id"])
        allocation = allocations.get(rid)
        if allocation and in_hybrid_band(allocation, bool(request.get("critical")), ratio):
            asked.append((rid, str(request["skill"]), allocation))
    if not asked:
        return []
    stats = await load_advice_stats(
        store if store is not None else res.store, (("arbitrator", s) for _, s, _ in asked)
    )
    jobs = [
        _advise_one(
            res,
            lm,
            rid,
            allocation,
            profiles[rid],
            constraints,
            stats[("arbitrator", skill)],
            run_id,
        )
        for rid, skill, allocation in asked
    ]
    events: list[dict[str, Any]] = []
    for result in await asyncio.gather(*jobs):
        events += result
    return events

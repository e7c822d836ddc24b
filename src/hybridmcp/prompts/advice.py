"""The LM layer's glue: what each node asks its LM, and how an answer becomes safe to use.

An LM here is advice, never authority (ARCHITECTURE.md, invariant 5). Each function is called
by one node, returns plain data for the state, and turns every failure (no answer within
``llm_config.timeout_ms``, an adapter parse error, an answer outside the allowed words) into
an ``LM_FALLBACK`` event while the node keeps its deterministic decision.

- ``analyze`` → :func:`coordinate`: the spec's ``HybridCoordinatorSignature`` over the task's
  requirement profiles; its four fields are recorded in ``state["coordination"]``.
- ``arbitrate`` → :func:`advise_allocations`: ``CapabilityArbitratorSignature``, asked only when
  the 1.2 bias rule left a request undecided (fitnesses within the band) and may then choose
  ``internal``, ``external`` or ``hybrid``. Hard constraints (clearance, availability, breaker,
  requested strategy, critical) were applied before and are never revisited.
- ``synchronize`` → :func:`refine_integration`: ``ResultSynchronizerSignature`` resolves
  conflicts by expert arbitration (it picks one side's own answer, never invents a value) and
  writes a ``hybrid_synthesis`` text next to the deterministic merge of text results.

The planner (``--ask``) lives in :mod:`hybridmcp.prompts.planner` and shares the helpers here.

Privacy: the coordinator and arbitrator prompts carry skill names, requirement profiles and
fitness numbers, never request arguments or results. Result values reach the synchronizer only
when its LM runs in this process (the local model) or the request's data is ``public``.

dspy is imported only when an LM is configured, so a deterministic run does not pay for it.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hybridmcp.events import EventCode

if TYPE_CHECKING:
    import dspy

    from hybridmcp.policy.integration import Answer
    from hybridmcp.runtime import Resources

__all__ = [
    "EXPERT_ARBITRATION",
    "LM_FALLBACK",
    "advise_allocations",
    "ask_lm",
    "clip",
    "coordinate",
    "fallback_event",
    "in_hybrid_band",
    "is_local",
    "model_name",
    "parse_choice",
    "refine_integration",
]

LM_FALLBACK = EventCode.LM_FALLBACK
EXPERT_ARBITRATION = "EXPERT_ARBITRATION_WITH_ADDITIONAL_VALIDATION"
ALLOCATION_CHOICES = ("internal", "external", "hybrid")
VERDICT_CHOICES = ("internal", "external", "undecided")

_RECORD_CHARS = 1500  # LM text kept in state per field
_VALUE_CHARS = 3000  # result values shown to the synchronizer, per side
_WORD = re.compile(r"[a-z]+")


# --------------------------------------------------------------------------- shared


def clip(text: Any, limit: int = _RECORD_CHARS) -> str:
    text = str(text or "").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json(value: Any, limit: int | None = None) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return clip(text, limit) if limit else text


def model_name(lm: Any) -> str:
    return str(getattr(lm, "model", type(lm).__name__))


def is_local(lm: Any) -> bool:
    from hybridmcp.prompts.lm import LocalLlamaLM

    return isinstance(lm, LocalLlamaLM)


def _adapter(lm: Any) -> Any:
    """One attempt per call for the local model: dspy's JSON retry doubles a slow call and a
    135M model rarely does better the second time."""
    if not is_local(lm):
        return None
    import dspy

    return dspy.ChatAdapter(use_json_adapter_fallback=False)


def fallback_event(
    role: str, step: str, lm: Any, error: str, request_id: str | None = None
) -> dict[str, Any]:
    """``LM_FALLBACK``: the LM gave nothing usable, the deterministic decision stands."""
    event = {
        "code": LM_FALLBACK,
        "role": role,
        "step": step,
        "model": model_name(lm),
        "error": clip(error, 600),
        "fallback": "deterministic",
    }
    return event | ({"request_id": request_id} if request_id else {})


async def ask_lm(
    res: Resources,
    lm: Any,
    signature: type[dspy.Signature],
    *,
    demos: Sequence[Mapping[str, Any]] = (),
    adapter: Any = None,
    **inputs: Any,
) -> tuple[Any, str | None]:
    """Ask ``lm``, bounded by ``llm_config.timeout_ms``; ``(prediction, error)``."""
    from hybridmcp.prompts.lm import arun_signature

    outcome = await arun_signature(
        signature,
        lm,
        adapter=adapter or _adapter(lm),
        demos=demos,
        time_limit=res.config.llm_config.timeout_ms / 1000,
        **inputs,
    )
    return outcome.prediction, outcome.error


def parse_choice(text: Any, choices: Sequence[str]) -> str | None:
    """The one choice an answer names, or None.

    Strict on purpose: an answer naming two choices ("internal and external, so hybrid") is
    ambiguous and rejected, so a rambling model cannot steer a decision by accident.
    """
    named = {w for w in _WORD.findall(str(text or "").lower()) if w in choices}
    return named.pop() if len(named) == 1 else None


def _profile_view(profile: Mapping[str, Any]) -> dict[str, Any]:
    """A requirement profile without findings (which may quote the sensitive text)."""
    return {k: v for k, v in profile.items() if k != "sensitivity_findings"}


# --------------------------------------------------------------------------- analyze


async def coordinate(
    res: Resources, requests: Sequence[Mapping[str, Any]], profiles: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The coordinator's plan for the run: ``(coordination record or None, events)``."""
    lm = res.lms.get("coordinator")
    if lm is None or not profiles:
        return None, []
    from hybridmcp.prompts.signatures import HybridCoordinatorSignature

    task: list[dict[str, Any]] = []
    internal: dict[str, list[str]] = {}
    external: dict[str, list[str]] = {}
    for request in requests:
        rid = str(request.get("id"))
        if rid not in profiles:
            continue
        skill = res.registry.get(str(request["skill"]))
        task.append(
            {
                "id": rid,
                "skill": skill.name,
                "strategy": request.get("strategy", "auto"),
                "critical": bool(request.get("critical", False)),
                "profile": _profile_view(profiles[rid]),
            }
        )
        for p in skill.providers:
            where = internal if p.side == "internal" else external
            where.setdefault(skill.name, []).append(
                p.id if p.side == "internal" else f"{p.server}/{p.tool}"
            )
    cfg = res.config
    prediction, error = await ask_lm(
        res,
        lm,
        HybridCoordinatorSignature,
        task_requirements=_json(task),
        internal_capabilities=_json(internal or "none"),
        external_services=_json(external or "none"),
        optimization_criteria=_json(
            {
                "weights": cfg.optimization_criteria.model_dump(),
                "internal_strengths": cfg.capability_mapping.internal_strengths,
                "external_strengths": cfg.capability_mapping.external_strengths,
            }
        ),
    )
    if prediction is None:
        return None, [fallback_event("coordinator", "coordinate", lm, error or "no answer")]
    fields = HybridCoordinatorSignature.output_fields
    record = {"source": "lm", "model": model_name(lm)}
    return record | {name: clip(getattr(prediction, name)) for name in fields}, []


# --------------------------------------------------------------------------- arbitrate


def in_hybrid_band(allocation: Mapping[str, Any], critical: bool, bias_ratio: float) -> bool:
    """True when the 1.2 rule left the request undecided: the one place advice may decide.

    Not when a user asked for a strategy or marked the request critical, not when only one
    side is eligible, not when one side clearly won (then the numbers decide), and not for an
    audit of learned agreement (its point is to cross-validate).
    """
    if allocation.get("mode") != "hybrid" or allocation.get("strategy") != "auto" or critical:
        return False
    if (allocation.get("validation_sampling") or {}).get("audit"):
        return False
    i, e = allocation.get("internal_fitness"), allocation.get("external_fitness")
    if i is None or e is None:
        return False
    return not (i > e * bias_ratio or e > i * bias_ratio)


def _arbitration_inputs(
    res: Resources, allocation: Mapping[str, Any], profile: Mapping[str, Any], constraints: Any
) -> dict[str, Any]:
    scores = allocation["scores"]
    chosen = {scores[p]["side"]: scores[p] for p in allocation["providers"]}
    return {
        "capability_comparison": _json(
            {
                side: {k: f[k] for k in ("provider", "performance", "cost", "quality", "total")}
                for side, f in chosen.items()
            }
            | {"bias_ratio": res.config.arbitration_config.bias_ratio}
        ),
        "performance_requirements": _json(
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
        "cost_constraints": _json(
            {
                "budget": (constraints or {}).get("budget"),
                "cost_per_call": {s: f["prediction"].get("cost") for s, f in chosen.items()},
            }
        ),
        "security_considerations": _json(
            {
                "data_sensitivity": profile.get("data_sensitivity"),
                "both_sides_cleared": True,
            }
        ),
    }


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
            f"(internal {i:.3f}, external {e:.3f})"
        ),
    )


async def _advise_one(
    res: Resources,
    lm: Any,
    rid: str,
    allocation: dict[str, Any],
    profile: Mapping[str, Any],
    constraints: Any,
) -> list[dict[str, Any]]:
    from hybridmcp.prompts.signatures import CapabilityArbitratorSignature

    signature = CapabilityArbitratorSignature.with_updated_fields(
        "allocation_decision",
        desc="Optimal work allocation strategy: exactly one word, internal, external or hybrid",
    )
    prediction, error = await ask_lm(
        res,
        lm,
        signature,
        **_arbitration_inputs(res, allocation, profile, constraints),
    )
    advice: dict[str, Any] = {
        "role": "arbitrator",
        "model": model_name(lm),
        "used": False,
        "deterministic_rule": allocation["rule"],
    }
    if prediction is None:
        allocation["advice"] = advice | {"error": clip(error, 600)}
        return [fallback_event("arbitrator", "arbitrate", lm, error or "no answer", rid)]
    raw = prediction.allocation_decision
    decision = parse_choice(raw, ALLOCATION_CHOICES)
    advice |= {
        "allocation_decision": clip(raw, 300),
        "performance_prediction": clip(prediction.performance_prediction),
        "cost_optimization": clip(prediction.cost_optimization),
        "risk_assessment": clip(prediction.risk_assessment),
    }
    if decision is None:
        error = f"allocation_decision must name one of {list(ALLOCATION_CHOICES)}: {raw!r:.200}"
        allocation["advice"] = advice | {"error": error}
        return [fallback_event("arbitrator", "arbitrate", lm, error, rid)]
    _apply_decision(allocation, decision)
    allocation["advice"] = advice | {"decision": decision, "used": True}
    return []


async def advise_allocations(
    res: Resources,
    requests: Iterable[Mapping[str, Any]],
    allocations: dict[str, dict[str, Any]],
    profiles: Mapping[str, Mapping[str, Any]],
    constraints: Any = None,
) -> list[dict[str, Any]]:
    """Let the arbitrator LM decide the requests the 1.2 rule left in the hybrid band.

    Changes ``allocations`` in place (each decided one gets an ``advice`` record saying
    whether the advice was used) and returns ``LM_FALLBACK`` events for the failures.
    """
    lm = res.lms.get("arbitrator")
    if lm is None:
        return []
    ratio = res.config.arbitration_config.bias_ratio
    jobs = []
    for request in requests:
        rid = str(request["id"])
        allocation = allocations.get(rid)
        if allocation and in_hybrid_band(allocation, bool(request.get("critical")), ratio):
            jobs.append(_advise_one(res, lm, rid, allocation, profiles[rid], constraints))
    events: list[dict[str, Any]] = []
    for result in await asyncio.gather(*jobs):
        events += result
    return events


# --------------------------------------------------------------------------- synchronize


def _has_text(value: Any) -> bool:
    """Free text somewhere in a value (a sentence, not a code or a timestamp)."""
    if isinstance(value, str):
        return " " in value.strip()
    if isinstance(value, Mapping):
        return any(_has_text(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_text(v) for v in value)
    return False


def _sides(answers: Sequence[Answer]) -> tuple[str, str]:
    def values(side: str) -> str:
        found = [a.value for a in answers if a.side == side]
        return _json(found[0] if len(found) == 1 else found, _VALUE_CHARS) if found else "none"

    return values("internal"), values("external")


async def _resolve_conflict(
    res: Resources,
    lm: Any,
    result: dict[str, Any],
    conflict: dict[str, Any],
    answers: Sequence[Answer],
) -> list[dict[str, Any]]:
    """Expert arbitration of one conflict, validated: the verdict must name a side that
    answered, and its answer (already validated from its provider) becomes the value."""
    from hybridmcp.policy.integration import CONFLICT_CONFIDENCE_ADJUSTMENT
    from hybridmcp.prompts.signatures import ResultSynchronizerSignature

    rid = result["id"]
    signature = ResultSynchronizerSignature.with_updated_fields(
        "synchronized_results",
        desc="Which side's answer is correct: exactly one word, internal, external or undecided",
    )
    details = conflict["conflict_details"]
    internal, external = _sides(answers)
    prediction, error = await ask_lm(
        res,
        lm,
        signature,
        internal_results=internal,
        external_results=external,
        integration_requirements=(
            f"The internal and external answers to skill {result['skill']!r} disagree "
            f"(similarity {details['similarity']}, differences: "
            f"{_json(details['conflict_areas'], 600)}). Decide which answer is correct."
        ),
        quality_standards="Choose only between the two answers given; say undecided if unsure.",
    )
    expert: dict[str, Any] = {"model": model_name(lm), "used": False}
    similarity = float(details.get("similarity") or 0.0)
    conflict["uncertainty"] = {
        "disagreement": round(1 - similarity, 4),
        "confidence_before": result["confidence"],
    }
    if prediction is None:
        conflict["expert_arbitration"] = expert | {"error": clip(error, 600)}
        return [fallback_event("synchronizer", "resolve_conflict", lm, error or "no answer", rid)]
    raw = prediction.synchronized_results
    verdict = parse_choice(raw, VERDICT_CHOICES)
    expert |= {
        "verdict_text": clip(raw, 300),
        "quality_validation": clip(prediction.quality_validation),
        "consistency_verification": clip(prediction.consistency_verification),
    }
    chosen = [a for a in answers if a.side == verdict]
    if verdict is None or (verdict != "undecided" and not chosen):
        error = f"verdict must name one of {list(VERDICT_CHOICES)} that answered: {raw!r:.200}"
        conflict["expert_arbitration"] = expert | {"error": error}
        return [fallback_event("synchronizer", "resolve_conflict", lm, error, rid)]
    conflict["resolution_strategy"] = EXPERT_ARBITRATION
    conflict["confidence_adjustment"] = CONFLICT_CONFIDENCE_ADJUSTMENT
    if verdict == "undecided":
        conflict["expert_arbitration"] = expert | {"verdict": verdict}
        conflict["final_approach"] = (
            "expert undecided: the deterministic resolution stands, with uncertainty"
        )
    else:
        best = max(chosen, key=lambda a: a.confidence)
        confidence = round(max(0.0, best.confidence + CONFLICT_CONFIDENCE_ADJUSTMENT), 4)
        result |= {
            "value": best.value,
            "confidence": confidence,
            "sources": [best.provider] + [s for s in result["sources"] if s != best.provider],
            "resolution": {"by": "expert_arbitration", "choice": verdict, "model": model_name(lm)},
        }
        conflict["expert_arbitration"] = expert | {"verdict": verdict, "used": True}
        conflict["final_approach"] = (
            f"expert arbitration chose the {verdict} answer ({best.provider}); "
            "hybrid result with uncertainty quantification"
        )
    conflict["uncertainty"]["confidence_after"] = result["confidence"]
    return []


async def _synthesize(
    res: Resources, lm: Any, result: dict[str, Any], answers: Sequence[Answer]
) -> list[dict[str, Any]]:
    """An LM synthesis of agreeing text answers, recorded beside the deterministic merge."""
    from hybridmcp.prompts.signatures import ResultSynchronizerSignature

    internal, external = _sides(answers)
    prediction, error = await ask_lm(
        res,
        lm,
        ResultSynchronizerSignature,
        internal_results=internal,
        external_results=external,
        integration_requirements=(
            f"Merge both answers to skill {result['skill']!r} into one text: keep what both "
            "support, add what only one adds."
        ),
        quality_standards="Faithful to the two answers; add no facts of your own.",
    )
    if prediction is None:
        return [
            fallback_event("synchronizer", "synthesize", lm, error or "no answer", result["id"])
        ]
    fields = ResultSynchronizerSignature.output_fields
    synthesis = result.setdefault("synthesis", {})
    synthesis["lm_synthesis"] = {"model": model_name(lm)} | {
        name: clip(getattr(prediction, name)) for name in fields
    }
    return []


def _withheld(lm: Any, sensitivity: str) -> str | None:
    if sensitivity == "public" or is_local(lm):
        return None
    return f"{str(sensitivity)!r} data is not sent to the non-local LM {model_name(lm)!r}"


async def refine_integration(
    res: Resources,
    results: dict[str, dict[str, Any]],
    conflicts: list[dict[str, Any]],
    answers: Mapping[str, Sequence[Answer]],
    profiles: Mapping[str, Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """The synchronizer LM on the run's cross-validated requests; changes records in place.

    A conflict gets expert arbitration; an agreeing ``hybrid_synthesis`` of text gets an LM
    synthesis. Values reach a non-local LM only for ``public`` data.
    """
    lm = res.lms.get("synchronizer")
    if lm is None:
        return []
    by_request = {c["request_id"]: c for c in conflicts}
    jobs = []
    for rid, given in answers.items():
        if len(given) < 2 or rid not in results:
            continue
        result, conflict = results[rid], by_request.get(rid)
        sensitivity = str(profiles.get(rid, {}).get("data_sensitivity", "public"))
        reason = _withheld(lm, sensitivity)
        if conflict is not None:
            if reason:
                conflict["expert_arbitration"] = {"model": model_name(lm), "used": False} | {
                    "withheld": reason
                }
                continue
            jobs.append(_resolve_conflict(res, lm, result, conflict, given))
        elif result.get("strategy") == "hybrid_synthesis" and any(
            _has_text(a.value) for a in given
        ):
            if reason:
                result.setdefault("synthesis", {})["lm_synthesis"] = {"withheld": reason}
                continue
            jobs.append(_synthesize(res, lm, result, given))
    events: list[dict[str, Any]] = []
    for found in await asyncio.gather(*jobs):
        events += found
    return events

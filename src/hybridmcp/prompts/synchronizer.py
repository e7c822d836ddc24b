"""The synchronizer's advice (``synchronize``): ``ResultSynchronizerSignature`` on the run's
cross-validated requests.

- A **conflict** gets expert arbitration: the answer is bound to ``internal``, ``external`` or
  ``undecided``. It is recorded beside the deterministic resolution's pick and replaces that
  resolution only while the synchronizer's learned accuracy for the skill beats the rule's
  (:mod:`hybridmcp.policy.advice_trust`; the truth comes from a human review). The chosen
  side's own validated answer becomes the value; the LM never invents one.
- Agreeing text answers of a ``hybrid_synthesis`` skill get an LM synthesis recorded next to
  the deterministic merge (``synthesis.lm_synthesis``); the value stays the merge.

Privacy: result values reach the synchronizer only when its LM runs in this process (the local
model), or when both the request's data and the answers themselves scan ``public``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from hybridmcp.policy.advice_trust import trust_view, trusted
from hybridmcp.prompts.asking import (
    ask_lm,
    clip,
    fallback_event,
    is_local,
    model_name,
    to_json,
)

if TYPE_CHECKING:
    from langgraph.store.base import BaseStore

    from hybridmcp.policy.advice_trust import AdviceStats
    from hybridmcp.policy.integration import Answer
    from hybridmcp.runtime import Resources

__all__ = ["EXPERT_ARBITRATION", "VERDICT_CHOICES", "refine_integration", "verdict_signature"]

EXPERT_ARBITRATION = "EXPERT_ARBITRATION_WITH_ADDITIONAL_VALIDATION"
VERDICT_CHOICES = ("internal", "external", "undecided")
TEXT_CHARS = 160  # the verdict's free-text fields
_VALUE_CHARS = 3000  # result values shown to the synchronizer, per side


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
        return to_json(found[0] if len(found) == 1 else found, _VALUE_CHARS) if found else "none"

    return values("internal"), values("external")


def _rule_choice(result: Mapping[str, Any], answers: Sequence[Answer]) -> str | None:
    """The side the deterministic resolution chose (None when it left the conflict open)."""
    sources = result.get("sources") or []
    if result.get("status") != "ok" or not sources:
        return None
    side = {a.provider: a.side for a in answers}.get(sources[0])
    return side if side in ("internal", "external") else None


def verdict_signature() -> Any:
    """The spec's ``ResultSynchronizerSignature`` for a conflict: its result is a verdict
    bound to ``internal``, ``external`` or ``undecided``."""
    from hybridmcp.prompts.signatures import ResultSynchronizerSignature

    return ResultSynchronizerSignature.with_updated_fields(
        "synchronized_results",
        type_=Literal["internal", "external", "undecided"],
        desc="Which side's answer is correct: internal, external or undecided",
    )


async def _ask_verdict(
    res: Resources,
    lm: Any,
    result: Mapping[str, Any],
    details: Mapping[str, Any],
    answers: Sequence[Answer],
    run_id: str | None = None,
) -> tuple[Any, str | None]:
    from hybridmcp.prompts.structured import StructuredAdapter

    internal, external = _sides(answers)
    return await ask_lm(
        res,
        lm,
        verdict_signature(),
        role="synchronizer",
        run_id=run_id,
        request_id=str(result["id"]),
        adapter=StructuredAdapter(text_chars=TEXT_CHARS),
        internal_results=internal,
        external_results=external,
        integration_requirements=(
            f"The internal and external answers to skill {result['skill']!r} disagree "
            f"(similarity {details['similarity']}, differences: "
            f"{to_json(details['conflict_areas'], 600)}). Decide which answer is correct."
        ),
        quality_standards="Choose only between the two answers given; say undecided if unsure.",
    )


async def _resolve_conflict(
    res: Resources,
    lm: Any,
    result: dict[str, Any],
    conflict: dict[str, Any],
    answers: Sequence[Answer],
    stats: AdviceStats,
    run_id: str | None = None,
) -> list[dict[str, Any]]:
    """Expert arbitration of one conflict. The verdict is bound to a side (or ``undecided``)
    and must name a side that answered; it replaces the deterministic resolution only while
    the synchronizer's learned accuracy for this skill beats the rule's, and then the chosen
    side's own (already validated) answer becomes the value: the LM never supplies one."""
    rid = result["id"]
    details = conflict["conflict_details"]
    prediction, error = await _ask_verdict(res, lm, result, details, answers, run_id)
    rule = _rule_choice(result, answers)
    expert: dict[str, Any] = {
        "model": model_name(lm),
        "used": False,
        "rule_choice": rule,
        "trust": trust_view(stats),
    }
    similarity = float(details.get("similarity") or 0.0)
    conflict["uncertainty"] = {
        "disagreement": round(1 - similarity, 4),
        "confidence_before": result["confidence"],
    }
    if prediction is None:
        conflict["expert_arbitration"] = expert | {"error": clip(error, 600)}
        return [fallback_event("synchronizer", "resolve_conflict", lm, error or "no answer", rid)]
    verdict = str(prediction.synchronized_results)
    expert |= {
        "verdict": verdict,
        "quality_validation": clip(prediction.quality_validation),
        "consistency_verification": clip(prediction.consistency_verification),
    }
    chosen = [a for a in answers if a.side == verdict]
    if verdict not in VERDICT_CHOICES or (verdict != "undecided" and not chosen):
        error = f"verdict must name one of {list(VERDICT_CHOICES)} that answered: {verdict!r:.200}"
        conflict["expert_arbitration"] = expert | {"error": error}
        return [fallback_event("synchronizer", "resolve_conflict", lm, error, rid)]
    result["expert_advice"] = {"verdict": verdict, "rule_choice": rule, "used": False}
    if verdict == "undecided" or not trusted(stats):
        conflict["expert_arbitration"] = expert | {
            "not_used": "undecided"
            if verdict == "undecided"
            else "advice has not yet beaten the rule's accuracy for this skill"
        }
        conflict["uncertainty"]["confidence_after"] = result["confidence"]
        return []
    _apply_verdict(result, conflict, chosen, verdict, model_name(lm))
    conflict["expert_arbitration"] = expert | {"used": True}
    return []


def _apply_verdict(
    result: dict[str, Any],
    conflict: dict[str, Any],
    chosen: Sequence[Answer],
    verdict: str,
    model: str,
) -> None:
    """A trusted verdict resolves the conflict: the chosen side's own answer is the value."""
    from hybridmcp.policy.integration import CONFLICT_CONFIDENCE_ADJUSTMENT

    conflict["resolution_strategy"] = EXPERT_ARBITRATION
    conflict["confidence_adjustment"] = CONFLICT_CONFIDENCE_ADJUSTMENT
    best = max(chosen, key=lambda a: a.confidence)
    confidence = round(max(0.0, best.confidence + CONFLICT_CONFIDENCE_ADJUSTMENT), 4)
    result |= {
        "value": best.value,
        "confidence": confidence,
        "sources": [best.provider] + [s for s in result["sources"] if s != best.provider],
        "resolution": {"by": "expert_arbitration", "choice": verdict, "model": model},
    }
    result["expert_advice"]["used"] = True
    conflict["final_approach"] = (
        f"expert arbitration chose the {verdict} answer ({best.provider}); "
        "hybrid result with uncertainty quantification"
    )
    conflict["uncertainty"]["confidence_after"] = result["confidence"]


async def _synthesize(
    res: Resources,
    lm: Any,
    result: dict[str, Any],
    answers: Sequence[Answer],
    run_id: str | None = None,
) -> list[dict[str, Any]]:
    """An LM synthesis of agreeing text answers, recorded beside the deterministic merge."""
    from hybridmcp.prompts.signatures import ResultSynchronizerSignature

    internal, external = _sides(answers)
    prediction, error = await ask_lm(
        res,
        lm,
        ResultSynchronizerSignature,
        role="synchronizer",
        run_id=run_id,
        request_id=str(result["id"]),
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


def _withheld(res: Resources, lm: Any, sensitivity: str, answers: Sequence[Answer]) -> str | None:
    """Why the answers may not be shown to ``lm`` (None: they may). A model that does not run
    in this process is an external service cleared ``public``: neither the request's data
    above it nor answers that scan above it (an internal side's answer can carry private
    data the public arguments did not) are sent to it."""
    if is_local(lm):
        return None
    if sensitivity == "public":
        sensitivity = _answers_level(res, answers)
        if sensitivity == "public":
            return None
        what = f"answers holding {sensitivity!r} data are"
    else:
        what = f"{sensitivity!r} data is"
    return f"{what} not sent to the non-local LM {model_name(lm)!r}"


def _answers_level(res: Resources, answers: Sequence[Answer]) -> str:
    """The sensitivity of the answers' values, as the privacy settings scan (too large to
    scan: ``restricted``)."""
    from hybridmcp.policy.disclosure import json_text
    from hybridmcp.policy.privacy import Sensitivity, scan

    privacy = res.config.privacy
    if not privacy.enabled:
        return str(Sensitivity.public)
    values = [a.value for a in answers]
    if len(json_text(values)) > privacy.max_scan_bytes:
        return str(Sensitivity.restricted)
    return str(scan(values, privacy.detection).level)


async def refine_integration(
    res: Resources,
    results: dict[str, dict[str, Any]],
    conflicts: list[dict[str, Any]],
    answers: Mapping[str, Sequence[Answer]],
    profiles: Mapping[str, Mapping[str, Any]],
    store: BaseStore | None = None,
    run_id: str | None = None,
) -> list[dict[str, Any]]:
    """The synchronizer LM on the run's cross-validated requests; changes records in place.

    A conflict gets expert arbitration; an agreeing ``hybrid_synthesis`` of text gets an LM
    synthesis. Values reach a non-local LM only for ``public`` data (the request's and the
    answers' own). ``store`` holds the learned advice accuracy (default: the resources' store).
    """
    lm = res.lms.get("synchronizer")
    if lm is None:
        return []
    from hybridmcp.prompts.trust import load_advice_stats

    by_request = {c["request_id"]: c for c in conflicts}
    stats = await load_advice_stats(
        store if store is not None else res.store,
        (("synchronizer", str(results[rid]["skill"])) for rid in by_request if rid in results),
    )
    jobs = []
    for rid, given in answers.items():
        if len(given) < 2 or rid not in results:
            continue
        result, conflict = results[rid], by_request.get(rid)
        sensitivity = str(profiles.get(rid, {}).get("data_sensitivity", "public"))
        reason = _withheld(res, lm, sensitivity, given)
        if conflict is not None:
            if reason:
                conflict["expert_arbitration"] = {"model": model_name(lm), "used": False} | {
                    "withheld": reason
                }
                continue
            skill_stats = stats[("synchronizer", str(result["skill"]))]
            jobs.append(_resolve_conflict(res, lm, result, conflict, given, skill_stats, run_id))
        elif result.get("strategy") == "hybrid_synthesis" and any(
            _has_text(a.value) for a in given
        ):
            if reason:
                result.setdefault("synthesis", {})["lm_synthesis"] = {"withheld": reason}
                continue
            jobs.append(_synthesize(res, lm, result, given, run_id))
    events: list[dict[str, Any]] = []
    for found in await asyncio.gather(*jobs):
        events += found
    return events

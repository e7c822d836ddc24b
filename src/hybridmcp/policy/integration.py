"""Result integration: the spec's four strategies, conflict records, and quality metrics.

All deterministic. ``hybrid_synthesis`` is a structured merge; an LM may refine it later, but
the engine never needs one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hybridmcp.config import ComparatorConfig
from hybridmcp.policy.comparators import Comparison, compare

CONFLICT_CONFIDENCE_ADJUSTMENT = -0.2


@dataclass(frozen=True)
class Answer:
    provider: str
    side: str
    value: Any
    confidence: float
    latency_ms: float


@dataclass
class Integrated:
    value: Any
    strategy: str
    confidence: float
    agreement: bool | None
    similarity: float | None = None
    conflict: dict[str, Any] | None = None
    synthesis: dict[str, Any] | None = None
    sources: list[str] = field(default_factory=list)


def _combined(confidences: Sequence[float]) -> float:
    """Independent confirmations: the chance that not all of them are wrong."""
    miss = 1.0
    for c in confidences:
        miss *= 1.0 - c
    return 1.0 - miss


def _ranked(answers: Sequence[Answer]) -> list[Answer]:
    return sorted(answers, key=lambda a: (-a.confidence, a.latency_ms))


def _average(values: Sequence[Any], weights: Sequence[float]) -> Any:
    """Confidence-weighted mean of numeric leaves; other leaves from the heaviest answer."""
    first = values[0]
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        total = sum(weights) or 1.0
        mean = sum(v * w for v, w in zip(values, weights, strict=True)) / total
        return int(mean) if all(isinstance(v, int) for v in values) and mean.is_integer() else mean
    if all(isinstance(v, dict) for v in values):
        keys = [k for k in first if all(k in v for v in values)]
        return {k: _average([v[k] for v in values], weights) for k in keys} | {
            k: first[k] for k in first if k not in keys
        }
    return first


def _merge(primary: Any, secondary: Any) -> Any:
    """Structured merge: union of keys, the primary answer wins where both have a value."""
    if isinstance(primary, dict) and isinstance(secondary, dict):
        out = dict(primary)
        for k, v in secondary.items():
            out[k] = _merge(primary[k], v) if k in primary else v
        return out
    if isinstance(primary, list) and isinstance(secondary, list):
        seen = {repr(x) for x in primary}
        return [*primary, *(x for x in secondary if repr(x) not in seen)]
    return primary


def _disagreement(similarity: float) -> str:
    return "minor" if similarity >= 0.75 else "significant" if similarity >= 0.4 else "major"


def conflict_record(
    request_id: str, answers: Sequence[Answer], comparison: Comparison, strategy: str
) -> dict[str, Any]:
    """The spec's ``RESULT_CONFLICT_DETECTED`` record."""
    by_side = {a.side: a for a in answers}
    return {
        "integration_status": "RESULT_CONFLICT_DETECTED",
        "request_id": request_id,
        "conflict_details": {
            "internal_confidence": round(by_side["internal"].confidence, 4)
            if "internal" in by_side
            else None,
            "external_confidence": round(by_side["external"].confidence, 4)
            if "external" in by_side
            else None,
            "disagreement_level": _disagreement(comparison.similarity),
            "similarity": round(comparison.similarity, 4),
            "conflict_areas": comparison.differences,
        },
        "values": {a.provider: a.value for a in answers},
        "resolution_strategy": "HIGHER_CONFIDENCE_WINS"
        if strategy != "weighted_average"
        else "CONFIDENCE_WEIGHTED_AVERAGE",
        "final_approach": f"{strategy} with uncertainty quantification",
        "confidence_adjustment": CONFLICT_CONFIDENCE_ADJUSTMENT,
    }


def integrate(
    request_id: str,
    answers: Sequence[Answer],
    comparator: ComparatorConfig,
    strategy: str = "consensus",
) -> Integrated:
    """Integrate the answers of one request (at least one)."""
    if not answers:
        raise ValueError("integrate needs at least one answer")
    ranked = _ranked(answers)
    best = ranked[0]
    if len(ranked) == 1:
        return Integrated(best.value, strategy, best.confidence, None, sources=[best.provider])
    comparison = compare(ranked[0].value, ranked[1].value, comparator)
    for other in ranked[2:]:
        extra = compare(best.value, other.value, comparator)
        comparison = Comparison(
            comparison.agree and extra.agree,
            min(comparison.similarity, extra.similarity),
            comparison.differences + extra.differences,
        )
    confidences = [a.confidence for a in ranked]
    if comparison.agree:
        confidence = _combined(confidences)
    else:
        confidence = max(0.0, best.confidence + CONFLICT_CONFIDENCE_ADJUSTMENT)
    conflict = (
        None if comparison.agree else conflict_record(request_id, ranked, comparison, strategy)
    )

    if strategy == "weighted_average":
        value = _average([a.value for a in ranked], confidences)
    elif strategy == "best_performer":
        value = best.value
    elif strategy == "hybrid_synthesis":
        value = best.value
        for other in ranked[1:]:
            value = _merge(value, other.value)
    else:  # consensus: agreeing answers confirm each other; otherwise the more confident wins
        value = best.value
    synthesis = (
        _synthesis(ranked, value, confidence, comparison)
        if strategy == "hybrid_synthesis"
        else None
    )
    return Integrated(
        value,
        strategy,
        round(confidence, 4),
        comparison.agree,
        round(comparison.similarity, 4),
        conflict,
        synthesis,
        [a.provider for a in ranked],
    )


def _synthesis(
    ranked: Sequence[Answer], value: Any, confidence: float, comparison: Comparison
) -> dict[str, Any]:
    """The spec's hybrid-synthesis record: findings, evidence, confidence, transparency."""

    def keys(a: Answer) -> set[str]:
        return set(a.value) if isinstance(a.value, dict) else set()

    internal = [a for a in ranked if a.side == "internal"]
    external = [a for a in ranked if a.side == "external"]
    ik = set().union(*(keys(a) for a in internal)) if internal else set()
    ek = set().union(*(keys(a) for a in external)) if external else set()
    return {
        "primary_findings": value,
        "supporting_evidence": {a.provider: a.value for a in ranked},
        "confidence_assessment": {
            "confidence": round(confidence, 4),
            "similarity": round(comparison.similarity, 4),
            "agree": comparison.agree,
        },
        "methodology_transparency": {
            "internal_contribution": sorted(ik - ek) or [a.provider for a in internal],
            "external_contribution": sorted(ek - ik) or [a.provider for a in external],
            "integration_approach": "hybrid_synthesis",
        },
    }


def quality_metrics(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The spec's quality metrics over a run's results, each in [0, 1], and their mean."""
    if not results:
        return {
            "completeness": 0.0,
            "consistency": 0.0,
            "reliability": 0.0,
            "transparency": 0.0,
            "overall": 0.0,
            "cross_validated": 0,
        }
    values = list(results.values())
    answered = [r for r in values if r.get("error") is None]
    checked = [r for r in answered if r.get("agreement") is not None]
    metrics = {
        "completeness": len(answered) / len(values),
        "consistency": (
            sum(1 for r in checked if r["agreement"]) / len(checked) if checked else 1.0
        ),
        "reliability": float(np.mean([r.get("confidence") or 0.0 for r in values])),
        "transparency": sum(
            1 for r in values if r.get("allocation") and r.get("attempts") is not None
        )
        / len(values),
    }
    metrics["overall"] = float(np.mean(list(metrics.values())))
    return {k: round(v, 4) for k, v in metrics.items()} | {"cross_validated": len(checked)}

"""Result integration: the spec's four strategies, conflict records, and quality metrics.

All deterministic. ``hybrid_synthesis`` is a structured merge; an LM may refine it later, but
the engine never needs one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

from hybridmcp.config import ComparatorConfig
from hybridmcp.policy.comparators import Comparison, canonical, compare
from hybridmcp.policy.learning import trust

CONFLICT_CONFIDENCE_ADJUSTMENT = -0.2


@dataclass(frozen=True)
class Answer:
    provider: str
    side: str
    value: Any
    confidence: float
    """How far the answer is trusted a priori: its provider's scored quality."""
    latency_ms: float
    trust: float = 0.5
    """Evidence of correctness for this skill (:func:`hybridmcp.policy.learning.trust`)."""
    confirmations: int = 0
    """Times this provider's answers for the skill were confirmed right."""


def answer_confidence(score: Mapping[str, Any]) -> float:
    """How far an answer is trusted a priori: the provider's quality as arbitration scored it,
    learned success and agreement plus the bonus of its side's strengths that the request
    needs (``capability_mapping``). It ranks agreeing answers and breaks an undecided
    conflict of a non-critical request; evidence of correctness (:func:`answer_for`) decides
    conflicts first."""
    if "quality" in score:
        return float(score["quality"])
    return float(score.get("prediction", {}).get("quality", 0.5))


Evidence = dict[int, tuple[Mapping[str, Any], float, float, int]]
"""What :func:`answer_for` read of each score so far, by the score's id (with the score, so
that the id stays its own): its confidence, trust and confirmations."""


def answer_for(
    attempt: Mapping[str, Any], score: Mapping[str, Any], memo: Evidence | None = None
) -> Answer:
    """An attempt's answer with its provider's evidence of correctness for the skill
    (``memo``: the evidence read of the scores so far, which must not change meanwhile;
    requests alike share their scores)."""
    known = memo.get(id(score)) if memo is not None else None
    if known is not None and known[0] is score:
        _, confidence, trusted, confirmations = known
    else:
        prediction = score.get("prediction") or {}
        confirmations = int(prediction.get("confirmations", 0))
        refutations = int(prediction.get("refutations", 0))
        confidence = answer_confidence(score)
        trusted = trust(confirmations, refutations)
        if memo is not None:
            memo[id(score)] = (score, confidence, trusted, confirmations)
    return Answer(
        attempt["provider"],
        attempt["side"],
        attempt["value"],
        confidence,
        attempt["latency_ms"],
        trusted,
        confirmations,
    )


@dataclass(frozen=True)
class EvidenceRule:
    """When evidence alone settles a two-sided conflict: the leader was confirmed at least
    ``min_confirmations`` times and its trust exceeds the other side's by ``margin``."""

    min_confirmations: int = 3
    margin: float = 0.25


MAJORITY, EVIDENCE, PRIOR, UNRESOLVED = "majority", "evidence", "prior", "unresolved"
RESOLUTION_STRATEGY = {
    MAJORITY: "THIRD_PROVIDER_MAJORITY",
    EVIDENCE: "EVIDENCE_OF_CORRECTNESS",
    PRIOR: "HIGHER_CONFIDENCE_WINS",
    UNRESOLVED: "UNRESOLVED_NO_EVIDENCE",
}


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
    status: str = "ok"
    """``ok``, or ``unresolved``: a conflict nothing decided (value None)."""
    resolution: str | None = None
    """How a conflict was settled: majority, evidence, prior, unresolved."""
    verdicts: dict[str, bool] = field(default_factory=dict)
    """Per provider: shown right (True) or wrong (False) by this integration."""


def _combined(confidences: Sequence[float]) -> float:
    """Independent confirmations: the chance that not all of them are wrong."""
    miss = 1.0
    for c in confidences:
        miss *= 1.0 - c
    return 1.0 - miss


def _ranked(answers: Sequence[Answer]) -> list[Answer]:
    """Most trusted first; never by speed (a fast answer is not a right one)."""
    return sorted(answers, key=lambda a: (-a.trust, -a.confidence, a.provider))


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
        seen = {canonical(x) for x in primary}
        return [*primary, *(x for x in secondary if canonical(x) not in seen)]
    return primary


def _disagreement(similarity: float) -> str:
    return "minor" if similarity >= 0.75 else "significant" if similarity >= 0.4 else "major"


def conflict_record(
    request_id: str,
    answers: Sequence[Answer],
    comparison: Comparison,
    strategy: str,
    resolution: str = PRIOR,
) -> dict[str, Any]:
    """The spec's ``RESULT_CONFLICT_DETECTED`` record, with the evidence behind its
    resolution."""
    by_side: dict[str, Answer] = {}
    for a in answers:
        by_side.setdefault(a.side, a)
    rule = RESOLUTION_STRATEGY[resolution]
    if resolution == PRIOR and strategy == "weighted_average":
        rule = "CONFIDENCE_WEIGHTED_AVERAGE"
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
        "evidence": {
            a.provider: {"trust": round(a.trust, 4), "confirmations": a.confirmations}
            for a in answers
        },
        "resolution": resolution,
        "resolution_strategy": rule,
        "final_approach": f"{strategy} with uncertainty quantification",
        "confidence_adjustment": CONFLICT_CONFIDENCE_ADJUSTMENT,
    }


def _clusters(ranked: Sequence[Answer], comparator: ComparatorConfig) -> list[list[Answer]]:
    """Group the answers that agree with each other (each joins the first group whose leader
    it agrees with)."""
    groups: list[list[Answer]] = []
    for a in ranked:
        home = next((g for g in groups if compare(g[0].value, a.value, comparator).agree), None)
        if home is None:
            groups.append([a])
        else:
            home.append(a)
    return groups


def _resolve(
    groups: Sequence[Sequence[Answer]], critical: bool, rule: EvidenceRule
) -> tuple[Sequence[Answer] | None, str]:
    """Which group of answers wins a conflict, and by what. A larger group (a third provider
    sided with it) wins; else evidence of correctness, if it is strong enough; else, for a
    critical request, nothing wins; else the a-priori confidence (strengths, learned quality)."""
    by_size = sorted(groups, key=len, reverse=True)
    if len(by_size[0]) > len(by_size[1]):
        return by_size[0], MAJORITY
    leaders = sorted((g[0] for g in groups), key=lambda a: -a.trust)
    top, runner = leaders[0], leaders[1]
    if top.confirmations >= rule.min_confirmations and top.trust - runner.trust >= rule.margin:
        return next(g for g in groups if g[0] is top), EVIDENCE
    if critical:
        return None, UNRESOLVED
    best = max(groups, key=lambda g: (g[0].confidence, g[0].trust))
    return best, PRIOR


def kept_over(mine: Mapping[str, Any], theirs: Mapping[str, Any]) -> bool:
    """Would a conflict of a non-critical request between an answer of the provider scored
    ``mine`` and one of the provider scored ``theirs`` (their allocation ``scores``) keep
    mine, whichever came first? (A tie keeps either.)"""
    blank = {"value": None, "latency_ms": 0.0}
    a = answer_for({**blank, "provider": "mine", "side": "mine"}, mine)
    b = answer_for({**blank, "provider": "theirs", "side": "theirs"}, theirs)
    rule = EvidenceRule()
    return all(
        (won := _resolve(groups, False, rule)[0]) is not None and won[0] is a
        for groups in ([[a], [b]], [[b], [a]])
    )


def _value(strategy: str, answers: Sequence[Answer]) -> Any:
    if strategy == "weighted_average":
        return _average([a.value for a in answers], [a.confidence for a in answers])
    value = answers[0].value
    if strategy == "hybrid_synthesis":
        for other in answers[1:]:
            value = _merge(value, other.value)
    return value  # consensus and best_performer: the leading answer


def integrate(
    request_id: str,
    answers: Sequence[Answer],
    comparator: ComparatorConfig,
    strategy: str = "consensus",
    *,
    critical: bool = False,
    rule: EvidenceRule | None = None,
) -> Integrated:
    """Integrate the answers of one request (at least one).

    Agreeing answers confirm each other. In a conflict the winner is decided by evidence of
    correctness (:func:`_resolve`), never by speed; a critical conflict that nothing decides is
    ``unresolved``, with no value.
    """
    if not answers:
        raise ValueError("integrate needs at least one answer")
    if len(answers) == 1:  # nothing to rank or compare
        best = answers[0]
        return Integrated(best.value, strategy, best.confidence, None, sources=[best.provider])
    ranked = _ranked(answers)
    groups = _clusters(ranked, comparator)
    if len(groups) == 1:
        return _agreed(ranked, comparator, strategy)
    rivals = [g[0] for g in groups]
    comparison = compare(rivals[0].value, rivals[-1].value, comparator)
    winners, resolution = _resolve(groups, critical, rule or EvidenceRule())
    conflict = conflict_record(request_id, ranked, comparison, strategy, resolution)
    if winners is None:
        return Integrated(
            None,
            strategy,
            0.0,
            False,
            round(comparison.similarity, 4),
            conflict,
            None,
            [a.provider for a in ranked],
            status=UNRESOLVED,
            resolution=resolution,
        )
    return _decided(ranked, winners, resolution, comparison, conflict, strategy)


def _agreed(ranked: Sequence[Answer], comparator: ComparatorConfig, strategy: str) -> Integrated:
    """Every answer agrees: they confirm each other."""
    comparison = compare(ranked[0].value, ranked[-1].value, comparator)
    value = _value(strategy, ranked)
    confidence = _combined([a.confidence for a in ranked])
    return Integrated(
        value,
        strategy,
        round(confidence, 4),
        True,
        round(comparison.similarity, 4),
        None,
        _synthesis(ranked, value, confidence, comparison)
        if strategy == "hybrid_synthesis"
        else None,
        [a.provider for a in ranked],
        verdicts={a.provider: True for a in ranked},
    )


def _decided(
    ranked: Sequence[Answer],
    winners: Sequence[Answer],
    resolution: str,
    comparison: Comparison,
    conflict: dict[str, Any],
    strategy: str,
) -> Integrated:
    """A conflict the evidence decided: the winners' value, with a confidence lowered for the
    disagreement; a majority is a verdict on each provider, other evidence is not."""
    ordered = [*winners, *(a for a in ranked if a not in winners)]
    if resolution == MAJORITY:
        value = _value(strategy, winners)
        verdicts = {a.provider: a in winners for a in ranked}
    else:
        value = _value(strategy, ordered if strategy == "weighted_average" else winners)
        verdicts = {}
    confidence = max(0.0, winners[0].confidence + CONFLICT_CONFIDENCE_ADJUSTMENT)
    synthesis = (
        _synthesis(ordered, value, confidence, comparison)
        if strategy == "hybrid_synthesis"
        else None
    )
    return Integrated(
        value,
        strategy,
        round(confidence, 4),
        False,
        round(comparison.similarity, 4),
        conflict,
        synthesis,
        [a.provider for a in ordered],
        resolution=resolution,
        verdicts=verdicts,
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
    """The spec's quality metrics over a run's results, each in [0, 1], and their mean; an
    unresolved conflict is not a complete answer, and counts as cross-validated and in
    disagreement (``consistency``)."""
    if not results:
        return {
            "completeness": 0.0,
            "consistency": 0.0,
            "reliability": 0.0,
            "transparency": 0.0,
            "overall": 0.0,
            "cross_validated": 0,
            "unresolved": 0,
        }
    values = list(results.values())
    answered = [r for r in values if r.get("status", "ok") == "ok" and r.get("error") is None]
    # cross-validated: both sides answered and were compared, whether the conflict was then
    # decided or left unresolved (an unresolved conflict is the plainest inconsistency)
    checked = [
        r
        for r in values
        if r.get("agreement") is not None and r.get("status", "ok") in ("ok", UNRESOLVED)
    ]
    metrics = {
        "completeness": len(answered) / len(values),
        "consistency": (
            sum(1 for r in checked if r["agreement"]) / len(checked) if checked else 1.0
        ),
        "reliability": fmean([r.get("confidence") or 0.0 for r in values]),
        "transparency": sum(
            1 for r in values if r.get("allocation") and r.get("attempts") is not None
        )
        / len(values),
    }
    metrics["overall"] = fmean(metrics.values())
    unresolved = sum(1 for r in values if r.get("status") == UNRESOLVED)
    return {k: round(v, 4) for k, v in metrics.items()} | {
        "cross_validated": len(checked),
        "unresolved": unresolved,
    }


def run_status(results: Mapping[str, Mapping[str, Any]]) -> str:
    """``ok`` when every request has a trusted answer; ``unresolved`` when some conflict was
    left undecided (and nothing failed); ``partial`` or ``failed`` when requests have errors."""
    statuses = [r["status"] for r in results.values()]
    if not statuses:
        return "failed"
    if "error" in statuses:
        return "partial" if any(s != "error" for s in statuses) else "failed"
    return "unresolved" if UNRESOLVED in statuses else "ok"

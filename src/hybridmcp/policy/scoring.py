"""Requirement analysis and capability arbitration: pure functions over plain values.

Arbitration follows the spec: a weighted fitness per side (performance 0.4, cost 0.3,
quality 0.2, security 0.1 by default), then the 1.2 bias rule: a side wins alone only when its
fitness exceeds the other's by the bias ratio; otherwise the request runs on both sides and is
cross-validated. Hard constraints come first: a provider not cleared for the request's
sensitivity is never a candidate. Every decision keeps the numbers that drove it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from hybridmcp.config import ArbitrationConfig, CapabilityMapping, OptimizationCriteria
from hybridmcp.policy.learning import Prediction

SENSITIVITY_LEVELS = ("public", "internal", "confidential", "restricted")
LARGE_INPUT_BYTES = 100_000
COMPLEX_INPUT_BYTES = 10_000


def sensitivity_rank(level: str) -> int:
    return SENSITIVITY_LEVELS.index(level)


def analyze_requirements(
    *,
    skill: str,
    tags: Sequence[str],
    complexity: str,
    args: Any,
    sensitivity: str = "public",
    findings: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The spec's requirement profile of one request, deterministic."""
    size = len(json.dumps(args, default=str))
    if size > COMPLEX_INPUT_BYTES and complexity == "low":
        complexity = "medium"
    scale = "large" if size > LARGE_INPUT_BYTES else "small"
    needs = set(tags)
    if complexity == "high":
        needs.add("complex_reasoning")
    if scale == "large":
        needs.add("large_scale_processing")
    if sensitivity_rank(sensitivity) >= sensitivity_rank("confidential"):
        needs.add("privacy_sensitive")
    return {
        "processing_complexity": complexity,
        "domain_specialization": skill.split(".", 1)[0],
        "data_sensitivity": sensitivity,
        "sensitivity_findings": list(findings),
        "real_time_requirements": "real_time_data" in needs,
        "scale_requirements": scale,
        "input_bytes": size,
        "needs": sorted(needs),
    }


@dataclass(frozen=True)
class Candidate:
    """A provider as arbitration sees it: its side, clearance and predicted performance."""

    provider: str
    side: str
    clearance: str
    prediction: Prediction
    available: bool = True
    unavailable_reason: str | None = None
    redacts: bool = False
    """Receives redacted arguments (privacy policy ``redact``): judged by the declared
    sensitivity, the part redaction cannot remove."""


@dataclass(frozen=True)
class Fitness:
    provider: str
    side: str
    performance: float
    cost: float
    quality: float
    security: float
    total: float
    prediction: dict[str, Any] = field(default_factory=dict)


def security_score(clearance: str, sensitivity: str) -> float:
    """Clearance headroom above the data's sensitivity; any cleared provider is fine for public
    data."""
    s, c = sensitivity_rank(sensitivity), sensitivity_rank(clearance)
    if s == 0:
        return 1.0
    return (c - s + 1) / (len(SENSITIVITY_LEVELS) - s)


def fitness(
    candidate: Candidate,
    profile: Mapping[str, Any],
    criteria: OptimizationCriteria,
    arbitration: ArbitrationConfig,
    mapping: CapabilityMapping,
) -> Fitness:
    p = candidate.prediction
    strengths = (
        mapping.internal_strengths if candidate.side == "internal" else mapping.external_strengths
    )
    matched = len(set(profile.get("needs", ())) & set(strengths))
    performance = (
        p.success * arbitration.latency_scale_ms / (arbitration.latency_scale_ms + p.latency_ms)
    )
    cost = arbitration.cost_scale / (arbitration.cost_scale + p.cost)
    quality = min(1.0, p.quality + mapping.strength_bonus * matched)
    security = security_score(candidate.clearance, _sensitivity_for(candidate, profile))
    total = (
        criteria.performance_weight * performance
        + criteria.cost_weight * cost
        + criteria.quality_weight * quality
        + criteria.security_weight * security
    ) / criteria.total
    return Fitness(
        candidate.provider,
        candidate.side,
        round(performance, 4),
        round(cost, 4),
        round(quality, 4),
        round(security, 4),
        round(total, 4),
        p.to_dict(),
    )


def _sensitivity_for(candidate: Candidate, profile: Mapping[str, Any]) -> str:
    """What the candidate would see: all of it, or (redacting) only the declared level."""
    if candidate.redacts:
        return str(profile.get("declared_sensitivity", "public"))
    return str(profile.get("data_sensitivity", "public"))


def eligible(candidate: Candidate, sensitivity: str) -> str | None:
    """Why a candidate cannot serve the request, or None when it can."""
    if not candidate.available:
        return candidate.unavailable_reason or "unavailable"
    if sensitivity_rank(candidate.clearance) < sensitivity_rank(sensitivity):
        return f"clearance {candidate.clearance!r} is below the data's sensitivity {sensitivity!r}"
    return None


def arbitrate(
    *,
    strategy: str,
    critical: bool,
    profile: Mapping[str, Any],
    candidates: Sequence[Candidate],
    criteria: OptimizationCriteria,
    arbitration: ArbitrationConfig,
    mapping: CapabilityMapping,
) -> dict[str, Any]:
    """Decide who serves one request. Returns the allocation with every number behind it.

    ``mode`` is ``internal``, ``external``, ``hybrid`` (both sides, cross-validated) or ``none``;
    ``providers`` lists the chosen providers, ``ranking`` every eligible one best first (the
    reallocation order).
    """
    excluded = []
    scored: list[Fitness] = []
    for c in candidates:
        reason = eligible(c, _sensitivity_for(c, profile))
        if reason:
            excluded.append({"provider": c.provider, "side": c.side, "reason": reason})
        else:
            scored.append(fitness(c, profile, criteria, arbitration, mapping))
    scored.sort(key=lambda f: -f.total)
    best = {
        side: next((f for f in scored if f.side == side), None) for side in ("internal", "external")
    }
    internal, external = best["internal"], best["external"]
    mode, rule = _decide(strategy, critical, internal, external, arbitration)
    chosen = [f for f in (internal, external) if f is not None and mode in (f.side, "hybrid")]
    chosen.sort(key=lambda f: -f.total)
    return {
        "mode": mode,
        "strategy": strategy,
        "rule": rule,
        "providers": [f.provider for f in chosen],
        "ranking": [f.provider for f in scored],
        "scores": {f.provider: asdict(f) for f in scored},
        "internal_fitness": internal.total if internal else None,
        "external_fitness": external.total if external else None,
        "excluded": excluded,
        "validation_strategy": "cross_validation" if mode == "hybrid" else "none",
    }


def _decide(
    strategy: str,
    critical: bool,
    internal: Fitness | None,
    external: Fitness | None,
    cfg: ArbitrationConfig,
) -> tuple[str, str]:
    if internal is None and external is None:
        return "none", "no eligible provider on either side"
    if internal is None or external is None:
        only = internal or external
        assert only is not None
        return only.side, f"only the {only.side} side can serve this request"
    if strategy in ("internal", "external"):
        return strategy, f"requested strategy {strategy!r}"
    if strategy == "hybrid":
        return "hybrid", "requested strategy 'hybrid': both sides, cross-validated"
    if critical:
        return "hybrid", "critical request: both sides, cross-validated"
    i, e, k = internal.total, external.total, cfg.bias_ratio
    if i > e * k:
        side, score, rule = "internal", i, f"internal {i:.3f} > {k:g} x external {e:.3f}"
    elif e > i * k:
        side, score, rule = "external", e, f"external {e:.3f} > {k:g} x internal {i:.3f}"
    else:
        return (
            "hybrid",
            f"within the {k:g} band (internal {i:.3f}, external {e:.3f}): cross-validate",
        )
    if score < cfg.decision_threshold:
        return (
            "hybrid",
            f"{rule}, but {score:.3f} < decision threshold {cfg.decision_threshold:g}: "
            "cross-validate",
        )
    return side, rule

"""Requirement analysis and capability arbitration: pure functions over plain values.

Arbitration follows the spec: a weighted fitness per side (performance 0.4, cost 0.3,
quality 0.2, security 0.1 by default), then the 1.2 bias rule: a side wins alone only when its
fitness exceeds the other's by the bias ratio; otherwise the request runs on both sides and is
cross-validated. Hard constraints come first: a provider not cleared for the request's
sensitivity is never a candidate. Every decision keeps the numbers that drove it.

Cross-validation's value is learned: when a request would go hybrid only because of the band or
the decision threshold, and both sides' answers for its skill have agreed consistently (each
candidate's streak of agreeing cross-validations and its agreement rate, carried in its
prediction), one side runs alone, except for a deterministic audit share drawn from a hash
of the run and request ids (``arbitration_config.validation_sampling``): the fitter side, or
the side whose strengths the request needs when only the other side lacks them (the answer a
conflict would have kept).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hybridmcp.config import (
    ArbitrationConfig,
    CapabilityMapping,
    OptimizationCriteria,
    ValidationSampling,
)
from hybridmcp.policy.learning import Prediction
from hybridmcp.sensitivity import Sensitivity

LARGE_INPUT_BYTES = 100_000
COMPLEX_INPUT_BYTES = 10_000
CROSS_VALIDATE = ": cross-validate"
"""How the rule of an undecided (hybrid by the band or the threshold) allocation ends."""
WRITE_ONE_SIDE = "write effect: one side only, never cross-validated"
NO_QUALITY_VALIDATION = "quality_validation off: the fitter side only"
"""Said in the rule of a write that would have run on both sides."""


def analyze_requirements(
    *,
    skill: str,
    tags: Sequence[str],
    complexity: str,
    args: Any,
    sensitivity: str | Sensitivity = Sensitivity.public,
    findings: Sequence[Mapping[str, Any]] = (),
    size: int | None = None,
) -> dict[str, Any]:
    """The spec's requirement profile of one request, deterministic (``size``: the arguments'
    length as JSON, when the caller measured it already)."""
    if size is None:
        size = len(json.dumps(args, default=str))
    if size > COMPLEX_INPUT_BYTES and complexity == "low":
        complexity = "medium"
    scale = "large" if size > LARGE_INPUT_BYTES else "small"
    needs = set(tags)
    if complexity == "high":
        needs.add("complex_reasoning")
    if scale == "large":
        needs.add("large_scale_processing")
    if Sensitivity.parse(sensitivity) >= Sensitivity.confidential:
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
    clearance: Sensitivity
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

    def to_dict(self) -> dict[str, Any]:
        """As ``dataclasses.asdict`` (its fields are plain values), without its deep copy."""
        return {**self.__dict__, "prediction": dict(self.prediction)}


def security_score(clearance: str | Sensitivity, sensitivity: str | Sensitivity) -> float:
    """Clearance headroom above the data's sensitivity; any cleared provider is fine for public
    data."""
    s, c = Sensitivity.parse(sensitivity).rank, Sensitivity.parse(clearance).rank
    if s == 0:
        return 1.0
    return (c - s + 1) / (len(Sensitivity) - s)


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
        p.success
        * (1.0 - p.slow)
        * arbitration.latency_scale_ms
        / (arbitration.latency_scale_ms + p.latency_ms)
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


def eligible(candidate: Candidate, sensitivity: str | Sensitivity) -> str | None:
    """Why a candidate cannot serve the request, or None when it can."""
    if not candidate.available:
        return candidate.unavailable_reason or "unavailable"
    if Sensitivity.parse(candidate.clearance) < Sensitivity.parse(sensitivity):
        return (
            f"clearance {str(candidate.clearance)!r} is below the data's sensitivity "
            f"{str(sensitivity)!r}"
        )
    return None


# Long by design: the arbitration steps in the order the spec gives them, on one screen.
def arbitrate(
    *,
    strategy: str,
    critical: bool,
    profile: Mapping[str, Any],
    candidates: Sequence[Candidate],
    criteria: OptimizationCriteria,
    arbitration: ArbitrationConfig,
    mapping: CapabilityMapping,
    audit_key: str = "",
    fallback: bool = True,
    effect: str = "read",
    cross_validate: bool = True,
    memo: dict[Any, Any] | None = None,
) -> dict[str, Any]:
    """Decide who serves one request. Returns the allocation with every number behind it.

    ``mode`` is ``internal``, ``external``, ``hybrid`` (both sides, cross-validated) or ``none``;
    ``providers`` lists the chosen providers, ``ranking`` every eligible one best first (the
    reallocation order). ``audit_key`` (the run id and request id) draws the audit share of
    :func:`sample_validation`: the same key always draws the same. A request pinned to a side
    (``strategy`` internal or external) that this side cannot serve falls back to the other
    side, said in its rule and ``pin``; with ``fallback`` off it gets ``none`` instead, and
    its ranking (so its reallocation and hedging) never leaves the pinned side. A request
    whose ``effect`` is ``write`` runs on one side only, however it would be cross-validated
    (invariant 9): its fitter side, said in its rule. Without ``cross_validate``
    (``coordination_config.quality_validation`` off) only a request that asks for it (strategy
    ``hybrid``) or a critical one runs on both sides; one the band or threshold left undecided
    runs on its fitter side.

    ``memo``, one dict shared by the requests of one arbitration, keeps each candidate's
    fitness and the ``scores`` record built from them: requests of a skill with the same
    candidates and needs share them (read-only) instead of recomputing and copying them.
    """
    memo = {} if memo is None else memo
    scored, excluded = _score_eligible(candidates, profile, criteria, arbitration, mapping, memo)
    scored.sort(key=lambda f: -f.total)
    best = {
        side: next((f for f in scored if f.side == side), None) for side in ("internal", "external")
    }
    internal, external = best["internal"], best["external"]
    pin = _pin(strategy, best, excluded, fallback)
    mode, rule, undecided = _decide(strategy, critical, internal, external, arbitration)
    if pin is not None and not fallback:
        scored = [f for f in scored if f.side == strategy]  # never leaves the pinned side
        if pin["overridden"]:
            mode, rule = "none", pin["reason"]
    elif pin is not None and pin["overridden"]:
        rule = f"{pin['reason']}; {rule}"
    if effect == "write" and mode == "hybrid":
        assert internal is not None and external is not None
        mode = internal.side if internal.total >= external.total else external.side
        rule, undecided = f"{rule}; {WRITE_ONE_SIDE} ({mode})", False
    elif not cross_validate and mode == "hybrid" and undecided and not critical:
        assert internal is not None and external is not None
        mode = internal.side if internal.total >= external.total else external.side
        rule, undecided = f"{rule}; {NO_QUALITY_VALIDATION} ({mode})", False
    sampling: dict[str, Any] | None = None
    if undecided and arbitration.validation_sampling.enabled:
        assert internal is not None and external is not None
        constraint = _hard_constraint(excluded, candidates, (internal, external))
        mode, rule, sampling = sample_validation(
            internal,
            external,
            rule,
            arbitration.validation_sampling,
            audit_draw(audit_key),
            constraint,
            strengths=needed_strengths(profile, mapping),
        )
    chosen = [f for f in (internal, external) if f is not None and mode in (f.side, "hybrid")]
    chosen.sort(key=lambda f: -f.total)
    needs = needed_strengths(profile, mapping)
    return (
        {
            "mode": mode,
            "strategy": strategy,
            "critical": critical,
            "rule": rule,
            "providers": [f.provider for f in chosen],
            "ranking": [f.provider for f in scored],
            "scores": _scores(scored, memo),
            "internal_fitness": internal.total if internal else None,
            "external_fitness": external.total if external else None,
            "excluded": excluded,
            "validation_strategy": "cross_validation" if mode == "hybrid" else "none",
        }
        | ({"validation_sampling": sampling} if sampling is not None else {})
        | ({"pin": pin} if pin is not None else {})
        | ({"effect": effect} if effect != "read" else {})
        | ({"strengths_needed": needs} if any(needs.values()) else {})
    )


def _score_eligible(
    candidates: Sequence[Candidate],
    profile: Mapping[str, Any],
    criteria: OptimizationCriteria,
    arbitration: ArbitrationConfig,
    mapping: CapabilityMapping,
    memo: dict[Any, Any],
) -> tuple[list[Fitness], list[dict[str, Any]]]:
    """The fitness of every eligible candidate (memoised), and why each other one is not."""
    excluded: list[dict[str, Any]] = []
    scored: list[Fitness] = []
    for c in candidates:
        sensitivity = _sensitivity_for(c, profile)
        reason = eligible(c, sensitivity)
        if reason:
            excluded.append({"provider": c.provider, "side": c.side, "reason": reason})
            continue
        key = (c, sensitivity, tuple(profile.get("needs", ())))
        fit = memo.get(key)
        if fit is None:
            fit = memo[key] = fitness(c, profile, criteria, arbitration, mapping)
        scored.append(fit)
    return scored, excluded


def _scores(scored: Sequence[Fitness], memo: dict[Any, Any]) -> dict[str, dict[str, Any]]:
    """The allocation's ``scores``: each fitness as a plain dict, built once per set of
    fitnesses (the memo holds them, so their ids stay theirs)."""
    key = ("scores", *(id(f) for f in scored))
    scores = memo.get(key)
    if scores is None:
        scores = memo[key] = {f.provider: f.to_dict() for f in scored}
    return scores


def _pin(
    strategy: str,
    best: Mapping[str, Fitness | None],
    excluded: Sequence[Mapping[str, Any]],
    fallback: bool,
) -> dict[str, Any] | None:
    """A request pinned to a side: whether that side can serve it, and what happens if not."""
    if strategy not in ("internal", "external"):
        return None
    if best[strategy] is not None:
        return {"requested": strategy, "overridden": False, "fallback": fallback}
    why = "; ".join(f"{e['provider']}: {e['reason']}" for e in excluded if e["side"] == strategy)
    why = why or f"no {strategy} provider serves this skill"
    then = "falling back to the other side" if fallback else "fallback is off"
    return {
        "requested": strategy,
        "overridden": True,
        "fallback": fallback,
        "reason": f"requested strategy {strategy!r} cannot be served ({why}); {then}",
    }


def _decide(
    strategy: str,
    critical: bool,
    internal: Fitness | None,
    external: Fitness | None,
    cfg: ArbitrationConfig,
) -> tuple[str, str, bool]:
    """The mode and its rule, and whether the request is hybrid only because the fitness rule
    left it undecided (the band or the decision threshold): the one case sampling may narrow."""
    if internal is None and external is None:
        return "none", "no eligible provider on either side", False
    if internal is None or external is None:
        only = internal or external
        assert only is not None
        return only.side, f"only the {only.side} side can serve this request", False
    if strategy in ("internal", "external"):
        return strategy, f"requested strategy {strategy!r}", False
    if strategy == "hybrid":
        return "hybrid", "requested strategy 'hybrid': both sides, cross-validated", False
    if critical:
        return "hybrid", "critical request: both sides, cross-validated", False
    i, e, k = internal.total, external.total, cfg.bias_ratio
    if i > e * k:
        side, score, rule = "internal", i, f"internal {i:.3f} > {k:g} x external {e:.3f}"
    elif e > i * k:
        side, score, rule = "external", e, f"external {e:.3f} > {k:g} x internal {i:.3f}"
    else:
        return (
            "hybrid",
            f"within the {k:g} band (internal {i:.3f}, external {e:.3f}){CROSS_VALIDATE}",
            True,
        )
    if score < cfg.decision_threshold:
        return (
            "hybrid",
            f"{rule}, but {score:.3f} < decision threshold {cfg.decision_threshold:g}"
            f"{CROSS_VALIDATE}",
            True,
        )
    return side, rule, False


def audit_draw(key: str) -> float:
    """A number in [0, 1), uniform over keys, from a hash of ``key``: stateless, so a resumed
    run (same run id and request id) draws the same, and a test can predict it."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _hard_constraint(
    excluded: Sequence[Mapping[str, Any]],
    candidates: Sequence[Candidate],
    chosen: Sequence[Fitness],
) -> str | None:
    """A hard constraint shaping this request (a provider excluded, or one seeing redacted
    arguments): its cross-validation is then never sampled away."""
    if excluded:
        first = excluded[0]
        return f"hard constraint: {first['provider']} excluded ({first['reason']})"
    ids = {f.provider for f in chosen}
    redacting = [c.provider for c in candidates if c.redacts and c.provider in ids]
    if redacting:
        return f"hard constraint: {redacting[0]} receives redacted arguments"
    return None


def validation_evidence(fit: Fitness, cfg: ValidationSampling) -> dict[str, Any]:
    """One candidate's record of agreement, from its prediction, and what it lacks (``short``,
    None when it has enough: a streak of ``min_cross_validations`` agreeing cross-validations
    since its last disagreement, and an agreement rate of at least ``min_agreement``)."""
    p = fit.prediction
    n, streak, rate = (
        int(p.get("cross_validations", 0)),
        int(p.get("agreement_streak", 0)),
        p.get("agreement_rate"),
    )
    short = None
    if streak < cfg.min_cross_validations:
        short = (
            f"{fit.provider}: {streak} agreeing cross-validations in a row "
            f"< {cfg.min_cross_validations}"
        )
    elif rate is None or rate < cfg.min_agreement:
        short = f"{fit.provider}: agreement rate {_pct(rate)} of {n} < {_pct(cfg.min_agreement)}"
    return {
        "provider": fit.provider,
        "cross_validations": n,
        "agreement_rate": rate,
        "agreement_streak": streak,
        "short": short,
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{round(value * 100, 1):g}%"


def needed_strengths(
    profile: Mapping[str, Any], mapping: CapabilityMapping
) -> dict[str, list[str]]:
    """Per side, the strengths of that side (``capability_mapping``) the request needs."""
    needs = set(profile.get("needs", ()))
    return {
        "internal": sorted(needs & set(mapping.internal_strengths)),
        "external": sorted(needs & set(mapping.external_strengths)),
    }


def _narrow_to(
    internal: Fitness, external: Fitness, strengths: Mapping[str, Sequence[str]]
) -> tuple[Fitness, str]:
    """The side a sampled request runs on alone, and why: the fitter one, unless the request
    needs strengths of the other side only. Then the other: a conflict would have taken its
    answer (the a-priori confidence carries the strengths), so running one side must not be
    the one whose answer a disagreement would have overruled. Past agreement says nothing of
    the requests where the needed strength matters (data that moved since a replica was made)."""
    fitter = internal if internal.total >= external.total else external
    other = external if fitter is internal else internal
    if strengths.get(other.side) and not strengths.get(fitter.side):
        needs = ", ".join(strengths[other.side])
        return other, f"the side whose strengths the request needs ({needs})"
    return fitter, "the fitter side"


def sample_validation(
    internal: Fitness,
    external: Fitness,
    rule: str,
    cfg: ValidationSampling,
    draw: float,
    constraint: str | None = None,
    *,
    strengths: Mapping[str, Sequence[str]] | None = None,
) -> tuple[str, str, dict[str, Any]]:
    """Narrow an undecided (hybrid by the band or the threshold) allocation to one side when
    cross-validating it has stopped telling anything new.

    Both candidates must have agreed consistently (:func:`validation_evidence`); then the
    request runs alone on the fitter side, or on the side whose strengths it needs
    (``strengths``, per side: :func:`_narrow_to`), unless ``draw`` falls under ``audit_share``
    (an audit: still cross-validated). A hard constraint (``constraint``) keeps it hybrid.
    Returns the mode, the rule, and the record of the numbers behind them.
    """
    sides = [validation_evidence(f, cfg) for f in (internal, external)]
    record: dict[str, Any] = {
        "min_cross_validations": cfg.min_cross_validations,
        "min_agreement": cfg.min_agreement,
        "audit_share": cfg.audit_share,
        "audit_draw": round(draw, 4),
        "evidence": {s["provider"]: {k: v for k, v in s.items() if k != "provider"} for s in sides},
    }
    short = [s["short"] for s in sides if s["short"]]
    if constraint or short:
        return "hybrid", rule, record | {"sampled": False, "reason": constraint or "; ".join(short)}
    leader, why = _narrow_to(internal, external, strengths or {})
    base = rule.removesuffix(CROSS_VALIDATE)
    agreed = (
        f"the sides agreed in their last {sides[0]['agreement_streak']} and "
        f"{sides[1]['agreement_streak']} cross-validations (agreement "
        f"{_pct(sides[0]['agreement_rate'])} and {_pct(sides[1]['agreement_rate'])}; "
        f">= {cfg.min_cross_validations} in a row and {_pct(cfg.min_agreement)} needed)"
    )
    if draw < cfg.audit_share:
        audit = f"audited (draw {draw:.3f} < share {cfg.audit_share:g})"
        return (
            "hybrid",
            f"{base}; {agreed}, {audit}{CROSS_VALIDATE}",
            record
            | {
                "sampled": True,
                "audit": True,
            },
        )
    return (
        leader.side,
        f"{base}; {agreed}: {leader.side} alone, {why} "
        f"(audit draw {draw:.3f} >= share {cfg.audit_share:g})",
        record | {"sampled": True, "audit": False, "narrowed_to": leader.side},
    )


def add_probe(allocation: dict[str, Any], provider: str, reason: str) -> dict[str, Any]:
    """Cross-validate a single-side allocation with ``provider`` of the other side, to test
    its recovery (a half-open circuit's trial call): its answer feeds the statistics, and the
    request is still served by the side that was chosen. Unchanged when not applicable (a
    write is never probed: the probe would write a second time)."""
    score = allocation["scores"].get(provider)
    if allocation.get("effect") == "write":
        return allocation
    if allocation["mode"] not in ("internal", "external") or score is None:
        return allocation
    if allocation["strategy"] != "auto" or score["side"] == allocation["mode"]:
        return allocation
    return allocation | {
        "mode": "hybrid",
        "providers": [*allocation["providers"][:1], provider],
        "rule": f"{allocation['rule']}; {reason}",
        "validation_strategy": "cross_validation",
        "probe": provider,
    }

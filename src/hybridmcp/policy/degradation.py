"""Between rounds: which requests are settled, which move to another provider, which failed.

Pure: takes the allocation and attempts of each request, returns decisions and the spec's
events (``EXTERNAL_DEGRADATION_DETECTED`` -> ``SHIFT_TO_INTERNAL_PROCESSING``,
``COORDINATION_FAILURE`` -> ``SEQUENTIAL_PROCESSING_WITH_BEST_AVAILABLE``), each carrying the
numbers that drove it.

An attempt is *degraded* when it failed, or when it answered (or was cut off) later than its
provider's slow threshold (:func:`hybridmcp.policy.hedging.slow_threshold_ms`: ``max(3 x EWMA,
1.5 x p95)`` of the moving-average baseline the allocation was made with), taken at the load the
call had: with ``in_flight`` other calls in flight beside it on its session, what the
provider's calls at that load take (:func:`hybridmcp.policy.hedging.at_load`). A hedge that lost
the race in normal time is not degraded.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hybridmcp.config import ComparatorConfig, DegradationConfig
from hybridmcp.events import EventCode
from hybridmcp.policy.blame import (
    HEDGE_LOST,
    LATENESS_SHARED,
    QUEUED,
    REQUEST,
    STRAGGLER,
    TOO_LARGE,
    never_sent,
    refused,
    request_faults,
)
from hybridmcp.policy.effects import unrepeatable, unrepeatable_reason
from hybridmcp.policy.hedging import at_load, slow_threshold_ms
from hybridmcp.records import failure_of

SHIFT = {"external": "SHIFT_TO_INTERNAL_PROCESSING", "internal": "SHIFT_TO_EXTERNAL_PROCESSING"}
DEGRADED = {
    "external": EventCode.EXTERNAL_DEGRADATION_DETECTED,
    "internal": EventCode.INTERNAL_DEGRADATION_DETECTED,
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


def shape_error(comparator: ComparatorConfig, value: Any) -> str | None:
    """Why an answer cannot be the skill's answer, judged by the keys its comparator compares;
    None when it may be. Catches truncated JSON (a string) and answers of the wrong shape."""
    keys: list[str] = []
    if comparator.type == "fields" and isinstance(comparator.fields, dict):
        keys = list(comparator.fields)
    elif comparator.type == "json_subset" and isinstance(comparator.fields, list):
        keys = list(comparator.fields)
    if not keys:
        return None
    if not isinstance(value, dict):
        return f"malformed answer: expected an object with {keys}, got {type(value).__name__}"
    missing = [k for k in keys if k not in value]
    if missing:
        return f"malformed answer: missing {missing} (got keys {sorted(value)[:10]})"
    return None


def run_calls(attempts: Sequence[Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    """Per provider, this run's calls that it answered or failed: ``(failed, calls)``; failed
    by the provider's doing only (:func:`_provider_failed`). A call the coordinator never sent
    (still queued, refused by the gate) or ended itself (a cancelled hedge or straggler, the
    run's deadline) is no call of the provider's: counted, it would water its error rate
    down."""
    out: dict[str, tuple[int, int]] = {}
    for a in attempts:
        if a.get("cancelled") or a.get("censored") or not a.get("sent", True) or refused(a):
            continue
        if a.get("error_kind") == QUEUED:
            continue
        failed, calls = out.get(a["provider"], (0, 0))
        out[a["provider"]] = (failed + _provider_failed(a), calls + 1)
    return out


def _provider_failed(attempt: Mapping[str, Any]) -> bool:
    """Did the attempt fail by its provider's doing? Not when its request was wrong or its
    answer too large for the coordinator, nor when the coordinator never sent it (still
    queued, refused by the gate) or cut it itself (censored: the run's deadline)."""
    if attempt["ok"] or attempt.get("censored") or not attempt.get("sent", True):
        return False
    return not refused(attempt) and attempt.get("error_kind") not in (REQUEST, TOO_LARGE, QUEUED)


def _error_rates(
    provider: str,
    attempts: Sequence[Mapping[str, Any]],
    baseline: Mapping[str, Any] | None,
    recent: Mapping[str, Any] | None,
    counts: Mapping[str, tuple[int, int]] | None = None,
) -> tuple[float | None, float | None, int]:
    """Observed error rate (the breaker's window when given, else this run), baseline's.
    ``counts``: :func:`run_calls` of ``attempts``, when the caller has it already."""
    observed: float | None = None
    if recent and recent.get("window_calls"):
        observed, calls = float(recent["failure_rate"]), int(recent["window_calls"])
    else:
        failed, calls = (counts if counts is not None else run_calls(attempts)).get(
            provider, (0, 0)
        )
        if calls:
            observed = failed / calls
    base = 1.0 - float(baseline["success"]) if baseline and "success" in baseline else None
    return observed, base, calls


def threshold_ms(
    attempt: Mapping[str, Any], baseline: Mapping[str, Any] | None, cfg: DegradationConfig
) -> float | None:
    """The slow threshold an attempt is judged by: the one the worker judged it by
    (``slow_after_ms``: pinned to the provider's last healthy baseline, at the call's load)
    when recorded, else the baseline's, times ``in_flight + 1`` for a call beside others
    (what a server serving one call at a time needs, at worst)."""
    recorded = attempt.get("slow_after_ms")
    if recorded:
        return float(recorded)
    lone = slow_threshold_ms(baseline, cfg)
    if lone is None:
        return None
    return at_load(
        lone,
        attempt.get("in_flight"),
        None,
        factor=cfg.latency_ewma_factor,
        quantile=0.75,
        min_observations=cfg.min_observations,
    )


def assess(
    attempt: Mapping[str, Any],
    baseline: Mapping[str, Any] | None,
    cfg: DegradationConfig,
) -> list[str]:
    """Why an attempt counts as degraded (``error``, ``latency``); empty when it does not. A
    failure not of the provider's doing (:func:`_provider_failed`) is no error of its own. The
    threshold: :func:`threshold_ms`."""
    threshold = threshold_ms(attempt, baseline, cfg)
    late = threshold is not None and (attempt.get("latency_ms") or 0.0) > threshold
    slow = late and not attempt.get(LATENESS_SHARED)
    if attempt.get("cancelled") == HEDGE_LOST:
        return ["latency"] if slow else []
    if attempt.get("cancelled") == STRAGGLER:
        return ["latency"]
    reasons = ["error"] if _provider_failed(attempt) else []
    return [*reasons, "latency"] if slow else reasons


def degradation_metrics(
    attempt: Mapping[str, Any],
    attempts: Sequence[Mapping[str, Any]],
    baseline: Mapping[str, Any] | None,
    cfg: DegradationConfig,
    recent: Mapping[str, Any] | None = None,
    counts: Mapping[str, tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """The spec's ``degradation_metrics`` of an attempt, with the raw numbers behind them
    (``counts``: :func:`run_calls` of ``attempts``, when the caller has it already)."""
    provider = attempt["provider"]
    latency = attempt.get("latency_ms") or 0.0
    observed, base_error, calls = _error_rates(provider, attempts, baseline, recent, counts)
    metrics: dict[str, Any] = {
        "provider": provider,
        "error": attempt.get("error"),
        "latency_ms": latency,
        "observed_error_rate": None if observed is None else round(observed, 3),
        "observed_calls": calls,
    }
    if baseline:
        quality = float(baseline.get("quality", 0.0))
        observed_quality = quality * (1.0 - (observed or 0.0))
        metrics |= {
            "baseline_latency_ms": round(float(baseline["latency_ms"]), 3),
            "baseline_p95_latency_ms": round(float(baseline["p95_latency_ms"]), 3),
            "slow_threshold_ms": threshold_ms(attempt, baseline, cfg),
            "in_flight": attempt.get("in_flight"),
            "service_ms": attempt.get("service_ms"),
            "baseline_observations": baseline.get("observations"),
            "baseline_error_rate": None if base_error is None else round(base_error, 3),
            "response_time_increase": _pct(latency, float(baseline["latency_ms"])),
            "error_rate_increase": None
            if observed is None or base_error is None
            else f"{(observed - base_error) * 100:+.0f}%",
            "quality_score_decrease": f"{(quality - observed_quality) / quality * 100:.0f}%"
            if quality
            else None,
        }
    return metrics


def _impact(
    attempt: Mapping[str, Any],
    baseline: Mapping[str, Any] | None,
    served: Mapping[str, Any] | None,
    target: str | None,
    target_baseline: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Performance and cost impact: measured when another provider answered, else expected."""
    base_latency = float(baseline["latency_ms"]) if baseline else None
    base_cost = float(baseline["cost"]) if baseline else None
    lost_ms, lost_cost = attempt.get("latency_ms") or 0.0, attempt.get("cost") or 0.0
    if served is not None:
        latency, cost, basis, by = (
            served["latency_ms"],
            served.get("cost") or 0.0,
            "measured",
            served,
        )
    elif target is not None and target_baseline:
        latency, cost = float(target_baseline["latency_ms"]), float(target_baseline["cost"])
        basis, by = "expected", {"provider": target}
    else:
        return {"basis": "none", "lost_ms": lost_ms}, {"basis": "none", "lost_cost": lost_cost}
    performance = {
        "basis": basis,
        "served_by": by["provider"],
        "latency_ms": round(latency, 3),
        "baseline_latency_ms": None if base_latency is None else round(base_latency, 3),
        "latency_change": _pct(latency, base_latency),
        "lost_ms": lost_ms,
    }
    cost_impact = {
        "basis": basis,
        "cost": cost,
        "baseline_cost": base_cost,
        "cost_change": _pct(cost, base_cost),
        "lost_cost": lost_cost,
    }
    return performance, cost_impact


def _degradation_event(
    request_id: str,
    attempt: Mapping[str, Any],
    attempts: Sequence[Mapping[str, Any]],
    scores: Mapping[str, Any],
    cfg: DegradationConfig,
    *,
    reasons: Sequence[str],
    served: Mapping[str, Any] | None = None,
    target: str | None = None,
    target_side: str | None = None,
    recent: Mapping[str, Mapping[str, Any]] | None = None,
    counts: Mapping[str, tuple[int, int]] | None = None,
) -> dict[str, Any]:
    side = attempt["side"]
    baseline = scores.get(attempt["provider"], {}).get("prediction")
    to_side = served["side"] if served is not None else target_side
    target_baseline = scores.get(target, {}).get("prediction") if target else None
    performance, cost = _impact(attempt, baseline, served, target, target_baseline)
    return {
        "code": DEGRADED[side],
        "request_id": request_id,
        "coordination_status": DEGRADED[side],
        "detected_by": list(reasons),
        "degradation_metrics": degradation_metrics(
            attempt, attempts, baseline, cfg, (recent or {}).get(attempt["provider"]), counts
        ),
        "reallocation_strategy": SHIFT[side] if to_side and to_side != side else "NONE_AVAILABLE",
        "moved_to": to_side,
        "performance_impact": performance,
        "cost_impact": cost,
    }


def plan_round(
    *,
    requests: Sequence[str],
    allocations: Mapping[str, Mapping[str, Any]],
    attempts: Sequence[Mapping[str, Any]],
    round_no: int,
    max_rounds: int,
    sides: Mapping[str, str],
    degradation: DegradationConfig | None = None,
    recent: Mapping[str, Mapping[str, Any]] | None = None,
    deadline_passed: bool = False,
    disputed: Collection[str] = (),
    effects: Mapping[str, str] | None = None,
) -> RoundPlan:
    """Decide, after round ``round_no``, what happens to each open request.

    ``sides`` maps provider id to its side; ``allocations[...]["ranking"]`` orders every eligible
    provider best first, so a move always goes to the best provider not yet tried. ``recent``
    maps provider id to its circuit breaker's window (``failure_rate``, ``window_calls``), the
    observed error rate; ``deadline_passed`` turns every move into a failure. ``disputed``
    names the requests whose answers disagree with nothing to decide between them: a third
    provider, when one is left, is asked to break the tie (``TIE_BREAK``). A request whose
    failure is its own (:func:`hybridmcp.policy.blame.request_faults`) ends with a request
    error (``REQUEST_ERROR``), not a move: the same input would fail elsewhere too.
    ``effects`` maps provider id to its effect class: a failed ``write`` that may have reached
    the server (:func:`hybridmcp.policy.effects.unrepeatable`) is never moved; the request
    ends ``outcome_unknown`` (``WRITE_NOT_REPEATED``), its tool's error answer included (a
    write may act before it fails), the request's own error too.
    """
    rnd = _Round(
        attempts=attempts,
        round_no=round_no,
        max_rounds=max_rounds,
        sides=sides,
        cfg=degradation or DegradationConfig(),
        recent=recent,
        deadline_passed=deadline_passed,
        disputed=disputed,
        effects=effects or {},
        faults=request_faults(attempts),
    )
    plan = RoundPlan()
    by_request: dict[str, list[Mapping[str, Any]]] = {}
    for a in attempts:
        by_request.setdefault(a["request_id"], []).append(a)
    for rid in requests:
        _plan_request(rnd, plan, rid, allocations.get(rid) or {}, by_request.get(rid, []))
    return plan


@dataclass(frozen=True)
class _Round:
    """What every request's decision in one round needs (see :func:`plan_round`)."""

    attempts: Sequence[Mapping[str, Any]]
    round_no: int
    max_rounds: int
    sides: Mapping[str, str]
    cfg: DegradationConfig
    recent: Mapping[str, Mapping[str, Any]] | None
    deadline_passed: bool
    disputed: Collection[str]
    effects: Mapping[str, str]
    faults: set[str]

    @functools.cached_property
    def counts(self) -> dict[str, tuple[int, int]]:
        """This run's calls per provider, counted once for every event of the round (each
        event reading them would scan all the run's attempts)."""
        return run_calls(self.attempts)

    def assess(self, allocation: Mapping[str, Any], a: Mapping[str, Any]) -> list[str]:
        scores = allocation.get("scores", {})
        return assess(a, scores.get(a["provider"], {}).get("prediction"), self.cfg)

    def event(
        self,
        rid: str,
        allocation: Mapping[str, Any],
        a: Mapping[str, Any],
        reasons: list[str],
        **kw: Any,
    ) -> dict[str, Any]:
        """The degradation event of attempt ``a`` (see :func:`_degradation_event`)."""
        scores = allocation.get("scores", {})
        return _degradation_event(
            rid,
            a,
            self.attempts,
            scores,
            self.cfg,
            reasons=reasons,
            recent=self.recent,
            counts=self.counts,
            **kw,
        )


def _plan_request(
    rnd: _Round,
    plan: RoundPlan,
    rid: str,
    allocation: Mapping[str, Any],
    tried: list[Mapping[str, Any]],
) -> None:
    """One request's fate after this round: settled, moved, asked to break a tie, or failed."""
    this_round = [a for a in tried if a.get("round") == rnd.round_no]
    ok = [a for a in tried if a["ok"]]
    if ok and rid not in rnd.disputed and allocation.get("mode") != "none":
        # answered and undisputed (most requests): settled, whatever else could happen
        _settle(rnd, plan, rid, allocation, this_round, served=ok[0])
        return
    failed_now = [a for a in this_round if not a["ok"]]
    ranking = list(allocation.get("ranking", ()))
    used = {a["provider"] for a in tried}
    remaining = [p for p in ranking if p not in used]
    can_move = bool(remaining) and rnd.round_no < rnd.max_rounds and not rnd.deadline_passed
    if allocation.get("mode") == "none":
        plan.failed[rid] = allocation.get("rule", "no eligible provider")
    elif ok and rid in rnd.disputed and can_move:
        _tie_break(rnd, plan, rid, ok, remaining[0])
    elif not ok and failed_now and rid in rnd.faults:
        why = "; ".join(failure_of(a) for a in failed_now)
        plan.failed[rid] = f"request error (the request itself is wrong): {why}"
        plan.events.append({"code": EventCode.REQUEST_ERROR, "request_id": rid, "errors": why})
        _hold_writes(rnd, plan, rid, failed_now)  # the request's error, but it may have written
    elif ok:
        _settle(rnd, plan, rid, allocation, this_round, served=ok[0])
    elif failed_now:
        _after_failure(rnd, plan, rid, allocation, tried, failed_now, remaining, can_move)
    # else: nothing ran for it this round; still in flight elsewhere


def _hold_writes(
    rnd: _Round, plan: RoundPlan, rid: str, failed: list[Mapping[str, Any]]
) -> None:
    """The request's writes that may have reached their server (:func:`unrepeatable`, an
    error answer included) are not repeated: the request ends ``outcome_unknown``
    (``WRITE_NOT_REPEATED``)."""
    held = [a for a in failed if unrepeatable(a, rnd.effects.get(a["provider"], ""))]
    if not held:
        return
    plan.failed[rid] = unrepeatable_reason(held)
    plan.events.append(
        {
            "code": EventCode.WRITE_NOT_REPEATED,
            "request_id": rid,
            "providers": [a["provider"] for a in held],
            "outcome": "unknown",
            "reason": plan.failed[rid],
        }
    )


def _tie_break(
    rnd: _Round, plan: RoundPlan, rid: str, ok: list[Mapping[str, Any]], asked: str
) -> None:
    plan.moves.append(
        {
            "request_id": rid,
            "provider": asked,
            "side": rnd.sides.get(asked),
            "reason": "tie-break: the answers disagree and no evidence decides",
        }
    )
    plan.events.append(
        {
            "code": EventCode.TIE_BREAK,
            "request_id": rid,
            "disputed_by": sorted(a["provider"] for a in ok),
            "asked": asked,
        }
    )


def _settle(
    rnd: _Round,
    plan: RoundPlan,
    rid: str,
    allocation: Mapping[str, Any],
    this_round: list[Mapping[str, Any]],
    *,
    served: Mapping[str, Any],
) -> None:
    """Answered: degraded attempts of this round are reported (a slow answer shifts later
    requests; this one is done)."""
    for a in this_round:
        reasons = rnd.assess(allocation, a)
        if reasons and a is not served:
            plan.events.append(rnd.event(rid, allocation, a, reasons, served=served))
        elif reasons:
            plan.events.append(rnd.event(rid, allocation, a, reasons))
    plan.settled.append(rid)


def _after_failure(
    rnd: _Round,
    plan: RoundPlan,
    rid: str,
    allocation: Mapping[str, Any],
    tried: list[Mapping[str, Any]],
    failed_now: list[Mapping[str, Any]],
    remaining: list[str],
    can_move: bool,
) -> None:
    """Every attempt of this round failed: move to the best provider left, hold a write that
    may have reached its server, or fail saying why."""
    held = [a for a in failed_now if unrepeatable(a, rnd.effects.get(a["provider"], ""))]
    target = remaining[0] if can_move and not held else None
    target_side = rnd.sides.get(target) if target else None
    # A call still queued when it ended (our slots, the caller's deadline) never reached
    # its provider: no degradation is said of it, no side is blamed.
    informative = [a for a in failed_now if not never_sent(a) and _provider_failed(a)]
    for a in informative:
        reasons = rnd.assess(allocation, a) or ["error"]
        plan.events.append(
            rnd.event(rid, allocation, a, reasons, target=target, target_side=target_side)
        )
    if allocation.get("mode") == "hybrid" and len({a["side"] for a in informative}) > 1:
        plan.events.append(
            {
                "code": EventCode.COORDINATION_FAILURE,
                "request_id": rid,
                "coordination_status": EventCode.COORDINATION_FAILURE,
                "failure_point": "parallel_execution",
                "affected_components": [a["provider"] for a in failed_now],
                "fallback_strategy": "SEQUENTIAL_PROCESSING_WITH_BEST_AVAILABLE",
                "next_provider": target,
            }
        )
    if held:
        _hold_writes(rnd, plan, rid, held)
    elif target is None:
        plan.failed[rid] = _why_failed(rnd, tried, remaining)
    else:
        plan.moves.append(
            {
                "request_id": rid,
                "provider": target,
                "side": target_side,
                "reason": failed_now[0].get("error"),
            }
        )


def _why_failed(rnd: _Round, tried: list[Mapping[str, Any]], remaining: list[str]) -> str:
    errors = "; ".join(failure_of(a) for a in tried if not a["ok"])
    if rnd.deadline_passed and not any(a.get("sent") for a in tried):
        why = "the run's deadline passed before any call was sent (nothing was learned)"
    elif rnd.deadline_passed:
        why = "the run's deadline passed before it could be reallocated"
    elif not remaining:
        why = "no other provider can serve it"
    else:
        why = f"stopped after {rnd.max_rounds} rounds"
    return f"every provider failed ({errors}); {why}"

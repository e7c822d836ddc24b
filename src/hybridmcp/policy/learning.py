"""Per-provider performance memory: pure update functions over plain values.

Statistics are kept per (provider, skill): an exponentially weighted moving average (EWMA) of
latency, a running tail-latency estimate (p95), success and agreement rates, cost per call, call
counts and the times of the last call and last update. The moving average is the spec's
``performance_baseline: moving_average``.

Two refinements keep the memory honest over time:

- *Evidence.* ``evidence`` counts the observations behind the averages. While it is below
  ``1 / alpha`` the averages are running means (each new call weighs ``1 / (evidence + 1)``),
  so a provider's first calls are not under-weighted against an arbitrary start value.
- *Staleness.* Each time arbitration passes a provider over (it could have served a request,
  another was chosen), its evidence decays by ``0.5 ** (1 / half_life)``. Predictions blend the
  learned values with the provider's priors by evidence, so a provider that has not been tried
  for a while drifts back toward its priors, becomes worth cross-validating again, and its next
  call (carrying little evidence) resets what is known of it. That is how a provider that was
  slow, and was therefore avoided, can be seen recovering without a separate prober.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass
from typing import Any

from hybridmcp.errors import StoredRecordError
from hybridmcp.policy.blame import learnable, request_faults

DEFAULT_ALPHA = 0.2
DEFAULT_HALF_LIFE = 25.0
"""Passes after which a provider's evidence has halved."""
DEFAULT_PRIOR_WEIGHT = 3.0
"""How many observations the priors count for in a prediction."""
TAIL_DEVIATIONS = 2.0
"""p95 estimate: mean + 2 mean absolute deviations (about mean + 1.6 sigma for normal data)."""


@dataclass(frozen=True)
class ProviderStats:
    """What was learned of one provider serving one skill. Plain data, stored as a dict."""

    provider: str
    skill: str
    calls: int = 0
    successes: int = 0
    ewma_latency_ms: float | None = None
    ewma_latency_dev_ms: float = 0.0
    p95_latency_ms: float | None = None
    success_rate: float | None = None
    """EWMA of success (1) and failure (0)."""
    slow_rate: float | None = None
    """EWMA of calls past their slow threshold (1) or not (0), answered or cut: degraded,
    which is not failed."""
    cross_validations: int = 0
    agreements: int = 0
    agreement_streak: int = 0
    """Cross-validations in a row that agreed, since the last one that did not."""
    confirmations: int = 0
    """Answers confirmed right: agreed with another provider, sided with the majority when a
    third provider broke a tie, or chosen by a human review."""
    refutations: int = 0
    """Answers shown wrong: outvoted by a third provider, or rejected by a human review."""
    censored: int = 0
    """Calls cut by the coordinator (a hedge lost, a straggler, the run's deadline): each a
    latency lower bound, never an outcome."""
    cost_per_call: float | None = None
    """EWMA of the cost of a call."""
    evidence: float = 0.0
    """Effective number of observations behind the averages (decays while passed over)."""
    passed_over: int = 0
    """Allocations that passed this provider over since its last call."""
    last_call_at: float | None = None
    updated_at: float | None = None
    recent_runs: tuple[str, ...] = ()
    """The last runs folded in (:func:`mark_learned`), so a resumed run is not counted twice."""

    @property
    def failures(self) -> int:
        return self.calls - self.successes

    @property
    def agreement_rate(self) -> float | None:
        return self.agreements / self.cross_validations if self.cross_validations else None

    @property
    def trust(self) -> float:
        """Evidence of correctness: :func:`trust`."""
        return trust(self.confirmations, self.refutations)

    def to_dict(self) -> dict[str, Any]:
        # asdict without its deep copy: every field is a scalar or a tuple of strings
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProviderStats:
        """Tolerant of records written by older versions (unknown keys dropped, evidence
        defaulting to the call count); a record that is not statistics (a field of another
        type, not an object at all) is :class:`StoredRecordError`, never a wrong number
        read (:func:`record_problem`)."""
        problem = record_problem(data)
        if problem:
            raise StoredRecordError(problem)
        fields = cls.__dataclass_fields__
        if cls is not ProviderStats or "provider" not in data or "skill" not in data:
            values = {k: v for k, v in data.items() if k in fields}
            if "evidence" not in values:
                values["evidence"] = float(values.get("calls", 0))
            values["recent_runs"] = tuple(values.get("recent_runs") or ())
            return cls(**values)  # the constructor says what is missing
        # What the constructor does (each field's value, else its default: no field converts
        # or checks anything), without its assignment of each field through object.__setattr__.
        draft = {k: data[k] if k in data else _DEFAULTS[k] for k in fields}
        if "evidence" not in data:
            draft["evidence"] = float(draft["calls"])
        draft["recent_runs"] = tuple(draft["recent_runs"] or ())
        return from_draft(draft)


_COUNTS = (
    "calls", "successes", "cross_validations", "agreements", "agreement_streak",
    "confirmations", "refutations", "censored", "passed_over",
)  # fmt: skip
_NUMBERS = ("ewma_latency_dev_ms", "evidence")
_OPTIONAL_NUMBERS = (
    "ewma_latency_ms", "p95_latency_ms", "success_rate", "slow_rate", "cost_per_call",
    "last_call_at", "updated_at",
)  # fmt: skip
_FIELD_KINDS = (
    {k: "text" for k in ("provider", "skill")}
    | {k: "count" for k in _COUNTS}
    | {k: "number" for k in _NUMBERS}
    | {k: "optional number" for k in _OPTIONAL_NUMBERS}
    | {"recent_runs": "runs"}
)


def _fits(kind: str, value: Any) -> bool:
    if kind == "text":
        return isinstance(value, str)
    if kind == "runs":
        return value is None or (
            isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
        )
    if value is None:
        return kind == "optional number"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if kind == "count":
        return isinstance(value, int) and value >= 0
    return math.isfinite(value)


_SHOWN = {
    "text": "a string",
    "count": "a whole number >= 0",
    "number": "a finite number",
    "optional number": "a finite number or null",
    "runs": "a list of strings",
}


def record_problem(data: Any) -> str | None:
    """Why ``data`` cannot be read as a statistics record, if it cannot: not an object, no
    provider or skill, or a field of the wrong type (a count that is a string, a latency that
    is not finite). Unknown keys are ignored (an older or newer version's extra fields)."""
    if not isinstance(data, Mapping):
        return f"is not an object of statistics (a {type(data).__name__})"
    for name in ("provider", "skill"):
        if name not in data:
            return f"has no {name}"
    for name, kind in _FIELD_KINDS.items():
        if name in data and not _fits(kind, data[name]):
            shown = repr(data[name])
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            return f"has {name} = {shown}, where {_SHOWN[kind]} belongs"
    return None


_DEFAULTS = {
    name: f.default
    for name, f in ProviderStats.__dataclass_fields__.items()
    if f.default is not MISSING
}
"""The default of every field that has one (none has a default factory)."""
assert all(f.default_factory is MISSING for f in ProviderStats.__dataclass_fields__.values())


def _blend(old: float | None, new: float, weight: float) -> float:
    return new if old is None else (1 - weight) * old + weight * new


# Each observation is folded into a draft: a dict of the statistics' fields, changed in place.
# The public ``observe_*`` functions fold one observation into a copy of the statistics; a run's
# learning (:func:`fold_observations`) folds all of a record's observations into one draft and
# builds one object from it. Either way, the same arithmetic in the same order.


def _fold_latency(draft: dict[str, Any], latency_ms: float, weight: float) -> None:
    """The latency mean, its mean absolute deviation and the tail estimate, with one more
    observation of weight ``weight``."""
    old = draft["ewma_latency_ms"]
    mean = _blend(old, latency_ms, weight)
    dev = (
        0.0
        if old is None
        else (1 - weight) * draft["ewma_latency_dev_ms"] + weight * abs(latency_ms - mean)
    )
    draft["ewma_latency_ms"] = mean
    draft["ewma_latency_dev_ms"] = dev
    draft["p95_latency_ms"] = mean + TAIL_DEVIATIONS * dev


def _weight(draft: Mapping[str, Any], alpha: float) -> float:
    """The weight of a new observation: ``max(alpha, 1 / (evidence + 1))``."""
    return max(alpha, 1.0 / (draft["evidence"] + 1.0))


def fold_call(
    draft: dict[str, Any],
    *,
    ok: bool,
    latency_ms: float,
    cost: float,
    now: float,
    alpha: float = DEFAULT_ALPHA,
    slow: bool = False,
) -> None:
    """:func:`observe_call` on a draft (changed in place)."""
    weight = _weight(draft, alpha)
    _fold_latency(draft, latency_ms, weight)
    draft["calls"] += 1
    draft["successes"] += int(ok)
    draft["success_rate"] = _blend(draft["success_rate"], 1.0 if ok else 0.0, weight)
    draft["slow_rate"] = _blend(draft["slow_rate"], 1.0 if slow else 0.0, weight)
    draft["cost_per_call"] = _blend(draft["cost_per_call"], cost, weight)
    draft["evidence"] += 1.0
    draft["passed_over"] = 0
    draft["last_call_at"] = now
    draft["updated_at"] = now


def fold_censored(
    draft: dict[str, Any],
    *,
    latency_ms: float,
    now: float,
    alpha: float = DEFAULT_ALPHA,
    slow: bool = False,
) -> None:
    """:func:`observe_censored` on a draft (changed in place)."""
    weight = _weight(draft, alpha)
    if slow:  # an observation of degradation: evidence like any other
        draft["slow_rate"] = _blend(draft["slow_rate"], 1.0, weight)
        draft["evidence"] += 1.0
        draft["passed_over"] = 0
    mean = draft["ewma_latency_ms"]
    if mean is not None and latency_ms > mean:
        _fold_latency(draft, latency_ms, weight)
    draft["censored"] += 1
    draft["last_call_at"] = now
    draft["updated_at"] = now


def fold_verdict(draft: dict[str, Any], *, confirmed: bool, now: float) -> None:
    """:func:`observe_verdict` on a draft (changed in place)."""
    draft["confirmations"] += int(confirmed)
    draft["refutations"] += int(not confirmed)
    draft["updated_at"] = now


def fold_agreement(draft: dict[str, Any], *, agreed: bool, now: float) -> None:
    """:func:`observe_agreement` on a draft (changed in place)."""
    draft["cross_validations"] += 1
    draft["agreements"] += int(agreed)
    draft["agreement_streak"] = draft["agreement_streak"] + 1 if agreed else 0
    draft["updated_at"] = now


def fold_pass(draft: dict[str, Any], *, now: float, half_life: float = DEFAULT_HALF_LIFE) -> None:
    """:func:`observe_pass` on a draft (changed in place)."""
    draft["passed_over"] += 1
    draft["evidence"] = draft["evidence"] * 0.5 ** (1.0 / half_life)
    draft["updated_at"] = now


def draft_of(stats: ProviderStats) -> dict[str, Any]:
    """A copy of the statistics' fields, to fold observations into."""
    return dict(stats.__dict__)


def from_draft(draft: Mapping[str, Any]) -> ProviderStats:
    """The statistics of a draft (every field plain data: nothing to convert or check)."""
    new = object.__new__(ProviderStats)
    new.__dict__.update(draft)
    return new


def observe_call(
    stats: ProviderStats,
    *,
    ok: bool,
    latency_ms: float,
    cost: float,
    now: float,
    alpha: float = DEFAULT_ALPHA,
    slow: bool = False,
) -> ProviderStats:
    """Fold one attempt into the statistics (``slow``: past its slow threshold).

    The new call weighs ``max(alpha, 1 / (evidence + 1))``. The tail estimate is the mean plus
    two EWMA absolute deviations (the Jacobson/Karels estimator TCP uses for retransmission
    timeouts): it tracks p95 for roughly normal latencies without keeping samples.
    """
    draft = draft_of(stats)
    fold_call(draft, ok=ok, latency_ms=latency_ms, cost=cost, now=now, alpha=alpha, slow=slow)
    return from_draft(draft)


def observe_censored(
    stats: ProviderStats,
    *,
    latency_ms: float,
    now: float,
    alpha: float = DEFAULT_ALPHA,
    slow: bool = False,
) -> ProviderStats:
    """Fold a call the coordinator cut: it took *at least* ``latency_ms``. A lower bound above
    the current mean raises the latency estimate; a cut past the slow threshold (``slow``: a
    straggler, a hedge lost while degraded) counts as slow; success is never touched (a
    healthy provider keeps its success rate however many hedges it loses)."""
    draft = draft_of(stats)
    fold_censored(draft, latency_ms=latency_ms, now=now, alpha=alpha, slow=slow)
    return from_draft(draft)


def trust(confirmations: int, refutations: int) -> float:
    """How likely an answer is right, from evidence alone: Laplace's rule of succession,
    ``(confirmed + 1) / (confirmed + refuted + 2)``; 0.5 with no evidence."""
    return (confirmations + 1) / (confirmations + refutations + 2)


def observe_verdict(stats: ProviderStats, *, confirmed: bool, now: float) -> ProviderStats:
    """An answer of this provider was shown right (``confirmed``) or wrong."""
    draft = draft_of(stats)
    fold_verdict(draft, confirmed=confirmed, now=now)
    return from_draft(draft)


def observe_agreement(stats: ProviderStats, *, agreed: bool, now: float) -> ProviderStats:
    """Fold one cross-validation outcome into the statistics. A disagreement ends the streak
    of agreements, which is what lets arbitration stop cross-validating a skill (see
    :func:`hybridmcp.policy.arbitration.validation_evidence`)."""
    draft = draft_of(stats)
    fold_agreement(draft, agreed=agreed, now=now)
    return from_draft(draft)


def observe_pass(
    stats: ProviderStats, *, now: float, half_life: float = DEFAULT_HALF_LIFE
) -> ProviderStats:
    """Arbitration could have used this provider and chose another: its evidence ages."""
    draft = draft_of(stats)
    fold_pass(draft, now=now, half_life=half_life)
    return from_draft(draft)


RECENT_RUNS = 16


def learned_from(stats: ProviderStats, run: str) -> bool:
    """Has this run already been folded into these statistics?"""
    return run in stats.recent_runs


def mark_learned(stats: ProviderStats, run: str, keep: int = RECENT_RUNS) -> ProviderStats:
    """Remember that this run was folded in. Saved with the statistics in one write, so a run
    resumed after being killed while it saved them is never counted twice."""
    draft = draft_of(stats)
    fold_learned(draft, run, keep)
    return from_draft(draft)


def fold_learned(draft: dict[str, Any], run: str, keep: int = RECENT_RUNS) -> None:
    """:func:`mark_learned` on a draft (changed in place)."""
    draft["recent_runs"] = (*draft["recent_runs"], run)[-keep:]


@dataclass(frozen=True)
class Prediction:
    """What arbitration expects of a provider: the spec's ``performance_prediction``."""

    latency_ms: float
    p95_latency_ms: float
    success: float
    cost: float
    quality: float
    observations: int
    """Calls ever observed (the hedging and degradation baselines need enough of them)."""
    evidence: float = 0.0
    """Effective observations behind this prediction, after staleness decay."""
    cross_validations: int = 0
    """Cross-validations this provider took part in (0: no evidence of agreement)."""
    agreement_rate: float | None = None
    """Share of them that agreed; None when never cross-validated."""
    agreement_streak: int = 0
    """Agreeing cross-validations in a row, since the last disagreement."""
    confirmations: int = 0
    """Answers confirmed right (:attr:`ProviderStats.confirmations`)."""
    refutations: int = 0
    """Answers shown wrong (:attr:`ProviderStats.refutations`)."""
    slow: float = 0.0
    """Expected share of calls past their slow threshold (degraded, not failed)."""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)  # asdict without its deep copy: every field is a scalar


def prior_prediction(*, latency_ms: float, quality: float, cost: float) -> Prediction:
    """A provider never seen: its configured latency, quality and cost; the tail at twice the
    expected latency; success as likely as its quality says."""
    return Prediction(latency_ms, latency_ms * 2, quality, cost, quality, 0, 0.0)


SIGMA_PER_MEAN_DEVIATION = 1.25
"""Standard deviation per mean absolute deviation, for normal data."""


def latency_prior_weight(
    stats: ProviderStats, prior_latency_ms: float, prior_weight: float
) -> float:
    """How many observations the configured latency counts for against this provider's own.

    Under the normal model a prior mean counts for (calls' variance / prior's variance)
    observations. The configured latency is a guess made before the provider was measured,
    uncertain by about its own size; the calls' scatter is measured (the EWMA absolute
    deviation), and shrunk toward the guess's own uncertainty with ``prior_weight``
    pseudo-observations, so one call, or a few that happen to agree, do not silence the prior.
    Calls that scatter as widely as the guess count it as one observation; more widely, up
    to ``prior_weight`` (the weight of every other prior); consistent calls, a fraction of one:
    a provider measured a few times is predicted from its measurements, not pulled toward a
    default that was never about it. Evidence aged by :func:`observe_pass` loses its hold on
    the scatter too, so a provider passed over for long still drifts back toward its prior.
    """
    if prior_latency_ms <= 0:
        return prior_weight
    ratio = SIGMA_PER_MEAN_DEVIATION * stats.ewma_latency_dev_ms / prior_latency_ms
    n = stats.evidence
    relative_variance = (
        (n * ratio**2 + prior_weight) / (n + prior_weight) if n + prior_weight else 1.0
    )
    return min(prior_weight, relative_variance)


def predict(
    stats: ProviderStats | None,
    *,
    prior_latency_ms: float,
    prior_quality: float,
    prior_cost: float,
    prior_weight: float = DEFAULT_PRIOR_WEIGHT,
) -> Prediction:
    """Expected performance of a provider, blending priors with what was learned.

    A provider never seen gets its configured priors; each unit of evidence shifts the
    prediction toward the measurements, the prior counting as ``prior_weight`` observations
    (for latency, fewer when the provider's calls are consistent: :func:`latency_prior_weight`).
    """
    prior = prior_prediction(latency_ms=prior_latency_ms, quality=prior_quality, cost=prior_cost)
    if stats is None or stats.calls == 0 or stats.ewma_latency_ms is None:
        return prior
    n = stats.evidence
    w = n / (n + prior_weight)
    w_latency = n / (n + latency_prior_weight(stats, prior_latency_ms, prior_weight))
    success = w * (stats.success_rate or 0.0) + (1 - w) * prior.success
    quality = success
    if stats.agreement_rate is not None:
        v = stats.cross_validations / (stats.cross_validations + prior_weight)
        quality = success * (v * stats.agreement_rate + (1 - v))
    if stats.refutations:
        # Shown wrong: quality falls with the share of verdicts that went against it.
        quality *= 2 * min(0.5, stats.trust)
    latency = w_latency * stats.ewma_latency_ms + (1 - w_latency) * prior.latency_ms
    learned_p95 = stats.p95_latency_ms if stats.p95_latency_ms is not None else latency * 2
    p95 = w_latency * learned_p95 + (1 - w_latency) * prior.p95_latency_ms
    cost = w * (stats.cost_per_call or 0.0) + (1 - w) * prior.cost
    return Prediction(
        latency,
        max(p95, latency),
        success,
        cost,
        quality,
        stats.calls,
        round(n, 4),
        stats.cross_validations,
        None if stats.agreement_rate is None else round(stats.agreement_rate, 4),
        stats.agreement_streak,
        stats.confirmations,
        stats.refutations,
        round(w * (stats.slow_rate or 0.0), 4),
    )


# --------------------------------------------------------------------------------------------
# Prediction accuracy: how well the predictions arbitration acted on matched what happened.
# --------------------------------------------------------------------------------------------

LATENCY_FACTOR = 2.0
"""A latency prediction is right when the actual latency is within this factor of it..."""
LATENCY_SLACK_MS = 5.0
"""...or within this many milliseconds (sub-millisecond calls vary by more than a factor)."""


def latency_within_band(
    predicted_ms: float,
    actual_ms: float,
    *,
    factor: float = LATENCY_FACTOR,
    slack_ms: float = LATENCY_SLACK_MS,
) -> bool:
    if abs(actual_ms - predicted_ms) <= slack_ms:
        return True
    return predicted_ms / factor <= actual_ms <= predicted_ms * factor


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between the closest ranks:
    numpy's default method, without importing numpy for it."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def prediction_hit(prediction: Mapping[str, Any], *, ok: bool, latency_ms: float) -> bool:
    """Was this attempt predicted right? Its outcome matches the predicted success (a call
    predicted to succeed with probability >= 0.5 succeeded, or one predicted to fail failed),
    and, for a call that succeeded, its latency is within the band of the predicted latency."""
    if (float(prediction["success"]) >= 0.5) != ok:
        return False
    return not ok or latency_within_band(float(prediction["latency_ms"]), latency_ms)


def prediction_accuracy(
    attempts: Iterable[Mapping[str, Any]],
    predictions: Mapping[tuple[str, str], Mapping[str, Any]],
) -> dict[str, Any]:
    """The share of attempts predicted right (:func:`prediction_hit`), with its two parts.

    ``predictions`` maps (request id, provider) to the prediction arbitration made; attempts
    without one (hedges to a provider never scored) are not counted, nor are those whose
    outcome is not the provider's (:func:`~hybridmcp.policy.blame.learnable`): a call cut by
    the coordinator (a hedge that lost, a straggler, the run's deadline), never sent, or
    failed by its request's own fault. A cancelled hedge proves no prediction wrong.
    """
    attempts = list(attempts)
    faults = request_faults(attempts)
    scored = success_hits = latency_hits = latency_n = hits = 0
    for a in attempts:
        p = predictions.get((a["request_id"], a["provider"]))
        if p is None or learnable(a, faults) != "outcome":
            continue
        scored += 1
        success_hits += (float(p["success"]) >= 0.5) == a["ok"]
        if a["ok"]:
            latency_n += 1
            latency_hits += latency_within_band(float(p["latency_ms"]), a["latency_ms"])
        hits += prediction_hit(p, ok=a["ok"], latency_ms=a["latency_ms"])

    def share(k: int, n: int) -> float | None:
        return round(k / n, 4) if n else None

    return {
        "attempts": scored,
        "accuracy": share(hits, scored),
        "success_accuracy": share(success_hits, scored),
        "latency_accuracy": share(latency_hits, latency_n),
        "latency_factor": LATENCY_FACTOR,
        "latency_slack_ms": LATENCY_SLACK_MS,
    }

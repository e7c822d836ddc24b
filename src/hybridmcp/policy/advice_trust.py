"""LM advice is a provider too: its accuracy is learned; it decides only while it beats the rule.

Every piece of advice is recorded beside what the deterministic rule would have done. Once the
run shows which side was right, both are scored:

- **arbitrator** (a request in the 1.2 hybrid band): the rule's pick is the side with the higher
  fitness, the advice's its chosen side (``hybrid`` abstains). The truth is the set of sides
  whose answer was confirmed: both when they agreed, else the sides the conflict's verdicts
  confirmed. While the advice is not trusted the request stays ``hybrid``, so both sides run and
  the truth keeps coming.
- **synchronizer** (a conflict): the rule's pick is the side the deterministic resolution chose,
  the advice's its verdict (``undecided`` abstains). The truth is a human review's choice.

Accuracy is Laplace-smoothed, ``(right + 1) / (scored + 2)``, per role and skill. Advice may
change a decision only when it has been scored at least :data:`MIN_SCORED` times and its
accuracy is strictly above the rule's. Pure: no I/O; the store lives in
:mod:`hybridmcp.prompts.trust`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from hybridmcp.errors import StoredRecordError

__all__ = [
    "MIN_SCORED",
    "AdviceStats",
    "accuracy",
    "arbitration_truth",
    "mark_run",
    "observe_advice",
    "review_truth",
    "trust_view",
    "trusted",
]

MIN_SCORED = 5
"""Scored pieces of advice needed before advice may change a decision."""

_RUNS_KEPT = 200
SIDES = ("internal", "external")


@dataclass(frozen=True)
class AdviceStats:
    """What one role's advice on one skill has earned, beside the deterministic rule."""

    role: str
    skill: str
    advice_right: int = 0
    advice_scored: int = 0
    rule_right: int = 0
    rule_scored: int = 0
    runs: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"runs": list(self.runs)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AdviceStats:
        """The stored record; one of another shape (a count that is not a whole number, runs
        that are not strings) is :class:`StoredRecordError`, never coerced into numbers."""
        problem = _advice_problem(data)
        if problem:
            raise StoredRecordError(f"the learned advice record {problem}")
        return cls(
            role=str(data["role"]),
            skill=str(data["skill"]),
            advice_right=int(data.get("advice_right", 0)),
            advice_scored=int(data.get("advice_scored", 0)),
            rule_right=int(data.get("rule_right", 0)),
            rule_scored=int(data.get("rule_scored", 0)),
            runs=tuple(data.get("runs", ())),
        )


def _advice_problem(data: Any) -> str | None:
    if not isinstance(data, Mapping):
        return f"is not an object (a {type(data).__name__})"
    for name in ("role", "skill"):
        if not isinstance(data.get(name), str):
            return f"has no {name} string"
    for name in ("advice_right", "advice_scored", "rule_right", "rule_scored"):
        value = data.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"has {name} = {value!r:.40}, where a whole number >= 0 belongs"
    runs = data.get("runs", ())
    if not isinstance(runs, list | tuple) or not all(isinstance(r, str) for r in runs):
        return f"has runs = {runs!r:.40}, where a list of strings belongs"
    return None


def accuracy(right: int, scored: int) -> float:
    return (right + 1) / (scored + 2)


def trusted(stats: AdviceStats, min_scored: int = MIN_SCORED) -> bool:
    """May this advice change a decision? Only with enough evidence that it beats the rule."""
    return stats.advice_scored >= min_scored and accuracy(
        stats.advice_right, stats.advice_scored
    ) > accuracy(stats.rule_right, stats.rule_scored)


def observe_advice(
    stats: AdviceStats, *, advice: str | None, rule: str | None, truth: Iterable[str], run: str
) -> AdviceStats:
    """Score one piece of advice and the rule's pick against the sides shown right.

    ``None`` (or a pick outside the sides) abstains and is not scored; a run already learned
    from is not counted twice (a resumed run).
    """
    right = set(truth)
    if not right or run in stats.runs:
        return stats
    out = stats
    if advice in SIDES:
        out = replace(
            out,
            advice_scored=out.advice_scored + 1,
            advice_right=out.advice_right + (advice in right),
        )
    if rule in SIDES:
        out = replace(
            out, rule_scored=out.rule_scored + 1, rule_right=out.rule_right + (rule in right)
        )
    return out


def mark_run(stats: AdviceStats, run: str) -> AdviceStats:
    if run in stats.runs:
        return stats
    return replace(stats, runs=(*stats.runs, run)[-_RUNS_KEPT:])


def arbitration_truth(result: Mapping[str, Any]) -> set[str]:
    """Sides whose answer this result confirmed: both on agreement, else the verdicts'."""
    sides = {a["provider"]: a["side"] for a in result.get("attempts", []) if a.get("ok")}
    if result.get("agreement") is True:
        return set(sides.values())
    verdicts = result.get("verdicts") or {}
    return {sides[p] for p, confirmed in verdicts.items() if confirmed and p in sides}


def review_truth(result: Mapping[str, Any]) -> set[str]:
    """The side a human review chose for a conflict, if one did."""
    resolution = result.get("resolution") or {}
    if resolution.get("by") == "human" and resolution.get("choice") in SIDES:
        return {str(resolution["choice"])}
    return set()


def trust_view(stats: AdviceStats) -> dict[str, Any]:
    """The numbers a reader needs: both accuracies, how much evidence, and the verdict."""
    return {
        "advice_accuracy": round(accuracy(stats.advice_right, stats.advice_scored), 4),
        "rule_accuracy": round(accuracy(stats.rule_right, stats.rule_scored), 4),
        "scored": stats.advice_scored,
        "trusted": trusted(stats),
    }

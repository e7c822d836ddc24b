"""Cost: a run's budget at call time (:class:`Budget`) and during arbitration
(:class:`BudgetPlan`), and the run's cost report. Pure.

The gate is the hard stop (it never makes a call the run's budget cannot pay for); arbitration
plans with the same numbers so that work goes to cheaper providers before money runs out:

- with a budget, the cost weight of the fitness grows with the *pressure*, what serving every
  request on its dearest provider would cost over the budget (capped), so cheaper providers win
  more often as the budget tightens;
- a provider whose price is above what is left of the budget (after the calls already planned)
  is not a candidate: the request goes to a cheaper (usually internal) provider, or fails with an
  error, and a ``BUDGET_EXHAUSTED`` event says which requests were affected.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from hybridmcp.config import OptimizationCriteria
from hybridmcp.errors import BudgetExhausted
from hybridmcp.events import EventCode
from hybridmcp.policy.arbitration import Candidate

BUDGET_EXHAUSTED = EventCode.BUDGET_EXHAUSTED
MAX_PRESSURE = 3.0
"""The cost weight grows at most to ``(1 + MAX_PRESSURE)`` times its configured value."""


def over(total: float, limit: float) -> bool:
    """Does spending ``total`` exceed ``limit``? Beyond the rounding of a sum of prices only
    (0.1 + 0.2 fits a budget of 0.3), relative to the amounts: a budget of 1e-15 does not pay
    for a call of 1e-13."""
    return total > limit and not math.isclose(total, limit, rel_tol=1e-9, abs_tol=0.0)


def pressure(budget: float | None, projected: float) -> float:
    """How much the budget constrains the run: 0 without a budget, up to ``MAX_PRESSURE``."""
    if budget is None or projected <= 0:
        return 0.0
    if budget <= 0:
        return MAX_PRESSURE
    return min(MAX_PRESSURE, projected / budget)


def budget_criteria(criteria: OptimizationCriteria, budget_pressure: float) -> OptimizationCriteria:
    """The fitness weights with the cost weight raised by the budget's pressure."""
    if budget_pressure <= 0:
        return criteria
    return criteria.model_copy(
        update={"cost_weight": criteria.cost_weight * (1.0 + budget_pressure)}
    )


class Budget:
    """A run's spending at call time; ``None`` means unlimited. The gate reserves a call's price
    before sending it and refunds it when the call was never sent.

    ``spent`` starts from what the run had spent before (its checkpointed attempts), so a run
    resumed in another process does not get its budget afresh. With a limit, each charge is
    kept by the call's key (its idempotency key): :meth:`note` counts a call this process did
    not make (an attempt replayed from the checkpoint) once, and never one it made itself."""

    def __init__(self, limit: float | None = None, spent: float = 0.0) -> None:
        self.limit = limit
        self.spent = spent
        self.charged: dict[str, float] = {}
        """By call key, what was charged (a budget without a limit keeps none)."""

    @property
    def remaining(self) -> float | None:
        return None if self.limit is None else max(0.0, self.limit - self.spent)

    def reserve(self, provider_id: str, price: float, key: str | None = None) -> None:
        """Count ``price`` as spent, or raise :class:`BudgetExhausted` when it does not fit."""
        if self.limit is not None and over(self.spent + price, self.limit):
            raise BudgetExhausted(
                f"budget exhausted: {provider_id} costs {price:g}, "
                f"{self.remaining:g} of {self.limit:g} left"
            )
        self.spent += price
        if key is not None and self.limit is not None:
            self.charged[key] = self.charged.get(key, 0.0) + price

    def refund(self, price: float, key: str | None = None) -> None:
        """A reserved call that was never sent costs nothing."""
        self.spent = max(0.0, self.spent - price)
        if key is not None and key in self.charged:
            self.charged[key] = max(0.0, self.charged[key] - price)

    def note(self, key: str, cost: float) -> None:
        """A call already paid for (an attempt replayed from the checkpoint): counted unless
        this budget charged it itself. It may take the spending past the limit (the money is
        gone); later calls are refused."""
        if self.limit is None or key in self.charged:
            return
        self.charged[key] = cost
        self.spent += cost


def spent_by(attempts: Iterable[Mapping[str, Any]]) -> float:
    """What the attempts cost: each call sent, and each sampling answer given during one."""
    return sum(float(a.get("cost") or 0.0) + sampling_cost(a) for a in attempts)


def whole_count(value: Any) -> int:
    """A count read from a record: a positive whole number, else 0 (``True`` is no count)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def sampling_cost(attempt: Mapping[str, Any]) -> float:
    """What the sampling answers given during the attempt's call cost."""
    sampling = attempt.get("sampling")
    return float(sampling.get("cost") or 0.0) if isinstance(sampling, Mapping) else 0.0


@dataclass
class BudgetPlan:
    """What is left of a run's budget as arbitration assigns work, request by request."""

    limit: float | None
    spent: float = 0.0
    planned: float = 0.0
    owed: float = 0.0
    """What the requests not planned yet, after the current one, cost at the least (each its
    cheapest provider): kept for them, so that no request pays for a dearer provider or a
    cross-validation with the money a later one needs to be served at all."""
    own: float = 0.0
    """The current request's cheapest price: the one choice not held to what is owed."""
    affected: dict[str, list[str]] = field(default_factory=dict)
    """Request id -> providers excluded because the budget could not pay for them."""

    @property
    def remaining(self) -> float | None:
        if self.limit is None:
            return None
        return max(0.0, self.limit - self.spent - self.planned)

    def start(self, cheapest: float) -> None:
        """The next request is planned; ``cheapest``: its cheapest provider's price (counted
        in ``owed`` until now)."""
        self.owed = max(0.0, self.owed - cheapest)
        self.own = cheapest

    def fits(self, price: float) -> bool:
        """Can what is left pay ``price`` (one call, or the calls of one allocation) for the
        current request? Beyond its cheapest price, only with what is owed to the requests
        after it kept for them."""
        if self.limit is None:
            return True
        total = self.spent + self.planned + price
        if not over(total + self.owed, self.limit):
            return True
        return price <= self.own and not over(total, self.limit)

    def admit(self, request_id: str, candidate: Candidate, price: float) -> Candidate:
        """The candidate, marked unavailable when its price is above what is left."""
        if self.limit is None or not candidate.available or self.fits(price):
            return candidate
        return self.exclude(request_id, candidate, f"costs {price:g}", price)

    def exclude(self, request_id: str, candidate: Candidate, why: str, price: float) -> Candidate:
        """The candidate, marked unavailable: what is left cannot pay ``why`` (``price``)."""
        left, limit = self.remaining, self.limit
        kept = ""
        if self.owed and not over(self.spent + self.planned + price, limit or 0.0):
            kept = f" ({self.owed:g} of it kept for the requests after it)"
        self.affected.setdefault(request_id, []).append(candidate.provider)
        return replace(
            candidate,
            available=False,
            unavailable_reason=f"budget: {why}, {left:g} of {limit:g} left{kept}",
        )

    def commit(self, prices: Iterable[float]) -> None:
        self.planned += sum(prices)

    def event(self, allocations: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
        """One ``BUDGET_EXHAUSTED`` event for the requests the budget moved or failed."""
        if not self.affected:
            return None
        moved = [
            r for r in self.affected if allocations.get(r, {}).get("mode") not in (None, "none")
        ]
        return {
            "code": BUDGET_EXHAUSTED,
            "stage": "arbitrate",
            "budget": self.limit,
            "planned": money(self.planned),
            "remaining": self.remaining,
            "excluded": dict(self.affected),
            "served_by_cheaper_provider": moved,
            "failed": [r for r in self.affected if r not in moved],
        }


def money(amount: float) -> float:
    """An amount as reported: to 12 significant digits, which hides the rounding of a sum of
    prices (0.1 + 0.2) and keeps the smallest prices (a call of 1e-9 is not reported as 0)."""
    return float(f"{amount:.12g}")


def difference(amount: float, less: float) -> float:
    """``amount - less`` as reported: 0 when they differ only by the rounding of a sum (a budget
    of 0.1 spent by ten calls of 0.01 has nothing left, not 1.4e-17)."""
    if math.isclose(amount, less, rel_tol=1e-9, abs_tol=0.0):
        return 0.0
    return money(amount - less)


def cost_report(
    attempts: Iterable[Mapping[str, Any]],
    skills: Mapping[str, str],
    external_price: Mapping[str, float | None],
    budget: float | None,
) -> dict[str, Any]:
    """The run's cost: per provider and side (the sampling answers servers were given during
    calls as ``sampling:<server>``), the budget, and the spec's ``cost_optimization`` (what was
    spent against what sending every request to the cheapest external provider of its skill,
    once, would have cost).

    ``skills`` maps request id -> skill; ``external_price`` skill -> the cheapest external
    provider's price per call (None when the skill has no external provider).
    """
    attempts = list(attempts)
    by_provider: dict[str, dict[str, Any]] = {}
    by_side = {"internal": 0.0, "external": 0.0}
    spent = 0.0
    for a in attempts:
        cost = float(a.get("cost") or 0.0)
        entry = by_provider.get(a["provider"])
        if entry is None:
            entry = by_provider[a["provider"]] = {"side": a["side"], "calls": 0, "cost": 0.0}
        if a.get("sent", True):  # a call refused or cut while queued never reached it
            entry["calls"] += 1
        entry["calls"] += whole_count(a.get("lost_sends"))  # sent by a killed run, paid in ``cost``
        entry["cost"] = money(entry["cost"] + cost)
        by_side[a["side"]] = by_side.get(a["side"], 0.0) + cost
        spent += cost
        sampling = a.get("sampling")
        if isinstance(sampling, Mapping):  # answers the server was given during the call
            name = f"sampling:{sampling.get('server')}"
            entry = by_provider.get(name)
            if entry is None:
                entry = by_provider[name] = {"side": "external", "calls": 0, "cost": 0.0}
            entry["calls"] += int(sampling.get("answers") or 0)
            entry["cost"] = money(entry["cost"] + sampling_cost(a))
            by_side["external"] += sampling_cost(a)
            spent += sampling_cost(a)
    compared = {r: external_price.get(s) for r, s in skills.items()}
    baseline = sum(p for p in compared.values() if p is not None)
    spent_compared = spent_by(a for a in attempts if compared.get(a["request_id"]) is not None)
    saved = difference(baseline, spent_compared)
    return {
        "spent": money(spent),
        "by_side": {k: money(v) for k, v in by_side.items()},
        "by_provider": by_provider,
        "budget": budget,
        "budget_remaining": None if budget is None else max(0.0, difference(budget, spent)),
        "cost_optimization": {
            "spent": money(spent_compared),
            "always_external": money(baseline),
            "saved": saved,
            "saved_pct": round(100 * saved / baseline, 2) if baseline > 0 else None,
            "requests_compared": sum(1 for p in compared.values() if p is not None),
            "basis": "each request once on its skill's cheapest external provider",
        },
    }

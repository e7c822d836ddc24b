"""Budget planning and the run's cost report (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridmcp.config import OptimizationCriteria
from hybridmcp.errors import BudgetExhausted
from hybridmcp.policy.arbitration import Candidate
from hybridmcp.policy.cost import (
    BUDGET_EXHAUSTED,
    MAX_PRESSURE,
    Budget,
    BudgetPlan,
    budget_criteria,
    cost_report,
    pressure,
    spent_by,
)
from hybridmcp.policy.learning import Prediction


def _candidate(pid: str, side: str = "external") -> Candidate:
    return Candidate(pid, side, "public", Prediction(10.0, 20.0, 1.0, 0.01, 0.9, 0))


def test_pressure_grows_with_projected_spend_and_is_capped() -> None:
    assert pressure(None, 5.0) == 0.0
    assert pressure(1.0, 0.0) == 0.0
    assert pressure(1.0, 0.5) == 0.5
    assert pressure(1.0, 100.0) == MAX_PRESSURE
    assert pressure(0.0, 1.0) == MAX_PRESSURE
    base = OptimizationCriteria()
    assert budget_criteria(base, 0.0) is base
    assert budget_criteria(base, 2.0).cost_weight == pytest.approx(0.9)
    assert budget_criteria(base, 2.0).performance_weight == base.performance_weight


def test_plan_excludes_what_the_rest_of_the_budget_cannot_pay() -> None:
    plan = BudgetPlan(0.025)
    assert plan.admit("r1", _candidate("mcp:a"), 0.01).available
    plan.commit([0.01])
    assert plan.admit("r2", _candidate("mcp:a"), 0.01).available
    plan.commit([0.01])
    excluded = plan.admit("r3", _candidate("mcp:a"), 0.01)
    assert not excluded.available
    assert excluded.unavailable_reason == "budget: costs 0.01, 0.005 of 0.025 left"
    assert plan.admit("r3", _candidate("internal:a", "internal"), 0.0).available
    event = plan.event({"r3": {"mode": "internal"}})
    assert event is not None and event["code"] == BUDGET_EXHAUSTED
    assert event["served_by_cheaper_provider"] == ["r3"] and event["failed"] == []
    assert plan.event({"r3": {"mode": "none"}})["failed"] == ["r3"]  # type: ignore[index]
    unlimited = BudgetPlan(None)
    assert unlimited.admit("r", _candidate("mcp:a"), 99.0).available
    assert unlimited.event({}) is None


def test_cost_report_per_provider_and_against_always_external() -> None:
    attempts = [
        {"request_id": "a", "provider": "mcp:x", "side": "external", "cost": 0.01},
        {"request_id": "a", "provider": "internal:x", "side": "internal", "cost": 0.0},
        {"request_id": "b", "provider": "internal:x", "side": "internal", "cost": 0.0},
        {"request_id": "c", "provider": "internal:y", "side": "internal", "cost": 0.0},
    ]
    report = cost_report(
        attempts, {"a": "x", "b": "x", "c": "y"}, {"x": 0.01, "y": None}, budget=0.05
    )
    assert report["spent"] == 0.01
    assert report["by_side"] == {"internal": 0.0, "external": 0.01}
    assert report["by_provider"]["mcp:x"] == {"side": "external", "calls": 1, "cost": 0.01}
    assert report["budget_remaining"] == 0.04
    opt = report["cost_optimization"]
    assert opt["always_external"] == 0.02 and opt["spent"] == 0.01
    assert opt["saved"] == 0.01 and opt["saved_pct"] == 50.0
    assert opt["requests_compared"] == 2  # c has no external provider


# -- the gate's budget: charges by call, and a run resumed from its checkpointed attempts ----

_calls = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d", "e"]),  # the call's key
        st.integers(0, 24).map(lambda n: n / 8),  # its price (exact: sums in any order agree)
        st.booleans(),  # sent (else refunded: never left the process)
    ),
    max_size=12,
)


@given(limit=st.integers(0, 80).map(lambda n: n / 8), calls=_calls, cut=st.integers(0, 12))
def test_a_budget_resumed_from_its_attempts_spends_what_it_would_have(
    limit: float, calls: list[tuple[str, float, bool]], cut: int
) -> None:
    """A run's spending, rebuilt in another process from the attempts checkpointed so far
    (``note``), refuses and admits the rest of the calls as the first process would have, and
    never lets more be charged than the limit."""
    keys = [f"{k}{i}" for i, (k, _price, _sent) in enumerate(calls)]
    first, attempts = Budget(limit), []
    outcomes = []
    for key, (_k, price, sent) in zip(keys, calls, strict=True):
        try:
            first.reserve("mcp:x", price, key)
        except BudgetExhausted:
            outcomes.append("refused")
            continue
        if not sent:
            first.refund(price, key)
        attempts.append((key, price if sent else 0.0))
        outcomes.append("sent" if sent else "refunded")
    assert first.spent <= limit + 1e-9

    # another process: the attempts checkpointed before the cut are noted, then the calls go on
    done = [k for k, o in zip(keys, outcomes, strict=True) if o != "refused"][:cut]
    resumed = Budget(limit)
    for key, cost in attempts:
        if key in done:
            resumed.note(key, cost)
            resumed.note(key, cost)  # replayed twice: counted once
    again = []
    for key, (_k, price, sent) in zip(keys, calls, strict=True):
        if key in done:
            again.append(outcomes[keys.index(key)])
            continue
        try:
            resumed.reserve("mcp:x", price, key)
        except BudgetExhausted:
            again.append("refused")
            continue
        if not sent:
            resumed.refund(price, key)
        again.append("sent" if sent else "refunded")
    assert again == outcomes
    assert resumed.spent == pytest.approx(first.spent)


def test_a_call_charged_by_the_budget_is_not_noted_again() -> None:
    budget = Budget(1.0)
    budget.reserve("mcp:x", 0.5, "k")
    budget.note("k", 0.5)  # the same call, replayed from the journal in the same process
    assert budget.spent == 0.5
    budget.note("other", 0.75)  # made by another process: paid, even past the limit
    assert budget.spent == 1.25 and budget.remaining == 0.0
    with pytest.raises(BudgetExhausted):
        budget.reserve("mcp:x", 0.0001, "k2")
    unlimited = Budget()
    unlimited.reserve("mcp:x", 1.0, "k")
    assert unlimited.charged == {}  # nothing to keep without a limit


def test_sampling_answers_are_in_the_report_and_the_spending() -> None:
    attempts = [
        {"request_id": "a", "provider": "mcp:ev/t", "side": "external", "cost": 0.1,
         "sampling": {"server": "ev", "answers": 2, "cost": 0.5}},
        {"request_id": "b", "provider": "mcp:ev/t", "side": "external", "cost": 0.1},
    ]  # fmt: skip
    report = cost_report(attempts, {"a": "s", "b": "s"}, {"s": 0.1}, 1.0)
    assert report["spent"] == pytest.approx(0.7) == spent_by(attempts)
    assert report["by_provider"]["sampling:ev"] == {"side": "external", "calls": 2, "cost": 0.5}
    assert report["by_side"]["external"] == pytest.approx(0.7)
    assert report["budget_remaining"] == pytest.approx(0.3)
    assert report["cost_optimization"]["spent"] == pytest.approx(0.7)


def test_a_call_never_sent_is_no_call_of_its_provider() -> None:
    attempts = [
        {"request_id": "a", "provider": "mcp:x", "side": "external", "cost": 0.1, "sent": True},
        {"request_id": "b", "provider": "mcp:x", "side": "external", "cost": 0.0, "sent": False},
    ]
    report = cost_report(attempts, {}, {}, None)
    assert report["by_provider"]["mcp:x"] == {"side": "external", "calls": 1, "cost": 0.1}


def test_sends_a_killed_run_lost_are_calls_of_their_provider() -> None:
    """A resumed call's attempt carries the sends an earlier, killed run of it made
    (``lost_sends``, paid in its ``cost``): each reached the provider."""
    attempts = [
        {"request_id": "a", "provider": "mcp:x", "side": "external", "cost": 0.3, "sent": True,
         "lost_sends": 2},
        {"request_id": "b", "provider": "mcp:x", "side": "external", "cost": 0.1, "sent": False,
         "lost_sends": 1},
    ]  # fmt: skip
    report = cost_report(attempts, {}, {}, None)
    assert report["by_provider"]["mcp:x"] == {"side": "external", "calls": 4, "cost": 0.4}


@given(
    price=st.floats(1e-12, 1e6, allow_nan=False, allow_infinity=False),
    calls=st.integers(1, 200),
)
def test_a_budget_spent_to_the_last_call_has_nothing_left(price: float, calls: int) -> None:
    """A budget of exactly ``calls`` times a price, spent by as many calls, is reported spent:
    nothing left and nothing saved, whatever the rounding of the sum."""
    attempts = [
        {"request_id": str(i), "provider": "mcp:x", "side": "external", "cost": price}
        for i in range(calls)
    ]
    budget = price * calls
    report = cost_report(attempts, {str(i): "s" for i in range(calls)}, {"s": price}, budget)
    assert report["budget_remaining"] == 0.0
    assert report["cost_optimization"]["saved"] == 0.0
    assert report["cost_optimization"]["saved_pct"] == 0.0


@given(
    requests=st.lists(
        st.lists(st.integers(0, 40).map(lambda n: n / 8), min_size=1, max_size=3),
        min_size=1,
        max_size=15,
    ),
    spare=st.integers(0, 40).map(lambda n: n / 8),
)
def test_a_budget_that_pays_every_requests_cheapest_serves_every_request(
    requests: list[list[float]], spare: float
) -> None:
    """Whatever each request would rather spend (here: its dearest provider the budget admits),
    a budget of at least every request's cheapest price leaves none unserved, and the plan
    never exceeds it."""
    limit = sum(min(prices) for prices in requests) + spare
    plan = BudgetPlan(limit, owed=sum(min(prices) for prices in requests))
    for i, prices in enumerate(requests):
        plan.start(min(prices))
        admitted = [
            p for p in prices if plan.admit(f"r{i}", _candidate(f"mcp:{p}"), p).available
        ]
        assert admitted, (i, prices, plan)
        plan.commit([max(admitted)])
    assert plan.planned <= limit * (1 + 1e-9)

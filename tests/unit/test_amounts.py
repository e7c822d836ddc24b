"""Prices and budgets at any scale: what is no amount is refused on reading, with one line naming
the key (nothing is run with it); the smallest and largest amounts are paid, planned and
reported as they are."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridmcp.config import parse_config
from hybridmcp.errors import BudgetExhausted, ConfigError, TaskError
from hybridmcp.policy.arbitration import Candidate
from hybridmcp.policy.cost import Budget, BudgetPlan, cost_report
from hybridmcp.policy.learning import Prediction
from hybridmcp.task import parse_task

_not_amounts = st.one_of(
    st.sampled_from([float("nan"), float("inf"), float("-inf"), "nan", "inf", "1e400", True]),
    st.booleans(),
    st.floats(max_value=-1e-300, allow_nan=False, allow_infinity=False),
    st.text(alphabet="abcxyz", min_size=1, max_size=5),
)


def _server(**fields: object) -> dict[str, object]:
    return {"command": "x", **fields}


@given(value=_not_amounts)
def test_what_is_no_amount_is_a_one_line_error_naming_its_key(value: object) -> None:
    """A budget or price that is not a finite number of 0 or more (NaN, infinite, negative,
    true/false, text) is refused when the task or configuration is read, on one line that
    names the key; nothing is run with it."""
    with pytest.raises(TaskError) as task_error:
        parse_task({"requests": [{"id": "a", "skill": "s"}], "constraints": {"budget": value}})
    (line,) = [x for x in str(task_error.value).splitlines() if "budget" in x]
    assert "constraints.budget: Input should be" in line
    internal = {"side": "internal", "function": "tests.helpers:echo_text", "cost_per_call": value}
    for where, entry in (
        ("mcpServers.f.cost_per_call", {"mcpServers": {"f": _server(cost_per_call=value)}}),
        ("mcpServers.f.sampling_cost", {"mcpServers": {"f": _server(sampling_cost=value)}}),
        ("skills.s.providers.0", {"skills": {"s": {"providers": [internal]}}}),
    ):
        with pytest.raises(ConfigError) as config_error:
            parse_config(entry)
        said = str(config_error.value)
        assert where in said and "cost" in said and "Input should be" in said, said


def test_the_smallest_and_largest_amounts_are_amounts() -> None:
    for amount in (0, 1e-300, 0.5, "0.5", 1e300):
        constraints = {"budget": amount}
        task = parse_task({"requests": [{"id": "a", "skill": "s"}], "constraints": constraints})
        assert task.constraints.budget == float(amount)
        config = parse_config({"mcpServers": {"f": _server(cost_per_call=amount)}})
        assert config.mcpServers["f"].cost_per_call == float(amount)


# -- the smallest and largest prices and budgets, as the gate, arbitration and report see them

_amounts = st.floats(min_value=0, max_value=1e300, allow_nan=False, allow_infinity=False)


def _candidate(pid: str) -> Candidate:
    return Candidate(pid, "external", "public", Prediction(10.0, 20.0, 1.0, 0.01, 0.9, 0))


@given(limit=_amounts, prices=st.lists(_amounts, min_size=1, max_size=20))
def test_no_budget_pays_more_than_it_holds_at_any_scale(limit: float, prices: list[float]) -> None:
    """Whatever the scale of prices and budget (1e-300 to 1e300), what the gate lets through
    and what arbitration plans never exceed the budget beyond the rounding of a sum."""
    budget, plan = Budget(limit), BudgetPlan(limit)
    for i, price in enumerate(prices):
        with contextlib.suppress(BudgetExhausted):
            budget.reserve("mcp:x", price)
        if plan.admit(f"r{i}", _candidate("mcp:x"), price).available:
            plan.commit([price])
    assert budget.spent <= limit * (1 + 1e-9)
    assert plan.planned <= limit * (1 + 1e-9)


def test_a_tiny_budget_does_not_pay_for_a_call_a_hundred_times_dearer() -> None:
    with pytest.raises(BudgetExhausted):
        Budget(1e-15).reserve("mcp:x", 1e-13)
    assert not BudgetPlan(1e-15).admit("r", _candidate("mcp:x"), 1e-13).available
    exact = Budget(0.3)  # a sum of prices that differs from the budget only by rounding
    for _ in range(3):
        exact.reserve("mcp:x", 0.1)
    free = Budget(0.0)
    free.reserve("mcp:x", 0.0)  # a free call fits a budget of 0
    with pytest.raises(BudgetExhausted):
        free.reserve("mcp:x", 1e-300)


def test_the_smallest_prices_show_in_the_report() -> None:
    attempts = [
        {"request_id": str(i), "provider": "mcp:x", "side": "external", "cost": 1e-7}
        for i in range(3)
    ]
    report = cost_report(attempts, {}, {}, 1e-6)
    assert report["spent"] == pytest.approx(3e-7, rel=1e-9)
    assert report["by_provider"]["mcp:x"]["cost"] == pytest.approx(3e-7, rel=1e-9)
    assert report["budget_remaining"] == pytest.approx(7e-7, rel=1e-9)
    tenth = {"request_id": "a", "provider": "mcp:x", "side": "external", "cost": 0.1}
    assert cost_report([tenth] * 3, {}, {}, 0.3)["spent"] == 0.3  # not 0.30000000000000004

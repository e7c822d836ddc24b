"""Prices and budgets as a task or configuration gives them: what is no amount is refused on
reading, with one line naming the key (nothing is run with it)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridmcp.config import parse_config
from hybridmcp.errors import ConfigError, TaskError
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

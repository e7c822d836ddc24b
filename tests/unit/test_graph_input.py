"""The graph's own input checked at its edge (``task.check_graph_input``): whatever a parent
graph or the server's API sends, the check passes it or refuses it with one line, never with
another exception from deeper in the run."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hybridmcp.errors import TaskError
from hybridmcp.task import check_graph_input, request_problem

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
requests = st.lists(
    st.fixed_dictionaries(
        {"id": st.one_of(st.text(max_size=3), st.integers(0, 3), st.none(), st.booleans())},
        optional={"skill": json_values, "args": json_values, "strategy": json_values},
    )
    | json_values,
    max_size=4,
)
inputs = (
    st.fixed_dictionaries(
        {}, optional={"requests": requests | json_values, "constraints": json_values}
    )
    | json_values
)


@settings(max_examples=400, deadline=None)
@given(inputs)
@example({"requests": [], "constraints": {"a\n": 0}})  # a key's newline in the error's path
@example({"requests": [], "constraints": {"\u2028": None}})
def test_any_input_passes_or_is_refused_in_one_line(data: Any) -> None:
    try:
        check_graph_input(data)
    except TaskError as err:
        assert str(err).startswith("graph input: ") and "\n" not in str(err)
        return
    assert isinstance(data, dict) and isinstance(data["requests"], list)
    ids = [str(r["id"]) for r in data["requests"]]
    assert len(set(ids)) == len(ids) and all(ids)
    for request in data["requests"]:
        problem = request_problem(request)
        assert problem is None or "strategy" in problem


@pytest.mark.parametrize("rid", ["a", 7])
def test_a_well_formed_input_passes(rid: Any) -> None:
    check_graph_input({"requests": [{"id": rid, "skill": "s"}], "constraints": {"budget": 1}})

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
        optional={
            "skill": json_values,
            "args": json_values,
            "strategy": json_values,
            "critical": json_values,
            "sensitivity": json_values,
            "fallback": json_values,
            st.text(max_size=8): json_values,
        },
    )
    | json_values,
    max_size=4,
)
inputs = (
    st.fixed_dictionaries(
        {},
        optional={
            "requests": requests | json_values,
            "constraints": json_values,
            "run_id": json_values,
        },
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
    assert data.get("run_id") is None or isinstance(data["run_id"], str)
    ids = [str(r["id"]) for r in data["requests"]]
    assert len(set(ids)) == len(ids) and all(ids)
    for request in data["requests"]:
        problem = request_problem(request)
        assert problem is None or (problem and "\n" not in problem), problem


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"critical": "no"}, "critical: Input should be a valid boolean (got 'no')"),
        ({"critical": 1}, "critical: Input should be a valid boolean (got 1)"),
        ({"fallback": "false"}, "fallback: Input should be a valid boolean (got 'false')"),
        ({"sensitivity": "top-secret"}, "sensitivity: unknown sensitivity 'top-secret'"),
        ({"strategy": "fast"}, "strategy 'fast' is not one of auto, internal, external, hybrid"),
        ({"critcal": True}, "critcal: no request has this field (its fields: id, skill, args"),
        ({"args": [1]}, "args: Input should be a valid dictionary"),
        ({"args": {"n": 2**70}}, "args: args.n is an integer beyond 64 bits"),
    ],
)
def test_a_requests_wrong_field_is_named(fields: dict[str, Any], says: str) -> None:
    problem = request_problem({"id": 1, "skill": "math.calculate"} | fields)
    assert problem is not None and problem.startswith(says), problem


@pytest.mark.parametrize(
    "fields",
    [{}, {"critical": True, "fallback": False}, {"sensitivity": 2}, {"sensitivity": "Public"}],
)
def test_a_requests_right_fields_pass(fields: dict[str, Any]) -> None:
    assert request_problem({"id": "a", "skill": "s", "args": {"x": 1}} | fields) is None


@pytest.mark.parametrize("run_id", [7, ["r"], {"r": 1}, True])
def test_a_run_id_that_is_not_a_string_is_refused(run_id: Any) -> None:
    with pytest.raises(TaskError, match="'run_id' must be a string"):
        check_graph_input({"requests": [], "run_id": run_id})


@pytest.mark.parametrize("rid", ["a", 7])
def test_a_well_formed_input_passes(rid: Any) -> None:
    check_graph_input({"requests": [{"id": rid, "skill": "s"}], "constraints": {"budget": 1}})

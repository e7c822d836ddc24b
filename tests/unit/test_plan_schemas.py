"""Planning over input schemas as servers send them, valid JSON Schema or not: the compact
catalogue a local planner reads is one line per skill, the plan's form (its grammar) is valid
JSON Schema, and a plan is accepted or refused with one ``TaskError``, never another
exception (Hypothesis over schema shapes)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridmcp.errors import TaskError
from hybridmcp.prompts.planner import _compact_catalogue
from hybridmcp.prompts.plans import parse_plan, plan_schema, skill_catalogue
from tests.catalog_server import SCHEMAS

KEYWORDS = [
    "type", "properties", "required", "items", "enum", "const", "minLength", "maxLength",
    "minItems", "minimum", "maximum", "description", "anyOf", "$ref", "additionalProperties",
    "format", "pattern", "prefixItems", "nullable",
]  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from(["string", "integer", "object", "array", "null", "nonsense", "a", "#"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from([*KEYWORDS, "a", "b"]), inner, max_size=4)
    ),
    max_leaves=12,
)
schemas = values | st.sampled_from(list(SCHEMAS.values()))


def _catalogue(schemas: list[Any]) -> list[dict[str, Any]]:
    return [
        {"name": f"s.t{n}", "description": "A tool.", "input_schema": schema}
        for n, schema in enumerate(schemas)
    ]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(schemas, min_size=1, max_size=3), values)
def test_any_schemas_give_a_compact_line_each_a_valid_form_and_a_plan_or_one_error(
    given_schemas, args
) -> None:
    catalogue = _catalogue(given_schemas)
    lines = _compact_catalogue(skill_catalogue(catalogue)).splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == [e["name"] for e in catalogue]
    for line in lines:
        json.loads(line.split(" ", 1)[1].rsplit(" - ", 1)[0])  # the arguments, as JSON
    jsonschema.Draft202012Validator.check_schema(plan_schema(catalogue))
    try:
        parse_plan([{"skill": "s.t0", "args": args}], catalogue)
    except TaskError as err:
        assert len(str(err).splitlines()) == 1


NULLABLE = {"properties": {"a": {"type": ["string", "null"]}}, "required": ["a"]}


@pytest.mark.parametrize(
    ("schema", "line"),
    [
        ({"properties": {"a": True, "b": False, "c": {}}}, {"a": "any?", "c": "any?"}),
        (NULLABLE, {"a": "string|null"}),
        ({"properties": ["a"], "required": "a"}, {}),
        ({"required": ["a"]}, {"a": "any"}),
        ({"properties": {"a": {"type": 12}}, "required": 5}, {"a": "any?"}),
    ],
)
def test_the_compact_catalogue_reads_what_a_schema_says_and_skips_what_is_ill_formed(
    schema, line
) -> None:
    text = _compact_catalogue(skill_catalogue(_catalogue([schema])))
    assert json.loads(text.split(" ", 1)[1].rsplit(" - ", 1)[0]) == line


def test_the_plans_form_lets_a_property_of_any_value_be_anything() -> None:
    form = plan_schema(_catalogue([{"type": "object", "properties": {"a": True, "b": False}}]))
    args = form["items"]["properties"]["args"]
    assert args["properties"] == {"a": {}}
    validator = jsonschema.Draft202012Validator(form)
    assert validator.is_valid([{"skill": "s.t0", "args": {"a": "text"}}])
    assert not validator.is_valid([{"skill": "s.t0", "args": {"b": 1}}])

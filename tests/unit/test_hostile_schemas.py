"""Input schemas as a server may send them: invalid, with references nothing can resolve, with
patterns that backtrack for ever on the arguments given. Checking a request's arguments ends at
once with the arguments accepted (a schema that cannot check them leaves that to the server) or
one ``TaskError`` naming the argument; never another exception, never a hang (Hypothesis)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridmcp.capabilities.registry import Skill
from hybridmcp.config import ComparatorConfig
from hybridmcp.errors import TaskError

TIME_BOUND_S = 2.0
EVIL = "^(a+)+$"  # exponential backtracking in Python's re on 'aaaa...!'
EVIL_EVERYWHERE = "(a|aa)+$"  # exponential in the regex module as well


def _skill(schema: Any) -> Skill:
    return Skill(
        name="s.t", description="", input_schema=schema, providers=(), comparator=ComparatorConfig()
    )


def _check(schema: Any, args: Any) -> TaskError | None:
    started = time.monotonic()
    try:
        _skill(schema).validate_args(args)
    except TaskError as err:
        return err
    finally:
        assert time.monotonic() - started < TIME_BOUND_S
    return None


@pytest.mark.parametrize("pattern", [EVIL, EVIL_EVERYWHERE])
def test_a_pattern_that_backtracks_for_ever_is_one_error_not_a_hang(pattern) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": pattern}}}
    err = _check(schema, {"a": "a" * 60 + "!"})
    assert err is not None
    assert "argument a" in str(err) and pattern in str(err)
    if pattern == EVIL_EVERYWHERE:
        assert "could not be checked" in str(err)
    assert _check(schema, {"a": "aaaa"}) is None  # a pattern that matches still matches
    assert "does not match" in str(_check(schema, {"a": "b"}))


def test_pattern_properties_that_backtrack_for_ever_are_one_error_not_a_hang() -> None:
    schema = {"type": "object", "patternProperties": {EVIL_EVERYWHERE: {"type": "integer"}}}
    err = _check(schema, {"a" * 60 + "!": 1})
    assert err is not None and EVIL_EVERYWHERE in str(err)
    assert "is not of type 'integer'" in str(_check(schema, {"aaa": "x"}))


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "nonsense", "properties": 5},
        {"type": "object", "properties": {"a": {"$ref": "http://127.0.0.1:1/x.json"}}},
        {"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}},
        {"type": "object", "required": "a"},
        {"$schema": "http://example.com/unknown-draft", "type": "object"},
    ],
)
def test_a_schema_that_cannot_check_leaves_the_arguments_to_the_server(schema) -> None:
    assert _check(schema, {"a": 1}) is None


schemas = st.recursive(
    st.sampled_from(
        [
            {},
            {"type": "string", "pattern": EVIL},
            {"type": "string", "pattern": EVIL_EVERYWHERE},
            {"type": "nonsense"},
            {"$ref": "#/x"},
            {"$ref": "http://127.0.0.1:1/s.json"},
            {"type": "integer", "minimum": "zero"},
            {"enum": 5},
        ]
    ),
    lambda inner: (
        st.fixed_dictionaries(
            {"type": st.just("object"), "properties": st.dictionaries(st.sampled_from("ab"), inner)}
        )
        | st.fixed_dictionaries({"patternProperties": st.dictionaries(st.just(EVIL), inner)})
    ),
    max_leaves=6,
)
arguments = st.recursive(
    st.none() | st.integers() | st.sampled_from(["a" * 60 + "!", "aaa", "x"]),
    lambda inner: st.dictionaries(st.sampled_from(["a", "b", "a" * 60 + "!"]), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(schemas, arguments)
def test_any_schema_and_arguments_end_at_once_accepted_or_one_task_error(schema, args) -> None:
    err = _check(schema, args)
    if err is not None:
        assert len(str(err).splitlines()) == 1


def test_a_plan_checked_against_a_backtracking_or_unresolvable_schema_ends_at_once() -> None:
    from hybridmcp.prompts.plans import parse_plan

    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": EVIL}}}
    unresolvable = {"type": "object", "properties": {"a": {"$ref": "http://127.0.0.1:1/s"}}}
    skills = [
        {"name": "s.evil", "description": "", "input_schema": schema},
        {"name": "s.ref", "description": "", "input_schema": unresolvable},
    ]
    started = time.monotonic()
    with pytest.raises(TaskError, match="invalid args at a"):
        parse_plan([{"skill": "s.evil", "args": {"a": "a" * 60 + "!"}}], skills)
    assert parse_plan([{"skill": "s.ref", "args": {"a": 1}}], skills)[0]["args"] == {"a": 1}
    assert time.monotonic() - started < TIME_BOUND_S


def test_an_elicitation_answer_against_a_backtracking_pattern_ends_at_once() -> None:
    from hybridmcp.capabilities.client_features import human_answer

    schema = {"type": "object", "properties": {"name": {"type": "string", "pattern": EVIL}}}
    started = time.monotonic()
    with pytest.raises(ValueError, match="name"):
        human_answer({"name": "a" * 60 + "!"}, schema)
    assert human_answer({"name": "aaa"}, schema).content == {"name": "aaa"}
    with pytest.raises(ValueError, match="not valid"):
        human_answer({"name": "x"}, {"type": "object", "properties": 5})
    assert time.monotonic() - started < TIME_BOUND_S


# Zod's JSON Schema (the TypeScript SDK's servers, ``@playwright/mcp``) lists a property with a
# default among the required ones; the server fills it in when it is left out.
ZOD_SCREENSHOT = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "filename": {"type": "string"},
        "scale": {"default": "css", "type": "string", "enum": ["css", "device"]},
        "nested": {
            "type": "object",
            "properties": {"depth": {"type": "number", "default": 3}, "id": {"type": "string"}},
            "required": ["depth", "id"],
        },
    },
    "required": ["scale", "filename"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"filename": "a.png"}, None),  # scale left to the server's default
        ({"filename": "a.png", "scale": "device"}, None),
        ({"scale": "css"}, "'filename' is a required property"),
        ({"filename": "a.png", "scale": "huge"}, "'huge' is not one of"),
        ({"filename": "a.png", "nested": {"id": "x"}}, None),
        ({"filename": "a.png", "nested": {"depth": 1}}, "'id' is a required property"),
    ],
)
def test_a_required_property_with_a_default_may_be_left_to_the_server(args, error) -> None:
    err = _check(ZOD_SCREENSHOT, args)
    if error is None:
        assert err is None, err
    else:
        assert err is not None and error in str(err), err


_KINDS = {
    "string": st.text(max_size=3),
    "number": st.floats(allow_nan=False, allow_infinity=False) | st.integers(),
    "boolean": st.booleans(),
}


@st.composite
def _defaulted_schema_and_args(draw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    names = draw(st.lists(st.sampled_from("abcdef"), unique=True, max_size=5))
    properties: dict[str, Any] = {}
    for name in names:
        kind = draw(st.sampled_from(sorted(_KINDS)))
        prop: dict[str, Any] = {"type": kind}
        if draw(st.booleans()):
            prop["default"] = draw(_KINDS[kind])
        properties[name] = prop
    required = draw(st.lists(st.sampled_from(names), unique=True)) if names else []
    schema = {"type": "object", "properties": properties, "required": required}
    values = st.one_of(*_KINDS.values(), st.none())
    args = draw(st.dictionaries(st.sampled_from(names or ["z"]), values, max_size=5))
    return schema, args


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(_defaulted_schema_and_args())
def test_arguments_pass_exactly_when_they_would_with_the_servers_defaults_filled_in(case) -> None:
    """The oracle is plain JSON Schema on the arguments as the server completes them (each
    required property it has a default for filled in): the same verdict, whatever the
    schema's defaults and the arguments' values."""
    import jsonschema

    schema, args = case
    completed = dict(args)
    for name in schema["required"]:
        if name not in completed and "default" in schema["properties"][name]:
            completed[name] = schema["properties"][name]["default"]
    expected = jsonschema.Draft202012Validator(schema).is_valid(completed)
    assert (_check(schema, args) is None) == expected, (schema, args)


# References between definitions, as a server may send them: any graph of ``$ref``s over a few
# definitions, each definition a reference or a schema that reads the arguments (a property or
# the items of an array) before referring on. A loop that reads nothing recurses without end.
_DEFS = ("a", "b", "c")
_ref = st.sampled_from(["#", *(f"#/$defs/{d}" for d in _DEFS)]).map(lambda r: {"$ref": r})
_definition = (
    _ref
    | st.builds(lambda r: {"type": "object", "properties": {"next": r}}, _ref)
    | st.builds(lambda r: {"type": "array", "items": r}, _ref)
    | st.builds(lambda r, s: {"anyOf": [r, s]}, _ref, _ref)
    | st.builds(lambda r: {"allOf": [r, {"type": "object"}]}, _ref)
    | st.just({"type": "integer"})
)
referring = st.builds(
    lambda defs, root: {"$defs": defs, **root},
    st.fixed_dictionaries({d: _definition for d in _DEFS}),
    _definition,
)
nested = st.recursive(
    st.integers() | st.none(),
    lambda inner: st.fixed_dictionaries({"next": inner}) | st.lists(inner, max_size=2),
    max_leaves=6,
)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(referring, nested)
def test_references_that_loop_leave_the_arguments_to_the_server_never_recurse_out(
    schema, args
) -> None:
    assert _check(schema, args) is None or len(str(_check(schema, args)).splitlines()) == 1


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#"},
        {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
        {
            "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}},
            "type": "object",
            "properties": {"x": {"$ref": "#/$defs/a"}},
        },
    ],
)
def test_a_schema_whose_references_loop_leaves_the_arguments_to_the_server(schema) -> None:
    assert _check(schema, {"x": 1}) is None


def test_a_recursive_schema_that_reads_the_arguments_still_checks_them() -> None:
    tree = {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "v": {"type": "integer"},
                    "kids": {"items": {"$ref": "#/$defs/node"}},
                },
            }
        },
        "$ref": "#/$defs/node",
    }
    assert _check(tree, {"v": 1, "kids": [{"v": 2, "kids": [{"v": 3}]}]}) is None
    err = _check(tree, {"v": 1, "kids": [{"v": 2, "kids": [{"v": "x"}]}]})
    assert err is not None and "argument kids/0/kids/0/v" in str(err)
    deep: dict = {"v": 0}
    for n in range(5000):  # deeper than the check can recurse: left to the server
        deep = {"v": n, "kids": [deep]}
    assert _check(tree, deep) is None


def test_a_plan_checked_against_a_schema_whose_references_loop_ends_at_once() -> None:
    from hybridmcp.prompts.plans import parse_plan

    skills = [{"name": "s.loop", "description": "", "input_schema": {"$ref": "#"}}]
    assert parse_plan([{"skill": "s.loop", "args": {"a": 1}}], skills)[0]["args"] == {"a": 1}


@settings(max_examples=60, deadline=None)
@given(
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12),
    st.lists(st.sampled_from(["p", "q"]), max_size=3),
    st.sampled_from(["properties", "patternProperties"]),
)
def test_a_property_whose_schema_is_false_is_that_arguments_error(name, outer, keyword) -> None:
    """``{"properties": {name: false}}``, at any depth: giving ``name`` is one error naming
    the argument's path (jsonschema's own error names none)."""
    import regex

    key = f"^{regex.escape(name)}$" if keyword == "patternProperties" else name
    schema: dict = {"type": "object", keyword: {key: False}}
    args: dict = {name: 1}
    for part in reversed(outer):
        schema, args = {"type": "object", "properties": {part: schema}}, {part: args}
    err = _check(schema, args)
    assert err is not None and len(str(err).splitlines()) == 1
    plain = name.isprintable() and "/" not in name
    where = "/".join([*outer, name if plain else repr(name)])
    assert f"argument {where}: {name!r} is not allowed" in str(err)
    assert _check(schema, {}) is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=6), min_size=1, max_size=3))
def test_an_arguments_error_is_one_line_whatever_its_names_hold(names) -> None:
    """Names of any characters (line breaks, escapes, ``/``, none): the error is one line."""
    schema: dict = {"type": "integer"}
    args: object = "x"
    for name in reversed(names):
        schema, args = {"type": "object", "properties": {name: schema}}, {name: args}
    err = _check(schema, args)
    assert err is not None and len(str(err).splitlines()) == 1
    assert "'x' is not of type 'integer'" in str(err)


_NAMES = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8)
_PLACES = [
    "properties",
    "patternProperties",
    "additionalProperties",
    "prefixItems",
    "items",
    "ref",
    "allOf",
    "then",
    "dependentSchemas",
]
"""Where a subschema can sit on the way down to the arguments: the keywords that descend into
a member (a path step), and those that apply to the same value (none)."""


@st.composite
def _false_somewhere(draw: st.DrawFn) -> tuple[dict, dict, list[str | int], str]:
    """A schema with one ``false`` subschema under a chain of places Hypothesis picks, in
    draft 2020-12 or 7 (where ``prefixItems`` is ``items`` as an array and ``$defs`` is
    ``definitions``), arguments that reach it, the path to it, and the draft."""
    import regex

    draft7 = draw(st.booleans())
    defs_key = "definitions" if draft7 else "$defs"
    places = draw(st.lists(st.sampled_from(_PLACES), max_size=5))
    schema: Any = False
    value: Any = draw(st.one_of(st.integers(), st.text(max_size=5), st.none()))
    path: list[str | int] = []
    defs: dict[str, Any] = {}
    for place in reversed(places):
        if place in ("properties", "patternProperties", "additionalProperties"):
            name = draw(_NAMES)
            key = f"^{regex.escape(name)}$" if place == "patternProperties" else name
            if place == "additionalProperties":
                if schema is False:  # worded by the keyword itself, tested apart
                    schema = {"allOf": [False]}
                schema = {"type": "object", "properties": {}, place: schema}
            else:
                schema = {"type": "object", place: {key: schema}}
            value, path = {name: value}, [name, *path]
        elif place in ("prefixItems", "items"):
            before = draw(st.integers(1 if place == "items" else 0, 2))  # no empty tuple
            if place == "items" and schema is False:  # worded by the keyword itself
                schema = {"allOf": [False]}
            if place == "prefixItems":
                subs = [True] * before + [schema]
                schema = {"type": "array", ("items" if draft7 else "prefixItems"): subs}
            else:
                tuple_key = "items" if draft7 else "prefixItems"
                rest = "additionalItems" if draft7 else "items"
                schema = {"type": "array", tuple_key: [True] * before, rest: schema}
            value, path = [0] * before + [value], [before, *path]
        elif place == "ref":
            name = f"d{len(defs)}"
            defs[name] = schema
            schema = {"$ref": f"#/{defs_key}/{name}"}
        elif place == "allOf":
            schema = {"allOf": [True, schema]}
        elif place == "then":
            schema = {"if": True, "then": schema}
        else:  # dependentSchemas (draft 7: dependencies), applied when a property is there
            trigger = draw(_NAMES)
            key = "dependencies" if draft7 else "dependentSchemas"
            schema = {"allOf": [schema], key: {trigger: True}}
    name = draw(_NAMES)  # the arguments are an object
    root: dict[str, Any] = {"type": "object", "properties": {name: schema}, defs_key: defs}
    if draft7:
        root["$schema"] = "http://json-schema.org/draft-07/schema#"
    return root, {name: value}, [name, *path], "7" if draft7 else "2020-12"


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(_false_somewhere())
def test_a_false_subschema_is_that_arguments_error_at_its_path(case) -> None:
    """A ``false`` subschema under any chain of ``properties``, ``patternProperties``,
    ``additionalProperties``, ``prefixItems`` (draft 7's ``items`` array), ``items``
    (``additionalItems``), ``$ref`` to ``$defs`` (``definitions``), ``allOf``, ``then`` and
    ``dependentSchemas``: the arguments that reach it are one error, on one line, naming the
    path to it (jsonschema's own error named the path of the last ``properties`` above it)."""
    schema, args, path, _draft = case
    err = _check(schema, args)
    assert err is not None and len(str(err).splitlines()) == 1
    where = "/".join(
        str(p) if not isinstance(p, str) or (p.isprintable() and "/" not in p) else repr(p)
        for p in path
    )
    assert f"argument {where}: " in str(err), (str(err), where)
    assert "is not allowed (its schema is false)" in str(err), str(err)

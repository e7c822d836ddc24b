"""The arguments' JSON helpers of the disclosure step: ``plain_json`` and ``json_text`` say
exactly what their straightforward definitions say, on any value (Hypothesis)."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hybridmcp.policy.disclosure import json_text, plain_json


class Tagged(str):
    """A ``str`` of another exact type: not plain JSON, though JSON writes it as a string."""


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=8)
    | st.builds(Tagged, st.text(max_size=4))
    | st.builds(tuple, st.lists(st.integers(), max_size=2))
    | st.builds(set, st.lists(st.integers(), max_size=2))
)
KEYS = st.text(max_size=4) | st.integers() | st.booleans() | st.builds(Tagged, st.text(max_size=3))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)


def reference_plain_json(value: Any) -> bool:
    """The definition: JSON's own types only (exact types, string keys)."""
    kind = type(value)
    if kind is dict:
        return all(type(k) is str and reference_plain_json(v) for k, v in value.items())
    if kind is list:
        return all(reference_plain_json(v) for v in value)
    return kind in (str, int, float, bool, type(None))


@settings(max_examples=400, deadline=None)
@given(VALUES)
def test_plain_json_is_its_definition(value: Any) -> None:
    assert plain_json(value) is reference_plain_json(value)


@settings(max_examples=400, deadline=None)
@given(VALUES)
def test_json_text_is_json_dumps_with_str_for_the_rest(value: Any) -> None:
    try:
        expected = json.dumps(value, default=str)
    except TypeError as err:  # keys JSON cannot write fail alike
        try:
            json_text(value)
        except TypeError as mine:
            assert str(mine) == str(err)
            return
        raise AssertionError("json_text wrote what json.dumps refuses") from None
    text = json_text(value)
    assert text == expected
    assert len(text) == len(text.encode())  # ASCII: its length is its size in bytes


def test_plain_json_examples() -> None:
    assert plain_json({"timezone": "UTC", "n": [1, 2.5, None, True, {"k": "v"}]})
    assert not plain_json({"when": (1, 2)})  # a tuple is written as a list: not the same value
    assert not plain_json({1: "a"})
    assert not plain_json([Tagged("x")])
    assert plain_json(math.inf)  # a float, written as JSON writes it

"""Two sides that mean the same value agree; two that mean different values conflict. Pure.

The same answer reaches the coordinator in different spellings: a JavaScript MCP server sends
the float ``36.0`` as ``36`` (JSON has one number type), a Python side keeps ``36.0``; an
internal skill may return a tuple or an ``int``-keyed dict where a server sends a list or
string keys; object keys come in any order. None of that is a disagreement."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridmcp.config import ComparatorConfig
from hybridmcp.policy.comparators import compare
from hybridmcp.policy.integration import Answer, integrate

EXACT = ComparatorConfig(type="exact")
SUBSET = ComparatorConfig(type="json_subset")
TEXT = ComparatorConfig(type="text_similarity", threshold=1.0)

finite = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=15,
)


def as_javascript_sends_it(value: Any) -> Any:
    """``JSON.stringify`` then Python's ``json.loads``: an integral number has no ``.0``."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: as_javascript_sends_it(v) for k, v in reversed(list(value.items()))}
    if isinstance(value, list):
        return [as_javascript_sends_it(v) for v in value]
    return value


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_the_same_value_spelled_as_javascript_sends_it_agrees(value: Any) -> None:
    other = as_javascript_sends_it(value)
    for comparator in (EXACT, TEXT):
        assert compare(value, other, comparator).agree
        assert compare(other, value, comparator).agree
    if isinstance(value, dict):
        assert compare(value, other, SUBSET).agree


def bumped(value: Any) -> Any | None:
    """The value with one leaf changed to something that means a different value (None if it
    has no leaf)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1 if abs(value) < 2**50 else value * 2 if value else 1
    if isinstance(value, str):
        return value + "!"
    if value is None:
        return 0
    if isinstance(value, list):
        for i, v in enumerate(value):
            b = bumped(v)
            if b is not None:
                return [*value[:i], b, *value[i + 1 :]]
        return None
    for k, v in value.items():
        b = bumped(v)
        if b is not None:
            return {**value, k: b}
    return None


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_a_different_value_conflicts(value: Any) -> None:
    other = bumped(value)
    if other is None or (isinstance(other, float) and math.isinf(other)):
        return
    assert not compare(value, other, EXACT).agree
    assert not compare(value, as_javascript_sends_it(other), EXACT).agree


@pytest.mark.parametrize(
    ("a", "b", "agree"),
    [
        (1, 1.0, True),
        ({"t": 36.0, "h": [82.0, 1.5]}, {"h": [82, 1.5], "t": 36}, True),
        (-0.0, 0, True),
        (2.0**70, 2**70, True),
        ((1, "a"), [1, "a"], True),
        ({1: "a", "b": 2}, {"1": "a", "b": 2.0}, True),  # a Python side's int key
        ('{"b": [2, 3.0], "a": 1}', {"a": 1, "b": [2, 3]}, True),  # JSON text of the object
        ("[1, 2]", [1, 2.0], True),
        ('{"a": 1}', {"a": 2}, False),
        ('{"a": 1', {"a": 1}, False),
        ('"x"', "x", False),  # only objects and arrays are read from their text
        ("[1]", 1, False),
        (True, 1, False),
        (False, 0, False),
        (None, 0, False),
        ("1", 1, True),  # the JSON text of a number is that number (a `-> str` tool's str(n))
        ("5.0", 5, True),
        (" 1e3\n", 1000, True),
        ("0.30000000000000004", 0.1 + 0.2, True),
        ({"n": "2", "xs": ["1.5", 2]}, {"xs": [1.5, 2.0], "n": 2}, True),
        ("0.3", 0.1 + 0.2, False),
        ("5.0", "5", False),  # two texts are compared as texts
        ("1.10", "1.1", False),
        ("007", 7, False),  # not JSON text of a number
        ("1e400", 1e308, False),
        ("true", True, False),
        ("null", None, False),
        ("5", True, False),
        ("1", [1], False),
        (1, 1.5, False),
        (0.1 + 0.2, 0.3, False),  # exact is exact; numeric has a tolerance
    ],
)
def test_exact(a: Any, b: Any, agree: bool) -> None:
    assert compare(a, b, EXACT).agree is agree
    assert compare(b, a, EXACT).agree is agree


def test_json_subset_and_text_read_numbers_as_json_does() -> None:
    fields = ComparatorConfig(type="json_subset", fields=["words", "sentences"])
    assert compare({"words": 5.0, "sentences": 1}, {"words": 5, "sentences": 1.0}, fields).agree
    assert not compare({"words": 5, "sentences": 1}, {"words": 6, "sentences": 1}, fields).agree
    assert compare({"a": [1.0]}, {"a": [1]}, TEXT).agree


def test_agreeing_spellings_integrate_as_one_answer() -> None:
    answers = [
        Answer("internal:py", "internal", {"temperature": 36.0}, 0.9, 1.0),
        Answer("mcp:js/weather", "external", {"temperature": 36}, 0.8, 5.0),
    ]
    merged = integrate("r", answers, EXACT, critical=True)
    assert merged.status == "ok" and merged.agreement is True and merged.conflict is None
    synthesis = integrate("r", answers, EXACT, "hybrid_synthesis")
    lists = [
        Answer("internal:py", "internal", [1.0, 2.5], 0.9, 1.0),
        Answer("mcp:js/weather", "external", [1, 2.5], 0.8, 5.0),
    ]
    assert integrate("r", lists, TEXT, "hybrid_synthesis").value == [1.0, 2.5]
    assert synthesis.agreement is True


def test_an_internal_answer_reads_as_fastmcp_sends_the_same_return_value() -> None:
    from dataclasses import dataclass
    from datetime import UTC, datetime

    from pydantic import BaseModel

    from hybridmcp.capabilities.registry import internal_value

    class Reading(BaseModel):
        at: datetime
        values: tuple[float, ...]

    @dataclass
    class Row:
        id: int
        tags: frozenset[str]

    reading = Reading(at=datetime(2026, 1, 1, tzinfo=UTC), values=(1.0, 2.5))
    assert internal_value(reading) == {"at": "2026-01-01T00:00:00Z", "values": [1.0, 2.5]}
    assert internal_value([Row(1, frozenset({"a"}))]) == [{"id": 1, "tags": ["a"]}]
    assert internal_value({"k": (1, 2)}) == {"k": [1, 2]}
    plain = {"a": [1, {"b": None}]}
    assert internal_value(plain) == plain
    # a str is read as a FastMCP tool's str is: JSON (or Python) text of an object or array is
    # that object or array; any other text stays text
    assert internal_value('{"a": [1, 2]}') == {"a": [1, 2]}
    assert internal_value("[{'id': 1, 'note': None}]") == [{"id": 1, "note": None}]
    assert internal_value("42") == "42" and internal_value("hello") == "hello"
    odd = object()
    assert internal_value(odd) is odd  # kept as it is: nothing to read it as
    assert internal_value(b"\xff") == b"\xff"


@pytest.mark.parametrize("zone", ["UTC", "Asia/Tokyo", "America/New_York"])
def test_a_time_without_an_offset_is_judged_alike_on_every_machine(
    zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        when = ComparatorConfig(type="datetime", tolerance=5)
        assert compare("2026-01-01T12:00:00", "2026-01-01T12:00:02+00:00", when).agree
        assert not compare("2026-01-01T12:00:00", "2026-01-01T12:00:00+09:00", when).agree
    finally:
        monkeypatch.undo()
        time.tzset()


def number_spelled(value: Any, draw: Any) -> Any:
    """The value with some of its numbers sent as their text, as a FastMCP tool declared
    ``-> str`` sends them (``str(n)``; ``json.dumps(n)`` for a JavaScript server)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if math.isfinite(value) and draw(st.booleans()):
            return draw(st.sampled_from([str, repr, json.dumps]))(value)
        return value
    if isinstance(value, list):
        return [number_spelled(v, draw) for v in value]
    if isinstance(value, dict):
        return {k: number_spelled(v, draw) for k, v in value.items()}
    return value


@settings(max_examples=300, deadline=None)
@given(json_values, st.data())
def test_numbers_sent_as_their_text_agree_and_a_different_number_conflicts(
    value: Any, data: Any
) -> None:
    spelled = number_spelled(value, data.draw)
    assert compare(value, spelled, EXACT).agree
    assert compare(spelled, value, EXACT).agree
    other = bumped(value)
    if other is not None and not (isinstance(other, float) and math.isinf(other)):
        assert not compare(spelled, other, EXACT).agree
        assert not compare(other, spelled, EXACT).agree


@settings(max_examples=300, deadline=None)
@given(finite | st.integers(), finite | st.integers())
def test_a_number_and_a_text_agree_exactly_when_the_text_spells_that_number(
    x: float, y: float
) -> None:
    assert compare(str(x), y, EXACT).agree is (x == y)
    assert compare(str(x), str(y), EXACT).agree is (str(x) == str(y))

"""The task loader under random and hostile bytes: every case ends quickly with a valid task or
one TaskError line (Hypothesis)."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridmcp.errors import TaskError
from hybridmcp.limits import InputLimits, preview, strip_jsonc
from hybridmcp.task import Task, task_from_bytes

LIMITS = InputLimits(
    max_file_bytes=200_000, max_string_chars=5_000, max_nodes=200_000, max_requests=1_000
)
TIME_BOUND_S = 2.0


def outcome(raw: bytes) -> Task | TaskError:
    started = time.monotonic()
    try:
        result: Task | TaskError = task_from_bytes(raw, "fuzz", LIMITS)
    except TaskError as err:
        result = err
    assert time.monotonic() - started < TIME_BOUND_S
    return result


def wrapped(args: object) -> bytes:
    return json.dumps(
        {"requests": [{"id": "a", "skill": "x", "args": {"v": args}}]}, ensure_ascii=False
    ).encode()


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(st.binary(max_size=4_000))
def test_random_bytes(raw):
    outcome(raw)


@FUZZ
@given(
    st.sampled_from(["[", "{", "- ", "a: ", "[&a ", "*a, "]),
    st.integers(min_value=1, max_value=20_000),
    st.booleans(),
)
def test_deep_nesting_is_refused_or_valid(opener, depth, as_json):
    body = opener * depth
    raw = (body if not as_json else '{"requests": ' + body).encode()
    result = outcome(raw)
    if depth > LIMITS.max_depth and opener in "[{":
        assert isinstance(result, TaskError)


@FUZZ
@given(st.integers(min_value=0, max_value=20_000), st.sampled_from(["x", "é", "\U0001f600"]))
def test_huge_strings(length, char):
    result = outcome(wrapped(char * length))
    if length > LIMITS.max_string_chars:
        assert isinstance(result, TaskError)
        assert "max_string_chars" in str(result)
        assert len(str(result)) < 300
    else:
        assert isinstance(result, Task)


@FUZZ
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**64 - 1)  # larger ones are refused (test_checkpointable)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=60,
    ),
    st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32"]),
)
def test_json_values_in_any_declared_encoding(args, encoding):
    raw = json.dumps({"requests": [{"id": "a", "skill": "x", "args": {"v": args}}]})
    result = outcome(raw.encode(encoding))
    assert isinstance(result, Task)
    assert result.requests[0].args == {"v": args}


@pytest.mark.parametrize("levels", [5, 9, 20])
def test_an_alias_bomb_is_refused_from_its_events(levels):
    from tests.integration.test_hostile_input import alias_bomb

    result = outcome(alias_bomb(levels).encode())
    assert isinstance(result, TaskError)
    assert "max_nodes" in str(result)


def test_too_many_requests():
    raw = json.dumps([{"id": str(i), "skill": "x"} for i in range(1_001)]).encode()
    assert "max_requests" in str(outcome(raw))


def test_preview_quotes_a_short_prefix():
    assert preview("abc") == "'abc'"
    assert preview("x" * 1_000).endswith("… (1000 chars)")
    assert len(preview("x" * 10**6)) < 100


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=20,
    )
)
def test_strip_jsonc_leaves_plain_json_as_it_is(value):
    text = json.dumps(value)
    assert strip_jsonc(text) == text
    assert strip_jsonc(json.dumps(value, indent=2)) == json.dumps(value, indent=2)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("[1, /*a*/ /*b*/ ]", [1]),
        ('{"a": "//x", // c\n "b": [1,2,],}', {"a": "//x", "b": [1, 2]}),
        ('{"u": "http://h/*x*/"} // end', {"u": "http://h/*x*/"}),
        ('["a\\\\", "b",]', ["a\\", "b"]),
        ('{"a": 1, /* unclosed', None),
    ],
)
def test_strip_jsonc_reads_comments_and_trailing_commas(text, value):
    if value is None:
        with pytest.raises(json.JSONDecodeError):
            json.loads(strip_jsonc(text))
    else:
        assert json.loads(strip_jsonc(text)) == value

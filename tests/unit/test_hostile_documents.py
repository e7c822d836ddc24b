"""Task and configuration documents that are valid JSON or YAML text but hold what JSON cannot:
YAML tags and scalars whose constructors fail (``2020-13-45``, ``!!int zz``, a 5,000-digit
integer), values JSON has no form for (bytes, sets, dates, NaN), keys that are not text or
appear twice, and JSON text built to make a scanner quadratic. Each ends at once with a task
holding JSON values only, or with one ``TaskError`` / ``ConfigError`` line (Hypothesis)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridmcp.config import load_config
from hybridmcp.errors import ConfigError, TaskError
from hybridmcp.limits import InputLimits
from hybridmcp.task import Task, task_from_bytes

TIME_BOUND_S = 2.0
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))

# Scalars whose YAML reading is surprising: constructors that raise, tags JSON has no value
# for, YAML 1.1 booleans and sexagesimals, non-finite floats, huge integers.
TRICKY_SCALARS = [
    "2020-13-45",
    "2001-12-14t21:59:43.10-05:00",
    "2024-01-01",
    "!!timestamp 'x'",
    "!!int 'zz'",
    "!!float 'zz'",
    "!!bool 'maybe'",
    "!!null 'x'",
    "!!binary 'aGk='",
    "!!binary '@@@'",
    "!!set {a, b}",
    "!!omap [a: 1]",
    "!!pairs [a: 1, a: 2]",
    "!!str 1",
    "0x" + "f" * 4_000,
    "1" * 5_000,
    "-" + "9" * 4_400,
    "0o" + "7" * 5_000,
    "1:2:3",
    ".nan",
    ".inf",
    "-.inf",
    "1e400",
    "on",
    "yes",
    "~",
    "null",
    "'text'",
    "3",
    "-0.0",
]
TRICKY_KEYS = ["a", "a", "1", "on", "true", "~", "null", "2020-01-01", "1.5", "'a'", "<<"]


def _outcome(raw: bytes) -> Task | TaskError:
    started = time.monotonic()
    try:
        result: Task | TaskError = task_from_bytes(raw, "t", InputLimits())
    except TaskError as err:
        result = err
    assert time.monotonic() - started < TIME_BOUND_S
    return result


def _json_only(value: Any) -> None:
    """Only what JSON can hold: text keys, finite numbers, no bytes, sets, dates or tuples."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), key
            _json_only(item)
    elif isinstance(value, list):
        for item in value:
            _json_only(item)
    else:
        assert value is None or isinstance(value, str | bool | int | float), type(value)
        if isinstance(value, float):
            assert math.isfinite(value)


def _one_line(err: Exception) -> None:
    lines = str(err).splitlines()
    assert len(lines) == 1 or lines[0].startswith("invalid task"), str(err)
    assert "Traceback" not in str(err)


yaml_args = st.lists(
    st.tuples(st.sampled_from(TRICKY_KEYS), st.sampled_from(TRICKY_SCALARS)), max_size=5
)


@FUZZ
@given(yaml_args, st.booleans())
def test_yaml_scalars_of_every_shape_are_json_values_or_one_error(pairs, in_list) -> None:
    body = (
        "[" + ", ".join(v for _, v in pairs) + "]"
        if in_list
        else "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    )
    raw = f"requests: [{{id: a, skill: math.calculate, args: {{expression: '1', v: {body}}}}}]"
    result = _outcome(raw.encode())
    if isinstance(result, TaskError):
        _one_line(result)
    else:
        _json_only(result.requests[0].args)
        json.dumps(result.model_dump(), allow_nan=False)


@pytest.mark.parametrize(
    ("scalar", "said"),
    [
        ("2020-13-45", "2020-13-45"),  # read as the text it is, not a date
        ("!!int 'zz'", "!!int"),
        ("!!float 'zz'", "!!float"),
        ("!!bool 'maybe'", "!!bool"),
        ("!!timestamp 'x'", "x"),
        ("1" * 5_000, "digits"),
        ("!!binary 'aGk='", "!!binary"),
        ("!!set {a, b}", "!!set"),
        ("!!omap [a: 1]", "!!omap"),
        (".nan", "requests.0.args.v"),
        ("-.inf", "requests.0.args.v"),
    ],
)
def test_a_yaml_value_json_cannot_hold_is_one_clear_line(scalar: str, said: str) -> None:
    raw = f"requests: [{{id: a, skill: math.calculate, args: {{expression: '1', v: {scalar}}}}}]"
    result = _outcome(raw.encode())
    if scalar in ("2020-13-45", "!!timestamp 'x'"):
        assert isinstance(result, Task)
        assert result.requests[0].args["v"] == said
        return
    assert isinstance(result, TaskError), result
    _one_line(result)
    assert said in str(result)
    assert "sys.set_int_max_str_digits" not in str(result)


def test_dates_and_odd_keys_stay_the_text_written() -> None:
    raw = b"requests: [{id: a, skill: time.now, args: {when: 2024-01-01, 1: x, on: y, ~: z}}]"
    result = _outcome(raw)
    assert isinstance(result, Task)
    assert result.requests[0].args == {"when": "2024-01-01", "1": "x", "on": "y", "~": "z"}


@pytest.mark.parametrize(
    "raw",
    [
        b"requests: [{id: a, skill: math.calculate, args: {x: 1, x: 2}}]",
        b"requests: [{id: a, skill: math.calculate}]\nrequests: [{id: b, skill: math.calculate}]",
        b"requests: [{id: a, skill: math.calculate, args: {1: x, '1': y}}]",
        b'{"requests": [{"id": "a", "skill": "math.calculate", "args": {"x": 1, "x": 2}}]}',
        b'{"requests": [{"id": "a", "skill": "x"}], "requests": []}',
    ],
)
def test_a_key_given_twice_is_refused_never_silently_dropped(raw: bytes) -> None:
    result = _outcome(raw)
    assert isinstance(result, TaskError), result
    _one_line(result)
    assert "twice" in str(result)


def test_yaml_merge_keys_may_still_be_overridden() -> None:
    raw = (
        b"base: &b {skill: math.calculate, args: {expression: '1'}}\n"
        b"requests: [{<<: *b, id: a, skill: math.calculate}]\n"
    )
    result = _outcome(raw.replace(b"base: &b", b"requests_: &b"))
    assert isinstance(result, TaskError)  # 'requests_' is not a task key...
    assert "twice" not in str(result)  # ...but the merged 'skill' overridden is no duplicate


@pytest.mark.parametrize(
    "raw",
    [
        b'{"requests": [{"id": "a", "skill": "math.calculate", "args": {"v": NaN}}]}',
        b'{"requests": [{"id": "a", "skill": "math.calculate", "args": {"v": -Infinity}}]}',
        b'{"requests": [{"id": "a", "skill": "math.calculate", "args": {"v": 1e999}}]}',
        b'{"requests": [{"id": "a", "skill": "math.calculate", "args": {"v": '
        + b"1" * 5_000
        + b"}}]}",
    ],
)
def test_json_numbers_json_cannot_hold_are_one_clear_line(raw: bytes) -> None:
    result = _outcome(raw)
    assert isinstance(result, TaskError), result
    _one_line(result)
    assert "sys.set_int_max_str_digits" not in str(result)


@pytest.mark.parametrize(
    "raw",
    [
        b'["' + b'\\"' * 200_000,  # an unterminated string of escaped quotes
        b'["' + b'\\\\"' * 200_000,
        b'{"a": "' + b"[" * 500_000 + b'"}',
        b'"' * 2_000_000,
    ],
)
def test_json_text_built_against_the_depth_scan_ends_at_once(raw: bytes) -> None:
    result = _outcome(raw)
    assert isinstance(result, TaskError)
    _one_line(result)


@FUZZ
@given(yaml_args)
def test_configuration_files_with_every_shape_are_a_config_or_one_config_error(
    tmp_path_factory: pytest.TempPathFactory, pairs: list[tuple[str, str]]
) -> None:
    body = "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    path: Path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text(f"mcpServers:\n  s: {{command: x, env: {body}}}\n")
    started = time.monotonic()
    try:
        config = load_config(path)
    except ConfigError as err:
        assert "Traceback" not in str(err)
    else:
        env = config.mcpServers["s"].env or {}
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
    assert time.monotonic() - started < TIME_BOUND_S


def test_a_yaml_flow_mapping_is_a_yaml_task_not_broken_json() -> None:
    raw = b"{requests: [{id: a, skill: math.calculate, args: {expression: '1+1'}}]}"
    result = _outcome(raw)
    assert isinstance(result, Task), result
    assert result.requests[0].args == {"expression": "1+1"}


def test_broken_json_is_still_reported_as_json() -> None:
    result = _outcome(b'{"requests": [{"id": "a", "skill": "x"}')
    assert isinstance(result, TaskError)
    assert "invalid JSON at line 1" in str(result)

"""Untrusted tool output: size limit and errors in disguise (pure)."""

from __future__ import annotations

import pytest

from hybridmcp.config import DEFAULT_ERROR_PATTERNS, parse_config
from hybridmcp.errors import ConfigError
from hybridmcp.policy.output import compile_patterns, output_problem

PATTERNS = compile_patterns(DEFAULT_ERROR_PATTERNS)


def problem(text: str, structured: object = None, size: int = 10, limit: int = 1000) -> str | None:
    return output_problem(text, structured, size, max_bytes=limit, error_patterns=PATTERNS)


@pytest.mark.parametrize(
    "text",
    [
        "Error: database is locked",
        "Database error: no such table: users",
        "  error : something broke",
        "Exception: ValueError",
        "Traceback (most recent call last):\n  File ...",
        "Failed: upstream timeout",
        '{"error": "not found", "code": 404}',
    ],
)
def test_errors_in_disguise_are_recognised(text: str) -> None:
    found = problem(text)
    assert found is not None and ("error in disguise" in found or "error object" in found)


@pytest.mark.parametrize(
    "text",
    [
        "Echo: hello",
        '{"value": 42}',
        '{"error_rate": 0.1, "calls": 10}',
        "The error rate fell: 2% to 1%.",  # 'error' mid-text is not an error answer
        "",
        "[1, 2, 3]",
        # an object that reports no error: a success with an empty error field
        '{"status": "ok", "error": null}',
        '{"error": false, "message": "sent"}',
        '{"error": "", "code": 0, "status": "done"}',
        '{"error": [], "details": {}}',
        "[" * 5000 + "]" * 5000,  # nested deeper than the JSON decoder reads: text
    ],
)
def test_ordinary_answers_pass(text: str) -> None:
    assert problem(text) is None


def test_structured_answers_are_judged_by_their_structure() -> None:
    assert problem("Error: ignored when structured", {"value": 1}) is None
    assert problem("", {"error": "boom"}) == "the answer is an error object"
    assert problem("", {"error": None, "status": "ok"}) is None
    failed = {"error": {"code": 5}, "status": "failed"}
    assert problem("", failed) == "the answer is an error object"


def test_size_limit() -> None:
    assert problem("x", size=1001, limit=1000) == (
        "answer of 1001 bytes exceeds the 1000-byte limit (tool_output.max_bytes)"
    )
    assert problem("x", size=1000, limit=1000) is None


def test_patterns_are_configurable_and_validated() -> None:
    assert output_problem("Error: x", None, 1, max_bytes=10, error_patterns=()) is None
    cfg = parse_config({"tool_output": {"max_bytes": 2048, "error_patterns": ["^oops"]}})
    assert cfg.tool_output.max_bytes == 2048
    with pytest.raises(ConfigError, match=r"tool_output.error_patterns.*invalid regex '\('"):
        parse_config({"tool_output": {"error_patterns": ["("]}})
    with pytest.raises(ConfigError, match=r"tool_output.max_bytes"):
        parse_config({"tool_output": {"max_bytes": 0}})

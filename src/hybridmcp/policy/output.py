"""Untrusted tool output: what makes an MCP tool's answer unusable, before anyone reads it. Pure.

An answer is data, never code: the coordinator parses it as JSON or keeps it as text, compares
it, and returns it; nothing evaluates it or splices it into code. Before that, the gate rejects
(as a failed attempt, so the work moves elsewhere):

- answers larger than ``tool_output.max_bytes`` (default 1 MB);
- answers that are errors in disguise: ``isError=false`` yet text such as ``Error: ...`` or
  ``Database error: ...`` (``mcp-server-sqlite`` answers so), a Python traceback, or a JSON
  object that only carries an ``error``.

The caller passes the answer as it will be read (``registry.answer_to_judge``): a FastMCP tool
returning a ``str`` sends ``{"result": "<text>"}`` as structured content, and that text is
judged as text, so ``{"result": "Error: ..."}`` is still an error in disguise. Image, audio and
resource parts are never text: an answer of only those has empty text and passes.

Structured content is checked against the tool's ``outputSchema`` by the MCP client itself
(``ClientSession.call_tool`` since mcp 1.10); a violation reaches the gate as a provider error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

ERROR_ONLY_KEYS = frozenset({"error", "message", "code", "details", "status"})
ERROR_OBJECT = "the answer is an error object"
IN_DISGUISE = "the answer is an error in disguise (isError=false)"
UNPARSED: Any = object()
"""``output_problem``'s ``parsed`` when the caller has not parsed the text."""


def _error_object(value: Any) -> bool:
    """An object that only carries an error, and an error there is: ``{"error": null,
    "status": "ok"}`` (or ``false``, ``""``, ``{}``) reports none."""
    return isinstance(value, dict) and bool(value.get("error")) and set(value) <= ERROR_ONLY_KEYS


def output_problem(
    text: str,
    structured: Any,
    size: int,
    *,
    max_bytes: int,
    error_patterns: Sequence[re.Pattern[str]],
    parsed: Any = UNPARSED,
) -> str | None:
    """Why a tool's (non-error) answer must not be used, or None. ``text`` is its text content,
    ``structured`` its structured content, FastMCP's wrapper removed (None if absent or if the
    wrapped value is text), ``size`` its size in bytes; ``parsed``: ``json.loads(text)`` when
    the caller has it already (a text parsed without ``NaN`` and ``Infinity`` parses the same)."""
    if size > max_bytes:
        return f"answer of {size} bytes exceeds the {max_bytes}-byte limit (tool_output.max_bytes)"
    if structured is not None:
        return ERROR_OBJECT if _error_object(structured) else None
    if parsed is UNPARSED:
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):  # not JSON, or nested deeper than it reads
            parsed = None
    if parsed is not None:
        return ERROR_OBJECT if _error_object(parsed) else None
    for pattern in error_patterns:
        if pattern.search(text):
            first = text.strip().splitlines()[0] if text.strip() else ""
            return f"{IN_DISGUISE}: {first[:200]!r}"
    return None


def is_error_answer(problem: str) -> bool:
    """Is this problem of :func:`output_problem` the tool reporting an error (in disguise, or
    as an error object), rather than an answer too large to read? Such an answer is a tool
    error like one with ``isError``, and is blamed as one (the request's when its message says
    the input is wrong: :func:`hybridmcp.policy.blame.says_input_is_wrong`)."""
    return problem.startswith((ERROR_OBJECT, IN_DISGUISE))


def compile_patterns(patterns: Sequence[str]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.IGNORECASE) for p in patterns)

"""The gate reads an answer's text once, for the untrusted-output check and for the value: what
it accepts, rejects and returns is exactly what checking and reading it separately gives
(``answer_to_judge`` + ``output_problem``, then ``extract_result``), for texts that are JSON,
JSON with ``NaN`` or ``Infinity``, error objects, errors in disguise, or plain text."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from mcp.types import CallToolResult, ImageContent, TextContent

from hybridmcp.capabilities.gate import Gate, PrivacyDecision, _answer_size
from hybridmcp.capabilities.mcp_pool import SessionPool
from hybridmcp.capabilities.registry import Provider, answer_to_judge, extract_result
from hybridmcp.config import ToolOutputSettings
from hybridmcp.errors import AnswerTooLarge, ProviderError, RequestError, ToolError
from hybridmcp.policy.blame import says_input_is_wrong
from hybridmcp.policy.output import compile_patterns, is_error_answer, output_problem

PNG = base64.b64encode(b"\x89PNG fake").decode()


def provider(result_path: str | None) -> Provider:
    return Provider(
        id="mcp:s/t", skill="s.t", side="external", quality=0.9, expected_latency_ms=10,
        cost_per_call=0.0, clearance="public", timeout_ms=1000, server="s", tool="t",
        result_path=result_path,
    )  # fmt: skip


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)  # floats include NaN and infinities: json.dumps writes them as NaN / Infinity
error_objects = st.fixed_dictionaries(
    {"error": st.text(max_size=20)}, optional={"code": st.integers(), "message": st.text()}
)
texts = st.one_of(
    json_values.map(json.dumps),
    error_objects.map(json.dumps),
    st.sampled_from(
        [
            "",
            "null",
            "Error: no such zone",
            "Database error: locked",
            'Traceback (most recent call last):\n  File "x"',
            "NaN",
            "[1, Infinity]",
            '{"error": NaN}',
            "1e999",
            '"Error: quoted"',
            '{"timezone": "UTC", "datetime": "2026-01-01T00:00:00+00:00", "is_dst": false}',
        ]
    ),
    st.text(max_size=40),
)


def apart(call: Any) -> tuple[str, Any]:
    """An outcome: the value, or the error raised (its kind and message)."""
    try:
        return "value", call()
    except (ProviderError, RequestError, AnswerTooLarge) as err:
        return "error", (type(err).__name__, str(err))


def same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN (a value read twice holds two NaN objects)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=400, deadline=None)
@given(
    text=texts,
    image=st.booleans(),
    path=st.sampled_from([None, "$", "$.error", "$[0]"]),
    max_bytes=st.sampled_from([1_000_000, 30]),
)
def test_an_answer_read_once_reads_as_checked_and_read_apart(
    text: str, image: bool, path: str | None, max_bytes: int
) -> None:
    content: list[Any] = [TextContent(type="text", text=text)]
    if image:
        content.append(ImageContent(type="image", data=PNG, mimeType="image/png"))
    result = CallToolResult(content=content)
    settings_ = ToolOutputSettings(max_bytes=max_bytes)
    gate = Gate(SessionPool({}), output=settings_)
    p = provider(path)
    size = _answer_size(result)
    decision = PrivacyDecision("allow", "within clearance", {})

    def apart_read() -> Any:
        judged, structured = answer_to_judge(result, None)
        problem = output_problem(
            judged,
            structured,
            size,
            max_bytes=settings_.max_bytes,
            error_patterns=compile_patterns(settings_.error_patterns),
        )
        if problem and is_error_answer(problem):  # a tool error in disguise, blamed as one
            if says_input_is_wrong(judged):
                raise RequestError(f"{p.id} rejected the request: {problem}")
            raise ToolError(f"{p.id} returned an error: {problem}")
        if problem:  # too large: the coordinator's limit
            raise AnswerTooLarge(f"{p.id}: {problem}")
        return extract_result(p, result, output_schema=None)

    once = apart(lambda: gate._read(p, result, size, decision, None))
    twice = apart(apart_read)
    assert once[0] == twice[0]
    assert same(once[1], twice[1])

"""The sizes the gate records and limits answers by (``bytes_received``, ``tool_output.max_bytes``)
are the JSON sizes of the answer's parts as dumped, whatever shortcut measures them."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from mcp.types import (
    Annotations,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    TextContent,
    TextResourceContents,
)

from hybridmcp.capabilities.gate import _answer_size, _part_size, _size


def _dumped_size(value: Any) -> int:
    """The size as it was always measured: the encoded JSON text of the dump."""
    return len(json.dumps(value, default=str, separators=(",", ":")).encode())


texts = st.text(max_size=200) | st.sampled_from(["", '{"a": 1}', "é\u2028\ud800", "\x00\n\t\"\\"])


@settings(max_examples=300, deadline=None)
@given(text=texts, annotated=st.booleans(), meta=st.booleans(), extra=st.booleans())
def test_a_text_parts_size_is_its_dumps(
    text: str, annotated: bool, meta: bool, extra: bool
) -> None:
    fields: dict[str, Any] = {"type": "text", "text": text}
    if annotated:
        fields["annotations"] = Annotations(priority=0.5)
    if meta:
        fields["_meta"] = {"k": text}
    if extra:
        fields["extra_field"] = [text, 1]
    part = TextContent(**fields)
    assert _part_size(part) == _dumped_size(part.model_dump())


@settings(max_examples=100, deadline=None)
@given(texts=st.lists(texts, max_size=4), structured=st.none() | st.dictionaries(texts, texts))
def test_an_answers_size_is_the_sum_of_its_dumps(
    texts: list[str], structured: dict[str, str] | None
) -> None:
    parts: list[Any] = [TextContent(type="text", text=t) for t in texts]
    parts.append(ImageContent(type="image", data="aGk=", mimeType="image/png"))
    parts.append(
        EmbeddedResource(
            type="resource",
            resource=TextResourceContents(uri="file:///x", text="".join(texts)),
        )
    )
    result = CallToolResult(content=parts, structuredContent=structured)
    expected = sum(_dumped_size(p.model_dump()) for p in parts)
    if structured is not None:
        expected += _dumped_size(structured)
    assert _answer_size(result) == expected
    assert _size(structured) == _dumped_size(structured)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(value=json_values | st.tuples(texts, st.integers()))
def test_the_gates_json_text_is_json_dumps(value: Any) -> None:
    from hybridmcp.capabilities.gate import _json

    assert _json(value) == json.dumps(value, default=str, separators=(",", ":"))
    assert _json({"at": object}) == json.dumps({"at": object}, default=str, separators=(",", ":"))

"""Every shape an MCP tool answers in, read as a JSON value (pure: hand-built CallToolResults).

The property tests wrap random JSON values every way a server can (structured content,
FastMCP's ``{"result": ...}`` wrapper as FastMCP itself renders it, JSON text, several text
parts) and check that each reads back as the same value.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from mcp.types import (
    AudioContent,
    BlobResourceContents,
    CallToolResult,
    ContentBlock,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
)
from pydantic import AnyUrl

from hybridmcp.capabilities.registry import (
    FASTMCP_WRAP_MARKER,
    NOT_JSON,
    PYTHON_LITERAL_MAX_CHARS,
    Provider,
    answer_to_judge,
    extract_result,
    python_literal,
)
from hybridmcp.config import DEFAULT_ERROR_PATTERNS
from hybridmcp.errors import ProviderError
from hybridmcp.policy.output import compile_patterns, output_problem

PNG = base64.b64encode(b"\x89PNG fake").decode()


def provider(result_path: str | None = None) -> Provider:
    return Provider(
        id="mcp:s/t",
        skill="s.t",
        side="external",
        quality=0.9,
        expected_latency_ms=10,
        cost_per_call=0.0,
        clearance="public",
        timeout_ms=1000,
        server="s",
        tool="t",
        result_path=result_path,
    )


def text(t: str) -> TextContent:
    return TextContent(type="text", text=t)


def answer(*content: ContentBlock, structured: Any = None, error: bool = False) -> CallToolResult:
    return CallToolResult(content=list(content), structuredContent=structured, isError=error)


def read(result: CallToolResult, path: str | None = None, **kw: Any) -> Any:
    return extract_result(provider(path), result, **kw)


TIME = {"timezone": "UTC", "datetime": "2026-01-01T00:00:00+00:00", "is_dst": False}
TIME_TEXT = json.dumps(TIME, indent=2)


# -- servers the project already reads --------------------------------------------------------


def test_mcp_server_time_json_text_without_structured_content() -> None:
    assert read(answer(text(TIME_TEXT))) == TIME


def test_fault_server_json_text_and_the_same_object_structured() -> None:
    assert read(answer(text(TIME_TEXT), structured=TIME)) == TIME


def test_plain_text_stays_text_and_nan_is_not_json() -> None:
    assert read(answer(text("Echo: hi"))) == "Echo: hi"
    assert read(answer(text("NaN"))) == "NaN"


def test_a_tool_error_is_a_provider_error() -> None:
    with pytest.raises(ProviderError, match="returned an error: Invalid timezone"):
        read(answer(text("Invalid timezone"), error=True))
    # told only in structured content: what it says is that content
    with pytest.raises(ProviderError, match='returned an error: {"result": "x"}'):
        read(answer(structured={"result": "x"}, error=True))
    with pytest.raises(ProviderError, match=r"\(no message\)"):
        read(answer(error=True))


# -- FastMCP's {"result": ...} wrapper -----------------------------------------------------


def test_a_str_of_json_text_is_the_object_it_holds() -> None:
    """The case that opened circuits: ``time.now`` served by a FastMCP tool returning a str."""
    assert read(answer(text(TIME_TEXT), structured={"result": TIME_TEXT})) == TIME
    assert read(answer(text("[1, 2]"), structured={"result": "[1, 2]"})) == [1, 2]


def test_a_str_of_other_text_stays_the_text_the_tool_returned() -> None:
    assert read(answer(text("hello"), structured={"result": "hello"})) == "hello"
    assert read(answer(text("42"), structured={"result": "42"})) == "42"


def test_a_result_path_applies_to_the_wrapped_json_text() -> None:
    assert read(answer(text("42"), structured={"result": "42"}), "$") == 42
    wrapped = answer(text(TIME_TEXT), structured={"result": TIME_TEXT})
    assert read(wrapped, "$.timezone") == "UTC"


def test_wrapped_primitives_lists_and_none() -> None:
    assert read(answer(text("42"), structured={"result": 42})) == 42
    several = answer(text("2"), text("3"), structured={"result": [2, 3]})
    assert read(several) == [2, 3]
    assert read(answer(text("2"), structured={"result": [2]})) == [2]
    assert read(answer(structured={"result": []})) == []
    assert read(answer(structured={"result": None})) is None


def test_an_object_with_a_result_field_is_not_a_wrapper() -> None:
    """A model or dict with one ``result`` field: its text content reads as the whole object."""
    obj = {"result": "done"}
    assert read(answer(text(json.dumps(obj, indent=2)), structured=obj)) == obj


def test_the_fastmcp_schema_marker_settles_wrapping() -> None:
    inner = {"result": 1}
    wrapped = answer(text(json.dumps({"result": inner})), structured={"result": inner})
    assert read(wrapped) == wrapped.structuredContent  # the text reads as the whole object
    assert read(wrapped, output_schema={FASTMCP_WRAP_MARKER: True}) == inner


# -- content that is not text --------------------------------------------------------------


def test_image_and_audio_are_typed_values() -> None:
    image = ImageContent(type="image", data=PNG, mimeType="image/png")
    assert read(answer(image)) == {"type": "image", "mime_type": "image/png", "data": PNG}
    audio = AudioContent(type="audio", data="UklGRg==", mimeType="audio/wav")
    assert read(answer(audio)) == {"type": "audio", "mime_type": "audio/wav", "data": "UklGRg=="}


def test_resource_links_and_embedded_resources() -> None:
    link = ResourceLink(
        type="resource_link", uri=AnyUrl("file:///r.csv"), name="r.csv", mimeType="text/csv"
    )
    assert read(answer(link)) == {
        "type": "resource_link",
        "uri": "file:///r.csv",
        "name": "r.csv",
        "mime_type": "text/csv",
    }
    doc = TextResourceContents(uri=AnyUrl("demo://doc"), mimeType="text/plain", text="hi")
    assert read(answer(EmbeddedResource(type="resource", resource=doc))) == {
        "type": "resource",
        "uri": "demo://doc",
        "mime_type": "text/plain",
        "text": "hi",
    }
    blob = BlobResourceContents(uri=AnyUrl("demo://b"), mimeType=None, blob="AAE=")
    assert read(answer(EmbeddedResource(type="resource", resource=blob))) == {
        "type": "resource",
        "uri": "demo://b",
        "mime_type": None,
        "blob": "AAE=",
    }


def test_several_parts_are_a_list_in_order() -> None:
    assert read(answer(text("first"), text('{"n": 2}'))) == ["first", {"n": 2}]
    image = ImageContent(type="image", data=PNG, mimeType="image/png")
    assert read(answer(text("caption"), image)) == [
        "caption",
        {"type": "image", "mime_type": "image/png", "data": PNG},
    ]
    assert read(answer()) is None


def test_structured_content_keeps_the_parts_that_are_not_text() -> None:
    image = ImageContent(type="image", data=PNG, mimeType="image/png")
    value = read(answer(text('{"t": 1}'), image, structured={"t": 1}))
    assert value == [{"t": 1}, {"type": "image", "mime_type": "image/png", "data": PNG}]


# -- what the gate's untrusted-output check judges -----------------------------------------

PATTERNS = compile_patterns(DEFAULT_ERROR_PATTERNS)


def problem(result: CallToolResult) -> str | None:
    text_, structured = answer_to_judge(result)
    return output_problem(text_, structured, 10, max_bytes=1000, error_patterns=PATTERNS)


def test_a_wrapped_error_string_is_still_an_error_in_disguise() -> None:
    msg = "Error: database is locked"
    found = problem(answer(text(msg), structured={"result": msg}))
    assert found is not None and "error in disguise" in found
    err = '{"error": "not found"}'
    assert problem(answer(text(err), structured={"result": err})) == "the answer is an error object"


@pytest.mark.parametrize(
    "result",
    [
        answer(ImageContent(type="image", data=PNG, mimeType="image/png")),
        answer(text("42"), structured={"result": 42}),
        answer(text("2"), text("3"), structured={"result": [2, 3]}),
        answer(text(TIME_TEXT), structured={"result": TIME_TEXT}),
        answer(text(TIME_TEXT), structured=TIME),
        answer(structured={"result": None}),
    ],
)
def test_the_new_shapes_do_not_misfire(result: CallToolResult) -> None:
    assert problem(result) is None


# -- properties: every wrapping reads back as the value ------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def fastmcp_text_parts(value: Any) -> list[ContentBlock]:
    """The text content FastMCP sends beside a return value (``_convert_to_content``)."""
    if value is None:
        return []
    if isinstance(value, list):
        return [part for item in value for part in fastmcp_text_parts(item)]
    return [text(value if isinstance(value, str) else json.dumps(value, indent=2))]


def parsed(s: str) -> Any:
    """``s`` as JSON, or ``...`` when it is not JSON."""
    try:
        return json.loads(s)
    except ValueError:
        return ...


def parses_to_container(s: str) -> bool:
    return isinstance(parsed(s), dict | list)


@given(json_values)
def test_structured_content_round_trips(value: Any) -> None:
    """Objects are sent as they are; anything else in FastMCP's wrapper, with its rendering."""
    if isinstance(value, dict):
        result = answer(text(json.dumps(value, indent=2)), structured=value)
    else:
        assume(not (isinstance(value, str) and parses_to_container(value)))
        result = answer(*fastmcp_text_parts(value), structured={"result": value})
    assert read(result) == value


@given(json_values.filter(lambda v: isinstance(v, dict | list)))
def test_fastmcp_wrapped_json_text_round_trips(value: Any) -> None:
    doc = json.dumps(value)
    assert read(answer(text(doc), structured={"result": doc})) == value


@given(json_values)
def test_json_text_round_trips(value: Any) -> None:
    assert read(answer(text(json.dumps(value, indent=2)))) == value


@given(st.text().filter(lambda s: parsed(s) is ... and python_literal(s) is NOT_JSON))
def test_plain_text_round_trips(value: str) -> None:
    assert read(answer(text(value))) == value


finite_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=10,
)


@given(finite_json.filter(lambda v: isinstance(v, dict | list)))
def test_a_python_str_of_rows_reads_as_the_rows(value: Any) -> None:
    """``mcp-server-sqlite`` answers ``str(rows)``: the rows, as a text part or as the ``str``
    a FastMCP tool returned."""
    assert read(answer(text(str(value)))) == value
    assert read(answer(text(str(value)), structured={"result": str(value)})) == value


@pytest.mark.parametrize(
    "value",
    [
        "[citation needed]",
        "{x}",
        "[1, 2] and more",
        "{1, 2}",  # a set is not JSON
        "[b'raw']",
        "{1: 'a'}",  # a key that is not a string
        "[1+2j]",
        "[__import__('os')]",  # never evaluated
        "(1, 2)",
        "[" * 5000 + "]" * 5000,  # nested deeper than JSON's decoder or Python's parser go
        "[" + "0, " * (PYTHON_LITERAL_MAX_CHARS // 3) + "]",
    ],
)
def test_other_texts_that_look_like_python_stay_text(value: str) -> None:
    assert read(answer(text(value))) == value


@given(st.lists(json_values, min_size=2, max_size=5))
def test_several_text_parts_round_trip(value: list[Any]) -> None:
    assert read(answer(*(text(json.dumps(item)) for item in value))) == value


def _json_or_text_as_json_loads(text: str) -> Any:
    """What a text part reads as, by ``json.loads`` itself."""

    def refuse(constant: str) -> Any:
        raise ValueError(constant)

    try:
        return json.loads(text, parse_constant=refuse)
    except ValueError:
        return text


json_texts = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
).map(json.dumps)


@given(text=st.text(max_size=40) | json_texts | st.sampled_from(["\ufeff{}", " 1 ", "NaN", "[1,"]))
def test_a_texts_json_value_is_what_json_loads_reads(text: str) -> None:
    from hybridmcp.capabilities.registry import NOT_JSON, json_value

    value = json_value(text)  # a text part's JSON reading (text parts: _text_value)
    got, expected = text if value is NOT_JSON else value, _json_or_text_as_json_loads(text)
    assert json.dumps(got) == json.dumps(expected) and type(got) is type(expected)


@pytest.mark.parametrize(
    ("content", "structured", "expected"),
    [
        # FastMCP's wrapper: the content is the bare value's rendering
        ([text("5")], {"result": 5}, 5),
        ([text("1.0")], {"result": 1.0}, 1.0),
        ([text("true")], {"result": True}, True),
        ([text("hi")], {"result": "hi"}, "hi"),
        ([], {"result": None}, None),
        # another server's object with a lone ``result`` field, beside a sentence or nothing
        ([text("The sum of 2 and 3 is 5.")], {"result": 5}, {"result": 5}),
        ([text("1")], {"result": True}, {"result": True}),
        ([text("Result: hi")], {"result": "hi"}, {"result": "hi"}),
        ([], {"result": 5}, {"result": 5}),
        ([text("no value")], {"result": None}, {"result": None}),
        ([text("5"), text("5")], {"result": 5}, {"result": 5}),
    ],
)
def test_a_lone_result_field_is_a_wrapper_only_around_its_rendering(
    content: list[Any], structured: Any, expected: Any
) -> None:
    got = read(answer(*content, structured=structured))
    assert got == expected and type(got) is type(expected)

"""The form of an answer: a JSON schema from a signature's output fields, and its grammar.

Every LM step asks for one JSON object whose keys are the signature's output fields, in order.
A field typed ``Literal[...]`` becomes an ``enum`` (the arbitrator's decision, the
synchronizer's verdict), a free-text field a string of at most ``text_chars`` characters, and a
caller may put a schema of its own on a field (the planner's request list). The schema goes to
an OpenAI-compatible server as ``response_format``; for the in-process model it is compiled to
a llama.cpp GBNF grammar, so the model *cannot* produce anything but a well-formed answer.

llama-cpp-python's own schema compiler lets raw control characters (a newline, a tab) into
strings, which strict JSON refuses; :func:`schema_grammar` closes that gap.

The answer budget (``max_tokens``) is sized from the schema rather than fixed: enough for every
string at its maximum length at two characters a token, the keys and the punctuation.
"""

from __future__ import annotations

import json
import math
import re
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dspy

__all__ = [
    "TEXT_CHARS",
    "answer_budget",
    "output_schema",
    "schema_grammar",
]

TEXT_CHARS = 200
"""Longest free-text output field, in characters: a few sentences, what a record keeps."""

_CHARS_PER_TOKEN = 2.0  # pessimistic: English runs near 4, JSON-escaped or numeric text lower
_UNBOUNDED_STRING_TOKENS = 64  # a string the schema does not bound (a planner's argument)
_UNBOUNDED_ITEMS = 8
_OBJECT_TOKENS = 4  # braces, commas, spaces
_BOUNDED_STRING = re.compile(r'"\\"" ((?:char|[ ()?])*char(?:[ )?])*) "\\""')
_CHAR_RULE = 'char ::= [^"\\\\] |'
_STRICT_CHAR_RULE = 'char ::= [^"\\\\\\x00-\\x1f\\x7f] |'


def _field_schema(annotation: Any, text_chars: int) -> dict[str, Any]:
    if typing.get_origin(annotation) is typing.Literal:
        return {"type": "string", "enum": [str(a) for a in typing.get_args(annotation)]}
    if annotation is bool:
        return {"type": "boolean"}
    if annotation is int:
        return {"type": "integer"}
    if annotation is float:
        return {"type": "number"}
    return {"type": "string", "minLength": 1, "maxLength": text_chars}


def output_schema(
    signature: type[dspy.Signature],
    *,
    text_chars: int = TEXT_CHARS,
    fields: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The JSON schema of a signature's answer: one object, every output field required.

    ``fields`` overrides the schema of named output fields (their value then comes back as
    JSON text when the field is typed ``str``).
    """
    overrides = dict(fields or {})
    properties = {
        name: dict(overrides[name])
        if name in overrides
        else _field_schema(field.annotation, text_chars)
        for name, field in signature.output_fields.items()
    }
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def schema_grammar(schema: Mapping[str, Any]) -> str:
    """A llama.cpp GBNF grammar for ``schema`` whose strings hold no control characters.

    Uses llama-cpp-python's compiler (the local-model extra), then narrows its ``char`` rule:
    a control character inside a string must be written escaped, as JSON requires.
    """
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    gbnf = json_schema_to_gbnf(json.dumps(schema))
    if _CHAR_RULE not in gbnf:  # a compiler whose output we do not recognize: refuse, loudly
        raise ValueError("unexpected grammar from llama-cpp-python: no 'char' rule to narrow")
    gbnf = _BOUNDED_STRING.sub(_repeat, gbnf)
    return str(gbnf.replace(_CHAR_RULE, _STRICT_CHAR_RULE))


def _repeat(match: re.Match[str]) -> str:
    """``char (char (char)?)?`` as ``char{1,3}``: the compiler's nesting for a length bound is
    a grammar llama.cpp walks noticeably slower (measured 0.54 s against 0.30 s a call)."""
    body = match.group(1)
    head = body.split("(", 1)[0]
    low, high = head.count("char"), body.count("char")
    return f'"\\"" char{{{low},{high}}} "\\""'


def _tokens(schema: Mapping[str, Any]) -> int:
    if "enum" in schema:
        return max((len(json.dumps(v)) for v in schema["enum"]), default=1)
    if "const" in schema:
        return len(json.dumps(schema["const"]))
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return max((_tokens(s) for s in schema[key]), default=1)
    kind = schema.get("type")
    if kind == "string":
        limit = schema.get("maxLength")
        return (
            math.ceil(limit / _CHARS_PER_TOKEN) + 2
            if isinstance(limit, int)
            else _UNBOUNDED_STRING_TOKENS
        )
    if kind == "array":
        items = schema.get("maxItems", _UNBOUNDED_ITEMS)
        return _OBJECT_TOKENS + int(items) * (_tokens(schema.get("items") or {}) + 1)
    if kind == "object":
        props = schema.get("properties") or {}
        if not props:
            return _UNBOUNDED_STRING_TOKENS
        return _OBJECT_TOKENS + sum(
            math.ceil(len(name) / _CHARS_PER_TOKEN) + 3 + _tokens(sub)
            for name, sub in props.items()
        )
    return 8  # numbers, booleans, null


def answer_budget(schema: Mapping[str, Any]) -> int:
    """``max_tokens`` for an answer of this schema: its longest form, pessimistically counted."""
    return _tokens(schema) + 8

"""Hypothesis strategies for the privacy properties: a sensitive value of every kind, cut at
any position across two adjacent string fields (or whole), with text around it, nested in
lists and dicts. Shared by the pure-function tests and the recording-server tests."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from hybridmcp.testing.canary import SHAPE_KINDS, shaped_value, split_fields

SURROUNDINGS: tuple[tuple[str, str], ...] = (
    ("", ""),
    ("Please contact ", " about the invoice."),
    ("2024-05-01 12:00:01 INFO user_ref=", " action=login status=ok"),
    ("Hi team,\nthe value is ", "\nRegards"),
    ('{"note": "', '"}'),
    ("<td>", "</td>"),
    ("* ", ";"),
    ("value: [", "]"),
)
NESTINGS = ("flat", "list", "dict_in_list", "list_in_dict", "deep")


@dataclass(frozen=True)
class PrivacyCase:
    kind: str
    secret: str
    args: dict[str, Any]
    background: tuple[str, ...]
    """Text around the secret, which may share fragments with it by chance."""


def _nest(fields: list[str], nesting: str) -> dict[str, Any]:
    if nesting == "flat":
        return {"part_a": fields[0], "part_b": fields[1]} if len(fields) == 2 else {"v": fields[0]}
    if nesting == "list":
        return {"lines": ["header", *fields, "footer"]}
    if nesting == "dict_in_list":
        return {"rows": [{"n": 1}, {f"f{i}": f for i, f in enumerate(fields)}]}
    if nesting == "list_in_dict":
        return {"doc": {"title": "notes", "body": list(fields)}}
    return {"a": {"b": [{"c": {"d": list(fields)}}]}}


@st.composite
def privacy_cases(draw: st.DrawFn, kinds: tuple[str, ...] = SHAPE_KINDS) -> PrivacyCase:
    kind = draw(st.sampled_from(kinds))
    text, secret = shaped_value(kind, random.Random(draw(st.integers(0, 2**32))))
    before, after = draw(st.sampled_from(SURROUNDINGS))
    nesting = draw(st.sampled_from(NESTINGS))
    if draw(st.booleans()):
        cut = draw(st.integers(1, len(text) - 1))
        fields = list(split_fields(text, cut, before, after))
    else:
        fields = [before + text + after]
    background = (before, after, "header", "footer", "notes")
    return PrivacyCase(kind, secret, _nest(fields, nesting), background)

"""Values cut in three or four pieces: alternating between dict keys and values, or with
middle pieces longer than 24 characters. Always found; under ``redact`` no fragment of 6 or
more characters is left and the answer is restored.

Pure scanning stands in for the gate (as in tests/unit/test_privacy_splits.py);
tests/integration/test_privacy_gate_gaps.py sends such values through the gate to recording
MCP servers.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hybridmcp.policy import privacy as scanner
from hybridmcp.testing.canary import SHAPE_KINDS, fragments_leaked, shaped_value
from tests.privacy_cases import BENIGN_TEXTS, FILLERS, PrivacyCase, _wrap

PUBLIC = scanner.Sensitivity.public
SETTINGS = settings(
    deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True, database=None
)
LONG_KINDS = ("jwt", "github_token", "openai_key", "slack_token", "email", "aws_key", "iban")
"""Kinds whose values are long enough for a middle piece of more than 24 characters."""


@pytest.fixture(scope="module", autouse=True)
def _engines() -> None:
    scanner.engines_ready()


def _pieces(draw: st.DrawFn, text: str, n: int, long_middle: bool = False) -> list[str]:
    if long_middle:
        first = draw(st.integers(1, max(1, len(text) - 27)))
        second = draw(st.integers(min(len(text) - 1, first + 25), len(text) - 1))
        cuts = [first, second]
        if n == 4 and second < len(text) - 1:
            cuts.append(draw(st.integers(second + 1, len(text) - 1)))
    else:
        cuts = sorted(draw(st.sets(st.integers(1, len(text) - 1), min_size=n - 1, max_size=n - 1)))
    return [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]


ALTERNATING = ("k-v-k", "v-k-v", "k-v-k-v", "v-k-v-k", "k-k-v", "k-v-v")


def _place(draw: st.DrawFn, shape: str, pieces: list[str]) -> Any:
    filler = draw(st.sampled_from(FILLERS))
    p = pieces
    if shape == "k-v-k":
        return {p[0]: p[1], p[2]: filler}
    if shape == "v-k-v":
        return {"note": p[0], p[1]: p[2]}
    if shape == "k-v-k-v":
        return {p[0]: p[1], p[2]: p[3]}
    if shape == "v-k-v-k":
        return {"note": p[0], p[1]: p[2], p[3]: filler}
    if shape == "k-k-v":
        return {p[0]: {p[1]: p[2]}}
    return {p[0]: [p[1], p[2]]}


@st.composite
def alternating_cases(draw: st.DrawFn) -> PrivacyCase:
    kind = draw(st.sampled_from(SHAPE_KINDS))
    text, secret = shaped_value(kind, random.Random(draw(st.integers(0, 2**32))))
    shape = draw(st.sampled_from(ALTERNATING))
    n = 4 if shape.count("-") == 3 else 3
    pieces = _pieces(draw, text, n)
    if len(pieces) < n:
        pieces.append("")
    assume(len(set(pieces)) == len(pieces))  # (two equal keys would be one)
    args = _wrap(draw, _place(draw, shape, pieces), draw(st.integers(0, 3)))
    return PrivacyCase(f"{kind}/{shape}", secret, {"data": args}, ("note", *BENIGN_TEXTS))


@st.composite
def long_middle_cases(draw: st.DrawFn) -> PrivacyCase:
    kind = draw(st.sampled_from(LONG_KINDS))
    text, secret = shaped_value(kind, random.Random(draw(st.integers(0, 2**32))))
    if len(text) < 30:
        text = text + " " + text  # (an IBAN in groups is 27 to 42 characters)
        secret = text
    n = draw(st.sampled_from((3, 4)))
    pieces = _pieces(draw, text, n, long_middle=True)
    n = len(pieces)
    assume(len(set(pieces)) == n)
    where = draw(st.sampled_from(("fields", "list", "alternating")))
    if where == "fields":
        obj: Any = {f"f{i}": piece for i, piece in enumerate(pieces)}
    elif where == "list":
        obj = ["header", *pieces, "footer"]
    else:
        obj = {pieces[0]: pieces[1], **({pieces[2]: pieces[3]} if n == 4 else {pieces[2]: 1})}
    args = _wrap(draw, obj, draw(st.integers(0, 3)))
    return PrivacyCase(
        f"{kind}/{where}/{n}", secret, {"data": args}, ("header", "footer", *BENIGN_TEXTS)
    )


def _check(case: PrivacyCase) -> None:
    report = scanner.scan(case.args)
    assert report.level > PUBLIC, (case.kind, case.args)
    red = scanner.redact(case.args, report)
    assert scanner.scan(red.value).level == PUBLIC, (case.kind, red.value)
    assert scanner.restore(red.value, red.vault) == case.args
    leaked = fragments_leaked(red.value, case.secret, background=case.background)
    assert leaked == [], (case.kind, case.args, red.value)


@SETTINGS
@given(case=alternating_cases())
def test_a_value_in_pieces_alternating_keys_and_values_is_found_and_replaced(
    case: PrivacyCase,
) -> None:
    _check(case)


@SETTINGS
@given(case=long_middle_cases())
def test_a_value_in_pieces_with_long_middle_parts_is_found_and_replaced(case: PrivacyCase) -> None:
    _check(case)

"""Values cut across dict keys and values, digits given as numbers, and values cut anywhere in
long requests: always found, and under ``redact`` nothing of them remains.

The pure scanning functions stand in for the gate (see tests/unit/test_privacy_forms.py);
tests/integration/test_privacy_properties.py sends the same cases through the gate to
recording MCP servers.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridmcp.policy import privacy as scanner
from hybridmcp.policy.privacy import scanning
from hybridmcp.testing.canary import benign_corpus, fragments_leaked, strings_in
from tests.privacy_cases import (
    SCAN_SETTINGS,
    NumberCase,
    PrivacyCase,
    crowded_cases,
    keyed_cases,
    number_cases,
)

PUBLIC = scanner.Sensitivity.public
SETTINGS = SCAN_SETTINGS


pytestmark = pytest.mark.usefixtures("privacy_engines")


def _redacted(args: object) -> object:
    report = scanner.scan(args)
    assert report.level > PUBLIC, args  # refuse and route_internal hold it back
    red = scanner.redact(args, report)
    assert scanner.scan(red.value).level == PUBLIC  # the gate refuses otherwise
    assert scanner.restore(red.value, red.vault) == args
    return red.value


@SETTINGS
@given(case=keyed_cases())
def test_a_value_cut_between_keys_and_values_is_found_and_replaced(case: PrivacyCase) -> None:
    out = _redacted(case.args)
    assert fragments_leaked(out, case.secret, background=case.background) == [], (
        case.kind,
        case.args,
        out,
    )


def _number_leaks(case: NumberCase, out: object) -> list[str]:
    if case.text:
        return fragments_leaked(out, case.text)
    pieces = set(case.pieces)
    return [s for s in strings_in(out) if s in pieces]


@SETTINGS
@given(case=number_cases())
def test_a_card_given_as_numbers_or_on_lines_is_found_and_replaced(case: NumberCase) -> None:
    out = _redacted(case.args)
    assert _number_leaks(case, out) == [], (case.kind, case.args, out)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
    database=None,
)
@given(case=crowded_cases())
def test_a_value_cut_anywhere_in_a_long_request_is_found(case: PrivacyCase) -> None:
    out = _redacted(case.args)
    assert fragments_leaked(out, case.secret, background=case.background) == [], case.kind


@pytest.mark.parametrize(
    ("args", "kept"),
    [
        ({"alice.smi": "th@example.com"}, "alice.smi"),
        ({"note": "alice.smi", "th@example.com": 1}, "alice.smi"),
        ({"AKIAIOSF": 1, "ODNN7EXAMPLE": 2}, "ODNN7EXAMPLE"),
        ({"4111 1111": "1111 1111"}, "1111 1111"),
        ({"card": [4111, 1111, 1111, 1111]}, 1111),
        ({"card": [4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]}, 4),
        ({"card": list("4111111111111111")}, "4"),
        ({"card": "4111\n1111\n1111\n1111"}, "4111\n1111\n1111\n1111"),
        ({"to": list("alice.smith@example.com")}, "@"),
    ],
    ids=[
        "key-value",
        "value-key",
        "over-keys",
        "card-key-value",
        "card-ints",
        "card-digits",
        "card-digit-strings",
        "card-lines",
        "email-characters",
    ],
)
def test_the_documented_shapes(args: dict, kept: object) -> None:
    """Each shape the privacy documentation named as a gap until now."""
    out = _redacted(args)
    assert kept not in list(strings_in(out)) + [
        v for v in _scalars(out) if not isinstance(v, str)
    ], out


def _scalars(value: object) -> list[object]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _scalars(v)]
    if isinstance(value, list):
        return [x for v in value for x in _scalars(v)]
    return [value]


@pytest.mark.parametrize(
    "args",
    [
        {"timezone": "Europe/Paris"},
        {"source_timezone": "America/New_York", "time": "14:30", "target_timezone": "Asia/Tokyo"},
        {"years": [2021, 2022, 2023, 2024], "ports": [8080, 8443, 9090]},
        {"rows": [12, 15, 18, 22, 31, 40], "digits": [3, 1, 4, 1, 5, 9, 2, 6]},
        {"tags": ["a", "bb", "ccc", "ok", "no"], "q": "weather in Paris"},
    ],
)
def test_public_requests_stay_public(args: dict) -> None:
    assert scanner.scan(args).findings == []


@pytest.mark.parametrize(
    "args",
    [
        {"email": "bob.smith@example.com"},
        {"to": "bob.smith@example.com", "cc": "carol@acme.io", "subject": "hi"},
        {"recipient": {"address": "bob.smith@example.com"}},
        {"customer_email": "bob.smith@example.com", "phone": "+1 415 867 5309"},
    ],
)
def test_a_field_name_before_a_value_is_not_taken_into_it(args: dict) -> None:
    """The key naming a field stays (a renamed key breaks the tool's call); its value goes."""
    out = _redacted(args)

    def keys(value: object) -> set[str]:
        if isinstance(value, dict):
            return set(value) | {k for v in value.values() for k in keys(v)}
        return set()

    assert keys(out) == keys(args)


def test_benign_corpus_with_keys_and_numbers_stays_clean() -> None:
    flagged = [a for a in benign_corpus(600, seed=41) if scanner.scan(a).level != PUBLIC]
    assert len(flagged) <= 6, flagged  # 1%: Luhn-valid number lists of a card's shape


def test_joining_covers_the_whole_request_in_linear_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past the first 512 strings too, and with work in proportion to the request's size:
    the number of joined windows is counted (no clock)."""
    windows = 0
    real = scanning._scan_window

    def counting(*args: object, **kwargs: object) -> None:
        nonlocal windows
        windows += 1
        real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(scanning, "_scan_window", counting)
    counts = []
    for n in (1000, 4000):
        rng = random.Random(n)
        windows = 0
        lines = [f"entry {i} {rng.choice(['ok', 'late', 'moved'])} x{i * 7919}" for i in range(n)]
        assert scanner.scan({"lines": lines}).level == PUBLIC
        counts.append(windows)
    assert counts[0] >= 1000 and counts[1] <= 4.5 * counts[0], counts
    for piece in ("pay with 4111 1111", "1111 1111 today"):
        assert scanner.scan({"lines": [piece]}).level == PUBLIC
    split = {"lines": [*lines[:3500], "pay with 4111 1111", "1111 1111 today", *lines[3500:]]}
    assert scanner.scan(split).level > PUBLIC


def test_redaction_follows_the_paths_the_scan_gave() -> None:
    """A key masked on a finding's path is masked in redaction even without a finding of its
    own (the scan masks every key a walk found a piece in); a finding in a key whose path
    names it unmasked still replaces the key."""
    args = {"k": {"inner": "mail alice@example.com"}, "alice.smi": 1}
    below_masked = scanner.SensitivityReport(
        level=scanner.Sensitivity.confidential,
        findings=[
            scanner.Finding(
                path="/~k0/inner", entity_type="EMAIL_ADDRESS", start=5, end=22, score=1.0,
                source="presidio",
            )
        ],
    )  # fmt: skip
    out = scanner.redact(args, below_masked).value
    assert out == {"k": {"inner": "mail <EMAIL_1>"}, "alice.smi": 1}
    unmasked_key = scanner.SensitivityReport(
        level=scanner.Sensitivity.confidential,
        findings=[
            scanner.Finding(
                path="/alice.smi", entity_type="EMAIL_ADDRESS", start=0, end=9, score=1.0,
                source="presidio", in_key=True,
            )
        ],
    )  # fmt: skip
    assert "alice.smi" not in scanner.redact(args, unmasked_key).value


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(
    text=st.text(max_size=40)
    | st.builds(
        lambda pre, word, post: pre + word + post,
        st.text(max_size=8),
        st.sampled_from(
            [
                "PASSWORD", "Passwd", "pa\u017f\u017fword", "API_KEY", "apiKEY", "\u212aey",
                "SeCrEt", "PWD", "Contrase\u00d1a", "CONTRASENA", "db_pass", "priv_key",
            ]
        ),
        st.text(max_size=8),
    )
)  # fmt: skip
def test_the_keyword_precheck_never_hides_a_hint(text: str) -> None:
    """The cheap literal check before the keyword rules: wherever the case-insensitive hint
    search finds a keyword, the check lets the rules run."""
    from hybridmcp.policy.privacy import detection

    if detection._KEYWORD_HINT_RE.search(text) is not None:
        assert detection._may_hint(text), text

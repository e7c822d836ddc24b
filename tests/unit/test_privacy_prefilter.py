"""The secret detectors' first look (one joined regex; see ``_build_prefilter``) must decide
exactly as running every detector: on numbers (a card, an account or a phone number sent as an
int stays found), strings, secrets and nested shapes (real detect-secrets and Presidio)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hybridmcp.policy.privacy import PrivacyConfig, detection, scan

CONFIG = PrivacyConfig()
ALL = PrivacyConfig(enabled_entities=sorted(CONFIG.active_entities() | {"URL", "UUID"}))
SECRETS = [
    "alice.smith@example.com",
    "4111 1111 1111 1111",
    "5500-0000-0000-0004 exp 09/29",
    "+44 20 7946 0958",
    "SSN: 536-22-1234",
    "key AKIAIOSFODNN7EXAMPLE",
    "token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
    "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "OPENAI=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3iJk",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "npm_abcdefghijklmnopqrstuvwxyz0123456789",
    "db host=x password=S3cr3t!pass then",
    "postgres://app:pa!ss*w0rd@db:5432/app",
    "-----BEGIN RSA PRIVATE KEY-----",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
]


@contextmanager
def _every_detector() -> Iterator[None]:
    """Scanning without the first look (and without cached results from either way)."""
    detection.FIRST_LOOK = False
    detection._detect_cached.cache_clear()
    try:
        yield
    finally:
        detection.FIRST_LOOK = True
        detection._detect_cached.cache_clear()


def _both(value: Any, config: PrivacyConfig) -> tuple[Any, Any]:
    detection._detect_cached.cache_clear()
    fast = scan(value, config)
    with _every_detector():
        full = scan(value, config)
    return fast, full


numbers = st.one_of(
    st.integers(),
    st.integers(min_value=10**5, max_value=10**19),
    st.sampled_from([4111111111111111, 5500000000000004, 447946095800, 5362212341, 12345678]),
    st.floats(allow_nan=False),
    st.decimals(allow_nan=False, allow_infinity=False).map(float),
)
texts = st.one_of(
    st.sampled_from(SECRETS),
    st.text(max_size=40),
    st.from_regex(r"[A-Za-z0-9_\-]{8,48}", fullmatch=True),
    numbers.map(str),
)
keys = st.sampled_from(["n", "amount", "card", "phone", "account", "password", "id", "note"])
leaves = st.one_of(numbers, texts, st.booleans(), st.none())
shapes = st.recursive(
    leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=numbers, key=keys)
@example(value=4111111111111111, key="n")
@example(value=447946095800, key="phone")
def test_numbers_are_decided_as_by_every_detector(value: Any, key: str) -> None:
    fast, full = _both({key: value}, CONFIG)
    assert fast == full


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=shapes)
def test_nested_shapes_are_decided_as_by_every_detector(value: Any) -> None:
    for config in (CONFIG, ALL):
        fast, full = _both(value, config)
        assert fast == full


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts)
def test_secret_spans_of_a_string_are_those_of_every_detector(text: str) -> None:
    key = detection._detector_key(ALL)
    fast = sorted(detection._secret_spans(text, key), key=repr)
    with _every_detector():
        full = sorted(detection._secret_spans(text, key), key=repr)
    assert fast == full


def test_a_card_number_as_an_int_is_still_found() -> None:
    assert scan({"n": 4111111111111111}, CONFIG).level == "restricted"
    rules = detection._secret_rules()
    assert rules.joined is not None  # the first look is in use
    assert len(rules.unjoined) < len(rules.every)
    assert scan({"n": 3}, CONFIG).findings == []


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts)
def test_pattern_spans_of_a_string_are_those_of_every_pattern(text: str) -> None:
    key = detection._detector_key(ALL)
    fast = sorted(detection._pattern_spans(text, key), key=repr)
    with _every_detector():
        full = sorted(detection._pattern_spans(text, key), key=repr)
    assert fast == full
    joined, alone = detection._pattern_look()
    assert joined is not None and len(alone) < len(detection._PATTERNS)

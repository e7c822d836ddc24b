"""Numbers: decimals are not phones or cards, while phones, cards and SSNs given as numbers
(ints, integral floats, runs of numbers inside longer runs) are found.

Pure scanning stands in for the gate here (as in tests/unit/test_privacy_splits.py);
tests/integration/test_privacy_runs.py sends such values through the gate to recording
MCP servers.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridmcp.policy import privacy as scanner
from hybridmcp.testing.canary import shaped_value

PUBLIC = scanner.Sensitivity.public
SETTINGS = settings(
    deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True, database=None
)


@pytest.fixture(scope="module", autouse=True)
def _engines() -> None:
    scanner.engines_ready()


def _decimals() -> st.SearchStrategy[object]:
    """Decimal numbers as floats (not integral) or as written digits, point, digits."""
    floats = st.floats(min_value=-1e7, max_value=1e7, allow_nan=False, allow_infinity=False).filter(
        lambda f: not f.is_integer()
    )
    written = st.builds(
        lambda sign, whole, frac: f"{sign}{whole}.{frac}",
        st.sampled_from(("", "-")),
        st.integers(0, 999_999),
        st.text("0123456789", min_size=1, max_size=20),
    )
    return st.one_of(floats, written)


CONTEXTS = (
    lambda d: {"x": d},
    lambda d: {"phone": d},
    lambda d: {"card": d},
    lambda d: {"ssn": d},
    lambda d: {"text": f"call me at {d}"},
    lambda d: {"text": f"lat {d}, lon 17.0322265625"},
    lambda d: {"points": [d, 51.10546875, d]},
    lambda d: {"lat": d, "lon": d},
)


@SETTINGS
@given(value=_decimals(), context=st.sampled_from(CONTEXTS))
def test_a_decimal_number_is_not_a_phone_or_a_card(value: object, context) -> None:
    args = context(value)
    report = scanner.scan(args)
    assert report.level == PUBLIC, (args, [(f.entity_type, f.path) for f in report.findings])


def test_the_coordinates_of_the_known_false_alarm_are_public() -> None:
    for args in (
        {"phone": 51.10546875},
        {"text": "call me at 51.10546875"},
        {"latitude": 51.10546875, "longitude": 17.0322265625},
    ):
        assert scanner.scan(args).level == PUBLIC, args


@SETTINGS
@given(seed=st.integers(0, 2**32), context=st.sampled_from(("alone", "text", "field", "list")))
def test_a_phone_as_people_write_it_is_still_found(seed: int, context: str) -> None:
    phone, _ = shaped_value("phone", random.Random(seed))
    args = {
        "alone": {"v": phone},
        "text": {"text": f"call me at {phone} tomorrow"},
        "field": {"mobile": phone},
        "list": {"rows": ["header", phone, "footer"]},
    }[context]
    assert scanner.scan(args).level > PUBLIC, args


@SETTINGS
@given(seed=st.integers(0, 2**32))
def test_a_card_given_as_a_float_is_still_found(seed: int) -> None:
    text, _ = shaped_value("credit_card", random.Random(seed))
    digits = "".join(c for c in text if c.isdigit())
    if len(digits) > 15:  # a float holds 15 to 17 significant digits exactly
        return
    args = {"amount": float(digits)}
    assert scanner.scan(args).level > PUBLIC, args

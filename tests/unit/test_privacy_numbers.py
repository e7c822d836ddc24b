"""Numbers: decimals are not phones or cards, while phones, cards and SSNs given as numbers
(ints, integral floats, runs of numbers inside longer runs) are found.

Pure scanning stands in for the gate here (as in tests/unit/test_privacy_splits.py);
tests/integration/test_privacy_gate_gaps.py sends such values through the gate to recording
MCP servers.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridmcp.policy import privacy as scanner
from hybridmcp.testing.canary import shaped_value
from tests.privacy_cases import SCAN_SETTINGS, card_in_a_longer_run

PUBLIC = scanner.Sensitivity.public
SETTINGS = SCAN_SETTINGS


pytestmark = pytest.mark.usefixtures("privacy_engines")


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


@SETTINGS
@given(case=card_in_a_longer_run(), label=st.sampled_from(("n", "items", "card")))
def test_a_card_inside_a_longer_run_of_numbers_is_found_and_replaced(case, label: str) -> None:
    items, pieces = case
    args = {"data": {label: items}}
    report = scanner.scan(args)
    assert report.level > PUBLIC, args
    red = scanner.redact(args, report)
    assert scanner.restore(red.value, red.vault) == args
    left = [v for v in red.value["data"][label] if not isinstance(v, str) or "<" not in v]
    assert len(left) == len(items) - len(pieces), (args, red.value)


@SETTINGS
@given(
    area=st.integers(200, 999).filter(lambda n: n % 100 != 11),
    exchange=st.integers(200, 999),
    line=st.integers(1000, 9999),
    country=st.booleans(),
    more=st.lists(st.integers(0, 99), min_size=1, max_size=3),
    field=st.sampled_from(("phone", "mobile_numbers", "tel")),
)
def test_a_phone_given_as_numbers_under_a_phone_field_is_found(
    area: int, exchange: int, line: int, country: bool, more: list[int], field: str
) -> None:
    args = {field: [*([1] if country else []), area, exchange, line, *more]}
    assert scanner.scan(args).level > PUBLIC, args


@SETTINGS
@given(
    area=st.integers(100, 899).filter(lambda n: n != 666),
    group=st.integers(10, 99),
    serial=st.integers(1000, 9999),
    more=st.lists(st.integers(0, 99), min_size=1, max_size=3),
)
def test_an_ssn_given_as_numbers_under_an_ssn_field_is_found(
    area: int, group: int, serial: int, more: list[int]
) -> None:
    args = {"ssn": [area, group, serial, *more]}
    assert scanner.scan(args).level > PUBLIC, args


@SETTINGS
@given(
    numbers=st.lists(
        st.one_of(st.integers(1, 99), st.floats(0, 1e4, allow_nan=False)), min_size=3, max_size=40
    ),
    field=st.sampled_from(("n", "values", "scores", "counts")),
)
def test_lists_of_small_numbers_stay_public(numbers: list, field: str) -> None:
    """(A 0 among them can still start a national phone number of 10 digits or more read
    from the run, ``[0, 10, 10, 10, 10, 0]``: a false alarm this does not fix.)"""
    args = {field: numbers}
    assert scanner.scan(args).level == PUBLIC, args


def test_the_documented_number_shapes() -> None:
    found = (
        {"card": [4, *[1] * 15, 12, 28]},
        {"card": [7, 4111, 1111, 1111, 1111, 12, 28]},
        {"card": [4111.0, 1111.0, 1111.0, 1111.0]},
        {"amount": 4111111111111111.0},
        {"phone": [1, 415, 867, 5309, 2]},
        {"ssn": [536, 22, 4124, 7]},
    )
    for args in found:
        assert scanner.scan(args).level > PUBLIC, args
    for args in ({"years": list(range(2000, 2030))}, {"pi": [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]}):
        assert scanner.scan(args).level == PUBLIC, args

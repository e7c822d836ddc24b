"""Values cut in three or four pieces: alternating between dict keys and values, or with
middle pieces longer than 24 characters. Always found; under ``redact`` no fragment of 6 or
more characters is left and the answer is restored.

Pure scanning stands in for the gate (as in tests/unit/test_privacy_splits.py);
tests/integration/test_privacy_gate_gaps.py sends such values through the gate to recording
MCP servers.
"""

from __future__ import annotations

import pytest
from hypothesis import given

from hybridmcp.policy import privacy as scanner
from hybridmcp.testing.canary import fragments_leaked
from tests.privacy_cases import SCAN_SETTINGS, PrivacyCase, alternating_cases, long_middle_cases

PUBLIC = scanner.Sensitivity.public
SETTINGS = SCAN_SETTINGS


pytestmark = pytest.mark.usefixtures("privacy_engines")


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

"""What the privacy step remembers changes none of its verdicts: every combination of levels,
action and size flag gets :func:`release`'s verdict, first asked or remembered."""

from __future__ import annotations

import itertools

from hybridmcp.capabilities.gate import ScanningPolicy
from hybridmcp.policy import privacy as scanner
from hybridmcp.policy.disclosure import release

LEVELS = list(scanner.Sensitivity)
ACTIONS = ["route_internal", "redact", "refuse", "allow", ""]


def test_remembered_verdicts_are_releases_verdicts() -> None:
    policy = ScanningPolicy()
    effects = ["read", "idempotent", "write"]
    combos = list(itertools.product(LEVELS, LEVELS, LEVELS, ACTIONS, [False, True], effects))
    for _ in range(2):  # first asked, then remembered
        for detected, declared, clearance, action, oversized, effect in combos:
            expected = release(
                detected=detected,
                declared=declared,
                clearance=clearance,
                action=action,
                oversized=oversized,
                effect=effect,
            )
            got = policy._release(detected, declared, clearance, action, oversized, effect)
            assert got == expected


def test_a_plain_string_is_never_taken_for_a_level() -> None:
    policy = ScanningPolicy()
    levels = list(itertools.product(LEVELS, LEVELS, LEVELS))
    for detected, declared, clearance in levels:
        policy._release(detected, declared, clearance, "redact", False, "read")
    differ = 0
    for detected, declared, clearance in levels:  # equal to the levels, compared as strings
        plain = (str(detected), str(declared), str(clearance))
        got = policy._release(*plain, "redact", False, "read")  # type: ignore[arg-type]
        expected = release(
            detected=plain[0],  # type: ignore[arg-type]
            declared=plain[1],  # type: ignore[arg-type]
            clearance=plain[2],  # type: ignore[arg-type]
            action="redact",
            oversized=False,
        )
        assert got == expected
        differ += expected != release(
            detected=detected, declared=declared, clearance=clearance, action="redact"
        )
    assert differ  # strings order otherwise than levels: the case is not vacuous

"""What a server cleared ``public`` receives of a person's answer to its elicitation
(``Gate.release_answer``, the path every answer takes before it is sent): a value above
``public``, whole or cut at any position across two fields, across a key and a value, nested
at any depth, with text around it, never reaches it raw: under ``redact`` only pseudonyms
(and no fragment of six characters of it), under ``refuse`` and ``route_internal`` nothing."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given

from hybridmcp.capabilities.gate import Gate, ScanningPolicy
from hybridmcp.capabilities.mcp_pool import SessionPool
from hybridmcp.config import PrivacySettings, parse_config
from hybridmcp.policy import privacy
from tests.privacy_cases import SCAN_SETTINGS, PrivacyCase, fragments, keyed_cases, privacy_cases

SERVER = parse_config({"mcpServers": {"s": {"command": "x"}}}).mcpServers["s"]
POLICIES = ("redact", "refuse", "route_internal")


def _gates() -> dict[str, Gate]:
    privacy.scan({"to": "someone@example.com"})  # the detection engines built, as in a run
    gates = {}
    for policy in POLICIES:
        settings = PrivacySettings(policy=policy)
        gates[policy] = Gate(SessionPool({}), privacy=ScanningPolicy(settings))
    return gates


GATES = _gates()


def _released(policy: str, content: dict) -> dict | None:
    allowed, _ = asyncio.run(GATES[policy].release_answer("s", SERVER, content, None))
    return allowed


def _check(case: PrivacyCase) -> None:
    for policy in POLICIES:
        allowed = _released(policy, case.args)
        if allowed is None:
            continue
        assert policy == "redact", (policy, case)
        assert not fragments(allowed, case.secret, case.background), (case, allowed)


@SCAN_SETTINGS
@given(privacy_cases())
def test_a_value_in_an_answer_whole_or_cut_across_fields_never_goes_raw(case) -> None:
    _check(case)


@SCAN_SETTINGS
@given(keyed_cases())
def test_a_value_cut_across_an_answers_keys_and_values_never_goes_raw(case) -> None:
    _check(case)


def test_a_clean_answer_goes_as_given() -> None:
    for policy in POLICIES:
        assert _released(policy, {"city": "Lisbon", "count": 3}) == {"city": "Lisbon", "count": 3}


@pytest.mark.parametrize("policy", POLICIES)
def test_an_answer_too_large_to_scan_never_goes(policy) -> None:
    assert _released(policy, {"notes": "fine weather " * 100_000}) is None

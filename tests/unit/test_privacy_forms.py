"""Detection across fields and forms, measured on generated corpora and proved by properties.

The pure scanning functions stand in for the gate here (the gate sends ``redact``'s output, or
nothing when the scan is above the clearance); tests/integration/test_privacy_properties.py
runs a sample of the same cases through the gate to a recording MCP server.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from hybridmcp.policy import privacy as scanner
from hybridmcp.testing.canary import (
    HELD_OUT_SHAPES,
    SHAPE_KINDS,
    SHAPES,
    benign_corpus,
    fragments_leaked,
    shaped_corpus,
)
from tests.privacy_cases import PrivacyCase, privacy_cases

SRC = Path(__file__).resolve().parents[2] / "src"
PUBLIC = scanner.Sensitivity.public


pytestmark = pytest.mark.usefixtures("privacy_engines")


def _sent(args: object) -> object | None:
    """What the gate would send to a server cleared ``public`` under ``redact``; None when a
    sensitive request is held back (``refuse``, ``route_internal``)."""
    report = scanner.scan(args)
    if report.level == PUBLIC:
        return args
    redacted = scanner.redact(args, report).value
    assert scanner.scan(redacted).level == PUBLIC  # the gate refuses otherwise
    return redacted


def _leaks(case: PrivacyCase) -> tuple[bool, list[str]]:
    """(detected, fragments of 6+ characters that would reach the server under redact)."""
    report = scanner.scan(case.args)
    if report.level == PUBLIC:
        return False, [case.secret]
    out = scanner.redact(case.args, report).value
    return True, fragments_leaked(out, case.secret, background=case.background)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(case=privacy_cases())
def test_no_value_or_fragment_escapes_whole_split_or_nested(case: PrivacyCase) -> None:
    detected, fragments = _leaks(case)
    assert detected, (case.kind, case.args)  # refuse and route_internal hold it back
    assert fragments == [], (case.kind, case.args)  # redact replaces it whole


def _corpus_report(cases: list) -> tuple[int, int, collections.Counter]:
    missed, leaked, by = 0, 0, collections.Counter()
    for c in cases:
        report = scanner.scan(c.args)
        if report.level == PUBLIC:
            missed += 1
            by[(c.kind, c.form)] += 1
            continue
        if fragments_leaked(scanner.redact(c.args, report).value, c.secrets[0]):
            leaked += 1
            by[(c.kind, c.form)] += 1
    return missed, leaked, by


@pytest.mark.parametrize("held_out", [False, True], ids=["tuned-shapes", "held-out-shapes"])
def test_shaped_corpus_recall(held_out: bool, capsys: pytest.CaptureFixture[str]) -> None:
    n = 600 if held_out else 2000
    cases = shaped_corpus(n, seed=11, held_out=held_out)
    assert len({c.kind for c in cases}) >= 10
    assert len({c.form for c in cases}) == len(HELD_OUT_SHAPES if held_out else SHAPES) >= 4
    missed, leaked, by = _corpus_report(cases)
    with capsys.disabled():
        print(
            f"\nshaped corpus ({'held-out' if held_out else 'tuned'} shapes): {n} records, "
            f"{len(SHAPE_KINDS)} kinds; undetected {missed}, leaked fragments under redact "
            f"{leaked}; worst {by.most_common(3)}"
        )
    assert missed == 0 and leaked == 0


MAX_BENIGN_ALTERED = 0.02


def test_benign_corpus_is_left_alone(capsys: pytest.CaptureFixture[str]) -> None:
    corpus = benign_corpus(1000, seed=5)
    altered = [a for a in corpus if _sent(a) != a]
    with capsys.disabled():
        print(f"\nbenign corpus: {len(altered)}/{len(corpus)} altered or refused")
    assert len(altered) / len(corpus) <= MAX_BENIGN_ALTERED, altered[:10]


@pytest.mark.parametrize(
    "text",
    [
        "upgrade to 1.2.3.4 tonight",
        "runtime 4.7.2.0",
        "see Section 2.3.1.4 of the contract",
        "req_01HQ3K5XJ8Z9Q4R6T7V2W3Y0AB",
        "rows 12, 15, 18, 22, 31 and 40 failed",
        "failed rows: 12 15 18 22 31",
        "ids 550e8400-e29b-41d4-a716-446655440000 and order ORD-2024-965646",
        "next page: cursor eyJwYWdlIjogMiwgInNpemUiOiA1MH0=",  # base64 JSON, not a JWT
    ],
)
def test_issue_false_alarms_stay_clean(text: str) -> None:
    assert scanner.scan({"text": text}).findings == []


def test_a_dotted_quad_with_address_context_is_still_an_ip() -> None:
    for text in ("server ip 1.2.3.4", "connect from 8.8.8.8"):
        assert {f.entity_type for f in scanner.scan(text).findings} == {"IP_ADDRESS"}
    assert scanner.scan({"host": "1.2.3.4"}).level > PUBLIC
    assert scanner.scan("gateway 203.0.113.9").level > PUBLIC


@pytest.mark.parametrize(
    "phone",
    ["+1 099 555 0100", "+10995550100", "(099) 555-0100", "+44 20 0000 0000", "07000 000000"],
)
def test_phones_need_no_numbering_plan(phone: str) -> None:
    line = f"2024-05-01 INFO token={phone} status=ok"
    assert phone not in scanner.redact(line).value
    assert "PHONE_NUMBER" in {f.entity_type for f in scanner.scan(f"call {phone}").findings}


def test_split_values_are_replaced_whole_and_restored() -> None:
    jwt = (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
        "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    )
    for value in (jwt, "alice.smith@example.com", "AKIAIOSFODNN7EXAMPLE"):
        for cut in range(1, len(value)):
            args = {"a": "token " + value[:cut], "b": value[cut:] + " end"}
            red = scanner.redact(args)
            assert fragments_leaked(red.value, value, background=("token ", " end")) == []
            assert scanner.restore(red.value, red.vault) == args


def test_partial_secrets_count() -> None:
    for text in ("key AKIA", "AKIAIOSFOD", "ghp_abc", "eyJhbGciOiJIUzI1", "xoxb-1234", "sk-proj-"):
        assert scanner.scan({"v": text}).level == scanner.Sensitivity.restricted, text


def test_a_key_in_one_field_and_its_value_in_the_next() -> None:
    args = {"a": "config: password=", "b": "Tr0ub4dor&3x"}
    assert "Tr0ub4dor&3x" not in json.dumps(scanner.redact(args).value)


_FAST_PATH = """
import sys
from hybridmcp.policy import privacy
public = [{"timezone": "Europe/Paris"}, {"source_timezone": "America/New_York",
          "time": "14:30", "target_timezone": "Asia/Tokyo"}, "ordinary prose, nothing more"]
for value in public:
    assert privacy.scan(value).findings == []
print(sorted({m.split(".")[0] for m in sys.modules if m.startswith(("presidio", "spacy"))}))
privacy.scan("write to jane@example.com")
print(sorted({m.split(".")[0] for m in sys.modules if m.startswith(("presidio", "spacy"))}))
"""


def test_presidio_and_spacy_load_only_for_candidate_text() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _FAST_PATH],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(SRC), "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": ""},
    )
    assert proc.returncode == 0, proc.stderr
    before, after = proc.stdout.splitlines()
    assert before == "[]"
    assert "presidio_analyzer" in after  # the check can see a load

"""Privacy scanning and redaction against the real Presidio and detect-secrets engines."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hybridmcp.policy import privacy
from hybridmcp.policy.privacy import (
    PrivacyConfig,
    Sensitivity,
    SensitivityReport,
    redact,
    restore,
    scan,
)
from hybridmcp.testing.canary import canary_corpus, leaked

SRC = Path(__file__).resolve().parents[2] / "src"

PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    "-----END RSA PRIVATE KEY-----"
)
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)


pytestmark = pytest.mark.usefixtures("privacy_engines")


def _types(report: SensitivityReport) -> set[str]:
    return {f.entity_type for f in report.findings}


# -- every kind is detected ------------------------------------------------------------------

KINDS = [
    ("email", "write to jane.doe@example.com today", "EMAIL_ADDRESS", "jane.doe@example.com"),
    ("phone us", "call (415) 867-5309 after lunch", "PHONE_NUMBER", "(415) 867-5309"),
    ("phone uk", "mobile 07912 345678", "PHONE_NUMBER", "07912 345678"),
    ("phone de", "Büro: +49 30 90182012", "PHONE_NUMBER", "+49 30 90182012"),
    ("phone fr", "tél 06 12 34 56 78", "PHONE_NUMBER", "06 12 34 56 78"),
    ("card spaced", "card 4111 1111 1111 1111", "CREDIT_CARD", "4111 1111 1111 1111"),
    ("card dashed", "5500-0000-0000-0004 exp 09/29", "CREDIT_CARD", "5500-0000-0000-0004"),
    ("iban", "IBAN DE89 3704 0044 0532 0130 00", "IBAN_CODE", "DE89 3704 0044 0532 0130 00"),
    ("ssn", "SSN: 536-22-1234", "US_SSN", "536-22-1234"),
    ("ipv4", "server 203.0.113.77 is down", "IP_ADDRESS", "203.0.113.77"),
    ("ipv6", "host 2001:db8:85a3::8a2e:370:7334", "IP_ADDRESS", "2001:db8:85a3::8a2e:370:7334"),
    ("aws", "key AKIAIOSFODNN7EXAMPLE", "AWS_ACCESS_KEY", "AKIAIOSFODNN7EXAMPLE"),
    (
        "github",
        "token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
        "GITHUB_TOKEN",
        "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
    ),
    (
        "slack",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "SLACK_TOKEN",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    ),
    (
        "openai",
        "OPENAI=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3iJk",
        "API_KEY",
        "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3iJk",
    ),
    ("jwt", f"Authorization: {JWT}", "JWT", JWT),
    ("pem", f"here:\n{PEM}\nthanks", "PRIVATE_KEY", PEM),
    ("password", "db host=x password=S3cr3t!pass then", "SECRET_KEYWORD", "S3cr3t!pass"),
    ("basic auth", "postgres://app:pa!ss*w0rd@db:5432/app", "BASIC_AUTH", "pa!ss*w0rd"),
]


@pytest.mark.parametrize(("name", "text", "entity", "raw"), KINDS, ids=[k[0] for k in KINDS])
def test_each_kind_is_detected_and_redacted(name: str, text: str, entity: str, raw: str) -> None:
    report = scan({"value": text})
    assert entity in _types(report), (name, report.findings)
    red = redact({"value": text}, report)
    assert raw not in red.value["value"]
    assert restore(red.value, red.vault) == {"value": text}


def test_card_given_as_int_is_caught_and_restored_as_int() -> None:
    args = {"amount": 12, "card": 4111111111111111}
    red = redact(args)
    assert isinstance(red.value["card"], str) and red.value["card"].startswith("<CARD_")
    assert red.value["amount"] == 12
    back = restore(red.value, red.vault)
    assert back == args and isinstance(back["card"], int)


# -- forms -----------------------------------------------------------------------------------


def test_nested_free_text_and_lists() -> None:
    args = {
        "request": {"customer": {"contacts": ["x", {"mail": "bob.smith@acme.io"}]}},
        "notes": "Customer said: reach me on +44 20 7946 0958 or bob.smith@acme.io.",
        "tuple": ("203.0.113.9", 7),
    }
    report = scan(args)
    paths = {(f.path, f.entity_type) for f in report.findings}
    assert ("/request/customer/contacts/1/mail", "EMAIL_ADDRESS") in paths
    assert ("/notes", "PHONE_NUMBER") in paths
    assert ("/notes", "EMAIL_ADDRESS") in paths
    assert ("/tuple/0", "IP_ADDRESS") in paths
    red = redact(args, report)
    # Same raw value, same pseudonym, wherever it appears.
    mail = red.value["request"]["customer"]["contacts"][1]["mail"]
    assert mail in red.value["notes"]
    assert isinstance(red.value["tuple"], tuple)
    assert restore(red.value, red.vault) == args


def test_values_split_across_fields() -> None:
    args = {"pay": {"card_a": "4111 1111", "card_b": "1111 1111", "exp": "09/29"}}
    report = scan(args)
    split = [f for f in report.findings if f.split_of == "/pay"]
    assert {f.path for f in split} == {"/pay/card_a", "/pay/card_b"}
    assert {f.entity_type for f in split} == {"CREDIT_CARD"}
    red = redact(args, report)
    assert leaked(red.value, ["4111 1111", "1111 1111"]) == []
    assert red.value["pay"]["exp"] == "09/29"
    assert restore(red.value, red.vault) == args
    # Digit halves without separators are joined without one.
    args = {"first": "41111111", "second": "11111111"}
    assert "CREDIT_CARD" in _types(scan(args))


def test_secret_named_field_and_echoes_elsewhere() -> None:
    args = {"conn": {"user": "app", "password": "hunter22"}, "note": "it is hunter22 again"}
    report = scan(args)
    assert {(f.path, f.entity_type) for f in report.findings} >= {
        ("/conn/password", "SECRET_KEYWORD"),
        ("/note", "SECRET_KEYWORD"),
    }
    red = redact(args, report)
    assert leaked(red.value, ["hunter22"]) == []
    assert red.value["conn"]["user"] == "app"
    # An echo in a dict key is masked in the key's own path and in every path below it.
    args = {"password": "hunter22", "hunter22": {"x": "hunter22 again"}}
    report = scan(args)
    assert {f.path for f in report.findings} == {"/password", "/~k1", "/~k1/x"}
    red = redact(args, report)
    assert leaked(red.value, ["hunter22"]) == []
    assert restore(red.value, red.vault) == args


def test_sensitive_dict_keys_are_redacted_and_paths_do_not_leak() -> None:
    args = {"alice@example.com": {"role": "admin"}, "plain": 1}
    report = scan(args)
    (finding,) = report.findings
    assert finding.in_key and finding.path == "/~k0"
    red = redact(args, report)
    assert list(red.value) == ["<EMAIL_1>", "plain"]
    assert restore(red.value, red.vault) == args


def test_report_never_contains_raw_values() -> None:
    secrets = ["jane.doe@example.com", "4111 1111 1111 1111", "AKIAIOSFODNN7EXAMPLE"]
    args = {"jane.doe@example.com": "card 4111 1111 1111 1111, key AKIAIOSFODNN7EXAMPLE"}
    dumped = scan(args).model_dump_json()
    assert not [s for s in secrets if s in dumped]
    assert json.loads(dumped)["level"] == Sensitivity.restricted


# -- redaction properties ----------------------------------------------------------------------


def test_redacted_output_scans_clean_and_restores() -> None:
    args = {"text": f"mail a@b-corp.com, card 4111111111111111, {JWT}", "pem": PEM}
    red = redact(args)
    assert scan(red.value).findings == []
    assert leaked(red.value, ["a@b-corp.com", "4111111111111111", JWT, PEM]) == []
    assert restore(red.value, red.vault) == args


def test_vault_is_reused_across_calls_and_restores_answers() -> None:
    vault: dict[str, str] = {}
    first = redact({"to": "jane.doe@example.com"}, vault=vault)
    second = redact({"cc": "jane.doe@example.com", "bcc": "joe@example.org"}, vault=vault)
    assert first.value["to"] == second.value["cc"] == "<EMAIL_1>"
    assert second.value["bcc"] == "<EMAIL_2>"
    # An answer from the external server quoting pseudonyms inside larger text:
    answer = {"summary": "Sent to <EMAIL_1> and <EMAIL_2>; <EMAIL_9> unknown"}
    assert restore(answer, vault) == {
        "summary": "Sent to jane.doe@example.com and joe@example.org; <EMAIL_9> unknown"
    }


def test_existing_pseudonym_like_text_is_not_clobbered() -> None:
    args = {"template": "Dear <EMAIL_1>,", "to": "jane.doe@example.com"}
    red = redact(args)
    assert red.value["template"] == "Dear <EMAIL_1>,"
    assert red.value["to"] == "<EMAIL_2>"
    assert restore(red.value, red.vault) == args


# -- levels and configuration ------------------------------------------------------------------


def test_clean_text_is_public() -> None:
    for args in (
        "The weather in Paris is nice today",
        {"query": "SELECT id FROM users LIMIT 10", "version": "3.11.7", "max_tokens": 512},
        {"rev": "3f786850e387550fdab836ed7e6dc881de23001b", "path": "/usr/local/lib"},
        {"request_id": "550e8400-e29b-41d4-a716-446655440000", "epoch": 1714567890},
        None,
        [],
        {"ok": True, "n": 3.5},
    ):
        report = scan(args)
        assert report.level == Sensitivity.public and report.findings == [], args


def test_levels_follow_the_most_sensitive_finding() -> None:
    assert scan("ip 203.0.113.9").level == Sensitivity.confidential
    assert scan("ip 203.0.113.9 card 4111111111111111").level == Sensitivity.restricted
    custom = PrivacyConfig(entity_levels={"IP_ADDRESS": "internal"})
    assert scan("ip 203.0.113.9", custom).level == Sensitivity.internal
    # Overrides merge over the defaults: the card is still restricted.
    assert custom.level_for("CREDIT_CARD") == Sensitivity.restricted
    assert custom.level_for("SOMETHING_NEW") == Sensitivity.internal
    with pytest.raises(ValueError, match="unknown entity type"):
        PrivacyConfig(disabled_entities={"EMAIL"})
    with pytest.raises(ValueError, match="unknown sensitivity"):
        PrivacyConfig(entity_levels={"EMAIL_ADDRESS": "top-secret"})


def test_sensitivity_is_ordered_and_parsable() -> None:
    assert Sensitivity.public < Sensitivity.internal < Sensitivity.confidential
    assert Sensitivity.confidential < Sensitivity.restricted
    assert Sensitivity.restricted.rank == 3
    assert Sensitivity.parse("Restricted") is Sensitivity.restricted
    assert Sensitivity.parse("2") is Sensitivity.confidential
    assert str(Sensitivity.internal) == "internal"
    with pytest.raises(ValueError, match="unknown sensitivity"):
        Sensitivity.parse("secret")


def test_config_filters_entities_and_allow_list() -> None:
    text = "mail support@acme.io or jane@acme.io from 203.0.113.9"
    assert _types(scan(text, PrivacyConfig(disabled_entities={"ip_address"}))) == {"EMAIL_ADDRESS"}
    assert _types(scan(text, PrivacyConfig(enabled_entities={"IP_ADDRESS"}))) == {"IP_ADDRESS"}
    allowed = scan(text, PrivacyConfig(allow_list={"support@acme.io"}))
    red = redact(text, allowed)
    assert "support@acme.io" in red.value and "jane@acme.io" not in red.value
    # URLs are off by default (tool calls are often about them) and can be turned on.
    url = "see https://example.com/page"
    assert scan(url).findings == []
    assert "URL" in _types(scan(url, PrivacyConfig(enabled_entities={"URL"})))
    # A stricter threshold drops weaker matches (IPs score below e-mails).
    assert _types(scan(text, PrivacyConfig(min_score=0.99))) == {"EMAIL_ADDRESS"}


def test_lists_of_small_numbers_are_not_phone_numbers() -> None:
    assert scan({"ids": list(range(300)), "scores": [35, 36, 37, 38]}).findings == []
    assert "PHONE_NUMBER" in _types(scan({"phones": ["+1 415", "867 5309"]}))


# -- robustness ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["password" * 2500, "a_" * 20_000, "sk-aaaa" * 3000, "://a:" * 4000, "1234 " * 4000],
    ids=["keyword-run", "underscores", "sk-run", "userinfo-run", "digit-groups"],
)
def test_pathological_strings_stay_cheap(text: str) -> None:
    """Several detect-secrets regexes backtrack quadratically; the scan bounds their input."""
    started = time.perf_counter()
    report = scan({"blob": text})
    redact({"blob": text}, report)
    assert time.perf_counter() - started < 5.0  # unbounded, the keyword run alone takes ~75 s


def test_threads_scanning_at_once_agree_with_one_thread() -> None:
    cases = [c.args for c in canary_corpus(80, seed=7)]
    expected = [scan(a).model_dump() for a in cases]
    privacy.detection._detect_cached.cache_clear()  # the threads must work, not read the cache
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda a: scan(a).model_dump(), cases))
    # Digests are salted per process, identical within it: whole reports must match.
    assert got == expected


# -- offline ---------------------------------------------------------------------------------


def test_runs_without_network_even_if_tldextract_was_imported_first() -> None:
    """tldextract's default extractor would fetch the Public Suffix List on first use."""
    script = textwrap.dedent(
        """
        import os, socket
        os.environ.pop("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", None)
        import tldextract  # created with the remote URLs
        attempts = []
        def deny(*args, **kwargs):
            attempts.append(args)
            raise OSError("network disabled by the test")
        socket.socket.connect = deny
        socket.create_connection = deny
        socket.getaddrinfo = deny
        from hybridmcp.policy.privacy import scan
        found = [f.entity_type for f in scan("mail alice.smith@startup.ai").findings]
        print(found, len(attempts))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", None)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['EMAIL_ADDRESS'] 0"


def test_a_scan_on_the_event_loop_never_builds_an_engine() -> None:
    """analyze scans small arguments on the event loop (:func:`without_loading`): a scan that
    would build a detection engine or import a detector (seconds, file reads) is refused
    there, before anything is loaded; once the engines are built it runs, and finds what a
    scan anywhere else finds. A fresh process: no engine is built yet."""
    script = textwrap.dedent(
        """
        import sys
        from hybridmcp.policy.privacy import scan
        from hybridmcp.policy.privacy.detection import _detect_cached
        from hybridmcp.policy.privacy.engines import EnginesNotLoaded, without_loading
        args = {"note": "mail alice.smith@startup.ai", "cfg": "password = hunter2hunter2"}
        before = {m for m in sys.modules if m.startswith(("presidio", "detect_secrets"))}
        try:
            with without_loading():
                scan(args)
            print("scanned without its engines")
        except EnginesNotLoaded:
            pass
        after = {m for m in sys.modules if m.startswith(("presidio", "detect_secrets"))}
        print("loaded", sorted(after - before))
        with without_loading():
            print("empty", scan({}).level)
        first = scan(args)  # builds what it needs
        _detect_cached.cache_clear()
        with without_loading():
            again = scan(args)
        print(again == first, sorted({f.entity_type for f in first.findings}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "loaded []",
        "empty public",
        "True ['EMAIL_ADDRESS', 'SECRET_KEYWORD']",
    ], out.stdout


# -- the privacy proof over the canary corpus ----------------------------------------------------

# Measured with seed 0 (540 sensitive cases, 974 secrets, 60 clean): secret recall 1.000,
# case recall 1.000, false positives 0/60; seeds 1-5 at n=1000 gave the same recall and 0/100.
# The thresholds leave room for library updates (numbering-plan metadata, recognizer tweaks)
# to move a few cases, yet losing any one kind entirely (about 1/17 of the cases) fails them.
MIN_SECRET_RECALL = 0.98
MIN_CASE_RECALL = 0.97
MIN_KIND_RECALL = 0.90
MAX_FALSE_POSITIVE_RATE = 0.05


def test_canary_corpus_recall_and_false_positives(capsys: pytest.CaptureFixture[str]) -> None:
    cases = canary_corpus()
    per_kind: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    secrets_total = secrets_leaked = 0
    false_positives = clean = 0
    misses = []
    for case in cases:
        report = scan(case.args)
        red = redact(case.args, report)
        assert restore(red.value, red.vault) == case.args, case.id
        if case.clean:
            clean += 1
            false_positives += bool(report.findings)
            continue
        left = leaked(red.value, case.secrets)
        secrets_total += len(case.secrets)
        secrets_leaked += len(left)
        per_kind[case.kind][0] += 1
        per_kind[case.kind][1] += not left
        if left:
            misses.append((case.id, case.kind, case.form))
    cases_total = sum(n for n, _ in per_kind.values())
    cases_ok = sum(ok for _, ok in per_kind.values())
    secret_recall = 1 - secrets_leaked / secrets_total
    case_recall = cases_ok / cases_total
    fp_rate = false_positives / clean
    with capsys.disabled():
        print(
            f"\ncanary: secret recall {secret_recall:.4f} ({secrets_total} secrets), "
            f"case recall {case_recall:.4f} ({cases_total} cases), "
            f"false positives {false_positives}/{clean} ({fp_rate:.3f})"
        )
        worst = sorted((ok / n, kind) for kind, (n, ok) in per_kind.items())[:3]
        print("canary: lowest kinds " + ", ".join(f"{k} {r:.2f}" for r, k in worst))
        if misses:
            print(f"canary: misses {misses[:10]}")
    assert secret_recall >= MIN_SECRET_RECALL
    assert case_recall >= MIN_CASE_RECALL
    assert all(ok / n >= MIN_KIND_RECALL for n, ok in per_kind.values()), per_kind
    assert fp_rate <= MAX_FALSE_POSITIVE_RATE

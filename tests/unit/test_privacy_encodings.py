"""Sensitive values written in a form a reader decodes: full-width or other-script digits,
zero-width characters, other spaces, percent-encoding, JSON/C escapes, HTML entities, base64.

The server reading such a string recovers the value as easily as we can, so the scan must
find it and redaction must leave nothing of it that :func:`reader_decodes` recovers. The
decoding here is the standard library's (``urllib``, ``html``, ``base64``,
``unicodedata``), not the product's own, so the check does not rely on what it checks.
"""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridmcp.policy import privacy as scanner
from hybridmcp.policy.privacy.decoding import decoded_views, surface
from hybridmcp.testing.canary import benign_corpus
from tests.privacy_cases import SURROUNDINGS, encoded_cases, fragments

PUBLIC = scanner.Sensitivity.public


pytestmark = pytest.mark.usefixtures("privacy_engines")


@settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(case=encoded_cases())
def test_an_encoded_value_is_found_and_redacted_whole(case: Any) -> None:
    what, secret, args, background = case
    args = {**args, "next": "r1"}  # a neighbour the value must not run on into
    report = scanner.scan(args)
    assert report.level != PUBLIC, (what, args)  # refuse and route_internal hold it back
    redacted = scanner.redact(args, report).value
    if not what.startswith("password/"):  # a password=... value runs on over ";" (known)
        assert redacted["next"] == "r1", (what, args, redacted)
    assert fragments(redacted, secret, background) == [], (what, args, redacted)
    assert scanner.scan(redacted).level == PUBLIC  # the gate sends it (else it refuses)


def test_views_map_back_to_the_characters_they_came_from() -> None:
    text = "mail alice%40example.com or ａｌｉｃｅ\u200b＠example.com"
    [view] = decoded_views(text)
    assert view.text == "mail alice@example.com or alice@example.com"
    start = view.text.index("alice@")
    assert text[slice(*view.source(start, start + 17))] == "alice%40example.com"
    second = view.text.rindex("alice@")
    assert text[slice(*view.source(second, second + 17))] == "ａｌｉｃｅ\u200b＠example.com"
    token = base64.b64encode(b"card 4111 1111 1111 1111").decode()
    [b64] = decoded_views(f"see {token} here")
    assert b64.text == "card 4111 1111 1111 1111" and b64.source(5, 9) == (4, 4 + len(token))


def test_plain_ascii_has_no_view_and_benign_text_stays_clean() -> None:
    assert surface("an ordinary sentence, 42 items at 3.5 each") is None
    assert decoded_views("a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6") == []  # hex: no printable text
    assert decoded_views("req_01HQ3ZK9V4W2X8Y7N6M5P4Q3R2") == []
    benign = [
        "Ünïcödé façade — naïve café ½ ﬁle №5",
        "https://example.com/search?q=caf%C3%A9%20menu&page=2",
        'C:\\\\Users\\\\me\\\\notes.txt and "quoted \\"text\\""',
        "&#169; 2024 Example Corp &#x2014; all rights reserved",
        base64.b64encode(json.dumps({"page": 2, "size": 50}).encode()).decode(),
        "Größe：ＸＬ，Farbe：blau（Artikel 4711）",
    ]
    for text in benign:
        assert scanner.scan({"v": text}).level == PUBLIC, text
    altered = 0
    for record in benign_corpus(300):
        altered += scanner.scan(record).level != PUBLIC
    assert altered == 0


# -- vendors' tokens and credentials in forms no library rule knows ----------------------------

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_HEX = "0123456789abcdef"
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
VENDOR_TOKENS: tuple[tuple[str, str, int], ...] = (
    ("hf_", _ALNUM, 34),
    ("pypi-AgEIcHlwaS5vcmc", _ALNUM, 60),
    ("dop_v1_", _HEX, 64),
    ("shpat_", _HEX, 32),
    ("ya29.", _ALNUM + "-_", 60),
    ("sq0atp-", _ALNUM, 22),
    ("dapi", _HEX, 32),
    ("AGE-SECRET-KEY-1", _UPPER, 58),
    ("glc_", _ALNUM, 40),
    ("lin_api_", _ALNUM, 40),
    ("sntrys_", _ALNUM, 60),
    ("dckr_pat_", _ALNUM, 27),
    ("hvs.", _ALNUM, 24),
    ("ATATT3xFfGF0", _ALNUM, 180),
    ("dp.st.", _ALNUM, 40),
    ("pul-", _HEX, 40),
    ("NRAK-", _UPPER, 27),
)
CREDENTIAL_FORMS: tuple[tuple[str, str], ...] = (
    ("redis://:{}@cache:6379/0", "url, empty user"),
    ("postgres://admin:p@{}!@db:5432/app", "url, password with an unescaped @"),
    ("Authorization: Basic {}", "basic header"),
    ("https://acct.blob.core.windows.net/c/f?sv=2021-06-08&sp=r&sig={}", "signed url"),
)


@st.composite
def vendor_values(draw: st.DrawFn) -> tuple[str, str]:
    """A vendor's token, or a credential in one of the forms above, and the part that must
    never leave."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    if draw(st.booleans()):
        prefix, alphabet, n = draw(st.sampled_from(VENDOR_TOKENS))
        token = prefix + "".join(rng.choice(alphabet) for _ in range(n))
        return token, token
    form, what = draw(st.sampled_from(CREDENTIAL_FORMS))
    secret = "".join(rng.choice(_ALNUM) for _ in range(rng.randint(10, 24)))
    if what == "basic header":
        secret = base64.b64encode(f"admin:{secret}".encode()).decode()
    return form.format(secret), secret


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(value=vendor_values(), where=st.sampled_from(SURROUNDINGS))
def test_vendor_tokens_and_credential_forms_are_restricted_and_redacted(value, where) -> None:
    text, secret = value
    args = {"note": where[0] + text + where[1]}
    report = scanner.scan(args)
    assert report.level == scanner.Sensitivity.restricted, (text, report)
    redacted = scanner.redact(args, report).value
    assert fragments(redacted, secret, where) == [], (text, redacted)


def test_iban_in_any_case_and_card_in_any_grouping() -> None:
    for text in ("de89370400440532013000", "De89 3704 0044 0532 0130 00", "gb82west12345698765432"):
        assert scanner.scan({"v": text}).level == scanner.Sensitivity.restricted, text
    for text in ("4111/1111/1111/1111", "4111_1111_1111_1111"):
        assert scanner.scan({"v": text}).level == scanner.Sensitivity.restricted, text
    for text in (  # near misses: a checksum that fails, a date path, a word
        "de89370400440532013001",
        "2024/05/01/1234",
        "basic auth is required",
        "hf_hub_download",
        "redis://cache:6379/0",
    ):
        assert scanner.scan({"v": text}).level == PUBLIC, text

"""Sensitive values written in a form a reader decodes: full-width or other-script digits,
zero-width characters, other spaces, percent-encoding, JSON/C escapes, HTML entities, base64.

The server reading such a string recovers the value as easily as we can, so the scan must
find it and redaction must leave nothing of it that :func:`reader_decodes` recovers. The
decoding here is the standard library's (``urllib``, ``html``, ``base64``,
``unicodedata``), not the product's own, so the check does not rely on what it checks.
"""

from __future__ import annotations

import base64
import html
import json
import random
import re
import unicodedata
import urllib.parse
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridmcp.policy import privacy as scanner
from hybridmcp.policy.privacy.decoding import decoded_views, surface
from hybridmcp.testing.canary import SHAPE_KINDS, benign_corpus, shaped_value, strings_in
from tests.privacy_cases import SURROUNDINGS, _nest

PUBLIC = scanner.Sensitivity.public
PSEUDONYM = re.compile(r"<[A-Z][A-Z0-9_]*_[0-9]+>")
ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad")


@pytest.fixture(scope="module", autouse=True)
def _engines() -> None:
    scanner.engines_ready()


def _fullwidth(ch: str) -> str:
    return chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch


def _arabic_indic(ch: str) -> str:
    return chr(0x0660 + int(ch)) if ch.isdigit() else ch


def _percent(ch: str) -> str:
    return f"%{ord(ch):02X}" if ch.isascii() else ch


def _json_escape(ch: str) -> str:
    return f"\\u{ord(ch):04x}"


def _entity(ch: str) -> str:
    return f"&#{ord(ch)};"


CHAR_CODES = {
    "fullwidth": _fullwidth,
    "arabic_indic": _arabic_indic,
    "percent": _percent,
    "json_escape": _json_escape,
    "html_entity": _entity,
}
ENCODINGS = (*CHAR_CODES, "zero_width", "nbsp", "base64", "base64_url", "base64_of_percent")


def encode(text: str, how: str, picked: list[int], zw: str) -> str:
    """``text`` with the characters at ``picked`` written as ``how`` writes them (or a
    zero-width character after each of them; base64 encodes the whole)."""
    if how in CHAR_CODES:
        code = CHAR_CODES[how]
        return "".join(code(c) if i in picked else c for i, c in enumerate(text))
    if how == "zero_width":
        return "".join(c + zw if i in picked else c for i, c in enumerate(text))
    if how == "nbsp":
        if " " not in text:
            return encode(text, "zero_width", picked, zw)
        return text.replace(" ", "\u00a0")
    if how == "base64":
        return base64.b64encode(text.encode()).decode()
    if how == "base64_url":
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
    return base64.b64encode(urllib.parse.quote(text, safe="").encode()).decode()


def reader_decodes(text: str) -> list[str]:
    """What a reader can recover from ``text`` with the standard library: the text with
    invisible characters dropped and compatibility forms folded, unquoted, unescaped, and
    every base64-alphabet run decoded."""
    plain = "".join(c for c in text if unicodedata.category(c) != "Cf")
    plain = "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in plain)
    plain = unicodedata.normalize("NFKC", plain)
    plain = html.unescape(urllib.parse.unquote(plain))
    plain = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), plain)
    out = [text, plain]
    for token in re.findall(r"[A-Za-z0-9+/_-]{12,}={0,2}", plain):
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                decoded = decode(token + "=" * (-len(token) % 4)).decode()
            except ValueError:
                continue
            out += reader_decodes(decoded) if decoded != text else [decoded]
    return out


def fragments(value: Any, secret: str, background: tuple[str, ...]) -> list[str]:
    """Pieces of six characters of ``secret`` a reader recovers from ``value``'s strings
    (except those the background text holds anyway)."""
    texts = [t for s in strings_in(value) for t in reader_decodes(PSEUDONYM.sub("", s))]
    known = [t for b in background for t in reader_decodes(b)]
    pieces = {secret[i : i + 6] for i in range(max(0, len(secret) - 5))}
    return sorted(
        p for p in pieces if any(p in t for t in texts) and not any(p in k for k in known)
    )


@st.composite
def encoded_cases(draw: st.DrawFn) -> tuple[str, str, dict[str, Any], tuple[str, ...]]:
    kind = draw(st.sampled_from(SHAPE_KINDS))
    text, secret = shaped_value(kind, random.Random(draw(st.integers(0, 2**32))))
    how = draw(st.sampled_from(ENCODINGS))
    every = draw(st.booleans())
    picked = (
        list(range(len(text)))
        if every
        else draw(st.lists(st.integers(0, len(text) - 1), min_size=1, max_size=6))
    )
    encoded = encode(text, how, picked, draw(st.sampled_from(ZERO_WIDTH)))
    before, after = draw(st.sampled_from(SURROUNDINGS))
    nesting = draw(st.sampled_from(("flat", "list", "deep")))
    if draw(st.booleans()):
        cut = draw(st.integers(1, len(encoded) - 1))
        whole = before + encoded + after
        fields = [whole[: len(before) + cut], whole[len(before) + cut :]]
    else:
        fields = [before + encoded + after]
    return f"{kind}/{how}", secret, _nest(fields, nesting), (before, after, "header", "footer")


@settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(case=encoded_cases())
def test_an_encoded_value_is_found_and_redacted_whole(case: Any) -> None:
    what, secret, args, background = case
    report = scanner.scan(args)
    assert report.level != PUBLIC, (what, args)  # refuse and route_internal hold it back
    redacted = scanner.redact(args, report).value
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

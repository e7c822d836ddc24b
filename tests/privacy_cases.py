"""Hypothesis strategies for the privacy properties: a sensitive value of every kind, cut at
any position across two adjacent string fields (or whole), with text around it, nested in
lists and dicts. Shared by the pure-function tests and the recording-server tests."""

from __future__ import annotations

import base64
import html
import random
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, assume, settings
from hypothesis import strategies as st

from hybridmcp.testing.canary import SHAPE_KINDS, shaped_value, split_fields, strings_in

SCAN_SETTINGS = settings(
    deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True, database=None
)
"""Hypothesis settings of the scan's property tests: the same examples on every run."""

SURROUNDINGS: tuple[tuple[str, str], ...] = (
    ("", ""),
    ("Please contact ", " about the invoice."),
    ("2024-05-01 12:00:01 INFO user_ref=", " action=login status=ok"),
    ("Hi team,\nthe value is ", "\nRegards"),
    ('{"note": "', '"}'),
    ("<td>", "</td>"),
    ("* ", ";"),
    ("value: [", "]"),
)
NESTINGS = ("flat", "list", "dict_in_list", "list_in_dict", "deep")


@dataclass(frozen=True)
class PrivacyCase:
    kind: str
    secret: str
    args: dict[str, Any]
    background: tuple[str, ...]
    """Text around the secret, which may share fragments with it by chance."""


def _nest(fields: list[str], nesting: str) -> dict[str, Any]:
    if nesting == "flat":
        return {"part_a": fields[0], "part_b": fields[1]} if len(fields) == 2 else {"v": fields[0]}
    if nesting == "list":
        return {"lines": ["header", *fields, "footer"]}
    if nesting == "dict_in_list":
        return {"rows": [{"n": 1}, {f"f{i}": f for i, f in enumerate(fields)}]}
    if nesting == "list_in_dict":
        return {"doc": {"title": "notes", "body": list(fields)}}
    return {"a": {"b": [{"c": {"d": list(fields)}}]}}


@st.composite
def privacy_cases(draw: st.DrawFn, kinds: tuple[str, ...] = SHAPE_KINDS) -> PrivacyCase:
    kind = draw(st.sampled_from(kinds))
    text, secret = shaped_value(kind, random.Random(draw(st.integers(0, 2**32))))
    before, after = draw(st.sampled_from(SURROUNDINGS))
    nesting = draw(st.sampled_from(NESTINGS))
    if draw(st.booleans()):
        cut = draw(st.integers(1, len(text) - 1))
        fields = list(split_fields(text, cut, before, after))
    else:
        fields = [before + text + after]
    background = (before, after, "header", "footer", "notes")
    return PrivacyCase(kind, secret, _nest(fields, nesting), background)


# -- values written in a form a reader decodes (tests/unit/test_privacy_encodings.py) ---------

PSEUDONYM = re.compile(r"<[A-Z][A-Z0-9_]*_[0-9]+>")
ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad")


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
LOOKALIKES = dict(zip("aeopcxyABEKMHOPCTX", "аеорсхуАВЕКМНОРСТХ", strict=True))
"""Latin letters and the Cyrillic ones that look the same."""
ENCODINGS = (
    *CHAR_CODES,
    "lookalike",
    "hex", "zero_width", "nbsp", "dashes", "base64", "base64_url", "base64_of_percent",
)  # fmt: skip
DASHES = ("\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2212", "\ufe63")


def encode(text: str, how: str, picked: list[int], zw: str) -> str:
    """``text`` with the characters at ``picked`` written as ``how`` writes them (or a
    zero-width character after each of them; base64 encodes the whole)."""
    if how in CHAR_CODES:
        code = CHAR_CODES[how]
        return "".join(code(c) if i in picked else c for i, c in enumerate(text))
    if how == "zero_width":
        return "".join(c + zw if i in picked else c for i, c in enumerate(text))
    if how == "hex":
        return text.encode().hex()
    if how == "lookalike":
        return "".join(LOOKALIKES.get(c, c) if i in picked else c for i, c in enumerate(text))
    if how == "dashes" and "-" in text:
        return text.replace("-", DASHES[len(picked) % len(DASHES)])
    if how in ("nbsp", "dashes"):
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
    every hex or base64-alphabet run decoded."""
    latin = {v: k for k, v in LOOKALIKES.items()}
    plain = "".join(latin.get(c, c) for c in text if unicodedata.category(c) != "Cf")
    plain = "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in plain)
    plain = unicodedata.normalize("NFKC", plain)
    plain = "".join("-" if unicodedata.category(c) == "Pd" or c == "\u2212" else c for c in plain)
    plain = html.unescape(urllib.parse.unquote(plain))
    plain = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), plain)
    out = [text, plain]
    for token in re.findall(r"(?:[0-9a-fA-F]{2}){8,}", plain):
        try:
            out.append(bytes.fromhex(token).decode())
        except ValueError:
            pass
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


# -- values cut across dict keys and values, digits given as numbers, long requests ----------

KEYED_PLACES = ("key_then_value", "value_then_key", "adjacent_keys", "keys_apart")
"""Where the two pieces of a cut value go: a key and its value; a value and the next key;
two keys with no string between them; two keys with string values between them."""
FILLERS: tuple[Any, ...] = (1, None, True, 2.5, [], {}, [7, 8], {"n": 1})
"""Values (not strings) under a key that holds a piece."""
BENIGN_TEXTS = (
    "header", "footer", "see the attached notes", "Europe/Paris", "status: ok",
    "retry in 5 minutes", "v1.2.3", "the order shipped",
)  # fmt: skip


def _wrap(draw: st.DrawFn, value: Any, depth: int) -> Any:
    """``value`` nested ``depth`` levels deep in lists and dicts, with benign siblings."""
    for _ in range(depth):
        before = draw(st.sampled_from(BENIGN_TEXTS))
        after = draw(st.sampled_from(BENIGN_TEXTS))
        shape = draw(st.sampled_from(("list", "dict", "list_alone", "dict_alone")))
        if shape == "list":
            value = [before, value, after]
        elif shape == "dict":
            value = {"before": before, "item": value, "after": after}
        elif shape == "list_alone":
            value = [value]
        else:
            value = {"item": value}
    return value


@st.composite
def keyed_cases(draw: st.DrawFn, kinds: tuple[str, ...] = SHAPE_KINDS) -> PrivacyCase:
    """A value of any kind, with text around it or not, cut at any position into two
    pieces that go into dict keys and values (:data:`KEYED_PLACES`), nested at any depth."""
    kind = draw(st.sampled_from(kinds))
    text, secret = shaped_value(kind, random.Random(draw(st.integers(0, 2**32))))
    before, after = draw(st.sampled_from(SURROUNDINGS))
    a, b = split_fields(text, draw(st.integers(1, len(text) - 1)), before, after)
    place = draw(st.sampled_from(KEYED_PLACES))
    filler = draw(st.sampled_from(FILLERS))
    if place == "key_then_value":
        obj: dict[str, Any] = {a: b}
    elif place == "value_then_key":
        obj = {"note": a, b: filler}
    elif place == "adjacent_keys":
        obj = {a: filler, b: draw(st.sampled_from(FILLERS))}
    else:
        obj = {a: "first", b: "second"}
    args = _wrap(draw, obj, draw(st.integers(0, 4)))
    background = (before, after, "note", "first", "second", *BENIGN_TEXTS)
    return PrivacyCase(f"{kind}/{place}", secret, {"data": args}, background)


@dataclass(frozen=True)
class NumberCase:
    kind: str
    pieces: tuple[str, ...]
    """The pieces the digits were cut into, as text: none may reach a server."""
    args: dict[str, Any]
    text: str = ""
    """For groups on separate lines: the string that holds them."""


@st.composite
def number_cases(draw: st.DrawFn) -> NumberCase:
    """A card number given as numbers: its digits cut into pieces (its own groups, one digit
    each, or cut at any positions), each piece an int or a digit string, as the items of a
    list (with a label before them or not) or the values of a dict, nested at any depth
    among text; or its groups on separate lines of one string."""
    text, _ = shaped_value("credit_card", random.Random(draw(st.integers(0, 2**32))))
    digits = "".join(c for c in text if c.isdigit())
    how = draw(st.sampled_from(("groups", "single", "cuts", "lines")))
    if how == "lines":
        sep = draw(st.sampled_from(("\n", "\r\n", "\n  ")))
        lines = sep.join(re.split(r"[^0-9]+", text))
        before, after = draw(st.sampled_from(SURROUNDINGS))
        args = {"data": _wrap(draw, before + lines + after, draw(st.integers(0, 3)))}
        return NumberCase("card/lines", (), args, lines)
    if how == "groups":
        pieces = re.split(r"[^0-9]+", text)
    elif how == "single":
        pieces = list(digits)
    else:
        cuts = sorted(draw(st.sets(st.integers(1, len(digits) - 1), min_size=1, max_size=8)))
        pieces = [digits[i:j] for i, j in zip([0, *cuts], [*cuts, len(digits)], strict=True)]
    as_ints = draw(st.lists(st.booleans(), min_size=len(pieces), max_size=len(pieces)))
    items: list[Any] = [
        int(p) if use_int and not p.startswith("0") else p
        for p, use_int in zip(pieces, as_ints, strict=True)
    ]
    obj: Any
    if draw(st.booleans()):
        label = draw(st.sampled_from(("card", "pan", "n", "data", "card number:")))
        obj = [label, *items] if draw(st.booleans()) else items
    else:
        obj = {f"g{i}": item for i, item in enumerate(items)}
    args = {"data": _wrap(draw, obj, draw(st.integers(0, 3)))}
    return NumberCase(f"card/{how}", tuple(pieces), args)


@st.composite
def crowded_cases(draw: st.DrawFn, kinds: tuple[str, ...] = SHAPE_KINDS) -> PrivacyCase:
    """A value cut in two adjacent strings somewhere among hundreds to thousands of benign
    strings (past the first 512)."""
    kind = draw(st.sampled_from(kinds))
    text, secret = shaped_value(kind, random.Random(draw(st.integers(0, 2**32))))
    a, b = split_fields(text, draw(st.integers(1, len(text) - 1)))
    n = draw(st.integers(520, 2500))
    at = draw(st.integers(0, n))
    crowd = [f"line {i}: {BENIGN_TEXTS[i % len(BENIGN_TEXTS)]}" for i in range(n)]
    items = [*crowd[:at], a, b, *crowd[at:]]
    return PrivacyCase(f"{kind}/crowd@{at}", secret, {"lines": items}, (*crowd[:1],))


# -- values in three or four pieces; numbers inside longer runs (gaps closed later) ----------

LONG_KINDS = ("jwt", "github_token", "openai_key", "slack_token", "email")
"""Kinds whose values are long enough for a middle piece of more than 24 characters."""


def _pieces(draw: st.DrawFn, text: str, n: int, long_middle: bool = False) -> list[str]:
    if long_middle:
        first = draw(st.integers(1, max(1, len(text) - 27)))
        second = draw(st.integers(min(len(text) - 1, first + 25), len(text) - 1))
        cuts = [first, second]
        if n == 4 and second < len(text) - 1:
            cuts.append(draw(st.integers(second + 1, len(text) - 1)))
    else:
        cuts = sorted(draw(st.sets(st.integers(1, len(text) - 1), min_size=n - 1, max_size=n - 1)))
    return [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]


ALTERNATING = ("k-v-k", "v-k-v", "k-v-k-v", "v-k-v-k", "k-k-v", "k-v-v")


def _place(draw: st.DrawFn, shape: str, pieces: list[str]) -> Any:
    filler = draw(st.sampled_from(FILLERS))
    p = pieces
    if shape == "k-v-k":
        return {p[0]: p[1], p[2]: filler}
    if shape == "v-k-v":
        return {"note": p[0], p[1]: p[2]}
    if shape == "k-v-k-v":
        return {p[0]: p[1], p[2]: p[3]}
    if shape == "v-k-v-k":
        return {"note": p[0], p[1]: p[2], p[3]: filler}
    if shape == "k-k-v":
        return {p[0]: {p[1]: p[2]}}
    return {p[0]: [p[1], p[2]]}


@st.composite
def alternating_cases(draw: st.DrawFn) -> PrivacyCase:
    kind = draw(st.sampled_from(SHAPE_KINDS))
    text, secret = shaped_value(kind, random.Random(draw(st.integers(0, 2**32))))
    shape = draw(st.sampled_from(ALTERNATING))
    n = 4 if shape.count("-") == 3 else 3
    pieces = _pieces(draw, text, n)
    if len(pieces) < n:
        pieces.append("")
    assume(len(set(pieces)) == len(pieces))  # (two equal keys would be one)
    args = _wrap(draw, _place(draw, shape, pieces), draw(st.integers(0, 3)))
    return PrivacyCase(f"{kind}/{shape}", secret, {"data": args}, ("note", *BENIGN_TEXTS))


@st.composite
def long_middle_cases(draw: st.DrawFn) -> PrivacyCase:
    kind = draw(st.sampled_from(LONG_KINDS))
    text, secret = shaped_value(kind, random.Random(draw(st.integers(0, 2**32))))
    assume(len(text) >= 30)  # long enough for a middle piece of 25 characters or more
    n = draw(st.sampled_from((3, 4)))
    pieces = _pieces(draw, text, n, long_middle=True)
    n = len(pieces)
    assume(len(set(pieces)) == n)
    where = draw(st.sampled_from(("fields", "list", "alternating")))
    if where == "fields":
        obj: Any = {f"f{i}": piece for i, piece in enumerate(pieces)}
    elif where == "list":
        obj = ["header", *pieces, "footer"]
    else:
        obj = {pieces[0]: pieces[1], **({pieces[2]: pieces[3]} if n == 4 else {pieces[2]: 1})}
    args = _wrap(draw, obj, draw(st.integers(0, 3)))
    return PrivacyCase(
        f"{kind}/{where}/{n}", secret, {"data": args}, ("header", "footer", *BENIGN_TEXTS)
    )


@st.composite
def card_in_a_longer_run(draw: st.DrawFn) -> tuple[list[object], list[str]]:
    """A card's digits as numbers (one digit per item, or its own groups; ints, integral
    floats or digit strings) with other numbers of other widths before and after it (an
    expiry month and year, a count): the list, and the pieces that must not remain."""
    text, _ = shaped_value("credit_card", random.Random(draw(st.integers(0, 2**32))))
    groups = [g for g in text.replace("-", " ").split() if g]
    pieces = list("".join(groups)) if draw(st.booleans()) else groups
    width = len(pieces[0]) if len({len(p) for p in pieces}) == 1 else 0
    other = st.integers(10, 99) if width != 2 else st.integers(100, 999)
    before = draw(st.lists(other, max_size=3))
    after = draw(st.lists(other, max_size=3))
    if not before and not after:
        after = [draw(other)]

    def as_number(piece: str) -> object:
        how = draw(st.sampled_from(("int", "float", "str")))
        if how == "str" or piece.startswith("0"):
            return piece
        return int(piece) if how == "int" else float(piece)

    return [*before, *[as_number(p) for p in pieces], *after], pieces


_DIGEST = re.compile(r"(?<![0-9a-f])(?=[0-9a-f]*[a-f])[0-9a-f]{12,}(?![0-9a-f])")


def without_digests(text: str) -> str:
    """``text`` with its hex digests (audit MACs, value digests, ids) taken out: a search for
    a raw value's digits (``"4111"``) must not find them by chance inside a hash. A run of
    digits alone is kept (a card number written without spaces is one)."""
    return _DIGEST.sub("<digest>", text)

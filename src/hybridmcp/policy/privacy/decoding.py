"""The text a reader would decode from a string: the views every detector also runs on.

A value need not be written in the form a detector knows to reach a server intact: the server
(or whoever reads its logs) can undo an encoding as easily as we can. So a string is also
read as:

- its **surface** form: Unicode compatibility forms folded (full-width ``４１１１``, ``＠``,
  ligatures; NFKC), digits of any script as ASCII digits (``٤١١١``), Cyrillic and Greek
  letters that look Latin as those (``аlice`` with a Cyrillic ``а``), invisible format
  characters dropped (zero-width space and joiners, soft hyphen, BOM: Unicode category
  ``Cf``), other spaces (no-break, thin, ideographic) and tabs as a plain space, and the
  escapes a transport adds undone: percent-encoding (``alice%40example.com``), JSON and
  C-style backslash escapes (``\\u0040``, ``\\x40``, ``\\n``) and numeric HTML entities
  (``&#64;``);
- each **base64** token (standard or URL-safe alphabet, 12+ characters) and each run of
  **hex** digit pairs (16+ digits) that decodes to printable UTF-8 text, as that text.

Each view maps a span of its text back to the span of the original string it came from (a
finding inside a decoded base64 token covers the whole token), so redaction replaces the
original characters. Views are made only when the string holds something to decode: plain
ASCII text without ``%XX``, a backslash, ``&#`` or a long base64-alphabet run has none.
Pure functions; :func:`hybridmcp.policy.privacy.detection._detect` runs the detectors on the
views (and, through itself, on views of views: an encoding inside another).
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass

_ESCAPE_RE = re.compile(
    r"%[0-9A-Fa-f]{2}"  # percent-encoding
    r"|\\(?:u[0-9A-Fa-f]{4}|x[0-9A-Fa-f]{2}|[nrt/\"'\\])"  # JSON and C escapes
    r"|&#(?:[0-9]{1,7}|[xX][0-9A-Fa-f]{1,6});"  # numeric HTML entities
)
_BASE64_RE = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{12,}={0,2}(?![A-Za-z0-9+/_=-])")
_ESCAPED_CHARS = {"n": "\n", "r": "\r", "t": "\t", "/": "/", '"': '"', "'": "'", "\\": "\\"}
MAX_BASE64_TOKENS = 32
"""Base64 tokens decoded per string (a string of more is read for its first ones)."""
MIN_DECODED_CHARS = 8
"""Decoded text shorter than this holds no value worth a view."""


@dataclass(frozen=True)
class View:
    """A decoded reading of a string; ``spans[i]`` is the span of the original string that
    character ``i`` of ``text`` came from (``whole``: every character came from that one)."""

    text: str
    spans: tuple[tuple[int, int], ...] = ()
    whole: tuple[int, int] | None = None
    length: int = 0
    """The original string's length."""

    def source(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original string that ``text[start:end]`` came from, with the
        invisible characters right after it (a value ends where the next visible one
        starts)."""
        if self.whole is not None:
            return self.whole
        last = self.spans[max(start, end - 1)][1]
        after = self.spans[end][0] if end < len(self.spans) else self.length
        return self.spans[start][0], max(last, after)


def _needs_surface(text: str) -> bool:
    return not text.isascii() or "\t" in text or _ESCAPE_RE.search(text) is not None


def _unescape(token: str) -> str | None:
    """The character an escape stands for (None: leave it as written)."""
    try:
        if token[0] == "%":
            code = int(token[1:], 16)
            return chr(code) if code < 0x80 else None  # one byte of UTF-8: ASCII only
        if token[0] == "&":
            body = token[2:-1]
            code = int(body[1:], 16) if body[:1] in "xX" else int(body)
            return chr(code) if 0 < code <= 0x10FFFF else None
        if token[1] == "u":
            return chr(int(token[2:], 16))
        if token[1] == "x":
            return chr(int(token[2:], 16))
        return _ESCAPED_CHARS[token[1]]
    except (ValueError, KeyError):
        return None


_CONFUSABLES = dict(
    zip(
        "АВЕЅІЈКМНОРСТХУаеіјорсхуѕԁһԛԝΑΒΕΖΗΙΚΜΝΟΡΤΥΧοναρτυχℓ",
        "ABESIJKMHOPCTXYaeijopcxysdhqwABEZHIKMNOPTYXovaptuxl",
        strict=True,
    )
)
"""Letters of other scripts that read as Latin ones (Cyrillic ``а`` in ``аlice@...``)."""


def _fold(ch: str) -> str:
    """One character's surface form."""
    if ch.isascii():
        return " " if ch == "\t" else ch
    latin = _CONFUSABLES.get(ch)
    if latin is not None:
        return latin
    category = unicodedata.category(ch)
    if category == "Cf":
        return ""
    if category == "Zs":
        return " "
    if category == "Pd" or ch == "\u2212":  # hyphens and dashes of every kind, the minus sign
        return "-"
    if ch.isdecimal():
        return str(unicodedata.decimal(ch))
    return unicodedata.normalize("NFKC", ch)


def surface(text: str) -> View | None:
    """The surface view of ``text`` (see the module), or None when it reads the same."""
    if not _needs_surface(text):
        return None
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    pos = 0
    for match in _ESCAPE_RE.finditer(text):
        _fold_into(text, pos, match.start(), out, spans)
        char = _unescape(match.group(0))
        if char is None:
            _fold_into(text, match.start(), match.end(), out, spans)
        else:
            for folded in _fold(char):
                out.append(folded)
                spans.append(match.span())
        pos = match.end()
    _fold_into(text, pos, len(text), out, spans)
    view = "".join(out)
    return None if view == text else View(view, tuple(spans), length=len(text))


def _fold_into(
    text: str, start: int, end: int, out: list[str], spans: list[tuple[int, int]]
) -> None:
    chunk = text[start:end]
    if chunk.isascii() and "\t" not in chunk:
        out.append(chunk)
        spans.extend((i, i + 1) for i in range(start, end))
        return
    for i in range(start, end):
        for folded in _fold(text[i]):
            out.append(folded)
            spans.append((i, i + 1))


def _printable(text: str) -> bool:
    return all(ch.isprintable() or ch in "\n\r\t" for ch in text)


def base64_views(text: str) -> list[View]:
    """Each base64 token of ``text`` that decodes to printable UTF-8 text, as that text."""
    views = []
    for n, match in enumerate(_BASE64_RE.finditer(text)):
        if n >= MAX_BASE64_TOKENS:
            break
        token = match.group(0).rstrip("=")
        if len(token) % 4 == 1:
            continue
        padded = token + "=" * (-len(token) % 4)
        try:
            if "-" in token or "_" in token:
                raw = base64.urlsafe_b64decode(padded)
            else:
                raw = base64.b64decode(padded, validate=True)
            decoded = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        if len(decoded) >= MIN_DECODED_CHARS and _printable(decoded):
            views.append(View(decoded, whole=match.span()))
    return views


_HEX_RE = re.compile(r"(?<![0-9A-Za-z])(?:[0-9a-fA-F]{2}){8,}(?![0-9A-Za-z])")


def hex_views(text: str) -> list[View]:
    """Each run of hex digit pairs (16+ digits) that decodes to printable UTF-8 text, as that
    text (a hash or an id decodes to bytes that are not text)."""
    views = []
    for n, match in enumerate(_HEX_RE.finditer(text)):
        if n >= MAX_BASE64_TOKENS:
            break
        try:
            decoded = bytes.fromhex(match.group(0)).decode("utf-8")
        except ValueError:
            continue
        if len(decoded) >= MIN_DECODED_CHARS and _printable(decoded):
            views.append(View(decoded, whole=match.span()))
    return views


def decoded_views(text: str) -> list[View]:
    """Every view of ``text`` other than itself: its surface form, if it differs, and its
    base64 and hex tokens' texts (read from the surface form, mapped back to ``text``)."""
    shown = surface(text)
    views = [] if shown is None else [shown]
    read = text if shown is None else shown.text
    for view in [*base64_views(read), *hex_views(read)]:
        if shown is not None and view.whole is not None:
            view = View(view.text, whole=shown.source(*view.whole))
        views.append(view)
    return views

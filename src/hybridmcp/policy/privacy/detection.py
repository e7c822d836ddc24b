"""String-level detection: every detector on one string, cached."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hybridmcp.policy.privacy.decoding import decoded_views
from hybridmcp.policy.privacy.engines import (
    _WORD_RE,
    _analyzer,
    _entropy_plugin,
    _keyword_regexes,
    _secret_plugins,
    may_load,
)
from hybridmcp.policy.privacy.levels import _PRESIDIO_ENTITIES, PrivacyConfig
from hybridmcp.policy.privacy.patterns import (
    _CANDIDATE_TOKEN_RE,
    _PATTERNS,
    _PSEUDONYM_RE,
    _cursor,
)


@dataclass(frozen=True, slots=True)
class _Span:
    entity_type: str
    start: int
    end: int
    score: float
    source: str


@dataclass(frozen=True)
class _DetectorKey:
    """The parts of a config that change what is detected in a string: the cache key."""

    min_score: float
    entities: frozenset[str]
    allow_list: frozenset[str]


def _detector_key(config: PrivacyConfig) -> _DetectorKey:
    return _DetectorKey(
        min_score=config.min_score,
        entities=config.active_entities(),
        allow_list=frozenset(v.strip().lower() for v in config.allow_list),
    )


def _is_templated(value: str) -> bool:
    # Placeholders, our own pseudonyms included, so that redacted text scans clean.
    may_load("detect_secrets.filters.heuristic")
    from detect_secrets.filters.heuristic import (
        is_prefixed_with_dollar_sign,
        is_templated_secret,
    )

    return bool(
        _PSEUDONYM_RE.fullmatch(value)
        or is_templated_secret(value)
        or is_prefixed_with_dollar_sign(value)
    )


def _plausible_secret(value: str, line: str) -> bool:
    """detect-secrets' own false-positive filters, applied to the loose detectors."""
    may_load("detect_secrets.filters.heuristic")
    from detect_secrets.filters.heuristic import (
        is_indirect_reference,
        is_likely_id_string,
        is_not_alphanumeric_string,
        is_potential_uuid,
        is_sequential_string,
    )

    if not value or _is_templated(value):
        return False
    if is_not_alphanumeric_string(value) or is_sequential_string(value):
        return False
    if is_potential_uuid(value) or is_likely_id_string(value, line):
        return False
    return not is_indirect_reference(line)


def _presidio_spans(
    text: str, context: tuple[str, ...], key: _DetectorKey, phones: bool = True
) -> list[_Span]:
    """Presidio's findings (``phones=False``: without its phone recognizer, libphonenumber's
    matcher, by far its costliest; phones by shape are patterns of our own)."""
    entities = sorted(key.entities & _PRESIDIO_ENTITIES - (set() if phones else {"PHONE_NUMBER"}))
    if not entities or not presidio_candidate(text, key.entities):
        # The cheap pre-scan: without it, Presidio (a second to import and build) would load
        # for the first request that has a digit or a colon in it.
        return []
    results = _analyzer().analyze(
        text=text, language="en", entities=entities, context=list(context) or None
    )
    spans = []
    for r in results:
        score = float(r.score)
        score -= _shape_doubt(r.entity_type, text, r.start, r.end)
        if r.entity_type == "IP_ADDRESS" and _version_like(text, r.start, r.end, context):
            continue
        if (
            r.entity_type == "PHONE_NUMBER"
            and score <= 0.5
            and not _phone_shaped(text[r.start : r.end])
        ):
            continue
        spans.append(_Span(r.entity_type, r.start, r.end, score, "presidio"))
    return spans


_CANDIDATE_RE = re.compile(
    r"@"  # email
    r"|[0-9](?:[\s().,/-]{0,3}[0-9]){5,}"  # phone, card, SSN, IBAN, account, licence numbers
    r"|[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}"  # IPv4
    r"|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}"  # IPv6, MAC
    r"|[0-9A-Fa-f]{2}-[0-9A-Fa-f]{2}-[0-9A-Fa-f]{2}-"  # MAC with dashes
    r"|\b(?:[13][1-9A-HJ-NP-Za-km-z]{25,34}|bc1[0-9a-z]{20,}|0x[0-9a-fA-F]{40})"  # crypto
)


# Entities off by default whose shapes the pre-scan above does not cover.
_LOOSE_CANDIDATES = {"URL": re.compile(r"\."), "UUID": re.compile(r"[0-9a-fA-F]{8}-")}
_DIGIT_RE = re.compile(r"[0-9]")


def presidio_candidate(text: str, entities: frozenset[str] = frozenset()) -> bool:
    """Whether ``text`` could hold anything a Presidio recognizer of ``entities`` finds."""
    if _CANDIDATE_RE.search(text) is not None:
        return True
    for entity in entities & _LOOSE_CANDIDATES.keys():
        if _LOOSE_CANDIDATES[entity].search(text):
            return True
    return bool(entities & {"DATE_TIME", "UK_NHS"}) and _DIGIT_RE.search(text) is not None


_VERSION_WORD_RE = re.compile(
    r"(?i)(?:\bv|version|ver\.?|release|rel\.?|section|sec\.?|§|build|chapter|rev\.?|step"
    r"|clause|article|art\.?|rule|item|no\.?|firmware|fw|sdk|api|python|node)\W{0,3}\Z"
)
_IP_WORDS = frozenset(
    "ip ips ipv4 addr address host hostname server client remote src dst destination "
    "gateway dns peer proxy connect connected ping subnet cidr endpoint nameserver listen bind "
    "origin forwarded".split()
)


_VERSION_FIELD_WORDS = frozenset(
    "version versions ver release releases build builds tag tags semver revision rev".split()
)


def _version_like(text: str, start: int, end: int, context: tuple[str, ...]) -> bool:
    """A dotted quad that reads as a version or a section number, not an address.

    "1.2.3.4", "4.7.2.0" and "Section 2.3.1.4" pass Presidio's IPv4 pattern. Without a word
    about addresses nearby (or in the field's name), a quad after "version", "v", "section"
    and the like, one in a field named like ``version``, or one whose parts are all small
    (<= 20, other than 10.x private ranges), is read as a version.
    """
    value = text[start:end]
    parts = value.split(".")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        return False
    near = set(_WORD_RE.findall(text[max(0, start - 40) : start].lower())[-4:])
    if near & _IP_WORDS or _IP_WORDS.intersection(context):
        return False
    if _VERSION_WORD_RE.search(text[max(0, start - 16) : start]):
        return True
    if _VERSION_FIELD_WORDS.intersection(context):
        return True  # a field named "version": "1.8.7" and "1.22.5" glued are not an address
    return parts[0] != "10" and all(int(p) <= 20 for p in parts)


def _phone_shaped(value: str) -> bool:
    """Written as people write phone numbers: '+', parentheses, a trunk 0, or 3-3-4 / 5-5."""
    if value.startswith(("+", "(", "0")):
        return True
    groups = [len(g) for g in re.split(r"[^0-9]+", value) if g]
    return groups in ([3, 3, 4], [5, 5])


def _shape_doubt(entity: str, text: str, start: int, end: int) -> float:
    """How much less to trust a match that does not look written as what it claims to be.

    Pattern recognizers and libphonenumber accept any digit run that fits: build numbers, epoch
    times, the middle of a hex checksum, the digits of "ORD-2024-965646". Real values stand as
    their own token, and people write phone numbers with a "+", spaces, dashes or parentheses.
    The penalties push such matches below the default threshold unless context (a nearby
    "phone", a field named ``mobile``) lifted them first.
    """
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    doubt = 0.6 if before.isalnum() or after.isalnum() else 0.0
    if entity == "PHONE_NUMBER":
        if text[start:end].isdigit():
            doubt += 0.1
        if not doubt and (before in "-#/._" or after in "-_/"):
            doubt += 0.3
    return doubt


def _occurrences(text: str, value: str) -> Iterable[tuple[int, int]]:
    start = text.find(value)
    while start >= 0:
        yield start, start + len(value)
        start = text.find(value, start + 1)


_Rule = tuple[str, Any, tuple[re.Pattern[str], ...] | None]
"""A typed plugin's entity, the plugin, and its regexes when they are run here (None when the
plugin is asked for values: it validates them itself, as JWT does)."""


@dataclass(frozen=True)
class _SecretRules:
    every: tuple[_Rule, ...]
    joined: re.Pattern[str] | None
    """Matches wherever any regex it joins would: a cheap first look (None: nothing joined)."""
    unjoined: tuple[_Rule, ...]
    """What still runs when ``joined`` finds nothing: value plugins, and regexes that could not
    be joined exactly."""


FIRST_LOOK = True
"""Whether :func:`_secret_spans` looks with the joined regex first (it decides the same)."""


@functools.cache
def _secret_rules() -> _SecretRules:
    """The typed plugins sorted out once (they are stateless, their regexes class constants),
    and their regexes joined in one alternation, each with its own flags scoped, so that one
    search tells whether any of them can match a string at all: most strings (numbers, words,
    times) match none. A regex that cannot be joined exactly (other flags, group references,
    named groups) runs always."""
    plugins = _secret_plugins()
    may_load("detect_secrets.plugins.base")
    from detect_secrets.plugins.base import RegexBasedDetector

    every: list[_Rule] = []
    unjoined: list[_Rule] = []
    parts: list[str] = []
    for entity, plugin in plugins:
        runs = isinstance(plugin, RegexBasedDetector)
        if not runs or "analyze_string" in type(plugin).__dict__:
            every.append((entity, plugin, None))
            unjoined.append((entity, plugin, None))
            continue
        regexes = tuple(plugin.denylist)
        every.append((entity, plugin, regexes))
        alone = []
        for regex in regexes:
            part = _joinable(regex)
            if part is None:
                alone.append(regex)
            else:
                parts.append(part)
        if alone:
            unjoined.append((entity, plugin, tuple(alone)))
    try:
        joined = re.compile("|".join(parts)) if parts else None
    except re.error:  # a pattern that only compiles alone: no first look, every regex runs
        joined = None
    return _SecretRules(tuple(every), joined, tuple(unjoined) if joined else tuple(every))


_JOINABLE_FLAGS = re.IGNORECASE | re.MULTILINE | re.DOTALL
_FLAG_LETTERS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"))
_BACKREF_RE = re.compile(r"\\[1-9]|\(\?P=|\(\?\(")
_LEADING_FLAGS_RE = re.compile(r"\A\(\?[imsx]+\)")


def _joinable(regex: re.Pattern[str]) -> str | None:
    """``regex`` as a part of an alternation that matches exactly where it does: its flags
    scoped to it (a leading ``(?i)`` is in its flags already); None when that cannot be
    exact (other flags, group references, named groups)."""
    flags = regex.flags & ~re.UNICODE
    if flags & ~_JOINABLE_FLAGS or regex.groupindex or _BACKREF_RE.search(regex.pattern):
        return None
    pattern = _LEADING_FLAGS_RE.sub("", regex.pattern, count=1)
    if "(?" in pattern and re.search(r"\(\?[aiLmsux]", pattern):
        return None  # inline flags elsewhere
    letters = "".join(c for f, c in _FLAG_LETTERS if flags & f)
    return f"(?{letters}:{pattern})" if letters else f"(?:{pattern})"


@functools.cache
def _pattern_look() -> tuple[re.Pattern[str] | None, tuple[Any, ...]]:
    """Our own patterns' first look, as :func:`_secret_rules` for the plugins: the joined
    regex, and the patterns that still run when it finds nothing."""
    parts, alone = [], []
    for pattern in _PATTERNS:
        part = _joinable(pattern.regex)
        if part is None:
            alone.append(pattern)
        else:
            parts.append(part)
    try:
        return (re.compile("|".join(parts)) if parts else None), tuple(alone)
    except re.error:
        return None, tuple(_PATTERNS)


def _plugin_matches(
    plugin: Any, regexes: tuple[re.Pattern[str], ...] | None, text: str
) -> Iterable[tuple[int, int]]:
    """Spans of one typed plugin's matches in ``text`` (``regexes``: see :func:`_secret_rules`).

    The plugins yield values, not positions, and for a regex with a group they yield the group:
    the password of ``://user:pass@``, but also just ``ghp`` of a GitHub token. So the regexes
    are run here with ``finditer``: a group counts as the secret when it reaches (nearly) the end
    of the match or is long enough to be a value rather than a prefix; otherwise the whole match
    is the secret. Plugins with their own validation (JWT) are asked for values, located here.
    """
    if regexes is None:
        for value in set(plugin.analyze_string(text)):
            if value:
                yield from _occurrences(text, value)
        return
    for regex in regexes:
        for match in regex.finditer(text):
            groups = [
                match.span(i)
                for i in range(1, (regex.groups or 0) + 1)
                if match.start(i) >= 0 and match.end(i) > match.start(i)
            ]
            values = [(s, e) for s, e in groups if e >= match.end() - 2 or e - s >= 8]
            yield from values or [match.span()]


# Bounds on the work one string can cause. Several detect-secrets regexes backtrack
# quadratically (measured: its keyword rule takes 75 s on 20 kB of "passwordpassword...", its
# OpenAI rule 1 s on "sk-aaaa..." repeated). Typed plugins therefore run on windows of 4 kB
# (overlapping by 512 characters, longer than any token they know), and the keyword rules on
# lines, switching to a bounded rule of ours for long or keyword-dense lines.
_WINDOW = 4096
_OVERLAP = 512
_KEYWORD_LINE_MAX = 1000
_KEYWORDS_PER_LINE_MAX = 6
_KEYWORD_HINT_RE = re.compile(
    r"(?i)api_?key|auth_?key|service_?key|account_?key|db_?key|database_?key|priv_?key"
    r"|private_?key|client_?key|db_?pass|database_?pass|key_?pass|password|passwd|pwd|secret"
    r"|contrase(?:ñ|n)a"
)
_BOUNDED_KEYWORD_RE = re.compile(
    r"(?i)(?:api_?key|auth_?key|service_?key|account_?key|db_?key|database_?key|priv_?key"
    r"|private_?key|client_?key|db_?pass|database_?pass|key_?pass|password|passwd|pwd|secret"
    r"|contrase(?:ñ|n)a)\w{0,40}[\"'\]]{0,2}[ \t]{0,8}(?:={1,3}|:=|:|=>)[ \t]{0,8}"
    r"[\"'`]?([^\s\"'`,;]{1,256})"
)


def _windows(text: str) -> Iterable[tuple[int, str]]:
    if len(text) <= _WINDOW:
        yield 0, text
        return
    for start in range(0, len(text), _WINDOW - _OVERLAP):
        yield start, text[start : start + _WINDOW]
        if start + _WINDOW >= len(text):
            return


def _lines(text: str) -> Iterable[tuple[int, str]]:
    offset = 0
    for line in text.split("\n"):
        yield offset, line
        offset += len(line) + 1


_KEYWORD_LITERALS = ("key", "pass", "pwd", "secret", "contrase")
"""Every alternative of :data:`_KEYWORD_HINT_RE` holds one of these (in any case): text whose
case-folded form holds none of them has no keyword hint, a check many times cheaper than the
case-insensitive search (none of them has an ``i``, whose dotted and dotless forms fold apart)."""


def _may_hint(text: str) -> bool:
    folded = text.casefold()
    return any(word in folded for word in _KEYWORD_LITERALS)


def _keyword_spans(text: str) -> list[_Span]:
    spans: list[_Span] = []
    if not _may_hint(text):
        return spans
    for offset, line in _lines(text):
        hints = 0
        for _ in _KEYWORD_HINT_RE.finditer(line):
            hints += 1
            if hints > _KEYWORDS_PER_LINE_MAX:
                break
        if not hints:
            continue
        if len(line) <= _KEYWORD_LINE_MAX and hints <= _KEYWORDS_PER_LINE_MAX:
            rules = _keyword_regexes()
        else:
            rules = ((_BOUNDED_KEYWORD_RE, 1),)
        for regex, group in rules:
            for match in regex.finditer(line):
                start, end = match.span(group)
                if start > 0 and line[start - 1] not in "\"'`":
                    # Unquoted values in prose end at whitespace, not at the end of the line.
                    cut = re.search(r"\s", line[start:end])
                    end = start + cut.start() if cut else end
                    while end > start and line[end - 1] in ".,;:)]}":
                        end -= 1
                if _plausible_secret(line[start:end], line):
                    spans.append(
                        _Span("SECRET_KEYWORD", offset + start, offset + end, 0.8, "detect_secrets")
                    )
    return spans


def _secret_spans(text: str, key: _DetectorKey) -> list[_Span]:
    spans: list[_Span] = []
    rules = _secret_rules()
    short = len(text) <= _WINDOW
    # The first look covers a whole string: a long one is run in windows (whose edges can
    # change what an anchored regex matches), every rule on each.
    joined = rules.joined if short and FIRST_LOOK else None
    quiet = joined is not None and joined.search(text) is None
    for entity, plugin, regexes in rules.unjoined if quiet else rules.every:
        if entity not in key.entities:
            continue
        if short:
            found = set(_plugin_matches(plugin, regexes, text))
        else:
            found = {
                (offset + s, offset + e)
                for offset, window in _windows(text)
                for s, e in _plugin_matches(plugin, regexes, window)
            }
        for s, e in found:
            if entity == "BASIC_AUTH" and _is_templated(text[s:e]):
                continue
            spans.append(_Span(entity, s, e, 0.9, "detect_secrets"))
    if "SECRET_KEYWORD" in key.entities:
        spans += _keyword_spans(text)
    if "HIGH_ENTROPY_STRING" in key.entities:
        plugin = _entropy_plugin()
        for match in _CANDIDATE_TOKEN_RE.finditer(text):
            value = match.group(0)
            # Random credentials mix cases and digits; paths, words and hex hashes do not.
            # An id's lowercase type prefix (req_01HQ..., cus_9Z...) is not part of its
            # randomness: an upper-case ULID after it is an id, not a credential.
            body = _ID_PREFIX_RE.sub("", value, count=1)
            if not (re.search(r"[0-9]", body) and re.search(r"[a-z]", body)):
                continue
            if not re.search(r"[A-Z]", body) or re.fullmatch(r"[0-9a-fA-F]+", body):
                continue
            if plugin.calculate_shannon_entropy(value) <= plugin.entropy_limit:
                continue
            if _plausible_secret(value, value) and not _cursor(value):
                spans.append(_Span("HIGH_ENTROPY_STRING", *match.span(), 0.6, "detect_secrets"))
    return spans


def _pattern_spans(text: str, key: _DetectorKey) -> list[_Span]:
    spans: list[_Span] = []
    joined, alone = _pattern_look() if FIRST_LOOK else (None, ())
    quiet = joined is not None and joined.search(text) is None
    for pattern in alone if quiet else _PATTERNS:
        if pattern.entity not in key.entities:
            continue
        for match in pattern.regex.finditer(text):
            start, end = match.span(pattern.group)
            value = text[start:end]
            if end <= start or _is_templated(value):
                continue
            if pattern.trim is not None:
                cut = pattern.trim(value)
                if cut is None:
                    continue
                end = start + cut
            if pattern.accept is None or pattern.accept(text[start:end]):
                spans.append(_Span(pattern.entity, start, end, pattern.score, "pattern"))
    return spans


_ID_PREFIX_RE = re.compile(r"\A[a-z]{1,12}_")
_CACHE_MAX_CHARS = 4096


def _detect(
    text: str, context: tuple[str, ...], key: _DetectorKey, presidio: bool | str = True
) -> tuple:
    """All spans in one string that pass the config (``presidio``: Presidio's too; without,
    only the detectors of our own and detect-secrets run, see :func:`window_needs_presidio`;
    ``"no_phones"``: Presidio's but its phone recognizer).

    Requests repeat their strings (retries, hedged calls, the same field in every call of a
    run), so short strings are cached; long ones are not, which bounds the cache's memory to
    about 8192 x 4 kB.
    """
    if len(text) < 3:
        return ()
    if len(text) > _CACHE_MAX_CHARS:
        return _detect_uncached(text, context, key, presidio)
    return _detect_cached(text, context, key, presidio)


def _detect_uncached(
    text: str, context: tuple[str, ...], key: _DetectorKey, presidio: bool | str = True
) -> tuple:
    spans = _presidio_spans(text, context, key, presidio != "no_phones") if presidio else []
    spans += _secret_spans(text, key)
    spans += _pattern_spans(text, key)
    for view in decoded_views(text):
        # What a reader decodes from the text (full-width digits, zero-width characters,
        # %40, \u0040, base64, ...) is scanned too; a finding there covers the characters
        # of the text it came from (see :mod:`.decoding`).
        for span in _detect(view.text, context, key):
            start, end = view.source(span.start, span.end)
            spans.append(_Span(span.entity_type, start, end, span.score, span.source))
    decimals = _decimal_fractions(text)
    kept: dict[tuple[str, int, int], _Span] = {}
    for span in spans:
        if span.score < key.min_score or span.entity_type not in key.entities:
            continue
        if decimals and span.entity_type in _DIGIT_ENTITIES and _in_a_fraction(span, decimals):
            continue
        if key.allow_list and text[span.start : span.end].strip().lower() in key.allow_list:
            continue
        ident = (span.entity_type, span.start, span.end)
        if ident not in kept or kept[ident].score < span.score:
            kept[ident] = span
    return tuple(sorted(kept.values(), key=lambda s: (s.start, s.end, s.entity_type)))


_detect_cached = functools.lru_cache(maxsize=8192)(_detect_uncached)


_DECIMAL_RE = re.compile(r"(?<![0-9.,])[0-9]+(\.)[0-9]+(?![0-9]|[.,][0-9])")
"""A decimal number as written alone: digits, one point, digits (not a dotted group of a card
or phone number, ``4111.1111.1111.1111``, ``415.867.5309``, nor one of thousands' groups)."""
_DIGIT_ENTITIES = frozenset(
    {"CREDIT_CARD", "PHONE_NUMBER", "US_SSN", "US_ITIN", "US_BANK_NUMBER", "US_DRIVER_LICENSE",
     "US_PASSPORT", "UK_NHS", "MEDICAL_LICENSE", "AU_TFN", "AU_MEDICARE", "IN_AADHAAR"}
)  # fmt: skip
"""Entities written in digits alone: none of them is written with a decimal point."""


def _decimal_fractions(text: str) -> list[tuple[int, int]]:
    """Where the decimal point and the fraction of each decimal number in ``text`` lie."""
    if "." not in text:
        return []
    return [(m.start(1), m.end()) for m in _DECIMAL_RE.finditer(text)]


def _in_a_fraction(span: _Span, decimals: list[tuple[int, int]]) -> bool:
    """Whether a digits-only value reaches a decimal number's point or fraction: random
    digits after a point (a coordinate, ``51.10546875``; a ratio) pass Luhn one time in ten
    and fit a phone's length; a card or phone given as a float (``4111111111111111.0``) lies
    wholly before its point and is kept."""
    return any(span.start < end and span.end > point for point, end in decimals)


def window_needs_presidio(
    joined: str, boundaries: Iterable[tuple[int, int]], key: _DetectorKey
) -> bool:
    """Whether Presidio can find, in pieces joined into ``joined``, a value that crosses one
    of the ``boundaries`` (the ``(end of a piece, start of the next)`` positions); values
    within one piece were looked for in that piece alone.

    Presidio runs only on text :func:`presidio_candidate` accepts, and every recognizer but
    the email one matches digits, a dotted quad, a colon-separated address or a wallet
    address. A digit run (with its separators) is matched whole by :data:`_CANDIDATE_RE`, so a
    value across a boundary has a candidate match across it; so does a wallet address (looked
    for alone, so that a digit run before it cannot hide its start). Colon-separated matches
    can tile (``85a3`` | ``:0000``), so a colon near a boundary calls Presidio. An email can
    be cut anywhere around its ``@``: any ``@`` calls Presidio. Entities with looser
    candidates (URL, UUID, dates, NHS numbers) call it whenever they are enabled.
    """
    if "@" in joined or key.entities & _LOOSE_PRESIDIO:
        return True
    edges = list(boundaries)
    for end, start in edges:
        if ":" in joined[max(0, end - _COLON_REACH) : start + _COLON_REACH]:
            return True
    for regex in (_CANDIDATE_RE, _WALLET_RE):
        for match in regex.finditer(joined):
            s, e = match.span()
            if any(s < start and e > end for end, start in edges):
                return True
    return False


_COLON_REACH = 6
_WALLET_RE = re.compile(r"\b(?:[13][1-9A-HJ-NP-Za-km-z]{25,34}|bc1[0-9a-z]{20,}|0x[0-9a-fA-F]{40})")
_LOOSE_PRESIDIO = frozenset({*_LOOSE_CANDIDATES, "DATE_TIME", "UK_NHS"})

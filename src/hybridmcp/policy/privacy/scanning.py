"""Walking JSON values: :func:`scan` locates every sensitive span in a request's arguments."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hybridmcp.policy.privacy.decoding import surface
from hybridmcp.policy.privacy.detection import (
    _DIGIT_ENTITIES,
    _LOOSE_PRESIDIO,
    _WALLET_RE,
    _detect,
    _detector_key,
    _DetectorKey,
    _is_templated,
    _Span,
    presidio_candidate,
    window_needs_presidio,
)
from hybridmcp.policy.privacy.engines import _key_words, _supports
from hybridmcp.policy.privacy.levels import Finding, PrivacyConfig, Sensitivity, SensitivityReport
from hybridmcp.policy.privacy.patterns import _PSEUDONYM_RE, _SECRET_KEY_RE, _card_network

_SALT = secrets.token_bytes(16)


def _digest(raw: str) -> str:
    return hmac.new(_SALT, raw.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:12]


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def _is_leaf(value: Any) -> bool:
    return not isinstance(value, Mapping | list | tuple | bool) and value is not None


def _leaf_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < _INTEGRAL_FLOAT_MAX:
        return str(int(value))  # 4111111111111111.0 and 4.111111111111111e+15: its digits
    return str(value)


_INTEGRAL_FLOAT_MAX = 1e19


@dataclass
class _Leaf:
    path: str
    text: str
    in_key: bool = False
    words: tuple[str, ...] = ()
    """Words of the field names above the leaf: context for the detectors."""
    is_text: bool = True
    """A string (rather than a number rendered as text)."""
    key_no: int = -1
    """For a dict key: its number in document order (how a later walk masks it)."""
    masked: bool = False
    """For a dict key: its path is ``~k<index>`` (a finding in it does not leak it)."""


@dataclass
class _ScanState:
    key: _DetectorKey
    split: bool
    echo: re.Pattern[str] | None = None
    """Matches raw values found sensitive by a first pass (see :func:`scan`)."""
    echo_origin: dict[str, Finding] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    raw_values: dict[str, Finding] = field(default_factory=dict)
    leaves: list[_Leaf] = field(default_factory=list)
    values: list[_Leaf] = field(default_factory=list)
    """The string value leaves (not keys) in document order: windows of :func:`_window_pass`."""
    keys: list[_Leaf] = field(default_factory=list)
    """The dict keys in document order: windows of :func:`_window_pass`."""
    strings: list[_Leaf] = field(default_factory=list)
    """Keys and string values together in document order: windows of :func:`_window_pass`."""
    runs: list[tuple[list[_Leaf], bool]] = field(default_factory=list)
    """Runs of sibling scalars, and whether they are numbers (see :func:`_collect_runs`)."""
    presidio: bool | str = True
    """How windows call Presidio (see :func:`.detection._detect`)."""
    mixed: bool = False
    """Windows of keys and values together in threes and fours are being read (a value
    found in them is the keys' only when the values alone do not hold it)."""

    @property
    def mode(self) -> tuple[Any, ...]:
        """How windows are read now: part of what a clean window is remembered by."""
        return (self.presidio, self.mixed)

    mask: frozenset[int] = frozenset()
    """Numbers of the dict keys to mask: keys a value split across was found in last walk."""
    to_mask: set[int] = field(default_factory=set)
    """Numbers of unmasked dict keys a finding was added to in this walk: the next walk masks
    them (a path must not carry a raw key, and redaction finds a key's findings by its
    masked path)."""

    def add(self, leaf: _Leaf, span: _Span, split_of: str | None = None) -> None:
        raw = leaf.text[span.start : span.end]
        finding = Finding(
            path=leaf.path,
            entity_type=span.entity_type,
            start=span.start,
            end=span.end,
            score=round(span.score, 3),
            source=span.source,
            in_key=leaf.in_key,
            split_of=split_of,
            digest=_digest(raw),
        )
        self.findings.append(finding)
        if leaf.in_key and not leaf.masked:
            self.to_mask.add(leaf.key_no)
        if raw.strip() and raw not in self.raw_values:
            self.raw_values[raw] = finding


def _echo_spans(text: str, found: tuple[_Span, ...], state: _ScanState) -> tuple[_Span, ...]:
    """Occurrences of already-known sensitive values that nothing else flagged here."""
    if state.echo is None or len(text) < 6:
        return found
    extra = []
    for match in state.echo.finditer(text):
        s, e = match.span()
        if any(span.start <= s and e <= span.end for span in found):
            continue
        origin = state.echo_origin[match.group(0)]
        extra.append(_Span(origin.entity_type, s, e, origin.score, origin.source))
    return (*found, *extra)


def _member_path(
    path: str, index: int, key: str, key_no: int, state: _ScanState
) -> tuple[str, tuple]:
    spans = _echo_spans(key, _detect(key, (), state.key), state)
    if spans or key_no in state.mask:
        masked = f"{path}/~k{index}"
        return masked, spans
    return f"{path}/{_escape(key)}", ()


def _walk(node: Any, path: str, context: tuple[str, ...], state: _ScanState) -> None:
    if isinstance(node, Mapping):
        siblings: list[tuple[Any, _Leaf] | None] = []
        for index, (raw_key, child) in enumerate(node.items()):
            key = _leaf_text(raw_key)
            key_no = len(state.keys)
            child_path, key_spans = _member_path(path, index, key, key_no, state)
            key_leaf = _Leaf(
                child_path,
                key,
                in_key=True,
                key_no=key_no,
                masked=child_path.endswith(f"/~k{index}"),
            )
            state.leaves.append(key_leaf)
            state.keys.append(key_leaf)
            state.strings.append(key_leaf)
            for span in key_spans:
                state.add(key_leaf, span)
            words = _key_words(key) or context
            if _is_leaf(child):
                leaf = _scan_leaf(child, child_path, words, state)
                if _SECRET_KEY_RE.match(key) and not isinstance(child, float):
                    _flag_whole(leaf, state)
                siblings.append((child, leaf))
            else:
                siblings.append(None)
                _walk(child, child_path, words, state)
        _collect_runs(siblings, state)
    elif isinstance(node, list | tuple):
        siblings = []
        for index, child in enumerate(node):
            child_path = f"{path}/{index}"
            if _is_leaf(child):
                leaf = _scan_leaf(child, child_path, context, state)
                siblings.append((child, leaf))
            else:
                siblings.append(None)
                _walk(child, child_path, context, state)
        _collect_runs(siblings, state)
    elif _is_leaf(node):
        _scan_leaf(node, path, context, state)


def _scan_leaf(value: Any, path: str, context: tuple[str, ...], state: _ScanState) -> _Leaf:
    leaf = _Leaf(path, _leaf_text(value), words=context, is_text=isinstance(value, str))
    state.leaves.append(leaf)
    if leaf.is_text:
        state.values.append(leaf)
        state.strings.append(leaf)
    for span in _echo_spans(leaf.text, _detect(leaf.text, context, state.key), state):
        state.add(leaf, span)
    return leaf


def _flag_whole(leaf: _Leaf, state: _ScanState) -> None:
    text = leaf.text.strip()
    if "SECRET_KEYWORD" not in state.key.entities or not text or _is_templated(text):
        return
    if text.lower() in state.key.allow_list or text.lower() in {"true", "false", "none", "null"}:
        return
    start = leaf.text.index(text)
    state.add(leaf, _Span("SECRET_KEYWORD", start, start + len(text), 0.8, "pattern"))


_WINDOW_LEAVES = 4
"""A value is looked for across up to this many adjacent leaves (two halves, or four groups
of a card number in four fields)."""
_PAIR_EDGE = 64
"""Characters of a string joined with a dict key beside it (the value's start after its key,
a value's end before the next key); more when something found reaches the cut."""
_MIDDLE_MAX = 24
"""The longest middle part of a window of three or four that holds a space: the values
written with spaces (a card, a phone) are short; prose is not read in threes and fours."""
_MIDDLE_TOKEN_MAX = 512
"""The longest middle part of a window of three or four without a space: a token (a JWT, a
key, an address) can be cut anywhere, its middle part as long as the token."""


def _middle(text: str) -> bool:
    """Whether a string can be the middle piece of a value cut in three or more."""
    if len(text) <= _MIDDLE_MAX:
        return True
    return len(text) <= _MIDDLE_TOKEN_MAX and not _SPACE_RE.search(text)


_SPACE_RE = re.compile(r"\s")
_WINDOW_EDGE = 512
"""Characters of a leaf's end and start that take part in a window: a value split at a field
boundary lies within this distance of it (a long text is scanned whole on its own anyway)."""


def _window_pass(state: _ScanState) -> None:
    """Find values split across adjacent strings (in document order, through nesting).

    Windows of two to four neighbouring strings are joined with nothing (a value cut
    mid-token: "alice.smi" + "th@example.com") and with a space (parts given as words), and
    every detector runs on them. A finding that crosses a boundary is reported in each
    string it touches, with ``split_of`` naming their innermost common container, so
    redaction replaces the whole value wherever its pieces are. The string values are
    windowed (sibling fields, their keys between them), the dict keys too (a value cut over
    keys), and each key with the string just before and just after it in document order (a
    value cut between a key and its value, or between a value and the next key; joined with
    nothing only: a key is not a word of a sentence). Numbers
    take part through :func:`_run_pass` only: a list of integers is not one long number
    unless it is a run read whole.
    """
    seen: set[_Seen] = set()
    _windows_over(state.values, _WINDOW_LEAVES, state, seen)
    _windows_over(state.keys, _WINDOW_LEAVES, state, seen)
    strings = state.strings
    for i in range(len(strings) - 1):
        pair = strings[i : i + 2]
        if pair[0].in_key != pair[1].in_key:  # two keys: windowed with the keys above
            _scan_windows(pair, state, seen, ("",), _PAIR_EDGE)
    # A value in three or four pieces alternating between keys and values
    # ({"AKIAIO": {"SFODNN7": "EXAMPLE"}}, {"alice": "smith@exa", "mple.com": 1}).
    state.mixed = True
    _windows_over(strings, _WINDOW_LEAVES, state, seen, smallest=3, seps=("",), mixed=True)
    state.mixed = False
    _run_pass(state, seen)


_FIELD_NAME_RE = re.compile(
    r"(?=.{2,40}\Z)[a-z]*[aeiouy][a-z]*(?:[_-][a-z]*[aeiouy][a-z]*|[A-Z][a-z]*[aeiouy][a-z]*)*"
    r"(?:[_-]?[a-z0-9]{1,2})?"
)
"""A key as programs name fields: lowercase words with a vowel each, in snake, kebab or
camel case (``timezone``, ``source_timezone``, ``maxResults``), maybe a short part after
(``body_2``, ``part_b``)."""
_SECRET_WORDS = (
    "password", "passwd", "passphrase", "secret", "token", "apikey", "api_key", "xoxb-",
    "xoxp-", "xoxa-", "xoxr-", "xoxs-", "xoxe-", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
    "github_pat_", "glpat-", "sk_live_", "sk-proj-", "npm_", "pypi-", "dop_v1_", "shpat_",
)  # fmt: skip
"""Words and secrets' prefixes that make what follows them a secret: a key that is a piece of
one may be a piece of a value."""


def _field_name(key: str) -> bool:
    """Whether a key names a field (:data:`_FIELD_NAME_RE`, four characters or more) and is
    no piece of a word or prefix that makes what follows it a secret, nor holds one."""
    if len(key) < 4 or not _FIELD_NAME_RE.fullmatch(key):
        return False
    lowered = key.lower()
    return not any(lowered in word or word in lowered for word in _SECRET_WORDS)


def _names_fields_only(window: list[_Leaf]) -> bool:
    """Whether every key in ``window`` names a field (:data:`_FIELD_NAME_RE`, and no piece of
    a word that makes what follows a secret: "pa" + "ss" + "word=...") and no value in it
    holds an ``@``. A value in three or more pieces alternating with keys then has words for
    keys and no address in it: a random token's pieces are not words, an address has its
    ``@``, a number its digits. (Such a value cut into words is a gap the documentation
    names; the pairs of a key and its neighbour are still joined.)"""
    for leaf in window:
        if not leaf.in_key:
            if "@" in leaf.text:
                return False
            continue
        if not _field_name(leaf.text):
            return False
    return True


def _windows_over(
    leaves: list[_Leaf],
    largest: int,
    state: _ScanState,
    seen: set[_Seen],
    smallest: int = 2,
    seps: tuple[str, ...] = ("", " "),
    mixed: bool = False,
) -> None:
    """Every window of ``smallest`` to ``largest`` consecutive ``leaves`` (``mixed``: only
    those holding both keys and values)."""
    for i in range(len(leaves) - 1):
        for size in range(smallest, largest + 1):
            window = leaves[i : i + size]
            if len(window) < size:
                break
            if size > 2 and not _middle(window[-2].text):
                break  # a value spread over 3+ fields has short or unbroken middle parts
            if mixed and (
                all(w.in_key == window[0].in_key for w in window) or _names_fields_only(window)
            ):
                continue  # keys alone, or values alone (windowed among themselves); or keys
                # that all name fields, among values with no "@"
            _scan_windows(window, state, seen, seps)


def _scan_windows(
    window: list[_Leaf],
    state: _ScanState,
    seen: set[_Seen],
    seps: tuple[str, ...] = ("", " "),
    edge: int = 0,
) -> None:
    """Run ``window`` joined with each of ``seps`` (see :func:`_scan_window`), its outer
    pieces cut to ``edge`` characters (:data:`_WINDOW_EDGE` by default). When something
    detected reaches a cut end, it may go on past it: what that run found is dropped and the
    window runs again at the default edge."""
    words = tuple(sorted({w for leaf in window for w in leaf.words}))
    memo = (tuple(leaf.text for leaf in window), words, seps, state.key, state.mode)
    if memo in _CLEAN_WINDOWS:
        return
    found = len(state.findings)
    texts = _window_texts(window, edge)
    if edge and edge < _WINDOW_EDGE:
        before = (set(seen), set(state.raw_values), set(state.to_mask))
        if any([_scan_window(window, texts, sep, words, state, seen) for sep in seps]):
            # What the cut pieces gave is not kept (a cut can make a value: "<SECRET_"):
            # the window runs again at the default edge.
            del state.findings[found:]
            seen.intersection_update(before[0])
            for raw in set(state.raw_values) - before[1]:
                del state.raw_values[raw]
            state.to_mask.intersection_update(before[2])
            texts = _window_texts(window)
            for sep in seps:
                _scan_window(window, texts, sep, words, state, seen)
    else:
        for sep in seps:
            _scan_window(window, texts, sep, words, state, seen)
    if len(state.findings) == found and sum(len(t) for t in memo[0]) <= _CLEAN_WINDOW_CHARS:
        if len(_CLEAN_WINDOWS) >= _CLEAN_WINDOWS_KEPT:
            _CLEAN_WINDOWS.clear()
        _CLEAN_WINDOWS[memo] = None


_CLEAN_WINDOWS: dict[
    tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], _DetectorKey, tuple[Any, ...]], None
] = {}
"""Windows (their strings, field-name words, separators, detector settings and how they were
read, :attr:`_ScanState.mode`) in which nothing was found:
a scan is a pure function of them, and requests repeat their strings. Raw strings, in
process memory only, like the detection cache."""
_CLEAN_WINDOWS_KEPT = 16384
_CLEAN_WINDOW_CHARS = 1024


_RUN_MIN = 3
"""Short sibling scalars read as one run: at least this many (numbers: two)."""
_SHORT_PIECE = 6
"""A string of at most this many characters is a short piece."""
_RUN_WINDOW = 64
"""A run is read in windows of this many pieces (overlapping by half)."""


def _is_number(value: Any) -> bool:
    """An integer (or a float of an integer's value), or a string of 1 to 19 ASCII digits: a
    group of a number's digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return True
    if isinstance(value, float):
        return value.is_integer() and 0 <= value < _INTEGRAL_FLOAT_MAX
    return isinstance(value, str) and 0 < len(value) <= 19 and value.isascii() and value.isdigit()


def _collect_runs(siblings: list[tuple[Any, _Leaf] | None], state: _ScanState) -> None:
    """Keep the runs of one container's scalars (list items, or one dict's values; None
    marks a child that is not a scalar) that :func:`_run_pass` reads whole: maximal runs of
    numbers, and maximal runs of short pieces (numbers, strings of up to six characters)."""
    if len(siblings) < 2:
        return
    for is_part, least, numeric in (
        (_is_number, 2, True),
        (lambda v: _is_number(v) or (isinstance(v, str) and len(v) <= _SHORT_PIECE), 3, False),
    ):
        run: list[_Leaf] = []
        for item in [*siblings, None]:
            if item is not None and is_part(item[0]):
                run.append(item[1])
                continue
            if len(run) >= least and not (
                numeric is False and all(_is_number(leaf.text) for leaf in run)
            ):
                state.runs.append((run, numeric))
            run = []


def _run_pass(state: _ScanState, seen: set[_Seen]) -> None:
    """Read each run of sibling scalars whole: a card number as ``[4111, 1111, 1111, 1111]``
    or one digit per item, an address one character per item. Joined with nothing, a finding
    touching two or more pieces counts. A run of numbers is also joined with spaces, and then
    only a finding spanning the whole run (or window) counts: inside a longer list of
    numbers, four of them reading as a card by chance are not one. A card found in a run
    must also have a card network's prefix and length (:func:`.patterns._card_network`): a
    list of numbers passes Luhn one time in ten."""
    for run, numeric in state.runs:
        step = _RUN_WINDOW // 2
        starts = range(0, max(1, len(run) - step), step) if len(run) > _RUN_WINDOW else [0]
        for start in starts:
            window = run[start : start + _RUN_WINDOW]
            texts = [(0, leaf.text) for leaf in window]
            words = tuple(sorted({w for leaf in window for w in leaf.words}))
            # Two numbers are a card's halves at most (our card pattern); Presidio (SSNs,
            # phones) only reads runs of three or more: [123, 45, 6789], [415, 867, 5309].
            presidio = not numeric or len(window) >= 3
            _scan_window(
                window, texts, "", words, state, seen, min_touched=2, run=True, presidio=presidio
            )
            if numeric:
                _scan_window(window, texts, " ", words, state, seen, run=True, presidio=presidio)
        if numeric:
            _values_inside(run, state, seen)


_CARD_GROUPINGS = ((4, 4, 4, 4), (4, 6, 5), (4, 4, 4, 4, 3), (4, 4, 4, 3))
"""How card numbers are grouped when written (the widths of the groups)."""
_PHONE_GROUPINGS = ((3, 3, 4), (1, 3, 3, 4))
_SSN_GROUPINGS = ((3, 2, 4),)
_PHONE_FIELD_WORDS = frozenset({"phone", "mobile", "tel", "fax", "cell", "sms", "whatsapp"})
_SSN_FIELD_WORDS = frozenset({"ssn", "social"})


def _values_inside(run: list[_Leaf], state: _ScanState, seen: set[_Seen]) -> None:
    """Values whose pieces are some of a longer run of numbers, which the run read whole
    does not show (``[4, 1, ..., 1, 12, 28]``: a card's digits, then its expiry). A card: its
    digits one per item (13 to 19 items of one digit, the whole of such a stretch) or its own
    groups (4-4-4-4, 4-6-5, ...; no group of the same width just before or after), with a card
    network's prefix and length. A phone (3-3-4, 1-3-3-4) or an SSN (3-2-4) only under a field
    that names one: lists of numbers take those shapes by chance."""
    widths = [len(leaf.text) if leaf.text.isdigit() else 0 for leaf in run]
    if len(run) < 3 or 0 in widths:
        return
    words = {w for leaf in run for w in leaf.words}
    shapes: list[tuple[str, tuple[int, ...]]] = [("CREDIT_CARD", g) for g in _CARD_GROUPINGS]
    if _supports(set(_PHONE_FIELD_WORDS), words):
        shapes += [("PHONE_NUMBER", g) for g in _PHONE_GROUPINGS]
    if _supports(set(_SSN_FIELD_WORDS), words):
        shapes += [("US_SSN", g) for g in _SSN_GROUPINGS]
    found: list[tuple[str, int, int]] = []
    for start in range(len(run)):
        for entity, shape in shapes:
            end = start + len(shape)
            if end > len(run) or tuple(widths[start:end]) != shape:
                continue
            if (start > 0 and widths[start - 1] == shape[0]) or (
                end < len(run) and widths[end] == shape[-1]
            ):
                continue  # part of a longer stretch of groups like these
            found.append((entity, start, end))
    start = 0
    while start < len(run):  # stretches of one digit per item
        end = start
        while end < len(run) and widths[end] == 1:
            end += 1
        if 13 <= end - start <= 19:
            found.append(("CREDIT_CARD", start, end))
        start = max(end, start + 1)
    for entity, start, end in found:
        if (start, end) == (0, len(run)):
            continue  # the whole run: read as one already
        digits = "".join(leaf.text for leaf in run[start:end])
        if entity == "CREDIT_CARD" and not _card_network(digits):
            continue
        if entity == "US_SSN" and not _ssn_like(digits):
            continue
        if entity == "PHONE_NUMBER" and not _nanp_like(digits[-10:]):
            continue
        if entity not in state.key.entities:
            continue
        first = _common_parent([leaf.path for leaf in run[start:end]])
        for leaf in run[start:end]:
            ident = (leaf.path, leaf.in_key, 0, len(leaf.text), entity)
            if ident not in seen:
                seen.add(ident)
                state.add(leaf, _Span(entity, 0, len(leaf.text), 0.85, "pattern"), split_of=first)


def _ssn_like(digits: str) -> bool:
    """An SSN's area, group and serial as issued (not 000, 666 or 9xx; not 00; not 0000)."""
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _nanp_like(digits: str) -> bool:
    """A North American number: area code and exchange not starting with 0 or 1."""
    return len(digits) == 10 and digits[0] not in "01" and digits[3] not in "01"


def _window_texts(window: list[_Leaf], edge: int = 0) -> list[tuple[int, str]]:
    """Each leaf's part in a window: the end of the first, the start of the last (their
    last and first ``edge`` characters as read, :data:`_WINDOW_EDGE` by default), middles
    whole; with the offset of the part in the leaf."""
    edge = edge or _WINDOW_EDGE
    out = []
    last = len(window) - 1
    for n, leaf in enumerate(window):
        text = leaf.text
        size = _edge(text, edge) if len(text) > edge and n in (0, last) else len(text)
        if n == 0 and len(text) > size:
            out.append((len(text) - size, text[-size:]))
        elif n == last and len(text) > size:
            out.append((0, text[:size]))
        else:
            out.append((0, text))
    return out


def _edge(text: str, edge: int) -> int:
    """How many characters of a long leaf take part in a window: ``edge`` of the text as
    read, so more of a text whose escapes take several characters each (``\\u0040`` is one
    character as read)."""
    view = surface(text)
    if view is None or not view.text:
        return edge
    ratio = min(_MAX_EDGE_RATIO, -(-len(text) // len(view.text)))
    return edge * ratio


_MAX_EDGE_RATIO = 10


def _scan_window(
    window: list[_Leaf],
    texts: list[tuple[int, str]],
    sep: str,
    words: tuple[str, ...],
    state: _ScanState,
    seen: set[_Seen],
    min_touched: int | None = None,
    run: bool = False,
    presidio: bool | str = True,
) -> bool:
    """Report the values ``window`` joined with ``sep`` holds across its pieces: those
    touching every piece (``min_touched``: at least that many; smaller windows report
    the rest). Return whether anything detected reaches an end where a piece was cut."""
    joined = sep.join(text for _, text in texts)
    cut_start = texts[0][0] > 0
    cut_end = len(texts[-1][1]) < len(window[-1].text)
    reaches_cut = False
    bounds = []
    pos = 0
    for leaf, (shift, text) in zip(window, texts, strict=True):
        bounds.append((leaf, pos, pos + len(text), shift))
        pos += len(text) + len(sep)
    edges = [(hi, bounds[n + 1][1]) for n, (_, _, hi, _) in enumerate(bounds[:-1])]
    presidio = (
        (state.presidio if presidio is True else presidio)
        and presidio_candidate(joined, state.key.entities)
        and (len(texts) < 3 or _presidio_can_span(texts, joined, state.key))
        and window_needs_presidio(joined, edges, state.key)
    )
    for found in _detect(joined, words, state.key, state.presidio if presidio else False):
        if (cut_start and found.start == 0) or (cut_end and found.end == len(joined)):
            reaches_cut = True
        # Pseudonyms are what redaction left: a value found only by reading one as part of it
        # ("secret=<SECRET_2>" + "last note") is the neighbour's text, not a split value.
        span = _without_pseudonyms(found, joined)
        if span is None:
            continue
        touched = [b for b in bounds if span.start < b[2] and span.end > b[1]]
        if (
            len(touched) == 1
            and (len(bounds) == 2 or state.mixed)
            and span.entity_type in _CONTEXT_SECRETS
        ):
            # Within one leaf, yet found only with its neighbours: the keyword is in another
            # field ("password=" | "hunter22"). Unless the leaf alone found it too.
            if span is found:
                _add_if_new(touched[0], span, state, seen)
            continue
        if (
            # (in keys and values together, a secret found by its keyword in another piece
            # counts wherever it lies)
            (
                len(touched) < (min_touched or len(bounds))
                and not (state.mixed and span.entity_type in _CONTEXT_SECRETS)
            )
            or not _plausible_split(span, touched, joined)
            or _glued_decimals(span, touched, joined)
        ):
            continue  # within fewer leaves: a smaller window (or the leaf itself) reports it
        if run and not _number_in_a_run(span, joined):
            continue
        if not run and _overreach(span, bounds, joined, words, state):
            continue
        if any(b[0].in_key for b in touched) and _field_name_run_on(span, touched, joined, state):
            continue
        if (
            state.mixed
            and all(_field_name(b[0].text) for b in touched if b[0].in_key)
            and _values_hold(span.entity_type, window, texts, words, state)
        ):
            continue  # a value cut over values with field names between them: not the keys'
        first = _common_parent([b[0].path for b in touched])
        for leaf, lo, hi, shift in touched:
            start = max(span.start, lo) - lo + shift
            end = min(span.end, hi) - lo + shift
            ident = (leaf.path, leaf.in_key, start, end, span.entity_type)
            if end > start and ident not in seen:
                seen.add(ident)
                part = _Span(span.entity_type, start, end, span.score, span.source)
                state.add(leaf, part, split_of=first)
    return reaches_cut


_RUN_PHONE_DIGITS = 10
"""Digits of a phone number read from a run of numbers: a national number with its area code
(10 in North America and France, 10 to 11 in the UK and Germany). Fewer digits glued from a
list are small numbers side by side (``[0, 201, 100]``)."""


def _number_in_a_run(span: _Span, joined: str) -> bool:
    """Whether a value read from a run of numbers has the shape of one: a card also has a card
    network's prefix and length, a phone its area code's digits."""
    if span.entity_type not in ("CREDIT_CARD", "PHONE_NUMBER"):
        return True
    digits = "".join(c for c in joined[span.start : span.end] if c.isdigit())
    if span.entity_type == "CREDIT_CARD":
        return _card_network(digits)
    return len(digits) >= _RUN_PHONE_DIGITS


_NUMBER_PIECE_RE = re.compile(r"[0-9A-Fa-f\s().+/:\-]*")
_ID_PIECE_RE = re.compile(r"[A-Za-z0-9]{1,12}")


def _presidio_can_span(texts: list[tuple[int, str]], joined: str, key: _DetectorKey) -> bool:
    """Whether a value Presidio finds can hold every middle piece of a window of three or
    more whole (a value found there touches every piece; smaller windows report the rest).
    Its values are numbers, addresses and short ids: digits, hex digits and separators (cards,
    phones, SSNs, IPs, MACs), ids of up to 12 characters with two letters at most (passports,
    licences), an email (an ``@``) or a wallet address; not a word like ``time``."""
    if "@" in joined or key.entities & _LOOSE_PRESIDIO or _WALLET_RE.search(joined):
        return True
    for _, text in texts[1:-1]:
        if _NUMBER_PIECE_RE.fullmatch(text):
            continue
        if _ID_PIECE_RE.fullmatch(text) and sum(c.isalpha() for c in text) <= 2:
            continue
        return False
    return True


def _without_pseudonyms(span: _Span, text: str) -> _Span | None:
    """``span`` without pseudonyms at its ends (the same object when it has none there)."""
    start, end = span.start, span.end
    while True:
        head = _PSEUDONYM_RE.match(text, start, end)
        tail = _PSEUDONYM_AT_END_RE.search(text, start, end)
        if head is not None:
            start = head.end()
        elif tail is not None:
            end = tail.start()
        else:
            break
    if (start, end) == (span.start, span.end):
        return span
    if end - start < 1:
        return None
    return _Span(span.entity_type, start, end, span.score, span.source)


_PSEUDONYM_AT_END_RE = re.compile(r"<[A-Z][A-Z0-9_]*?_\d+>\Z")
_CONTEXT_SECRETS = frozenset({"SECRET_KEYWORD", "BASIC_AUTH", "BEARER_TOKEN"})
_Bound = tuple[_Leaf, int, int, int]
_Seen = tuple[str, bool, int, int, str]
"""A part already reported: path, in a key, start, end, entity type."""
_QUAD_RE = re.compile(r"(?<![0-9.])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?![0-9.])")


def _common_parent(paths: list[str]) -> str:
    """The JSON pointer of the innermost container holding every one of ``paths``."""
    split = [p.split("/")[:-1] for p in paths]
    common = []
    for segments in zip(*split, strict=False):
        if any(s != segments[0] for s in segments):
            break
        common.append(segments[0])
    return "/".join(common)


def _is_quad(text: str) -> bool:
    """A dotted quad as written alone: no leading zeros, every part at most 255."""
    return all(p == str(int(p)) and int(p) <= 255 for p in text.split("."))


def _plausible_split(span: _Span, touched: list[_Bound], joined: str) -> bool:
    """Reject joins that made a value out of two whole ones.

    A random-looking string glued from an id and the next field's first word ("...K52" +
    "Build"), or an address glued from a version and a number ("1.7.4.3" + "81"), is not a
    split value: entropy counts only when every part is long and mixes letters and digits,
    and an address only when no part is a dotted quad of its own (judged there).
    """
    parts = [joined[max(span.start, lo) : min(span.end, hi)] for _, lo, hi, _ in touched]
    if span.entity_type == "HIGH_ENTROPY_STRING":
        # A part of 20+ characters was judged on its own in its leaf already.
        return all(
            8 <= len(p) < 20 and re.search(r"[0-9]", p) and re.search(r"[A-Za-z]", p) for p in parts
        )
    if span.entity_type == "IP_ADDRESS":
        return not any(_is_quad(m.group(0)) for p in parts for m in _QUAD_RE.finditer(p))
    return True


_WHOLE_DECIMAL_RE = re.compile(r"[+-]?[0-9]+\.[0-9]+")


def _glued_decimals(span: _Span, touched: list[_Bound], joined: str) -> bool:
    """A value in digits read across two or more pieces that are each a decimal number
    (``"2721.0121618597"`` twice): numbers side by side, not a card or phone cut in pieces
    (a dotted card cut in two has a piece with two points, or ending in one)."""
    if span.entity_type not in _DIGIT_ENTITIES:
        return False
    if sum(1 for b in touched if _WHOLE_DECIMAL_RE.fullmatch(b[0].text.strip())) < 2:
        return False
    # Groups of a card or phone written with points have 2 to 6 digits ("404.442.0721"
    # cut as "4" | "04.4" | "42.0721"); glued decimals have a longer run somewhere.
    pieces = [joined[max(span.start, lo) : min(span.end, hi)] for _, lo, hi, _ in touched]
    return any(len(group) > _POINT_GROUP_MAX for group in re.split(r"[^0-9]+", "".join(pieces)))


_POINT_GROUP_MAX = 6


def _values_hold(
    entity: str,
    window: list[_Leaf],
    texts: list[tuple[int, str]],
    words: tuple[str, ...],
    state: _ScanState,
) -> bool:
    """Whether the values of a window of keys and values, joined without its keys, hold a
    value of ``entity`` too: then it is in the values (or cut over them, windowed among
    themselves), and the keys beside them only name fields (in ``{"part_a": "password=hun",
    "part_b": "ter22"}`` no password runs through the key ``part_b``)."""
    values = [text for leaf, (_, text) in zip(window, texts, strict=True) if not leaf.in_key]
    return any(s.entity_type == entity for s in _detect("".join(values), words, state.key))


def _overreach(
    span: _Span, bounds: list[_Bound], joined: str, words: tuple[str, ...], state: _ScanState
) -> bool:
    """The same value complete at the end of the window's other fields, run on into a few characters
    of its last ("<api key>" + "r38", an id): not a split. Fewer than six characters are
    below the fragment size that identifies a value, so nothing leaks by leaving them."""
    _, lo, hi, _ = bounds[-1]
    if min(span.end, hi) - lo >= _ECHO_MIN_LENGTH:
        return False
    prefix = joined[: bounds[-2][2]]
    own = _detect(prefix, words, state.key)
    return any(s.start == span.start and s.end == len(prefix) for s in own)


_FIELD_WORDS = frozenset(
    "email mail to from cc bcc recipient sender reply address addr contact user username login "
    "owner author assignee customer client member person phone mobile tel fax number card "
    "account iban ssn ip host server url uri token key secret password value text note body "
    "message data id name field query input content description comment title subject item "
    "list line arg payload param detail info".split()
)
"""Words that make a dict key a field name: the name of what its value is, or holds."""


def _field_name_run_on(span: _Span, touched: list[_Bound], joined: str, state: _ScanState) -> bool:
    """A value complete in one string, run on into the dict keys beside it: the key is the
    field's name ("email" + "bob@example.com" joined reads as one address; a token at the end
    of one key runs on into the next key's word characters), not a piece of the value.

    Only when the rest of the span is a finding of its own in that one string (or a value the
    allow list lets through), and each key it runs into is short (under six characters, too
    few to identify anything) or is wholly taken and names a field (:data:`_FIELD_WORDS`).
    A key that is a piece of a value split across it ("alice.smi" + "th@example.com") names
    nothing and stays part of the value.
    """
    for n, (leaf, lo, hi, shift) in enumerate(touched):
        start, end = max(span.start, lo), min(span.end, hi)
        at_start, at_end = start == lo, end == hi
        if not ((at_start and n > 0) or (at_end and n < len(touched) - 1)):
            continue
        own = _detect(leaf.text, leaf.words, state.key)
        rel = (start - lo + shift, end - lo + shift)
        allowed = joined[start:end].strip().lower() in state.key.allow_list
        if not allowed and not any(
            s.entity_type == span.entity_type and (s.start, s.end) == rel for s in own
        ):
            continue
        others = [b for m, b in enumerate(touched) if m != n]
        if all(_names_a_field(b, span, joined) for b in others):
            return True
    return False


def _names_a_field(bound: _Bound, span: _Span, joined: str) -> bool:
    leaf, lo, hi, _ = bound
    part = joined[max(span.start, lo) : min(span.end, hi)]
    if not leaf.in_key:
        return len(part) < _ECHO_MIN_LENGTH
    if len(part) < _ECHO_MIN_LENGTH:
        return True
    words = _key_words(part)
    return part == leaf.text and any(
        w in _FIELD_WORDS or w.rstrip("s") in _FIELD_WORDS for w in words
    )


def _add_if_new(bound: _Bound, span: _Span, state: _ScanState, seen: set[_Seen]) -> None:
    leaf, lo, _, shift = bound
    start, end = span.start - lo + shift, span.end - lo + shift
    own = _detect(leaf.text, leaf.words, state.key)
    if any(s.start <= start and end <= s.end for s in own):
        return
    ident = (leaf.path, leaf.in_key, start, end, span.entity_type)
    if ident not in seen:
        seen.add(ident)
        state.add(leaf, _Span(span.entity_type, start, end, span.score, span.source))


_ECHO_MIN_LENGTH = 6
_ECHO_MAX_VALUES = 1000


def _echo_regex(state: _ScanState) -> re.Pattern[str] | None:
    """A regex for the found values, if any of them also occurs where nothing flagged it."""
    values = sorted({v for v in state.raw_values if len(v.strip()) >= _ECHO_MIN_LENGTH}, key=len)
    if not values:
        return None
    longest_first = values[::-1][:_ECHO_MAX_VALUES]
    regex = re.compile("|".join(re.escape(v) for v in longest_first))
    covered: dict[tuple[str, bool], list[tuple[int, int]]] = {}
    for f in state.findings:
        covered.setdefault((f.path, f.in_key), []).append((f.start, f.end))
    for leaf in state.leaves:
        spans = covered.get((leaf.path, leaf.in_key), ())
        for match in regex.finditer(leaf.text):
            s, e = match.span()
            if not any(lo <= s and e <= hi for lo, hi in spans):
                return regex
    return None


def _walk_and_join(value: Any, state: _ScanState) -> None:
    _walk(value, "", (), state)
    if state.split:
        _window_pass(state)


_MORE_WALKS = 4
"""Walks beyond one per dict key (a key masked per walk) before the last one stands (its
findings still count, and redaction replaces a finding's key where its path names it)."""


def scan(value: Any, config: PrivacyConfig | None = None) -> SensitivityReport:
    """Classify a request's arguments and locate every sensitive span in them.

    Walks nested dicts, lists and scalars (numbers as their decimal text, so a card number sent
    as an int is still a card number), scanning values and keys, then values split across
    neighbouring keys and values. The level is the highest level of any finding, ``public``
    when there is none.

    When something was found, a further walk also flags every other occurrence of the found
    values (six characters or longer): in ``{"password": "hunter22", "note": "use hunter22"}``
    the note alone says nothing, yet it carries the password. It is a second walk rather than a
    patch on the first so that a dict key found this way is masked in every path below it too;
    so is a key that only holds a piece of a value split across it and its neighbours.
    """
    config = config or PrivacyConfig()
    key = _detector_key(config)
    state = _ScanState(key=key, split=config.split_fields)
    _walk_and_join(value, state)
    for _ in range(len(state.keys) + _MORE_WALKS):  # the mask only grows: two in practice
        echo = _echo_regex(state) or state.echo
        mask = state.mask | state.to_mask
        same_echo = echo is None or (state.echo is not None and echo.pattern == state.echo.pattern)
        if same_echo and mask == state.mask:
            break
        first = state
        state = _ScanState(key=key, split=config.split_fields, echo=echo, mask=frozenset(mask))
        state.echo_origin = {**first.echo_origin, **first.raw_values}
        _walk_and_join(value, state)
    unique: dict[tuple[str, bool, int, int, str], Finding] = {}
    for f in state.findings:
        ident = (f.path, f.in_key, f.start, f.end, f.entity_type)
        # Equal scores: keep the finding that says it was split over fields.
        if ident not in unique or (unique[ident].score, bool(unique[ident].split_of)) < (
            f.score,
            bool(f.split_of),
        ):
            unique[ident] = f
    findings = sorted(unique.values(), key=lambda f: (f.path, f.in_key, f.start, f.end))
    level = max((config.level_for(f.entity_type) for f in findings), default=Sensitivity.public)
    return SensitivityReport(level=level, findings=findings)


# --------------------------------------------------------------------------------------------


def completing_findings(
    earlier: list[Any], piece: Any, words: tuple[str, ...], config: PrivacyConfig | None = None
) -> tuple[list[Finding], set[str]]:
    """The values ``piece`` completes with ``earlier`` pieces (scalars, oldest first) read as
    the items of one list are: ``piece`` after the last one to three of them (in the order
    sent), after each of them alone and before each of them alone (joined with nothing), and
    the run of numbers they make with it. ``words`` are
    the field-name words around them. Returns the findings in ``piece`` (path ``/<index>``,
    its index after the earlier pieces), and the entity types of values found that lie wholly
    in an earlier piece yet only with ``piece`` (a password whose keyword ``piece`` completes).
    Only windows holding ``piece`` are read: the others were judged when their last piece
    was."""
    config = config or PrivacyConfig()
    key = _detector_key(config)
    memo = (tuple((type(v), v) for v in earlier), type(piece), piece, words, key)
    if memo in _CLEAN_COMPLETIONS:
        return [], set()
    # Phones across calls by their shape only (patterns of our own): libphonenumber's matcher
    # on every join of a field's last values costs more than the call's own scan.
    state = _ScanState(key=key, split=True, presidio="no_phones")
    leaves = [
        _Leaf(f"/{index}", _leaf_text(value), words=words, is_text=isinstance(value, str))
        for index, value in enumerate([*earlier, piece])
    ]
    last = leaves[-1]
    seen: set[_Seen] = set()
    if last.is_text:
        texts = [leaf for leaf in leaves[:-1] if leaf.is_text]
        windows: list[list[_Leaf]] = []
        for size in range(2, _WINDOW_LEAVES + 1):
            if size - 1 > len(texts) or (size > 2 and not _middle(texts[1 - size].text)):
                break
            windows.append([*texts[1 - size :], last])
        windows += [[other, last] for other in texts[:-1]]
        windows += [[last, other] for other in texts]
        for window in windows:
            _scan_windows(window, state, seen, ("",))  # (a space between calls: no sentence)
    elsewhere = {
        f.entity_type
        for f in state.findings
        if f.path != last.path and f.entity_type in _CONTEXT_SECRETS
    }  # (any other value wholly in an earlier piece was that piece's own: judged with it)
    _collect_runs([(v, leaf) for v, leaf in zip([*earlier, piece], leaves, strict=True)], state)
    # Runs of numbers only (a card's groups one per call); runs of short strings, a value one
    # character per call, are not read across calls.
    state.runs = [(run, numeric) for run, numeric in state.runs if numeric]
    _run_pass(state, seen)
    found = [f for f in state.findings if f.path == last.path]
    if not found and not elsewhere and sum(len(leaf.text) for leaf in leaves) <= 1024:
        if len(_CLEAN_COMPLETIONS) >= _CLEAN_WINDOWS_KEPT:
            _CLEAN_COMPLETIONS.clear()
        _CLEAN_COMPLETIONS[memo] = None
    return found, elsewhere


_CLEAN_COMPLETIONS: dict[tuple[Any, ...], None] = {}
"""Pieces (with their types, field-name words and detector settings) that completed nothing:
the same call again is not joined again. Raw strings, in process memory only."""

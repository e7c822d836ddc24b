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
    _detect,
    _detector_key,
    _DetectorKey,
    _is_templated,
    _Span,
)
from hybridmcp.policy.privacy.engines import _key_words
from hybridmcp.policy.privacy.levels import Finding, PrivacyConfig, Sensitivity, SensitivityReport
from hybridmcp.policy.privacy.patterns import _PSEUDONYM_RE, _SECRET_KEY_RE

_SALT = secrets.token_bytes(16)


def _digest(raw: str) -> str:
    return hmac.new(_SALT, raw.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:12]


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def _is_leaf(value: Any) -> bool:
    return not isinstance(value, Mapping | list | tuple | bool) and value is not None


def _leaf_text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


@dataclass
class _Leaf:
    path: str
    text: str
    in_key: bool = False
    words: tuple[str, ...] = ()
    """Words of the field names above the leaf: context for the detectors."""
    is_text: bool = True
    """A string (rather than a number rendered as text)."""


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
    """The value leaves (not keys) in document order: the windows of :func:`_window_pass`."""

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


def _member_path(path: str, index: int, key: str, state: _ScanState) -> tuple[str, tuple]:
    spans = _echo_spans(key, _detect(key, (), state.key, False), state)
    if spans:
        masked = f"{path}/~k{index}"
        return masked, spans
    return f"{path}/{_escape(key)}", ()


def _walk(node: Any, path: str, context: tuple[str, ...], state: _ScanState) -> None:
    if isinstance(node, Mapping):
        for index, (raw_key, child) in enumerate(node.items()):
            key = _leaf_text(raw_key)
            child_path, key_spans = _member_path(path, index, key, state)
            key_leaf = _Leaf(child_path, key, in_key=True)
            state.leaves.append(key_leaf)
            for span in key_spans:
                state.add(key_leaf, span)
            words = _key_words(key) or context
            if _is_leaf(child):
                leaf = _scan_leaf(child, child_path, words, state)
                if _SECRET_KEY_RE.match(key) and not isinstance(child, float):
                    _flag_whole(leaf, state)
            else:
                _walk(child, child_path, words, state)
    elif isinstance(node, list | tuple):
        for index, child in enumerate(node):
            child_path = f"{path}/{index}"
            if _is_leaf(child):
                _scan_leaf(child, child_path, context, state)
            else:
                _walk(child, child_path, context, state)
    elif _is_leaf(node):
        _scan_leaf(node, path, context, state)


def _scan_leaf(value: Any, path: str, context: tuple[str, ...], state: _ScanState) -> _Leaf:
    leaf = _Leaf(path, _leaf_text(value), words=context, is_text=isinstance(value, str))
    state.leaves.append(leaf)
    if leaf.is_text:
        state.values.append(leaf)
    for span in _echo_spans(leaf.text, _detect(leaf.text, context, state.key, False), state):
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
_WINDOW_EDGE = 512
"""Characters of a leaf's end and start that take part in a window: a value split at a field
boundary lies within this distance of it (a long text is scanned whole on its own anyway)."""
_MAX_WINDOW_LEAVES = 512


def _window_pass(state: _ScanState) -> None:
    """Find values split across adjacent string leaves (in document order, through nesting).

    Windows of two to four neighbouring leaves are joined with nothing (a value cut
    mid-token: "alice.smi" + "th@example.com") and with a space (parts given as words), and
    every detector runs on them. A finding that crosses a leaf boundary is reported in each
    leaf it touches, with ``split_of`` naming their innermost common container, so redaction
    replaces the whole value wherever its pieces are. Only strings take part: a list of
    integers is not one long number (a number is scanned whole, as its decimal text). The
    first :data:`_MAX_WINDOW_LEAVES` strings of a request are windowed.
    """
    leaves = state.values[:_MAX_WINDOW_LEAVES]
    seen: set[tuple[str, int, int, str]] = set()
    for i in range(len(leaves) - 1):
        for size in range(2, _WINDOW_LEAVES + 1):
            window = leaves[i : i + size]
            if len(window) < size:
                break
            if size > 2 and any(len(w.text) > 64 for w in window[1:-1]):
                break  # a value spread over 3+ fields has short middle parts
            texts = _window_texts(window)
            words = tuple(sorted({w for leaf in window for w in leaf.words}))
            for sep in ("", " "):
                _scan_window(window, texts, sep, words, state, seen)


def _window_texts(window: list[_Leaf]) -> list[tuple[int, str]]:
    """Each leaf's part in a window: the end of the first, the start of the last, middles
    whole; with the offset of the part in the leaf."""
    out = []
    last = len(window) - 1
    for n, leaf in enumerate(window):
        text = leaf.text
        edge = _edge(text) if len(text) > _WINDOW_EDGE and n in (0, last) else len(text)
        if n == 0 and len(text) > edge:
            out.append((len(text) - edge, text[-edge:]))
        elif n == last and len(text) > edge:
            out.append((0, text[:edge]))
        else:
            out.append((0, text))
    return out


def _edge(text: str) -> int:
    """How many characters of a long leaf take part in a window: :data:`_WINDOW_EDGE` of
    the text as read, so more of a text whose escapes take several characters each
    (``\\u0040`` is one character as read)."""
    view = surface(text)
    if view is None or not view.text:
        return _WINDOW_EDGE
    ratio = min(_MAX_EDGE_RATIO, -(-len(text) // len(view.text)))
    return _WINDOW_EDGE * ratio


_MAX_EDGE_RATIO = 10


def _scan_window(
    window: list[_Leaf],
    texts: list[tuple[int, str]],
    sep: str,
    words: tuple[str, ...],
    state: _ScanState,
    seen: set[tuple[str, int, int, str]],
) -> None:
    joined = sep.join(text for _, text in texts)
    bounds = []
    pos = 0
    for leaf, (shift, text) in zip(window, texts, strict=True):
        bounds.append((leaf, pos, pos + len(text), shift))
        pos += len(text) + len(sep)
    for found in _detect(joined, words, state.key, False):
        # Pseudonyms are what redaction left: a value found only by reading one as part of it
        # ("secret=<SECRET_2>" + "last note") is the neighbour's text, not a split value.
        span = _without_pseudonyms(found, joined)
        if span is None:
            continue
        touched = [b for b in bounds if span.start < b[2] and span.end > b[1]]
        if len(touched) == 1 and len(bounds) == 2 and span.entity_type in _CONTEXT_SECRETS:
            # Within one leaf, yet found only with its neighbour: the keyword is in the other
            # field ("password=" | "hunter22"). Unless the leaf alone found it too.
            if span is found:
                _add_if_new(touched[0], span, state, seen)
            continue
        if len(touched) < len(bounds) or not _plausible_split(span, touched, joined):
            continue  # within fewer leaves: a smaller window (or the leaf itself) reports it
        if _overreach(span, bounds, joined, words, state):
            continue
        first = _common_parent([b[0].path for b in touched])
        for leaf, lo, hi, shift in touched:
            start = max(span.start, lo) - lo + shift
            end = min(span.end, hi) - lo + shift
            ident = (leaf.path, start, end, span.entity_type)
            if end > start and ident not in seen:
                seen.add(ident)
                part = _Span(span.entity_type, start, end, span.score, span.source)
                state.add(leaf, part, split_of=first)


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
    own = _detect(prefix, words, state.key, False)
    return any(s.start == span.start and s.end == len(prefix) for s in own)


def _add_if_new(
    bound: _Bound, span: _Span, state: _ScanState, seen: set[tuple[str, int, int, str]]
) -> None:
    leaf, lo, _, shift = bound
    start, end = span.start - lo + shift, span.end - lo + shift
    own = _detect(leaf.text, leaf.words, state.key, False)
    if any(s.start <= start and end <= s.end for s in own):
        return
    ident = (leaf.path, start, end, span.entity_type)
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


def scan(value: Any, config: PrivacyConfig | None = None) -> SensitivityReport:
    """Classify a request's arguments and locate every sensitive span in them.

    Walks nested dicts, lists and scalars (numbers as their decimal text, so a card number sent
    as an int is still a card number), scanning values and keys, then values split across
    sibling fields. The level is the highest level of any finding, ``public`` when there is
    none.

    When something was found, a second walk also flags every other occurrence of the found
    values (six characters or longer): in ``{"password": "hunter22", "note": "use hunter22"}``
    the note alone says nothing, yet it carries the password. It is a second walk rather than a
    patch on the first so that a dict key found this way is masked in every path below it too.
    """
    config = config or PrivacyConfig()
    key = _detector_key(config)
    state = _ScanState(key=key, split=config.split_fields)
    _walk_and_join(value, state)
    echo = _echo_regex(state)
    if echo is not None:
        first = state
        state = _ScanState(key=key, split=config.split_fields, echo=echo)
        state.echo_origin = first.raw_values
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

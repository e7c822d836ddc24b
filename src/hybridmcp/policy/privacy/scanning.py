"""Walking JSON values: :func:`scan` locates every sensitive span in a request's arguments."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hybridmcp.policy.privacy.detection import (
    _detect,
    _detector_key,
    _DetectorKey,
    _is_templated,
    _Span,
)
from hybridmcp.policy.privacy.engines import _key_words
from hybridmcp.policy.privacy.levels import Finding, PrivacyConfig, Sensitivity, SensitivityReport
from hybridmcp.policy.privacy.patterns import _PRESIDIO_HINT_RE, _SECRET_KEY_RE

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
        siblings: list[tuple[_Leaf, tuple[str, ...]]] = []
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
                siblings.append((leaf, words))
            else:
                _walk(child, child_path, words, state)
        _split_pass(siblings, path, context, state)
    elif isinstance(node, list | tuple):
        siblings = []
        for index, child in enumerate(node):
            child_path = f"{path}/{index}"
            if _is_leaf(child):
                siblings.append((_scan_leaf(child, child_path, context, state), context))
            else:
                _walk(child, child_path, context, state)
        _split_pass(siblings, path, context, state)
    elif _is_leaf(node):
        _scan_leaf(node, path, context, state)


def _scan_leaf(value: Any, path: str, context: tuple[str, ...], state: _ScanState) -> _Leaf:
    leaf = _Leaf(path, _leaf_text(value))
    state.leaves.append(leaf)
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


_MAX_SPLIT_LEAVES = 64
_DIGITISH_RE = re.compile(r"[0-9][0-9 .-]*")


def _split_pass(
    siblings: list[tuple[_Leaf, tuple[str, ...]]],
    parent: str,
    context: tuple[str, ...],
    state: _ScanState,
) -> None:
    """Find personal data spread over neighbouring fields (card halves, SSN in parts).

    Windows of two and three adjacent scalar siblings are joined with a space, and pairs of
    digit-only siblings are also joined with nothing ("41111111" + "11111111"); a finding that
    crosses a field boundary is reported in each field it touches, with ``split_of`` naming the
    container. Only Presidio runs here: credentials are not typed in halves, and the windows
    are bounded so long lists stay cheap.
    """
    if not state.split or len(siblings) < 2:
        return
    siblings = siblings[:_MAX_SPLIT_LEAVES]
    words = set(context)
    for _, w in siblings:
        words.update(w)
    ctx = tuple(sorted(words))
    windows: list[tuple[list[_Leaf], str]] = []
    for i in range(len(siblings) - 1):
        pair = [siblings[i][0], siblings[i + 1][0]]
        windows.append((pair, " "))
        if all(_DIGITISH_RE.fullmatch(leaf.text.strip()) for leaf in pair):
            windows.append((pair, ""))
        if i + 2 < len(siblings):
            windows.append(([*pair, siblings[i + 2][0]], " "))
    seen: set[tuple[str, int, int, str]] = set()
    for leaves, sep in windows:
        if not any(_PRESIDIO_HINT_RE.search(leaf.text) for leaf in leaves):
            continue
        joined = sep.join(leaf.text for leaf in leaves)
        bounds = []
        offset = 0
        for leaf in leaves:
            bounds.append((leaf, offset, offset + len(leaf.text)))
            offset += len(leaf.text) + len(sep)
        for span in _detect(joined, ctx, state.key, True):
            if span.entity_type == "PHONE_NUMBER" and span.score < 0.6:
                # Runs of small numbers join into plausible national numbers ("35 36 37");
                # a phone split over fields needs a supporting word to count.
                continue
            touched = [
                (leaf, lo, hi) for leaf, lo, hi in bounds if span.start < hi and span.end > lo
            ]
            if len(touched) < 2:
                continue
            for leaf, lo, hi in touched:
                start, end = max(span.start, lo) - lo, min(span.end, hi) - lo
                ident = (leaf.path, start, end, span.entity_type)
                if end > start and ident not in seen:
                    seen.add(ident)
                    part = _Span(span.entity_type, start, end, span.score, span.source)
                    state.add(leaf, part, split_of=parent)


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
    _walk(value, "", (), state)
    echo = _echo_regex(state)
    if echo is not None:
        first = state
        state = _ScanState(key=key, split=config.split_fields, echo=echo)
        state.echo_origin = first.raw_values
        _walk(value, "", (), state)
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

"""Reversible redaction: :func:`redact` swaps findings for pseudonyms, :func:`restore`
swaps them back."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hybridmcp.policy.privacy.levels import (
    _SECRET_ENTITIES,
    Finding,
    PrivacyConfig,
    Redaction,
    SensitivityReport,
)
from hybridmcp.policy.privacy.patterns import _PSEUDONYM_RE
from hybridmcp.policy.privacy.scanning import _escape, _is_leaf, _leaf_text, scan

_LABELS = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CARD",
    "IBAN_CODE": "IBAN",
    "US_SSN": "SSN",
    "IP_ADDRESS": "IP",
    "US_BANK_NUMBER": "BANK_ACCOUNT",
}
# Vault values for numbers that were replaced whole carry their type, so that restore gives
# back an int where there was an int. The prefix cannot start a real string we redact.
_NUMBER_TAG = "\x00num:"


def _label(entity_type: str) -> str:
    if entity_type in _SECRET_ENTITIES or entity_type == "PRIVATE_KEY":
        return "SECRET"
    return _LABELS.get(entity_type, entity_type)


class _Pseudonyms:
    """Hands out ``<LABEL_n>`` tokens: the same raw value always gets the same token."""

    def __init__(self, vault: dict[str, str], reserved: set[str]) -> None:
        self.vault = vault
        self.by_raw = {raw: token for token, raw in vault.items()}
        self.reserved = reserved | set(vault)
        self.next: dict[str, int] = {}
        for token in self.reserved:
            match = _PSEUDONYM_RE.fullmatch(token)
            if match:
                label, n = match.group(1), int(match.group(2))
                self.next[label] = max(self.next.get(label, 1), n + 1)

    def token(self, raw: str, entity_type: str) -> str:
        if raw in self.by_raw:
            return self.by_raw[raw]
        label = _label(entity_type)
        n = self.next.get(label, 1)
        while f"<{label}_{n}>" in self.reserved:
            n += 1
        self.next[label] = n + 1
        token = f"<{label}_{n}>"
        self.reserved.add(token)
        self.vault[token] = raw
        self.by_raw[raw] = token
        return token


def _merged(spans: list[Finding]) -> list[tuple[int, int, str]]:
    """Overlapping findings become one replacement, named after the most confident one."""
    ordered = sorted(spans, key=lambda f: (f.start, -f.end))
    merged: list[list[Any]] = []
    for f in ordered:
        if merged and f.start < merged[-1][1]:
            last = merged[-1]
            last[1] = max(last[1], f.end)
            if (f.score, f.end - f.start) > last[3]:
                last[2], last[3] = f.entity_type, (f.score, f.end - f.start)
        else:
            merged.append([f.start, f.end, f.entity_type, (f.score, f.end - f.start)])
    return [(s, e, t) for s, e, t, _ in merged]


def _replace(text: str, spans: list[Finding], names: _Pseudonyms) -> str:
    out: list[str] = []
    pos = 0
    for start, end, entity in _merged(spans):
        if start < pos or end > len(text):
            continue  # a report for a different value: skip rather than corrupt
        out.append(text[pos:start])
        out.append(names.token(text[start:end], entity))
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _redact_leaf(value: Any, spans: list[Finding], names: _Pseudonyms) -> Any:
    if not spans:
        return value
    if isinstance(value, str):
        return _replace(value, spans, names)
    # A number (or other scalar) cannot hold a pseudonym inside it: replace it whole.
    entity = max(spans, key=lambda f: f.score).entity_type
    return names.token(f"{_NUMBER_TAG}{type(value).__name__}:{value}", entity)


def _collect_tokens(node: Any, out: set[str]) -> None:
    if isinstance(node, str):
        if "<" in node:
            out.update(m.group(0) for m in _PSEUDONYM_RE.finditer(node))
    elif isinstance(node, Mapping):
        for k, v in node.items():
            _collect_tokens(k, out)
            _collect_tokens(v, out)
    elif isinstance(node, list | tuple):
        for v in node:
            _collect_tokens(v, out)


def _apply(
    node: Any,
    path: str,
    index: dict[tuple[str, bool], list[Finding]],
    names: _Pseudonyms,
    masked_paths: set[str],
) -> Any:
    if isinstance(node, Mapping):
        out = {}
        for i, (raw_key, child) in enumerate(node.items()):
            masked = f"{path}/~k{i}"
            if masked in masked_paths:
                child_path = masked
                new_key = _redact_leaf(raw_key, index.get((masked, True), []), names)
            else:  # (a key with findings is masked by the scan; replaced here all the same)
                child_path = f"{path}/{_escape(_leaf_text(raw_key))}"
                new_key = _redact_leaf(raw_key, index.get((child_path, True), []), names)
            out[new_key] = _apply(child, child_path, index, names, masked_paths)
        return out
    if isinstance(node, list | tuple):
        items = [
            _apply(child, f"{path}/{i}", index, names, masked_paths) for i, child in enumerate(node)
        ]
        return type(node)(items) if isinstance(node, tuple) else items
    if _is_leaf(node):
        return _redact_leaf(node, index.get((path, False), []), names)
    return node


def redact(
    value: Any,
    report_or_config: SensitivityReport | PrivacyConfig | None = None,
    *,
    vault: dict[str, str] | None = None,
) -> Redaction:
    """Replace every finding with a pseudonym such as ``<EMAIL_1>`` or ``<SECRET_2>``.

    Given a config (or nothing), the value is scanned first; given a report, it must be the
    report of this very value. Pass an existing ``vault`` to keep pseudonyms stable across the
    calls of one run; it is extended in place and returned. Tokens of that shape already in
    the input are never reused, so restoring cannot rewrite text the caller wrote.
    """
    if isinstance(report_or_config, SensitivityReport):
        report = report_or_config
    else:
        report = scan(value, report_or_config)
    vault = {} if vault is None else vault
    if not report.findings:
        return Redaction(value=value, vault=vault)
    reserved: set[str] = set()
    _collect_tokens(value, reserved)
    names = _Pseudonyms(vault, reserved)
    index: dict[tuple[str, bool], list[Finding]] = {}
    masked_paths: set[str] = set()
    for f in report.findings:
        index.setdefault((f.path, f.in_key), []).append(f)
        # Every masked key on the way (``.../~k<i>``): the scan masked it, so the paths of
        # the findings below it go through its masked form.
        segments = f.path.split("/")
        for n, segment in enumerate(segments):
            if segment.startswith("~k"):
                masked_paths.add("/".join(segments[: n + 1]))
    return Redaction(value=_apply(value, "", index, names, masked_paths), vault=vault)


def _restore_text(text: str, vault: Mapping[str, str]) -> Any:
    whole = vault.get(text)
    if whole is not None and whole.startswith(_NUMBER_TAG):
        kind, _, number = whole[len(_NUMBER_TAG) :].partition(":")
        try:
            return int(number) if kind == "int" else float(number) if kind == "float" else number
        except ValueError:
            return number

    def put_back(match: re.Match[str]) -> str:
        raw = vault.get(match.group(0))
        if raw is None:
            return match.group(0)
        if raw.startswith(_NUMBER_TAG):
            return raw[len(_NUMBER_TAG) :].partition(":")[2]
        return raw

    return _PSEUDONYM_RE.sub(put_back, text)


def restore(value: Any, vault: Mapping[str, str]) -> Any:
    """Put the raw values back wherever their pseudonyms appear, in values and keys.

    Works on anything an external server may send back: the redacted arguments themselves, or
    an answer quoting pseudonyms inside larger text. Unknown tokens are left as they are.
    """
    if not vault:
        return value
    if isinstance(value, str):
        return _restore_text(value, vault) if "<" in value else value
    if isinstance(value, Mapping):
        return {restore(k, vault): restore(v, vault) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [restore(v, vault) for v in value]
        return type(value)(items) if isinstance(value, tuple) else items
    return value

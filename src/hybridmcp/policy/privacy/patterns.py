"""Patterns of our own, each for a gap in both libraries."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


def _not_a_word(value: str) -> bool:
    # "password is Tr0ub4dor&3" names a password; "password is required" does not.
    return bool(re.search(r"[0-9]|[^A-Za-z0-9]|[A-Z]", value[1:]))


@dataclass(frozen=True)
class _Pattern:
    entity: str
    regex: re.Pattern[str]
    score: float
    group: int = 0
    why: str = ""
    accept: Callable[[str], bool] | None = None


_PATTERNS: tuple[_Pattern, ...] = (
    _Pattern(
        "PRIVATE_KEY",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
            r"(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|.*\Z)",
            re.DOTALL,
        ),
        1.0,
        why="detect-secrets flags only the BEGIN line; the key material is in the lines below. "
        "A block without its END line is redacted to the end of the string.",
    ),
    _Pattern(
        "API_KEY",
        re.compile(r"(?<![\w-])sk-(?!ant-)(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{20,}"),
        0.9,
        why="detect-secrets' OpenAI plugin knows only the legacy T3BlbkFJ-marked keys; current "
        "OpenAI keys and many look-alikes are sk-<long random>.",
    ),
    _Pattern(
        "ANTHROPIC_KEY",
        re.compile(r"(?<![\w-])sk-ant-[A-Za-z0-9_-]{20,}"),
        0.95,
        why="No detector in either library.",
    ),
    _Pattern(
        "GITHUB_TOKEN",
        re.compile(r"(?<!\w)github_pat_[A-Za-z0-9_]{22,}"),
        0.95,
        why="detect-secrets knows ghp_/gho_/... but not fine-grained tokens.",
    ),
    _Pattern(
        "JWT",
        re.compile(r"(?<![\w-])eyJ[A-Za-z0-9_-]+={0,2}\.eyJ[A-Za-z0-9_-]+={0,2}\.[A-Za-z0-9_-]*"),
        0.9,
        why="detect-secrets' JWT regex ends lazily before the signature, leaving it behind.",
    ),
    _Pattern(
        "BASIC_AUTH",
        re.compile(r"://[^\s/?#@:]+:([^\s/?#@]+)@"),
        0.85,
        group=1,
        why="detect-secrets' basic-auth regex rejects passwords with !$&'()*+,;= in them, "
        "which URLs allow in the userinfo part.",
    ),
    _Pattern(
        "SECRET_KEYWORD",
        re.compile(
            r"(?i)\b(?:password|passwd|passphrase|pwd)\s+(?:is|was)\s+"
            r"([^\s\"'`]{4,}?)[.,;!?]?(?=\s|$)"
        ),
        0.7,
        group=1,
        why="Prose (\"my password is ...\") has no '=' or ':' for detect-secrets' keyword rules.",
        accept=_not_a_word,
    ),
    _Pattern(
        "NPM_TOKEN",
        re.compile(r"(?<![\w-])npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])"),
        0.9,
        why="detect-secrets finds npm tokens only inside an .npmrc _authToken line.",
    ),
    _Pattern(
        "STRIPE_KEY",
        re.compile(r"(?<!\w)(?:sk|rk|pk)_test_[0-9A-Za-z]{16,}"),
        0.8,
        why="detect-secrets covers live keys only.",
    ),
    _Pattern(
        "GOOGLE_API_KEY",
        re.compile(r"(?<![\w-])AIza[0-9A-Za-z_-]{35}"),
        0.9,
        why="No detector in either library.",
    ),
    _Pattern(
        "BEARER_TOKEN",
        re.compile(r"(?i)\bbearer\s+([A-Za-z0-9._~+/-]{12,}=*)"),
        0.85,
        group=1,
        why="Authorization headers pasted into text carry opaque tokens no typed rule knows.",
    ),
    _Pattern(
        "SECRET_KEYWORD",
        re.compile(
            # No "(?:\w+_)*" prefix: it backtracks quadratically on "a_a_a_...". A keyword
            # preceded by "_", "-" or "." (refresh_token, x-api-key) matches anyway.
            r"(?i)(?<![A-Za-z0-9])"
            r"(?:token|api[_-]?key|apikey|access[_-]?key|passphrase|credentials?|client[_-]?secret)"
            r"(?![A-Za-z0-9])[\"']?\s*[:=]\s*[\"']?([^\s\"'`,;]{6,})"
        ),
        0.8,
        group=1,
        why="detect-secrets' keyword list has password/secret/api_key but not token=, "
        "access_key=, credentials=.",
    ),
)

# A dict key naming a secret makes its whole (scalar) value a finding, which no text scanner
# can see: {"password": "hunter2"} has no "password=" in any single string.
_SECRET_KEY_RE = re.compile(
    r"(?i)^(?:[\w.-]*[_.-])?(?:password|passwd|passphrase|pwd|pass|secret|token|api[_-]?key|apikey"
    r"|access[_-]?key|private[_-]?key|secret[_-]?key|client[_-]?secret|credentials?"
    r"|authorization|cookie|session[_-]?id)$"
)
_PSEUDONYM_RE = re.compile(r"<([A-Z][A-Z0-9_]*?)_(\d+)>")
_CANDIDATE_TOKEN_RE = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{20,}={0,2}")
_PRESIDIO_HINT_RE = re.compile(r"[0-9@:]")

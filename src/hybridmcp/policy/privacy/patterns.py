"""Patterns of our own, each for a gap in both libraries."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass


def _luhn_card(digits: str) -> bool:
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


_NETWORKS: tuple[tuple[tuple[str, ...], tuple[int, ...]], ...] = (
    (("4",), (13, 16, 19)),  # Visa
    (("51", "52", "53", "54", "55"), (16,)),  # Mastercard
    (tuple(str(n) for n in range(2221, 2721)), (16,)),  # Mastercard 2-series
    (("34", "37"), (15,)),  # American Express
    (("6011", "65", *(str(n) for n in range(644, 650))), (16, 17, 18, 19)),  # Discover
    (("300", "301", "302", "303", "304", "305", "36", "38", "39"), (14,)),  # Diners Club
    (("36",), (16,)),  # Diners Club (16 digits)
    (tuple(str(n) for n in range(3528, 3590)), (16, 17, 18, 19)),  # JCB
    (("62",), (16, 17, 18, 19)),  # UnionPay
)


def _card_network(digits: str) -> bool:
    """A card number of a network that issues it: its prefix and its length (stricter than
    Luhn alone, for digits that only read as a card once joined)."""
    return _luhn_card(digits) and any(
        len(digits) in lengths and digits.startswith(prefixes) for prefixes, lengths in _NETWORKS
    )


def _cursor(value: str) -> bool:
    """Base64 of one whole JSON object that is not a JWT header (``{"page": 2}``)."""
    if "." in value:
        return False
    try:
        decoded = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except ValueError:
        return False
    return isinstance(decoded, dict) and "alg" not in decoded and "typ" not in decoded


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
    trim: Callable[[str], int | None] | None = None
    """How much of a match is the value (None: none of it), for a regex that can run on
    into the words after it."""


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
        "API_KEY",
        re.compile(
            r"(?<![\w.-])(?:hf_[A-Za-z0-9]{30,}|pypi-AgE[A-Za-z0-9_-]{40,}"
            r"|do[por]_v1_[a-f0-9]{64}|shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"
            r"|ya29\.[A-Za-z0-9_-]{30,}|sq0(?:atp|csp)-[A-Za-z0-9_-]{22,}|dapi[a-f0-9]{32}"
            r"|AGE-SECRET-KEY-1[A-Z0-9]{50,}|glc_[A-Za-z0-9+/=_-]{32,}|lin_api_[A-Za-z0-9]{32,}"
            r"|xapp-[0-9]-[A-Z0-9]+-[0-9]+-[a-f0-9]{32,}|sntr[ysu]s_[A-Za-z0-9+/=_-]{40,}"
            r"|dckr_pat_[A-Za-z0-9_-]{24,}|hv[sbr]\.[A-Za-z0-9_-]{24,}|ATATT3[A-Za-z0-9_=-]{60,}"
            r"|dp\.(?:st|ct|pt|sa|scim|audit)\.[A-Za-z0-9_.-]{40,}|pul-[a-f0-9]{40}"
            r"|NRAK-[A-Z0-9]{27}|PMAK-[a-f0-9]{24}-[a-f0-9]{34})"
        ),
        0.9,
        why="Vendors' prefixed tokens no rule of either library knows (Hugging Face, PyPI, "
        "DigitalOcean, Shopify, Google OAuth, Square, Databricks, age, Grafana, Linear, Slack "
        "apps, Sentry, Docker, Vault, Atlassian, Doppler, Pulumi, New Relic, Postman): a "
        "random-looking tail alone is only a high-entropy string, which counts lower.",
    ),
    _Pattern(
        "BASIC_AUTH",
        re.compile(r"(?i)\bbasic\s+([A-Za-z0-9+/]{8,}={0,2})(?![A-Za-z0-9+/=])"),
        0.85,
        group=1,
        why="An HTTP Basic authorization pasted into text: base64 of user:password.",
    ),
    _Pattern(
        "BASIC_AUTH",
        re.compile(r"://[^\s/?#@:]*:([^\s/?#]+)@"),
        0.85,
        group=1,
        why="detect-secrets' basic-auth regex rejects passwords with !$&'()*+,;= in them, "
        "which URLs allow in the userinfo part, and an empty user (redis://:pass@host); a "
        "password with an unescaped '@' runs to the last '@' before the host.",
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
            r"(?:token|api[_-]?key|apikey|access[_-]?key|passphrase|credentials?|client[_-]?secret"
            r"|sig|x-amz-signature)"
            r"(?![A-Za-z0-9])[\"']?\s*[:=]\s*[\"']?([^\s\"'`,;]{6,})"
        ),
        0.8,
        group=1,
        why="detect-secrets' keyword list has password/secret/api_key but not token=, "
        "access_key=, credentials=, nor a signed URL's sig= (a SAS or presigned URL's key).",
    ),
    # Partial secrets: a value cut by a field boundary, a truncation or a paste leaves a prefix
    # no typed rule accepts. The prefixes are distinctive enough that a piece of a key counts.
    _Pattern(
        "AWS_ACCESS_KEY",
        re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)(?:[A-Z0-9]{0,15}\Z|[A-Z0-9]{6,})"),
        0.7,
        why="A piece of an AWS key id: its prefix at the end of a field, or 6+ characters.",
    ),
    _Pattern(
        "GITHUB_TOKEN",
        re.compile(r"(?<![A-Za-z0-9])(?:gh[pousr]_|github_pat_)(?:\w*\Z|[A-Za-z0-9_]{6,})"),
        0.7,
        why="A piece of a GitHub token.",
    ),
    _Pattern(
        "JWT",
        re.compile(
            r"(?<![\w-])eyJ(?:[A-Za-z0-9_=-]*(?:\.[A-Za-z0-9_=-]*){0,2}\Z|[A-Za-z0-9_-]{8,}"
            r"(?:\.[A-Za-z0-9_=-]*){0,2})"
        ),
        0.7,
        why="A piece of a JWT: base64 of '{\"' starts every header; header and claims (``sub``) "
        "are as sensitive as the signature. A whole JSON object without ``alg`` and nothing "
        "after it is an API's paging cursor, not a piece of a token.",
        accept=lambda v: not _cursor(v),
    ),
    _Pattern(
        "SLACK_TOKEN",
        re.compile(r"(?<![A-Za-z0-9])xox[abposr]-[0-9A-Za-z-]*"),
        0.7,
        why="A piece of a Slack token.",
    ),
    _Pattern(
        "API_KEY",
        re.compile(
            r"(?<![\w-])(?:sk-(?:proj-|ant-|svcacct-|admin-)?|sk_live_|rk_live_|npm_|glpat-|AIza)"
            r"(?:[A-Za-z0-9_-]*\Z|(?=[A-Za-z0-9_-]{0,40}[0-9])(?=[A-Za-z0-9_-]{0,40}[A-Z])"
            r"[A-Za-z0-9_-]{8,})"
        ),
        0.7,
        why="A piece of an OpenAI/Anthropic/Stripe/npm/GitLab/Google key.",
    ),
    _Pattern(
        "PRIVATE_KEY",
        re.compile(
            r"\A(?:[A-Za-z0-9+/=]*\r?\n)*[A-Za-z0-9+/=]*-----END (?:[A-Z0-9]+ )*PRIVATE KEY"
            r"(?: BLOCK)?-----"
        ),
        1.0,
        why="The tail of a key block whose BEGIN line is in another field.",
    ),
    # Phones written as people write them, found without libphonenumber's validity check
    # (which rejects numbers with unassigned area codes and leaves them raw).
    _Pattern(
        "PHONE_NUMBER",
        re.compile(r"(?<![\w+])\+[1-9](?:[ .-]?\(?[0-9]{1,5}\)?){2,6}(?![\w])"),
        0.7,
        why="E.164 and international shapes: a '+', a country code, 8 to 15 digits.",
        accept=lambda v: 8 <= sum(c.isdigit() for c in v) <= 15,
    ),
    _Pattern(
        "PHONE_NUMBER",
        re.compile(
            r"(?<![\w.+-])(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .-])[0-9]{3}[ .-][0-9]{4}(?![\w.-])"
        ),
        0.65,
        why="North American national shapes: (415) 867-5309, 415-867-5309, 415.867.5309.",
    ),
    _Pattern(
        "PHONE_NUMBER",
        re.compile(r"(?<![\w.+/-])0[1-9][0-9]{0,3}(?:[ -]?[0-9]{2,4}){2,4}(?![\w./-])"),
        0.6,
        why="National shapes with a trunk 0 (UK, DE, FR, ...): 07912 345678, 06 12 34 56 78.",
        accept=lambda v: 10 <= sum(c.isdigit() for c in v) <= 12,
    ),
    # Card numbers in any grouping (spaces, dashes, dots, slashes; a split rejoined), by Luhn.
    _Pattern(
        "CREDIT_CARD",
        re.compile(
            r"(?<![\w.+/-])[2-6][0-9]{2,5}"
            r"(?:(?:[ ./-]|[ \t]{0,4}\r?\n[ \t]{0,4}|_(?=[0-9]))?[0-9]{3,6}){1,4}(?![\w/-])"
        ),
        0.8,
        why="Presidio's card regex wants 4-4-4-4 groups; a card with other groups, dots, or "
        "its groups on separate lines is the same card. Its digits must pass Luhn and have a "
        "card network's length.",
        accept=lambda v: _luhn_card("".join(c for c in v if c.isdigit())),
    ),
)

_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28,
    "IE": 22, "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31,
    "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24, "SA": 24, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "TR": 26,
}  # fmt: skip


def _iban(value: str) -> bool:
    """An IBAN of a listed country with its length and its mod-97 check, in any case."""
    compact = "".join(c for c in value if c.isalnum()).upper()
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _iban_end(value: str) -> int | None:
    """Where an IBAN at the start of ``value`` ends (None: there is none): its country's
    length of letters and digits, at the end of a group (the regex runs on into the words
    after an IBAN written without spaces: "ES0460... about the")."""
    length = _IBAN_LENGTHS.get(value[:2].upper())
    if length is None:
        return None
    seen = 0
    for i, c in enumerate(value):
        seen += c.isalnum()
        if seen == length:
            end = i + 1
            if end < len(value) and value[end].isalnum():
                return None
            return end if _iban(value[:end]) else None
    return None


_PATTERNS += (
    _Pattern(
        "IBAN_CODE",
        re.compile(r"(?i)(?<![a-z0-9])[a-z]{2}[0-9]{2}(?:[ -]?[a-z0-9]{2,4}){3,8}(?![a-z0-9])"),
        0.8,
        why="Presidio's IBAN recognizer wants capitals; an IBAN typed in lower case is the "
        "same account. Its country's length and the mod-97 check must hold.",
        trim=_iban_end,
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

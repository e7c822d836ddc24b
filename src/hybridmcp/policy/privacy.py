"""Sensitivity analysis and reversible redaction of the arguments of outbound calls.

The gate asks two questions before anything leaves the process: *how sensitive is this?*
(:func:`scan`, which decides which providers are cleared for the request) and *what would an
external server see?* (:func:`redact`, which swaps every finding for a pseudonym that
:func:`restore` can swap back in the answer).

Detection combines three sources, because none of them is enough alone:

- **Presidio** pattern recognizers find personal data (email, phone, card numbers with Luhn,
  IBAN with its checksum, US SSN/ITIN, IP addresses, crypto wallets, ...). It runs with
  ``NoOpNlpEngine``: no spaCy model, no download, a few milliseconds per string.
- **detect-secrets** plugins find credentials (AWS, GitHub, GitLab, Slack, Stripe, OpenAI,
  JWT, private keys, basic auth, ``password=...`` assignments, high-entropy strings). Presidio
  has no recognizer for API keys. The plugins are used directly (their ``analyze_string``),
  never through ``scan_line``: that path mutates detect-secrets' process-global settings and can
  call a plugin's ``verify`` (a network request), neither of which a gate can afford.
- **A few patterns of our own** (source ``"pattern"``) where both miss something common; each is
  listed in :data:`_PATTERNS` with the reason it exists.

Everything runs offline. Presidio's email recognizer validates domains with ``tldextract``, whose
default extractor downloads the Public Suffix List on first use; :func:`_force_offline_tldextract`
makes it use the snapshot bundled in the wheel, whatever the environment says and whenever
``tldextract`` was imported.

Privacy rules of this module:

- A :class:`Finding` never holds the raw value, only its type, location, score and a short hash
  salted per process. Findings and reports may go to state and audit. Paths never carry a raw
  key either: a dict key that is itself sensitive appears as ``~k<index>``.
- The vault returned by :func:`redact` maps pseudonyms back to raw values. It lives in the
  calling process only: never put it in checkpointed state, an audit record or a log.
- The per-string result cache holds raw strings as keys, in process memory only, for speed.

Cost: about 2-5 ms per request on first sight, well under 1 ms when its strings were seen
before; about 0.6 s for 50 kB of prose. Some detect-secrets regexes backtrack quadratically on
crafted input, so their input is bounded (see :data:`_WINDOW`); the gate should still cap the
size of arguments it is willing to scan.

Known gaps (no NLP model here): names and street addresses are not detected; a bare nine-digit
SSN in prose is not (one in a field named like ``ssn`` is); "password is ..." is caught only
when the value does not look like an ordinary word.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import hmac
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Before Presidio (and so tldextract) is imported anywhere through this module: the default
# extractor reads this variable once, when tldextract is first imported.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

__all__ = [
    "DEFAULT_DISABLED_ENTITIES",
    "KNOWN_ENTITIES",
    "Finding",
    "PrivacyConfig",
    "Redaction",
    "Sensitivity",
    "SensitivityReport",
    "engines_ready",
    "redact",
    "restore",
    "scan",
]


# --------------------------------------------------------------------------------------------
# Levels and models


class Sensitivity(enum.IntEnum):
    """Ordered so that clearance checks are plain comparisons (``level <= cleared``)."""

    public = 0
    internal = 1
    confidential = 2
    restricted = 3

    @classmethod
    def _missing_(cls, value: object) -> Sensitivity | None:
        # Lets pydantic and callers accept names ("Restricted") as well as numbers.
        if isinstance(value, str):
            text = value.strip().lower()
            if text.isdigit():
                return cls(int(text))
            return cls.__members__.get(text)
        return None

    @classmethod
    def parse(cls, value: str | int | Sensitivity) -> Sensitivity:
        """Parse a name or a number; raise ``ValueError`` naming the accepted values."""
        try:
            return cls(value)  # type: ignore[arg-type]  # names resolve through _missing_
        except ValueError:
            names = ", ".join(cls.__members__)
            raise ValueError(
                f"unknown sensitivity {value!r}: use one of {names} (or 0..3)"
            ) from None

    def __str__(self) -> str:
        return self.name


Source = Literal["presidio", "detect_secrets", "pattern"]


class Finding(BaseModel):
    """One sensitive span. Safe to store: it says where and what, never the value itself."""

    model_config = ConfigDict(frozen=True)

    path: str
    """JSON pointer (RFC 6901) of the string leaf or dict key that holds the span."""
    entity_type: str
    start: int
    end: int
    score: float
    source: Source
    in_key: bool = False
    """The span is in the dict key at ``path`` rather than in its value."""
    split_of: str | None = None
    """Set when the value was only recognisable across sibling fields (e.g. card halves):
    the pointer of their container. Each field gets its own finding for its part."""
    digest: str = ""
    """Short hash of the raw value, salted per process: equal values correlate within a run,
    yet the value cannot be recovered or confirmed from state or audit."""


class SensitivityReport(BaseModel):
    """What :func:`scan` found: the overall level and every finding."""

    level: Sensitivity = Sensitivity.public
    findings: list[Finding] = Field(default_factory=list)

    @property
    def entity_types(self) -> list[str]:
        return sorted({f.entity_type for f in self.findings})


@dataclass
class Redaction:
    """The redacted value and the vault that reverses it.

    The vault maps each pseudonym to its raw value. It must stay in this process (runtime
    context, a local variable): never in checkpointed state, audit or logs.
    """

    value: Any
    vault: dict[str, str] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.vault)


# Entity names: Presidio's own, the detect-secrets plugin names translated to the same style,
# and the ones our patterns emit.
_DETECT_SECRETS_ENTITIES: dict[str, str] = {
    "AWSKeyDetector": "AWS_ACCESS_KEY",
    "ArtifactoryDetector": "ARTIFACTORY_TOKEN",
    "AzureStorageKeyDetector": "AZURE_STORAGE_KEY",
    "BasicAuthDetector": "BASIC_AUTH",
    "CloudantDetector": "CLOUDANT_CREDENTIAL",
    "DiscordBotTokenDetector": "DISCORD_TOKEN",
    "GitHubTokenDetector": "GITHUB_TOKEN",
    "GitLabTokenDetector": "GITLAB_TOKEN",
    "IbmCloudIamDetector": "IBM_CLOUD_IAM_KEY",
    "IbmCosHmacDetector": "IBM_COS_HMAC_KEY",
    "JwtTokenDetector": "JWT",
    "MailchimpDetector": "MAILCHIMP_KEY",
    "NpmDetector": "NPM_TOKEN",
    "OpenAIDetector": "OPENAI_KEY",
    "PrivateKeyDetector": "PRIVATE_KEY",
    "PypiTokenDetector": "PYPI_TOKEN",
    "SendGridDetector": "SENDGRID_KEY",
    "SlackDetector": "SLACK_TOKEN",
    "SoftlayerDetector": "SOFTLAYER_KEY",
    "SquareOAuthDetector": "SQUARE_OAUTH_SECRET",
    "StripeDetector": "STRIPE_KEY",
    "TelegramBotTokenDetector": "TELEGRAM_TOKEN",
    "TwilioKeyDetector": "TWILIO_KEY",
}
_SECRET_ENTITIES: frozenset[str] = frozenset(
    {
        *_DETECT_SECRETS_ENTITIES.values(),
        "SECRET_KEYWORD",
        "API_KEY",
        "ANTHROPIC_KEY",
        "GOOGLE_API_KEY",
        "BEARER_TOKEN",
        "HIGH_ENTROPY_STRING",
    }
)
_PRESIDIO_ENTITIES: frozenset[str] = frozenset(
    {
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
        "CREDIT_CARD",
        "IBAN_CODE",
        "US_SSN",
        "US_ITIN",
        "US_PASSPORT",
        "US_BANK_NUMBER",
        "US_DRIVER_LICENSE",
        "MEDICAL_LICENSE",
        "UK_NHS",
        "IP_ADDRESS",
        "MAC_ADDRESS",
        "CRYPTO",
        "URL",
        "UUID",
        "DATE_TIME",
    }
)
KNOWN_ENTITIES: frozenset[str] = _PRESIDIO_ENTITIES | _SECRET_ENTITIES
"""Every entity type this module can report."""
DEFAULT_DISABLED_ENTITIES: frozenset[str] = frozenset({"URL", "UUID", "DATE_TIME", "UK_NHS"})
"""Off by default. URL, UUID and DATE_TIME are what many tool calls are *about* (fetch a URL,
look up a request id, book a date): redacting them would break the call while protecting
little. UK_NHS is any ten-digit number passing a mod-11 check: one epoch timestamp in eleven.
Enable them through ``enabled_entities`` where they matter."""

_RESTRICTED_DEFAULTS = {
    "CREDIT_CARD",
    "US_SSN",
    "US_ITIN",
    "IBAN_CODE",
    "US_BANK_NUMBER",
    "US_PASSPORT",
    "UK_NHS",
    "CRYPTO",
} | (_SECRET_ENTITIES - {"HIGH_ENTROPY_STRING"})
_CONFIDENTIAL_DEFAULTS = {
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "IP_ADDRESS",
    "MAC_ADDRESS",
    "PERSON",
    "LOCATION",
    "NRP",
    "US_DRIVER_LICENSE",
    "MEDICAL_LICENSE",
    # An unexplained random-looking string: probably a credential, but not certainly.
    "HIGH_ENTROPY_STRING",
}


def _default_entity_levels() -> dict[str, Sensitivity]:
    levels = {name: Sensitivity.restricted for name in _RESTRICTED_DEFAULTS}
    levels.update({name: Sensitivity.confidential for name in _CONFIDENTIAL_DEFAULTS})
    return dict(sorted(levels.items()))


class PrivacyConfig(BaseModel):
    """How strict detection is and how each kind of data is classified."""

    model_config = ConfigDict(extra="forbid")

    min_score: float = Field(default=0.5, ge=0.0, le=1.0)
    entity_levels: dict[str, Sensitivity] = Field(default_factory=_default_entity_levels)
    """Level per entity type, merged over the defaults (so lowering one level cannot silently
    lower all the others); an entity listed nowhere counts as ``internal``."""
    enabled_entities: set[str] | None = None
    """Only these entity types are reported; ``None`` means every known type except
    :data:`DEFAULT_DISABLED_ENTITIES`."""
    disabled_entities: set[str] = Field(default_factory=set)
    """Never reported, whatever ``enabled_entities`` says."""
    allow_list: set[str] = Field(default_factory=set)
    """Exact values that are never findings (a public support address, a test card)."""
    split_fields: bool = True
    """Also look for values split across sibling fields (card halves, phone parts)."""

    @field_validator("entity_levels", mode="before")
    @classmethod
    def _parse_levels(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            given = {str(k).upper(): Sensitivity.parse(v) for k, v in value.items()}
            return {**_default_entity_levels(), **given}
        return value

    @field_validator("enabled_entities", "disabled_entities", mode="before")
    @classmethod
    def _known_names(cls, value: Any) -> Any:
        # A typo ("EMAIL" for "EMAIL_ADDRESS") would otherwise disable nothing, silently.
        if value is None:
            return None
        names = {value.upper()} if isinstance(value, str) else {str(v).upper() for v in value}
        unknown = sorted(names - KNOWN_ENTITIES)
        if unknown:
            raise ValueError(
                f"unknown entity type(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(KNOWN_ENTITIES))}"
            )
        return names

    def level_for(self, entity_type: str) -> Sensitivity:
        return self.entity_levels.get(entity_type, Sensitivity.internal)

    def active_entities(self) -> frozenset[str]:
        if self.enabled_entities is None:
            base = KNOWN_ENTITIES - DEFAULT_DISABLED_ENTITIES
        else:
            base = frozenset(self.enabled_entities)
        return frozenset(base - self.disabled_entities)


# --------------------------------------------------------------------------------------------
# Engines (built once, lazily: Presidio's import and registry cost about a second)


def _force_offline_tldextract() -> None:
    """Make tldextract use its bundled suffix-list snapshot, never the network.

    The module-level extractor is created when tldextract is first imported, reading
    ``TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS`` then. If something imported tldextract before us,
    or the variable names a remote list, the extractor would fetch it on first use (and hang or
    warn with no network). Replacing it with one that has no URLs and no disk cache makes
    tldextract fall back to the snapshot in its wheel, which is all an email check needs.
    """
    import tldextract
    import tldextract.tldextract as tld_module

    current = tld_module.TLD_EXTRACTOR
    urls = tuple(getattr(current, "suffix_list_urls", ()) or ())
    if any(not u.startswith("file:") for u in urls) or getattr(current, "_extractor", 1) is None:
        tld_module.TLD_EXTRACTOR = tldextract.TLDExtract(
            suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True
        )


_ENGINE_LOCK = threading.Lock()
# National formats are recognised for these regions; numbers with a "+" prefix for any region.
# Each extra region costs a matcher pass and, measured on the clean canary cases, adds false
# positives (ES/IT/NL/AU/BR accept many short digit runs as national numbers).
_PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "CA")
_WORD_RE = re.compile(r"[a-z0-9]+")


def _key_words(key: str) -> tuple[str, ...]:
    return tuple(_WORD_RE.findall(key.lower()))


def _supports(wanted: set[str], words: Iterable[str]) -> bool:
    # Substring match, as Presidio's default: "phones" and "ssns" support "phone" and "ssn".
    return any(c in w for w in words for c in wanted)


_ANALYZER: Any = None


def _analyzer() -> Any:
    """The Presidio engine, built once per process even when threads race for it."""
    global _ANALYZER
    if _ANALYZER is None:
        with _ENGINE_LOCK:
            if _ANALYZER is None:
                _ANALYZER = _build_analyzer()
    return _ANALYZER


def _build_analyzer() -> Any:
    _force_offline_tldextract()
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry, RecognizerResult
    from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
    from presidio_analyzer.nlp_engine import NoOpNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        CryptoRecognizer,
        DateRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        MacAddressRecognizer,
        MedicalLicenseRecognizer,
        NhsRecognizer,
        PhoneRecognizer,
        UrlRecognizer,
        UsBankRecognizer,
        UsItinRecognizer,
        UsLicenseRecognizer,
        UsPassportRecognizer,
        UsSsnRecognizer,
        UuidRecognizer,
    )

    class _PhoneRecognizer(PhoneRecognizer):
        # Presidio scores phones 0.4, counting on spaCy context words to lift real ones above
        # 0.5. Without an NLP engine that lift never comes, and libphonenumber has already
        # checked the number against the national numbering plan, so start at the threshold.
        SCORE = 0.5

    class _WindowContextEnhancer(ContextAwareEnhancer):
        """Presidio's context boost, fed by words near the match instead of spaCy lemmas.

        With ``NoOpNlpEngine`` the default enhancer sees no tokens, so "SSN: 536-22-1234"
        scores like a bare number. Here the five words before the match count (+0.35, floor
        0.4, as Presidio does), and the name of the JSON field holding the string counts more
        (floor 0.6): a field called ``ssn`` is a stronger label than prose nearby.
        """

        def __init__(self) -> None:
            super().__init__(
                context_similarity_factor=0.35,
                min_score_with_context_similarity=0.4,
                context_prefix_count=5,
                context_suffix_count=0,
            )

        def enhance_using_context(
            self, text, raw_results, nlp_artifacts, recognizers, context=None
        ):
            by_id = {r.id: r for r in recognizers}
            field_words = set(context or ())
            for result in raw_results:
                meta = result.recognition_metadata or {}
                recognizer = by_id.get(meta.get(RecognizerResult.RECOGNIZER_IDENTIFIER_KEY))
                if recognizer is None or not recognizer.context:
                    continue
                if meta.get(RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY):
                    continue
                wanted = {w.lower() for w in recognizer.context}
                before = _WORD_RE.findall(text[max(0, result.start - 80) : result.start].lower())
                near = set(before[-self.context_prefix_count :])
                if _supports(wanted, field_words):
                    result.score = min(1.0, max(result.score + 0.35, 0.6))
                elif _supports(wanted, near):
                    result.score = min(1.0, max(result.score + 0.35, 0.4))
            return raw_results

    recognizers = [
        EmailRecognizer(),
        _PhoneRecognizer(supported_regions=_PHONE_REGIONS),
        CreditCardRecognizer(),
        IbanRecognizer(),
        UsSsnRecognizer(),
        UsItinRecognizer(),
        UsPassportRecognizer(),
        UsBankRecognizer(),
        UsLicenseRecognizer(),
        MedicalLicenseRecognizer(),
        NhsRecognizer(),
        IpRecognizer(),
        MacAddressRecognizer(),
        CryptoRecognizer(),
        UrlRecognizer(),
        UuidRecognizer(),
        DateRecognizer(),
    ]
    registry = RecognizerRegistry(recognizers=recognizers, supported_languages=["en"])
    nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    return AnalyzerEngine(
        registry=registry,
        nlp_engine=nlp,
        supported_languages=["en"],
        context_aware_enhancer=_WindowContextEnhancer(),
    )


@functools.cache
def _secret_plugins() -> tuple[tuple[str, Any], ...]:
    """The typed detect-secrets plugins, instantiated once (they are stateless)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    plugins: list[tuple[str, Any]] = []
    plugin_class: Any
    for plugin_class in get_mapping_from_secret_type_to_class().values():
        entity = _DETECT_SECRETS_ENTITIES.get(plugin_class.__name__)
        if entity is not None:
            plugins.append((entity, plugin_class()))
    return tuple(sorted(plugins, key=lambda p: p[0]))


@functools.cache
def _keyword_regexes() -> tuple[tuple[re.Pattern[str], int], ...]:
    """detect-secrets' keyword (``password = ...``) regexes with the group holding the value.

    Both its config-file flavour (values may be unquoted, as in prose and .env text) and its
    quotes-required flavour (code) are used, with ``finditer`` rather than the plugin's
    ``search``, so that every assignment in a string is found, not only the first.
    """
    from detect_secrets.plugins import keyword

    pairs = {**keyword.CONFIG_DENYLIST_REGEX_TO_GROUP}
    pairs.update(keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP)
    return tuple(pairs.items())


@functools.cache
def _entropy_plugin() -> Any:
    from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString

    return Base64HighEntropyString()


def engines_ready() -> None:
    """Build the engines now (e.g. at startup) instead of on the first request."""
    _analyzer()
    _secret_plugins()
    _keyword_regexes()
    _entropy_plugin()


# --------------------------------------------------------------------------------------------
# Our own patterns, each for a gap in both libraries


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


# --------------------------------------------------------------------------------------------
# String-level detection (cached)


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


def _presidio_spans(text: str, context: tuple[str, ...], key: _DetectorKey) -> list[_Span]:
    entities = sorted(key.entities & _PRESIDIO_ENTITIES)
    if not entities or not _PRESIDIO_HINT_RE.search(text):
        # Every Presidio entity we load needs a digit, an '@' or a ':'; skipping the rest
        # saves most of the cost on ordinary prose.
        return []
    results = _analyzer().analyze(
        text=text, language="en", entities=entities, context=list(context) or None
    )
    spans = []
    for r in results:
        score = float(r.score)
        score -= _shape_doubt(r.entity_type, text, r.start, r.end)
        spans.append(_Span(r.entity_type, r.start, r.end, score, "presidio"))
    return spans


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


def _plugin_matches(plugin: Any, text: str) -> Iterable[tuple[int, int]]:
    """Spans of one typed plugin's matches in ``text``.

    The plugins yield values, not positions, and for a regex with a group they yield the group:
    the password of ``://user:pass@``, but also just ``ghp`` of a GitHub token. So the regexes
    are run here with ``finditer``: a group counts as the secret when it reaches (nearly) the end
    of the match or is long enough to be a value rather than a prefix; otherwise the whole match
    is the secret. Plugins with their own validation (JWT) are asked for values, located here.
    """
    from detect_secrets.plugins.base import RegexBasedDetector

    if not isinstance(plugin, RegexBasedDetector) or "analyze_string" in type(plugin).__dict__:
        for value in set(plugin.analyze_string(text)):
            if value:
                yield from _occurrences(text, value)
        return
    for regex in plugin.denylist:
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


def _keyword_spans(text: str) -> list[_Span]:
    spans: list[_Span] = []
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
    for entity, plugin in _secret_plugins():
        if entity not in key.entities:
            continue
        found = {
            (offset + s, offset + e)
            for offset, window in _windows(text)
            for s, e in _plugin_matches(plugin, window)
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
            if not (re.search(r"[0-9]", value) and re.search(r"[a-z]", value)):
                continue
            if not re.search(r"[A-Z]", value) or re.fullmatch(r"[0-9a-fA-F]+", value):
                continue
            if plugin.calculate_shannon_entropy(value) <= plugin.entropy_limit:
                continue
            if _plausible_secret(value, value):
                spans.append(_Span("HIGH_ENTROPY_STRING", *match.span(), 0.6, "detect_secrets"))
    return spans


def _pattern_spans(text: str, key: _DetectorKey) -> list[_Span]:
    spans: list[_Span] = []
    for pattern in _PATTERNS:
        if pattern.entity not in key.entities:
            continue
        for match in pattern.regex.finditer(text):
            start, end = match.span(pattern.group)
            value = text[start:end]
            if end <= start or _is_templated(value):
                continue
            if pattern.accept is None or pattern.accept(value):
                spans.append(_Span(pattern.entity, start, end, pattern.score, "pattern"))
    return spans


_CACHE_MAX_CHARS = 4096


def _detect(text: str, context: tuple[str, ...], key: _DetectorKey, presidio_only: bool) -> tuple:
    """All spans in one string that pass the config.

    Requests repeat their strings (retries, hedged calls, the same field in every call of a
    run), so short strings are cached; long ones are not, which bounds the cache's memory to
    about 8192 x 4 kB.
    """
    if len(text) < 3:
        return ()
    if len(text) > _CACHE_MAX_CHARS:
        return _detect_uncached(text, context, key, presidio_only)
    return _detect_cached(text, context, key, presidio_only)


def _detect_uncached(
    text: str, context: tuple[str, ...], key: _DetectorKey, presidio_only: bool
) -> tuple:
    spans = _presidio_spans(text, context, key)
    if not presidio_only:
        spans += _secret_spans(text, key)
        spans += _pattern_spans(text, key)
    kept: dict[tuple[str, int, int], _Span] = {}
    for span in spans:
        if span.score < key.min_score or span.entity_type not in key.entities:
            continue
        if key.allow_list and text[span.start : span.end].strip().lower() in key.allow_list:
            continue
        ident = (span.entity_type, span.start, span.end)
        if ident not in kept or kept[ident].score < span.score:
            kept[ident] = span
    return tuple(sorted(kept.values(), key=lambda s: (s.start, s.end, s.entity_type)))


_detect_cached = functools.lru_cache(maxsize=8192)(_detect_uncached)


# --------------------------------------------------------------------------------------------
# Walking JSON values

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
# Redaction and restoration

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
    node: Any, path: str, index: dict[tuple[str, bool], list[Finding]], names: _Pseudonyms
) -> Any:
    if isinstance(node, Mapping):
        out = {}
        for i, (raw_key, child) in enumerate(node.items()):
            masked = f"{path}/~k{i}"
            key_spans = index.get((masked, True))
            if key_spans:
                child_path = masked
                new_key = _redact_leaf(raw_key, key_spans, names)
            else:
                child_path = f"{path}/{_escape(_leaf_text(raw_key))}"
                new_key = raw_key
            out[new_key] = _apply(child, child_path, index, names)
        return out
    if isinstance(node, list | tuple):
        items = [_apply(child, f"{path}/{i}", index, names) for i, child in enumerate(node)]
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
    for f in report.findings:
        index.setdefault((f.path, f.in_key), []).append(f)
    return Redaction(value=_apply(value, "", index, names), vault=vault)


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

"""The detection engines, built once and lazily: Presidio (pattern recognizers with
``NoOpNlpEngine``, no spaCy model) and detect-secrets' plugins."""

from __future__ import annotations

import contextvars
import functools
import re
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from hybridmcp.policy.privacy.levels import _DETECT_SECRETS_ENTITIES

_NO_LOADING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "hybridmcp_scan_no_loading", default=False
)


class EnginesNotLoaded(Exception):
    """A scan run under :func:`without_loading` needs an engine (or its module) not built yet."""


@contextmanager
def without_loading() -> Iterator[None]:
    """Scan without building an engine or importing a detector's module: either needs file
    reads and seconds of work, which an event loop must not wait for. A scan that needs one
    raises :class:`EnginesNotLoaded` (to be run again where it may load, e.g. a worker
    thread); nothing half-done is kept."""
    token = _NO_LOADING.set(True)
    try:
        yield
    finally:
        _NO_LOADING.reset(token)


def may_load(module: str | None = None) -> None:
    """Before building an engine (or importing ``module`` lazily, unless it is imported
    already): refused under :func:`without_loading`."""
    if _NO_LOADING.get() and (module is None or module not in sys.modules):
        raise EnginesNotLoaded(module or "a detection engine")


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
        may_load()
        with _ENGINE_LOCK:
            if _ANALYZER is None:
                _ANALYZER = _build_analyzer()
    return _ANALYZER


# Long by design: a declarative list of recognizers and their context words, in one place.
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
    may_load()
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
    may_load()
    from detect_secrets.plugins import keyword

    pairs = {**keyword.CONFIG_DENYLIST_REGEX_TO_GROUP}
    pairs.update(keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP)
    return tuple(pairs.items())


@functools.cache
def _entropy_plugin() -> Any:
    may_load()
    from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString

    return Base64HighEntropyString()


def engines_ready() -> None:
    """Build the engines now (e.g. at startup) instead of on the first request."""
    _analyzer()
    _secret_plugins()
    _keyword_regexes()
    _entropy_plugin()

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
- **Patterns of our own** (source ``"pattern"``, :mod:`.patterns`) where both miss something
  common, each with the reason it exists: partial secrets (a field ending in ``AKIA``,
  ``ghp_``, ``eyJ``, ``xoxb-``, ``sk-``, or 6+ characters of one), phones by shape (E.164
  ``+...`` with 8-15 digits, North American and trunk-0 national shapes: libphonenumber's
  validity is not needed), cards in any grouping by Luhn, the tail of a key block.

Values split across fields are found by windows (:mod:`.scanning`): two to four adjacent
string values, in document order through any nesting (and likewise the dict keys, and keys and
values together), joined with nothing and with a space, run through every detector; runs of
numbers (a card as ``[4111, 1111, 1111, 1111]``) and of short strings
in one list or dict are read whole; a value crossing a boundary is a finding in each field it
touches, so redaction replaces all of it. Every string of a request takes part; the work grows
in proportion to the request. Version-like dotted numbers ("1.2.3.4", "Section 2.3.1.4")
are not addresses without an address word nearby; ``req_<ULID>`` ids are not secrets.

Every detector also runs on what a reader would decode from a string (:mod:`.decoding`:
full-width and other-script digits, look-alike letters, invisible characters, other spaces
and dashes, ``%XX``, ``\\u`` escapes, ``&#NN;``, base64 tokens), a finding there covering the
characters it came from.

The package by concern: :mod:`.levels` (``Sensitivity``, entity types, ``PrivacyConfig``,
the safe result models), :mod:`.engines` (Presidio and detect-secrets, built lazily),
:mod:`.patterns`, :mod:`.decoding` (the decoded views of a string), :mod:`.detection` (one
string; the cheap pre-scan that decides whether Presidio, and so spaCy's import, is needed at
all), :mod:`.scanning` (JSON values, windows), :mod:`.redaction` (pseudonyms and the vault).

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

Cost (measured on the canary corpus): about 6 ms per request on first sight, 0.2 ms when its
strings were seen before; about 0.1 s for 50 kB of prose. Text with no candidate (no digit
run, ``@``, dotted quad or colon pair) never loads Presidio. Some detect-secrets regexes
backtrack quadratically on crafted input, so their input is bounded (see
``detection._WINDOW``); the gate should still cap the size of arguments it is willing to scan.

Known gaps (no NLP model here): names and street addresses are not detected; a bare nine-digit
SSN in prose is not (one in a field named like ``ssn`` is); "password is ..." is caught only
when the value does not look like an ordinary word; a value split over fields that are not
neighbours (other strings between them), or over more than four fields, is not reassembled;
over several calls of a run only the same field to the same server is joined (the gate's
:mod:`.sent`; docs/privacy-and-audit.md, "Known gaps", lists exactly which splits).
"""

from __future__ import annotations

import os

# Before Presidio (and so tldextract) is imported anywhere through this package: the default
# extractor reads this variable once, when tldextract is first imported.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

from hybridmcp.policy.privacy.engines import engines_ready
from hybridmcp.policy.privacy.levels import (
    DEFAULT_DISABLED_ENTITIES,
    KNOWN_ENTITIES,
    Finding,
    PrivacyConfig,
    Redaction,
    Sensitivity,
    SensitivityReport,
)
from hybridmcp.policy.privacy.redaction import redact, restore
from hybridmcp.policy.privacy.scanning import scan

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

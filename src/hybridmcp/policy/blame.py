"""Who a failed attempt is held against: the provider, the request, or nobody. Pure.

Learning and the circuit breakers are told only what the provider did (invariant 7):

- a *censored* attempt (a hedge that lost, a straggler cut, the run's deadline) says only "took
  longer than t": a lower bound for latency, no outcome for success;
- an attempt never *sent* (refused by the gate, or still queued for a session slot when its
  deadline came) says nothing at all of the provider;
- a *request error* is the caller's: invalid parameters (JSON-RPC -32602), an input the tool
  rejects with an error that says so, an internal skill refusing its input, or the same input
  failing with such errors on two providers. It ends the request; the provider is not blamed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

HEDGE_LOST = "hedge lost"
"""Why a call was cancelled: the other side's hedge answered first."""
STRAGGLER = "straggler"
"""Why a call was cancelled: past its slow threshold, with the other side's answer in."""
INVALID_PARAMS = -32602
"""JSON-RPC: invalid method parameter(s)."""

HTTP_STATUS = r"\b(?:status(?:[ _]code)?|HTTP(?:/[\d.]+)?|response code)\s*[:=]?\s*"
"""What precedes an HTTP status code in an error text: ``status code 404``, ``HTTP 422``,
``HTTP/1.1 503``, ``status: 400``."""

CALLER_ERROR_PATTERNS: tuple[str, ...] = (
    r"\binvalid\b",
    r"\bnot found\b",
    r"\bno such (file|directory|table|column|key|resource)",
    r"\bdoes not exist\b",
    r"\bdid not (resolve|match any)\b",  # git: a ref, a pathspec that names nothing
    r"\bunknown (timezone|argument|parameter|key|field|column|table|revision|branch)\b",
    r"\b(is|are) required\b",
    r"\bmissing (required )?(argument|parameter|field|property)",
    r"\bvalidation error",
    r"\bmust be\b",
    r"\bdivision by zero\b",
    r"\bout of range\b",
    r"\boutside (of )?(the )?allowed\b",
    r"\b(ENOENT|EISDIR|ENOTDIR|EEXIST|ENOTEMPTY)\b",
    r"\b(is|not) a directory\b",
    r"\balready exists\b",
    r"\bsyntax error\b",
    r"\bnot allowed\b",
    r"\bonly\b.{0,60}\ballowed\b",
    HTTP_STATUS + r"(?:400|404|405|409|410|411|412|413|414|415|416|422)\b",
    # Chromium (@playwright/mcp) refusing the address it was asked for; a name that does not
    # resolve or a host that refuses is left to the provider, as mcp-server-fetch's are
    r"\bnet::ERR_(INVALID_URL|UNSAFE_PORT|UNKNOWN_URL_SCHEME|DISALLOWED_URL_SCHEME|ADDRESS_INVALID)\b",
    # a wait the request asked for that ran out: the condition it named did not come in the
    # tool's own time (text, an element, a selector); the tool answered, its server is well
    r"\b(time[ds]?[ -]?out|timeout)\b[\s\S]{0,80}?\bwaiting for\b",
    r"\bwaiting for\b[\s\S]{0,120}?\b(timed out|timeout|exceeded)\b",
)
"""Tool error texts that say the input is wrong (case-insensitive); among them an HTTP client
error a tool passes on (``Failed to fetch URL - status code 404``: the page asked for is not
there), but for the 4xx codes about the server's own credentials, time or limits (401, 403,
407, 408, 423, 429: ``SERVER_ERROR_PATTERNS``); and a wait the request asked for that ran out
in the tool's own time (``Timeout 5000ms exceeded ... waiting for getByText('x')``, ``Timed out
waiting for text``, ``Waiting for selector `.x` failed: 30000ms exceeded``): the tool answered,
and says the condition the request named did not come. A timeout that waited for nothing
named (an HTTP client's ``ReadTimeout``, ``timeout of 5000ms exceeded``) or for the server's
own resources (a connection from its pool, a lock, a reply from behind it) stays the
provider's, as a host that refuses is."""

SERVER_ERROR_PATTERNS: tuple[str, ...] = (
    r"\b(unknown|no such) tool\b",
    r"\btool\s+\S+\s+not found\b",
    r"\bmethod not found\b",
    r"\boutput validation\b",
    r"\bvalidation errors? for \w*output\b",  # FastMCP: a return value breaking its own type
    r"\binvalid structured content\b",
    r"\bserializ(e|es|ed|ing|ation|able)\b",
    r"\binternal (server )?error\b",
    r"\bupstream\b",
    r"\b(api[ _-]?key|credentials?|access token)\b",
    r"\brate[ -]limit",
    r"\bquota\b",
    r"\b(is locked|busy|unavailable|overloaded|temporarily|try again later)\b",
    # waiting for the server's own resources, or a reply from what is behind it
    r"\bwaiting for (an? |the )?(connection|lock|slot|worker|thread|pool|response|reply|server"
    r"|backend|database)\b",
    HTTP_STATUS + r"(?:401|403|407|408|423|429|5\d\d)\b",
)
"""Tool error texts that name the server's own failure (case-insensitive): its tool missing,
its answer not serializable or not matching its own output schema, an internal error, its
upstream, its credentials, its limits, a transient state (locked, busy, unavailable), an HTTP
status that says so (5xx; 401, 403, 407, 408, 423, 429). They are
the provider's, though they may also say "invalid" or "not found" (``Error serializing to JSON:
invalid utf-8 ...``), and the same such error on two providers is not the request's either."""

_CALLER_ERROR = re.compile("|".join(CALLER_ERROR_PATTERNS), re.IGNORECASE)
_SERVER_ERROR = re.compile("|".join(SERVER_ERROR_PATTERNS), re.IGNORECASE)

LATENESS_SHARED = "lateness_shared"
"""Attempt flag: past its slow threshold, but its service time shows the server answering the
calls beside it meanwhile (:func:`hybridmcp.policy.hedging.shared_lateness`): not slow."""

REQUEST = "request"
"""``error_kind`` of an attempt that failed because of its request."""
PROVIDER = "provider"
TIMEOUT = "timeout"
REFUSED = "refused"
"""Refused by the gate (privacy, budget, open circuit): never sent; or sent, and failed for
what the client refused its server during it (``client_refused``): the client's doing."""
QUEUED = "queued"
"""Still waiting for a session slot at its deadline: never sent."""
TOO_LARGE = "too_large"
"""Answered, but larger than the coordinator takes (``tool_output.max_bytes``): the
coordinator's limit, not the provider's failure; the request may move elsewhere."""


def never_sent(attempt: Mapping[str, Any]) -> bool:
    """Still queued (our own session slots, the run's own deadline) when it ended: the call
    never reached the provider and says nothing of it, good or bad."""
    return attempt.get("error_kind") == QUEUED


def names_server_fault(error_text: str | None) -> bool:
    """Does a tool's error message name the server's own failure (``SERVER_ERROR_PATTERNS``)?"""
    return bool(_SERVER_ERROR.search(error_text or ""))


def says_input_is_wrong(error_text: str) -> bool:
    """Does a tool's error message blame its input (and not the server itself)?"""
    text = error_text or ""
    return bool(_CALLER_ERROR.search(text)) and not _SERVER_ERROR.search(text)


_TOOL_ERROR_PREFIX = re.compile(r"^Error executing tool \S+:\s*")
"""What FastMCP puts before the text of an exception a tool raised."""
_QUOTES = "'\"`"


def echoes_an_argument(error_text: str, arguments: Any) -> bool:
    """Is a tool's error message nothing but one of the values it was sent (quoted or not,
    after FastMCP's ``Error executing tool NAME:``)? An exception raised on an input and
    passed on as its bare text says which input it could not use: GitPython's
    ``InvalidGitRepositoryError`` and ``NoSuchPathError`` are the path (``mcp-server-git``
    asked for the status of a directory that is no repository answers ``/tmp/x``), a
    ``KeyError`` is the key's repr. A value under two characters, or one that names the
    server's own failure (``SERVER_ERROR_PATTERNS``), does not count."""
    said = _TOOL_ERROR_PREFIX.sub("", (error_text or "").strip()).strip().strip(_QUOTES).strip()
    if len(said) < 2 or _SERVER_ERROR.search(said):
        return False
    return any(said == value.strip() for value in _strings(arguments))


def _strings(value: Any) -> Iterable[str]:
    """Every string among a JSON value's leaves (and its object keys)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)


def refused(attempt: Mapping[str, Any]) -> bool:
    """Refused by the gate (privacy, budget, open circuit): the call never left the process;
    or failed for what the client refused its server (``client_refused``). Neither says
    anything of the provider."""
    return bool(
        attempt.get("error_kind") == REFUSED
        or attempt.get("privacy") == "refuse"
        or attempt.get("budget_exhausted")
        or attempt.get("circuit_open")
    )


def request_faults(attempts: Iterable[Mapping[str, Any]]) -> set[str]:
    """Request ids whose failures are their own: an attempt classed as a request error, or the
    same input failing with a tool error (not a timeout, not a transport failure, not one that
    names the server's own failure) on two or more providers."""
    failed: dict[str, set[str]] = {}
    faults: set[str] = set()
    for a in attempts:
        if a.get("ok"):
            continue
        kind = a.get("error_kind")
        if kind == REQUEST:
            faults.add(a["request_id"])
        elif kind == PROVIDER and a.get("tool_error") and not names_server_fault(a.get("error")):
            failed.setdefault(a["request_id"], set()).add(a["provider"])
    return faults | {rid for rid, providers in failed.items() if len(providers) >= 2}


def learnable(attempt: Mapping[str, Any], faults: set[str]) -> str | None:
    """How an attempt enters the provider's statistics: ``"outcome"`` (success or failure,
    with its latency), ``"censored"`` (a latency lower bound only), or None (not at all)."""
    if not attempt.get("sent", True) or refused(attempt):
        return None
    if attempt.get("error_kind") in (QUEUED, TOO_LARGE):
        return None
    if attempt.get("replayed"):  # recorded by an earlier process of the run, not observed now
        return None
    if attempt.get("censored"):
        return "censored"
    if not attempt.get("ok") and attempt["request_id"] in faults:
        return None
    return "outcome"


def slow(attempt: Mapping[str, Any]) -> bool:
    """Was the provider past its slow threshold (answered late, or cut as a straggler)?"""
    if attempt.get("cancelled") == STRAGGLER:
        return True
    if attempt.get(LATENESS_SHARED):
        return False
    threshold = attempt.get("slow_after_ms")
    return threshold is not None and float(attempt.get("latency_ms") or 0.0) > float(threshold)

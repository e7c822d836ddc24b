"""The records a run writes into its state, by name: what each holds and who writes it.

They are ``TypedDict``s, so state stays plain JSON (checkpointable, readable in Studio and over
the server API) while code reading it gets the keys checked. ``total=False`` marks the keys a
record may lack; the keys always present are ``Required``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Required

from typing_extensions import TypedDict


class Attempt(TypedDict, total=False):
    """One call to one provider (the ``internal`` and ``external`` workers)."""

    request_id: Required[str]
    skill: str
    provider: Required[str]
    side: Required[str]
    """``internal`` or ``external``."""
    round: Required[int]
    idempotency_key: str
    ok: Required[bool]
    started_at: float
    """Wall-clock time the worker started it."""
    latency_ms: float
    """The provider's time: from sent to answered, less the event loop's lateness."""
    queue_ms: float
    """Waiting for a session slot before it was sent: the coordinator's time."""
    in_flight: int
    """The most other calls in flight on the session beside it (external calls): the load its
    latency is judged at (:func:`hybridmcp.policy.hedging.at_load`)."""
    sent: bool
    cost: float
    sampling: dict[str, Any]
    """The sampling answers the server was given during the call: ``server``, ``answers``,
    ``cost`` (charged to the run's budget besides ``cost``)."""
    value: Any
    error: str | None
    error_kind: str
    """Who the failure is held against (:mod:`hybridmcp.policy.blame`)."""
    censored: str | None
    """Why it was cut short (a hedge lost, a straggler, the run's deadline): latency is a lower
    bound, no outcome is learned."""
    cancelled: str
    tool_error: bool
    slow_after_ms: float
    service_ms: float
    """From the later of its sending and the server's last answer to another call on the
    session, to its own answer (external calls)."""
    lateness_shared: bool
    """Past ``slow_after_ms``, but the server answered the calls beside it meanwhile: not slow."""
    hedge: str
    """``primary`` or ``hedge`` when the call raced another."""
    replayed: bool
    """Recorded by an earlier process of the run (journal), not observed now."""
    privacy: str
    redactions: int
    budget_exhausted: bool
    circuit_open: bool
    predicted: dict[str, Any]


class Allocation(TypedDict, total=False):
    """Who serves a request and why (``arbitrate``; see :func:`policy.arbitration.arbitrate`)."""

    mode: Required[str]
    """``internal``, ``external``, ``hybrid`` or ``none``."""
    strategy: str
    critical: bool
    rule: Required[str]
    """The rule that decided, in words."""
    providers: list[str]
    ranking: list[str]
    """Every eligible provider, best first: a move goes to the best one not yet tried."""
    scores: dict[str, dict[str, Any]]
    internal_fitness: float | None
    external_fitness: float | None
    excluded: list[dict[str, Any]]
    validation_strategy: str
    validation_sampling: dict[str, Any]
    pin: dict[str, Any]
    advice: dict[str, Any]


class RequestResult(TypedDict, total=False):
    """One request's outcome (``synchronize``)."""

    id: Required[str]
    skill: str
    status: Required[str]
    """``ok``, ``conflict``, ``unresolved``, ``error``..."""
    value: Any
    served_by: dict[str, str] | None
    """The provider and side whose answer is the value."""
    allocation: str
    allocation_rule: str | None
    attempts: list[dict[str, Any]]
    agreement: bool | None
    similarity: float | None
    confidence: float
    strategy: str
    sources: list[str]
    verdicts: dict[str, bool]
    """Per provider: confirmed (True) or refuted (False) by the evidence or a human."""
    resolution: dict[str, Any]
    synthesis: dict[str, Any]
    values: dict[str, Any]
    error: str | None
    allocation_advice: dict[str, Any]


class Event(TypedDict, total=False):
    """A coordination event: its ``code`` (:class:`hybridmcp.events.EventCode`) and the fields
    that code carries (request, provider, metrics...)."""

    code: Required[str]
    request_id: str


def failure_of(attempt: Mapping[str, Any]) -> str:
    """A failed attempt's error, named by its provider once: ``provider: error``, or the error
    as it is when it already begins with the provider's id (the gate's own messages do)."""
    provider, error = attempt["provider"], str(attempt.get("error"))
    named = error.startswith(provider) and error[len(provider) : len(provider) + 1] in (" ", ":")
    return error if named else f"{provider}: {error}"

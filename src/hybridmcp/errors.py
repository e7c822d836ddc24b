"""One exception hierarchy for the whole product.

Every error hybridmcp raises on purpose derives from :class:`HybridMCPError`. Messages say
what was wrong, with what value, and what to do about it.
"""

from __future__ import annotations


class HybridMCPError(RuntimeError):
    """Base class of every error hybridmcp raises on purpose.

    A ``RuntimeError``: the LangGraph server shows a failed run's error message to its client
    only for the exception classes it knows carry no private data (``ValueError``,
    ``RuntimeError``, ...) and replaces any other's with "An internal error occurred"; every
    message here is written for the user (no secret, no raw argument value)."""


class ConfigError(HybridMCPError):
    """The configuration is invalid; the message names the offending key."""


class TaskError(HybridMCPError):
    """A task (the list of requests) is invalid: bad JSON, unknown skill, bad arguments."""


class ProviderError(HybridMCPError):
    """A provider (internal skill or external MCP tool) failed to produce a valid answer."""


class ToolError(ProviderError):
    """The tool itself reported an error (``isError``, or an internal skill raised one)."""


class ServerUnavailableError(ProviderError):
    """An MCP server could not be started, reached, or has gone away."""


class DeadlineExceededError(ProviderError):
    """A call did not finish within its deadline."""


class RequestError(HybridMCPError):
    """The request itself is wrong (invalid parameters, an input the tool rejects): a caller's
    error, never held against the provider that reported it. ``by_tool``: the tool's own
    error answer said so (it ran, and a write may have acted before failing), not the
    protocol's rejection of the arguments before any tool ran (JSON-RPC -32602)."""

    def __init__(self, message: str, *, by_tool: bool = False) -> None:
        super().__init__(message)
        self.by_tool = by_tool


class AnswerTooLarge(HybridMCPError):
    """An answer larger than the coordinator takes (``tool_output.max_bytes``). The provider
    answered; the limit is the coordinator's, so it is not held against the provider (no
    breaker failure, no degradation, nothing learned), and the request may move elsewhere."""


class BackPressureError(HybridMCPError):
    """A call waited for a session slot until its deadline and was never sent: the coordinator's
    own queue, never held against the provider."""


class CoordinatorClosed(HybridMCPError):
    """The coordinator was closed while a run was in flight, or before it started: the run's
    calls still queued were never sent and those in flight lost their answers. Never the fault
    of a provider: nothing of it is learned, and a run on a thread resumes where its checkpoints
    stop on a coordinator that is open."""


class ThreadBusy(HybridMCPError):
    """A run on a thread that another run (in this process or another one on the same database)
    is running now: a thread names one run, so it is not run twice at once."""


class ThreadLockLost(HybridMCPError):
    """A run's thread lock was lost mid-run (the PostgreSQL connection holding it ended, which
    frees it for every other process): the run is stopped rather than going on unguarded."""


class PolicyError(HybridMCPError):
    """A policy (privacy, budget, circuit breaker) refused a call."""


class PrivacyRefused(PolicyError):
    """The privacy step refused a call; ``reason`` says why (no raw value in it)."""

    def __init__(self, provider: str, reason: str) -> None:
        super().__init__(f"privacy policy refused {provider}: {reason}")
        self.reason = reason


class BudgetExhausted(PolicyError):
    """The run's budget cannot pay for this call."""


class CircuitOpen(PolicyError):
    """The provider's circuit breaker is open: the call was not made."""


class ClientRefused(PolicyError):
    """A call failed after hybridmcp refused what its server asked during it (a sampling
    answer declined, over the run's budget or above the server's clearance; a person's answer
    withheld): the failure is the client's own policy, held against neither the server nor
    the request. ``refusal`` is what the server was told (no raw value in it)."""

    def __init__(self, message: str, refusal: str) -> None:
        super().__init__(message)
        self.refusal = refusal


class AuditError(HybridMCPError):
    """The audit trail is missing, malformed, or fails verification."""


class AnchorUnanswered(AuditError):
    """The audit-head anchor did not answer in time: whether it saved the head is not known
    (the record it was for stays in the trail, one past the anchored head or at it)."""


class SendNotRecorded(HybridMCPError):
    """A priced call whose send the store could not record (:mod:`hybridmcp.sends`): not
    sent, and the run stops, as when a write's dispatch cannot be recorded."""


class StoredRecordError(HybridMCPError):
    """A record of learned statistics in the store that this version cannot read: written by
    another application, by hand, or by a version whose fields had other types."""

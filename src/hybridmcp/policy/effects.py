"""Effect classes: what may be repeated (invariant 9). Pure.

Every provider is ``read``, ``idempotent`` or ``write``:

- from config first: the provider's ``effect:``, else its skill's;
- an internal provider that declares nothing is ``read`` (the built-in skills are);
- an MCP tool by its annotations: ``readOnlyHint: true`` is ``read`` (unless it also says
  ``destructiveHint: true``: a tool that contradicts itself is a ``write``); else
  ``idempotentHint: true`` is ``idempotent``; else (a hint given, as MCP's defaults read: not
  read-only, destructive, not idempotent) ``write``;
- an MCP tool whose annotations say nothing: ``read`` on a server marked ``read_only: true``,
  else ``write``.

A ``write`` runs once: never cross-validated on two sides, never hedged or probed, never moved
to another provider after a call that may have reached the server, never re-run on resume
when its outcome is unknown. ``read`` and ``idempotent`` work may be repeated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mcp.types import Tool

from hybridmcp.config import Effect
from hybridmcp.policy.blame import REQUEST
from hybridmcp.records import failure_of

READ: Effect = "read"
IDEMPOTENT: Effect = "idempotent"
WRITE: Effect = "write"
_ORDER: dict[str, int] = {READ: 0, IDEMPOTENT: 1, WRITE: 2}

OUTCOME_UNKNOWN = "outcome_unknown"
"""How a result whose write may or may not have happened is reported (its error starts so)."""


def tool_effect(tool: Tool | None, *, server_read_only: bool = False) -> Effect:
    """A tool's effect class from its MCP annotations (see the module docstring)."""
    hints = tool.annotations if tool is not None else None
    said = hints is not None and any(
        getattr(hints, h, None) is not None
        for h in ("readOnlyHint", "destructiveHint", "idempotentHint")
    )
    if not said:
        return READ if server_read_only else WRITE
    assert hints is not None
    if hints.readOnlyHint:
        # Read-only and destructive at once: MCP says the second counts only when the first is
        # false, but a server that says both may mean either; the one that cannot write twice.
        return WRITE if hints.destructiveHint else READ
    if hints.idempotentHint:
        return IDEMPOTENT
    return WRITE


def strongest(effects: Iterable[str]) -> Effect:
    """The effect class of work that may run on any of these: the strongest of them."""
    out: Effect = READ
    for e in effects:
        if _ORDER.get(e, 2) > _ORDER[out]:
            out = e  # type: ignore[assignment]
    return out


def unrepeatable(attempt: Mapping[str, Any], effect: str) -> bool:
    """A failed write that may have reached the server (it was sent; or its sending is not
    known): repeating it elsewhere could write twice. Only definite non-delivery (never sent:
    refused by the gate, still queued, circuit open, server down at dispatch), or the
    protocol's rejection of its arguments before any tool ran, is known to have written
    nothing."""
    return (
        effect == WRITE
        and not attempt.get("ok")
        and bool(attempt.get("sent", True))
        and not rejected_unrun(attempt)
    )


def answered_with_an_error(attempt: Mapping[str, Any]) -> bool:
    """Did the provider's tool answer the call with an error (its own failure, or one naming
    the request; ``tool_error``)? For a write that does not say nothing was written: a tool
    may act, then fail (a SQL batch whose first statement was kept when a later one failed).
    The protocol's rejection of the arguments (JSON-RPC -32602) comes before any tool runs."""
    return not attempt.get("ok") and bool(attempt.get("tool_error"))


def rejected_unrun(attempt: Mapping[str, Any]) -> bool:
    """A request error no tool answered (the arguments refused by the protocol before the
    tool ran, JSON-RPC -32602): nothing was written."""
    return attempt.get("error_kind") == REQUEST and not attempt.get("tool_error")


def unrepeatable_reason(attempts: Iterable[Mapping[str, Any]]) -> str:
    """The error of a request whose write is not repeated: ``outcome_unknown``, whether the
    call was cut or its tool answered with an error (which does not say whether it wrote:
    only a tool annotated idempotent is classed safe to repeat, and then it is no ``write``)."""
    attempts = list(attempts)
    why = "; ".join(failure_of(a) for a in attempts)
    if all(answered_with_an_error(a) for a in attempts):
        return (
            f"{OUTCOME_UNKNOWN}: the write's tool answered with an error, which does not say "
            f"that nothing was written; not repeated (write effect): {why}"
        )
    return (
        f"{OUTCOME_UNKNOWN}: the write may have reached the server and is not repeated "
        f"(write effect): {why}"
    )

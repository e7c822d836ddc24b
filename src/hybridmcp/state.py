"""The checkpointed state of a coordination run, and its reducers.

Everything here is plain data (invariant 1): any run can be resumed, inspected in Studio, and
shipped to a server. Live objects (MCP sessions, the store, an LM) travel in the runtime
context. Keys written by the parallel ``internal``/``external`` branches have reducers
(invariant 6).
"""

from __future__ import annotations

import json
import operator
from typing import Annotated, Any, NotRequired

from typing_extensions import TypedDict

from hybridmcp.records import Allocation, Attempt, Event, RequestResult


def merge(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Per-key merge: a later write for a key replaces the earlier one."""
    return {**(left or {}), **(right or {})}


class InputState(TypedDict):
    """What a user gives: the requests and the run's constraints."""

    requests: list[dict[str, Any]]
    """Each ``{id, skill, args, strategy?, critical?, sensitivity?}``."""
    constraints: NotRequired[dict[str, Any]]
    """``{deadline_ms?, budget?, min_quality?}``."""
    run_id: NotRequired[str]
    """Stable id of the run; derived from the thread when absent."""


class WorkItem(TypedDict):
    """One attempt to be made: sent, in a :class:`Batch`, to the ``internal`` or ``external``
    node with ``Send``."""

    request_id: str
    skill: str
    args: dict[str, Any]
    provider: str
    side: str
    round: int
    idempotency_key: str
    run_id: str
    sensitivity: str
    declared_sensitivity: NotRequired[str]
    """The request's declared level, which redaction cannot lower (analyze)."""
    deadline_at: float | None
    """Absolute wall-clock deadline of the run (from ``constraints.deadline_ms``), if any."""
    budget: NotRequired[float | None]
    """The run's budget (``constraints.budget``), enforced by the gate per run."""
    spent: NotRequired[float]
    """With a budget, what the run's attempts cost before this round (reallocate): where the
    gate's count of the round's spending starts, in whichever process runs it."""
    watch: NotRequired[dict[str, Any]]
    """What the worker watches while the call runs: slow threshold, hedge, straggler peer
    (:func:`hybridmcp.policy.hedging.watch_plan`)."""


class Batch(TypedDict):
    """Attempts sent together to the ``internal`` or ``external`` node: one LangGraph task,
    each call in it checkpointed on its own (:mod:`hybridmcp.journal`)."""

    items: list[WorkItem]


class OutputState(TypedDict):
    """What a run returns."""

    status: str
    """``ok`` (every request answered), ``partial``, or ``failed``."""
    results: Annotated[dict[str, RequestResult], merge]
    """Per request: value, allocation, attempts, agreement, confidence, error (synchronize)."""
    conflicts: Annotated[list[dict[str, Any]], operator.add]
    """``RESULT_CONFLICT_DETECTED`` records from cross-validation (synchronize)."""
    events: Annotated[list[Event], operator.add]
    """Coordination events, each with the spec's ``code`` (any node)."""
    quality: dict[str, Any]
    """Completeness, consistency, reliability, transparency, overall."""
    metrics: dict[str, Any]
    """Run metrics: calls, latency, cost, rounds, reallocations."""
    cost: NotRequired[dict[str, Any]]
    """Spent per provider and side, the budget, ``cost_optimization`` (synchronize)."""
    coordination: NotRequired[dict[str, Any]]
    """The coordinator LM's strategy, integration points and optimization (analyze; only
    when ``llm_config.coordinator_model`` is set and answered)."""


class State(InputState, OutputState):
    """The whole checkpointed state. Written by the node named in each comment."""

    run_id: str  # type: ignore[misc]  # optional in the input, always set once analyze ran
    run_thread: NotRequired[str]
    """The thread the run's id was made on (analyze): on a copy of the thread (the server's
    ``threads.copy``), whose state says another, a later run takes an id of the copy's own."""
    started_at: float
    """Wall-clock start (analyze)."""
    errors: Annotated[dict[str, str], merge]
    """Per request id: why it cannot be served (analyze, monitor)."""
    profiles: Annotated[dict[str, dict[str, Any]], merge]
    """Per request id: the requirement profile (analyze)."""
    allocations: Annotated[dict[str, Allocation], merge]
    """Per request id: the allocation and the numbers behind it (arbitrate)."""
    pending: list[WorkItem]
    """Work for the next round, dispatched in batches with ``Send`` (arbitrate, reallocate)."""
    moves: list[dict[str, Any]]
    """Reallocations planned by monitor, carried out by reallocate."""
    attempts: Annotated[list[Attempt], operator.add]
    """Every attempt: provider, side, round, ok, latency_ms, cost, value or error (workers)."""
    settled: Annotated[list[str], operator.add]
    """Request ids whose work is done, answered or not (monitor)."""
    round: int
    """The current round, from 1 (arbitrate, reallocate)."""


def idempotency_key(run_id: str, request_id: str, provider: str, round_no: int) -> str:
    """A call's idempotency key: its run, request, provider and round as a JSON array, which no
    two calls share (joined with colons, thread ``t`` asking request ``a:b`` and thread ``t:a``
    asking ``b`` would read alike)."""
    call = [run_id, request_id, provider, round_no]
    return json.dumps(call, separators=(",", ":"), ensure_ascii=False)


def colon_key(run_id: str, request_id: str, provider: str, round_no: int) -> str:
    """The key earlier versions gave a call (``run:request:provider:round``): what their
    dispatch records are kept under, and what the calls of runs they checkpointed carry."""
    return f"{run_id}:{request_id}:{provider}:{round_no}"


def work_item(
    state: State, request: dict[str, Any], provider: str, skill: str, side: str, round_no: int
) -> WorkItem:
    """The attempt of ``request`` on ``provider`` in round ``round_no`` (arbitrate, reallocate):
    its idempotency key names the run, the request, the provider and the round."""
    run_id = state["run_id"]
    constraints = state.get("constraints") or {}
    deadline_ms = constraints.get("deadline_ms")
    profile = state["profiles"][str(request["id"])]
    return WorkItem(
        request_id=str(request["id"]),
        skill=skill,
        args=request.get("args", {}),
        provider=provider,
        side=side,
        round=round_no,
        idempotency_key=idempotency_key(run_id, str(request["id"]), provider, round_no),
        run_id=run_id,
        sensitivity=profile["data_sensitivity"],
        declared_sensitivity=profile.get("declared_sensitivity", "public"),
        deadline_at=state["started_at"] + deadline_ms / 1000 if deadline_ms else None,
        budget=constraints.get("budget"),
    )

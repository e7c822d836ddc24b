"""Progress as it happens: custom stream events of a coordination run.

Every node of the graph is wrapped by :func:`observed` (in ``graph.py``), which emits, through
LangGraph's stream writer (``stream_mode="custom"``):

- ``{"type": "phase", "node", "status": "started"|"finished", "ms"?, ...}`` for each phase;
  ``arbitrate`` and ``reallocate`` add ``attempts`` (the number of attempts they dispatch);
- ``{"type": "attempt", "status": "started"|"finished", "request_id", "provider", "side",
  "round", "ok"?, "latency_ms"?, "error"?}`` around each attempt of the parallel workers;
- ``{"type": "reallocation", "request_id", "to_provider", "to_side", "round", "reason"}``;
- ``{"type": "conflict", "request_id", "disagreement_level", "resolution_strategy"}``;
- ``{"type": "progress", "request_id", "provider", "round", "progress", "total", "message"}``
  for each progress notification an MCP server sends during a call;
- ``{"type": "event", "code", ...}`` for every other coordination event (degradation, hedge, ...).

Events are plain dicts, so they cross the LangGraph server's ``custom`` stream unchanged. With
no custom stream requested (``ainvoke``), LangGraph's writer does nothing: the events are then
not built at all (:func:`silent`). The CLI renders them (:mod:`hybridmcp.live`); nothing here
draws.
"""

from __future__ import annotations

import contextvars
import functools
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ParamSpec

from langgraph.config import get_stream_writer
from langgraph.types import Command, Overwrite

from hybridmcp.callcontext import apart_from_step_in
from hybridmcp.events import EventCode

P = ParamSpec("P")

WORKERS = frozenset({"internal", "external"})
"""Nodes that make attempts: each reported as an attempt, not as a phase."""

ATTEMPT_KEYS = ("request_id", "provider", "side", "round")
_REALLOCATION_KEYS = ("request_id", "to_provider", "to_side", "round", "reason")
_CONFLICT_KEYS = ("request_id", "disagreement_level", "resolution_strategy")


def _pass(_event: Any) -> None:
    pass


_PASS = _pass.__code__


def silent(writer: Callable[[Any], None]) -> bool:
    """Does ``writer`` do nothing? LangGraph's writer when no ``custom`` stream was asked for
    (``ainvoke``, or streaming other modes) is a function whose body is ``pass``: the same
    code as :func:`_pass`, which can have no effect. Events for it need not be built. Any
    other writer (a real stream, a wrapper around one) is written to."""
    code = getattr(writer, "__code__", None)
    return code is not None and code.co_code == _PASS.co_code and code.co_consts == _PASS.co_consts


def emit(event: dict[str, Any]) -> None:
    """Send one progress event to the custom stream; a no-op when no writer is active."""
    _writer()(event)


def current_writer() -> Callable[[Any], None]:
    """The run's stream writer, bound to the caller's context, to emit from tasks that do not
    run in the graph's context (an MCP session's callbacks); a no-op outside a graph run."""
    writer = _writer()
    if writer is _no_writer:
        return _no_writer
    # The writer reads the run's config when it writes: the copy keeps it, less the run's state
    # (a session may hold the callback after the run).
    context = apart_from_step_in(contextvars.copy_context())
    return lambda event: context.run(writer, event)


def _attempt_event(item: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "attempt", **{k: item.get(k) for k in ATTEMPT_KEYS}, **extra}


def _written(update: dict[str, Any], key: str) -> Any:
    """What a node's update adds to a list key (the list an ``Overwrite`` replaces it with:
    a run that follows an earlier one on its thread)."""
    value = update.get(key)
    if isinstance(value, Overwrite):
        value = value.value
    return value or ()


def _finished_events(update: Any) -> list[dict[str, Any]]:
    """Progress events read from a node's state update."""
    if not isinstance(update, dict):
        return []
    out: list[dict[str, Any]] = []
    for a in _written(update, "attempts"):
        out.append(
            _attempt_event(
                a, status="finished", ok=a.get("ok"), latency_ms=a.get("latency_ms"),
                error=a.get("error"),
            )
        )  # fmt: skip
    for e in _written(update, "events"):
        code = e.get("code")
        if code == EventCode.REALLOCATION:
            out.append({"type": "reallocation", **{k: e.get(k) for k in _REALLOCATION_KEYS}})
        elif code == EventCode.RESULT_CONFLICT_DETECTED:
            out.append({"type": "conflict", **{k: e.get(k) for k in _CONFLICT_KEYS}})
        elif code:
            out.append({"type": "event", **e})
    return out


def attempt_started(item: Mapping[str, Any]) -> None:
    """Report an attempt of a worker batch as it starts (:mod:`hybridmcp.nodes.execute`)."""
    write = _writer()
    if write is not _no_writer:
        write(_attempt_event(item, status="started"))


def attempt_finished(update: Mapping[str, Any]) -> None:
    """Report one call's attempts and events as it finishes, not when its batch does."""
    write = _writer()
    if write is not _no_writer:
        for event in _finished_events(dict(update)):
            write(event)


def _writer() -> Callable[[Any], None]:
    """The run's stream writer; :func:`_no_writer` outside a graph run or when it does
    nothing (:func:`silent`)."""
    try:
        writer = get_stream_writer()
    except RuntimeError:  # called outside a graph run
        return _no_writer
    return _no_writer if silent(writer) else writer


def _no_writer(_event: Any) -> None:
    return None


def observed(
    node: str,
    fn: Callable[P, Awaitable[Any]],
    then: Callable[[dict[str, Any]], Any] | None = None,
) -> Callable[P, Awaitable[Any]]:
    """Wrap an async node so that it reports its progress (the signature is kept, so LangGraph
    still injects ``runtime`` and ``config``). The workers report each attempt themselves.

    ``then`` routes: given the node's update, where the run goes next (node names or ``Send``
    packets); the node then returns both as a ``Command``."""
    if node in WORKERS:
        return fn

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        write = _writer()  # one look-up per node run, not per event
        if write is _no_writer:  # nothing would receive them: no events built
            update = await fn(*args, **kwargs)
        else:
            write({"type": "phase", "node": node, "status": "started"})
            t0 = time.perf_counter()
            update = await fn(*args, **kwargs)
            for event in _finished_events(update):
                write(event)
            finished: dict[str, Any] = {"type": "phase", "node": node, "status": "finished"}
            finished["ms"] = round((time.perf_counter() - t0) * 1000, 3)
            if isinstance(update, dict) and "pending" in update:
                finished["attempts"] = len(update["pending"] or [])
            write(finished)
        if then is None:
            return update
        return Command(update=update, goto=then(update))

    return wrapper

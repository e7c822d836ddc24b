"""Several phases in one graph node: one LangGraph step instead of one per phase.

Each step of a LangGraph run has a fixed cost (about 0.15 ms here: the task, its callbacks,
the channels' writes and the next step's planning), paid on every run however small. Phases
that always follow one another, with nothing to wait for in between, run in one node:
``analyze`` then ``arbitrate``, ``synchronize`` then ``learn``. Each phase is still its own
function in ``nodes/``, reports its own progress (``observed``), and sees the state exactly as
it would have as a node of its own: the earlier phases' updates folded in with the state's
reducers. The node writes what the phases wrote, one write per key, so the checkpointed state
is the same as with one node per phase.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from langgraph.graph import END
from langgraph.runtime import Runtime
from langgraph.types import Command, Overwrite, RunnableConfig

from hybridmcp.progress import observed

Reducer = Callable[[Any, Any], Any]
Phase = Callable[..., Awaitable[dict[str, Any]]]
Stop = Callable[..., Awaitable[str | None]]
"""After a phase: where the run goes instead of the next phase, or ``None`` to go on."""


def reducers(schema: type) -> dict[str, Reducer]:
    """The reducer of each key of a state schema that has one, read as LangGraph reads it: the
    last item of the key's ``Annotated`` metadata, when it is callable."""
    out: dict[str, Reducer] = {}
    for key, hint in typing.get_type_hints(schema, include_extras=True).items():
        meta = getattr(hint, "__metadata__", ())
        if meta and callable(meta[-1]):
            out[key] = meta[-1]
    return out


def fold(state: Mapping[str, Any], update: Mapping[str, Any], by: Mapping[str, Reducer]) -> dict:
    """The state as the next node would read it after ``update``: a key with a reducer takes
    ``reducer(old, new)`` (LangGraph starts an unset one from the new value), any other key is
    replaced; an :class:`Overwrite` replaces a key with a reducer too."""
    out = dict(state)
    _apply(out, update, by, keep_overwrite=False)
    return out


def combine(updates: Sequence[Mapping[str, Any]], by: Mapping[str, Reducer]) -> dict[str, Any]:
    """One update with the effect of ``updates`` applied one after another: a key with a
    reducer gets the reduced values (the state's reducers are associative: list concatenation
    and per-key merge), any other key the last value written. A key an :class:`Overwrite`
    replaced stays one, with the later values reduced into it."""
    out: dict[str, Any] = {}
    for update in updates:
        _apply(out, update, by, keep_overwrite=True)
    return out


def _apply(
    out: dict[str, Any],
    update: Mapping[str, Any],
    by: Mapping[str, Reducer],
    *,
    keep_overwrite: bool,
) -> None:
    """``update`` written into ``out`` in place, as :func:`fold` (``keep_overwrite`` off) or
    :func:`combine` says."""
    for key, value in update.items():
        reducer = by.get(key)
        if isinstance(value, Overwrite):
            out[key] = value if keep_overwrite else value.value
        elif reducer and key in out:
            old = out[key]
            if isinstance(old, Overwrite):
                out[key] = Overwrite(reducer(old.value, value))
            else:
                out[key] = reducer(old, value)
        else:
            out[key] = value


def _call(fn: Phase) -> Callable[[Any, Runtime[Any], RunnableConfig], Awaitable[Any]]:
    """The phase called with what its signature asks for (``config`` only when it takes it)."""
    if "config" in inspect.signature(fn).parameters:
        return lambda state, runtime, config: fn(state, runtime, config)
    return lambda state, runtime, _config: fn(state, runtime)


def phases(
    schema: type,
    *steps: tuple[str, Phase] | tuple[str, Phase, Stop],
    then: Callable[[dict[str, Any]], Any] | None = None,
) -> Callable[[Any, Runtime[Any], RunnableConfig], Awaitable[Command[Any]]]:
    """A node running ``steps`` in order, each ``(name, phase)`` or ``(name, phase, stop)``.

    A ``stop``, given the state after its phase, may end the node there and name where the run
    goes (e.g. a human review before learning). Otherwise the run goes where ``then`` says,
    given the phases' combined update, or to ``END``."""
    by = reducers(schema)
    calls = [
        (_call(observed(step[0], step[1])), step[2] if len(step) > 2 else None) for step in steps
    ]

    async def node(state: Any, runtime: Runtime[Any], config: RunnableConfig) -> Command[Any]:
        updates: list[dict[str, Any]] = []
        view: dict[str, Any] = state
        goto: Any = None
        for i, (call, stop) in enumerate(calls):
            update = await call(view, runtime, config)
            updates.append(update)
            if i + 1 == len(calls):
                break
            view = fold(view, update, by)
            if stop is not None and (goto := await stop(view, runtime)) is not None:
                break
        update = combine(updates, by)
        if goto is None:
            goto = then(update) if then is not None else END
        return Command(update=update, goto=goto)

    return node

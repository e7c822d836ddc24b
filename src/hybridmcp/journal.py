"""Each call of a batch checkpointed on its own, as it finishes.

The workers make their attempts in batches: one LangGraph task per batch of calls, not one per
call (a step of thousands of tasks costs LangGraph time quadratic in their number). LangGraph
saves a task's writes when the task ends, so on its own a run killed mid-batch would make the
batch's finished calls again on resume. The journal closes that gap (invariant 3): each call's
state update is saved the moment the call finishes, as a pending write of the step's
checkpoint under a task id of its own, ``<batch task id>:<idempotency key>``. The graph applies
only the writes of the tasks it runs (it ignores these: the batch's own writes, saved when it
ends, carry the same attempts); a resumed batch has the same task id (LangGraph derives it from
the checkpoint and the ``Send``), reads its calls' writes back, and replays them instead of
calling again.

The batches of a step read the step's saved writes once between them (:class:`_StepWrites`):
reading them means loading the step's checkpoint, the whole state of the run, and a batch each
doing so made a run's cost grow with the square of its requests (at 5,000 requests with an
in-memory checkpointer, nine tenths of the run).

Without a checkpointer nothing can be resumed, and the journal does nothing.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_config, get_stream_writer
from langgraph.runtime import ExecutionInfo

CHECKPOINTER_KEY = "__pregel_checkpointer"
"""Where LangGraph hands a run's checkpointer to the run's tasks (``configurable``; LangGraph's
``CONFIG_KEY_CHECKPOINTER``, not public API: were it to move, the journal would find no
checkpointer and do nothing, which ``tests/integration/test_batches.py`` catches). A graph run
as a subgraph is lent its parent's there; ``None`` there runs it without one."""


def _checkpointer() -> BaseCheckpointSaver | None:
    try:
        saver = get_config().get("configurable", {}).get(CHECKPOINTER_KEY)
    except RuntimeError:  # not inside a graph run
        return None
    return saver if isinstance(saver, BaseCheckpointSaver) else None


def graph_namespace(task_namespace: str) -> str:
    """The checkpoint namespace of the graph running the task: a task's own is the graph's,
    then ``|node:task_id`` (or ``node:task_id`` in the root graph)."""
    return task_namespace.rsplit("|", 1)[0] if "|" in task_namespace else ""


Finished = dict[str, dict[str, dict[str, Any]]]
"""Finished calls by batch task id: by idempotency key, the call's update (channel: value)."""


async def _load(saver: BaseCheckpointSaver, config: RunnableConfig) -> Finished:
    """The calls saved under the step's checkpoint, by batch task."""
    saved = await saver.aget_tuple(config)
    finished: Finished = {}
    for task_id, channel, value in (saved.pending_writes if saved else None) or ():
        batch, sep, key = task_id.partition(":")
        if sep:
            finished.setdefault(batch, {}).setdefault(key, {})[channel] = value
    return finished


class _StepWrites:
    """The saved calls of the steps under way in one execution of a graph, read once per step
    for all its batches (each batch takes its own calls; a call it saves is added to them, so
    a batch that runs again in the same execution finds it too). Held per execution, which
    ends with the run: the run's stream writer is created for it and dropped with it, so a
    run resumed later, here or in another process, reads the checkpoint afresh."""

    _by_run: ClassVar[weakref.WeakKeyDictionary[Callable[..., Any], _StepWrites]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self) -> None:
        self.steps: dict[tuple[str, str], tuple[str, asyncio.Future[Finished]]] = {}
        """By thread and namespace: the step's checkpoint id and its calls (the latest step
        only: a namespace's steps follow one another)."""

    @classmethod
    async def read(cls, saver: BaseCheckpointSaver, config: RunnableConfig) -> Finished:
        try:
            steps = cls._by_run.setdefault(get_stream_writer(), cls()).steps
        except (RuntimeError, KeyError, TypeError):  # no run's writer to hold them by
            return await _load(saver, config)
        conf = config["configurable"]
        where, checkpoint_id = (conf["thread_id"], conf["checkpoint_ns"]), conf["checkpoint_id"]
        known = steps.get(where)
        loop = asyncio.get_running_loop()
        if known is None or known[0] != checkpoint_id or known[1].get_loop() is not loop:
            # In a context of its own: the task, kept with its result, must not hold the
            # run's config (it holds the writer, which would then never be let go).
            load = loop.create_task(_load(saver, config), context=contextvars.Context())
            known = (checkpoint_id, load)
            steps[where] = known
        return await asyncio.shield(known[1])


@dataclass
class CallJournal:
    """The finished calls of one batch task: those of an earlier, interrupted run of the same
    task (``done``, by idempotency key), and where to save each new one."""

    saver: BaseCheckpointSaver | None = None
    config: RunnableConfig | None = None
    prefix: str = ""
    done: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    async def open(cls, info: ExecutionInfo | None) -> CallJournal:
        saver = _checkpointer()
        if saver is None or info is None or info.thread_id is None:
            return cls()
        config: RunnableConfig = {
            "configurable": {
                "thread_id": info.thread_id,
                "checkpoint_ns": graph_namespace(info.checkpoint_ns),
                "checkpoint_id": info.checkpoint_id,
            }
        }
        finished = await _StepWrites.read(saver, config)
        return cls(saver, config, f"{info.task_id}:", finished.setdefault(info.task_id, {}))

    def where(self) -> dict[str, Any] | None:
        """The checkpoint this batch runs from (thread, namespace, id), or None without one."""
        if self.config is None:
            return None
        return dict(self.config["configurable"])

    async def gone(self, where: dict[str, Any] | None) -> bool:
        """Is the checkpoint ``where`` (from :meth:`where`, maybe of an earlier run) no longer
        saved, on its thread nor on this one? Its thread was deleted, or the run rolled back.
        A copy of the thread (the server's ``threads.copy``) holds the checkpoint under the
        same id, so a call made before the copy is the copy's too, its original deleted or
        not. False when not known: no checkpointer here, or none given."""
        if self.saver is None or not where:
            return False
        if await self.saver.aget_tuple({"configurable": where}) is not None:
            return False
        here = (self.config or {}).get("configurable", {}).get("thread_id")
        if here is None or here == where.get("thread_id"):
            return True
        copied = {**where, "thread_id": here}
        return await self.saver.aget_tuple({"configurable": copied}) is None

    async def record(self, key: str, update: dict[str, Any]) -> None:
        """Save one finished call's state update (a no-op without a checkpointer)."""
        if self.saver is None or self.config is None:
            return
        await self.saver.aput_writes(self.config, list(update.items()), self.prefix + key)
        self.done[key] = dict(update)

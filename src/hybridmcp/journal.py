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

Without a checkpointer nothing can be resumed, and the journal does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_config
from langgraph.runtime import ExecutionInfo

_CHECKPOINTER = "__pregel_checkpointer"
"""Where LangGraph hands a run's checkpointer to the run's tasks (``configurable``; LangGraph's
``CONFIG_KEY_CHECKPOINTER``, not public API: were it to move, the journal would find no
checkpointer and do nothing, which ``tests/integration/test_batches.py`` catches)."""


def _checkpointer() -> BaseCheckpointSaver | None:
    try:
        saver = get_config().get("configurable", {}).get(_CHECKPOINTER)
    except RuntimeError:  # not inside a graph run
        return None
    return saver if isinstance(saver, BaseCheckpointSaver) else None


def _graph_namespace(task_namespace: str) -> str:
    """The checkpoint namespace of the graph running the task: a task's own is the graph's,
    then ``|node:task_id`` (or ``node:task_id`` in the root graph)."""
    return task_namespace.rsplit("|", 1)[0] if "|" in task_namespace else ""


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
                "checkpoint_ns": _graph_namespace(info.checkpoint_ns),
                "checkpoint_id": info.checkpoint_id,
            }
        }
        prefix = f"{info.task_id}:"
        saved = await saver.aget_tuple(config)
        done: dict[str, dict[str, Any]] = {}
        for task_id, channel, value in (saved.pending_writes if saved else None) or ():
            if task_id.startswith(prefix):
                done.setdefault(task_id[len(prefix) :], {})[channel] = value
        return cls(saver, config, prefix, done)

    async def record(self, key: str, update: dict[str, Any]) -> None:
        """Save one finished call's state update (a no-op without a checkpointer)."""
        if self.saver is None or self.config is None:
            return
        await self.saver.aput_writes(self.config, list(update.items()), self.prefix + key)

"""The context calls run in: the run's config, without what reaches the step's state.

asyncio gives every timer and callback a copy of the context it was scheduled in, and a
cancelled timer stays in the event loop's queue until it would have fired: the timer of a call's
deadline (``asyncio.timeout``, the session pool's) outlives the call by the rest of the deadline,
up to a minute. Inside a graph node that context holds LangGraph's config of the node's task,
whose readers reach the step's channels: the whole state of the run. So a finished run stayed
in memory until the last of its calls' deadlines passed, and every full garbage collection
meanwhile, in the runs that followed too, went through it (after 5,000 external requests, the
internal run that came next spent a third of its time in them).

Calls run with :func:`apart_from_step`: the config of the node's task less the keys that reach
the step's channels and writes. What a call uses of the config stays: the run's stream writer
(progress events), the runtime (context, store), the checkpointer, the thread and checkpoint
ids, the callbacks, tags and metadata (tracing). ``tests/integration/test_run_released.py``
checks that a finished run leaves nothing of its state in memory.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from langchain_core.runnables.config import var_child_runnable_config

STEP_KEYS = frozenset(
    {
        "__pregel_read",
        "__pregel_read_state",
        "__pregel_send",
        "__pregel_call",
        "__pregel_runner_submit",
        "__pregel_node_finished",
    }
)
"""LangGraph's ``configurable`` keys (not public API) that reach the step: its channels (the
run's state), the task's writes, its executor. A call needs none of them."""


def trimmed(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` without the :data:`STEP_KEYS` of its ``configurable``."""
    configurable = config.get("configurable") or {}
    kept = {k: v for k, v in configurable.items() if k not in STEP_KEYS}
    return {**config, "configurable": kept}


@contextmanager
def apart_from_step() -> Iterator[None]:
    """Within the block, the current task's config is :func:`trimmed`: the tasks, timers and
    callbacks started there hold no reference to the run's state (outside a graph run, it
    changes nothing). ``interrupt()`` needs the whole config: call it outside the block."""
    config = var_child_runnable_config.get()
    if not config:
        yield
        return
    token = var_child_runnable_config.set(trimmed(config))  # type: ignore[arg-type]
    try:
        yield
    finally:
        var_child_runnable_config.reset(token)


def apart_from_step_in(context: contextvars.Context) -> contextvars.Context:
    """``context`` (a copy, for a callback that runs later and may outlive the run) with its
    config :func:`trimmed`; returns it."""
    config = context.get(var_child_runnable_config)
    if config:
        context.run(var_child_runnable_config.set, trimmed(config))  # type: ignore[arg-type]
    return context

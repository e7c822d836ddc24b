"""The in-process entry point: open resources once, run tasks, close cleanly.

async with Coordinator.open(load_config()) as co:
    result = await co.run(load_task(None))
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore
from langgraph.types import Command

from hybridmcp.capabilities.gate import Gate
from hybridmcp.capabilities.mcp_pool import SessionPool
from hybridmcp.config import HybridConfig
from hybridmcp.errors import TaskError
from hybridmcp.graph import build_graph
from hybridmcp.runtime import Context, Resources
from hybridmcp.state import OutputState
from hybridmcp.task import Task


class Coordinator:
    """A compiled coordinator graph bound to live resources."""

    def __init__(
        self,
        resources: Resources,
        *,
        checkpointer: BaseCheckpointSaver | None = None,
        store: BaseStore | None = None,
    ) -> None:
        self.resources = resources
        self.store = store or resources.store
        self.graph = build_graph().compile(
            name="hybridmcp", checkpointer=checkpointer, store=self.store
        )

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        config: HybridConfig,
        *,
        checkpointer: BaseCheckpointSaver | None = None,
        store: BaseStore | None = None,
        gate_factory: Callable[[SessionPool], Gate] | None = None,
    ) -> AsyncIterator[Coordinator]:
        resources = await Resources.open(config, gate_factory=gate_factory, store=store)
        try:
            yield cls(resources, checkpointer=checkpointer, store=store)
        finally:
            await resources.close()

    def validate(self, task: Task) -> None:
        """Check every request against the registry before anything runs."""
        problems = []
        for request in task.requests:
            try:
                self.resources.registry.get(request.skill).validate_args(request.args)
            except TaskError as err:
                problems.append(f"request {request.id!r}: {err}")
        if problems:
            raise TaskError("invalid task:\n  " + "\n  ".join(problems))

    def graph_input(self, task: Task, run_id: str | None = None) -> dict[str, Any]:
        data = task.model_dump(mode="json", exclude_none=True)
        return {
            "requests": data["requests"],
            "constraints": data.get("constraints", {}),
            **({"run_id": run_id} if run_id else {}),
        }

    def run_config(self, thread_id: str | None = None) -> dict[str, Any]:
        return {
            "configurable": {"thread_id": thread_id or uuid.uuid4().hex},
            "recursion_limit": 25 + 4 * self.resources.config.coordination_config.max_rounds,
        }

    async def stream(
        self, task: Task, *, thread_id: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Validate and run a task, yielding progress events as they happen (see
        :mod:`hybridmcp.progress`), then ``{"type": "result", "output": <what run returns>}``."""
        self.validate(task)
        last: dict[str, Any] = {}
        async for mode, chunk in self.graph.astream(
            self.graph_input(task),
            self.run_config(thread_id),
            context=Context(resources=self.resources),
            stream_mode=["custom", "values"],
        ):
            if mode == "custom":
                yield chunk
            else:
                last = chunk
        keep = OutputState.__annotations__.keys() | {"__interrupt__"}
        yield {"type": "result", "output": {k: v for k, v in last.items() if k in keep}}

    async def resume(self, decision: Any, *, thread_id: str) -> dict[str, Any]:
        """Resume a run paused for a human decision (``__interrupt__`` in its output): the
        decision maps request ids to ``"internal"``, ``"external"`` or the value to use.
        Needs the checkpointer the run was started with, and its ``thread_id``."""
        return await self.graph.ainvoke(
            Command(resume=decision),
            self.run_config(thread_id),
            context=Context(resources=self.resources),
        )

    async def run(self, task: Task, *, thread_id: str | None = None) -> dict[str, Any]:
        """Validate and run a task; returns the output state (status, results, ...)."""
        self.validate(task)
        return await self.graph.ainvoke(
            self.graph_input(task),
            self.run_config(thread_id),
            context=Context(resources=self.resources),
        )

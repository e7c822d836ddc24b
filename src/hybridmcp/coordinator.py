"""The in-process entry point: open resources once, run tasks, close cleanly.

async with Coordinator.open(load_config()) as co:
    result = await co.run(load_task(None))
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore
from langgraph.types import Command, Interrupt, StateSnapshot

from hybridmcp.capabilities.client_features import human_answer
from hybridmcp.capabilities.gate import Gate
from hybridmcp.capabilities.mcp_pool import SessionPool
from hybridmcp.config import HybridConfig
from hybridmcp.errors import AuditError, CoordinatorClosed, StoredRecordError, TaskError
from hybridmcp.graph import build_graph
from hybridmcp.limits import lone_surrogate_in
from hybridmcp.nodes.review import check_choices
from hybridmcp.policy.disclosure import plain_json
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
        valid: set[tuple[str, str]] = set()  # (skill, arguments as JSON) found valid
        several = len(task.requests) > 1  # a lone request has nothing to share
        for request in task.requests:
            args = request.args
            alike = (
                (request.skill, json.dumps(args) if args else "{}")
                if several and plain_json(args)
                else None
            )
            if alike is not None and alike in valid:
                continue  # the same skill and the same plain arguments: the same verdict
            try:
                self.resources.registry.get(request.skill).validate_args(request.args)
            except TaskError as err:
                problems.append(f"request {request.id!r}: {err}")
                continue
            if alike is not None:
                valid.add(alike)
        if problems:
            raise TaskError("invalid task:\n  " + "\n  ".join(problems))

    def graph_input(self, task: Task, run_id: str | None = None) -> dict[str, Any]:
        data = task.model_dump(mode="json", exclude_none=True)
        return {
            "requests": data["requests"],
            "constraints": data.get("constraints", {}),
            **({"run_id": run_id} if run_id else {}),
        }

    def run_config(self, thread_id: str | None = None) -> RunnableConfig:
        return {
            "configurable": {"thread_id": thread_id or uuid.uuid4().hex},
            "recursion_limit": 25 + 4 * self.resources.config.coordination_config.max_rounds,
        }

    async def thread_status(self, task: Task, thread_id: str | None) -> ThreadStatus:
        """Where a task stands on a thread: ``new`` (nothing checkpointed), ``unfinished``
        (started, interrupted mid-way: resuming finishes it), ``paused`` (waiting for a human
        decision, see :meth:`resume`) or ``finished``. A thread holding another task is an
        error: a thread id names one run."""
        _check_thread(thread_id)
        if self.graph.checkpointer is None or thread_id is None:
            return ThreadStatus("new", {})
        try:
            snapshot = await self.graph.aget_state(self.run_config(thread_id))
            values = dict(snapshot.values or {})
        except _UNREADABLE as err:  # not the database failing: what it holds
            text = " ".join(str(err).split())[:200]
            raise StoredRecordError(
                f"thread {thread_id!r}: its checkpoint cannot be read ({type(err).__name__}: "
                f"{text}): written by another application or version, or damaged; it was not "
                "changed (run the task on a new thread id)"
            ) from None
        if not values:
            return ThreadStatus("new", {})
        given = self.graph_input(task)
        stored = {"requests": values.get("requests"), "constraints": values.get("constraints", {})}
        if stored != {k: given[k] for k in ("requests", "constraints")}:
            raise TaskError(
                f"thread {thread_id!r} already holds a different task; "
                "run this task on a new thread id"
            )
        if snapshot.interrupts:
            return ThreadStatus("paused", values | {"__interrupt__": list(snapshot.interrupts)})
        return ThreadStatus("finished" if _ended(snapshot) else "unfinished", values)

    async def _start(self, task: Task, thread_id: str | None) -> tuple[ThreadStatus, Any]:
        """Validate the task; what to give the graph to start or resume it on the thread."""
        self.validate(task)
        status = await self.thread_status(task, thread_id)
        return status, (self.graph_input(task) if status.state == "new" else None)

    def _durability(self) -> Literal["sync"] | None:
        # With a checkpointer, each step is saved before the next starts, and each finished
        # parallel call's writes as soon as it finishes: a run killed at any point resumes
        # without repeating a completed call.
        return "sync" if self.graph.checkpointer is not None else None

    def _context(self, validated: bool = False) -> Context:
        # ``validated``: the task went through validate() (run, stream), so analyze need not
        # check its requests again.
        return Context(resources=self.resources, validated=validated)

    async def stream(
        self, task: Task, *, thread_id: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Validate and run a task, yielding progress events as they happen (see
        :mod:`hybridmcp.progress`), then ``{"type": "result", "output": <what run returns>}``.
        On a thread with a checkpoint, resumes or replays it as :meth:`run` does."""
        async with self._running(thread_id):
            status, graph_input = await self._start(task, thread_id)
            last: dict[str, Any] = status.values
            named = thread_id or self._unnamed_thread()
            if status.state in ("new", "unfinished"):
                async for mode, chunk in self.graph.astream(
                    graph_input,
                    self.run_config(named),
                    stream_mode=["custom", "values"],
                    context=self._context(validated=True),
                    durability=self._durability(),
                ):
                    if mode == "custom":
                        yield cast(dict[str, Any], chunk)
                    else:
                        last = cast(dict[str, Any], chunk)
        unnamed = named if thread_id is None else None
        yield {"type": "result", "output": paused_on(output_of(last), unnamed)}

    @asynccontextmanager
    async def _running(self, thread_id: str | None) -> AsyncIterator[None]:
        """A run: refused on a closed coordinator, and on a thread another run is running now
        (:mod:`hybridmcp.thread_lock`); one the coordinator's close ends mid-way fails with
        one :class:`CoordinatorClosed` that says what was kept."""
        _check_thread(thread_id)
        with self.resources.running():
            async with self._thread(thread_id):
                try:
                    yield
                except CoordinatorClosed as err:
                    raise CoordinatorClosed(self._closed_mid_run(err, thread_id)) from None
                except AuditError as err:
                    raise AuditError(self._unaudited_mid_run(err, thread_id)) from None

    def _thread(self, thread_id: str | None) -> AbstractAsyncContextManager[None]:
        """The thread held for the run (a durable run's only: one without a checkpointer
        keeps nothing another run could repeat)."""
        if self.graph.checkpointer is None or thread_id is None:
            return nullcontext()
        res = self.resources
        return res.thread_locks.hold(self.store, thread_id, res.store_files)

    def _resumable(self, thread_id: str | None, fixed: str) -> str:
        if self.graph.checkpointer is not None and thread_id is not None:
            return (
                f"run the task again on thread {thread_id!r} {fixed} to resume it where its "
                "checkpoints stop"
            )
        return "nothing of it was kept (no checkpointer and thread id): it cannot resume"

    def _unaudited_mid_run(self, err: AuditError, thread_id: str | None) -> str:
        """A run stopped because its audit trail could not take a record: no external call
        goes out that the trail cannot record."""
        kept = self._resumable(thread_id, "once the trail can be written")
        return f"{err}; the run stopped, sending nothing more; {kept}"

    def _closed_mid_run(self, err: CoordinatorClosed, thread_id: str | None) -> str:
        kept = self._resumable(thread_id, "with an open coordinator")
        return (
            f"the coordinator closed while the run was in flight ({err}); nothing was "
            f"learned from it; {kept}"
        )

    async def resume(self, decision: Any, *, thread_id: str) -> dict[str, Any]:
        """Resume a run paused for a human decision (``__interrupt__`` in its output): the
        decision maps request ids to ``"internal"``, ``"external"`` or the value to use.
        Needs the checkpointer the run was started with, and its ``thread_id``. A decision
        that cannot answer the pending questions is refused with :class:`TaskError` before
        anything runs, and the run stays paused (:func:`check_decision`)."""
        if self.graph.checkpointer is None:
            raise TaskError(
                "resume needs the checkpointer the run was started with, and this coordinator "
                "has none: open it with Coordinator.open(config, checkpointer=...) and run "
                "the task with a thread_id"
            )
        snapshot = await self.graph.aget_state(self.run_config(thread_id))
        if not snapshot.values:
            raise TaskError(f"thread {thread_id!r} holds no run to resume")
        if not snapshot.interrupts:
            state = "finished" if _ended(snapshot) else "unfinished"
            raise TaskError(
                f"thread {thread_id!r} is not paused for a decision (its run is {state}); "
                "an unfinished run finishes when its task runs on the thread again"
            )
        check_decision(decision, snapshot.interrupts)
        async with self._running(thread_id):
            return await self._invoke(Command(resume=decision), thread_id, self._context())

    async def run(self, task: Task, *, thread_id: str | None = None) -> dict[str, Any]:
        """Validate and run a task; returns the output state (status, results, ...).

        With a checkpointer and a ``thread_id``, the run is durable: on a thread whose run was
        interrupted mid-way it resumes where the checkpoints stop (calls that completed are
        not made again); on a thread whose run finished it returns the stored result without
        running anything; on a thread paused for review it returns the paused output. A run
        given no ``thread_id`` that pauses returns the thread it can be resumed on as
        ``thread_id`` (with a checkpointer; without one there is nothing to resume)."""
        async with self._running(thread_id):
            status, graph_input = await self._start(task, thread_id)
            if status.state in ("finished", "paused"):
                return output_of(status.values)
            named = thread_id or self._unnamed_thread()
            out = await self._invoke(graph_input, named, self._context(validated=True))
            return paused_on(out, named if thread_id is None else None)

    def _unnamed_thread(self) -> str | None:
        """The thread of a run given none: with a checkpointer, one it can be resumed on
        should it pause (:func:`paused_on`); without, LangGraph's own throwaway one."""
        return uuid.uuid4().hex if self.graph.checkpointer is not None else None

    async def _invoke(self, graph_input: Any, thread_id: str | None, context: Context) -> Any:
        """The graph run to its end or its pause: the output state, with ``__interrupt__``
        when a human must answer. Only the final state is asked of LangGraph (its ``v2``
        output): the ``v1`` default also streams every node's update, for nothing."""
        out = await self.graph.ainvoke(
            graph_input,
            self.run_config(thread_id),
            context=context,
            durability=self._durability(),
            version="v2",
        )
        if not out.interrupts:
            return out.value
        interrupts = {"__interrupt__": list(out.interrupts)}
        return out.value | interrupts if isinstance(out.value, dict) else interrupts


def check_decision(decision: Any, pending: Sequence[Interrupt]) -> None:
    """Refuse a resume value that cannot answer the pending questions: with several pending,
    LangGraph needs a mapping of their ids to answers; a conflict review's answer may name
    only requests under review (:func:`hybridmcp.nodes.review.check_choices`); a server's
    question's answer must fit its schema, and name no field it does not have
    (:func:`hybridmcp.capabilities.client_features.human_answer`)."""
    by_id = {i.id: i for i in pending}
    if len(pending) > 1:
        if not (isinstance(decision, dict) and decision and set(decision) <= set(by_id)):
            raise TaskError(
                f"{len(pending)} questions are pending: answer with an object mapping question "
                f"ids ({', '.join(sorted(by_id))}) to answers"
            )
        answers = [(by_id[key], answer) for key, answer in decision.items()]
    elif isinstance(decision, dict) and decision and set(decision) == set(by_id):
        answers = [(pending[0], decision[pending[0].id])]  # LangGraph's form for one question
    else:
        answers = [(pending[0], decision)]
    for question, answer in answers:
        value = question.value
        if isinstance(value, dict) and value.get("type") == "conflict_review":
            check_choices(answer, value["conflicts"])
        elif isinstance(value, dict) and value.get("type") == "elicitation":
            _check_answer(answer, value.get("requested_schema") or {}, question.id)


def paused_on(output: dict[str, Any], thread_id: str | None) -> dict[str, Any]:
    """A paused output of a run started without a thread id, with the ``thread_id`` it can be
    resumed on (:meth:`Coordinator.resume`); any other output as it is."""
    if thread_id is None or "__interrupt__" not in output:
        return output
    return output | {"thread_id": thread_id}


def _check_answer(answer: Any, schema: dict[str, Any], question: str) -> None:
    """An answer to a server's question, checked before the run resumes as the server's call
    will check it then (an answer that does not fit would fail the call, and the pause would
    be spent), and naming only the question's fields."""
    try:
        human_answer(answer, schema, only_asked=True)
    except ValueError as err:
        raise TaskError(f"answer to question {question}: {err}") from None


_UNREADABLE = (TypeError, ValueError, KeyError, IndexError, AttributeError, NotImplementedError)
"""What LangGraph's serializer raises on a checkpoint it cannot decode (bytes of another
format, a type it refuses such as ``pickle``, a value of another shape)."""


@dataclass(frozen=True)
class ThreadStatus:
    """A thread's run: ``new``, ``unfinished``, ``paused`` or ``finished``, and its state."""

    state: str
    values: dict[str, Any]


def _check_thread(thread_id: str | None) -> None:
    """Refuse a thread id no database can hold (a lone surrogate: on a command line, bytes
    that are not UTF-8) in one line, before it is looked up."""
    if thread_id is not None and (why := lone_surrogate_in(thread_id)):
        raise TaskError(
            f"thread id {thread_id!r} is not text a database can hold "
            f"({why.removeprefix('<root>: ').split(', which')[0]}, which UTF-8 cannot carry); "
            "on a command line: bytes that are not UTF-8"
        )


def _ended(snapshot: StateSnapshot) -> bool:
    """Whether the run of a thread's latest checkpoint has ended: no task is left to it. Not
    ``snapshot.next`` alone, which leaves out the tasks whose writes are saved: a run killed
    after a step's node finished (its writes are saved at once) and before the step's
    checkpoint has no ``next``, yet resuming it applies those writes and goes on."""
    return not snapshot.next and not snapshot.tasks


def output_of(values: dict[str, Any]) -> dict[str, Any]:
    """The output keys of a run's state (what :meth:`Coordinator.run` returns)."""
    keep = OutputState.__annotations__.keys() | {"__interrupt__"}
    return {k: v for k, v in values.items() if k in keep}

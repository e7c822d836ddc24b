"""HybridToolNode: LangGraph's ``ToolNode``, with every tool call coordinated by hybridmcp.

An agent's model asks for tools; instead of calling one implementation of each, this node turns
the last AI message's ``tool_calls`` into one coordination run: each call becomes a request
(skill = the tool, args = the call's args), and arbitration decides internal, external or both
(cross-validated), with failover, reallocation, privacy policy and audit as in any run. It
answers with one ``ToolMessage`` per call, ``tool_call_id`` preserved.

It is a ``ToolNode`` (a subclass), so it goes wherever one goes: ``create_react_agent(model,
tools=HybridToolNode(...))``, or ``builder.add_node("tools", HybridToolNode(...))`` beside
``tools_condition``; sync (``invoke``) and async (``ainvoke``); ``handle_tool_errors`` as
``ToolNode``'s. Its ``tools_by_name`` are the skills as ``BaseTool``\\ s (:class:`SkillTool`)
with the skills' argument schemas, ready for ``chat_model.bind_tools``.

The ``BaseTool``\\ s, ``@tool`` functions and plain callables it is given become internal
providers (:func:`register_tools`): of a skill of their own, with the tool's schema, or of the
skill they are named after (``time__now`` or ``provides={"my_clock": "time.now"}``), beside the
MCP tools that serve it.

Skill names contain dots (``time.now``), which model APIs refuse in tool names, so tools are
named ``time__now``; :func:`tool_name` and :func:`skill_name` map between the two. See
``docs/toolnode.md``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import threading
import uuid
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any, Literal, TypeVar

from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, ToolException
from langchain_core.tools import tool as create_tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph._internal._constants import (
    CONFIG_KEY_CHECKPOINT_MAP,
    CONFIG_KEY_RUNTIME,
    CONFIG_KEY_TASK_ID,
)
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.prebuilt import ToolNode
from langgraph.prebuilt.tool_node import _get_all_injected_args, _infer_handled_types
from langgraph.runtime import Runtime
from langgraph.types import Command
from mcp.types import Tool, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

from hybridmcp.capabilities.registry import (
    INTERNAL_CLEARANCE,
    Provider,
    Registry,
    Skill,
    unknown_skills,
)
from hybridmcp.capabilities.registry import build_registry as _build_registry
from hybridmcp.config import CONFIG_ENV, ComparatorConfig, CoordinationConfig, load_config
from hybridmcp.errors import HybridMCPError, TaskError, ToolError
from hybridmcp.graph import build_graph
from hybridmcp.journal import CHECKPOINTER_KEY, graph_namespace
from hybridmcp.policy.effects import Effect, tool_effect
from hybridmcp.runtime import Context, Resources, resources_for
from hybridmcp.state import InputState

_INVALID = re.compile(r"[^a-zA-Z0-9_-]")
MAX_TOOL_NAME = 64
_log = logging.getLogger("hybridmcp.toolnode")
_T = TypeVar("_T")

ErrorHandling = bool | str | Callable[..., str] | type[Exception] | tuple[type[Exception], ...]


# -- names ----------------------------------------------------------------------------------


_PLAIN = re.compile(r"[a-zA-Z0-9-]+(?:[._][a-zA-Z0-9-]+)*")
"""A skill name whose tool name spells it alone: letters, digits and ``-`` parted by single
dots and underscores (so ``__`` in the tool name is a dot and ``_`` an underscore)."""
_HASH_CHARS = 8


def tool_name(skill: str) -> str:
    """A skill's name as a model tool name (``time.now`` -> ``time__now``). A name that does
    not spell back alone (characters a model API refuses, ``名前``; ``__`` or a dot beside an
    underscore; past 64 characters) is cut and ends in a short hash of the whole name
    (``c.名前`` -> ``c_____3f1c9a0b``-like), so two skills are never one tool."""
    plain = skill.replace(".", "__")
    if _PLAIN.fullmatch(skill) and len(plain) <= MAX_TOOL_NAME:
        return plain
    digest = hashlib.blake2s(skill.encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()
    return f"{_INVALID.sub('_', plain)[: MAX_TOOL_NAME - _HASH_CHARS - 1]}_{digest}"


def skill_name(tool: str, registry: Registry) -> str:
    """The skill a model's tool name stands for; an unknown name is returned unchanged (the run
    then reports it as an unknown skill)."""
    if tool in registry.skills:
        return tool
    return {tool_name(s): s for s in registry.skills}.get(tool, tool)


# -- errors ---------------------------------------------------------------------------------


class HybridToolError(HybridMCPError, ToolException):
    """A tool call the coordinator could not answer (every provider failed, a write's outcome
    is unknown, a policy refused it...). ``result`` is the request's coordination record."""

    def __init__(
        self, message: str, *, tool: str, skill: str, result: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.tool = tool
        self.skill = skill
        self.result = dict(result) if result is not None else None


class InvalidToolCallError(HybridToolError):
    """The call itself is wrong (an unknown tool, bad arguments): the model can fix it."""


# -- content: what the model reads, what rides along ----------------------------------------

_PART_KINDS = frozenset({"image", "audio", "resource", "resource_link"})


def _is_part(value: Any) -> bool:
    """A typed non-text part of an MCP answer (see ``registry._content_value``)."""
    return (
        isinstance(value, dict)
        and value.get("type") in _PART_KINDS
        and ("data" in value or "uri" in value)
    )


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _stand_in(part: Mapping[str, Any], index: int) -> str:
    """The line the model reads in place of a non-text part."""
    kind, mime = part["type"], part.get("mime_type") or "unknown type"
    where = f"artifact content[{index}]"
    if kind == "resource_link":
        name = f" {part['name']}" if part.get("name") else ""
        return f"[resource link{name}: {part.get('uri')} ({mime}); {where}]"
    if kind == "resource":
        if "text" in part:
            return f"[resource {part.get('uri')} ({mime}); {where}]\n{part['text']}"
        return f"[resource {part.get('uri')} ({mime}, binary); {where}]"
    data = str(part.get("data") or "")
    size = len(data) * 3 // 4 - data[-2:].count("=")  # the decoded size
    return f"[{kind} {mime}, {size} bytes; {where}]"


def split_content(value: Any) -> tuple[str, list[dict[str, Any]]]:
    """A coordinated value as (text for the model, its non-text parts).

    Text stays text, other JSON values are their JSON; an image, audio clip or resource (alone
    or among the parts of an answer) is replaced by a line naming it (a text resource keeps its
    text) and returned apart, to ride in the ``ToolMessage``'s artifact."""
    parts = value if isinstance(value, list) and any(map(_is_part, value)) else [value]
    if not any(map(_is_part, parts)):
        return _as_text(value), []
    lines: list[str] = []
    blocks: list[dict[str, Any]] = []
    for part in parts:
        if _is_part(part):
            lines.append(_stand_in(part, len(blocks)))
            blocks.append(dict(part))
        else:
            lines.append(_as_text(part))
    return "\n".join(lines), blocks


def _problem(result: Mapping[str, Any] | None) -> str | None:
    """Why a coordinated result is no answer (None when it is one)."""
    if result is None:
        return None
    if result.get("error"):
        return str(result["error"])
    status = result.get("status")
    if status == "ok":
        return None
    if status == "unresolved":
        values = json.dumps(result.get("values"), ensure_ascii=False, default=str)
        return f"conflict unresolved: the providers disagree and nothing settles it: {values}"
    return f"no answer (status {status})"


# -- the user's tools as internal providers -------------------------------------------------


def as_tool(obj: BaseTool | Callable[..., Any]) -> BaseTool:
    """A ``BaseTool`` as it is; a ``@tool`` function is one; a plain callable becomes one (its
    signature and docstring give the schema and description, as in ``ToolNode``)."""
    if isinstance(obj, BaseTool):
        return obj
    if callable(obj):
        return create_tool(obj)
    raise TypeError(f"HybridToolNode: {obj!r} is neither a BaseTool nor a callable")


def _check_tool(tool: BaseTool) -> None:
    """Refuse what the coordinator cannot run as an in-process provider, with what to do."""
    coroutine = getattr(tool, "coroutine", None)
    if getattr(coroutine, "__module__", "").startswith("langchain_mcp_adapters"):
        raise TypeError(
            f"HybridToolNode: tool {tool.name!r} calls an MCP server through "
            "langchain-mcp-adapters, around hybridmcp's gate (privacy, budget, audit). Put the "
            "same connection under `mcpServers` in the configuration instead: its tools are "
            "then skills (`server.tool`, offered as `server__tool`)."
        )
    injected = _get_all_injected_args(tool)
    if injected.state or injected.store or injected.runtime:
        raise TypeError(
            f"HybridToolNode: tool {tool.name!r} takes injected graph state, store or runtime; "
            "a coordinated call runs apart from the graph's state, so it cannot supply them. "
            "Keep such tools in a plain ToolNode."
        )


_HINTS = ("readOnlyHint", "destructiveHint", "idempotentHint")


def tool_effect_of(tool: BaseTool, declared: Effect | None = None) -> Effect:
    """A given tool's effect class: ``declared`` if given; else its MCP annotations when its
    metadata carries them (as tools converted from MCP do); else ``read``, as every internal
    provider that declares nothing."""
    if declared is not None:
        return declared
    meta = tool.metadata or {}
    hints = {h: meta[h] for h in _HINTS if meta.get(h) is not None}
    if not hints:
        return "read"
    listing = Tool(name=tool.name, inputSchema={}, annotations=ToolAnnotations(**hints))
    return tool_effect(listing)


def _schema(tool: BaseTool) -> dict[str, Any]:
    params = convert_to_openai_tool(tool)["function"].get("parameters")
    return dict(params or {"type": "object", "properties": {}})


def _value(output: Any) -> Any:
    """A tool's output as the coordinated value (data, checkpointed with the run)."""
    if isinstance(output, Command):
        raise ToolError(
            "the tool returned a Command (a graph update), which a coordinated call cannot "
            "apply; keep such tools in a plain ToolNode"
        )
    if isinstance(output, ToolMessage):
        return output.content
    if isinstance(output, BaseModel):
        return output.model_dump(mode="json")
    return output


def _provider_call(tool: BaseTool) -> Callable[..., Awaitable[Any]]:
    async def call(**args: Any) -> Any:
        return _value(await tool.ainvoke(args))

    call.tool = tool  # type: ignore[attr-defined]  # what "the same tool" is checked by
    return call


# Long by design: each kind of tool given (BaseTool, @tool, callable) handled in turn.
def register_tools(
    registry: Registry,
    tools: Iterable[BaseTool],
    *,
    default_timeout_ms: float,
    provides: Mapping[str, str] | None = None,
    effects: Mapping[str, Effect] | None = None,
) -> dict[str, str]:
    """Make each tool an internal provider (id ``internal:tool/<name>``) in ``registry``; returns
    tool name -> skill.

    A tool serves the skill ``provides`` names for it, else the skill its name stands for
    (``time__now`` -> ``time.now``), joining that skill's providers; else a new skill named
    like it, with its description and argument schema. Registering the same tool again changes
    nothing; another tool of the same name replaces the first (with a warning)."""
    provides, effects = dict(provides or {}), dict(effects or {})
    served: dict[str, str] = {}
    changed = False
    for tool in tools:
        skill = provides.get(tool.name) or skill_name(tool.name, registry)
        served[tool.name] = skill
        provider = Provider(
            id=f"internal:tool/{tool.name}",
            skill=skill,
            side="internal",
            quality=0.9,
            expected_latency_ms=1.0,
            cost_per_call=0.0,
            clearance=INTERNAL_CLEARANCE,
            timeout_ms=default_timeout_ms,
            function=f"tool:{tool.name}",
            effect=tool_effect_of(tool, effects.get(tool.name)),
            call=_provider_call(tool),
        )
        known = registry.skills.get(skill)
        if known is None:
            if skill != tool.name and tool.name in provides:
                raise TaskError(
                    f"HybridToolNode: provides[{tool.name!r}] names an "
                    + unknown_skills([skill], registry.skills)
                )
            registry.skills[skill] = Skill(
                name=skill,
                description=tool.description or "",
                input_schema=_schema(tool),
                providers=(provider,),
                comparator=ComparatorConfig(),
            )
            changed = True
            continue
        same = next((p for p in known.providers if p.id == provider.id), None)
        same_tool = same is not None and getattr(same.call, "tool", None) is tool
        if same_tool and same is not None and same.effect == provider.effect:
            continue
        if same is not None and not same_tool:
            _log.warning("tool %r replaces an earlier tool of that name as a provider", tool.name)
        others = tuple(p for p in known.providers if p.id != provider.id)
        registry.skills[skill] = Skill(
            name=known.name,
            description=known.description,
            input_schema=known.input_schema,
            providers=(*others, provider),
            comparator=known.comparator,
            integration=known.integration,
            tags=known.tags,
            complexity=known.complexity,
        )
        changed = True
    if changed:
        registry.__dict__.pop("_providers", None)  # the cached provider index is stale
    return served


# -- skills as BaseTools --------------------------------------------------------------------


class SkillTool(BaseTool):
    """A skill as a LangChain tool: calling it runs one coordinated request through its node;
    it answers ``(text, artifact)`` (``response_format="content_and_artifact"``) and raises
    :class:`HybridToolError` when the request fails."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    skill: str
    """The skill this tool stands for (``time.now`` for ``time__now``)."""
    effect: str = "read"
    """The skill's effect class (its strongest provider's)."""
    node: Any = Field(default=None, exclude=True, repr=False)
    """The :class:`HybridToolNode` that runs it."""
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"

    def _to_args_and_kwargs(
        self, tool_input: str | dict[str, Any], tool_call_id: str | None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        args, kwargs = super()._to_args_and_kwargs(tool_input, tool_call_id)
        return args, {**kwargs, _CALL_ID: tool_call_id}  # what the call is known by

    def _run(self, config: RunnableConfig, **args: Any) -> tuple[str, dict[str, Any]]:
        run_id = recorded_run_id_sync(config)
        call = self.node._call_of(config, run_id, args.pop(_CALL_ID, None), self.name, args)
        return self.node._call_tool_sync(self.name, args, call)

    async def _arun(self, config: RunnableConfig, **args: Any) -> tuple[str, dict[str, Any]]:
        run_id = await recorded_run_id(config)
        call = self.node._call_of(config, run_id, args.pop(_CALL_ID, None), self.name, args)
        return await self.node._call_tool(self.name, args, call)


_CALL_ID = "__hybridmcp_tool_call_id"
"""Where a :class:`SkillTool` passes itself the id of the tool call it answers."""


_TASK_KEY = "__pregel_read"
"""Where LangGraph hands a node's task its state reader (``configurable``; LangGraph's
``CONFIG_KEY_READ``, not public API): an object made for each execution of a task, the same
for every call made in it, which the numbering of the calls given no tool call id is kept by
(:meth:`HybridToolNode._call_of`). Were it to move, such calls would get a run of their own
each time again, which ``tests/integration/test_skilltool_resume.py`` catches."""


def _args_digest(tool: str, args: Mapping[str, Any]) -> str:
    """A short digest of a call's tool and arguments (what calls given no id are told apart by)."""
    text = json.dumps([tool, args], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _skill_tool(skill: Skill, node: HybridToolNode, return_direct: bool = False) -> SkillTool:
    sides = " and ".join(sorted({p.side for p in skill.providers}))
    return SkillTool(
        name=tool_name(skill.name),
        description=f"{skill.description or skill.name} (served by {sides})",
        args_schema=dict(skill.input_schema),
        skill=skill.name,
        effect=skill.effect,
        node=node,
        return_direct=return_direct,
    )


def tools_for_model(
    source: Resources | Registry, skills: Iterable[str] | None = None
) -> list[BaseTool]:
    """The skills of live resources (or of a registry) as ``BaseTool``\\ s, ready for
    ``chat_model.bind_tools`` or a plain ``ToolNode``; each call runs one coordinated request,
    on those resources (for a registry: on the run's, as :class:`HybridToolNode` finds them)."""
    if isinstance(source, Resources):
        node = HybridToolNode(resources=source, skills=skills)
    else:
        node = HybridToolNode(skills=skills, _registry=source)
    return list(node.tools_by_name.values())


# -- running from sync code -----------------------------------------------------------------


class _Portal:
    """An event loop in a daemon thread: where a node invoked from sync code opens (and keeps)
    its own resources when it is given none."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.resources: Resources | None = None
        self.lock = threading.Lock()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="hybridmcp-toolnode", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def own_resources(self, config_path: str | None) -> Resources:
        with self.lock:
            if self.resources is None:
                config = load_config(config_path or os.environ.get(CONFIG_ENV))
                self.resources = self.run(Resources.open(config))
            return self.resources

    def close(self) -> None:
        if not self.loop.is_running():
            return
        resources, self.resources = self.resources, None
        if threading.current_thread() is self._thread:  # collected on its own loop: no waiting
            if resources is not None:
                task = self.loop.create_task(resources.close())
                task.add_done_callback(lambda _: self.loop.stop())
            else:
                self.loop.stop()
            return
        try:
            if resources is not None:
                self.run(resources.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)


def _runtime(config: RunnableConfig) -> Runtime[Any] | None:
    """The graph's runtime (its context), when the node runs in a graph. Read from the config,
    not asked for as a parameter, so the node also runs on its own (``node.invoke(...)``)."""
    return (config.get("configurable") or {}).get(CONFIG_KEY_RUNTIME)


def node_run_id(config: RunnableConfig) -> str | None:
    """The id of the coordinated run a node call makes: the agent graph's thread and the
    node's task there (``agent-1/tools:<task id>``), or None outside a graph with a thread.

    LangGraph derives a task's id from the checkpoint it runs from, so a node call resumed
    after a crash has the same id, and so do its writes' dispatch records: the resumed call
    finds them and does not write again. Each node call has an id of its own, so a later
    turn of the agent asking a write again (even under a tool call id used before) makes it."""
    conf = config.get("configurable") or {}
    thread, task = conf.get("thread_id"), conf.get("checkpoint_ns")
    return f"{thread}/{task}" if thread and task else None


_RUN_WRITE = "__hybridmcp_node_run__"
"""The channel of the pending write a node call leaves in the agent's checkpoint, under the
task id ``<node task id>:hybridmcp-run``, saying its run's id (:func:`recorded_run_id`).
LangGraph applies a checkpoint's pending writes only to the task whose id they carry: no task
has this one, so the graph never reads it."""


def _run_record(config: RunnableConfig) -> tuple[BaseCheckpointSaver, RunnableConfig, str] | None:
    """The agent's checkpointer, the checkpoint the node's task runs from, and the task id the
    run's record is kept under; None without a checkpointer."""
    conf = config.get("configurable") or {}
    saver, task, thread = (
        conf.get(CHECKPOINTER_KEY),
        conf.get(CONFIG_KEY_TASK_ID),
        conf.get("thread_id"),
    )
    parent = graph_namespace(str(conf.get("checkpoint_ns") or ""))
    checkpoint = (conf.get(CONFIG_KEY_CHECKPOINT_MAP) or {}).get(parent)
    if not isinstance(saver, BaseCheckpointSaver) or not (task and thread and checkpoint):
        return None
    where: RunnableConfig = {
        "configurable": {"thread_id": thread, "checkpoint_ns": parent, "checkpoint_id": checkpoint}
    }
    return saver, where, f"{task}:hybridmcp-run"


def _recorded(saved: CheckpointTuple | None, task: str) -> str | None:
    for task_id, channel, value in (saved.pending_writes if saved else None) or ():
        if task_id == task and channel == _RUN_WRITE and isinstance(value, str):
            return value
    return None


async def recorded_run_id(config: RunnableConfig) -> str | None:
    """The node call's run id (:func:`node_run_id`), kept in the agent's checkpoint the first
    time the task runs and read back when it runs again. A copy of the thread (the server's
    ``threads.copy``, a checkpointer's ``copy_thread``) made while the node ran holds that
    checkpoint, record included: the copy's resumed node goes on under the run id the call
    began with, so it finds the dispatch records of the writes already sent (a write in flight
    is ``outcome_unknown`` there too, never made again unseen). A copy made before the node
    ran holds no record: its calls are its own."""
    own, record = node_run_id(config), _run_record(config)
    if own is None or record is None:
        return own
    saver, where, task = record
    try:
        found = _recorded(await saver.aget_tuple(where), task)
        if found is None:
            await saver.aput_writes(where, [(_RUN_WRITE, own)], task)
    except NotImplementedError:  # a sync-only saver: the graph is run by invoke
        return own
    return found or own


def recorded_run_id_sync(config: RunnableConfig) -> str | None:
    """:func:`recorded_run_id` for a graph run by ``invoke`` (a sync checkpointer)."""
    own, record = node_run_id(config), _run_record(config)
    if own is None or record is None:
        return own
    saver, where, task = record
    try:
        found = _recorded(saver.get_tuple(where), task)
        if found is None:
            saver.put_writes(where, [(_RUN_WRITE, own)], task)
    except NotImplementedError:
        return own
    return found or own


def _not_in_a_running_loop(what: str, instead: str = "use the async form (ainvoke) there") -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        f"HybridToolNode: {what} was called from a running event loop, which it would block; "
        f"{instead}"
    )


# -- the node -------------------------------------------------------------------------------


class HybridToolNode(ToolNode):
    """Runs the tool calls of the last AI message as one coordinated hybridmcp run.

    Args:
        tools: ``BaseTool``\\ s, ``@tool`` functions or plain callables to serve as internal
            providers (see :func:`register_tools`), offered to the model beside the skills.
        resources: live resources to use; default: the graph's ``Context(resources=...)``,
            else resources opened once per process from ``config_path`` (or
            ``HYBRIDMCP_CONFIG``, or the embedded default). Given here, every skill they have
            (every MCP tool too) is offered at once; otherwise the configured and built-in
            skills are (a server's tools are listed only once it is connected).
        config_path: the configuration file to open resources from when none are given.
        connect: open the node's own resources from ``config_path`` now (from sync code: on a
            loop of the node's own), so that every skill, every MCP tool too, is offered at
            once; :meth:`close` closes them.
        skills: the skills to offer (default: all); a call to another skill is refused.
        provides: tool name -> the skill it serves, for a tool not named after it.
        effects: tool name -> ``read`` | ``idempotent`` | ``write`` (see ``docs/effects.md``).
        strategy: ``auto`` (arbitration decides), ``internal``, ``external`` or ``hybrid``.
        critical: cross-validate every call (both sides, compared).
        sensitivity: the data sensitivity of the calls (``public`` < ``internal`` <
            ``confidential`` < ``restricted``): providers not cleared for it never see them.
        constraints: the run's ``{deadline_ms?, budget?, min_quality?}``.
        handle_tool_errors: as ``ToolNode``'s: ``True`` (the default here) turns every failed
            call into an error ``ToolMessage``; a ``str`` is that message; an exception type or
            tuple handles those only; a callable (typed by the exceptions it takes) returns the
            message; ``False`` raises. Failures are :class:`HybridToolError`, and
            :class:`InvalidToolCallError` for an unknown tool or bad arguments.
        messages_key: where the messages are in the state.
    """

    def __init__(
        self,
        tools: Sequence[BaseTool | Callable[..., Any]] = (),
        *,
        resources: Resources | None = None,
        config_path: str | None = None,
        connect: bool = False,
        skills: Iterable[str] | None = None,
        provides: Mapping[str, str] | None = None,
        effects: Mapping[str, Effect] | None = None,
        strategy: Literal["auto", "internal", "external", "hybrid"] = "auto",
        critical: bool = False,
        sensitivity: str | None = None,
        constraints: Mapping[str, Any] | None = None,
        handle_tool_errors: ErrorHandling = True,
        messages_key: str = "messages",
        name: str = "tools",
        tags: list[str] | None = None,
        _registry: Registry | None = None,
    ) -> None:
        given = [as_tool(t) for t in tools]
        for tool in given:
            _check_tool(tool)
        super().__init__(
            given,
            name=name,
            tags=tags,
            handle_tool_errors=handle_tool_errors,
            messages_key=messages_key,
        )
        self.config_path = config_path
        self._portal: _Portal | None = None
        self._portal_lock = threading.Lock()
        self._unnamed_calls: weakref.WeakKeyDictionary[Any, dict[str, int]] = (
            weakref.WeakKeyDictionary()
        )
        """By execution of a node task: how many calls given no tool call id it made, by
        tool and arguments (:meth:`_call_of`)."""
        if connect and resources is None:
            _not_in_a_running_loop(
                "HybridToolNode(connect=True)",
                "in async code pass resources=await Resources.open(config) instead",
            )
            resources = self._own_portal().own_resources(config_path)
        self.resources = resources
        self.strategy = strategy
        self.critical = critical
        self.sensitivity = sensitivity
        self.constraints = dict(constraints or {})
        self.provides = dict(provides or {})
        self.effects = dict(effects or {})
        self.given_tools = given
        """The tools given, as ``BaseTool``\\ s (what serves their skills in process)."""
        self._handled = self._handled_types(handle_tool_errors)
        self._graph = build_graph().compile(name="hybridmcp")
        self._only = None if skills is None else set(skills)
        self._injected_args = {}
        self._offered: dict[str, BaseTool] | None = None
        self._before_run: dict[str, BaseTool] | None = None
        registry = _registry or (resources.registry if resources else None)
        if registry is not None:
            self._offered = self._offer(registry)

    @property
    def tools_by_name(self) -> dict[str, BaseTool]:
        """The tools offered to the model, by name: the skills of the node's resources; before
        a node given none has run, the configured and built-in skills (its servers' other tools
        are listed once it is connected)."""
        if self._offered is not None:
            return self._offered
        if self._before_run is None:
            registry, servers = self._configured()
            self._before_run = self._offer(registry, pending=servers)
        return self._before_run

    # -- construction

    def _configured(self) -> tuple[Registry, set[str]]:
        """The configured and built-in skills (no server is started to list its tools), and
        the configured servers."""
        path = self.config_path or os.environ.get(CONFIG_ENV)
        config = load_config(path)
        return _build_registry(config, {}), set(config.mcpServers)

    def _register(self, registry: Registry, default_timeout_ms: float) -> dict[str, str]:
        return register_tools(
            registry,
            self.given_tools,
            default_timeout_ms=default_timeout_ms,
            provides=self.provides,
            effects=self.effects,
        )

    def _offer(self, registry: Registry, pending: Iterable[str] = ()) -> dict[str, BaseTool]:
        """The tools offered for the skills of ``registry``; a named skill of a ``pending``
        server (not listed yet) is left out, any other unknown one is refused."""
        config = self.resources.config.coordination_config if self.resources else None
        served = self._register(registry, (config or CoordinationConfig()).default_timeout_ms)
        direct = {served[t.name] for t in self.given_tools if t.return_direct}
        names = sorted(registry.skills) if self._only is None else sorted(self._only)
        names += [s for s in served.values() if s not in names]
        pending = set(pending)
        offered: dict[str, SkillTool] = {}
        for skill in names:
            if skill not in registry.skills and skill.partition(".")[0] in pending:
                continue
            if self._only is None and skill in registry.skills:
                if not registry.skills[skill].model_visible:  # its server's interface's own
                    continue
            tool = _skill_tool(registry.get(skill), self, return_direct=skill in direct)
            clash = offered.get(tool.name)
            if clash is not None:
                raise ValueError(
                    f"HybridToolNode: skills {clash.skill!r} and {skill!r} are both offered as "
                    f"tool {tool.name!r}; rename one"
                )
            offered[tool.name] = tool
        result: dict[str, BaseTool] = dict(offered)
        return result

    @staticmethod
    def _handled_types(flag: ErrorHandling) -> tuple[type[Exception], ...]:
        if isinstance(flag, type) and issubclass(flag, Exception):
            return (flag,)
        if isinstance(flag, tuple):
            return flag
        if callable(flag) and not isinstance(flag, type):
            return _infer_handled_types(flag)
        return (Exception,)

    # -- where a call runs

    def _context(self, runtime: Runtime[Any] | None) -> Context:
        if self.resources is not None:
            return Context(resources=self.resources)
        given = runtime.context if runtime is not None else None
        if isinstance(given, Context):
            return given
        return Context(config_path=self.config_path)

    async def _on_their_loop(
        self, context: Context, make: Callable[[bool], Coroutine[Any, Any, _T]]
    ) -> _T:
        """Run on the loop the resources live on (their MCP sessions are bound to it);
        ``make(apart)``: the coroutine, told whether it runs apart from the caller's loop."""
        res = context.resources
        loop = getattr(res, "loop", None)
        if loop is None or loop is asyncio.get_running_loop():
            return await make(False)
        if not loop.is_running():
            raise RuntimeError(
                "HybridToolNode: the resources' event loop is not running; call the node "
                "from that loop, or give it no resources so it opens its own"
            )
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(make(True), loop))

    def _sync(
        self, runtime: Runtime[Any] | None, make: Callable[[Context], Coroutine[Any, Any, _T]]
    ) -> _T:
        """Run from sync code: on the resources' loop, in another thread; with no resources
        given, on the node's own loop, with resources it opens once (closed by :meth:`close`)."""
        _not_in_a_running_loop("invoke")
        context = self._context(runtime)
        if context.resources is None:
            portal = self._own_portal()
            context = Context(resources=portal.own_resources(self.config_path))
            return portal.run(make(context))
        loop = getattr(context.resources, "loop", None)
        if loop is None or not loop.is_running():
            raise RuntimeError(
                "HybridToolNode: invoke needs the resources' event loop running in another "
                "thread; call ainvoke on that loop, or give the node no resources so it opens "
                "its own"
            )
        return asyncio.run_coroutine_threadsafe(make(context), loop).result()

    def _own_portal(self) -> _Portal:
        with self._portal_lock:
            if self._portal is None:
                self._portal = _Portal()
                weakref.finalize(self, self._portal.close)
            return self._portal

    def close(self) -> None:
        """Close the resources the node opened for sync use (its MCP servers stop), if any."""
        if self._portal is not None:
            if self.resources is self._portal.resources:
                self.resources = None
            self._portal.close()
            self._portal = None

    # -- ToolNode's entry points

    def _func(self, input: Any, config: RunnableConfig) -> Any:  # type: ignore[override]
        calls, input_type = self._parse_input(input)
        runtime = _runtime(config)
        run_id = recorded_run_id_sync(config)
        outputs = self._sync(
            runtime, lambda context: self._messages(calls, context, run_id, apart=True)
        )
        return self._combine_tool_outputs(list(outputs), input_type)

    async def _afunc(self, input: Any, config: RunnableConfig) -> Any:  # type: ignore[override]
        calls, input_type = self._parse_input(input)
        context = self._context(_runtime(config))
        run_id = await recorded_run_id(config)
        outputs = await self._on_their_loop(
            context, lambda apart: self._messages(calls, context, run_id, apart=apart)
        )
        return self._combine_tool_outputs(list(outputs), input_type)

    # -- SkillTool's entry points

    def _call_of(
        self,
        config: RunnableConfig,
        run_id: str | None,
        call_id: str | None,
        tool: str,
        args: Mapping[str, Any],
    ) -> tuple[str, str]:
        """The run id and request id of a :class:`SkillTool` call.

        In a graph with a thread, the node's run (``run_id``, :func:`recorded_run_id`) and the
        call's id, so
        the call resumed from its checkpoint finds its write's dispatch record (each call of a
        node's several is apart: none takes another's record). A call given no tool call id
        (``await tool.ainvoke(args)`` in a node of the user's own) is known by its tool, its
        arguments and how many such calls the node's task made before it in this execution:
        a node run again (resumed after an interrupt or a crash) makes the same calls in the
        same order and finds their records. Outside a graph with a thread: a run of its own."""
        if run_id is None:
            return uuid.uuid4().hex, "call"
        if not call_id:
            marker = (config.get("configurable") or {}).get(_TASK_KEY)
            if marker is None:
                return uuid.uuid4().hex, "call"
            digest = _args_digest(tool, args)
            with self._portal_lock:
                try:
                    counts = self._unnamed_calls.setdefault(marker, {})
                except TypeError:  # not an object a weak reference can hold
                    return uuid.uuid4().hex, "call"
                n = counts[digest] = counts.get(digest, -1) + 1
            call_id = f"{tool}-{digest}-{n}"
        return f"{run_id}/{call_id}", call_id

    async def _call_tool(
        self, name: str, args: dict[str, Any], call: tuple[str, str] | None = None
    ) -> tuple[str, dict[str, Any]]:
        context = self._context(None)
        return await self._on_their_loop(context, lambda _: self._one(name, args, context, call))

    def _call_tool_sync(
        self, name: str, args: dict[str, Any], call: tuple[str, str] | None = None
    ) -> tuple[str, dict[str, Any]]:
        return self._sync(None, lambda context: self._one(name, args, context, call))

    async def _one(
        self,
        name: str,
        args: dict[str, Any],
        context: Context,
        call: tuple[str, str] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """One call of a :class:`SkillTool`: ``call`` is its run id and request id
        (:meth:`_call_of`). It runs apart from the graph's checkpoints: the other calls of the
        same node would share them."""
        run_id, call_id = call or (uuid.uuid4().hex, "call")
        tool_call = {"name": name, "args": args, "id": call_id, "type": "tool_call"}
        [(outcome, error)] = await self._run_calls([tool_call], context, run_id, apart=True)
        if error is not None:
            raise error
        assert outcome is not None
        return outcome

    # -- the coordinated run

    async def _messages(
        self, calls: list[Any], context: Context, run_id: str | None = None, apart: bool = False
    ) -> list[Any]:
        outcomes = await self._run_calls(calls, context, run_id, apart=apart)
        messages: list[Any] = []
        for call, (outcome, error) in zip(calls, outcomes, strict=True):
            if error is not None:
                messages.append(self._error_message(call, error))
                continue
            assert outcome is not None
            content, artifact = outcome
            messages.append(
                ToolMessage(content, tool_call_id=call["id"], name=call["name"], artifact=artifact)
            )
        return messages

    def _skill_of(self, name: str, registry: Registry) -> str:
        offered = (self._offered or {}).get(name)
        if isinstance(offered, SkillTool):
            return offered.skill
        skill = skill_name(name, registry)
        if self._only is None and skill in registry.skills:
            return skill
        down = next(
            (
                s
                for s in registry.unavailable
                if skill.startswith(f"{s}.") or name.startswith(f"{tool_name(s)}__")
            ),
            None,
        )
        detail = (
            "" if down is None else f" (MCP server {down!r} is down: {registry.unavailable[down]})"
        )
        raise InvalidToolCallError(
            f"Error: {name} is not a valid tool{detail}, try one of "
            f"[{', '.join(self._offered or {})}].",
            tool=name,
            skill=skill,
        )

    # Long by design: one coordinated run for all calls, then one message per call in order.
    async def _run_calls(
        self,
        calls: list[Any],
        context: Context,
        run_id: str | None = None,
        *,
        apart: bool = False,
    ) -> list[tuple[tuple[str, dict[str, Any]] | None, HybridToolError | None]]:
        """Each call's (text, artifact), or the error it ended with.

        ``run_id``: the run's id (:func:`node_run_id`; default: one of its own). In a graph
        with a checkpointer the run is checkpointed as the node's subgraph, so a resumed node
        replays the calls that finished; ``apart`` (from sync code, or on another event loop
        than the graph's, where the graph's checkpointer may not serve it) it runs without
        checkpoints, its writes kept once by their dispatch records alone."""
        res = await resources_for(context)
        self._register(res.registry, res.config.coordination_config.default_timeout_ms)
        if self._offered is None:  # what the model may call: the run's skills (no I/O here)
            self._offered = self._offer(res.registry)
        outcomes: list[Any] = [None] * len(calls)
        requests, labels = [], {}
        ids = [str(call.get("id") or f"call-{i}") for i, call in enumerate(calls)]
        if len(set(ids)) < len(ids):
            ids = [f"call-{i}" for i in range(len(calls))]
        for i, call in enumerate(calls):
            name, args = call["name"], call.get("args") or {}
            try:
                skill = self._skill_of(name, res.registry)
            except InvalidToolCallError as err:
                outcomes[i] = (None, err)
                continue
            label = f"tool {name!r}" if name == skill else f"tool {name!r} (skill {skill!r})"
            labels[i] = (name, skill, label)
            try:
                res.registry.get(skill).validate_args(args)
            except TaskError as err:
                message = str(err).replace(f"skill {skill!r}", label, 1)
                outcomes[i] = (None, InvalidToolCallError(message, tool=name, skill=skill))
                continue
            requests.append(
                {
                    "id": ids[i],
                    "skill": skill,
                    "args": args,
                    "strategy": self.strategy,
                    "critical": self.critical,
                    **({"sensitivity": self.sensitivity} if self.sensitivity else {}),
                }
            )
        results: dict[str, dict[str, Any]] = {}
        if requests:
            max_rounds = res.config.coordination_config.max_rounds
            config: RunnableConfig = {"recursion_limit": 25 + 4 * max_rounds}
            if apart:  # not the graph's checkpointer (LangGraph lends a subgraph its own)
                config["configurable"] = {CHECKPOINTER_KEY: None}
            given = InputState(requests=requests, constraints=self.constraints)
            if run_id:
                given["run_id"] = run_id
            out = await self._graph.ainvoke(given, config, context=Context(resources=res))
            results = out.get("results", {})
        for i, (name, skill, label) in labels.items():
            if outcomes[i] is not None:
                continue
            result = results.get(ids[i])
            problem = _problem(result)
            if result is None or problem is not None:
                message = (problem or "no result").replace(f"skill {skill!r}", label, 1)
                if not message.startswith(label):
                    message = f"{label}: {message}"
                error = HybridToolError(message, tool=name, skill=skill, result=result)
                outcomes[i] = (None, error)
            else:
                content, parts = split_content(result.get("value"))
                outcomes[i] = ((content, {**result, "content": parts}), None)
        return outcomes

    def _error_message(self, call: Any, error: HybridToolError) -> ToolMessage:
        """The error as a ``ToolMessage``, as ``handle_tool_errors`` says; raised when it is
        ``False`` or does not handle the error's type."""
        flag = self._handle_tool_errors
        if flag is False or not isinstance(error, self._handled):
            raise error
        if isinstance(flag, str):
            content = flag
        elif callable(flag) and not isinstance(flag, type):
            content = flag(error)
        else:
            text = str(error)
            content = text if text.startswith("Error:") else f"Error: {text}"
        return ToolMessage(
            content,
            tool_call_id=call["id"],
            name=call["name"],
            status="error",
            artifact=error.result,
        )


__all__ = [
    "HybridToolError",
    "HybridToolNode",
    "InvalidToolCallError",
    "SkillTool",
    "register_tools",
    "skill_name",
    "split_content",
    "tool_name",
    "tools_for_model",
]

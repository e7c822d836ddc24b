"""HybridToolNode: a drop-in alternative to LangGraph's ``ToolNode``, coordinated by hybridmcp.

An agent's model asks for tools; instead of calling one implementation of each, this node turns
the last AI message's ``tool_calls`` into one coordination run: each call becomes a request
(skill = the tool, args = the call's args), and arbitration decides internal, external or both
(cross-validated), with failover, reallocation, privacy policy and audit as in any run. It
answers with one ``ToolMessage`` per call, ``tool_call_id`` preserved: the JSON of the value, or
the error with ``status="error"``; the coordination record (allocation, attempts, agreement,
confidence) rides along as the message's ``artifact``.

The model sees the same skills through :func:`tools_for_model`. Skill names contain dots
(``time.now``), which model APIs refuse in tool names, so tools are named ``time__now``;
:func:`tool_name` and :func:`skill_name` map between the two.

    model = chat_model.bind_tools(tools_for_model(resources.registry))
    builder.add_node("tools", HybridToolNode())
    builder.add_conditional_edges("agent", tools_condition)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, AnyMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from hybridmcp.capabilities.registry import Registry
from hybridmcp.graph import build_graph
from hybridmcp.runtime import Context, Resources, resources_for

_INVALID = re.compile(r"[^a-zA-Z0-9_-]")
MAX_TOOL_NAME = 64


def tool_name(skill: str) -> str:
    """A skill's name as a model tool name (``time.now`` -> ``time__now``)."""
    return _INVALID.sub("_", skill.replace(".", "__"))[:MAX_TOOL_NAME]


def skill_name(tool: str, registry: Registry) -> str:
    """The skill a model's tool name stands for; an unknown name is returned unchanged (the run
    then reports it as an unknown skill)."""
    if tool in registry.skills:
        return tool
    return {tool_name(s): s for s in registry.skills}.get(tool, tool)


def tools_for_model(
    registry: Registry, skills: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """The registry's skills (or the named ones) as OpenAI-style tool schemas, ready for
    ``chat_model.bind_tools``."""
    names = list(skills) if skills is not None else sorted(registry.skills)
    tools = []
    for name in names:
        skill = registry.get(name)
        sides = " and ".join(sorted({p.side for p in skill.providers}))
        tools.append(
            {
                "type": "function",
                "function": {
                    "name": tool_name(skill.name),
                    "description": f"{skill.description or skill.name} (served by {sides})",
                    "parameters": dict(skill.input_schema),
                },
            }
        )
    return tools


def _tool_calls(state: Any, messages_key: str) -> tuple[list[dict[str, Any]], bool]:
    """The last AI message's tool calls, and whether the input was a state dict."""
    if isinstance(state, Mapping):
        messages: Sequence[AnyMessage] = state.get(messages_key) or []
        as_dict = True
    elif isinstance(state, Sequence):
        messages, as_dict = state, False
    else:
        raise TypeError(f"HybridToolNode expects a state with {messages_key!r} or a message list")
    ai = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
    if ai is None:
        raise ValueError("HybridToolNode: no AIMessage found in the input")
    return [dict(call) for call in ai.tool_calls], as_dict


def _message(call: dict[str, Any], call_id: str, result: dict[str, Any] | None) -> ToolMessage:
    name = call["name"]
    if result is None:
        return ToolMessage(
            f"Error: no result for tool call {call_id!r}", tool_call_id=call_id, name=name,
            status="error",
        )  # fmt: skip
    if result.get("error"):
        return ToolMessage(
            f"Error: {result['error']}", tool_call_id=call_id, name=name, status="error",
            artifact=result,
        )  # fmt: skip
    content = json.dumps(result["value"], ensure_ascii=False, default=str)
    return ToolMessage(content, tool_call_id=call_id, name=name, artifact=result)


class HybridToolNode:
    """Runs the tool calls of the last AI message as one coordinated hybridmcp run.

    Args:
        resources: live resources to use; default: the parent graph's ``Context`` (when its
            ``context_schema`` is :class:`~hybridmcp.Context`), else resources opened once per
            process from ``HYBRIDMCP_CONFIG`` or the embedded default.
        strategy: ``auto`` (arbitration decides), ``internal``, ``external`` or ``hybrid``.
        critical: cross-validate every call (both sides, compared).
        sensitivity: the data sensitivity of the calls (``public`` < ``internal`` <
            ``confidential`` < ``restricted``): providers not cleared for it never see them.
        constraints: the run's ``{deadline_ms?, budget?, min_quality?}``.
        messages_key: where the messages are in the state.
    """

    def __init__(
        self,
        *,
        resources: Resources | None = None,
        strategy: Literal["auto", "internal", "external", "hybrid"] = "auto",
        critical: bool = False,
        sensitivity: str | None = None,
        constraints: Mapping[str, Any] | None = None,
        messages_key: str = "messages",
        name: str = "tools",
    ) -> None:
        self.resources = resources
        self.strategy = strategy
        self.critical = critical
        self.sensitivity = sensitivity
        self.constraints = dict(constraints or {})
        self.messages_key = messages_key
        self.name = name
        self._graph = build_graph().compile(name="hybridmcp")

    def _context(self, runtime: Runtime[Any] | None) -> Context:
        if self.resources is not None:
            return Context(resources=self.resources)
        given = runtime.context if runtime is not None else None
        return given if isinstance(given, Context) else Context()

    async def __call__(
        self, state: Any, config: RunnableConfig, runtime: Runtime[Any]
    ) -> dict[str, list[ToolMessage]] | list[ToolMessage]:
        calls, as_dict = _tool_calls(state, self.messages_key)
        context = self._context(runtime)
        registry = (await resources_for(context)).registry
        ids = [call.get("id") or f"call-{i}" for i, call in enumerate(calls)]
        requests = [
            {
                "id": call_id,
                "skill": skill_name(call["name"], registry),
                "args": call.get("args") or {},
                "strategy": self.strategy,
                "critical": self.critical,
                **({"sensitivity": self.sensitivity} if self.sensitivity else {}),
            }
            for call_id, call in zip(ids, calls, strict=True)
        ]
        results: dict[str, dict[str, Any]] = {}
        if requests:
            max_rounds = (await resources_for(context)).config.coordination_config.max_rounds
            out = await self._graph.ainvoke(
                {"requests": requests, "constraints": self.constraints},
                {"recursion_limit": 25 + 4 * max_rounds},
                context=context,
            )
            results = out.get("results", {})
        messages = [
            _message(call, call_id, results.get(call_id))
            for call_id, call in zip(ids, calls, strict=True)
        ]
        return {self.messages_key: messages} if as_dict else messages

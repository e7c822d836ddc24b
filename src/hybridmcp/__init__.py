"""hybridmcp: coordinate work between internal capabilities and external MCP services.

The public names below are imported on first use (PEP 562), so that importing a submodule
(``hybridmcp.cli``, ``hybridmcp.config``) does not first import the whole graph, its nodes and
the LangGraph prebuilt agents: ``from hybridmcp import Coordinator`` works as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hybridmcp.config import HybridConfig, load_config, parse_config
    from hybridmcp.coordinator import Coordinator
    from hybridmcp.errors import (
        ConfigError,
        DeadlineExceededError,
        HybridMCPError,
        PolicyError,
        ProviderError,
        ServerUnavailableError,
        TaskError,
    )
    from hybridmcp.graph import build_graph
    from hybridmcp.runtime import Context, Resources
    from hybridmcp.task import Constraints, Request, Task, load_task, parse_task
    from hybridmcp.toolnode import (
        HybridToolError,
        HybridToolNode,
        InvalidToolCallError,
        tools_for_model,
    )

_WHERE = {
    "hybridmcp.config": ["HybridConfig", "load_config", "parse_config"],
    "hybridmcp.coordinator": ["Coordinator"],
    "hybridmcp.errors": [
        "ConfigError",
        "DeadlineExceededError",
        "HybridMCPError",
        "PolicyError",
        "ProviderError",
        "ServerUnavailableError",
        "TaskError",
    ],
    "hybridmcp.graph": ["build_graph"],
    "hybridmcp.runtime": ["Context", "Resources"],
    "hybridmcp.task": ["Constraints", "Request", "Task", "load_task", "parse_task"],
    "hybridmcp.toolnode": [
        "HybridToolError",
        "HybridToolNode",
        "InvalidToolCallError",
        "tools_for_model",
    ],
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = [
    "ConfigError",
    "Constraints",
    "Context",
    "Coordinator",
    "DeadlineExceededError",
    "HybridConfig",
    "HybridMCPError",
    "HybridToolError",
    "HybridToolNode",
    "InvalidToolCallError",
    "PolicyError",
    "ProviderError",
    "Request",
    "Resources",
    "ServerUnavailableError",
    "Task",
    "TaskError",
    "build_graph",
    "load_config",
    "load_task",
    "parse_config",
    "parse_task",
    "tools_for_model",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'hybridmcp' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # imported once: later lookups find it directly
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

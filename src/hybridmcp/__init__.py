"""hybridmcp: coordinate work between internal capabilities and external MCP services."""

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

"""Shared fixtures: configurations that start real MCP servers."""

from __future__ import annotations

from typing import Any

import pytest

from hybridmcp.config import HybridConfig, parse_config


def time_server_config(**overrides: Any) -> HybridConfig:
    """The embedded default's shape: built-in skills cross-validated against mcp-server-time."""
    data: dict[str, Any] = {
        "mcpServers": {"time": {"command": "mcp-server-time", "args": ["--local-timezone", "UTC"]}},
        "skills": {
            "time.now": {
                "providers": [{"side": "external", "server": "time", "tool": "get_current_time"}]
            },
            "time.convert": {
                "providers": [{"side": "external", "server": "time", "tool": "convert_time"}]
            },
        },
    }
    data.update(overrides)
    return parse_config(data)


@pytest.fixture
def time_config() -> HybridConfig:
    return time_server_config()

"""``session_kwargs`` and ``env`` reach a stdio server whether its stderr goes to a log file
(``resilience.pool.server_log``, the CLI's default) or stays on the coordinator's stderr."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from hybridmcp.capabilities.mcp_pool import SessionPool
from hybridmcp.config import PoolConfig, parse_config
from tests.integration.test_durable import SRC

ROOT = str(Path(SRC).parent)  # the repository: tests.whoami_server imports from here


@pytest.mark.parametrize("logged", [False, True])
async def test_client_info_and_env_reach_a_stdio_server(tmp_path, logged):
    cfg = parse_config(
        {
            "mcpServers": {
                "who": {
                    "command": sys.executable,
                    "args": ["-m", "tests.whoami_server"],
                    "cwd": ROOT,
                    "env": {"WHOAMI_MARK": "${HYBRIDMCP_TEST_MARK}", "PYTHONPATH": SRC},
                    "encoding": "utf-8",
                    "session_kwargs": {
                        "client_info": {"name": "my-agent", "version": "1.2"},
                        "read_timeout_seconds": 30,
                    },
                }
            }
        }
    )
    log = str(tmp_path / "servers.log") if logged else None
    settings = PoolConfig(health_interval_ms=0, server_log=log)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HYBRIDMCP_TEST_MARK", "from the environment")
        async with asyncio.timeout(60), SessionPool(cfg.mcpServers, settings) as pool:
            assert pool.is_up("who"), pool.status("who").error
            result = await pool.call_tool("who", "whoami", {}, timeout_s=20)
    answer = result.structuredContent or json.loads(result.content[0].text)  # type: ignore[union-attr]
    assert answer == {"name": "my-agent", "version": "1.2", "mark": "from the environment"}

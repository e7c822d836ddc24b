"""How the session pool names a failed MCP request: the request's fault or the provider's."""

from __future__ import annotations

import asyncio

import pytest
from mcp.shared.exceptions import McpError
from mcp.types import INVALID_PARAMS, ErrorData

from hybridmcp.capabilities.mcp_pool import REQUEST_TIMEOUT, SessionPool
from hybridmcp.capabilities.timing import CallTiming
from hybridmcp.config import PoolConfig, parse_config
from hybridmcp.errors import (
    DeadlineExceededError,
    ProviderError,
    RequestError,
    ServerUnavailableError,
)


def _session():  # type: ignore[no-untyped-def]
    cfg = parse_config({"mcpServers": {"s": {"command": "never-started"}}})
    return SessionPool(cfg.mcpServers)._sessions["s"]


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (INVALID_PARAMS, RequestError),
        (REQUEST_TIMEOUT, DeadlineExceededError),
        (-32603, ProviderError),  # internal error: the server's
    ],
)
def test_json_rpc_errors_map_to_whose_fault_they_are(code: int, kind: type[Exception]) -> None:
    err = _session()._call_error("s/t", None, McpError(ErrorData(code=code, message="no")))
    assert type(err) is kind and "s/t" in str(err)


def test_invalid_params_is_not_a_provider_error() -> None:
    err = _session()._call_error("s/t", None, McpError(ErrorData(code=INVALID_PARAMS, message="x")))
    assert not isinstance(err, ProviderError)


async def test_an_unknown_server_is_never_sent() -> None:
    pool = SessionPool({}, PoolConfig())
    timing = CallTiming()
    with pytest.raises(ServerUnavailableError, match="not configured"):
        await pool.call_tool("nope", "t", {}, 1.0, timing=timing)
    assert timing.sent_at is None and timing.ended_at is not None
    await asyncio.sleep(0)

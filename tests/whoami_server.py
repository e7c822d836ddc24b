"""A stdio MCP server that tells a client what it announced (tests of session_kwargs)."""

from __future__ import annotations

import os
from typing import Any

from mcp.server.fastmcp import Context, FastMCP

server = FastMCP("whoami")


@server.tool()
def whoami(ctx: Context) -> dict[str, Any]:  # type: ignore[type-arg]
    """The client's announced name and version, and one variable of this process."""
    params = ctx.session.client_params
    info = params.clientInfo if params is not None else None
    return {
        "name": info.name if info else None,
        "version": info.version if info else None,
        "mark": os.environ.get("WHOAMI_MARK"),
    }


if __name__ == "__main__":
    server.run("stdio")

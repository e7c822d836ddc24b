"""The HTTP app the LangGraph server runs beside its own (``langgraph.json``: ``http.app``).

It adds no routes; its lifespan closes the resources the server's runs opened once per process
(:func:`hybridmcp.runtime.resources_for`): the MCP sessions, the stdio servers they started
(``mcp-server-time``, ...), the audit file. Without it a stopped ``langgraph dev`` leaves those
processes behind. The LangGraph server enters this lifespan after its own and leaves it first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from hybridmcp.runtime import close_shared


@asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await close_shared()


app = Starlette(lifespan=lifespan)

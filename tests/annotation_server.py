"""A stdio FastMCP server whose write tools' annotations are missing, contradictory or lying.

Every tool appends one line (its name and its ``entry``) to ``$ANNOTATION_JOURNAL``, sleeps
``sleep_ms`` after writing when asked, and answers ``{"entry": ..., "written": true}``; with
``then: "crash"`` the process dies after writing (no answer), with ``then: "error"`` it
answers with a tool error (``isError``) after writing:

- ``bare``: no annotations at all;
- ``open_world``: only ``openWorldHint: true`` (says nothing of what it changes);
- ``contradictory``: ``readOnlyHint: true`` and ``destructiveHint: true``;
- ``lying``: ``readOnlyHint: true``, and writes all the same;
- ``idempotent_lie``: ``idempotentHint: true`` (not read-only), and appends each time.

``block(ms)`` (read-only) holds the server's event loop for ``ms`` (a synchronous sleep): no
other call, and no ping, is answered meanwhile.
"""

from __future__ import annotations

import os
import time
from typing import Any

import anyio
from mcp.server.fastmcp import FastMCP
from mcp.types import ToolAnnotations

server = FastMCP("annotations")


def _write(tool: str, entry: str) -> None:
    with open(os.environ["ANNOTATION_JOURNAL"], "a", encoding="utf-8") as f:
        f.write(f"{tool} {entry}\n")
        f.flush()
        os.fsync(f.fileno())


async def _append(tool: str, entry: str, sleep_ms: int, then: str) -> dict[str, Any]:
    _write(tool, entry)
    await anyio.sleep(sleep_ms / 1000)
    if then == "crash":
        os._exit(1)
    if then == "error":
        raise RuntimeError(f"{entry}: written, then failed")
    return {"entry": entry, "written": True}


@server.tool()
async def bare(entry: str, sleep_ms: int = 0, then: str = "") -> dict[str, Any]:
    return await _append("bare", entry, sleep_ms, then)


@server.tool(annotations=ToolAnnotations(openWorldHint=True))
async def open_world(entry: str, sleep_ms: int = 0, then: str = "") -> dict[str, Any]:
    return await _append("open_world", entry, sleep_ms, then)


@server.tool(annotations=ToolAnnotations(readOnlyHint=True, destructiveHint=True))
async def contradictory(entry: str, sleep_ms: int = 0, then: str = "") -> dict[str, Any]:
    return await _append("contradictory", entry, sleep_ms, then)


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
async def lying(entry: str, sleep_ms: int = 0, then: str = "") -> dict[str, Any]:
    return await _append("lying", entry, sleep_ms, then)


@server.tool(annotations=ToolAnnotations(readOnlyHint=False, idempotentHint=True))
async def idempotent_lie(entry: str, sleep_ms: int = 0, then: str = "") -> dict[str, Any]:
    return await _append("idempotent_lie", entry, sleep_ms, then)


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def block(ms: int) -> dict[str, Any]:
    time.sleep(ms / 1000)
    return {"blocked_ms": ms}


if __name__ == "__main__":
    server.run("stdio")

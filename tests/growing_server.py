"""A stdio FastMCP server whose tool list grows after start-up (a dynamic toolset).

At start it lists only ``grow``. ``grow(name, hint)`` adds a tool ``name`` and tells the client
(``notifications/tools/list_changed``); the new tool appends one line (its name and its
``entry``) to ``$GROWING_JOURNAL``, sleeps ``sleep_ms`` after writing when asked, and answers
``{"entry": ..., "written": true}``. ``hint``: its annotations, ``destructive``
(``readOnlyHint: false, destructiveHint: true``), ``read_only`` (``readOnlyHint: true``) or
``none``.
"""

from __future__ import annotations

import os
from typing import Any

import anyio
from mcp.server.fastmcp import Context, FastMCP
from mcp.types import ToolAnnotations

server = FastMCP("growing")
HINTS = {
    "destructive": ToolAnnotations(readOnlyHint=False, destructiveHint=True),
    "read_only": ToolAnnotations(readOnlyHint=True),
    "none": None,
}


def _write(line: str) -> None:
    with open(os.environ["GROWING_JOURNAL"], "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def _tool(name: str) -> Any:
    async def tool(entry: str, sleep_ms: int = 0) -> dict[str, Any]:
        _write(f"{name} {entry}")
        await anyio.sleep(sleep_ms / 1000)
        return {"entry": entry, "written": True}

    return tool


@server.tool(annotations=ToolAnnotations(readOnlyHint=False, idempotentHint=True))
async def grow(name: str, hint: str, ctx: Context) -> dict[str, Any]:  # type: ignore[type-arg]
    if name not in {t.name for t in await server.list_tools()}:
        tool = _tool(name)
        server.add_tool(tool, name=name, description=f"appends {name}", annotations=HINTS[hint])
        await ctx.session.send_tool_list_changed()
    return {"tool": name, "hint": hint}


if __name__ == "__main__":
    server.run("stdio")

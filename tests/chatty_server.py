"""A small MCP server (stdio) that speaks first: it reports what the client told it, writes
garbage to stdout, sends log messages and asks the user for input.

Run: ``python tests/chatty_server.py``. Tools:

- ``whoami()``: the client's ``clientInfo`` and capabilities from ``initialize``;
- ``garbage(lines)``: writes ``lines`` lines that are not JSON-RPC to stdout, then answers;
- ``shout(level, message)``: sends ``message`` as a log message (``notifications/message``);
- ``ask_city()``: asks the user for a city and a count (both with defaults) and answers with
  what came back;
- ``ask_name()``: asks for a required name (no default), then for a colour; answers both.
"""

from __future__ import annotations

import json
import os
from typing import Any

from mcp.server.fastmcp import Context, FastMCP
from pydantic import BaseModel, Field

server = FastMCP("chatty")


class City(BaseModel):
    city: str = Field("Lisbon", description="A city")
    count: int = Field(3, description="How many")


class Name(BaseModel):
    name: str = Field(description="Your name")


class Colour(BaseModel):
    colour: str = Field("blue", description="A colour")


@server.tool()
async def whoami(ctx: Context) -> str:  # type: ignore[type-arg]
    params = ctx.session.client_params
    assert params is not None
    return json.dumps(
        {
            "clientInfo": params.clientInfo.model_dump(),
            "capabilities": params.capabilities.model_dump(exclude_none=True),
        }
    )


@server.tool()
async def garbage(lines: int = 3) -> str:
    for i in range(lines):
        os.write(1, f"this is not JSON-RPC, line {i}\n".encode())
    return "wrote garbage"


@server.tool()
async def shout(level: str, message: str, ctx: Context) -> str:  # type: ignore[type-arg]
    await ctx.log(level, message, logger_name="chatty")  # type: ignore[arg-type]
    return "logged"


def _answer(result: Any) -> dict[str, Any]:
    data = getattr(result, "data", None)
    return {"action": result.action, "content": data.model_dump() if data is not None else None}


@server.tool()
async def ask_city(ctx: Context) -> str:  # type: ignore[type-arg]
    result = await ctx.elicit("Which city, and how many?", City)
    return json.dumps(_answer(result))


@server.tool()
async def ask_name(ctx: Context) -> str:  # type: ignore[type-arg]
    first = await ctx.elicit("What is your name?", Name)
    if first.action != "accept":
        return json.dumps({"name": _answer(first)})
    second = await ctx.elicit("And your favourite colour?", Colour)
    return json.dumps({"name": _answer(first), "colour": _answer(second)})


if __name__ == "__main__":
    server.run()

"""A stdio MCP server written on the SDK's low-level ``Server`` (as servers of other SDKs are):
its ``add`` tool declares an output schema of one field, ``result``, and answers with that
object as structured content beside a sentence for people (``The sum of 2 and 3 is 5.``). Its
object is the answer, not a FastMCP wrapper of one."""

from __future__ import annotations

from typing import Any

import anyio
import mcp.types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

server: Server[Any, Any] = Server("result-field")

ADD = types.Tool(
    name="add",
    description="The sum of two numbers.",
    inputSchema={
        "type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
        "required": ["a", "b"],
    },
    outputSchema={
        "type": "object",
        "properties": {"result": {"type": "number"}},
        "required": ["result"],
    },
    annotations=types.ToolAnnotations(readOnlyHint=True),
)


@server.list_tools()
async def list_tools() -> list[types.Tool]:
    return [ADD]


@server.call_tool()
async def call_tool(name: str, arguments: dict[str, Any]) -> types.CallToolResult:
    total = arguments["a"] + arguments["b"]
    sentence = f"The sum of {arguments['a']} and {arguments['b']} is {total}."
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=sentence)],
        structuredContent={"result": total},
    )


async def main() -> None:
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)

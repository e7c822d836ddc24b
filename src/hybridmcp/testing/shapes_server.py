"""A real FastMCP server whose tools answer in every shape an MCP tool can: the project's
answer-shapes test server.

FastMCP decides the shape from a tool's return annotation, so each tool here is one shape:

- ``get_current_time(timezone)`` -> ``str``: the JSON text ``mcp-server-time`` sends (same keys,
  same indentation), which FastMCP wraps as ``structuredContent = {"result": "<json text>"}``;
  the twin that lets ``time.now`` be cross-validated against a FastMCP server;
- ``echo(text)`` -> ``str``: the text back, whatever it holds (JSON text too);
- ``give_object(doc)`` -> ``dict[str, Any]``, ``give_list(doc)`` -> ``list[Any]``,
  ``give_number(doc)`` -> ``float``: the JSON document ``doc`` as that type (answers in
  shapes a test generates);
- ``plain_text`` -> ``str`` (not JSON), ``wrapped_error`` -> ``str`` starting ``Error:`` (an
  error in disguise inside the wrapper), ``count`` -> ``int``, ``primes`` -> ``list[int]``,
  ``city`` -> ``dict[str, Any]``, ``weather`` -> a pydantic model;
- ``tiny_image`` -> :class:`Image`, ``beep`` -> :class:`Audio`, ``link`` -> a resource link,
  ``embedded_text`` / ``embedded_blob`` -> an embedded resource, ``several_texts`` -> two text
  parts, ``captioned_image`` -> a text and an image (no structured content for these);
- ``fail`` -> a tool error (``isError=true``); ``raw_bytes`` -> ``bytes`` that are not UTF-8,
  which FastMCP cannot serialize: a tool error of the server's own (``Error serializing to
  JSON: invalid utf-8 ...``), whatever the arguments; ``structured_error(kind)`` -> a tool
  error told only in structured content (``{"error": ...}``, no text part).

Every tool is annotated ``readOnlyHint: true`` (an unannotated tool would be a ``write``).

Run it (stdio)::

    python -m hybridmcp.testing.shapes_server
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mcp.server.fastmcp import Audio, FastMCP, Image
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import (
    BlobResourceContents,
    CallToolResult,
    ContentBlock,
    EmbeddedResource,
    ResourceLink,
    TextContent,
    TextResourceContents,
    ToolAnnotations,
)
from pydantic import AnyUrl, BaseModel

TINY_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg=="
)
"""A 1x1 PNG: small enough to compare byte for byte."""
TINY_WAV = (
    b"RIFF" + (36 + 4).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
    + (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + (8000).to_bytes(4, "little")
    + (8000).to_bytes(4, "little") + (1).to_bytes(2, "little") + (8).to_bytes(2, "little")
    + b"data" + (4).to_bytes(4, "little") + bytes([128, 160, 128, 96])
)  # fmt: skip
"""Four samples of 8-bit mono WAV at 8 kHz."""
BLOB = b"\x00\x01shapes\xff"
READ_ONLY = ToolAnnotations(readOnlyHint=True, idempotentHint=True)
"""Every tool here only reads (as ``mcp-server-time``'s): cross-validated like its twin."""
LINK_URI = "shapes://files/report.csv"
DOC_URI = "shapes://docs/readme.md"


class Weather(BaseModel):
    city: str
    temperature_c: float
    conditions: str


def current_time_text(timezone: str, now: datetime | None = None) -> str:
    """``mcp-server-time``'s ``get_current_time`` answer, as the JSON text it sends."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(f"Invalid timezone: {timezone}") from None
    moment = (now or datetime.now(zone)).astimezone(zone).replace(microsecond=0)
    answer = {
        "timezone": timezone,
        "datetime": moment.isoformat(timespec="seconds"),
        "day_of_week": moment.strftime("%A"),
        "is_dst": bool(moment.dst()),
    }
    return json.dumps(answer, indent=2)


# Long by design: one registration per answer shape, read as the list of shapes.
def build_server() -> FastMCP:
    server = FastMCP("hybridmcp-shapes", log_level="WARNING")

    @server.tool(annotations=READ_ONLY)
    def get_current_time(timezone: str) -> str:
        """The current time in an IANA time zone (mcp-server-time's answer, as a str)."""
        return current_time_text(timezone)

    @server.tool(annotations=READ_ONLY)
    def echo(text: str) -> str:
        return text

    @server.tool(annotations=READ_ONLY)
    def give_object(doc: str) -> dict[str, Any]:
        return dict(json.loads(doc))

    @server.tool(annotations=READ_ONLY)
    def give_list(doc: str) -> list[Any]:
        return list(json.loads(doc))

    @server.tool(annotations=READ_ONLY)
    def give_number(doc: str) -> float:
        return float(json.loads(doc))

    @server.tool(annotations=READ_ONLY)
    def plain_text() -> str:
        return "hello, shapes"

    @server.tool(annotations=READ_ONLY)
    def wrapped_error() -> str:
        return "Error: the upstream store is unreachable"

    @server.tool(annotations=READ_ONLY)
    def count() -> int:
        return 42

    @server.tool(annotations=READ_ONLY)
    def primes() -> list[int]:
        return [2, 3, 5, 7]

    @server.tool(annotations=READ_ONLY)
    def city() -> dict[str, Any]:
        return {"name": "Lyon", "population": 522_250, "rivers": ["Rhône", "Saône"]}

    @server.tool(annotations=READ_ONLY)
    def weather() -> Weather:
        return Weather(city="Lyon", temperature_c=21.5, conditions="sunny")

    @server.tool(annotations=READ_ONLY, structured_output=False)
    def tiny_image() -> Image:
        return Image(data=TINY_PNG, format="png")

    @server.tool(annotations=READ_ONLY, structured_output=False)
    def beep() -> Audio:
        return Audio(data=TINY_WAV, format="wav")

    @server.tool(annotations=READ_ONLY, structured_output=False)
    def link() -> ContentBlock:
        return ResourceLink(
            type="resource_link", uri=AnyUrl(LINK_URI), name="report.csv", mimeType="text/csv"
        )

    @server.tool(annotations=READ_ONLY, structured_output=False)
    def embedded_text() -> ContentBlock:
        contents = TextResourceContents(
            uri=AnyUrl(DOC_URI), mimeType="text/markdown", text="# Shapes\n"
        )
        return EmbeddedResource(type="resource", resource=contents)

    @server.tool(annotations=READ_ONLY, structured_output=False)
    def embedded_blob() -> ContentBlock:
        contents = BlobResourceContents(
            uri=AnyUrl("shapes://blobs/1"),
            mimeType="application/octet-stream",
            blob=base64.b64encode(BLOB).decode(),
        )
        return EmbeddedResource(type="resource", resource=contents)

    @server.tool(annotations=READ_ONLY, structured_output=False)
    def several_texts() -> list[ContentBlock]:
        return [
            TextContent(type="text", text="first part"),
            TextContent(type="text", text='{"part": 2}'),
        ]

    @server.tool(annotations=READ_ONLY, structured_output=False)
    def captioned_image() -> list[Any]:
        return ["a red pixel", Image(data=TINY_PNG, format="png")]

    @server.tool(annotations=READ_ONLY)
    def fail() -> str:
        raise ToolError("the shapes server refuses on purpose")

    @server.tool(annotations=READ_ONLY)
    def raw_bytes() -> bytes:
        return BLOB

    @server.tool(annotations=READ_ONLY)
    def structured_error(kind: str) -> CallToolResult:
        """A tool error told only in structured content (no text part): ``kind`` "input"
        blames the input, anything else the server's upstream."""
        said = (
            "Invalid timezone: Mars/Base"
            if kind == "input"
            else "the upstream store is unreachable"
        )
        return CallToolResult(content=[], structuredContent={"error": said}, isError=True)

    return server


def main() -> None:
    build_server().run("stdio")


if __name__ == "__main__":
    main()

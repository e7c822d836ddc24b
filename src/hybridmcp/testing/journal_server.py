"""A real FastMCP server with tools of each effect class: the project's effects test server.

- ``append(entry, sleep_ms=0)``: appends one JSON line ``{"entry", "side", "key"}`` to the
  journal file (``key`` is the idempotency key the client put in the call's ``_meta``), then
  sleeps ``sleep_ms`` (a timeout *after* the write). Annotated ``destructiveHint: true,
  idempotentHint: false``: a ``write``.
- ``put(key, value)``: sets a key in a JSON file beside the journal; ``idempotentHint: true``.
- ``read_journal()``: the journal's entries; ``readOnlyHint: true``.

Run it (stdio)::

    python -m hybridmcp.testing.journal_server --journal /tmp/journal.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import anyio
from mcp.server.fastmcp import Context, FastMCP
from mcp.types import ToolAnnotations

WRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=False)
IDEMPOTENT = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True)
READ = ToolAnnotations(readOnlyHint=True)


def append_line(journal: Path, record: dict[str, Any]) -> None:
    """One line, flushed to disk before the call goes on: the write has happened."""
    with open(journal, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def build_server(journal: Path) -> FastMCP:
    server = FastMCP("journal")

    @server.tool(annotations=WRITE)
    async def append(entry: str, ctx: Context, sleep_ms: int = 0) -> dict[str, Any]:
        meta = ctx.request_context.meta
        key = getattr(meta, "idempotency_key", None) if meta is not None else None
        append_line(journal, {"entry": entry, "side": "external", "key": key})
        await anyio.sleep(sleep_ms / 1000)
        return {"entry": entry, "written": True}

    @server.tool(annotations=IDEMPOTENT)
    def put(key: str, value: str) -> dict[str, Any]:
        store = journal.with_suffix(".kv.json")
        data = json.loads(store.read_text()) if store.exists() else {}
        data[key] = value
        store.write_text(json.dumps(data))
        return {"key": key, "value": value}

    @server.tool(annotations=READ)
    def read_journal() -> list[str]:
        if not journal.exists():
            return []
        return [json.loads(line)["entry"] for line in journal.read_text().splitlines() if line]

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journal", required=True, type=Path)
    build_server(parser.parse_args().journal).run("stdio")


if __name__ == "__main__":
    main()

"""The internal providers of the criteria benchmark's extra skills (beside the built-ins).

- ``add`` and ``echo`` answer like server-everything's ``get-sum`` and ``echo``;
- ``sql_query`` is an in-house read-only path to a *replica* of the shop database: cheap and
  fast, but taken before the latest orders, so it is stale for recent rows (the external
  ``mcp-server-sqlite`` serves the live database). It renders rows as that server does.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from hybridmcp.errors import ProviderError

REPLICA: dict[str, str] = {}
"""``{"path": ...}``: the replica database file, set by the benchmark before it runs."""


def add(a: int, b: int) -> str:
    return f"The sum of {a} and {b} is {a + b}."


def echo(message: str) -> str:
    return f"Echo: {message}"


def sql_query(query: str) -> str:
    if not query.lstrip().lower().startswith("select"):
        raise ProviderError(f"the replica is read-only: {query[:40]!r} is not a SELECT")
    if "path" not in REPLICA:
        raise ProviderError("no replica database configured (bench.providers.REPLICA)")
    conn = sqlite3.connect(f"file:{REPLICA['path']}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        rows: list[dict[str, Any]] = [dict(r) for r in conn.execute(query).fetchall()]
    except sqlite3.Error as err:
        raise ProviderError(f"replica query failed: {err}") from None
    finally:
        conn.close()
    return str(rows)

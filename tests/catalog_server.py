"""A stdio MCP server (raw JSON-RPC) whose tool catalogue takes a shape clients are rarely
shaped around, one shape per mode. Every tool echoes its arguments as JSON text, except the
``typed_*`` tools, which answer structured content. ``python -m tests.catalog_server MODE``.

Modes:

- ``pages``: 7 tools over three pages of ``tools/list`` (cursors ``p1``, ``p2``);
- ``loop``: a first page whose cursor leads back to itself, for ever;
- ``page_fails``: a second page that answers a JSON-RPC error;
- ``many``: 1,500 tools on one page;
- ``empty``: no tools;
- ``no_caps``: announces no ``tools`` capability, and answers ``tools/list`` all the same;
- ``no_tools``: announces only ``prompts``, and answers ``tools/list`` that it has no such
  method;
- ``instructions``: an ``instructions`` field of 4 MB;
- ``v2024`` and ``v2025``: protocol version 2024-11-05 and 2025-03-26 whatever is asked;
- ``schemas``: tools whose input schemas use references (recursive too), ``oneOf``,
  ``anyOf``, ``allOf``, nullable types, formats, enums of mixed types, 2020-12 keywords, or
  are not JSON Schema; and ``typed_ok``, ``typed_bad``, ``typed_cyclic`` with output schemas
  their structured content matches, does not match, or that refer to themselves for ever;
- ``changes``: a call of ``shift`` makes the server drop ``gone``, require ``count`` of
  ``echo`` as an integer, and send ``notifications/tools/list_changed``;
- ``names``: tools named with dots, slashes, unicode and 200 characters;
- ``one:NAME``: one tool, named NAME;
- ``churn``: a call of ``echo`` sends ``notifications/tools/list_changed`` 2,000 times first,
  and answers how many ``tools/list`` requests came so far (``lists``);
- ``bad_tool``: ``echo`` and, on the same page, entries that are not MCP tools (no input
  schema, a name that is a number, an input schema that is a list).
"""

from __future__ import annotations

import json
import sys
from typing import Any

ANY = {"type": "object", "properties": {"text": {"type": "string"}}}
PAGES = [["a0", "a1", "a2"], ["b0", "b1"], ["c0", "c1"]]
LONG_NAME = "long_" + "x" * 195
NAMES = ["dot.ted", "sla/shed", "ünï·código", "名前", LONG_NAME, "a.b/c d"]
TREE = {
    "$defs": {
        "node": {
            "type": "object",
            "properties": {
                "value": {"type": "integer"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
            },
            "required": ["value"],
        }
    },
    "type": "object",
    "properties": {"root": {"$ref": "#/$defs/node"}},
    "required": ["root"],
}
SCHEMAS: dict[str, Any] = {
    "tree": TREE,
    "cyclic": {
        "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}},
        "type": "object",
        "properties": {"x": {"$ref": "#/$defs/a"}},
    },
    "self_ref": {"$ref": "#"},
    "choice": {
        "type": "object",
        "properties": {
            "target": {
                "oneOf": [
                    {
                        "type": "object",
                        "properties": {"id": {"type": "integer"}},
                        "required": ["id"],
                    },
                    {
                        "type": "object",
                        "properties": {"url": {"type": "string"}},
                        "required": ["url"],
                    },
                ]
            },
            "mode": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "limits": {"allOf": [{"type": "integer"}, {"minimum": 1}, {"maximum": 10}]},
        },
        "required": ["target"],
        "additionalProperties": False,
    },
    "nullable": {
        "type": "object",
        "properties": {
            "when": {"type": ["string", "null"], "format": "date-time"},
            "kind": {"enum": [1, "one", None, True, 2.5]},
            "extra": {"type": "object", "additionalProperties": {"type": "number"}},
        },
        "required": ["kind"],
    },
    "modern": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "pair": {
                "type": "array",
                "prefixItems": [{"type": "string"}, {"type": "integer"}],
                "items": False,
            },
            "tag": {"const": "x"},
        },
        "dependentRequired": {"pair": ["tag"]},
        "unevaluatedProperties": False,
    },
    "no_props": {"type": "object"},
    "not_schema": {"type": "object", "properties": {"text": {"type": 12}}, "required": "text"},
    "bare_props": {"type": "object", "properties": {"a": True, "b": False, "c": {}}},
    "odd_required": {"type": "object", "properties": ["a", "b"], "required": {"a": 1}},
}
OUTPUT = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
CYCLIC_OUTPUT = {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}
TYPED = {
    "typed_ok": (OUTPUT, {"n": 1}),
    "typed_bad": (OUTPUT, {"n": "one"}),
    "typed_cyclic": (CYCLIC_OUTPUT, {"n": 1}),
    "typed_invalid": ({"type": "object", "properties": {"n": {"type": 12}}}, {"n": 1}),
}


def _tool(name: str, schema: Any = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "description": f"The {name} tool.", "inputSchema": schema or ANY} | extra


class Server:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.shifted = False
        self.lists = 0

    def tools(self) -> list[dict[str, Any]]:
        if self.mode == "many":
            return [_tool(f"t{n:04d}") for n in range(1500)]
        if self.mode == "empty":
            return []
        if self.mode == "schemas":
            typed = [_tool(n, outputSchema=out) for n, (out, _) in TYPED.items()]
            return [_tool(n, s) for n, s in SCHEMAS.items()] + typed
        if self.mode == "names":
            return [_tool(n) for n in NAMES]
        if self.mode == "changes":
            count = {"type": "integer" if self.shifted else "string"}
            echo = _tool("echo", {"type": "object", "properties": {"count": count}})
            return [echo, _tool("shift")] + ([] if self.shifted else [_tool("gone")])
        if self.mode == "bad_tool":
            odd = [{"name": "no_schema"}, _tool("x") | {"name": 5}, _tool("listed", ["a"])]
            return [_tool("echo"), *odd, _tool("after")]
        if self.mode.startswith("one:"):
            return [_tool(self.mode.removeprefix("one:"))]
        return [_tool("echo")]

    def initialize(self, params: dict[str, Any]) -> dict[str, Any]:
        version = {"v2024": "2024-11-05", "v2025": "2025-03-26"}.get(self.mode)
        result: dict[str, Any] = {
            "protocolVersion": version or params.get("protocolVersion", "2025-06-18"),
            "capabilities": {
                "no_caps": {},
                "no_tools": {"prompts": {}},
            }.get(self.mode, {"tools": {"listChanged": True}}),
            "serverInfo": {"name": "catalog", "version": "1"},
        }
        if self.mode == "instructions":
            result["instructions"] = "Use the tools wisely. " * 200_000
        return result

    def list_page(self, cursor: str | None) -> dict[str, Any]:
        if self.mode == "pages":
            page = {None: 0, "p1": 1, "p2": 2}[cursor]
            out: dict[str, Any] = {"tools": [_tool(n) for n in PAGES[page]]}
            if page < 2:
                out["nextCursor"] = f"p{page + 1}"
            return out
        if self.mode == "loop":
            return {"tools": [_tool("echo")], "nextCursor": "again"}
        if self.mode == "page_fails":
            if cursor is not None:
                raise LookupError("the second page is not available")
            return {"tools": [_tool("echo")], "nextCursor": "next"}
        return {"tools": self.tools()}

    def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        if name in TYPED:
            structured = TYPED[name][1]
            return {
                "content": [{"type": "text", "text": json.dumps(structured)}],
                "structuredContent": structured,
            }
        if self.mode == "churn":
            for _ in range(2000):
                _send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
            arguments = {**arguments, "lists": self.lists}
        if self.mode == "changes" and name == "shift":
            self.shifted = True
            _send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        return {"content": [{"type": "text", "text": json.dumps({"tool": name, **arguments})}]}

    def answer(self, message: dict[str, Any]) -> None:
        method, request_id = message.get("method"), message.get("id")
        params = message.get("params") or {}
        if request_id is None:
            return  # a notification
        try:
            if method == "initialize":
                result = self.initialize(params)
            elif method == "tools/list" and self.mode != "no_tools":
                self.lists += 1
                result = self.list_page(params.get("cursor"))
            elif method == "tools/call":
                result = self.call(params["name"], params.get("arguments") or {})
            elif method == "ping":
                result = {}
            else:
                raise NotImplementedError(f"no method {method}")
        except NotImplementedError as err:
            error = {"code": -32601, "message": str(err)}
            _send({"jsonrpc": "2.0", "id": request_id, "error": error})
            return
        except Exception as err:
            error = {"code": -32603, "message": str(err)}
            _send({"jsonrpc": "2.0", "id": request_id, "error": error})
            return
        _send({"jsonrpc": "2.0", "id": request_id, "result": result})


def _send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> None:
    server = Server(sys.argv[1])
    for line in sys.stdin:
        if line.strip():
            server.answer(json.loads(line))


if __name__ == "__main__":
    main()

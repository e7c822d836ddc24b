"""A server that breaks the MCP protocol itself, one way per mode, where the fault server
(:mod:`hybridmcp.testing.faultserver`) breaks only its tools' answers.

``python -m hybridmcp.testing.hostile_server MODE`` speaks raw JSON-RPC on stdio, with one tool
``echo``; ``python -m hybridmcp.testing.hostile_server --http PORT`` serves HTTP, its mode the
URL's path (``http://127.0.0.1:PORT/html``). Modes:

- stdio: ``ok``, ``bad_init`` (an ``initialize`` result that is not MCP), ``bad_list`` (a
  ``tools/list`` result that is not MCP), ``bad_result`` (a ``tools/call`` result that is not
  MCP), ``nan`` (an answer holding NaN and Infinity, structured and as text), ``slow_init``
  (never answers ``initialize``), ``garbage_init`` (answers ``initialize`` only with lines
  that are not JSON-RPC), ``odd_schemas`` (tools whose input schemas are invalid
  (``broken``), refer to what nothing resolves (``remote_ref``), or hold a pattern that
  backtracks for ever on ``aaa…!`` (``backtracking``));
- http: ``html`` (a web page, status 200), ``json`` (JSON that is not JSON-RPC), ``e500``
  (status 500 with a text body), ``hang`` (never answers).
"""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STDIO_MODES = (
    "ok",
    "bad_init",
    "bad_list",
    "bad_result",
    "nan",
    "slow_init",
    "garbage_init",
    "odd_schemas",
)
HTTP_MODES = ("html", "json", "e500", "hang")
TOOL = {
    "name": "echo",
    "description": "Echo the arguments.",
    "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
}


def _send(message: dict[str, Any]) -> None:
    _raw((json.dumps(message) + "\n").encode())


def _raw(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _answer(mode: str, method: str, request_id: Any, params: dict[str, Any]) -> None:
    if method == "initialize":
        if mode == "slow_init":
            time.sleep(3600)
        if mode == "garbage_init":
            _raw(b"Server ready!\n{not json}\n[1, 2\n")
            return
        if mode == "bad_init":
            _send({"jsonrpc": "2.0", "id": request_id, "result": {"protocolVersion": 5}})
            return
        result = {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "hostile", "version": "1"},
        }
        _send({"jsonrpc": "2.0", "id": request_id, "result": result})
    elif method == "tools/list":
        tools: Any = "not a list" if mode == "bad_list" else [TOOL]
        if mode == "odd_schemas":
            pattern = {"type": "string", "pattern": "(a|aa)+$"}
            tools = [
                TOOL | {"name": "broken", "inputSchema": {"type": "nonsense", "properties": 5}},
                TOOL
                | {
                    "name": "remote_ref",
                    "inputSchema": {
                        "type": "object",
                        "properties": {"text": {"$ref": "http://127.0.0.1:1/schema.json"}},
                    },
                },
                TOOL
                | {
                    "name": "backtracking",
                    "inputSchema": {"type": "object", "properties": {"text": pattern}},
                },
            ]
        _send({"jsonrpc": "2.0", "id": request_id, "result": {"tools": tools}})
    elif method == "tools/call":
        if mode == "bad_result":
            result = {"content": "not a list", "isError": "maybe"}
            _send({"jsonrpc": "2.0", "id": request_id, "result": result})
        elif mode == "nan":
            _raw(
                b'{"jsonrpc": "2.0", "id": %d, "result": {"content": [{"type": "text", '
                b'"text": "{\\"v\\": NaN, \\"w\\": Infinity}"}], '
                b'"structuredContent": {"v": NaN, "w": Infinity}}}\n' % request_id
            )
        else:
            text = json.dumps(params.get("arguments") or {})
            result = {"content": [{"type": "text", "text": text}]}
            _send({"jsonrpc": "2.0", "id": request_id, "result": result})
    elif method == "ping":
        _send({"jsonrpc": "2.0", "id": request_id, "result": {}})
    else:
        error = {"code": -32601, "message": f"no method {method}"}
        _send({"jsonrpc": "2.0", "id": request_id, "error": error})


def serve_stdio(mode: str) -> None:
    for line in sys.stdin.buffer:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("id") is not None:
            _answer(mode, str(message.get("method")), message["id"], message.get("params") or {})


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _any(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        mode = self.path.strip("/").split("/")[0]
        if mode == "hang":
            time.sleep(3600)
        elif mode == "html":
            self._reply(200, "text/html", b"<html><body><h1>Welcome to nginx!</h1></body></html>")
        elif mode == "json":
            self._reply(200, "application/json", b'{"hello": "world"}')
        elif mode == "e500":
            self._reply(500, "text/plain", b"Internal Server Error\nsee the logs")
        else:
            self._reply(404, "text/plain", b"no such mode")

    do_GET = do_POST = do_DELETE = _any


def serve_http(port: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    server.daemon_threads = True
    server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--http"]:
        serve_http(int(args[1]))
    elif args and args[0] in STDIO_MODES:
        serve_stdio(args[0])
    else:
        raise SystemExit(f"usage: hostile_server {{{'|'.join(STDIO_MODES)}}} | --http PORT")


if __name__ == "__main__":
    main()

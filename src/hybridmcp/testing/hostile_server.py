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
  backtracks for ever on ``aaa…!`` (``backtracking``)), ``odd_names`` (tools named ``""``,
  ``a.b``, 5,000 characters, with a right-to-left override, one listed twice); and,
  answering a ``tools/call`` of
  ``echo`` whose ``text`` is ``hostile`` (any other is echoed):
  ``wrong_id`` (an answer under an id no one asked for, never the right one), ``dup_id``
  (the answer twice), ``no_id`` (an answer without an id), ``odd_part`` (a content part of a
  type MCP does not have), ``drip`` (the answer a byte at a time, 0.2 s apart), ``latin1``
  (an answer that is not UTF-8), ``huge_line`` (a line of 100 MB), ``flood`` (log
  notifications without end, never the answer), ``no_list`` (answers ``initialize``, never
  ``tools/list``), ``asks`` (sends the client requests and stops reading its stdin),
  ``asks_unsupported`` (asks the client, mid-call, what it did not offer or MCP does not
  have: a method no one defined, ``roots/list``, ``sampling/createMessage``,
  ``elicitation/create``; answers the call with the client's answers to each, in order),
  ``shut_stdout`` (closes its stdout and keeps running), ``odd_error`` (a JSON-RPC error
  whose message of 250,000 characters holds line breaks of every kind, NUL, control
  characters and terminal escapes: ``ODD_ERROR``), ``odd_tool_error`` (the same
  text as a tool error, ``isError``), ``server_error`` (a JSON-RPC error of code -32000, the
  first of the range for servers' own errors, which the MCP client also gives a request whose
  connection ended: :data:`SERVER_ERROR`);
- http: ``html`` (a web page, status 200), ``json`` (JSON that is not JSON-RPC), ``e500``
  (status 500 with a text body), ``hang`` (never answers); and streamable-HTTP servers whose
  handshake works, answering a call of ``echo`` with ``text`` ``hostile`` by: ``sse_silent``
  (an event stream that never sends an event), ``sse_garbage`` (events that are not JSON-RPC
  and an answer to another id, then nothing), ``sse_endless`` (an event that never ends),
  ``json_stall`` (a JSON body promised, never sent), ``json_endless`` (a JSON body that never
  ends); and SSE servers (the older transport) whose event stream never names its endpoint
  (``sse_mute``) or names one on another origin (``sse_foreign``).
"""

from __future__ import annotations

import json
import os
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
    "odd_names",
    "wrong_id",
    "dup_id",
    "no_id",
    "odd_part",
    "drip",
    "latin1",
    "huge_line",
    "flood",
    "no_list",
    "asks",
    "asks_unsupported",
    "shut_stdout",
    "odd_error",
    "odd_tool_error",
    "server_error",
)
ODD_ERROR = "Error: bad input\nline two\r\u2028three\u2029four\x85five\x00\x1b[2J\x07 " + "".join(
    f"w{n} ab{n % 97}cd " for n in range(20_000)
)
"""The message of ``odd_error`` and ``odd_tool_error``."""
SERVER_ERROR = {"code": -32000, "message": "Server error: the backend is busy, try again later"}
"""The error ``server_error`` answers with."""
HTTP_MODES = ("html", "json", "e500", "hang")
HTTP_CALL_MODES = ("sse_silent", "sse_garbage", "sse_endless", "json_stall", "json_endless")
SSE_MODES = ("sse_mute", "sse_foreign")
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


def _answer(
    mode: str, method: str, request_id: Any, params: dict[str, Any], out: Any = None
) -> None:
    write = out or _raw

    def send(message: dict[str, Any]) -> None:
        write((json.dumps(message) + "\n").encode())

    if method == "initialize":
        if mode == "slow_init":
            time.sleep(3600)
        if mode == "garbage_init":
            write(b"Server ready!\n{not json}\n[1, 2\n")
            return
        if mode == "bad_init":
            send({"jsonrpc": "2.0", "id": request_id, "result": {"protocolVersion": 5}})
            return
        result = {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "hostile", "version": "1"},
        }
        send({"jsonrpc": "2.0", "id": request_id, "result": result})
    elif method == "tools/list":
        if mode == "no_list":
            return
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
        if mode == "odd_names":
            names = ["", "a.b", "x" * 5_000, "sp ace", "\u202eevil", "echo", "dup", "dup"]
            tools = [TOOL | {"name": name} for name in names]
        send({"jsonrpc": "2.0", "id": request_id, "result": {"tools": tools}})
    elif method == "tools/call":
        if mode in _MISBEHAVE and (params.get("arguments") or {}).get("text") == "hostile":
            _MISBEHAVE[mode](request_id)
        elif mode == "bad_result":
            result = {"content": "not a list", "isError": "maybe"}
            send({"jsonrpc": "2.0", "id": request_id, "result": result})
        elif mode == "nan":
            write(
                b'{"jsonrpc": "2.0", "id": %d, "result": {"content": [{"type": "text", '
                b'"text": "{\\"v\\": NaN, \\"w\\": Infinity}"}], '
                b'"structuredContent": {"v": NaN, "w": Infinity}}}\n' % request_id
            )
        else:
            text = json.dumps(params.get("arguments") or {})
            result = {"content": [{"type": "text", "text": text}]}
            send({"jsonrpc": "2.0", "id": request_id, "result": result})
    elif method == "ping":
        send({"jsonrpc": "2.0", "id": request_id, "result": {}})
    else:
        error = {"code": -32601, "message": f"no method {method}"}
        send({"jsonrpc": "2.0", "id": request_id, "error": error})


def _echoed(request_id: Any, text: str = "{}") -> bytes:
    result = {"content": [{"type": "text", "text": text}]}
    return (json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}) + "\n").encode()


def _drip(request_id: Any) -> None:
    for byte in _echoed(request_id):
        _raw(bytes([byte]))
        time.sleep(0.2)


def _flood(request_id: Any) -> None:
    note = {"level": "info", "logger": "flood", "data": "x" * 200}
    line = json.dumps({"jsonrpc": "2.0", "method": "notifications/message", "params": note})
    block = ((line + "\n") * 100).encode()
    while True:
        _raw(block)


def _asks(request_id: Any) -> None:
    for n in range(100_000):  # far more answers than a pipe holds, none of them read
        _send({"jsonrpc": "2.0", "id": f"s{n}", "method": "ping"})
    time.sleep(3600)


UNSUPPORTED_ASKS = {
    "tasks/bogus": {},
    "roots/list": {},
    "sampling/createMessage": {
        "messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}],
        "maxTokens": 5,
    },
    "elicitation/create": {
        "message": "name?",
        "requestedSchema": {"type": "object", "properties": {"n": {"type": "string"}}},
    },
}
"""What ``asks_unsupported`` asks the client (none of it offered by a client configured with
no ``roots``, ``sampling`` or ``elicitation``)."""


def _asks_unsupported(request_id: Any) -> None:
    answers = []
    for n, (method, params) in enumerate(UNSUPPORTED_ASKS.items()):
        _send({"jsonrpc": "2.0", "id": f"ask{n}", "method": method, "params": params})
        while True:  # the client's answer (notifications in between are skipped)
            line = sys.stdin.buffer.readline()
            if not line:
                return
            message = json.loads(line)
            if message.get("id") == f"ask{n}":
                answers.append(
                    {"method": method, **{k: message.get(k) for k in ("result", "error")}}
                )
                break
    _raw(_echoed(request_id, json.dumps({"answers": answers})))


def _shut_stdout(request_id: Any) -> None:
    sys.stdout.flush()
    os.close(1)
    time.sleep(3600)


_MISBEHAVE: dict[str, Any] = {
    "wrong_id": lambda i: _raw(_echoed(i + 1000 if isinstance(i, int) else f"{i}x")),
    "dup_id": lambda i: _raw(_echoed(i, '{"first": 1}') + _echoed(i, '{"second": 2}')),
    "no_id": lambda i: _raw(_echoed(i).replace(b'"id": %s, ' % json.dumps(i).encode(), b"")),
    "odd_part": lambda i: _send(
        {"jsonrpc": "2.0", "id": i, "result": {"content": [{"type": "video", "url": "x"}]}}
    ),
    "drip": _drip,
    "latin1": lambda i: _raw(_echoed(i, "caf\u00e9").replace(b"\\u00e9", b"\xe9")),
    "huge_line": lambda i: _raw(_echoed(i, "x" * 100_000_000)),
    "flood": _flood,
    "asks": _asks,
    "asks_unsupported": _asks_unsupported,
    "shut_stdout": _shut_stdout,
    "odd_error": lambda i: _send(
        {"jsonrpc": "2.0", "id": i, "error": {"code": -32603, "message": ODD_ERROR}}
    ),
    "server_error": lambda i: _send({"jsonrpc": "2.0", "id": i, "error": SERVER_ERROR}),
    "odd_tool_error": lambda i: _send(
        {
            "jsonrpc": "2.0",
            "id": i,
            "result": {"content": [{"type": "text", "text": ODD_ERROR}], "isError": True},
        }
    ),
}


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
        body = self.rfile.read(length) if length else b""
        mode = self.path.strip("/").split("/")[0]
        if mode in HTTP_CALL_MODES:
            self._mcp(mode, body)
        elif mode in ("sse_mute", "sse_foreign") and self.command == "GET":
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.end_headers()
            if mode == "sse_foreign":
                self.wfile.write(b"event: endpoint\ndata: http://192.0.2.1:9/messages\n\n")
            self.wfile.write(b": keep-alive\n\n")
            self.wfile.flush()
            time.sleep(3600)
        elif mode == "hang":
            time.sleep(3600)
        elif mode == "html":
            self._reply(200, "text/html", b"<html><body><h1>Welcome to nginx!</h1></body></html>")
        elif mode == "json":
            self._reply(200, "application/json", b'{"hello": "world"}')
        elif mode == "e500":
            self._reply(500, "text/plain", b"Internal Server Error\nsee the logs")
        else:
            self._reply(404, "text/plain", b"no such mode")

    def _mcp(self, mode: str, body: bytes) -> None:
        """Streamable HTTP, JSON answers: a working handshake; an ``echo`` call whose ``text``
        is ``hostile`` answered the mode's way."""
        if self.command != "POST":  # no stream of the server's own messages
            self._reply(405 if self.command == "GET" else 200, "text/plain", b"")
            return
        message = json.loads(body)
        params = message.get("params") or {}
        if "id" not in message:  # a notification
            self._reply(202, "text/plain", b"")
            return
        method, request_id = message["method"], message["id"]
        hostile = (params.get("arguments") or {}).get("text") == "hostile"
        if method != "tools/call" or not hostile:
            answered = bytearray()
            _answer("ok", method, request_id, params, answered.extend)
            self._reply(200, "application/json", bytes(answered).strip())
            return
        self.send_response(200)
        self.send_header(
            "content-type", "text/event-stream" if "sse" in mode else "application/json"
        )
        if mode == "json_stall":  # a body promised, never sent
            self.send_header("content-length", "1000")
        self.end_headers()
        if mode in ("json_endless", "sse_endless"):  # a body (an event) that never ends
            self.wfile.write(b"data: " if mode == "sse_endless" else b"")
            block = b"x" * 65536
            while True:
                self.wfile.write(block)
        if mode == "sse_garbage":
            self.wfile.write(b"data: {not json\n\nevent: message\ndata: [1, 2\n\n: hi\n\n")
            self.wfile.write(b"event: message\ndata: " + _echoed(request_id + 1000))
            self.wfile.write(b"\n")
            self.wfile.flush()
        time.sleep(3600)

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

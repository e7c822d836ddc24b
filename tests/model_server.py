"""An OpenAI-compatible chat model over HTTP that records what it is sent, for the tests of
what reaches a model outside the process (``python -m tests.model_server LOG ANSWERS``).

Every ``POST /v1/chat/completions`` body is appended to ``LOG`` (JSON lines) before it is
answered; the answer's content is the next of the JSON objects in ``ANSWERS`` (a JSON list,
the last one repeated), as a JSON text, the form the structured adapter asks for. The port it
listens on (127.0.0.1, chosen by the system) is printed on the first line of stdout.

An answer may instead be a directive, to answer the way a misbehaving server does:

- ``{"__content__": X}``: the message content is ``X`` exactly (any text, ``null``);
- ``{"__status__": 429, "__body__": "..."}``: that HTTP status with that body;
- ``{"__garbage__": "..."}``: a 200 whose body is that text (not a completion);
- ``{"__bytes__": "c3 28"}``: the message content carries these raw bytes (hex), undecoded;
- ``{"__sleep__": 5, ...}``: wait that many seconds first (then the rest of the directive,
  or the next answer form if none).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def _completion(served: int, content: Any) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{served}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "recorded",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def serve(log: Path, answers: list[Any]) -> None:
    lock = threading.Lock()
    served = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._reply(200, {"object": "list", "data": [{"id": "recorded", "object": "model"}]})

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                with log.open("ab") as out:
                    out.write(body.replace(b"\n", b" ") + b"\n")
                answer = answers[min(served[0], len(answers) - 1)]
                served[0] += 1
                count = served[0]
            directive = answer if isinstance(answer, dict) else {}
            if "__sleep__" in directive:
                time.sleep(float(directive["__sleep__"]))
                answer = {k: v for k, v in directive.items() if k != "__sleep__"}
                directive = answer
            if "__status__" in directive:
                body = str(directive.get("__body__", "")).encode()
                self._send(int(directive["__status__"]), body)
            elif "__garbage__" in directive:
                self._send(200, str(directive["__garbage__"]).encode())
            elif "__bytes__" in directive:
                marker = "\u0000RAW\u0000"
                data = json.dumps(_completion(count, marker)).encode()
                raw = bytes.fromhex(str(directive["__bytes__"]))
                self._send(200, data.replace(json.dumps(marker).encode()[1:-1], raw))
            elif "__content__" in directive:
                self._reply(200, _completion(count, directive["__content__"]))
            else:
                self._reply(200, _completion(count, json.dumps(answer)))

        def _reply(self, status: int, payload: Any) -> None:
            self._send(status, json.dumps(payload).encode())

        def _send(self, status: int, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


ROOT = Path(__file__).resolve().parents[1]


class Model:
    """A started recording model server: its URL and what it was sent."""

    def __init__(self, url: str, log: Path) -> None:
        self.url, self.log = url, log

    def bodies(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def start(folder: Path, answers: list[Any], n: int = 0) -> tuple[Model, subprocess.Popen[str]]:
    """This server in a subprocess answering ``answers`` (files ``answers<n>.json`` and
    ``model<n>.jsonl`` in ``folder``); the caller stops the process."""
    script = folder / f"answers{n}.json"
    script.write_text(json.dumps(answers))
    log = folder / f"model{n}.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.model_server", str(log), str(script)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    try:
        port = int(process.stdout.readline())
    except ValueError:
        process.kill()
        raise
    return Model(f"http://127.0.0.1:{port}/v1", log), process


if __name__ == "__main__":
    serve(Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text()))

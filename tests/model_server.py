"""An OpenAI-compatible chat model over HTTP that records what it is sent, for the tests of
what reaches a model outside the process (``python -m tests.model_server LOG ANSWERS``).

Every ``POST /v1/chat/completions`` body is appended to ``LOG`` (JSON lines) before it is
answered; the answer's content is the next of the JSON objects in ``ANSWERS`` (a JSON list,
the last one repeated), as a JSON text, the form the structured adapter asks for. The port it
listens on (127.0.0.1, chosen by the system) is printed on the first line of stdout.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


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
            content = json.dumps(answer)
            self._reply(
                200,
                {
                    "id": f"chatcmpl-{served[0]}",
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
                },
            )

        def _reply(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    serve(Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text()))

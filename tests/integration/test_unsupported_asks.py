"""A server that asks the client, mid-call, for what the client did not offer (roots,
sampling, elicitation, none configured) or for a method MCP does not have: each request gets
a JSON-RPC error naming what is not supported, at once (never a hang, never a silent drop),
and the call goes on to its answer. A real server process speaking raw JSON-RPC."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from hybridmcp.testing.hostile_server import UNSUPPORTED_ASKS
from tests.integration.test_durable import cli

pytestmark = pytest.mark.integration

SAID = {  # method: (JSON-RPC error code, message)
    "tasks/bogus": (-32602, "Invalid request parameters"),  # the mcp SDK's answer to it
    "roots/list": (-32600, "List roots not supported"),
    "sampling/createMessage": (-32600, "Sampling not supported"),
    "elicitation/create": (-32600, "Elicitation not supported"),
}


def test_requests_the_client_did_not_offer_are_refused_at_once(tmp_path: Path) -> None:
    server = {
        "command": sys.executable,
        "args": ["-m", "hybridmcp.testing.hostile_server", "asks_unsupported"],
        "env": {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(sys.path)},
        "timeout_ms": 20_000,
    }
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mcpServers": {"h": server}, "builtin_skills": False}))
    task = tmp_path / "task.json"
    request = {"id": "e", "skill": "h.echo", "args": {"text": "hostile"}}
    task.write_text(json.dumps({"requests": [request]}))
    proc = cli("run", str(task), "--config", str(config), "--json", "--db", ":memory:")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    (result,) = json.loads(proc.stdout)["results"]
    answers = result["value"]["answers"]
    assert [a["method"] for a in answers] == list(UNSUPPORTED_ASKS)
    for answer in answers:
        assert answer["result"] is None, answer
        code, message = SAID[answer["method"]]
        assert (answer["error"]["code"], answer["error"]["message"]) == (code, message)

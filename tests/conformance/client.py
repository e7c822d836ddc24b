"""The client the MCP conformance suite drives: hybridmcp's own command line, nothing else.

``npx @modelcontextprotocol/conformance client --command "python tests/conformance/client.py"``
starts a scenario's test server, then runs this script with the server's URL as its last
argument, the scenario's name in ``$MCP_CONFORMANCE_SCENARIO`` and, for some scenarios,
credentials in ``$MCP_CONFORMANCE_CONTEXT`` (JSON).

The script writes what a user would write: a configuration with the test server under
``mcpServers`` (and its ``auth:`` block), a task naming the server's tool as the skill
``conf.<tool>``, and runs ``hybridmcp`` on them (``auth login`` first where a user would log in,
then ``run``). It never opens an MCP session of its own. Its exit status is hybridmcp's.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SERVER = "conf"
# The tool each scenario's server offers, and the arguments to call it with.
CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "tools_call": ("add_numbers", {"a": 5, "b": 3}),
    "sse-retry": ("test_reconnection", {}),
    "elicitation-sep1034-client-defaults": ("test_client_elicitation_defaults", {}),
}
AUTH_TOOL = ("test-tool", {})
# How the user behaves (the messages' tests): "" logs in as told; "no-login" runs without
# logging in first; "no-auth-block" has not written the server's `auth:` block; "no-step-up"
# logs in but does not let a run ask for more scope.
MODE = os.environ.get("HYBRIDMCP_CONFORMANCE_MODE", "")


def hybridmcp(*args: str, workdir: Path) -> int:
    """Run the hybridmcp command line (the one installed beside this interpreter)."""
    command = [sys.executable, "-m", "hybridmcp.cli", *args]
    print("$ hybridmcp " + " ".join(args), file=sys.stderr, flush=True)
    started = time.monotonic()
    status = subprocess.run(command, cwd=workdir, timeout=100).returncode
    print(f"(exit {status} after {time.monotonic() - started:.1f} s)", file=sys.stderr, flush=True)
    return status


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def auth_block(scenario: str, context: dict[str, Any], workdir: Path) -> dict[str, Any] | None:
    """The ``auth:`` block a user would write for the scenario's server."""
    if not scenario.startswith("auth/") or MODE == "no-auth-block":
        return None
    if scenario == "auth/client-credentials-basic":
        return {
            "grant": "client_credentials",
            "client_id": context["client_id"],
            "client_secret": context["client_secret"],
            "token_endpoint_auth_method": "client_secret_basic",
        }
    if scenario == "auth/client-credentials-jwt":
        key = workdir / "client-key.pem"
        key.touch(mode=0o600)
        key.write_text(context["private_key_pem"])
        return {
            "grant": "client_credentials",
            "client_id": context["client_id"],
            "private_key_file": str(key),
            "signing_algorithm": context.get("signing_algorithm", "ES256"),
        }
    block: dict[str, Any] = {
        "redirect_uri": f"http://localhost:{free_port()}/callback",
        "browser": f"{sys.executable} {HERE / 'user_agent.py'}",
        "client_metadata_url": "https://conformance-test.local/client-metadata.json",
        # a server may ask for more scope mid-run (step-up)
        "authorize_during_run": MODE not in ("no-login", "no-step-up"),
        "login_timeout_s": 60,
    }
    if context.get("client_id"):  # pre-registered
        block["client_id"] = context["client_id"]
        if context.get("client_secret"):
            block["client_secret"] = context["client_secret"]
    return block


def server_entry(url: str, scenario: str, context: dict[str, Any], workdir: Path) -> dict[str, Any]:
    entry: dict[str, Any] = {"url": url, "startup_timeout_ms": 60_000, "timeout_ms": 60_000}
    auth = auth_block(scenario, context, workdir)
    if auth is not None:
        entry["auth"] = auth
    if scenario.startswith("elicitation"):  # the policy a user would choose: the defaults
        entry["elicitation"] = "defaults"
    return entry


def main() -> int:
    url = sys.argv[-1]
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "initialize")
    context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    with tempfile.TemporaryDirectory(prefix="hybridmcp-conformance-") as tmp:
        workdir = Path(tmp)
        config = {
            "mcpServers": {SERVER: server_entry(url, scenario, context, workdir)},
            "builtin_skills": False,
            "resilience": {"pool": {"health_interval_ms": 0}},
        }
        (workdir / "config.json").write_text(json.dumps(config))
        common = ["--config", "config.json"]
        if scenario == "initialize":
            return hybridmcp("servers", *common, "--json", workdir=workdir)
        tool, args = CALLS.get(scenario, AUTH_TOOL)
        task = {"requests": [{"id": "call", "skill": f"{SERVER}.{tool}", "args": args}]}
        (workdir / "task.json").write_text(json.dumps(task))
        common += ["--db", "run.db"]
        entry = config["mcpServers"][SERVER]
        if entry.get("auth", {}).get("grant", "authorization_code") == "authorization_code":
            if "auth" in entry and MODE != "no-login":  # the user logs in once, then runs
                status = hybridmcp("auth", "login", SERVER, *common, workdir=workdir)
                if status != 0:
                    return status
        run = ["run", "task.json", *common, "--json", "--thread", "t1", "--audit", "audit.jsonl"]
        status = hybridmcp(*run, workdir=workdir)
        given = {context[k] for k in ("client_secret", "private_key_pem") if context.get(k)}
        leaked = secrets_leaked(workdir, given)
        if leaked:
            print(f"secrets leaked into {leaked}", file=sys.stderr)
            return 1
        return status


def secrets_leaked(workdir: Path, given: set[str]) -> list[str]:
    """The files hybridmcp wrote, other than the token database, that hold a token, a client
    secret or a private key: the checkpoints (kept: the run has a thread id), the learned
    statistics and the audit trail must hold none."""
    tokens_db = workdir / "run.tokens.db"
    secrets = {value.encode() for value in given}
    rows = []
    if tokens_db.exists():
        with sqlite3.connect(tokens_db) as conn:
            rows = conn.execute("SELECT tokens, client_info FROM hybridmcp_oauth").fetchall()
    for tokens, client in rows:
        for field, value in (json.loads(tokens or "{}") | json.loads(client or "{}")).items():
            if field in ("access_token", "refresh_token", "client_secret") and value:
                secrets.add(str(value).encode())
    return [
        found.name
        for found in workdir.iterdir()
        if found.is_file()
        and found.name not in ("run.tokens.db", "config.json", "client-key.pem")
        and any(secret in found.read_bytes() for secret in secrets)
    ]


if __name__ == "__main__":
    sys.exit(main())

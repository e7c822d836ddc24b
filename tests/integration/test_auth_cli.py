"""``hybridmcp auth status / login / logout``: the user's view of kept tokens (no server is
contacted by status or logout; login's refusals are checked before any network)."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import yaml

from hybridmcp.oauth import TokenStore
from tests.integration.test_durable import cli, cli_env

CONFIG = {
    "builtin_skills": False,
    "mcpServers": {
        "notes": {"url": "https://notes.example.com/mcp", "auth": {}},
        "batch": {
            "url": "https://batch.example.com/mcp",
            "auth": {"grant": "client_credentials", "client_id": "c", "client_secret": "s3cret"},
        },
        "plain": {"url": "https://plain.example.com/mcp"},
        "local": {"command": "mcp-server-time"},
    },
}


def setup(tmp_path: Path) -> tuple[Path, Path]:
    config = tmp_path / "servers.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    return config, tmp_path / "runs.db"


def test_status_tells_each_oauth_servers_state_and_never_a_secret(tmp_path: Path) -> None:
    config, db = setup(tmp_path)
    before = cli("auth", "status", "-c", str(config), "--db", str(db), "--json")
    assert before.returncode == 0, before.stderr
    states = {r["server"]: r["state"] for r in json.loads(before.stdout)}
    assert states == {"notes": "not logged in", "batch": "no token yet (fetched at first use)"}

    store = TokenStore(tmp_path / "runs.tokens.db")
    store.save(
        "notes",
        "https://notes.example.com/mcp",
        tokens={"access_token": "AT-123", "refresh_token": "RT-456", "scope": "read"},
        expires_at=time.time() - 10,
    )
    store.save(
        "batch",
        "https://batch.example.com/mcp",
        tokens={"access_token": "AT-789"},
        expires_at=time.time() + 3600,
    )
    assert stat.S_IMODE((tmp_path / "runs.tokens.db").stat().st_mode) == 0o600
    after = cli("auth", "status", "-c", str(config), "--db", str(db), "--json")
    records = {r["server"]: r for r in json.loads(after.stdout)}
    assert records["notes"]["state"] == "expired, refreshed at next use"
    assert records["notes"]["scope"] == "read" and records["notes"]["refreshable"]
    assert records["batch"]["state"] == "logged in"
    table = cli("auth", "status", "-c", str(config), "--db", str(db))
    assert table.returncode == 0 and "expired, refreshed at next use" in table.stdout
    for shown in (after.stdout + after.stderr, table.stdout + table.stderr):
        assert not any(s in shown for s in ("AT-123", "RT-456", "AT-789", "s3cret"))


def test_logout_forgets_the_tokens_and_registration(tmp_path: Path) -> None:
    config, db = setup(tmp_path)
    store = TokenStore(tmp_path / "runs.tokens.db")
    store.save("notes", "https://notes.example.com/mcp", tokens={"access_token": "A"})
    out = cli("auth", "logout", "notes", "-c", str(config), "--db", str(db))
    assert out.returncode == 0 and "forgot the tokens of 'notes'" in out.stdout
    assert store.load("notes") is None
    again = cli("auth", "logout", "notes", "-c", str(config), "--db", str(db))
    assert again.returncode == 0 and "nothing kept for 'notes'" in again.stdout


def test_login_refuses_what_it_cannot_log_in_to_in_one_line(tmp_path: Path) -> None:
    config, db = setup(tmp_path)
    cases = {
        "nowhere": "unknown MCP server 'nowhere' (configured servers: batch, local, notes, plain)",
        "plain": "MCP server 'plain' has no `auth:` block: give its entry one "
        "(docs/authorization.md) to log in to it",
        "local": "MCP server 'local' is a stdio server: OAuth is for HTTP servers",
    }
    for server, told in cases.items():
        out = cli("auth", "login", server, "-c", str(config), "--db", str(db))
        assert out.returncode == 2, out.stderr
        assert told in " ".join(out.stderr.split())
        assert "Traceback" not in out.stderr
    memory = cli("auth", "login", "notes", "-c", str(config), "--db", ":memory:")
    assert memory.returncode == 2 and "keeps no tokens" in memory.stderr


def test_the_conformance_clients_leak_check_finds_a_leaked_token(tmp_path: Path) -> None:
    """The check every authorized conformance run ends with can fail: a token written anywhere
    but the token database is found."""
    from tests.conformance.client import secrets_leaked

    TokenStore(tmp_path / "run.tokens.db").save(
        "conf", "http://x/mcp", tokens={"access_token": "tok-123", "refresh_token": "ref-456"}
    )
    (tmp_path / "audit.jsonl").write_text('{"ok": true}\n')
    (tmp_path / "config.json").write_text('{"client_secret": "given-secret"}')
    assert secrets_leaked(tmp_path, {"given-secret"}) == []
    (tmp_path / "run.db").write_bytes(b"...ref-456...")
    (tmp_path / "audit.jsonl").write_text('{"arg": "given-secret"}\n')
    assert sorted(secrets_leaked(tmp_path, {"given-secret"})) == ["audit.jsonl", "run.db"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes], within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "the OAuth test server exited"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError("the OAuth test server did not start listening")


def test_login_once_then_runs_refresh_the_kept_token(tmp_path: Path) -> None:
    """Against the MCP SDK's own authorization and resource server: `auth login` registers and
    authorizes once; a later run whose kept token has expired refreshes it (no new
    authorization, no browser) and keeps the new one, still in a file only its owner reads."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "hybridmcp.testing.oauth_server", str(port)],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(port, server)
        config = tmp_path / "servers.yaml"
        user_agent = Path(__file__).parents[1] / "conformance" / "user_agent.py"
        config.write_text(
            yaml.safe_dump(
                {
                    "builtin_skills": False,
                    "mcpServers": {
                        "notes": {
                            "url": f"http://127.0.0.1:{port}/mcp",
                            "auth": {
                                "redirect_uri": f"http://127.0.0.1:{_free_port()}/callback",
                                "browser": f"{sys.executable} {user_agent}",
                            },
                        }
                    },
                }
            )
        )
        db = str(tmp_path / "runs.db")
        login = cli("auth", "login", "notes", "-c", str(config), "--db", db)
        assert login.returncode == 0, login.stderr
        assert "logged in to MCP server 'notes' (1 tools)" in login.stdout
        assert "refreshable" in login.stdout

        store = TokenStore(tmp_path / "runs.tokens.db")
        kept = store.load("notes")
        assert kept is not None and kept.tokens is not None
        first = kept.tokens["access_token"]
        store.save("notes", kept.url, tokens=kept.tokens, expires_at=time.time() - 1)

        task = tmp_path / "task.json"
        task.write_text(json.dumps({"requests": [{"id": "w", "skill": "notes.whoami"}]}))
        run = cli("run", str(task), "-c", str(config), "--db", db, "--json")
        assert run.returncode == 0, run.stderr
        [result] = json.loads(run.stdout)["results"]
        assert result["value"] == {
            "registrations": 1,
            "authorizations": 1,
            "code_exchanges": 1,
            "refreshes": 1,
        }
        renewed = store.load("notes")
        assert renewed is not None and renewed.tokens is not None
        assert renewed.tokens["access_token"] != first
        assert renewed.expires_at is not None and renewed.expires_at > time.time()
        assert stat.S_IMODE((tmp_path / "runs.tokens.db").stat().st_mode) == 0o600
        assert first not in run.stdout + run.stderr + login.stdout + login.stderr
    finally:
        server.terminate()
        server.wait(timeout=10)

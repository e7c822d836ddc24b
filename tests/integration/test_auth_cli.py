"""``hybridmcp auth status / login / logout``: the user's view of kept tokens (no server is
contacted by status or logout; login's refusals are checked before any network)."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import yaml

from hybridmcp.oauth import TokenStore
from tests.integration.test_durable import cli

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
        "plain": "MCP server 'plain' has no `auth:` block",
        "local": "MCP server 'local' has no `auth:` block",
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

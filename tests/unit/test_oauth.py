"""OAuth configuration, token storage, the user's step and what a failed open says."""

from __future__ import annotations

import asyncio
import socket
import stat
import sys
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from pydantic import AnyUrl

from hybridmcp.config import HttpServer, parse_config
from hybridmcp.errors import ConfigError
from hybridmcp.oauth import (
    AuthenticationRequired,
    AuthorizationError,
    OAuthSessions,
    ServerTokens,
    TokenStore,
    _scope_union,
    _UserStep,
    auth_problem,
    build_auth,
    refused_mid_call,
)
from hybridmcp.persistence import tokens_path


def server(auth: dict | None = None, url: str = "https://mcp.example.com/mcp") -> HttpServer:
    entry: dict = {"url": url}
    if auth is not None:
        entry["auth"] = auth
    found = parse_config({"mcpServers": {"s": entry}}).mcpServers["s"]
    assert isinstance(found, HttpServer)
    return found


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "named"),
    [
        ({"grant": "client_credentials", "client_secret": "x"}, "needs client_id"),
        ({"grant": "client_credentials", "client_id": "c"}, "needs a client secret"),
        (
            {
                "grant": "client_credentials",
                "client_id": "c",
                "client_secret": "x",
                "private_key_file": "k.pem",
            },
            "and not both",
        ),
        ({"private_key_file": "k.pem"}, "private_key_file is for grant client_credentials"),
        ({"client_secret": "a", "client_secret_env": "B"}, "not both"),
        ({"redirect_uri": "myapp:/callback"}, "redirect_uri must be an http(s) URL"),
        ({"client_metadata_url": "http://x.example/c.json"}, "must be an https:// URL"),
        ({"grant": "password"}, "auth.grant"),
        ({"scope": "a", "colour": "red"}, "auth.colour"),
    ],
)
def test_a_bad_auth_block_is_refused_naming_the_problem(auth: dict, named: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"mcpServers": {"s": {"url": "https://x.example/mcp", "auth": auth}}})
    assert named in str(err.value)
    assert "mcpServers.s" in str(err.value)


def test_a_stdio_server_takes_no_auth_block() -> None:
    """Like any key of the other kind of server: ignored, with one warning naming it."""
    cfg = parse_config({"mcpServers": {"s": {"command": "x", "auth": {}}}})
    assert not hasattr(cfg.mcpServers["s"], "auth")
    assert len(cfg.warnings) == 1 and "mcpServers.s.auth" in cfg.warnings[0]
    assert "a key of HTTP servers" in cfg.warnings[0]


def test_the_secret_comes_from_the_environment_when_so_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entry = server({"client_id": "c", "client_secret_env": "HYBRIDMCP_TEST_SECRET"})
    assert entry.auth is not None
    with pytest.raises(ConfigError, match="HYBRIDMCP_TEST_SECRET"):
        entry.auth.secret()
    monkeypatch.setenv("HYBRIDMCP_TEST_SECRET", "s3cret")
    assert entry.auth.secret() == "s3cret"


def test_a_secret_in_the_configuration_is_not_shown() -> None:
    entry = server({"client_id": "c", "client_secret": "s3cret"})
    assert "s3cret" not in repr(entry) and "s3cret" not in str(entry.model_dump())


@pytest.mark.parametrize(
    ("uri", "loopback"),
    [
        ("http://localhost:33418/callback", ("localhost", 33418, "/callback")),
        ("http://127.0.0.1/cb", ("127.0.0.1", 80, "/cb")),
        ("http://[::1]:9000/", ("::1", 9000, "/")),
        ("https://localhost:9000/cb", None),  # a listener cannot answer https
        ("https://app.example.com/oauth/callback", None),  # pasted back by hand
    ],
)
def test_loopback_redirect_uris_get_a_listener(uri: str, loopback: object) -> None:
    entry = server({"redirect_uri": uri})
    assert entry.auth is not None and entry.auth.loopback() == loopback


def test_tokens_live_beside_the_run_database(tmp_path: Path) -> None:
    assert tokens_path(str(tmp_path / "runs.db")) == tmp_path / "runs.tokens.db"
    assert tokens_path(":memory:") is None


# -- token storage ------------------------------------------------------------------------------


def test_the_token_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "runs.tokens.db"
    store = TokenStore(path)
    store.save("s", "https://x/mcp", tokens={"access_token": "a", "token_type": "Bearer"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)  # made looser by hand: tightened at the next use
    store.load("s")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_tokens_belong_to_the_server_and_its_url(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "t.db")
    store.save("s", "https://a/mcp", tokens={"access_token": "a", "token_type": "Bearer"})
    store.save("s", "https://a/mcp", client_info={"client_id": "c"})
    found = store.load("s", "https://a/mcp")
    assert found is not None and found.tokens == {"access_token": "a", "token_type": "Bearer"}
    assert found.client_info == {"client_id": "c"}  # a registration keeps the tokens
    assert store.load("s", "https://b/mcp") is None  # the entry now points elsewhere
    store.save("s", "https://b/mcp", tokens={"access_token": "b", "token_type": "Bearer"})
    moved = store.load("s")
    assert moved is not None and moved.client_info is None  # nothing carried to another URL


def test_forgetting_keeps_the_registration_unless_asked(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "t.db")
    store.save("s", "u", tokens={"access_token": "a"}, client_info={"client_id": "c"})
    assert store.forget("s") is True
    kept = store.load("s")
    assert kept is not None and kept.tokens is None and kept.client_info == {"client_id": "c"}
    assert store.forget("s") is False
    assert store.forget("s", registration=True) is True
    assert store.load("s") is None and store.all() == []


@settings(max_examples=40, deadline=None)
@given(
    access=st.text(min_size=1, max_size=200),
    refresh=st.none() | st.text(min_size=1, max_size=200),
    scope=st.none() | st.text(max_size=80),
    expires_in=st.none() | st.integers(min_value=0, max_value=10**8),
)
def test_any_token_survives_the_store(
    access: str, refresh: str | None, scope: str | None, expires_in: int | None
) -> None:
    store = TokenStore(None)
    clock = [1_000.0]
    tokens = ServerTokens(store, "s", "https://x/mcp", clock=lambda: clock[0])
    token = OAuthToken(
        access_token=access, refresh_token=refresh, scope=scope, expires_in=expires_in
    )
    asyncio.run(tokens.set_tokens(token))
    clock[0] += 10
    back = asyncio.run(tokens.get_tokens())
    assert back is not None
    assert (back.access_token, back.refresh_token, back.scope) == (access, refresh, scope)
    assert back.expires_in == (None if expires_in is None else max(0, expires_in - 10))


def test_a_restored_token_keeps_its_expiry_so_it_is_refreshed(tmp_path: Path) -> None:
    """A token kept by one process and loaded by the next is seen as expired when it is, so
    the SDK refreshes it instead of replaying it."""
    store = TokenStore(tmp_path / "t.db")
    entry = server({"client_id": "c"})
    provider = build_auth("s", entry, store)
    stored = ServerTokens(store, "s", entry.url)
    asyncio.run(stored.set_tokens(OAuthToken(access_token="a", refresh_token="r", expires_in=-5)))
    asyncio.run(provider._initialize())
    assert not provider.context.is_token_valid()
    assert provider.context.can_refresh_token()


def test_a_preregistered_client_wins_over_a_stored_registration() -> None:
    store = TokenStore(None)
    store.save("s", "u", client_info={"client_id": "dynamic", "redirect_uris": ["http://x/"]})
    mine = OAuthClientInformationFull(client_id="configured", redirect_uris=[AnyUrl("http://x/")])
    tokens = ServerTokens(store, "s", "u", preregistered=mine)
    found = asyncio.run(tokens.get_client_info())
    assert found is not None and found.client_id == "configured"
    asyncio.run(tokens.set_client_info(mine))  # never stored: the configuration holds it
    kept = store.load("s")
    assert kept is not None and kept.client_info == {
        "client_id": "dynamic",
        "redirect_uris": ["http://x/"],
    }


def test_each_grant_builds_the_sdk_provider(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n")
    store = TokenStore(None)
    code = build_auth("s", server({}), store)
    secret = build_auth(
        "s", server({"grant": "client_credentials", "client_id": "c", "client_secret": "x"}), store
    )
    jwt = build_auth(
        "s",
        server({"grant": "client_credentials", "client_id": "c", "private_key_file": str(key)}),
        store,
    )
    assert type(code).__name__ == "_AuthorizationCode"
    assert code.context.client_metadata.grant_types == ["authorization_code", "refresh_token"]
    assert type(secret).__name__ == "_ClientSecret"
    assert type(jwt).__name__ == "_PrivateKeyJWT"
    missing = server(
        {"grant": "client_credentials", "client_id": "c", "private_key_file": "/nonexistent.pem"}
    )
    with pytest.raises(ConfigError, match="private_key_file"):
        build_auth("s", missing, store)
    assert OAuthSessions(store).auth_for("s", server(None)) is None


# -- the user's step ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_outside_login_the_users_step_stops_with_the_command_to_run() -> None:
    entry = server({})
    assert entry.auth is not None
    step = _UserStep("notes", entry.auth, interactive=False, out=sys.stderr)
    with pytest.raises(AuthenticationRequired) as err:
        asyncio.run(step.redirect("https://auth.example.com/authorize?x=1"))
    assert str(err.value) == "needs authentication: run `hybridmcp auth login notes`"


def test_a_refused_step_up_is_told_once_with_its_scope() -> None:
    provider = build_auth("notes", server({}), TokenStore(None))
    assert provider.user_step is not None
    with pytest.raises(AuthenticationRequired):
        asyncio.run(provider.user_step.redirect("https://a.example/authorize?scope=read+write"))
    assert refused_mid_call(provider) == (
        "needs authentication (for scope 'read write'): run `hybridmcp auth login notes`"
    )
    assert refused_mid_call(provider) is None  # taken once
    assert refused_mid_call(None) is None


def test_configured_scopes_are_asked_beside_the_servers() -> None:
    assert _scope_union("mcp:basic", "mcp:write mcp:basic") == "mcp:basic mcp:write"
    assert _scope_union(None, None) is None
    assert _scope_union("a", None) == "a"


def _browser_landing_on(callback_url: str) -> str:
    """A "browser" command that ignores the authorization URL and lands on the callback."""
    code = f"import urllib.request; urllib.request.urlopen({callback_url!r}, timeout=10).read()"
    return f"{sys.executable} -c {code!r}"


def test_the_code_comes_back_to_the_loopback_listener(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    entry = server(
        {
            "redirect_uri": f"http://127.0.0.1:{port}/callback",
            "browser": _browser_landing_on(f"http://127.0.0.1:{port}/callback?code=abc&state=xyz"),
            "login_timeout_s": 30,
        }
    )
    assert entry.auth is not None
    step = _UserStep("notes", entry.auth, interactive=True, out=sys.stderr)

    async def authorize() -> tuple[str, str | None]:
        await step.redirect("https://auth.example.com/authorize?x=1")
        async with httpx.AsyncClient() as client:  # a stray request is not the callback
            assert (await client.get(f"http://127.0.0.1:{port}/favicon.ico")).status_code == 404
        return await step.callback()

    assert asyncio.run(authorize()) == ("abc", "xyz")
    assert "https://auth.example.com/authorize?x=1" in capsys.readouterr().err
    with socket.socket() as again, pytest.raises(ConnectionRefusedError):  # listener gone
        again.connect(("127.0.0.1", port))


def test_a_refusal_at_the_authorization_server_is_told() -> None:
    port = free_port()
    landing = f"http://127.0.0.1:{port}/cb?error=access_denied&error_description=user+said+no"
    entry = server(
        {"redirect_uri": f"http://127.0.0.1:{port}/cb", "browser": _browser_landing_on(landing)}
    )
    assert entry.auth is not None
    step = _UserStep("notes", entry.auth, interactive=True, out=sys.stderr)

    async def authorize() -> tuple[str, str | None]:
        await step.redirect("https://auth.example.com/authorize")
        return await step.callback()

    with pytest.raises(AuthorizationError, match="authorization refused: user said no"):
        asyncio.run(authorize())


def test_no_answer_from_the_browser_times_out() -> None:
    port = free_port()
    entry = server(
        {
            "redirect_uri": f"http://127.0.0.1:{port}/cb",
            "browser": f"{sys.executable} -c pass",
            "login_timeout_s": 0.5,
        }
    )
    assert entry.auth is not None
    step = _UserStep("notes", entry.auth, interactive=True, out=sys.stderr)

    async def authorize() -> tuple[str, str | None]:
        await step.redirect("https://auth.example.com/authorize")
        return await step.callback()

    with pytest.raises(AuthorizationError, match="no answer from the browser within 0.5 s"):
        asyncio.run(authorize())


# -- what a failed open says ----------------------------------------------------------------------


def _unauthorized() -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "https://mcp.example.com/mcp")
    return httpx.HTTPStatusError(
        "401", request=request, response=httpx.Response(401, request=request)
    )


def test_a_401_names_the_command_to_run() -> None:
    group = BaseExceptionGroup("transport", [ExceptionGroup("inner", [_unauthorized()])])
    without = auth_problem("notes", server(None), group)
    assert without is not None and "give its entry an `auth:` block" in without
    assert "hybridmcp auth login notes" in without
    # where OAuth is documented, and the other way a server asks for a key: a header
    assert "docs/authorization.md" in without and "`headers:`" in without
    assert auth_problem("notes", server({}), group) == (
        "needs authentication (HTTP 401): run `hybridmcp auth login notes`"
    )
    wrapped = ExceptionGroup("x", [AuthenticationRequired("notes")])
    assert auth_problem("notes", server({}), wrapped) == (
        "needs authentication: run `hybridmcp auth login notes`"
    )
    assert auth_problem("notes", server({}), ConnectionError("refused")) is None

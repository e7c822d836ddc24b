"""OAuth for HTTP MCP servers: an ``auth:`` block becomes an ``httpx.Auth`` on the connection.

The protocol work is the MCP SDK's (``mcp.client.auth``): protected-resource and
authorization-server metadata discovery (with the path-based and 2025-03-26 fallbacks),
client ID metadata documents, dynamic or pre-registration, PKCE, scope selection and step-up,
the RFC 8707 ``resource`` parameter, refresh, and the client-credentials grant with a client
secret or a private-key JWT. This module supplies what the SDK leaves to the application:

- **where tokens live**: :class:`TokenStore`, a SQLite file of its own beside the run database
  (``<name>.tokens.db``), created with mode 0600 and never part of the checkpointed state or the
  audit trail. A restored token keeps its expiry, so an expired one is refreshed, not replayed;
- **the user's step**: the authorization URL is opened in a browser (or a configured command) and
  the code comes back to a one-shot listener on the loopback redirect URI, or, for any other
  redirect URI, is pasted back by hand. Only ``hybridmcp auth login`` takes that step, unless the
  server's ``authorize_during_run`` is set; anywhere else the open fails with
  :class:`AuthenticationRequired`, whose message names the command to run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
import sqlite3
import sys
import time
import webbrowser
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

import httpx
from mcp.client.auth import OAuthClientProvider, OAuthFlowError, OAuthTokenError
from mcp.client.auth.exceptions import OAuthRegistrationError
from mcp.client.auth.extensions.client_credentials import (
    ClientCredentialsOAuthProvider,
    PrivateKeyJWTOAuthProvider,
    SignedJWTParameters,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl

from hybridmcp.config import HttpServer, OAuthConfig, ServerConfig
from hybridmcp.errors import ConfigError, HybridMCPError

log = logging.getLogger("hybridmcp.oauth")


class AuthenticationRequired(HybridMCPError):
    """A server asked for authorization that only the user can give (``auth login``)."""

    def __init__(self, server: str, why: str = "") -> None:
        self.server = server
        detail = f" ({why})" if why else ""
        super().__init__(f"needs authentication{detail}: run `hybridmcp auth login {server}`")


class AuthorizationError(HybridMCPError):
    """The authorization step failed: refused, timed out, or answered with no code."""


# -- token storage ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredAuth:
    """What is kept for one server: its tokens, their expiry, and the client's registration."""

    server: str
    url: str
    tokens: dict[str, Any] | None
    expires_at: float | None
    client_info: dict[str, Any] | None
    updated_at: float


class TokenStore:
    """Tokens and client registrations per server, in a SQLite file only its owner can read.

    ``path=None`` keeps them in the process (a ``:memory:`` run database). A row belongs to a
    server *and* its URL: a server entry pointed at another URL starts afresh. A connection per
    call, in a worker thread: the store is written from the SDK's auth flow on the event loop.
    """

    TABLE = "hybridmcp_oauth"

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = None if path is None else Path(path).expanduser()
        self._memory: dict[str, StoredAuth] = {}

    def _connect(self) -> sqlite3.Connection:
        assert self.path is not None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
            os.chmod(self.path, 0o600)  # an older file made with a looser mode is tightened
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.TABLE} (server TEXT PRIMARY KEY, "
                "url TEXT NOT NULL, tokens TEXT, expires_at REAL, client_info TEXT, "
                "updated_at REAL NOT NULL)"
            )
        except (OSError, sqlite3.Error) as err:
            raise self._error(err) from None
        return conn

    def _error(self, err: BaseException) -> ConfigError:
        return ConfigError(
            f"token database {str(self.path)!r} cannot be used: {' '.join(str(err).split())} "
            "(choose another run database with --db or $HYBRIDMCP_DB)"
        )

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A connection, closed after the block; a SQLite error in the block (another process
        holding the file past the busy timeout) is one line naming the file."""
        with closing(self._connect()) as conn:
            try:
                yield conn
            except sqlite3.Error as err:
                raise self._error(err) from None

    def load(self, server: str, url: str | None = None) -> StoredAuth | None:
        """The server's row; ``None`` if there is none or it was kept for another URL."""
        if self.path is None:
            found = self._memory.get(server)
        else:
            with self._db() as conn:
                row = conn.execute(
                    f"SELECT server, url, tokens, expires_at, client_info, updated_at "
                    f"FROM {self.TABLE} WHERE server = ?",
                    (server,),
                ).fetchone()
            found = _row(row) if row else None
        if found is None or (url is not None and found.url != url):
            return None
        return found

    def all(self) -> list[StoredAuth]:
        if self.path is None:
            return sorted(self._memory.values(), key=lambda s: s.server)
        if not self.path.exists():
            return []
        with self._db() as conn:
            rows = conn.execute(
                f"SELECT server, url, tokens, expires_at, client_info, updated_at "
                f"FROM {self.TABLE} ORDER BY server"
            ).fetchall()
        return [_row(r) for r in rows]

    def save(
        self,
        server: str,
        url: str,
        *,
        tokens: dict[str, Any] | None = None,
        expires_at: float | None = None,
        client_info: dict[str, Any] | None = None,
    ) -> None:
        """Keep new tokens or a new registration (the other is kept, unless the URL changed)."""
        old = self.load(server, url)
        row = StoredAuth(
            server,
            url,
            tokens if tokens is not None else (old.tokens if old else None),
            expires_at if tokens is not None else (old.expires_at if old else None),
            client_info if client_info is not None else (old.client_info if old else None),
            time.time(),
        )
        self._write(row)

    def forget(self, server: str, *, registration: bool = False) -> bool:
        """Drop the server's tokens (and its registration too); True if there were any."""
        old = self.load(server)
        if old is None or (old.tokens is None and not registration):
            return False
        if registration:
            if self.path is None:
                self._memory.pop(server, None)
            else:
                with self._db() as conn:
                    conn.execute(f"DELETE FROM {self.TABLE} WHERE server = ?", (server,))
            return True
        self._write(StoredAuth(server, old.url, None, None, old.client_info, time.time()))
        return True

    def _write(self, row: StoredAuth) -> None:
        if self.path is None:
            self._memory[row.server] = row
            return
        with self._db() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO {self.TABLE} "
                "(server, url, tokens, expires_at, client_info, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    row.server,
                    row.url,
                    None if row.tokens is None else json.dumps(row.tokens),
                    row.expires_at,
                    None if row.client_info is None else json.dumps(row.client_info),
                    row.updated_at,
                ),
            )


def _row(row: tuple[Any, ...]) -> StoredAuth:
    server, url, tokens, expires_at, client_info, updated_at = row
    return StoredAuth(
        server,
        url,
        json.loads(tokens) if tokens else None,
        expires_at,
        json.loads(client_info) if client_info else None,
        updated_at,
    )


class ServerTokens:
    """The SDK's ``TokenStorage`` for one server, on a :class:`TokenStore`.

    A pre-registered client (``client_id`` in the ``auth:`` block) always wins over a stored
    registration, so editing the configuration takes effect."""

    def __init__(
        self,
        store: TokenStore,
        server: str,
        url: str,
        preregistered: OAuthClientInformationFull | None = None,
        clock: Any = time.time,
    ) -> None:
        self.store, self.server, self.url = store, server, url
        self.preregistered = preregistered
        self.clock = clock

    async def get_tokens(self) -> OAuthToken | None:
        found = await asyncio.to_thread(self.store.load, self.server, self.url)
        if found is None or found.tokens is None:
            return None
        token = OAuthToken.model_validate(found.tokens)
        if found.expires_at is not None:  # what is left of it, so the SDK refreshes in time
            token.expires_in = max(0, int(found.expires_at - self.clock()))
        return token

    async def set_tokens(self, tokens: OAuthToken) -> None:
        expires_at = None if tokens.expires_in is None else self.clock() + tokens.expires_in
        data = tokens.model_dump(mode="json", exclude_none=True)
        await asyncio.to_thread(
            lambda: self.store.save(self.server, self.url, tokens=data, expires_at=expires_at)
        )

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        if self.preregistered is not None:
            return self.preregistered
        found = await asyncio.to_thread(self.store.load, self.server, self.url)
        if found is None or found.client_info is None:
            return None
        return OAuthClientInformationFull.model_validate(found.client_info)

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        if self.preregistered is not None:
            return
        data = client_info.model_dump(mode="json", exclude_none=True)
        await asyncio.to_thread(lambda: self.store.save(self.server, self.url, client_info=data))


# -- the SDK's providers, as the configuration asks ----------------------------------------


class _Provider(OAuthClientProvider):
    """The SDK's provider, with two things of the configuration kept: a token loaded from
    storage keeps its expiry (the SDK would take it as never expiring, replay an expired one and
    re-authorize on the 401 instead of refreshing), and the configured ``scope`` is asked for
    beside the scopes the server names (the SDK would ask for the server's only)."""

    configured_scope: str | None = None
    user_step: _UserStep | None = None

    async def _perform_authorization(self) -> httpx.Request:
        metadata = self.context.client_metadata
        metadata.scope = _scope_union(metadata.scope, self.configured_scope)
        return await super()._perform_authorization()

    async def _initialize(self) -> None:
        await super()._initialize()
        tokens = self.context.current_tokens
        if tokens is not None and tokens.expires_in is not None:
            self.context.update_token_expiry(tokens)


def _scope_union(*scopes: str | None) -> str | None:
    words: list[str] = []
    for scope in scopes:
        words += [w for w in (scope or "").split() if w not in words]
    return " ".join(words) or None


class _AuthorizationCode(_Provider):
    pass


class _ClientSecret(_Provider, ClientCredentialsOAuthProvider):
    pass


class _PrivateKeyJWT(_Provider, PrivateKeyJWTOAuthProvider):
    pass


# -- the user's step ---------------------------------------------------------------------------


class _Callback:
    """A one-shot HTTP listener on the loopback redirect URI: the browser lands here with
    ``?code=...&state=...`` (or ``?error=...``)."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.host, self.port, self.path = host, port, path
        self.answer: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self.port)
        except OSError as err:
            raise AuthorizationError(
                f"cannot listen on the redirect URI's {self.host}:{self.port} ({err.strerror}); "
                "set another port in auth.redirect_uri"
            ) from None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                request = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
            parts = request.decode("latin-1").split()
            target = urlsplit(parts[1]) if len(parts) >= 2 else None
            if target is None or target.path != self.path:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                return
            params = {k: v[0] for k, v in parse_qs(target.query).items()}
            done = "error" not in params
            body = (
                b"hybridmcp: authorized; you may close this window."
                if done
                else b"hybridmcp: authorization was refused."
            )
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            if not self.answer.done():
                self.answer.set_result(params)
        except (TimeoutError, OSError, UnicodeError):
            pass
        finally:
            with contextlib.suppress(Exception):
                await writer.drain()
                writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()


class _UserStep:
    """The SDK's redirect and callback handlers for one server."""

    def __init__(self, server: str, auth: OAuthConfig, interactive: bool, out: TextIO) -> None:
        self.server, self.auth, self.interactive, self.out = server, auth, interactive, out
        self._callback: _Callback | None = None
        self._browser: asyncio.subprocess.Process | None = None
        self.refused: AuthenticationRequired | None = None
        """The last authorization this step refused to ask the user for (outside a login)."""

    async def redirect(self, authorization_url: str) -> None:
        if not (self.interactive or self.auth.authorize_during_run):
            scope = parse_qs(urlsplit(authorization_url).query).get("scope")
            self.refused = AuthenticationRequired(
                self.server, f"for scope {scope[0]!r}" if scope else ""
            )
            raise self.refused
        loopback = self.auth.loopback()
        if loopback is not None:
            self._callback = _Callback(*loopback)
            await self._callback.start()
        print(
            f"Authorize hybridmcp for MCP server {self.server!r} in your browser:\n"
            f"  {authorization_url}",
            file=self.out,
            flush=True,
        )
        await self._open(authorization_url)

    async def _open(self, url: str) -> None:
        if self.auth.browser is None:
            await asyncio.to_thread(webbrowser.open, url)
            return
        self._browser = await asyncio.create_subprocess_exec(
            *shlex.split(self.auth.browser), url, stdin=asyncio.subprocess.DEVNULL
        )

    async def callback(self) -> tuple[str, str | None]:
        try:
            async with asyncio.timeout(self.auth.login_timeout_s):
                if self._callback is not None:
                    params = await self._callback.answer
                else:
                    params = await asyncio.to_thread(self._pasted)
        except TimeoutError:
            raise AuthorizationError(
                f"MCP server {self.server!r}: no answer from the browser within "
                f"{self.auth.login_timeout_s:g} s"
            ) from None
        finally:
            await self._finish()
        if "error" in params:
            why = params.get("error_description") or params["error"]
            raise AuthorizationError(f"MCP server {self.server!r}: authorization refused: {why}")
        if not params.get("code"):
            raise AuthorizationError(f"MCP server {self.server!r}: the redirect carried no code")
        return params["code"], params.get("state")

    def _pasted(self) -> dict[str, str]:
        """The manual step: the user pastes the URL the browser was sent to."""
        print(
            f"Paste the URL your browser was redirected to ({self.auth.redirect_uri}...):",
            file=self.out,
            flush=True,
        )
        line = sys.stdin.readline().strip()
        return {k: v[0] for k, v in parse_qs(urlsplit(line).query).items()}

    async def _finish(self) -> None:
        if self._callback is not None:
            await self._callback.close()
            self._callback = None
        browser, self._browser = self._browser, None
        if browser is not None and browser.returncode is None:
            try:
                await asyncio.wait_for(browser.wait(), 5)
            except TimeoutError:
                browser.kill()
                await browser.wait()


# -- building the httpx.Auth ----------------------------------------------------------------------


class OAuthSessions:
    """The OAuth side of a session pool: one ``httpx.Auth`` per server with an ``auth:`` block,
    on one token store. ``interactive``: the user's step may run (``hybridmcp auth login``)."""

    def __init__(
        self, store: TokenStore, *, interactive: bool = False, out: TextIO | None = None
    ) -> None:
        self.store = store
        self.interactive = interactive
        self.out = out if out is not None else sys.stderr
        quiet_sdk_flow_errors()

    def auth_for(self, name: str, server: ServerConfig) -> httpx.Auth | None:
        if not isinstance(server, HttpServer) or server.auth is None:
            return None
        return build_auth(name, server, self.store, interactive=self.interactive, out=self.out)


def build_auth(
    name: str,
    server: HttpServer,
    store: TokenStore,
    *,
    interactive: bool = False,
    out: TextIO | None = None,
) -> OAuthClientProvider:
    """The SDK provider for the server's ``auth:`` block."""
    auth = server.auth
    assert auth is not None
    if auth.grant == "client_credentials":
        return _client_credentials(name, server.url, auth, store)
    step = _UserStep(name, auth, interactive, out if out is not None else sys.stderr)
    secret = auth.secret()
    method = auth.token_endpoint_auth_method or ("client_secret_basic" if secret else "none")
    redirect = [AnyUrl(auth.redirect_uri)]
    preregistered = None
    if auth.client_id is not None:
        preregistered = OAuthClientInformationFull(
            client_id=auth.client_id,
            client_secret=secret,
            redirect_uris=redirect,
            token_endpoint_auth_method=method,
        )
    metadata = OAuthClientMetadata(
        client_name=auth.client_name,
        redirect_uris=redirect,
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        scope=auth.scope,
        token_endpoint_auth_method=method,
    )
    provider = _AuthorizationCode(
        server_url=server.url,
        client_metadata=metadata,
        storage=ServerTokens(store, name, server.url, preregistered),
        redirect_handler=step.redirect,
        callback_handler=step.callback,
        timeout=auth.login_timeout_s,
        client_metadata_url=auth.client_metadata_url,
    )
    provider.configured_scope = auth.scope
    provider.user_step = step
    return provider


def _client_credentials(
    name: str, url: str, auth: OAuthConfig, store: TokenStore
) -> OAuthClientProvider:
    assert auth.client_id is not None
    storage = ServerTokens(store, name, url)
    if auth.private_key_file is not None:
        try:
            key = Path(auth.private_key_file).expanduser().read_text("utf-8")
        except OSError as err:
            raise ConfigError(
                f"mcpServers.{name}.auth.private_key_file: cannot read "
                f"{auth.private_key_file!r}: {err.strerror}"
            ) from None
        assertion = SignedJWTParameters(
            issuer=auth.client_id,
            subject=auth.client_id,
            signing_key=key,
            signing_algorithm=auth.signing_algorithm,
        ).create_assertion_provider()
        jwt = _PrivateKeyJWT(
            server_url=url,
            storage=storage,
            client_id=auth.client_id,
            assertion_provider=assertion,
            scopes=auth.scope,
            issuer=auth.issuer,
        )
        jwt.configured_scope = auth.scope
        return jwt
    secret = auth.secret()
    assert secret is not None
    method = auth.token_endpoint_auth_method or "client_secret_basic"
    if method not in ("client_secret_basic", "client_secret_post"):
        raise ConfigError(
            f"mcpServers.{name}.auth.token_endpoint_auth_method: {method!r} does not send a "
            "client secret; use client_secret_basic or client_secret_post"
        )
    provider = _ClientSecret(
        server_url=url,
        storage=storage,
        client_id=auth.client_id,
        client_secret=secret,
        token_endpoint_auth_method=method,
        scopes=auth.scope,
        issuer=auth.issuer,
    )
    provider.configured_scope = auth.scope
    return provider


# -- what a failed open says ------------------------------------------------------------


def _leaves(err: BaseException) -> Iterator[BaseException]:
    if isinstance(err, BaseExceptionGroup):
        for inner in err.exceptions:
            yield from _leaves(inner)
        return
    yield err
    if err.__cause__ is not None:
        yield from _leaves(err.__cause__)


def refused_mid_call(auth: httpx.Auth | None) -> str | None:
    """Why a call's connection closed, when it closed because the server asked for more
    authorization (a step-up) that only a login can give; taken once."""
    step = getattr(auth, "user_step", None)
    if not isinstance(step, _UserStep) or step.refused is None:
        return None
    refused, step.refused = step.refused, None
    return str(refused)


def auth_problem(name: str, server: ServerConfig, err: BaseException) -> str | None:
    """What to tell the user when opening a session failed for want of authorization."""
    for leaf in _leaves(err):
        if isinstance(leaf, AuthenticationRequired | AuthorizationError):
            return str(leaf)
        if isinstance(leaf, OAuthFlowError | OAuthTokenError | OAuthRegistrationError):
            return f"authorization failed: {leaf}"
        if isinstance(leaf, httpx.HTTPStatusError) and leaf.response.status_code == 401:
            if isinstance(server, HttpServer) and server.auth is None:
                return (
                    "needs authentication (HTTP 401): give its entry an `auth:` block "
                    f"(docs/authorization.md), then run `hybridmcp auth login {name}`; "
                    "or, for an API key or token, the `headers:` it expects"
                )
            return str(AuthenticationRequired(name, "HTTP 401"))
    return None


_REPORTED = (
    AuthenticationRequired,
    AuthorizationError,
    OAuthFlowError,
    OAuthTokenError,
    OAuthRegistrationError,
)


class _QuietUserStep(logging.Filter):
    """The SDK logs every failed flow with a traceback; the failures :func:`auth_problem`
    reports are told in one line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, _REPORTED)


def quiet_sdk_flow_errors() -> None:
    """Install the filter once (a logging filter is process configuration, not run state)."""
    sdk = logging.getLogger("mcp.client.auth.oauth2")
    if not any(isinstance(f, _QuietUserStep) for f in sdk.filters):
        sdk.addFilter(_QuietUserStep())

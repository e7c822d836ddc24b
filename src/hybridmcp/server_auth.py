"""Access control for the LangGraph server deployment (``langgraph.json`` → ``auth``).

Every request to the served API must carry an API key, as ``x-api-key: KEY`` or
``Authorization: Bearer KEY``. Keys come from ``HYBRIDMCP_API_KEYS``: a comma-separated list of
``name=key`` entries (the name is the caller's identity) or bare keys; a key may be given as
``sha256:<hex digest>`` so the plain key never sits in the server's environment.

With no key configured the server answers only clients on the loopback interface, so
``langgraph dev`` keeps working with no set-up while nothing off the machine gets in; a
deployment reachable from elsewhere (or behind a proxy on the same host) must set keys.

Threads are private to the identity that created them: each thread is stamped with its owner,
and reads, searches, runs and updates only see the caller's own.

Store items are private too: every store call's namespace is moved under ``("user", <identity>)``,
so a caller reads, searches, lists, writes and deletes only its own items. The one exception is
the learned statistics (``stats_store.NAMESPACE``, ``("hybridmcp", "provider_stats")``), which steer
routing: every caller may read them, only the coordinator (which writes them in process, not
through this API) and an admin key (``HYBRIDMCP_ADMIN_KEYS``, same format) may change them.
Keys from ``HYBRIDMCP_ADMIN_KEYS`` are API keys too. Without any key configured (loopback only),
the store is the local user's, unscoped.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langgraph_sdk import Auth

from hybridmcp.errors import ConfigError
from hybridmcp.stats_store import NAMESPACE as STATS_NAMESPACE

ENV_KEYS = "HYBRIDMCP_API_KEYS"
ENV_ADMIN_KEYS = "HYBRIDMCP_ADMIN_KEYS"
LOCAL_IDENTITY = "local"
ADMIN = "admin"
"""Permission of a caller holding an admin key: may change the learned statistics."""
LOCAL = "local"
"""Permission of a loopback caller while no key is configured: the store unscoped."""
USER_PREFIX = "user"
"""First label of every caller's own store namespace: ``("user", identity, ...)``."""


@dataclass(frozen=True)
class ApiKey:
    identity: str
    digest: bytes
    """SHA-256 of the key: keys are compared by digest, in constant time."""


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def parse_keys(spec: str) -> list[ApiKey]:
    """Parse ``HYBRIDMCP_API_KEYS``; a malformed entry is a :class:`ConfigError` naming it."""
    keys: list[ApiKey] = []
    for n, raw in enumerate(spec.split(","), 1):
        entry = raw.strip()
        if not entry:
            continue
        name, sep, key = entry.partition("=")
        if not sep:
            name, key = "", entry
        name, key = name.strip(), key.strip()
        if "." in name:  # the name is a store namespace label, which may hold no period
            raise ConfigError(f"{ENV_KEYS}: entry {n} ({name}=): a name may not contain '.'")
        if not key:
            raise ConfigError(f"{ENV_KEYS}: entry {n} ({name or '?'}=) has an empty key")
        if key.startswith("sha256:"):
            try:
                digest = bytes.fromhex(key.removeprefix("sha256:"))
            except ValueError:
                digest = b""
            if len(digest) != 32:
                raise ConfigError(
                    f"{ENV_KEYS}: entry {n} ({name or 'unnamed'}): 'sha256:' must be followed "
                    "by 64 hex digits"
                )
        else:
            digest = _digest(key)
        identity = name or f"key-{digest.hex()[:8]}"
        keys.append(ApiKey(identity, digest))
    return keys


def presented_key(headers: Mapping[bytes, bytes]) -> str | None:
    """The API key a request carries, from ``x-api-key`` or a bearer ``authorization``."""
    if value := headers.get(b"x-api-key"):
        return value.decode(errors="replace").strip()
    scheme, _, token = headers.get(b"authorization", b"").decode(errors="replace").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def identify(key: str | None, keys: list[ApiKey], client_host: str | None) -> str | None:
    """Who the caller is, or ``None`` to refuse. Pure: the keys and the host are given."""
    if not keys:
        return LOCAL_IDENTITY if _is_loopback(client_host) else None
    if key is None:
        return None
    digest = _digest(key)
    found = None
    for candidate in keys:  # compare with every key, so timing says nothing of which matched
        if hmac.compare_digest(candidate.digest, digest):
            found = candidate.identity
    return found


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def store_namespace(
    namespace: tuple[str, ...] | None, identity: str, permissions: list[str], *, write: bool
) -> tuple[str, ...] | None:
    """The namespace a store call may use, or ``None`` to refuse it. Pure.

    The learned statistics (and namespaces below them) stay where they are: readable by all,
    writable by an admin only. Everything else is moved under the caller's own prefix."""
    ns = tuple(namespace or ())
    if LOCAL in permissions:
        return ns
    if ns[: len(STATS_NAMESPACE)] == STATS_NAMESPACE:
        return ns if (ADMIN in permissions or not write) else None
    return (USER_PREFIX, identity, *ns)


auth = Auth()


def _configured_keys() -> tuple[list[ApiKey], list[ApiKey]]:
    try:
        return parse_keys(os.environ.get(ENV_KEYS, "")), parse_keys(
            os.environ.get(ENV_ADMIN_KEYS, "")
        )
    except ConfigError as err:  # refuse everything rather than run open on a bad setting
        raise Auth.exceptions.HTTPException(status_code=500, detail=str(err)) from None


@auth.authenticate
async def authenticate(request: Any, headers: dict[bytes, bytes]) -> Auth.types.MinimalUserDict:
    keys, admin_keys = _configured_keys()
    client = getattr(request, "client", None)
    host = getattr(client, "host", None)
    key = presented_key(headers)
    if not keys and not admin_keys:
        if identify(key, [], host) is None:
            raise Auth.exceptions.HTTPException(
                status_code=401,
                detail=f"only loopback clients are served while {ENV_KEYS} is unset",
            )
        return {"identity": LOCAL_IDENTITY, "permissions": [LOCAL]}
    if admin_keys and (admin := identify(key, admin_keys, host)) is not None:
        return {"identity": admin, "permissions": [ADMIN]}
    identity = identify(key, keys, host) if keys else None
    if identity is None:
        raise Auth.exceptions.HTTPException(
            status_code=401,
            detail="a valid API key is required (x-api-key or Authorization: Bearer)",
        )
    return {"identity": identity, "permissions": []}


@auth.on.threads
async def own_threads(ctx: Auth.types.AuthContext, value: Any) -> dict[str, str]:
    """Stamp new threads (and runs, whose stateless form makes a thread of its own) with their
    owner; every thread action sees only the caller's threads."""
    owner = {"owner": ctx.user.identity}
    if isinstance(value, dict) and ctx.action in ("create", "create_run"):
        value.setdefault("metadata", {}).update(owner)
    return owner


@auth.on.store
async def own_store(ctx: Auth.types.AuthContext, value: Any) -> None:
    """Scope every store call to its caller; keep the learned statistics read-only to callers
    without an admin key (see :func:`store_namespace`)."""
    if LOCAL in ctx.permissions:
        return
    write = ctx.action in ("put", "delete")
    scoped = store_namespace(
        value.get("namespace"), ctx.user.identity, list(ctx.permissions), write=write
    )
    if scoped is None:
        raise Auth.exceptions.HTTPException(
            status_code=403,
            detail=f"the learned statistics {'/'.join(STATS_NAMESPACE)} are written by the "
            f"coordinator only: changing them needs a key from {ENV_ADMIN_KEYS}",
        )
    value["namespace"] = scoped

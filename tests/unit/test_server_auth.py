"""API-key parsing and caller identification for the server deployment (pure functions)."""

from __future__ import annotations

import hashlib

import pytest

from hybridmcp.errors import ConfigError
from hybridmcp.server_auth import (
    ADMIN,
    LOCAL,
    LOCAL_IDENTITY,
    identify,
    parse_keys,
    presented_key,
    store_namespace,
)


def test_named_bare_and_hashed_keys_identify_their_holder() -> None:
    digest = hashlib.sha256(b"k2").hexdigest()
    keys = parse_keys(f" alice=k1 , bob=sha256:{digest}, k3 ,")
    assert [k.identity for k in keys][:2] == ["alice", "bob"]
    assert keys[2].identity.startswith("key-")
    assert identify("k1", keys, "203.0.113.5") == "alice"
    assert identify("k2", keys, "203.0.113.5") == "bob"
    assert identify("k3", keys, "127.0.0.1") == keys[2].identity
    assert identify(f"sha256:{digest}", keys, "127.0.0.1") is None  # the digest is not the key


@pytest.mark.parametrize("presented", [None, "", "k1 ", "K1", "wrong"])
def test_anything_but_a_configured_key_is_refused_even_from_loopback(presented: str | None) -> None:
    assert identify(presented, parse_keys("alice=k1"), "127.0.0.1") is None


@pytest.mark.parametrize(
    ("host", "served"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("10.0.0.8", False), (None, False)],
)
def test_with_no_keys_only_loopback_clients_are_served(host: str | None, served: bool) -> None:
    assert (identify(None, [], host) == LOCAL_IDENTITY) is served


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("alice=", "entry 1 (alice=) has an empty key"),
        ("a=k, b=sha256:xyz", "entry 2 (b)"),
        ("a=k, al.ice=k2", "entry 2 (al.ice=): a name may not contain '.'"),
    ],
)
def test_malformed_key_settings_name_the_entry(spec: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)")):
        parse_keys(spec)


def test_the_key_is_read_from_x_api_key_or_a_bearer_token() -> None:
    assert presented_key({b"x-api-key": b" k1 "}) == "k1"
    assert presented_key({b"authorization": b"Bearer k2"}) == "k2"
    assert presented_key({b"authorization": b"Basic k2"}) is None
    assert presented_key({}) is None


STATS = ("hybridmcp", "provider_stats")


@pytest.mark.parametrize(
    ("namespace", "permissions", "write", "expected"),
    [
        (("notes",), [], False, ("user", "alice", "notes")),
        (("notes",), [], True, ("user", "alice", "notes")),
        ((), [], False, ("user", "alice")),
        (None, [], False, ("user", "alice")),  # list_namespaces with no prefix
        (("user", "bob"), [], False, ("user", "alice", "user", "bob")),  # never another's
        (("hybridmcp",), [], False, ("user", "alice", "hybridmcp")),
        (STATS, [], False, STATS),  # the learned statistics: read by all
        ((*STATS, "x"), [], False, (*STATS, "x")),
        (STATS, [], True, None),  # ... written by no caller
        ((*STATS, "x"), [], True, None),
        (STATS, [ADMIN], True, STATS),  # but an admin
        (("notes",), [ADMIN], True, ("user", "alice", "notes")),
        (("notes",), [LOCAL], True, ("notes",)),  # no keys configured: the local user's store
    ],
)
def test_store_calls_are_scoped_to_their_caller_and_the_statistics_are_read_only(
    namespace: tuple[str, ...] | None,
    permissions: list[str],
    write: bool,
    expected: tuple[str, ...] | None,
) -> None:
    assert store_namespace(namespace, "alice", permissions, write=write) == expected

"""Third-party stdio servers reached over streamable HTTP and SSE through ``mcp-proxy`` (PyPI),
the bridge users put in front of a stdio server to share it: ``mcp-server-sqlite`` (writes
counted as rows in its database file) and ``mcp-server-calculator`` (cross-validated against an
internal twin). The proxy is restarted mid-run, between calls and under a call, and the server
behind it dies while the proxy stays up. Judgement reads each transport as it reads stdio: a
restart between calls costs nothing and blames no one; a call cut by it is the server's, and a
write cut by it is never made again.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from langgraph.store.memory import InMemoryStore

from hybridmcp import Coordinator, parse_task
from hybridmcp.capabilities.mcp_pool import resolve_command
from hybridmcp.config import parse_config
from hybridmcp.stats_store import all_stats
from hybridmcp.testing.harness import child_processes, free_port
from tests.integration.test_effects_third_party import rows, sqlite_db

pytestmark = pytest.mark.integration
PROXY = resolve_command("mcp-proxy")
SQLITE = resolve_command("mcp-server-sqlite")
CALCULATOR = resolve_command("mcp-server-calculator")
requires_proxy = pytest.mark.skipif(
    shutil.which(PROXY) is None or shutil.which(SQLITE) is None,
    reason="needs mcp-proxy and mcp-server-sqlite (pip install -e '.[test]')",
)
TRANSPORTS = ["streamable_http", "sse"]
OUTER_S = 120


class Proxy:
    """``mcp-proxy`` serving one stdio server on a port of its own, started again on the same
    port at will (a new server process behind it each time)."""

    def __init__(self, *command: str) -> None:
        self.command = command
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None

    def url(self, transport: str) -> str:
        return f"http://127.0.0.1:{self.port}/{'mcp' if transport == 'streamable_http' else 'sse'}"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            PROXY,
            "--port",
            str(self.port),
            "--",
            *self.command,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.returncode is None, f"mcp-proxy exited with {self.proc.returncode}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise TimeoutError(f"mcp-proxy did not listen on port {self.port}")

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    def server(self) -> int:
        """The stdio server's process behind the proxy."""
        assert self.proc is not None
        (child,) = child_processes(self.proc.pid)
        return child


@asynccontextmanager
async def proxied(*command: str) -> AsyncIterator[Proxy]:
    proxy = Proxy(*command)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


async def until(check: Any, what: str, limit_s: float = 20) -> None:
    """Wait for ``check()`` to hold (the event loop runs meanwhile); fail naming ``what``."""
    deadline = time.monotonic() + limit_s
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.05)


def insert(rid: str, **extra: Any) -> dict[str, Any]:
    query = f"INSERT INTO t (v) VALUES ('{rid}')"
    return {"id": rid, "skill": "sqlite.write_query", "args": {"query": query}, **extra}


def slow_insert(rid: str, n: int) -> dict[str, Any]:
    """An insert that computes for a while (``n`` rows counted) before its row is written."""
    query = (
        f"INSERT INTO t (v) SELECT '{rid}' FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
        f"SELECT x + 1 FROM c WHERE x < {n}) SELECT count(*) FROM c)"
    )
    return {"id": rid, "skill": "sqlite.write_query", "args": {"query": query}}


def sqlite_config(proxy: Proxy, transport: str, **server: Any) -> Any:
    entry = {"transport": transport, "url": proxy.url(transport), "timeout_ms": 10_000}
    return parse_config({"mcpServers": {"sqlite": entry | server}})


async def learned(store: InMemoryStore, provider: str) -> tuple[int, int]:
    stats = {s.provider: s for s in await all_stats(store)}[provider]
    return stats.calls, stats.successes


@requires_proxy
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_proxy_restarted_between_calls_costs_no_call_and_no_blame(tmp_path, transport):
    """The proxy (and the sqlite server behind it) restarted between two runs: the next
    write is made once, on a new session, as if nothing happened; nothing is held against the
    server. Over streamable HTTP the new proxy answers the old session's request with 404 (it
    was failed, ``Session terminated``, on every later call); over SSE the old session's event
    stream ends (its next call was failed as cut mid-call: a write's outcome unknown)."""
    db = sqlite_db(tmp_path / "t.db")
    store = InMemoryStore()
    async with (
        asyncio.timeout(OUTER_S),
        proxied(SQLITE, "--db-path", str(db)) as proxy,
        Coordinator.open(sqlite_config(proxy, transport), store=store) as co,
    ):
        first = await co.run(parse_task([insert("a")]))
        assert first["status"] == "ok", first["results"]
        await proxy.stop()
        await proxy.start()
        if transport == "sse":  # the ended event stream is noticed, before any call
            status = co.resources.pool.status("sqlite")
            await until(lambda: status.replacements >= 1, "the session replaced")
        outs = [await co.run(parse_task([insert(rid)])) for rid in ("b", "c")]
        read = await co.run(
            parse_task(
                [{"id": "n", "skill": "sqlite.read_query", "args": {"query": "SELECT 1 AS one"}}]
            )
        )
    for out in outs:
        (result,) = out["results"].values()
        assert result["status"] == "ok", result
        assert len(result["attempts"]) == 1, result["attempts"]
        assert not [e for e in out["events"] if e["code"] == "EXTERNAL_DEGRADATION_DETECTED"]
    assert read["results"]["n"]["value"] == [{"one": 1}], read["results"]
    assert rows(db) == ["a", "b", "c"]
    assert await learned(store, "mcp:sqlite/write_query") == (3, 3)


@requires_proxy
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_write_cut_by_a_proxy_restart_is_never_made_again(tmp_path, transport):
    """A slow insert in flight when the proxy is killed (its sqlite server with it): the
    connection is lost mid-call, so the write's outcome is unknown and it is not repeated, on
    this server nor anywhere; the server takes the blame for the cut call, and the next run,
    on the proxy started again, is served."""
    db = sqlite_db(tmp_path / "t.db")
    store = InMemoryStore()
    async with (
        asyncio.timeout(OUTER_S),
        proxied(SQLITE, "--db-path", str(db)) as proxy,
        Coordinator.open(sqlite_config(proxy, transport), store=store) as co,
    ):
        assert (await co.run(parse_task([insert("a")])))["status"] == "ok"
        run = asyncio.ensure_future(co.run(parse_task([slow_insert("slow", 50_000_000)])))
        await until(lambda: co.resources.pool.status("sqlite").in_flight == 1, "the call sent")
        server = proxy.server()
        await proxy.stop(signal.SIGKILL)  # the host went down: the proxy and its server
        os.kill(server, signal.SIGKILL)
        out = await run
        await proxy.start()
        after = await co.run(parse_task([insert("b")]))
    (slow,) = out["results"].values()
    assert slow["status"] == "error" and slow["error"].startswith("outcome_unknown"), slow
    assert len(slow["attempts"]) == 1 and slow["attempts"][0]["sent"] is True
    assert [e["outcome"] for e in out["events"] if e["code"] == "WRITE_NOT_REPEATED"] == ["unknown"]
    assert after["results"]["b"]["status"] == "ok", after["results"]
    assert rows(db) == ["a", "b"]
    calls, successes = await learned(store, "mcp:sqlite/write_query")
    assert (calls, successes) == (3, 2)


@requires_proxy
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_write_to_a_proxy_gone_away_moves_to_its_replica(tmp_path, transport):
    """The proxy stopped between calls; the skill's second provider is the same database's
    server over stdio. The next write finds its connection refused, which proves it never
    reached the server: it is not sent, not an unknown outcome, and moves to the replica (it
    was ``outcome_unknown`` over streamable HTTP, the connection "closed mid-call"); over SSE
    the server may be known to be down before the run. One row each, and the proxy is not held
    to have failed a call."""
    db = sqlite_db(tmp_path / "t.db")
    store = InMemoryStore()
    put = {
        "description": "Write to the database.",
        "providers": [
            {"side": "external", "server": "proxied", "tool": "write_query", "quality": 0.99},
            {"side": "external", "server": "local", "tool": "write_query", "quality": 0.1},
        ],
    }
    async with asyncio.timeout(OUTER_S), proxied(SQLITE, "--db-path", str(db)) as proxy:
        entry = {"transport": transport, "url": proxy.url(transport), "timeout_ms": 10_000}
        local = {"command": SQLITE, "args": ["--db-path", str(db)]}
        cfg = parse_config(
            {"mcpServers": {"proxied": entry, "local": local}, "skills": {"db.put": put}}
        )
        async with Coordinator.open(cfg, store=store) as co:
            first = await co.run(parse_task([insert("a") | {"skill": "db.put"}]))
            await proxy.stop()
            second = await co.run(parse_task([insert("b") | {"skill": "db.put"}]))
    assert [a["provider"] for a in first["results"]["a"]["attempts"]] == ["mcp:proxied/write_query"]
    result = second["results"]["b"]
    assert result["status"] == "ok", result
    assert result["served_by"]["provider"] == "mcp:local/write_query", result["attempts"]
    tried = {a["provider"]: a for a in result["attempts"]}
    # over SSE the event stream's end may have the server down before the run (not tried)
    if transport == "streamable_http" or "mcp:proxied/write_query" in tried:
        refused = tried["mcp:proxied/write_query"]
        assert refused["sent"] is False, refused
        if transport == "streamable_http":
            assert "the request was not delivered" in refused["error"], refused
    assert not [e for e in second["events"] if e["code"] == "WRITE_NOT_REPEATED"]
    assert rows(db) == ["a", "b"]
    assert await learned(store, "mcp:proxied/write_query") == (1, 1)

"""The graph served by ``langgraph dev`` from ``langgraph.json``, driven with ``langgraph_sdk``.

The server is the real one (langgraph-cli's in-memory runtime), started on a free loopback port
from the repository root with no set-up beyond ``langgraph.json``; it opens the coordinator's
resources (the real ``mcp-server-time``) lazily in its own process. Everything it started is
stopped at the end.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client

from hybridmcp.testing.harness import langgraph_config_in

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LANGGRAPH = Path(sys.executable).with_name("langgraph")
START_DEADLINE_S = 180.0
RUN_DEADLINE_S = 120.0

REQUESTS = [
    {"id": "calc", "skill": "math.calculate", "args": {"expression": "(17 * 23.5) + 2 ** 10 / 4"}},
    {"id": "now", "skill": "time.now", "args": {"timezone": "Europe/Paris"}, "strategy": "hybrid"},
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (stdio MCP servers run in sessions of their own)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        children = {p for p, ppid in parents.items() if ppid in frontier} - found
        found |= children
        frontier = children
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> set[int]:
    """Stop the server's process group and everything it started; return what outlived it."""
    tree = _descendants(proc.pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        for pid in tree:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (proc.poll() is None or any(_alive(p) for p in tree)):
            time.sleep(0.2)
        if proc.poll() is not None and not any(_alive(p) for p in tree):
            break
    proc.wait(timeout=15)
    return {p for p in tree if _alive(p)}


@contextmanager
def serve(log: Path, *, config: str = "langgraph.json", **env: str) -> Iterator[str]:
    """``langgraph dev`` serving the repository's ``langgraph.json`` on a free port, from a
    fresh directory (its threads and learned statistics start empty); stopped, with everything
    it started, on exit."""
    port = _free_port()
    environ = {**os.environ, "LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false", **env}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *(str(LANGGRAPH), "dev", "--no-browser", "--no-reload"),
                *("--port", str(port), "--host", "127.0.0.1"),
                *("--config", str(langgraph_config_in(log.parent, ROOT, config))),
            ],
            cwd=log.parent,  # the server keeps its threads and store here: fresh per test
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"langgraph dev exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"langgraph dev did not answer /ok in time:\n{log.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        leaked = _stop(proc)
        assert not leaked, f"processes outlived the server: {sorted(leaked)}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(tmp_path_factory.mktemp("langgraph") / "server.log") as url:
        yield url


async def test_server_serves_the_graph_and_coordinates(server: str) -> None:
    client = get_client(url=server)
    async with asyncio.timeout(RUN_DEADLINE_S):
        assistants = await client.assistants.search(graph_id="hybridmcp")
        assert assistants, "langgraph.json's graph is not registered"
        assistant = assistants[0]["assistant_id"]
        thread = await client.threads.create()
        out = await client.runs.wait(thread["thread_id"], assistant, input={"requests": REQUESTS})
    assert out["status"] == "ok", out
    assert out["results"]["calc"]["value"] == {"value": 655.5}
    now = out["results"]["now"]
    assert now["allocation"] == "hybrid" and now["agreement"] is True, now
    assert {a["side"] for a in now["attempts"]} == {"internal", "external"}
    assert set(out) >= {"status", "results", "conflicts", "events", "quality", "metrics"}
    assert "pending" not in out  # the output schema, not the internal state


async def test_server_streams_updates_and_a_second_run_reuses_its_resources(server: str) -> None:
    client = get_client(url=server)
    updates: list[str] = []
    custom: list[dict] = []
    async with asyncio.timeout(RUN_DEADLINE_S):
        for _ in range(2):  # the MCP session opened by an earlier run serves the next one
            async for part in client.runs.stream(
                None,
                "hybridmcp",
                input={"requests": REQUESTS},
                stream_mode=["updates", "custom"],
            ):
                if part.event == "updates":
                    updates.extend(part.data)
                elif part.event == "custom":
                    custom.append(part.data)
                elif part.event == "error":
                    pytest.fail(f"run failed on the server: {part.data}")
        thread = await client.threads.create()
        out = await client.runs.wait(thread["thread_id"], "hybridmcp", input={"requests": REQUESTS})
    for node in ("assess", "internal", "external", "settle"):
        assert node in updates
    assert updates.count("settle") == 2
    phases = {(e["node"], e["status"]) for e in custom if e["type"] == "phase"}
    for phase in ("analyze", "arbitrate", "monitor", "synchronize", "learn"):
        assert (phase, "finished") in phases
    finished = [e for e in custom if e["type"] == "attempt" and e["status"] == "finished"]
    assert len(finished) == 6 and all(e["ok"] for e in finished)  # 3 attempts per run
    assert out["status"] == "ok" and out["results"]["now"]["agreement"] is True


async def test_studio_sees_the_graph_its_schemas_and_a_threads_state(server: str) -> None:
    """What Studio reads through the server's factory (``hybridmcp.server_graph``): the graph's
    nodes, its input and output schemas (no internal key), and a thread's state and history,
    all plain JSON."""
    client = get_client(url=server)
    async with asyncio.timeout(RUN_DEADLINE_S):
        [assistant] = await client.assistants.search(graph_id="hybridmcp")
        drawn = await client.assistants.get_graph(assistant["assistant_id"])
        schemas = await client.assistants.get_schemas(assistant["assistant_id"])
        thread = (await client.threads.create())["thread_id"]
        await client.runs.wait(thread, "hybridmcp", input={"requests": REQUESTS[:1]})
        state = await client.threads.get_state(thread)
        history = await client.threads.get_history(thread)
    nodes = {n["id"] for n in drawn["nodes"]}
    assert nodes >= {"assess", "internal", "external", "settle", "reallocate", "review"}, nodes
    assert schemas["input_schema"] is not None, "the server could not build the input schema"
    assert set(schemas["input_schema"]["properties"]) == {"requests", "constraints", "run_id"}
    output = schemas["output_schema"]["properties"]
    assert set(output) >= {"status", "results", "events"} and "pending" not in output
    assert state["values"]["status"] == "ok" and not state["next"]
    assert len(history) >= 3 and json.dumps(history, allow_nan=False)


async def test_bad_input_over_the_api_is_one_line_and_the_thread_goes_on(server: str) -> None:
    """The server's API takes the graph's input unchecked: input of the wrong shape ends the
    run with one line naming what is wrong (shown to the client: not "An internal error
    occurred"), a configuration that does not load too; the thread then takes a good run."""
    client = get_client(url=server)
    async with asyncio.timeout(RUN_DEADLINE_S):
        thread = (await client.threads.create())["thread_id"]
        bad = [
            (
                {"requests": REQUESTS[:1]},
                {"config_path": "/nonexistent/hybridmcp.yaml"},
                "ConfigError",
                "/nonexistent/hybridmcp.yaml",
            ),
            ({"requests": "calc"}, None, "TaskError", "graph input: 'requests' must be a list"),
            (
                {"requests": [{"id": "a", "skill": "math.calculate"}] * 2},
                None,
                "TaskError",
                "graph input: duplicate request id 'a' (requests[0] and [1])",
            ),
            (
                {"requests": REQUESTS[:1], "constraints": {"deadline_ms": "soon"}},
                None,
                "TaskError",
                "graph input: constraints.deadline_ms",
            ),
        ]
        for given, context, kind, says in bad:
            out = await client.runs.wait(
                thread, "hybridmcp", input=given, context=context, raise_error=False
            )
            error = out["__error__"]
            assert error["error"] == kind and says in error["message"], error
            assert "\n" not in error["message"], error
        # The thread keeps the constraints an earlier input gave (LangGraph's state): the bad
        # ones still hold, and the error says how to lift them.
        out = await client.runs.wait(
            thread, "hybridmcp", input={"requests": REQUESTS[:1]}, raise_error=False
        )
        assert "give valid ones (or {}) with the next input" in out["__error__"]["message"]
        good = {"requests": REQUESTS[:1], "constraints": {}}
        out = await client.runs.wait(thread, "hybridmcp", input=good)
    assert out["status"] == "ok" and out["results"]["calc"]["value"] == {"value": 655.5}, out


def test_the_server_client_example(server: str) -> None:
    example = ROOT / "examples" / "server_client.py"
    proc = subprocess.run(
        [sys.executable, str(example), server],
        capture_output=True,
        text=True,
        timeout=RUN_DEADLINE_S,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "phase arbitrate done" in proc.stdout and "status: ok" in proc.stdout
    assert '  total: {"value": 655.5} (internal, single side)' in proc.stdout
    assert "  paris: " in proc.stdout and "(hybrid, agreed)" in proc.stdout


REVIEW_CONFIG = """
coordination_config: {interrupt_on_conflict: true}
mcpServers:
  time: {command: mcp-server-time, args: ["--local-timezone", "UTC"]}
skills:
  clock.now:
    input_schema: {type: object, properties: {timezone: {type: string}}, required: [timezone]}
    comparator:
      type: fields
      fields: {timezone: {type: exact}, datetime: {type: datetime, tolerance: 5}}
    providers:
      - {side: internal, function: "tests.helpers:wrong_time"}
      - {side: external, server: time, tool: get_current_time}
"""


async def test_a_conflict_pauses_on_the_server_and_resumes_with_a_command(tmp_path: Path) -> None:
    """What Studio does: the run stops at the review interrupt; a resume command finishes it."""
    config = tmp_path / "review.yaml"
    config.write_text(REVIEW_CONFIG)
    request = {"id": "now", "skill": "clock.now", "args": {"timezone": "UTC"}, "critical": True}
    env = {"HYBRIDMCP_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    with serve(tmp_path / "server.log", **env) as url:
        client = get_client(url=url)
        async with asyncio.timeout(RUN_DEADLINE_S):
            thread = (await client.threads.create())["thread_id"]
            paused = await client.runs.wait(thread, "hybridmcp", input={"requests": [request]})
            [interrupt] = paused["__interrupt__"]
            [conflict] = interrupt["value"]["conflicts"]
            assert conflict["request_id"] == "now" and set(conflict["values"]) == {
                "internal",
                "external",
            }
            state = await client.threads.get_state(thread)
            assert state["next"] == ["review"]
            out = await client.runs.wait(
                thread, "hybridmcp", command={"resume": {"now": "external"}}
            )
    assert "__interrupt__" not in out
    assert out["status"] == "ok"
    assert out["results"]["now"]["value"] == conflict["values"]["external"]
    assert out["results"]["now"]["resolution"] == {"by": "human", "choice": "external"}


async def test_the_server_refuses_requests_without_a_valid_api_key(tmp_path: Path) -> None:
    """With keys configured every API call needs one, and threads stay private to their owner."""
    alice_name, bob_name = f"alice-{uuid.uuid4().hex[:8]}", f"bob-{uuid.uuid4().hex[:8]}"
    bob_digest = hashlib.sha256(b"bob-key").hexdigest()
    keys = f"{alice_name}=alice-key, {bob_name}=sha256:{bob_digest}"
    with serve(tmp_path / "server.log", HYBRIDMCP_API_KEYS=keys) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            for headers in ({}, {"x-api-key": "wrong"}, {"authorization": "Bearer wrong"}):
                refused = await http.post("/threads", json={}, headers=headers)
                assert refused.status_code == 401, refused.text
                assert "API key" in refused.json()["detail"]
            assert (await http.post("/assistants/search", json={})).status_code == 401
        alice = get_client(url=url, api_key="alice-key")
        bob = get_client(url=url, headers={"authorization": "Bearer bob-key"})
        async with asyncio.timeout(RUN_DEADLINE_S):
            thread = (await alice.threads.create())["thread_id"]
            out = await alice.runs.wait(thread, "hybridmcp", input={"requests": REQUESTS[:1]})
            assert out["status"] == "ok" and out["results"]["calc"]["value"] == {"value": 655.5}
            assert [t["thread_id"] for t in await alice.threads.search()] == [thread]
            assert await bob.threads.search() == []
            with pytest.raises(httpx.HTTPStatusError) as hidden:
                await bob.threads.get(thread)
            assert hidden.value.response.status_code == 404
            stateless = await bob.runs.wait(None, "hybridmcp", input={"requests": REQUESTS[:1]})
            assert stateless["status"] == "ok"


async def test_store_items_are_private_per_key_and_the_statistics_read_only(
    tmp_path: Path,
) -> None:
    """Two API keys and an admin key: each caller's store items are its own; the learned
    statistics, written by the coordinator, are read by both callers and changed by neither."""
    stats = ["hybridmcp", "provider_stats"]
    keys = "alice=alice-key, bob=bob-key"
    with serve(
        tmp_path / "server.log", HYBRIDMCP_API_KEYS=keys, HYBRIDMCP_ADMIN_KEYS="ops=ops-key"
    ) as url:
        alice = get_client(url=url, api_key="alice-key")
        bob = get_client(url=url, api_key="bob-key")
        ops = get_client(url=url, api_key="ops-key")
        async with asyncio.timeout(RUN_DEADLINE_S):
            out = await alice.runs.wait(None, "hybridmcp", input={"requests": REQUESTS[:1]})
            assert out["status"] == "ok"
            learned = await bob.store.search_items(stats)
            assert learned["items"], "the coordinator's statistics are readable by every caller"
            assert learned == await alice.store.search_items(stats)
            item = learned["items"][0]

            await alice.store.put_item(["notes"], "n1", {"text": "alice's"})
            assert (await alice.store.get_item(["notes"], "n1"))["value"] == {"text": "alice's"}
            assert await bob.store.get_item(["notes"], "n1") is None
            assert (await bob.store.search_items(["notes"]))["items"] == []
            assert (await bob.store.search_items([]))["items"] == []
            assert await bob.store.get_item(["user", "alice", "notes"], "n1") is None
            await bob.store.put_item(["notes"], "n1", {"text": "bob's"})  # his own item
            await bob.store.delete_item(["notes"], "n1")
            assert (await alice.store.get_item(["notes"], "n1"))["value"] == {"text": "alice's"}
            listed = (await bob.store.list_namespaces())["namespaces"]
            assert all(ns[:2] == ["user", "bob"] for ns in listed), listed

            for caller in (alice, bob):
                for write in (
                    caller.store.put_item(stats, item["key"], {"calls": 10**6}),
                    caller.store.delete_item(stats, item["key"]),
                ):
                    with pytest.raises(httpx.HTTPStatusError) as refused:
                        await write
                    assert refused.value.response.status_code == 403
                    assert "HYBRIDMCP_ADMIN_KEYS" in refused.value.response.text
            assert (await bob.store.get_item(stats, item["key"]))["value"] == item["value"]
            await ops.store.put_item(stats, "probe", {"calls": 1})  # an admin may
            assert (await alice.store.get_item(stats, "probe"))["value"] == {"calls": 1}
            await ops.store.delete_item(stats, "probe")


EVERYTHING_DIR = os.environ.get("MCP_EVERYTHING_DIR")


@pytest.mark.skipif(
    not EVERYTHING_DIR or shutil.which("npx") is None,
    reason="needs npx and MCP_EVERYTHING_DIR (npm install --prefix DIR "
    "@modelcontextprotocol/server-everything)",
)
async def test_a_server_started_by_bare_name_works_under_langgraph_dev(tmp_path: Path) -> None:
    """``npx`` is found on PATH without blocking the event loop (LangGraph's blocking-call
    detector rejects ``shutil.which`` there): the server is up and its tool answers."""
    assert EVERYTHING_DIR is not None
    config = tmp_path / "npx.json"
    everything = ["--prefix", EVERYTHING_DIR, "--no-install", "mcp-server-everything"]
    config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "everything": {
                        "command": "npx",
                        "args": everything,
                        "startup_timeout_ms": 60_000,
                        "timeout_ms": 20_000,
                    }
                }
            }
        )
    )
    request = {"id": "e", "skill": "everything.echo", "args": {"message": "bare name"}}
    with serve(tmp_path / "server.log", HYBRIDMCP_CONFIG=str(config)) as url:
        client = get_client(url=url)
        async with asyncio.timeout(RUN_DEADLINE_S):
            thread = (await client.threads.create())["thread_id"]
            out = await client.runs.wait(thread, "hybridmcp", input={"requests": [request]})
    assert out["status"] == "ok", out
    assert "bare name" in json.dumps(out["results"]["e"]["value"])
    assert not [e for e in out["events"] if e["code"] == "SERVER_UNAVAILABLE"]


CHATTY_CONFIG = """
mcpServers:
  chatty: {command: %s, args: [tests/chatty_server.py], elicitation: ask, cwd: %s}
skills:
  place.city: {providers: [{side: external, server: chatty, tool: ask_city}]}
builtin_skills: false
"""


async def test_a_servers_question_pauses_on_the_server_and_resumes_with_the_answer(
    tmp_path: Path,
) -> None:
    """What Studio does with elicitation ``ask``: the run stops at the server's question; a
    resume command with the answer finishes the call."""
    config = tmp_path / "ask.yaml"
    config.write_text(CHATTY_CONFIG % (json.dumps(sys.executable), json.dumps(str(ROOT))))
    path = os.pathsep.join([str(ROOT / "src"), str(ROOT)])  # this checkout's code
    env = {"HYBRIDMCP_CONFIG": str(config), "PYTHONPATH": path}
    with serve(tmp_path / "server.log", **env) as url:
        client = get_client(url=url)
        async with asyncio.timeout(RUN_DEADLINE_S):
            thread = (await client.threads.create())["thread_id"]
            request = {"id": "c", "skill": "place.city", "args": {}}
            paused = await client.runs.wait(thread, "hybridmcp", input={"requests": [request]})
            [interrupt] = paused["__interrupt__"]
            assert interrupt["value"]["type"] == "elicitation"
            assert interrupt["value"]["message"] == "Which city, and how many?"
            out = await client.runs.wait(
                thread, "hybridmcp", command={"resume": {"city": "Porto", "count": 2}}
            )
    assert "__interrupt__" not in out and out["status"] == "ok", out
    assert out["results"]["c"]["value"] == {
        "action": "accept",
        "content": {"city": "Porto", "count": 2},
    }

"""Writes run once (invariant 9) on servers nobody shaped the code around: ``mcp-server-sqlite``
(PyPI; its tools carry no annotations), ``@modelcontextprotocol/server-filesystem`` and
``@modelcontextprotocol/server-memory`` (npm), and FastMCP servers whose annotations are
missing, contradictory or lying. The side effects are counted where they land (rows in the
SQLite file, files on disk, entities in the memory server's file), never from our own records.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langgraph.checkpoint.memory import InMemorySaver

from hybridmcp import Coordinator, parse_task
from hybridmcp.capabilities.mcp_pool import resolve_command
from hybridmcp.config import parse_config
from hybridmcp.stats_store import all_stats
from hybridmcp.testing.harness import child_processes

pytestmark = pytest.mark.integration
SQLITE = resolve_command("mcp-server-sqlite")
requires_sqlite = pytest.mark.skipif(
    shutil.which(SQLITE) is None, reason="needs mcp-server-sqlite (pip install mcp-server-sqlite)"
)


def sqlite_db(path: Path) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (v TEXT)")
    return path


def rows(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [v for (v,) in db.execute("SELECT v FROM t ORDER BY rowid")]


def sqlite_config(db: Path, **server: Any) -> dict[str, Any]:
    return {"mcpServers": {"sqlite": {"command": SQLITE, "args": ["--db-path", str(db)]} | server}}


def insert(rid: str, value: str, **extra: Any) -> dict[str, Any]:
    query = f"INSERT INTO t (v) VALUES ('{value}')"
    return {"id": rid, "skill": "sqlite.write_query", "args": {"query": query}} | extra


@requires_sqlite
async def test_each_run_on_a_thread_makes_its_own_writes(tmp_path):
    """A thread on the LangGraph server takes run after run (each with its own input), as the
    compiled graph does: the second run's write, same request id, is made, and its result is
    its own, not the first run's."""
    db = sqlite_db(tmp_path / "t.db")
    cfg = parse_config(sqlite_config(db))
    async with asyncio.timeout(90), Coordinator.open(cfg, checkpointer=InMemorySaver()) as co:
        outs: list[dict[str, Any]] = []
        runs: list[tuple[str, list[str]]] = []
        for value in ("first", "second", "second"):  # asked twice: written twice
            task = parse_task({"requests": [insert("r1", value)]})
            progress = []
            async for mode, chunk in co.graph.astream(  # as the server streams a run
                co.graph_input(task),
                co.run_config("one-thread"),
                stream_mode=["custom", "values"],
                context=co._context(),
                durability="sync",
            ):
                if mode == "custom":
                    progress.append(chunk)
                else:
                    last = chunk
            outs.append(last)
            finished = [
                p for p in progress if p["type"] == "attempt" and p.get("status") == "finished"
            ]
            assert len(finished) == 1, progress  # this run's one attempt, reported once
            state = (await co.graph.aget_state(co.run_config("one-thread"))).values
            runs.append((state["run_id"], [a["idempotency_key"] for a in state["attempts"]]))
        learned = {s.provider: s.calls for s in await all_stats(co.store)}
    assert learned["mcp:sqlite/write_query"] == 3  # each run learns its own call, once
    assert rows(db) == ["first", "second", "second"]
    for out in outs:
        result = out["results"]["r1"]
        assert result["status"] == "ok" and len(result["attempts"]) == 1, result
        assert not result["attempts"][0].get("replayed"), result
    # each run is a run of its own: its id, its one attempt, its own idempotency key
    assert [run_id for run_id, _ in runs] == ["one-thread", "one-thread#2", "one-thread#3"]
    assert [keys for _, keys in runs] == [
        [json.dumps([run_id, "r1", "mcp:sqlite/write_query", 1], separators=(",", ":"))]
        for run_id, _ in runs
    ], runs


ROOT = str(Path(__file__).resolve().parents[2])
SRC = str(Path(ROOT, "src"))


def annotation_config(journal: Path, tool: str, **provider: Any) -> dict[str, Any]:
    """Two replicas of ``tests.annotation_server`` (one journal), a skill on ``tool`` of each;
    a call times out after 400 ms, after writing when asked to sleep."""
    server = {
        "command": sys.executable,
        "args": ["-m", "tests.annotation_server"],
        "env": {"PYTHONPATH": os.pathsep.join((SRC, ROOT)), "ANNOTATION_JOURNAL": str(journal)},
        "timeout_ms": 400,
    }
    return {
        "mcpServers": {"a": server, "b": server},
        "skills": {
            "note.write": {
                "input_schema": {
                    "type": "object",
                    "properties": {
                        "entry": {"type": "string"},
                        "sleep_ms": {"type": "integer"},
                        "then": {"type": "string"},
                    },
                    "required": ["entry"],
                },
                "providers": [
                    {"side": "external", "server": s, "tool": tool} | provider for s in "ab"
                ],
            }
        },
    }


def journal_lines(journal: Path) -> list[str]:
    return journal.read_text().splitlines() if journal.exists() else []


@pytest.mark.parametrize(
    ("tool", "provider"),
    [
        ("bare", {}),  # no annotations
        ("open_world", {}),  # a hint that says nothing of what it changes
        ("contradictory", {}),  # read-only and destructive
        ("lying", {"effect": "write"}),  # says read-only; config knows better
        ("idempotent_lie", {"effect": "write"}),
    ],
)
async def test_a_write_whose_annotations_are_missing_or_wrong_is_not_moved(
    tmp_path, tool, provider
):
    """Each call writes, then sleeps past its deadline; the skill has a second replica to
    move to. A read would be tried again there (two lines); a write is tried once."""
    journal = tmp_path / "journal.txt"
    cfg = parse_config(annotation_config(journal, tool, **provider))
    requests = [
        {"id": "slow", "skill": "note.write", "args": {"entry": "slow", "sleep_ms": 1500}},
        {"id": "crit", "skill": "note.write", "args": {"entry": "crit"}, "critical": True},
    ]
    async with asyncio.timeout(90), Coordinator.open(cfg) as co:
        out = await co.run(parse_task({"requests": requests}))
        effect = co.resources.registry.get("note.write").effect
    assert sorted(journal_lines(journal)) == [f"{tool} crit", f"{tool} slow"], effect
    assert effect == "write"
    slow, crit = out["results"]["slow"], out["results"]["crit"]
    assert slow["status"] == "error" and slow["error"].startswith("outcome_unknown"), slow
    assert crit["status"] == "ok" and len(crit["attempts"]) == 1, crit


def slow_insert(rid: str, n: int) -> dict[str, Any]:
    """An insert that computes for a while (``n`` rows counted) before its row is written."""
    query = (
        f"INSERT INTO t (v) SELECT '{rid}' FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
        f"SELECT x + 1 FROM c WHERE x < {n}) SELECT count(*) FROM c)"
    )
    return {"id": rid, "skill": "sqlite.write_query", "args": {"query": query}}


@requires_sqlite
@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(kills=st.lists(st.tuples(st.integers(0, 5), st.floats(0.0, 0.5)), min_size=1, max_size=2))
def test_a_run_killed_anywhere_and_resumed_writes_each_row_at_most_once(kills):
    """The CLI (``run --thread --db``) is SIGKILLed at arbitrary points (once ``k`` rows are
    in, ``extra`` seconds later: mid-query, between a write and its checkpoint, between
    steps) and run again on the same thread until it finishes; then once more. Counted in the
    SQLite file: no row twice, every request answered ``ok`` exactly once, and nothing
    written by the extra run."""
    from tests.integration.test_durable import alive, cli, cli_env, wait_for

    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        db = sqlite_db(where / "data.db")
        config, task = where / "c.json", where / "t.json"
        config.write_text(json.dumps(sqlite_config(db, timeout_ms=20_000)))
        requests = [
            slow_insert(f"s{i}", 2_000_000) if i % 2 else insert(f"f{i}", f"f{i}") for i in range(6)
        ]
        task.write_text(json.dumps({"requests": requests}))
        args = ["run", str(task), "--config", str(config), "--db", str(where / "runs.db")]
        args += ["--json", "--thread", "t-1"]
        for k, extra in kills:
            run = subprocess.Popen(
                [sys.executable, "-m", "hybridmcp.cli", *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=cli_env(),
            )
            try:

                def reached(k: int = k, run: subprocess.Popen[bytes] = run) -> bool:
                    return len(rows(db)) >= k or run.poll() is not None

                wait_for(reached, 60, f"{k} rows")
                time.sleep(extra)
                servers = child_processes(run.pid)
                run.kill()
                run.wait(timeout=10)
                wait_for(
                    lambda servers=servers: not any(alive(p) for p in servers),
                    20,
                    "the server to exit",
                )
            finally:
                if run.poll() is None:
                    run.kill()
                run.communicate()
        done = cli(*args)
        assert done.returncode in (0, 1, 3), done.stderr  # ok, failed, partial
        results = {r["id"]: r for r in json.loads(done.stdout)["results"]}
        written = rows(db)
        for request in requests:
            rid, result = request["id"], results[request["id"]]
            assert written.count(rid) <= 1, (rid, written, result)
            if result["status"] == "ok":
                assert written.count(rid) == 1, (rid, written, result)
            else:
                assert result["error"].startswith("outcome_unknown"), result
        again = cli(*args)
        assert again.returncode == done.returncode, again.stderr
        assert rows(db) == written


@requires_sqlite
async def test_a_write_is_never_sent_redacted(tmp_path):
    """Under privacy policy ``redact``, a read receives pseudonyms and gets its answer
    restored; a write would store them, and nothing can restore a stored pseudonym: the write
    is not sent (no provider cleared for it: the request fails, saying why)."""
    db = sqlite_db(tmp_path / "t.db")
    data = sqlite_config(db, clearance="public") | {"privacy": {"policy": "redact"}}
    cfg = parse_config(data)
    task = parse_task(
        {"requests": [insert("mail", "alice@example.com"), insert("plain", "nothing private")]}
    )
    async with asyncio.timeout(60), Coordinator.open(cfg) as co:
        out = await co.run(task)
    assert rows(db) == ["nothing private"]  # no pseudonym stored, no raw value sent
    mail = out["results"]["mail"]
    assert mail["status"] == "error" and "write" in mail["error"], mail
    assert not [a for a in mail["attempts"] if a["sent"]], mail
    assert out["results"]["plain"]["status"] == "ok"


FAULTS = {
    "none": {},
    "late": {"sleep_ms": 1500},  # the deadline passes after the write
    "crash": {"then": "crash"},  # the server dies after the write, mid-call
    "error": {"then": "error"},  # a tool error after the write
}


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    faults=st.lists(
        st.tuples(st.sampled_from(sorted(FAULTS)), st.booleans()), min_size=1, max_size=6
    )
)
def test_a_write_failing_after_it_wrote_is_never_made_again(faults):
    """Requests on an unannotated write tool with two replicas to move to; each call writes,
    then (Hypothesis's choice) answers, passes its deadline, kills its server, or answers
    with a tool error; some are critical (asking for cross-validation). Counted in the
    journal: one line per request, whatever happened after it."""
    with tempfile.TemporaryDirectory() as tmp:
        journal = Path(tmp, "journal.txt")
        cfg = parse_config(annotation_config(journal, "bare"))
        requests = [
            {"id": f"r{i}", "skill": "note.write", "args": {"entry": f"r{i}"} | FAULTS[fault]}
            | ({"critical": True} if critical else {})
            for i, (fault, critical) in enumerate(faults)
        ]

        async def run() -> dict[str, Any]:
            async with asyncio.timeout(90), Coordinator.open(cfg) as co:
                return await co.run(parse_task({"requests": requests}))

        out = asyncio.run(run())
        written = journal_lines(journal)
        crashed = any(fault == "crash" for fault, _ in faults)  # takes the calls beside it
        for i, (fault, _critical) in enumerate(faults):
            result, line = out["results"][f"r{i}"], f"bare r{i}"
            assert written.count(line) <= 1, (result, written)
            assert len([a for a in result["attempts"] if a["sent"]]) <= 1, result
            if result["status"] == "ok":
                assert written.count(line) == 1 and fault == "none", (result, written)
            else:
                assert result["error"].startswith(("outcome_unknown", "write failed")), result
            if not crashed:
                assert written.count(line) == 1, (result, written)
                assert (result["status"] == "ok") == (fault == "none"), result


@requires_sqlite
async def test_identical_writes_asked_several_times_are_each_made(tmp_path):
    """The same write with the same arguments asked five times (plain, critical, hybrid) is
    five calls: nothing takes two requests for one. A write past the run's deadline after it
    was sent is reported ``outcome_unknown`` and made once (the server finishes it)."""
    db = sqlite_db(tmp_path / "t.db")
    cfg = parse_config(sqlite_config(db))
    same = [
        insert("a", "dup"),
        insert("b", "dup"),
        insert("c", "dup", critical=True),
        insert("d", "dup", strategy="hybrid"),
        insert("e", "dup", critical=True, strategy="hybrid"),
    ]
    async with asyncio.timeout(90), Coordinator.open(cfg) as co:
        out = await co.run(parse_task({"requests": same}))
        late = await co.run(
            parse_task(
                {"requests": [slow_insert("late", 3_000_000)], "constraints": {"deadline_ms": 150}}
            )
        )
    assert rows(db).count("dup") == 5
    assert all(r["status"] == "ok" for r in out["results"].values()), out["results"]
    result = late["results"]["late"]
    assert result["status"] == "error" and result["error"].startswith("outcome_unknown"), result
    assert rows(db).count("late") <= 1


async def test_a_write_in_flight_when_its_session_is_replaced_fails_at_once(tmp_path):
    """A write is in flight; another call misses its deadline (the server's loop is held),
    so the next call health-checks the session, gets no answer and replaces it. The write's
    answer can no longer arrive: it fails then (``ServerUnavailableError``, the outcome
    unknown), not at its own deadline, and it is never sent again."""
    from hybridmcp.capabilities.mcp_pool import SessionPool
    from hybridmcp.errors import DeadlineExceededError, ServerUnavailableError
    from tests.integration.test_durable import wait_for

    journal = tmp_path / "journal.txt"
    server = annotation_config(journal, "bare")["mcpServers"]["a"]
    data = {"mcpServers": {"a": server}, "resilience": {"pool": {"ping_timeout_ms": 200}}}
    cfg = parse_config(data)
    async with asyncio.timeout(120), SessionPool(cfg.mcpServers, cfg.resilience.pool) as pool:
        write = asyncio.create_task(
            pool.call_tool("a", "bare", {"entry": "W", "sleep_ms": 2_000}, 60)
        )
        await asyncio.to_thread(wait_for, lambda: journal_lines(journal), 30, "the write")
        with pytest.raises(DeadlineExceededError):  # the session is now suspect
            await pool.call_tool("a", "block", {"ms": 1_500}, 0.1)
        after = await pool.call_tool("a", "bare", {"entry": "Y"}, 30)  # on the new session
        assert not after.isError
        with pytest.raises(ServerUnavailableError):
            await write
        assert pool.status("a").replacements == 1
    assert journal_lines(journal) == ["bare W", "bare Y"]


NODE = shutil.which("node") or "node"


def npm_server(package: str) -> str | None:
    prefix = os.environ.get("MCP_EVERYTHING_DIR")
    entry = Path(prefix or "/nonexistent", f"node_modules/@modelcontextprotocol/{package}")
    return str(entry / "dist/index.js") if (entry / "dist/index.js").exists() else None


requires_npm_servers = pytest.mark.skipif(
    shutil.which("node") is None
    or npm_server("server-filesystem") is None
    or npm_server("server-memory") is None,
    reason="needs node, @modelcontextprotocol/server-filesystem and server-memory "
    "(npm install --prefix DIR ... with MCP_EVERYTHING_DIR=DIR)",
)


@requires_npm_servers
async def test_npm_servers_writes_run_once_counted_on_disk(tmp_path):
    """``server-filesystem`` and ``server-memory`` annotate their tools: writes are classed
    from those annotations, run on one side when critical, and each lands once, as the files
    on disk and the memory server's file say."""
    root, memory = tmp_path / "root", tmp_path / "memory.jsonl"
    root.mkdir()
    env = {"PATH": os.environ["PATH"]}
    cfg = parse_config(
        {
            "mcpServers": {
                "fs": {"command": NODE, "args": [npm_server("server-filesystem"), str(root)]},
                "mem": {
                    "command": NODE,
                    "args": [npm_server("server-memory")],
                    "env": env | {"MEMORY_FILE_PATH": str(memory)},
                },
            }
        }
    )
    note, moved = str(root / "note.txt"), str(root / "moved.txt")
    entities = [
        {"name": f"e{i}", "entityType": "thing", "observations": [f"seen {i}"]} for i in range(3)
    ]
    steps = [
        [{"id": "w", "skill": "fs.write_file", "args": {"path": note, "content": "one\n"}}],
        [
            {
                "id": "edit",
                "skill": "fs.edit_file",
                "args": {"path": note, "edits": [{"oldText": "one", "newText": "one two"}]},
            },
            {"id": "ents", "skill": "mem.create_entities", "args": {"entities": entities}},
        ],
        [
            {"id": "mv", "skill": "fs.move_file", "args": {"source": note, "destination": moved}},
            {
                "id": "obs",
                "skill": "mem.add_observations",
                "args": {"observations": [{"entityName": "e1", "contents": ["again"]}]},
            },
        ],
    ]
    async with asyncio.timeout(120), Coordinator.open(cfg) as co:
        reg = co.resources.registry
        effects = {s: reg.get(s).effect for s in ("fs.write_file", "fs.edit_file", "fs.read_file")}
        effects |= {s: reg.get(s).effect for s in ("mem.create_entities", "mem.read_graph")}
        outs = []
        for step in steps:
            task = parse_task({"requests": [r | {"critical": True} for r in step]})
            outs.append(await co.run(task))
    assert effects == {
        "fs.write_file": "idempotent",
        "fs.edit_file": "write",
        "fs.read_file": "read",
        "mem.create_entities": "write",
        "mem.read_graph": "read",
    }
    for out in outs:
        for rid, result in out["results"].items():
            assert result["status"] == "ok", (rid, result)
            assert len(result["attempts"]) == 1, (rid, result)
    assert sorted(p.name for p in root.iterdir()) == ["moved.txt"]
    assert (root / "moved.txt").read_text() == "one two\n"
    graph = [json.loads(line) for line in memory.read_text().splitlines() if line.strip()]
    stored = {e["name"]: e["observations"] for e in graph if e.get("type") == "entity"}
    assert stored == {"e0": ["seen 0"], "e1": ["seen 1", "again"], "e2": ["seen 2"]}


@requires_sqlite
async def test_a_thread_deleted_and_used_again_makes_its_writes(tmp_path):
    """A thread's checkpoints are deleted (the LangGraph server's thread delete, or its
    ``rollback`` of a run) and the thread id is used again: the new run's write is made; it is
    not taken for the deleted run's (the same request id on the same thread id)."""
    db = sqlite_db(tmp_path / "t.db")
    cfg = parse_config(sqlite_config(db))
    saver = InMemorySaver()
    async with asyncio.timeout(90), Coordinator.open(cfg, checkpointer=saver) as co:
        outs = []
        for value in ("first", "second"):
            task = parse_task({"requests": [insert("r1", value)]})
            outs.append(await co.run(task, thread_id="t"))
            await saver.adelete_thread("t")
    assert rows(db) == ["first", "second"]
    assert all(out["results"]["r1"]["status"] == "ok" for out in outs), outs


def three_at_once(where: Path, runs_db: str | None = None) -> None:
    """Three CLI processes run one task of eight writes on thread ``x`` of one database at
    once; each write lands once in the SQLite file."""
    from tests.integration.test_durable import cli_env

    where.mkdir()
    db = sqlite_db(where / "data.db")
    config, task = where / "c.json", where / "t.json"
    config.write_text(json.dumps(sqlite_config(db, timeout_ms=20_000)))
    requests = [insert(f"r{i}", f"r{i}") for i in range(8)]
    task.write_text(json.dumps({"requests": requests}))
    args = ["run", str(task), "--config", str(config), "--db", runs_db or str(where / "runs.db")]
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "hybridmcp.cli", *args, "--json", "--thread", "x"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli_env(),
        )
        for _ in range(3)
    ]
    outs = [run.communicate(timeout=180) for run in runs]
    written = rows(db)
    for request in requests:
        assert written.count(request["id"]) <= 1, (written, [o[1][-500:] for o in outs])
    assert sorted(set(written)) == sorted(r["id"] for r in requests), written


@requires_sqlite
def test_processes_running_one_thread_at_once_write_once(tmp_path):
    """The same task on the same thread and database, started by three CLI processes at once
    (a command run again while the first still runs): each write lands once in the SQLite
    file, whichever process makes it; the others report it made or its outcome unknown."""
    for trial in range(3):
        three_at_once(tmp_path / f"trial{trial}")


@requires_sqlite
def test_processes_running_one_thread_at_once_write_once_on_postgres(pg_url, tmp_path):
    """As above, the runs' database on PostgreSQL (the dispatch claimed under an advisory
    lock)."""
    three_at_once(tmp_path / "pg", pg_url)


@requires_sqlite
async def test_runs_on_one_server_thread_each_make_their_writes(tmp_path):
    """On ``langgraph dev``: three runs on one thread (the same write asked twice among them),
    then the thread deleted and made again under its id, and one more run. Every write is made
    once per run that asked it, counted in the SQLite file."""
    from langgraph_sdk import get_client

    from tests.integration.test_server import serve

    db = sqlite_db(tmp_path / "t.db")
    config = tmp_path / "sqlite.json"
    config.write_text(json.dumps(sqlite_config(db)))
    with serve(tmp_path / "server.log", HYBRIDMCP_CONFIG=str(config)) as url:
        client = get_client(url=url)
        async with asyncio.timeout(120):
            thread = (await client.threads.create())["thread_id"]
            outs = []
            for value in ("first", "second", "second"):
                task = {"requests": [insert("r1", value)]}
                outs.append(await client.runs.wait(thread, "hybridmcp", input=task))
            await client.threads.delete(thread)
            await client.threads.create(thread_id=thread)
            task = {"requests": [insert("r1", "after delete")]}
            outs.append(await client.runs.wait(thread, "hybridmcp", input=task))
    assert rows(db) == ["first", "second", "second", "after delete"]
    for out in outs:
        result = out["results"]["r1"]
        assert result["status"] == "ok" and len(result["attempts"]) == 1, result


async def test_runs_asked_at_once_on_one_server_thread_run_one_after_another(tmp_path):
    """Why server runs need no thread lock of hybridmcp's: ``langgraph dev`` starts a run on a
    thread only once the thread's running run has ended, whatever the multitask strategy.
    Three runs asked at once on one thread, each a write that sleeps after writing: the
    second (``enqueue``) starts after the first has ended, the third (``reject``) is refused
    while they run; each write asked is made once."""
    from langgraph_sdk import get_client
    from langgraph_sdk.errors import ConflictError

    from tests.integration.test_server import serve

    journal = tmp_path / "journal.txt"
    config = annotation_config(journal, "bare")
    for server in config["mcpServers"].values():
        server["timeout_ms"] = 20_000
    (tmp_path / "notes.json").write_text(json.dumps(config))

    def task(entry: str) -> dict[str, Any]:
        args = {"entry": entry, "sleep_ms": 1000}
        return {"requests": [{"id": "w", "skill": "note.write", "args": args}]}

    with serve(tmp_path / "server.log", HYBRIDMCP_CONFIG=str(tmp_path / "notes.json")) as url:
        client = get_client(url=url)
        async with asyncio.timeout(120):
            thread = (await client.threads.create())["thread_id"]
            first = await client.runs.create(thread, "hybridmcp", input=task("first"))
            second = await client.runs.create(
                thread, "hybridmcp", input=task("second"), multitask_strategy="enqueue"
            )
            with pytest.raises(ConflictError):
                await client.runs.create(
                    thread, "hybridmcp", input=task("third"), multitask_strategy="reject"
                )
            await client.runs.join(thread, first["run_id"])
            await client.runs.join(thread, second["run_id"])
            runs = {r["run_id"]: r for r in await client.runs.list(thread)}
            state = (await client.threads.get_state(thread))["values"]
    assert sorted(journal_lines(journal)) == ["bare first", "bare second"]
    assert runs[first["run_id"]]["status"] == runs[second["run_id"]]["status"] == "success"
    [attempt] = state["attempts"]  # the second run's own (each run starts without the first's)
    assert attempt["ok"] and attempt["value"]["entry"] == "second", attempt
    first_done = runs[first["run_id"]]["updated_at"]  # when the first run ended
    assert datetime.fromtimestamp(attempt["started_at"], UTC) > datetime.fromisoformat(first_done)


@requires_sqlite
async def test_writes_of_threads_whose_ids_run_together_are_each_made(tmp_path):
    """Thread ``tenant1`` asks request ``order:42``, thread ``tenant1:order`` request ``42``:
    joined with colons their calls read alike, and they are two writes all the same."""
    db = sqlite_db(tmp_path / "t.db")
    cfg = parse_config(sqlite_config(db))
    async with asyncio.timeout(60), Coordinator.open(cfg, checkpointer=InMemorySaver()) as co:
        first = await co.run(
            parse_task({"requests": [insert("order:42", "tenant")]}), thread_id="tenant1"
        )
        second = await co.run(
            parse_task({"requests": [insert("42", "order")]}), thread_id="tenant1:order"
        )
    assert rows(db) == ["tenant", "order"]
    assert first["results"]["order:42"]["status"] == "ok"
    assert second["results"]["42"]["status"] == "ok", second["results"]


@requires_sqlite
async def test_a_dispatch_recorded_under_the_idempotency_key_is_still_honoured(tmp_path):
    """A write in flight when a run stopped, recorded the way earlier versions did (under its
    idempotency key): resumed on this version, it is not made again."""
    from hybridmcp.nodes.execute import DISPATCHED

    db = sqlite_db(tmp_path / "t.db")
    cfg = parse_config(sqlite_config(db))
    async with asyncio.timeout(60), Coordinator.open(cfg, checkpointer=InMemorySaver()) as co:
        key = "t:r1:mcp:sqlite/write_query:1"
        await co.store.aput(DISPATCHED, key, {"state": "dispatched", "at": 0.0})
        out = await co.run(parse_task({"requests": [insert("r1", "again")]}), thread_id="t")
    assert rows(db) == []
    result = out["results"]["r1"]
    assert result["status"] == "error" and result["error"].startswith("outcome_unknown"), result

"""The README's claims on two third-party servers nobody shaped the code around, each as a user
installs and configures it (real processes over stdio):

- ``@bytebase/dbhub`` (npm, TypeScript, the mcp 2.x SDK) on a SQLite file: ``execute_sql``
  (annotated destructive: a write) answers JSON text ``{"success": ..., "data": {"rows":
  ...}}``, and a failed statement as ``isError`` with JSON text; ``search_objects`` is a read.
- ``excel-mcp-server`` (PyPI, FastMCP on the mcp 2.x SDK, from its own virtual environment)
  on ``.xlsx`` files: answers as structured content beside their text, read tools annotated
  read-only, write tools destructive.

Reads, writes, the server's own errors blamed on the request, private data in arguments and
answers (what the trail keeps, what a server cleared ``public`` receives), and a write in
flight when the CLI is SIGKILLed: the resumed run does not make it again, and blames nobody.
The effects are counted where they land (rows in the SQLite file, sheets of the workbook).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hybridmcp import Coordinator, parse_config, parse_task
from hybridmcp.capabilities.mcp_pool import resolve_command
from hybridmcp.testing.harness import child_processes
from tests.integration.test_durable import alive, cli, cli_env, wait_for
from tests.privacy_cases import without_digests

pytestmark = pytest.mark.integration

EMAIL = "alice.smith@example.com"
CARD = "4111111111111111"


def dbhub_entry() -> str | None:
    """``@bytebase/dbhub`` as ``npm install --prefix $MCP_EVERYTHING_DIR`` puts it."""
    prefix = os.environ.get("MCP_EVERYTHING_DIR")
    entry = Path(prefix, "node_modules/@bytebase/dbhub/dist/index.js") if prefix else None
    return str(entry) if entry is not None and entry.exists() else None


def excel_command() -> str | None:
    """``excel-mcp-server`` from its own virtual environment (``$HYBRIDMCP_PY_SERVERS``): it is
    built on the mcp 2.x SDK, which hybridmcp's environment (mcp 1.x) cannot hold."""
    prefix = os.environ.get("HYBRIDMCP_PY_SERVERS")
    found = Path(prefix, "bin", "excel-mcp-server") if prefix else None
    return str(found) if found is not None and found.exists() else None


requires_dbhub = pytest.mark.skipif(
    shutil.which("node") is None or dbhub_entry() is None,
    reason="needs node and @bytebase/dbhub (npm install --prefix DIR @bytebase/dbhub with "
    "MCP_EVERYTHING_DIR=DIR; .ci/run does)",
)
requires_excel = pytest.mark.skipif(
    excel_command() is None,
    reason="needs excel-mcp-server in a virtual environment of its own: python -m venv DIR && "
    "DIR/bin/pip install excel-mcp-server, with HYBRIDMCP_PY_SERVERS=DIR",
)


def dbhub_server(db: Path, **extra: Any) -> dict[str, Any]:
    entry = dbhub_entry()
    assert entry is not None
    args = [entry, "--transport", "stdio", "--dsn", f"sqlite://{db}"]
    return {"command": resolve_command("node"), "args": args, "timeout_ms": 30_000} | extra


def excel_server(folder: Path, **extra: Any) -> dict[str, Any]:
    command = excel_command()
    assert command is not None
    args = ["stdio", "--allow-dir", str(folder)]
    return {"command": command, "args": args, "timeout_ms": 30_000} | extra


def sql(rid: str, statement: str) -> dict[str, Any]:
    return {"id": rid, "skill": "db.execute_sql", "args": {"sql": statement}}


def table(db: Path) -> Path:
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT, card TEXT)")
    return db


def people(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute("SELECT email, card FROM people ORDER BY id"))


def external_calls(trail: str, request: str) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in trail.splitlines()]
    return [r for r in records if r["kind"] == "external_call" and r["request_id"] == request]


# -- listing: effect classes from each server's own annotations ------------------------------


@requires_dbhub
@requires_excel
def test_tools_lists_both_servers_with_their_effects(tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    servers = {"db": dbhub_server(table(tmp_path / "d.db")), "xl": excel_server(tmp_path)}
    config.write_text(json.dumps({"mcpServers": servers}))
    proc = cli("tools", "--config", str(config), "--json")
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    effects = {
        s["skill"]: {p["effect"] for p in s["providers"]}
        for s in listed
        if s["skill"].startswith(("db.", "xl."))
    }
    assert effects["db.execute_sql"] == {"write"}  # destructiveHint: true
    assert effects["db.search_objects"] == {"read"}
    assert effects["xl.read_range"] == {"read"} and effects["xl.find_cells"] == {"read"}
    assert effects["xl.write_range"] == {"write"} and effects["xl.create_sheet"] == {"write"}


@requires_dbhub
def test_arguments_the_server_refuses_are_refused_before_anything_runs(tmp_path: Path) -> None:
    """dbhub's schema (zod: ``additionalProperties: false``) is checked when the task is
    read: one line per argument, exit 2, nothing sent (the table stays empty)."""
    db = table(tmp_path / "d.db")
    config, task = tmp_path / "c.json", tmp_path / "t.json"
    config.write_text(json.dumps({"mcpServers": {"db": dbhub_server(db)}}))
    insert = "INSERT INTO people (email) VALUES ('x')"
    requests = [
        {"id": "nums", "skill": "db.execute_sql", "args": {"sql": 42}},
        {"id": "extra", "skill": "db.execute_sql", "args": {"sql": insert, "dry_run": True}},
        sql("fine", insert),
    ]
    task.write_text(json.dumps({"requests": requests}))
    proc = cli("run", str(task), "--config", str(config), "--json")
    assert proc.returncode == 2, proc.stderr
    assert "request 'nums'" in proc.stderr and "42 is not of type 'string'" in proc.stderr
    assert "request 'extra'" in proc.stderr and "'dry_run' was unexpected" in proc.stderr
    assert people(db) == []


# -- dbhub: reads, writes, errors, private data ----------------------------------------------


@requires_dbhub
async def test_dbhub_reads_writes_and_errors_through_the_python_api(tmp_path: Path) -> None:
    """A server cleared for the data takes the write raw and answers the rows back as they
    are stored; a statement the database refuses is the request's error (the provider is
    not blamed); the trail records every call once and keeps no raw value."""
    db = table(tmp_path / "d.db")
    audit = tmp_path / "audit.jsonl"
    config = parse_config(
        {
            "mcpServers": {"db": dbhub_server(db, clearance="restricted")},
            "audit": {"path": str(audit)},
        }
    )
    insert = f"INSERT INTO people (email, card) VALUES ('{EMAIL}', '{CARD}')"
    async with asyncio.timeout(90), Coordinator.open(config) as co:
        wrote = await co.run(parse_task({"requests": [sql("ins", insert)]}))
        read = await co.run(
            parse_task(
                {
                    "requests": [
                        sql("rows", "SELECT email, card FROM people"),
                        sql("bad", 'SELECT * FROM "no_table_here"'),
                        {
                            "id": "tables",
                            "skill": "db.search_objects",
                            "args": {"object_type": "table"},
                        },
                    ]
                }
            )
        )
    assert wrote["results"]["ins"]["status"] == "ok", wrote["results"]["ins"]
    assert people(db) == [(EMAIL, CARD)]
    rows = read["results"]["rows"]
    assert rows["status"] == "ok", rows
    assert rows["value"]["data"]["rows"] == [{"email": EMAIL, "card": CARD}]  # JSON text, read
    tables = read["results"]["tables"]["value"]["data"]["results"]
    assert [t["name"] for t in tables] == ["people"]
    bad = read["results"]["bad"]
    assert bad["status"] == "error" and "no such table: no_table_here" in bad["error"], bad
    assert [a["error_kind"] for a in bad["attempts"]] == ["request"]
    assert not [e for e in read["events"] if e["code"] == "EXTERNAL_DEGRADATION_DETECTED"]
    trail = audit.read_text()
    for request in ("ins", "rows", "bad", "tables"):
        assert len(external_calls(trail, request)) == 1, request
    assert EMAIL not in trail and CARD not in without_digests(trail)


@requires_dbhub
async def test_a_locked_database_is_the_servers_failure_and_the_write_is_not_repeated(
    tmp_path: Path,
) -> None:
    """dbhub waits out its busy timeout on a database another process holds, then answers
    ``database is locked``: the server's failure (not the request's), the write not made
    again; once the lock is gone the same insert, asked again, is made once."""
    db = table(tmp_path / "d.db")
    config = parse_config({"mcpServers": {"db": dbhub_server(db, clearance="restricted")}})
    insert = sql("ins", f"INSERT INTO people (email) VALUES ('{EMAIL}')")
    lock = sqlite3.connect(db, isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        async with asyncio.timeout(90), Coordinator.open(config) as co:
            locked = await co.run(parse_task({"requests": [insert]}))
            lock.execute("ROLLBACK")
            free = await co.run(parse_task({"requests": [insert]}))
    finally:
        lock.close()
    result = locked["results"]["ins"]
    assert result["status"] == "error" and "database is locked" in result["error"], result
    assert result["error"].startswith("outcome_unknown"), result  # an error answer, a write
    assert [a["error_kind"] for a in result["attempts"]] == ["provider"], result
    assert [e["outcome"] for e in locked["events"] if e["code"] == "WRITE_NOT_REPEATED"] == [
        "unknown"
    ]
    assert free["results"]["ins"]["status"] == "ok", free["results"]["ins"]
    assert people(db) == [(EMAIL, None)]


@requires_dbhub
async def test_a_sql_batch_that_fails_after_writing_leaves_the_outcome_unknown(
    tmp_path: Path,
) -> None:
    """``execute_sql`` with an insert, then a statement the database refuses: dbhub answers
    with an error naming the missing table, yet the insert is kept. The request is not said
    to be rejected, nor its write to have failed: it ends ``outcome_unknown`` (the error still
    the request's, the provider not blamed), the write is not made again, and a model told
    so through ``HybridToolNode`` reads the same."""
    from hybridmcp import HybridToolNode, Resources

    db = table(tmp_path / "d.db")
    config = parse_config({"mcpServers": {"db": dbhub_server(db, clearance="restricted")}})
    batch = f"INSERT INTO people (email) VALUES ('{EMAIL}'); INSERT INTO no_table_here VALUES (1)"
    async with asyncio.timeout(90), Coordinator.open(config) as co:
        out = await co.run(parse_task({"requests": [sql("ins", batch)]}))
    assert people(db) == [(EMAIL, None)]  # the first statement was kept
    result = out["results"]["ins"]
    assert result["status"] == "error", result
    assert result["error"].startswith("outcome_unknown"), result["error"]
    assert "no such table: no_table_here" in result["error"]
    assert "rejected" not in result["error"], result["error"]
    assert [(a["error_kind"], a["sent"]) for a in result["attempts"]] == [("request", True)]
    held = [e for e in out["events"] if e["code"] == "WRITE_NOT_REPEATED"]
    assert [e["outcome"] for e in held] == ["unknown"], out["events"]
    assert not [e for e in out["events"] if e["code"] == "EXTERNAL_DEGRADATION_DETECTED"]

    async with asyncio.timeout(90), await Resources.open(config) as res:
        node = HybridToolNode(resources=res)
        call = {"name": "db__execute_sql", "args": {"sql": batch}, "id": "c1", "type": "tool_call"}
        [message] = (await node.ainvoke({"messages": [_ai(call)]}))["messages"]
    assert message.status == "error" and "outcome_unknown" in message.content, message.content
    assert people(db) == [(EMAIL, None), (EMAIL, None)]  # asked again, once, never repeated


def _ai(call: dict[str, Any]) -> Any:
    from langchain_core.messages import AIMessage

    return AIMessage("", tool_calls=[call])


@requires_dbhub
async def test_dbhub_cleared_public_never_receives_the_private_row(tmp_path: Path) -> None:
    """The default clearance is ``public``: a write holding an email and a card is not sent
    (a write is never sent redacted either); the table stays empty and the trail says why."""
    db = table(tmp_path / "d.db")
    for policy in ("route_internal", "redact", "refuse"):
        config = parse_config(
            {"mcpServers": {"db": dbhub_server(db)}, "privacy": {"policy": policy}}
        )
        insert = f"INSERT INTO people (email, card) VALUES ('{EMAIL}', '{CARD}')"
        async with asyncio.timeout(60), Coordinator.open(config) as co:
            out = await co.run(parse_task({"requests": [sql("ins", insert)]}))
            trail = list(co.resources.gate.audit.records)
        result = out["results"]["ins"]
        assert result["status"] == "error", (policy, result)
        assert not [a for a in result["attempts"] if a.get("sent")], (policy, result)
        assert not [r for r in trail if r["kind"] == "external_call"], policy
        assert EMAIL not in json.dumps(trail), policy
    assert people(db) == []


# -- excel-mcp-server: structured answers, errors, private data ------------------------------


@requires_excel
async def test_excel_reads_writes_and_errors_through_the_python_api(tmp_path: Path) -> None:
    """Structured content is the answer (``{"range", "values"}``); a missing workbook or
    sheet is the request's error; an error quoting a card number is kept redacted in the
    trail while the user sees it."""
    book = tmp_path / "book.xlsx"
    audit = tmp_path / "audit.jsonl"
    config = parse_config(
        {
            "mcpServers": {"xl": excel_server(tmp_path, clearance="restricted")},
            "audit": {"path": str(audit)},
        }
    )
    rows = [["name", "email", "card"], ["Alice", EMAIL, CARD]]
    path = str(book)
    async with asyncio.timeout(90), Coordinator.open(config) as co:
        made = await co.run(
            parse_task(
                {"requests": [{"id": "wb", "skill": "xl.create_workbook", "args": {"path": path}}]}
            )
        )
        wrote = await co.run(
            parse_task(
                {
                    "requests": [
                        {
                            "id": "w",
                            "skill": "xl.write_range",
                            "args": {"path": path, "sheet": "Sheet1", "at": "A1", "rows": rows},
                        }
                    ]
                }
            )
        )
        read = await co.run(
            parse_task(
                {
                    "requests": [
                        {
                            "id": "r",
                            "skill": "xl.read_range",
                            "args": {"path": path, "sheet": "Sheet1"},
                        },
                        {
                            "id": "find",
                            "skill": "xl.find_cells",
                            "args": {"path": path, "query": "alice"},
                        },
                        {
                            "id": "sheet",
                            "skill": "xl.read_range",
                            "args": {"path": path, "sheet": "NoSuchSheet"},
                        },
                        {
                            "id": "missing",
                            "skill": "xl.read_range",
                            "args": {"path": str(tmp_path / f"{CARD}.xlsx"), "sheet": "S"},
                        },
                    ]
                }
            )
        )
    assert made["results"]["wb"]["status"] == "ok", made["results"]["wb"]
    assert wrote["results"]["w"]["value"]["cells_written"] == 6, wrote["results"]["w"]
    r = read["results"]["r"]
    assert r["status"] == "ok" and r["value"] == {"range": "A1:C2", "values": rows}, r
    found = read["results"]["find"]["value"]["matches"]
    assert found == {"Sheet1": {"A2": "Alice", "B2": EMAIL}}
    for rid in ("sheet", "missing"):
        failed = read["results"][rid]
        assert failed["status"] == "error", failed
        assert [a["error_kind"] for a in failed["attempts"]] == ["request"], failed
    assert CARD in read["results"]["missing"]["error"]  # the user sees what the server said
    assert not [e for e in read["events"] if e["code"] == "EXTERNAL_DEGRADATION_DETECTED"]
    trail = audit.read_text()
    [missing] = external_calls(trail, "missing")
    assert "<CARD_1>" in missing["outcome"], missing
    assert EMAIL not in trail and CARD not in without_digests(trail)


# -- a write in flight when the CLI is killed runs once ---------------------------------------


@requires_dbhub
@requires_excel
def test_a_write_in_flight_when_the_cli_is_killed_is_not_made_again(tmp_path: Path) -> None:
    """One task: a new sheet in a workbook (done at once) and an insert that waits on a lock
    the test holds. The CLI is SIGKILLed while the insert waits; the lock is let go, so the
    server, left running on its own, makes the insert. The resumed run (same thread) makes
    neither write again: the sheet's answer is the one recorded, the insert is
    ``outcome_unknown`` (WRITE_NOT_REPEATED) and is no failure of the server's (no
    degradation reported, nothing learned against it). Counted in the files: one row, one
    new sheet; the trail has one call of each across both runs."""
    db = table(tmp_path / "d.db")
    book = tmp_path / "book.xlsx"
    audit = tmp_path / "audit.jsonl"
    config, task = tmp_path / "c.json", tmp_path / "t.json"
    servers = {"db": dbhub_server(db, clearance="restricted"), "xl": excel_server(tmp_path)}
    config.write_text(json.dumps({"mcpServers": servers}))
    setup = tmp_path / "setup.json"
    create = {"id": "wb", "skill": "xl.create_workbook", "args": {"path": str(book)}}
    setup.write_text(json.dumps({"requests": [create]}))
    assert cli("run", str(setup), "--config", str(config)).returncode == 0
    sheet = {
        "id": "sheet",
        "skill": "xl.create_sheet",
        "args": {"path": str(book), "new_name": "Ledger"},
    }
    insert = sql("ins", f"INSERT INTO people (email, card) VALUES ('{EMAIL}', '{CARD}')")
    task.write_text(json.dumps({"requests": [sheet, insert]}))
    args = ["run", str(task), "--config", str(config), "--db", str(tmp_path / "runs.db")]
    args += ["--json", "--thread", "job-1", "--audit", str(audit)]

    lock = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    lock.execute("BEGIN EXCLUSIVE")  # dbhub's insert waits on it (its busy timeout: 5 s)
    run = subprocess.Popen(
        [sys.executable, "-m", "hybridmcp.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )
    try:

        def sent() -> bool:
            assert run.poll() is None, run.communicate()
            text = audit.read_text() if audit.exists() else ""
            return bool(external_calls(text, "sheet")) and '"request_id": "ins"' in text

        wait_for(sent, 60, "the sheet made and the insert on its way")
        time.sleep(1.0)  # the insert is sent and waits on the lock
        assert run.poll() is None, run.communicate()
        servers = child_processes(run.pid)
        run.kill()
        run.wait(timeout=10)
    finally:
        if run.poll() is None:
            run.kill()
        run.communicate()
        lock.execute("ROLLBACK")
        lock.close()
    wait_for(lambda: not any(alive(p) for p in servers), 30, "the servers to exit")
    assert people(db) == [(EMAIL, CARD)]  # the server made the insert, on its own

    resumed = cli(*args)
    assert resumed.returncode == 3, resumed.stderr  # partial: the insert's outcome unknown
    out = json.loads(resumed.stdout)
    results = {r["id"]: r for r in out["results"]}
    assert results["sheet"]["status"] == "ok", results["sheet"]
    ins = results["ins"]
    assert ins["status"] == "error" and ins["error"].startswith("outcome_unknown"), ins
    codes = [e["code"] for e in out["events"]]
    assert "WRITE_NOT_REPEATED" in codes, codes
    assert "EXTERNAL_DEGRADATION_DETECTED" not in codes, out["events"]  # our process died
    again = cli(*args)
    assert again.returncode == 3 and json.loads(again.stdout)["results"] == out["results"]

    assert people(db) == [(EMAIL, CARD)]
    trail = audit.read_text()
    assert len(external_calls(trail, "sheet")) == 1
    assert len(external_calls(trail, "ins")) == 0  # its call never ended in a process
    stats = cli("stats", "--db", str(tmp_path / "runs.db"), "--json")
    assert stats.returncode == 0, stats.stderr
    [learned] = [s for s in json.loads(stats.stdout) if s["provider"] == "mcp:db/execute_sql"]
    assert learned["calls"] == 0, learned  # a call cut by our own death is no observation
    look = tmp_path / "look.json"
    describe = {"id": "d", "skill": "xl.describe_workbook", "args": {"path": str(book)}}
    look.write_text(json.dumps({"requests": [describe]}))
    described = cli("run", str(look), "--config", str(config), "--json")
    assert described.returncode == 0, described.stderr
    value = json.loads(described.stdout)["results"][0]["value"]
    assert [s["name"] for s in value["sheets"]] == ["Sheet1", "Ledger"]  # made once

"""An audit trail under the LangGraph server (``langgraph dev`` from ``langgraph.json``,
driven with ``langgraph_sdk``): the server refuses blocking calls on its event loop, so every
audit record (a file append, its head anchored in a database) is written from a worker
thread. Each call passing the gate has its decision and its ``external_call`` record, a run
the client cancels mid-write too (``sends: 1``, outcome ``cancelled``), and the run resumed
on its thread does not make the write again. The trail verifies.

The write goes to the real stdio server ``tests/annotation_server.py`` (its ``bare`` tool: a
write, sleeping after it wrote), counted in the journal it appends to; its ``block`` tool is a
read."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client

from hybridmcp.audit import load_key, verify
from tests.integration.test_server import RUN_DEADLINE_S, serve
from tests.integration.test_server_processes import _until
from tests.toolnode_agent import config

pytestmark = pytest.mark.integration


def _task(entry: str, sleep_ms: int = 0) -> dict[str, Any]:
    return {
        "requests": [
            {"id": "w", "skill": "note.write", "args": {"entry": entry, "sleep_ms": sleep_ms}},
            {"id": "r", "skill": "notes.block", "args": {"ms": 1}},
        ]
    }


async def test_runs_on_the_server_write_their_audit_trail(tmp_path: Path) -> None:
    journal, trail = tmp_path / "journal.txt", tmp_path / "audit.jsonl"
    journal.touch()
    settings = tmp_path / "hybridmcp.json"
    settings.write_text(json.dumps(config(journal) | {"audit": {"path": str(trail)}}))
    env = {"HYBRIDMCP_CONFIG": str(settings), "HYBRIDMCP_DB": str(tmp_path / "runs.db")}
    lines = lambda: journal.read_text(encoding="utf-8").splitlines()  # noqa: E731
    with serve(tmp_path / "server.log", **env) as url:
        client = get_client(url=url)
        async with asyncio.timeout(RUN_DEADLINE_S):
            thread = (await client.threads.create())["thread_id"]
            out = await client.runs.wait(thread, "hybridmcp", input=_task("first"))
            assert {r["status"] for r in out["results"].values()} == {"ok"}, out
            # Cancelled by the client while the write sleeps on the server, after writing.
            job = (await client.threads.create())["thread_id"]
            run = await client.runs.create(job, "hybridmcp", input=_task("cut", 60_000))
            await _until(lambda: lines() == ["bare first", "bare cut"], "the write")
            await client.runs.cancel(job, run["run_id"], wait=True)
            assert (await client.runs.get(job, run["run_id"]))["status"] == "interrupted"
            resumed = await client.runs.wait(job, "hybridmcp", input=None)
    result = resumed["results"]["w"]
    assert result["status"] == "error" and result["error"].startswith("outcome_unknown"), result
    assert lines() == ["bare first", "bare cut"]
    records = [json.loads(line) for line in trail.read_text(encoding="utf-8").splitlines()]
    calls = [
        (r["request_id"], r["outcome"], r["sends"]) for r in records if r["kind"] == "external_call"
    ]
    assert sorted(calls[:2]) == [("r", "ok", 1), ("w", "ok", 1)], records
    assert ("w", "cancelled", 1) in calls[2:], records
    decisions = [r for r in records if r["kind"] == "policy_decision" and r["stage"] == "gate"]
    assert len(decisions) == len(calls), records
    report = verify(trail, key=load_key(f"{trail}.key", create=False))
    assert report.ok, report

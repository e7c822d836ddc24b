"""Two ``langgraph dev`` processes on one database (``langgraph.postgres.json`` on one SQLite
file, and on one PostgreSQL): a thread asked of the second while the first runs it is refused
there in one line, its write made once; once the first run has ended, the second server runs
the thread.

The write goes to the real stdio server ``tests/annotation_server.py`` (its ``bare`` tool: a
write, sleeping after it wrote), counted in the journal it appends to."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client

from tests.integration.test_server import RUN_DEADLINE_S, serve
from tests.toolnode_agent import config

pytestmark = pytest.mark.integration


def _write(entry: str, sleep_ms: int = 0) -> dict[str, Any]:
    args = {"entry": entry, "sleep_ms": sleep_ms}
    return {"requests": [{"id": "w", "skill": "note.write", "args": args}]}


async def _until(check: Any, what: str) -> None:
    deadline = time.monotonic() + RUN_DEADLINE_S
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_a_thread_running_on_one_server_is_refused_by_another(tmp_path: Path) -> None:
    await _two_servers(tmp_path, str(tmp_path / "shared.db"))


async def test_the_same_on_postgres(tmp_path: Path, pg_url: str) -> None:
    await _two_servers(tmp_path, pg_url)


async def _two_servers(tmp_path: Path, db: str) -> None:
    journal = tmp_path / "journal.txt"
    journal.touch()
    settings = tmp_path / "hybridmcp.json"
    settings.write_text(json.dumps(config(journal)), encoding="utf-8")
    env = {"HYBRIDMCP_DB": db, "HYBRIDMCP_CONFIG": str(settings)}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    job = str(uuid.uuid4())
    lines = lambda: journal.read_text(encoding="utf-8").splitlines()  # noqa: E731
    with (
        serve(tmp_path / "a" / "server.log", config="langgraph.postgres.json", **env) as url_a,
        serve(tmp_path / "b" / "server.log", config="langgraph.postgres.json", **env) as url_b,
    ):
        a, b = get_client(url=url_a), get_client(url=url_b)
        async with asyncio.timeout(RUN_DEADLINE_S * 2):
            for client in (a, b):
                await client.threads.create(thread_id=job, if_exists="do_nothing")
            first = await a.runs.create(job, "hybridmcp", input=_write("once", 4000))
            await _until(lambda: lines() == ["bare once"], "the first run's write")
            second = await b.runs.create(job, "hybridmcp", input=_write("once", 4000))
            refused = await b.runs.join(job, second["run_id"])
            done = await a.runs.join(job, first["run_id"])
            assert (await b.runs.get(job, second["run_id"]))["status"] == "error"
            error = refused["__error__"]
            assert error["error"] == "ThreadBusy", error
            assert f"thread {job!r} is already running in another process" in error["message"]
            assert done["results"]["w"]["status"] == "ok", done
            assert lines() == ["bare once"]
            # The first run has ended: the other server runs the thread now (a new run).
            after = await b.runs.wait(job, "hybridmcp", input=_write("twice"))
            assert after["results"]["w"]["status"] == "ok", after
            assert lines() == ["bare once", "bare twice"]


@pytest.mark.parametrize("strategy", ["interrupt", "rollback", "cancel"])
async def test_a_run_that_ends_the_running_one_takes_its_thread(
    strategy: str, tmp_path: Path
) -> None:
    """One server: a run asked with ``multitask_strategy`` ``interrupt`` or ``rollback`` ends
    the thread's running run, then runs itself, as does a run asked after the client cancelled
    the running one: the thread's lock, let go by the ended run, refuses nothing here."""
    journal = tmp_path / "journal.txt"
    journal.touch()
    settings = tmp_path / "hybridmcp.json"
    settings.write_text(json.dumps(config(journal)), encoding="utf-8")
    env = {"HYBRIDMCP_DB": str(tmp_path / "shared.db"), "HYBRIDMCP_CONFIG": str(settings)}
    lines = lambda: journal.read_text(encoding="utf-8").splitlines()  # noqa: E731
    with serve(tmp_path / "server.log", config="langgraph.postgres.json", **env) as url:
        client = get_client(url=url)
        async with asyncio.timeout(RUN_DEADLINE_S):
            job = (await client.threads.create())["thread_id"]
            first = await client.runs.create(job, "hybridmcp", input=_write("slow", 6000))
            await _until(lambda: lines() == ["bare slow"], "the first run's write")
            if strategy == "cancel":  # the client's cancel, then a new run
                await client.runs.cancel(job, first["run_id"], wait=True)
                second = await client.runs.create(job, "hybridmcp", input=_write("next"))
            else:
                second = await client.runs.create(
                    job, "hybridmcp", input=_write("next"), multitask_strategy=strategy
                )
            out = await client.runs.join(job, second["run_id"])
            assert "__error__" not in out, out
            assert out["results"]["w"]["status"] == "ok", out
            assert (await client.runs.get(job, second["run_id"]))["status"] == "success"
            if strategy != "rollback":  # (a rolled-back run is deleted)
                assert (await client.runs.get(job, first["run_id"]))["status"] == "interrupted"
    assert lines() == ["bare slow", "bare next"]

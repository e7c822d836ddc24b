"""A run killed between a step's end and its checkpoint: its node's writes are saved (LangGraph
saves a finished task's writes as soon as it finishes), the checkpoint that would follow them
is not. The run is unfinished, and running its task on the thread again finishes it.

The state is made exactly, in a real SQLite database: a durable run is made to its end, then
every checkpoint after a chosen one is deleted with its writes, which leaves that checkpoint
with its next task's writes, as a kill between the two leaves it. (Found by
``test_killed_learners``: a process killed as another of its threads started calling.)
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from hybridmcp.config import parse_config
from hybridmcp.coordinator import Coordinator
from hybridmcp.persistence import open_persistence
from hybridmcp.task import parse_task

pytestmark = pytest.mark.integration

TASK = {
    "requests": [
        {"id": "sum", "skill": "math.calculate", "args": {"expression": "17*3"}},
        {"id": "words", "skill": "text.stats", "args": {"text": "one two three"}},
    ]
}


def checkpoints(db: Path, thread: str) -> list[tuple[str, int]]:
    """The thread's checkpoints (id, step), oldest first."""
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT checkpoint_id, metadata FROM checkpoints WHERE thread_id = ? "
            "ORDER BY checkpoint_id",
            (thread,),
        ).fetchall()
    return [(cid, json.loads(meta)["step"]) for cid, meta in rows]


def cut_after(db: Path, thread: str, keep: str) -> None:
    """Delete the thread's checkpoints after ``keep``, and their writes; ``keep``'s writes
    (its next tasks' outputs) stay."""
    with sqlite3.connect(db) as con:
        for table in ("checkpoints", "writes"):
            con.execute(
                f"DELETE FROM {table} WHERE thread_id = ? AND checkpoint_id > ?", (thread, keep)
            )


async def run(db: Path, thread: str) -> tuple[str, dict]:
    config = parse_config({})
    async with (
        open_persistence(str(db)) as (checkpointer, store),
        Coordinator.open(config, checkpointer=checkpointer, store=store) as co,
    ):
        task = parse_task(TASK, "task")
        status = await co.thread_status(task, thread)
        return status.state, await co.run(task, thread_id=thread)


def answers(out: dict) -> dict:
    return {rid: r.get("value") for rid, r in out["results"].items()}


def test_a_run_cut_after_any_steps_writes_is_unfinished_and_finishes(tmp_path):
    whole = tmp_path / "whole.db"
    state, done = asyncio.run(run(whole, "t"))
    assert state == "new" and done["status"] == "ok"
    steps = checkpoints(whole, "t")
    assert len(steps) >= 3  # the input, then each step of the run
    for cid, step in steps[:-1]:  # each checkpoint but the last: its next task had run
        db = tmp_path / f"cut-{step}.db"
        db.write_bytes(whole.read_bytes())
        cut_after(db, "t", cid)
        state, out = asyncio.run(run(db, "t"))
        assert state == "unfinished", step
        assert out.get("status") == "ok", (step, out.keys())
        assert answers(out) == answers(done), step
        assert checkpoints(db, "t")[-1][1] == steps[-1][1]  # finished as the whole run did

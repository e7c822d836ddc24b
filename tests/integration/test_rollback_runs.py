"""The LangGraph server's ``rollback`` (a run asked with ``multitask_strategy="rollback"`` ends
the thread's running run and deletes what it saved) on hybridmcp's own checkpointers, the
ones ``langgraph.postgres.json`` gives the server: ``adelete_for_runs`` deletes the checkpoints
of the runs named and their writes, on SQLite and on PostgreSQL, and nothing of other runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hybridmcp import Context, Resources, build_graph, parse_config
from hybridmcp.persistence import open_persistence

pytestmark = pytest.mark.integration


def calc(expression: str) -> dict[str, Any]:
    return {
        "requests": [{"id": "c", "skill": "math.calculate", "args": {"expression": expression}}]
    }


async def _roll_back(db: str) -> None:
    async with open_persistence(db) as (saver, store):
        async with await Resources.open(parse_config({}), store=store) as res:
            graph = build_graph().compile(checkpointer=saver, store=store)
            context = Context(resources=res)
            for thread in ("kept", "rolled"):
                for run, expression in (("run-1", "1 + 1"), ("run-2", "2 + 2")):
                    config = {"configurable": {"thread_id": thread, "run_id": f"{thread}-{run}"}}
                    await graph.ainvoke(calc(expression), config, context=context)
            before = [
                s async for s in graph.aget_state_history({"configurable": {"thread_id": "kept"}})
            ]
            await saver.adelete_for_runs(["rolled-run-2"])
            rolled = {"configurable": {"thread_id": "rolled"}}
            history = [s async for s in graph.aget_state_history(rolled)]
            assert history and {s.metadata["run_id"] for s in history} == {"rolled-run-1"}
            state = await graph.aget_state(rolled)
            assert state.values["results"]["c"]["value"]["value"] == 2
            kept = {"configurable": {"thread_id": "kept"}}
            assert len([s async for s in graph.aget_state_history(kept)]) == len(before)
            # The thread goes on from the run kept.
            out = await graph.ainvoke(calc("3 + 3"), rolled, context=context)
            assert out["results"]["c"]["value"]["value"] == 6


async def test_a_runs_checkpoints_are_deleted_on_sqlite(tmp_path: Path) -> None:
    await _roll_back(str(tmp_path / "runs.db"))


async def test_a_runs_checkpoints_are_deleted_on_postgres(pg_url: str) -> None:
    await _roll_back(pg_url)

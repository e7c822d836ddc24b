"""LangGraph's time travel on the coordinator's graph: ``get_state``, ``get_state_history``,
``update_state`` and runs from an earlier checkpoint never make a finished write again, and a
fork whose input was changed says so instead of answering with another call's result.

Checkpoints and store in one real SQLite file (``open_persistence``); the write goes to the
real stdio server ``tests/annotation_server.py`` (its ``bare`` tool: a write), counted in the
journal it appends to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hybridmcp import Context, Resources, build_graph, parse_config
from hybridmcp.persistence import open_persistence
from tests.toolnode_agent import config

pytestmark = pytest.mark.integration


def task(entry: str) -> dict[str, Any]:
    return {
        "requests": [
            {"id": "w", "skill": "note.write", "args": {"entry": entry}},
            {"id": "c", "skill": "math.calculate", "args": {"expression": "6 * 7"}},
        ]
    }


def writes(journal: Path) -> list[str]:
    return journal.read_text(encoding="utf-8").splitlines()


async def test_runs_from_earlier_checkpoints_make_no_write_again(tmp_path: Path) -> None:
    journal = tmp_path / "journal.txt"
    journal.touch()
    thread = {"configurable": {"thread_id": "travel-1"}}
    async with open_persistence(str(tmp_path / "runs.db")) as (saver, store):
        async with await Resources.open(parse_config(config(journal)), store=store) as res:
            graph = build_graph().compile(checkpointer=saver, store=store)
            context = Context(resources=res)
            first = await graph.ainvoke(task("x"), thread, context=context)
            assert first["status"] == "ok" and writes(journal) == ["bare x"]

            history = [s async for s in graph.aget_state_history(thread)]
            for snapshot in history:  # what Studio and the server API show: plain JSON
                json.dumps(snapshot.values, allow_nan=False)
            by_next = {s.next: s for s in history}
            assert set(by_next) >= {(), ("assess",), ("external", "internal")}

            # Replayed from each earlier checkpoint: the write's answer, never a second write.
            for step in (("assess",), ("external", "internal")):
                again = await graph.ainvoke(None, by_next[step].config, context=context)
                assert again["results"]["w"]["value"] == first["results"]["w"]["value"]
                assert writes(journal) == ["bare x"], step

            # Forked before assess with the same input: the recorded answer, marked replayed.
            start = by_next[("assess",)].config
            same = await graph.aupdate_state(start, task("x"), as_node="__start__")
            out = await graph.ainvoke(None, same, context=context)
            assert writes(journal) == ["bare x"]
            assert out["status"] == "ok", out
            [attempt] = out["results"]["w"]["attempts"]
            assert attempt["replayed"] is True and attempt["ok"]

            # Forked with the write's arguments changed: not made, and not answered with the
            # earlier call's result; the rest of the run goes on.
            changed = await graph.aupdate_state(start, task("y"), as_node="__start__")
            out = await graph.ainvoke(None, changed, context=context)
            assert writes(journal) == ["bare x"]
            result = out["results"]["w"]
            assert result["status"] == "error" and result.get("value") is None, result
            assert "forked from an earlier checkpoint" in result["error"]
            assert "new thread" in result["error"]
            [attempt] = result["attempts"]
            assert attempt["sent"] is False and attempt["error_kind"] == "request"
            assert out["results"]["c"]["status"] == "ok"

            # A new input on the thread is a run of its own: the write is made.
            newer = await graph.ainvoke(task("y"), thread, context=context)
            assert newer["results"]["w"]["status"] == "ok"
            assert writes(journal) == ["bare x", "bare y"]

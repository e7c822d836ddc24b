"""A ``SkillTool`` called in a node of the user's own, given no tool call id
(``await tool.ainvoke(args)``), makes its write once when the node runs again: resumed after
an ``interrupt()`` with ``Command(resume=...)``, async (``AsyncSqliteSaver``) and sync
(``SqliteSaver``). A later node task asking the same write makes it again.

The writes go to the real stdio server ``tests/annotation_server.py`` (its ``bare`` tool: no
annotations, so a write), counted in the journal it appends to."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from hybridmcp import Resources, parse_config
from hybridmcp.toolnode import HybridToolNode, tools_for_model
from tests.toolnode_agent import config

pytestmark = pytest.mark.integration


class Notes(TypedDict, total=False):
    topic: str
    answers: list[Any]


def journal_of(path: Path) -> Counter[str]:
    return Counter(path.read_text(encoding="utf-8").split("\n")[:-1])


def graph_with(write: Any, *, sync: bool) -> StateGraph[Notes]:
    """One node: writes ``a`` twice and ``b`` once (no tool call ids), then asks a human."""

    async def anode(state: Notes) -> dict[str, Any]:
        topic = state["topic"]
        answers = [await write.ainvoke({"entry": f"{topic}-{e}"}) for e in ("a", "a", "b")]
        return {"answers": [*answers, interrupt("go on?")]}

    def node(state: Notes) -> dict[str, Any]:
        topic = state["topic"]
        answers = [write.invoke({"entry": f"{topic}-{e}"}) for e in ("a", "a", "b")]
        return {"answers": [*answers, interrupt("go on?")]}

    builder = StateGraph(Notes)
    builder.add_node("notes", node if sync else anode)
    builder.add_edge(START, "notes")
    builder.add_edge("notes", END)
    return builder


EXPECTED = Counter({"bare one-a": 2, "bare one-b": 1})


async def test_an_unnamed_call_is_not_made_again_when_its_node_resumes(tmp_path: Path) -> None:
    journal = tmp_path / "journal.txt"
    journal.touch()
    thread = {"configurable": {"thread_id": "notes-1"}}
    async with (
        await Resources.open(parse_config(config(journal))) as res,
        AsyncSqliteSaver.from_conn_string(str(tmp_path / "graph.db")) as saver,
    ):
        write = {t.name: t for t in tools_for_model(res)}["note__write"]
        graph = graph_with(write, sync=False).compile(checkpointer=saver)
        paused = await graph.ainvoke({"topic": "one"}, thread)
        assert "__interrupt__" in paused
        assert journal_of(journal) == EXPECTED
        done = await graph.ainvoke(Command(resume="yes"), thread)
        assert journal_of(journal) == EXPECTED  # the node ran again: nothing written again
        assert done["answers"][-1] == "yes"
        assert '"one-b"' in done["answers"][2]
        # A new input is a new task of the node: the same writes are made again.
        await graph.ainvoke({"topic": "one"}, thread)
        assert journal_of(journal) == EXPECTED + EXPECTED


def test_an_unnamed_call_in_a_sync_graph_is_not_made_again(tmp_path: Path) -> None:
    journal = tmp_path / "journal.txt"
    journal.touch()
    thread = {"configurable": {"thread_id": "notes-2"}}
    settings = tmp_path / "hybridmcp.json"
    settings.write_text(json.dumps(config(journal)), encoding="utf-8")
    node = HybridToolNode(config_path=str(settings), connect=True)
    try:
        write = node.tools_by_name["note__write"]
        conn = sqlite3.connect(tmp_path / "graph.db", check_same_thread=False)
        graph = graph_with(write, sync=True).compile(checkpointer=SqliteSaver(conn))
        assert "__interrupt__" in graph.invoke({"topic": "one"}, thread)
        graph.invoke(Command(resume="yes"), thread)
        assert journal_of(journal) == EXPECTED
    finally:
        node.close()

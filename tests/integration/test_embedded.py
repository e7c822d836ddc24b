"""The coordinator embedded in a parent graph with a checkpointer, as its users embed it: as a
node sharing the parent's keys, and called with ``ainvoke`` inside a node that maps state in
and out. Each turn of the parent's thread is a run of its own (a write asked again in a later
turn is made again, a changed one too, never answered with an earlier turn's result), and a
parent task resumed after an ``interrupt()`` makes no write again. Bad input from a parent is
one line naming what is wrong.

The writes go to the real stdio server ``tests/annotation_server.py`` (its ``bare`` tool: a
write), counted in the journal it appends to; checkpoints and store in one SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from hybridmcp import Context, Resources, TaskError, build_graph, parse_config
from hybridmcp.persistence import open_persistence
from tests.toolnode_agent import config

pytestmark = pytest.mark.integration


class Parent(TypedDict, total=False):
    entry: str
    """What to write (input)."""
    requests: list[dict[str, Any]]
    status: str
    results: dict[str, Any]
    approved: Any


def plan(state: Parent) -> dict[str, Any]:
    return {"requests": [{"id": "w", "skill": "note.write", "args": {"entry": state["entry"]}}]}


def parent(how: str, *, ask: bool = False) -> StateGraph[Parent]:
    coordinator = build_graph().compile(name="hybridmcp")
    builder = StateGraph(Parent, context_schema=Context)
    builder.add_node("plan", plan)
    if how == "node":
        builder.add_node("coordinator", coordinator)
    else:

        async def coordinate(state: Parent, config: RunnableConfig) -> dict[str, Any]:
            out = await coordinator.ainvoke({"requests": state["requests"]}, config)
            approved = interrupt("approve?") if ask else None
            return {"status": out["status"], "results": out["results"], "approved": approved}

        builder.add_node("coordinator", coordinate)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "coordinator")
    builder.add_edge("coordinator", END)
    return builder


def writes(journal: Path) -> list[str]:
    return journal.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("how", ["node", "mapping"])
async def test_each_turn_of_a_parent_thread_is_a_run_of_its_own(how: str, tmp_path: Path) -> None:
    journal = tmp_path / "journal.txt"
    journal.touch()
    thread = {"configurable": {"thread_id": "parent-1"}}
    async with (
        open_persistence(str(tmp_path / "runs.db")) as (saver, store),
        await Resources.open(parse_config(config(journal)), store=store) as res,
    ):
        graph = parent(how).compile(checkpointer=saver, store=store)
        context = Context(resources=res)
        for entry in ("x", "x", "y"):
            out = await graph.ainvoke({"entry": entry}, thread, context=context)
            result = out["results"]["w"]
            assert result["status"] == "ok", result
            assert result["value"] == {"entry": entry, "written": True}
            assert not result["attempts"][0].get("replayed"), result
        assert writes(journal) == ["bare x", "bare x", "bare y"]


async def test_a_parent_task_resumed_after_an_interrupt_makes_no_write_again(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "journal.txt"
    journal.touch()
    thread = {"configurable": {"thread_id": "parent-2"}}
    async with (
        open_persistence(str(tmp_path / "runs.db")) as (saver, store),
        await Resources.open(parse_config(config(journal)), store=store) as res,
    ):
        graph = parent("mapping", ask=True).compile(checkpointer=saver, store=store)
        context = Context(resources=res)
        paused = await graph.ainvoke({"entry": "x"}, thread, context=context)
        assert "__interrupt__" in paused and writes(journal) == ["bare x"]
        out = await graph.ainvoke(Command(resume="yes"), thread, context=context)
        assert out["approved"] == "yes" and out["results"]["w"]["status"] == "ok"
        assert writes(journal) == ["bare x"]
        again = await graph.ainvoke({"entry": "x"}, thread, context=context)  # a new turn
        assert "__interrupt__" in again and writes(journal) == ["bare x", "bare x"]


BAD = [
    ({}, "'requests' must be a list of request objects"),
    (
        {"requests": "calc"},
        "'requests' must be a list of request objects ({id, skill, args}); got str",
    ),
    ({"requests": [1]}, "requests[0] must be an object {id, skill, args}, got int 1"),
    ({"requests": [{"skill": "math.calculate"}]}, "requests[0] needs an 'id'"),
    (
        {"requests": [{"id": "a", "skill": "math.calculate"}, {"id": "a", "skill": "text.stats"}]},
        "duplicate request id 'a' (requests[0] and [1])",
    ),
    ({"requests": [{"id": "a", "skill": "x"}], "constraints": "soon"}, "graph input: constraints"),
    (
        {"requests": [{"id": "a", "skill": "x"}], "constraints": {"deadline_ms": "soon"}},
        "graph input: constraints.deadline_ms: Input should be a valid number",
    ),
    (
        {"requests": [{"id": "a", "skill": "x"}], "constraints": {"budget": -1}},
        "graph input: constraints.budget: Input should be greater than or equal to 0",
    ),
]


@pytest.mark.parametrize(("given", "says"), BAD)
async def test_graph_input_of_a_wrong_shape_is_one_line(given: Any, says: str) -> None:
    """What a parent graph, ``graph.ainvoke`` or the server's API gives unchecked: refused
    before anything runs, in one line naming what is wrong."""
    async with await Resources.open(parse_config({})) as res:
        graph = build_graph().compile()
        with pytest.raises(TaskError) as raised:
            await graph.ainvoke(given, context=Context(resources=res))
    message = str(raised.value)
    assert says in message and "\n" not in message, message


async def test_a_request_with_an_unknown_strategy_is_its_own_error() -> None:
    requests = [
        {"id": "a", "skill": "math.calculate", "args": {"expression": "1+1"}, "strategy": "fast"},
        {"id": "b", "skill": "math.calculate", "args": {"expression": "2+2"}},
    ]
    async with await Resources.open(parse_config({})) as res:
        out = (
            await build_graph()
            .compile()
            .ainvoke({"requests": requests}, context=Context(resources=res))
        )
    assert out["results"]["a"]["error"] == (
        "strategy 'fast' is not one of auto, internal, external, hybrid"
    )
    assert out["results"]["b"]["status"] == "ok"


async def test_a_thread_named_like_another_threads_later_run_keeps_its_writes_apart(
    tmp_path: Path,
) -> None:
    """Thread ``job``'s second run and thread ``job#2``'s first used to take one run id: the
    write asked on ``job`` was answered with ``job#2``'s record, and not made."""
    journal = tmp_path / "journal.txt"
    journal.touch()
    graph = build_graph()
    async with open_persistence(str(tmp_path / "runs.db")) as (saver, store):
        async with await Resources.open(parse_config(config(journal)), store=store) as res:
            compiled = graph.compile(checkpointer=saver, store=store)
            for thread, entry in [("job#2", "x"), ("job", "y"), ("job", "x")]:
                given = {"requests": [{"id": "w", "skill": "note.write", "args": {"entry": entry}}]}
                out = await compiled.ainvoke(
                    given, {"configurable": {"thread_id": thread}}, context=Context(resources=res)
                )
                [attempt] = out["results"]["w"]["attempts"]
                assert attempt["ok"] and not attempt.get("replayed"), (thread, out)
    assert writes(journal) == ["bare x", "bare y", "bare x"]

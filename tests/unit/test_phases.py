"""Phases sharing one graph node leave the same state as one node per phase."""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any, NotRequired, TypedDict

from hypothesis import given, settings
from hypothesis import strategies as st
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import RunnableConfig

from hybridmcp.phases import combine, fold, phases, reducers
from hybridmcp.state import State, merge


class Toy(TypedDict):
    log: Annotated[list[int], operator.add]
    seen: Annotated[dict[str, int], merge]
    last: NotRequired[int]
    note: NotRequired[str]


def test_the_reducers_are_read_as_langgraph_reads_them() -> None:
    assert reducers(Toy) == {"log": operator.add, "seen": merge}
    by = reducers(State)
    assert by["attempts"] is operator.add and by["results"] is merge
    assert "pending" not in by and "round" not in by  # plain keys: the last write wins


values = st.integers(-5, 5)
updates = st.fixed_dictionaries(
    {},
    optional={
        "log": st.lists(values, max_size=3),
        "seen": st.dictionaries(st.sampled_from("abc"), values, max_size=3),
        "last": values,
        "note": st.text("xyz", max_size=2),
    },
)


def _phase(update: dict[str, Any], seen_by: list[dict[str, Any]]) -> Any:
    """A phase that records the state it was given and writes ``update``."""

    async def phase(state: dict[str, Any], runtime: Runtime[Any]) -> dict[str, Any]:
        seen_by.append(dict(state))
        return dict(update)

    return phase


def _run_both(start: dict[str, Any], writes: list[dict[str, Any]]) -> tuple[Any, Any, Any, Any]:
    """The final state and what each phase saw: one node per phase, and all in one node."""
    apart_seen: list[dict[str, Any]] = []
    apart = StateGraph(Toy)
    names = [f"p{i}" for i in range(len(writes))]
    for name, update in zip(names, writes, strict=True):
        apart.add_node(name, _phase(update, apart_seen))
    for a, b in zip([START, *names], [*names, END], strict=True):
        apart.add_edge(a, b)
    together_seen: list[dict[str, Any]] = []
    together = StateGraph(Toy)
    steps = [(n, _phase(u, together_seen)) for n, u in zip(names, writes, strict=True)]
    together.add_node("all", phases(Toy, *steps))  # type: ignore[call-overload]
    together.add_edge(START, "all")

    async def both() -> tuple[Any, Any]:
        return (
            await apart.compile().ainvoke(dict(start)),
            await together.compile().ainvoke(dict(start)),
        )

    out_apart, out_together = asyncio.run(both())
    return out_apart, out_together, apart_seen, together_seen


@settings(max_examples=60, deadline=None)
@given(
    start=st.fixed_dictionaries(
        {
            "log": st.lists(values, max_size=2),
            "seen": st.dictionaries(st.sampled_from("ab"), values),
        },
        optional={"last": values},
    ),
    writes=st.lists(updates, min_size=1, max_size=4),
)
def test_one_node_leaves_the_state_and_shows_each_phase_what_separate_nodes_do(
    start: dict[str, Any], writes: list[dict[str, Any]]
) -> None:
    out_apart, out_together, apart_seen, together_seen = _run_both(start, writes)
    assert out_together == out_apart
    assert together_seen == apart_seen


@given(start=updates, writes=st.lists(updates, max_size=4))
def test_combined_updates_fold_to_the_state_of_the_updates_one_by_one(
    start: dict[str, Any], writes: list[dict[str, Any]]
) -> None:
    by = reducers(Toy)
    one_by_one = dict(start)
    for update in writes:
        one_by_one = fold(one_by_one, update, by)
    assert fold(start, combine(writes, by), by) == one_by_one


def test_a_stop_ends_the_node_after_its_phase_and_routes_the_run() -> None:
    ran: list[str] = []

    def phase(name: str, update: dict[str, Any]) -> Any:
        async def run(state: dict[str, Any], runtime: Runtime[Any]) -> dict[str, Any]:
            ran.append(name)
            return update

        return run

    async def stop_when_noted(state: dict[str, Any], runtime: Runtime[Any]) -> str | None:
        return "elsewhere" if state.get("note") == "stop" else None

    async def elsewhere(state: dict[str, Any]) -> dict[str, Any]:
        ran.append("elsewhere")
        return {"log": [99]}

    def build(note: str) -> Any:
        g = StateGraph(Toy)
        g.add_node(  # type: ignore[call-overload]
            "both",
            phases(
                Toy,
                ("first", phase("first", {"log": [1], "note": note}), stop_when_noted),
                ("second", phase("second", {"log": [2]})),
            ),
            destinations=("elsewhere", END),
        )
        g.add_node("elsewhere", elsewhere)
        g.add_edge(START, "both")
        g.add_edge("elsewhere", END)
        return g.compile()

    out = asyncio.run(build("stop").ainvoke({"log": [], "seen": {}}))
    assert ran == ["first", "elsewhere"] and out["log"] == [1, 99]
    ran.clear()
    out = asyncio.run(build("go").ainvoke({"log": [], "seen": {}}))
    assert ran == ["first", "second"] and out["log"] == [1, 2]


def test_a_phase_that_takes_the_config_gets_it() -> None:
    got: list[Any] = []

    async def with_config(
        state: dict[str, Any], runtime: Runtime[Any], config: RunnableConfig
    ) -> dict[str, Any]:
        got.append(config["configurable"]["thread_id"])
        return {"log": [1]}

    async def without(state: dict[str, Any], runtime: Runtime[Any]) -> dict[str, Any]:
        return {"log": [2]}

    g = StateGraph(Toy)
    g.add_node("n", phases(Toy, ("a", with_config), ("b", without)))  # type: ignore[call-overload]
    g.add_edge(START, "n")
    out = asyncio.run(
        g.compile().ainvoke({"log": [], "seen": {}}, {"configurable": {"thread_id": "t-1"}})
    )
    assert got == ["t-1"] and out["log"] == [1, 2]

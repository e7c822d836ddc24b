"""Progress events are built only for a writer that does something: LangGraph's writer when no
``custom`` stream is asked for is recognised as silent, any other writer is written to, and
the events a custom stream receives do not depend on it."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import START, StateGraph

from hybridmcp.progress import observed, silent


class _S(TypedDict):
    seen: Annotated[list[Any], operator.add]


def _graph(writers: list[Any]) -> Any:
    async def work(state: _S) -> dict[str, Any]:
        writers.append(get_stream_writer())
        return {"seen": [1], "events": [{"code": "SOMETHING", "n": 1}]}

    builder = StateGraph(_S)
    builder.add_node("work", observed("work", work))
    builder.add_edge(START, "work")
    return builder.compile()


async def test_langgraphs_writer_is_silent_only_without_a_custom_stream() -> None:
    writers: list[Any] = []
    graph = _graph(writers)
    assert await graph.ainvoke({"seen": []}) == {"seen": [1]}
    values = [c async for c in graph.astream({"seen": []}, stream_mode="values")]
    custom = [c async for c in graph.astream({"seen": []}, stream_mode="custom")]
    both = [c async for c in graph.astream({"seen": []}, stream_mode=["custom", "values"])]
    assert values[-1] == {"seen": [1]}
    assert [silent(w) for w in writers] == [True, True, False, False]
    # a custom stream gets every event of the phase, as before
    phases = [(e["type"], e.get("node"), e.get("status")) for e in custom]
    assert phases == [
        ("phase", "work", "started"),
        ("event", None, None),
        ("phase", "work", "finished"),
    ]
    assert custom[1] == {"type": "event", "code": "SOMETHING", "n": 1}
    assert [c for mode, c in both if mode == "custom"][1] == custom[1]


def test_a_writer_that_does_anything_is_not_silent() -> None:
    got: list[Any] = []

    def records(event: Any) -> None:
        got.append(event)

    def returns_it(event: Any) -> Any:
        return event

    def prints(event: Any) -> None:
        print(event)

    def nothing(event: Any) -> None:
        pass

    for writer in (records, returns_it, prints, got.append, lambda e: got.append(e), print):
        assert not silent(writer)
    assert silent(nothing) and silent(lambda _e: None)

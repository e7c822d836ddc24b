"""The coordinator as a LangGraph state machine: the picture of the flow.

START → analyze → arbitrate ─Send→ internal ─┐
                            └Send→ external ─┤
                                             ↓
             reallocate ←─(moves, rounds left)── monitor
                 │ Send→ internal / external      │ (all settled)
                 └──────→ (back to monitor)       ↓
                                      synchronize → learn → END
                                           └→ review ┘ (conflicts; may interrupt() for a human)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from hybridmcp.nodes.analyze import analyze
from hybridmcp.nodes.arbitrate import arbitrate
from hybridmcp.nodes.execute import batches, external, internal
from hybridmcp.nodes.learn import learn
from hybridmcp.nodes.monitor import monitor
from hybridmcp.nodes.reallocate import reallocate
from hybridmcp.nodes.review import review
from hybridmcp.nodes.synchronize import synchronize
from hybridmcp.progress import observed
from hybridmcp.runtime import Context
from hybridmcp.state import InputState, OutputState, State


# Each routing decision reads only what its node has just written, so the node returns it with
# its update (a LangGraph ``Command``, see ``observed``). A conditional edge would read the
# whole state back instead, copying every channel, at every step of every run.
def dispatch(update: Mapping[str, Any]) -> list[Send] | str:
    """Fan the pending work out to the parallel branches, one ``Send`` per bounded batch of
    attempts (each call in a batch is still checkpointed on its own)."""
    pending = update.get("pending") or []
    if not pending:
        return "monitor"
    return [Send(side, batch) for side, batch in batches(pending)]


def after_monitor(update: Mapping[str, Any]) -> str:
    """Loop while work moves to another provider; otherwise integrate."""
    return "reallocate" if update.get("moves") else "synchronize"


def after_synchronize(update: Mapping[str, Any]) -> str:
    """Conflicts go to review, which pauses for a human only when configured to."""
    return "review" if update.get("conflicts") else "learn"


WORK = ("internal", "external", "monitor")


def build_graph() -> StateGraph[State, Context, InputState, OutputState]:
    """The uncompiled coordinator; compile it with your own checkpointer and store."""
    builder = StateGraph(
        State, context_schema=Context, input_schema=InputState, output_schema=OutputState
    )
    # LangGraph's add_node overloads type neither a node taking (state, runtime, config) nor
    # one fed a Send payload (Batch) instead of the state; both are supported at run time.
    # ``then``: the node's routing, on its update; ``destinations``: where it can lead.
    builder.add_node("analyze", observed("analyze", analyze))  # type: ignore[call-overload]
    builder.add_node(
        "arbitrate", observed("arbitrate", arbitrate, then=dispatch), destinations=WORK
    )
    builder.add_node("internal", observed("internal", internal))  # type: ignore[call-overload]
    builder.add_node("external", observed("external", external))  # type: ignore[call-overload]
    builder.add_node(
        "monitor",
        observed("monitor", monitor, then=after_monitor),
        destinations=("reallocate", "synchronize"),
    )
    builder.add_node(
        "reallocate", observed("reallocate", reallocate, then=dispatch), destinations=WORK
    )
    builder.add_node(
        "synchronize",
        observed("synchronize", synchronize, then=after_synchronize),
        destinations=("review", "learn"),
    )
    builder.add_node("review", observed("review", review))
    builder.add_node("learn", observed("learn", learn))

    builder.add_edge(START, "analyze")
    builder.add_edge("analyze", "arbitrate")
    builder.add_edge("internal", "monitor")
    builder.add_edge("external", "monitor")
    builder.add_edge("review", "learn")
    builder.add_edge("learn", END)
    return builder


graph = build_graph().compile(name="hybridmcp")
"""The compiled graph served by ``langgraph.json`` (the server supplies persistence)."""

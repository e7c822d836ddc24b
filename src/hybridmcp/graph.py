"""The coordinator as a LangGraph state machine: the picture of the flow.

START → assess ─Send→ internal ─┐      assess: analyze, then arbitrate (spec phase 1)
               └Send→ external ─┤
                                ↓
  reallocate ←─(moves, rounds left)── monitor        (phase 2: parallel execution, checkpoints)
      │ Send→ internal / external       │ (all settled)
      └──────→ (back to monitor)        ↓
                                    integrate → END  integrate: synchronize, then learn (phase 3)
                                        └→ review → END  (a conflict a human must decide:
                                                          interrupt(), then learn)

Phases that always follow one another share a node (:mod:`hybridmcp.phases`): each is its own
function in ``nodes/`` and reports its own progress, and the run pays one LangGraph step for
them instead of one each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from hybridmcp.nodes.analyze import analyze
from hybridmcp.nodes.arbitrate import arbitrate
from hybridmcp.nodes.execute import batches, external, internal
from hybridmcp.nodes.learn import learn
from hybridmcp.nodes.monitor import monitor
from hybridmcp.nodes.reallocate import reallocate
from hybridmcp.nodes.review import human_needed, review
from hybridmcp.nodes.synchronize import synchronize
from hybridmcp.phases import phases
from hybridmcp.progress import observed
from hybridmcp.runtime import Context
from hybridmcp.state import InputState, OutputState, State


# Each routing decision reads only what its node has just written, so the node returns it with
# its update (a LangGraph ``Command``, see ``observed`` and ``phases``). A conditional edge
# would read the whole state back instead, copying every channel, at every step of every run.
def dispatch(update: Mapping[str, Any]) -> list[Send] | str:
    """Fan the pending work out to the parallel branches, one ``Send`` per bounded batch of
    attempts (each call in a batch is still checkpointed on its own)."""
    pending = update.get("pending") or []
    if not pending:
        return "monitor"
    return [Send(side, batch) for side, batch in batches(pending)]


def after_monitor(update: Mapping[str, Any]) -> str:
    """Loop while work moves to another provider; otherwise integrate."""
    return "reallocate" if update.get("moves") else "integrate"


async def to_review(state: State, runtime: Runtime[Context]) -> str | None:
    """After synchronize: a conflict a human must decide pauses in review, before learning."""
    return "review" if await human_needed(state, runtime) else None


WORK = ("internal", "external", "monitor")


def build_graph() -> StateGraph[State, Context, InputState, OutputState]:
    """The uncompiled coordinator; compile it with your own checkpointer and store."""
    builder = StateGraph(
        State, context_schema=Context, input_schema=InputState, output_schema=OutputState
    )
    # LangGraph's add_node overloads type neither a node taking (state, runtime, config) nor
    # one fed a Send payload (Batch) instead of the state; both are supported at run time.
    # ``then``: the node's routing, on its update; ``destinations``: where it can lead.
    builder.add_node(  # type: ignore[call-overload]
        "assess",
        phases(State, ("analyze", analyze), ("arbitrate", arbitrate), then=dispatch),
        destinations=WORK,
    )
    builder.add_node("internal", observed("internal", internal))  # type: ignore[call-overload]
    builder.add_node("external", observed("external", external))  # type: ignore[call-overload]
    builder.add_node(
        "monitor",
        observed("monitor", monitor, then=after_monitor),
        destinations=("reallocate", "integrate"),
    )
    builder.add_node(
        "reallocate", observed("reallocate", reallocate, then=dispatch), destinations=WORK
    )
    builder.add_node(  # type: ignore[call-overload]
        "integrate",
        phases(State, ("synchronize", synchronize, to_review), ("learn", learn)),
        destinations=("review", END),
    )
    builder.add_node(  # type: ignore[call-overload]
        "review", phases(State, ("review", review), ("learn", learn)), destinations=(END,)
    )

    builder.add_edge(START, "assess")
    builder.add_edge("internal", "monitor")
    builder.add_edge("external", "monitor")
    return builder


graph = build_graph().compile(name="hybridmcp")
"""The compiled graph served by ``langgraph.json`` (the server supplies persistence)."""

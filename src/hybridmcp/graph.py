"""The coordinator as a LangGraph state machine: the picture of the flow.

START → assess ─Send→ internal ─┐      assess: analyze, then arbitrate (spec phase 1)
               └Send→ external ─┤
                                ↓
  reallocate ←─(work moves)──── settle  settle: monitor (phase 2's checkpoint), then, once
      │ Send→ internal / external  │      nothing moves, synchronize and learn (phase 3)
      └──────→ (back to settle)    ↓
                                  END
                                   └→ review → END  (a conflict a human must decide:
                                                     interrupt(), then learn)

Phases that always follow one another share a node (:mod:`hybridmcp.phases`): each is its own
function in ``nodes/`` and reports its own progress, and the run pays one LangGraph step for
them instead of one each. A phase may end its node early and send the run elsewhere: monitor
to reallocate while work moves, synchronize to review.
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
        return "settle"
    return [Send(side, batch) for side, batch in batches(pending)]


async def to_reallocate(state: State, runtime: Runtime[Context]) -> str | None:
    """After monitor: while work moves to another provider, it goes out again before
    anything is integrated."""
    return "reallocate" if state.get("moves") else None


async def to_review(state: State, runtime: Runtime[Context]) -> str | None:
    """After synchronize: a conflict a human must decide pauses in review, before learning."""
    return "review" if await human_needed(state, runtime) else None


WORK = ("internal", "external", "settle")


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
    builder.add_node(  # type: ignore[call-overload]
        "settle",
        phases(
            State,
            ("monitor", monitor, to_reallocate),
            ("synchronize", synchronize, to_review),
            ("learn", learn),
        ),
        destinations=("reallocate", "review", END),
    )
    builder.add_node(
        "reallocate", observed("reallocate", reallocate, then=dispatch), destinations=WORK
    )
    builder.add_node(  # type: ignore[call-overload]
        "review", phases(State, ("review", review), ("learn", learn)), destinations=(END,)
    )

    builder.add_edge(START, "assess")
    builder.add_edge("internal", "settle")
    builder.add_edge("external", "settle")
    return builder


graph = build_graph().compile(name="hybridmcp")
"""The compiled graph served by ``langgraph.json`` (the server supplies persistence)."""

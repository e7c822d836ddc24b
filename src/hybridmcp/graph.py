"""The coordinator as a LangGraph state machine: the picture of the flow.

START → assess ─Send→ internal ─┐      assess: analyze, then arbitrate (spec phase 1)
               └Send→ external ─┤      (a round of one batch: its branch settles it, below)
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
to reallocate while work moves, synchronize to review. For the same reason a round whose work
is one batch (up to 64 attempts on one side) sends no batch: its branch reads the work from
the state, makes the calls, and settles the round in the same step, as ``settle`` would once
every batch is back (there is nothing else to wait for).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, RunnableConfig, Send

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
from hybridmcp.state import Batch, InputState, OutputState, State


# Each routing decision reads only what its node has just written, so the node returns it with
# its update (a LangGraph ``Command``, see ``observed`` and ``phases``). A conditional edge
# would read the whole state back instead, copying every channel, at every step of every run.
def dispatch(update: Mapping[str, Any]) -> list[Send] | str:
    """Fan the pending work out to the parallel branches, one ``Send`` per bounded batch of
    attempts (each call in a batch is still checkpointed on its own); the round's only batch
    goes to its branch as the state's ``pending`` work."""
    pending = update.get("pending") or []
    if not pending:
        return "settle"
    work = batches(pending)
    if len(work) == 1:
        return work[0][0]
    return [Send(side, batch) for side, batch in work]


async def to_reallocate(state: State, runtime: Runtime[Context]) -> str | None:
    """After monitor: while work moves to another provider, it goes out again before
    anything is integrated."""
    return "reallocate" if state.get("moves") else None


async def to_review(state: State, runtime: Runtime[Context]) -> str | None:
    """After synchronize: a conflict a human must decide pauses in review, before learning."""
    return "review" if await human_needed(state, runtime) else None


WORK = ("internal", "external", "settle")
SETTLE: tuple[Any, ...] = (
    ("monitor", monitor, to_reallocate),
    ("synchronize", synchronize, to_review),
    ("learn", learn),
)
"""The phases that end a round: monitor, then, once nothing moves, synchronize and learn."""


def branch(side: str, work: Callable[[Batch, Runtime[Context]], Awaitable[dict[str, Any]]]) -> Any:
    """A parallel branch's node. Fed a batch (``Send``: one of the round's batches), it makes
    the batch's calls, and the round settles in ``settle`` once every batch is back. Fed the
    state (the round's only batch: its ``pending`` work), it makes the calls and then runs
    the settle phases itself."""

    async def pending(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        return await work(Batch(items=state["pending"]), runtime)

    alone = phases(State, (side, pending), *SETTLE)

    async def node(payload: Any, runtime: Runtime[Context], config: RunnableConfig) -> Any:
        if "items" in payload:
            return Command(update=await work(payload, runtime), goto="settle")
        return await alone(payload, runtime, config)

    return node


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
    after_work = ("settle", "reallocate", "review", END)
    for side, work in (("internal", internal), ("external", external)):
        builder.add_node(side, branch(side, work), destinations=after_work)
    builder.add_node(  # type: ignore[call-overload]
        "settle", phases(State, *SETTLE), destinations=("reallocate", "review", END)
    )
    builder.add_node(
        "reallocate", observed("reallocate", reallocate, then=dispatch), destinations=WORK
    )
    builder.add_node(  # type: ignore[call-overload]
        "review", phases(State, ("review", review), ("learn", learn)), destinations=(END,)
    )

    builder.add_edge(START, "assess")
    return builder


graph = build_graph().compile(name="hybridmcp")
"""The compiled graph served by ``langgraph.json`` (the server supplies persistence)."""

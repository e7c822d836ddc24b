"""Phase 3, optional: a human decides conflicts the cross-validation could not settle.

Reached only when a human must decide (``human_needed``): with ``coordination_config.
interrupt_on_conflict`` on, every conflict synchronize recorded whose disagreement
(1 - similarity) reaches ``conflict_interrupt_threshold`` pauses the run with ``interrupt()``;
the run needs a checkpointer, and resumes with ``Command(resume={request_id: choice})`` where a
choice is ``"internal"`` or ``"external"`` (take that side's answer) or any other value (use it
as the answer). A request left out keeps the automatic resolution; a bare choice applies to all.
A mapping that names a request not under review is refused before the run resumes
(:func:`check_choices`): the pause is kept for a corrected answer.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from hybridmcp.config import CoordinationConfig
from hybridmcp.errors import TaskError
from hybridmcp.events import EventCode
from hybridmcp.policy.integration import run_status
from hybridmcp.records import RequestResult
from hybridmcp.runtime import Context, resources_for
from hybridmcp.state import State

SIDES = ("internal", "external")


def _to_review(state: State, cfg: CoordinationConfig) -> list[dict[str, Any]]:
    """The conflicts of this run that need a human, as the reviewer sees them: none unless
    ``interrupt_on_conflict`` is on, then those reaching ``conflict_interrupt_threshold``."""
    if not cfg.interrupt_on_conflict:
        return []
    threshold = cfg.conflict_interrupt_threshold
    results = state.get("results", {})
    sides = {a["provider"]: a["side"] for a in state.get("attempts", []) if a["ok"]}
    out = []
    for c in state.get("conflicts", []):
        rid = c["request_id"]
        disagreement = round(1 - c["conflict_details"]["similarity"], 4)
        if rid not in results or disagreement < threshold:
            continue
        values = {sides.get(p, p): v for p, v in c["values"].items()}
        by_provider = {p: sides.get(p, p) for p in c["values"]}
        out.append(
            {
                "request_id": rid,
                "skill": results[rid]["skill"],
                "disagreement": disagreement,
                "disagreement_level": c["conflict_details"]["disagreement_level"],
                "conflict_areas": c["conflict_details"]["conflict_areas"],
                "values": values,
                "sides": by_provider,
                "proposed": results[rid]["value"],
            }
        )
    return out


def check_choices(decision: Any, conflicts: list[dict[str, Any]]) -> None:
    """Refuse a reviewer's mapping that names requests not under review (a typo would
    otherwise leave every conflict to its automatic resolution and end the pause). A bare
    choice, and an empty mapping (keep every automatic resolution), are always answers."""
    if not isinstance(decision, dict):
        return
    under = [c["request_id"] for c in conflicts]
    unknown = sorted(set(decision) - set(under), key=str)
    if unknown:
        raise TaskError(
            f"the decision names {', '.join(map(repr, unknown))}, not under review; "
            f"under review: {', '.join(map(repr, under))} (answer 'internal', 'external' or "
            "the value to use, per request id)"
        )


def _decide(result: RequestResult, conflict: dict[str, Any], choice: Any) -> RequestResult:
    """The human's choice settles the request; a side chosen is evidence of correctness: its
    providers are confirmed, the others refuted (learn folds the verdicts in)."""
    if isinstance(choice, str) and choice in SIDES and choice in conflict["values"]:
        value, how = conflict["values"][choice], choice
        verdicts = {p: side == choice for p, side in conflict["sides"].items()}
        chosen = next(p for p, side in conflict["sides"].items() if side == choice)
        served_by: dict[str, str] | None = {"provider": chosen, "side": choice}
    else:
        value, how, verdicts, served_by = choice, "value", {}, None
    return result | {
        "status": "ok",
        "value": value,
        "served_by": served_by,
        "verdicts": verdicts,
        "resolution": {"by": "human", "choice": how},
    }


async def human_needed(state: State, runtime: Runtime[Context]) -> bool:
    """Whether the run must pause for a human (synchronize has run): :func:`_to_review`."""
    cfg = (await resources_for(runtime.context)).config.coordination_config
    return bool(_to_review(state, cfg))


async def review(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    cfg = (await resources_for(runtime.context)).config.coordination_config
    conflicts = _to_review(state, cfg)
    if not conflicts:
        return {}
    decision = interrupt(
        {
            "type": "conflict_review",
            "question": "The sides disagree. For each request id, answer 'internal' or "
            "'external' to take that side's value, or give the value to use.",
            "conflicts": conflicts,
        }
    )
    results: dict[str, RequestResult] = {}
    events: list[dict[str, Any]] = []
    for conflict in conflicts:
        rid = conflict["request_id"]
        choice = decision.get(rid) if isinstance(decision, dict) else decision
        if choice is None:
            continue
        results[rid] = _decide(state["results"][rid], conflict, choice)
        how = results[rid]["resolution"]["choice"]
        events.append(
            {"code": EventCode.CONFLICT_RESOLVED_BY_HUMAN, "request_id": rid, "choice": how}
        )
    return {
        "results": results,
        "events": events,
        "status": run_status(state.get("results", {}) | results),
    }

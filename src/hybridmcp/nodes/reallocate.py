"""Phase 2: move failed or degraded work to the best provider not yet tried."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langgraph.runtime import Runtime

from hybridmcp.events import EventCode
from hybridmcp.policy.cost import spent_by
from hybridmcp.policy.hedging import watch_plan
from hybridmcp.runtime import Context, resources_for
from hybridmcp.state import State, work_item


async def reallocate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    res = await resources_for(runtime.context)
    round_no = state.get("round", 1) + 1
    requests = {str(r["id"]): r for r in state["requests"]}
    pending = []
    events: list[dict[str, Any]] = []
    # With a budget, the round's spending starts from what the checkpointed attempts cost,
    # whichever process runs it (a run resumed elsewhere does not get its budget afresh).
    budget = (state.get("constraints") or {}).get("budget")
    spent = spent_by(state.get("attempts", ())) if budget is not None else 0.0
    for move in state.get("moves", []):
        provider = res.registry.provider(move["provider"])
        item = work_item(
            state,
            requests[move["request_id"]],
            provider.id,
            provider.skill,
            provider.side,
            round_no,
        )
        if spent:
            item["spent"] = spent
        allocation: Mapping[str, Any] = state.get("allocations", {}).get(move["request_id"], {})
        coordination = res.config.coordination_config
        item["watch"] = watch_plan(
            allocation,
            provider.id,
            res.config.resilience,
            round_no,
            monitoring=coordination.performance_monitoring,
            parallel=coordination.parallel_execution,
        )
        pending.append(item)
        events.extend(move.get("events", []))
        events.append(
            {
                "code": EventCode.REALLOCATION,
                "request_id": move["request_id"],
                "round": round_no,
                "to_provider": provider.id,
                "to_side": provider.side,
                "reason": move.get("reason"),
            }
        )
    return {"pending": pending, "round": round_no, "moves": [], "events": events}

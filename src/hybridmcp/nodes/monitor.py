"""Phase 2 checkpoint: assess the round, and decide what is settled, failed, or moves."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from hybridmcp.policy.resilience import plan_round
from hybridmcp.runtime import Context, Resources, resources_for
from hybridmcp.state import State


def open_requests(state: State) -> list[str]:
    done = set(state.get("settled", [])) | set(state.get("errors", {}))
    return [str(r["id"]) for r in state["requests"] if str(r["id"]) not in done]


def breaker_windows(res: Resources) -> dict[str, dict[str, Any]]:
    """Each external provider's circuit breaker state: the observed error rates."""
    snapshot = getattr(res.gate.breaker, "snapshot", None)
    return snapshot(res.clock()) if snapshot is not None else {}


async def monitor(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    res = await resources_for(runtime.context)
    cfg = res.config.coordination_config
    max_rounds = cfg.max_rounds if cfg.dynamic_reallocation else 1
    sides = {p.id: p.side for s in res.registry.skills.values() for p in s.providers}
    deadline_ms = (state.get("constraints") or {}).get("deadline_ms")
    deadline_passed = bool(deadline_ms and res.clock() >= state["started_at"] + deadline_ms / 1000)
    plan = plan_round(
        requests=open_requests(state),
        allocations=state.get("allocations", {}),
        attempts=state.get("attempts", []),
        round_no=state.get("round", 1),
        max_rounds=max_rounds,
        sides=sides,
        degradation=res.config.resilience.degradation,
        recent=breaker_windows(res),
        deadline_passed=deadline_passed,
    )
    moved = {m["request_id"] for m in plan.moves}
    return {
        "settled": plan.settled + list(plan.failed),
        "errors": plan.failed,
        "moves": [
            m | {"events": [e for e in plan.events if e.get("request_id") == m["request_id"]]}
            for m in plan.moves
        ],
        "events": [e for e in plan.events if e.get("request_id") not in moved],
    }

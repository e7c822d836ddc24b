"""Phase 2 checkpoint: assess the round, and decide what is settled, failed, or moves."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from langgraph.runtime import Runtime

from hybridmcp.policy.degradation import plan_round
from hybridmcp.policy.integration import UNRESOLVED, answer_for, integrate
from hybridmcp.records import Attempt
from hybridmcp.runtime import Context, Resources, resources_for
from hybridmcp.state import State

if TYPE_CHECKING:
    from hybridmcp.capabilities.gate import Breaker


def open_requests(state: State) -> list[str]:
    done = set(state.get("settled", [])) | set(state.get("errors", {}))
    return [str(r["id"]) for r in state["requests"] if str(r["id"]) not in done]


def disputed(state: State, res: Resources, open_ids: list[str] | None = None) -> set[str]:
    """Open critical requests whose answers disagree with no evidence to decide: a third
    provider, where there is one, is asked to break the tie (``open_ids``: the open requests,
    when the caller has them)."""
    critical = {str(r["id"]): r for r in state["requests"] if r.get("critical")}
    if not critical:
        return set()
    ok: dict[str, list[Attempt]] = {}
    for a in state.get("attempts", []):
        if a["ok"] and a["request_id"] in critical:
            ok.setdefault(a["request_id"], []).append(a)
    out = set()
    still_open = set(open_requests(state) if open_ids is None else open_ids)
    for rid in still_open & {r for r, answers in ok.items() if len(answers) > 1}:
        allocation = state.get("allocations", {}).get(rid)
        scores = allocation.get("scores", {}) if allocation else {}
        skill = res.registry.get(critical[rid]["skill"])
        answers = [answer_for(a, scores.get(a["provider"], {})) for a in ok[rid]]
        if integrate(rid, answers, skill.comparator, critical=True).status == UNRESOLVED:
            out.add(rid)
    return out


class _Windows(Mapping[str, dict[str, Any]]):
    """Each external provider's circuit breaker state at ``now`` (``Resources.breaker_windows``),
    taken when a degradation event first reads it: most rounds have none. The same numbers:
    the breakers cannot change while the round is planned (nothing awaits), and ``now`` is
    the round's."""

    def __init__(self, board: Breaker, now: float) -> None:
        self.board, self.now = board, now
        self._windows: dict[str, dict[str, Any]] | None = None

    @property
    def windows(self) -> dict[str, dict[str, Any]]:
        if self._windows is None:
            self._windows = self.board.snapshot(self.now)
        return self._windows

    def __getitem__(self, provider: str) -> dict[str, Any]:
        return self.windows[provider]

    def __iter__(self) -> Iterator[str]:
        return iter(self.windows)

    def __len__(self) -> int:
        return len(self.windows)


async def monitor(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    res = await resources_for(runtime.context)
    cfg = res.config.coordination_config
    max_rounds = cfg.max_rounds if cfg.dynamic_reallocation else 1
    sides, effects = res.provider_sides()
    deadline_ms = (state.get("constraints") or {}).get("deadline_ms")
    deadline_passed = bool(deadline_ms and res.clock() >= state["started_at"] + deadline_ms / 1000)
    open_ids = open_requests(state)
    plan = plan_round(
        requests=open_ids,
        allocations=state.get("allocations", {}),
        attempts=state.get("attempts", []),
        round_no=state.get("round", 1),
        max_rounds=max_rounds,
        sides=sides,
        degradation=res.config.resilience.degradation,
        recent=_Windows(res.gate.breaker, res.clock()),
        deadline_passed=deadline_passed,
        disputed=disputed(state, res, open_ids),
        effects=effects,
    )
    moved = {m["request_id"] for m in plan.moves}
    update: dict[str, Any] = {"settled": plan.settled + list(plan.failed)}
    # Only what changes is written (analyze created ``errors`` and ``events``; ``moves`` is
    # cleared by reallocate): an empty write would change nothing, at a cost per step.
    if plan.failed:
        update["errors"] = plan.failed
    if plan.moves or state.get("moves"):
        update["moves"] = [
            m | {"events": [e for e in plan.events if e.get("request_id") == m["request_id"]]}
            for m in plan.moves
        ]
    events = [e for e in plan.events if e.get("request_id") not in moved]
    if events:
        update["events"] = events
    return update

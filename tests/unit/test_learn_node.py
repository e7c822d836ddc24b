"""The learn node: what reaches the statistics. Calls the gate refused never left the process,
so they say nothing of the provider and are not learned as its failures."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.runtime import Runtime
from langgraph.store.memory import InMemoryStore

from hybridmcp.config import parse_config
from hybridmcp.nodes.learn import learn
from hybridmcp.policy.blame import learnable
from hybridmcp.runtime import Context, Resources
from hybridmcp.stats_store import load_stats

PROVIDER, SKILL = "internal:math.calculate", "math.calculate"


def attempt(n: int, ok: bool, **flags: Any) -> dict[str, Any]:
    return {
        "request_id": f"r{n}",
        "skill": SKILL,
        "provider": PROVIDER,
        "side": "internal",
        "round": 1,
        "idempotency_key": f"run:r{n}:{PROVIDER}:1",
        "ok": ok,
        "started_at": 1000.0 + n,
        "latency_ms": 2.0,
        "cost": 0.0,
        "value": {"value": n} if ok else None,
        "error": None if ok else "refused",
    } | flags


@pytest.mark.parametrize(
    ("flags", "refused"),
    [
        ({"privacy": "refuse"}, True),
        ({"budget_exhausted": True}, True),
        ({"circuit_open": True}, True),
        ({"privacy": "redact"}, False),
        ({}, False),
    ],
)
def test_refused_by_gate(flags: dict[str, Any], refused: bool) -> None:
    assert (learnable(attempt(0, False, **flags), set()) is None) is refused


async def test_refused_attempts_are_not_learned_as_failures() -> None:
    resources = await Resources.open(parse_config({}))
    store = InMemoryStore()
    state: dict[str, Any] = {
        "run_id": "run",
        "started_at": 1000.0,
        "requests": [{"id": f"r{n}", "skill": SKILL, "args": {}} for n in range(4)],
        "attempts": [
            attempt(0, True),
            attempt(1, False, privacy="refuse"),
            attempt(2, False, budget_exhausted=True),
            attempt(3, False, circuit_open=True),
        ],
        "results": {},
        "allocations": {},
    }
    try:
        await learn(state, Runtime(context=Context(resources=resources), store=store))  # type: ignore[arg-type]
    finally:
        await resources.close()
    stats = (await load_stats(store, [(PROVIDER, SKILL)]))[(PROVIDER, SKILL)]
    assert stats.calls == 1 and stats.failures == 0

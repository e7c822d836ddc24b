"""The learn node: what reaches the statistics. Calls the gate refused never left the process,
so they say nothing of the provider and are not learned as its failures."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langgraph.runtime import Runtime
from langgraph.store.memory import InMemoryStore

from hybridmcp.config import parse_config
from hybridmcp.nodes.learn import learn
from hybridmcp.policy.blame import learnable
from hybridmcp.policy.learning import (
    ProviderStats,
    mark_learned,
    observe_call,
    observe_censored,
)
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


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.floats(0, 1e5, allow_nan=False),
            st.floats(0, 10, allow_nan=False),
            st.booleans(),
            st.booleans(),
        ),
        max_size=40,
    )
)
def test_statistics_are_plain_data_whatever_was_folded_in(
    observations: list[tuple[bool, float, float, bool, bool]],
) -> None:
    """What is stored is exactly the dataclass's fields, and reads back equal."""
    stats = ProviderStats(PROVIDER, SKILL)
    for n, (ok, latency, cost, slow, censored) in enumerate(observations):
        if censored:
            stats = observe_censored(stats, latency_ms=latency, now=float(n), slow=slow)
        else:
            stats = observe_call(
                stats, ok=ok, latency_ms=latency, cost=cost, now=float(n), slow=slow
            )
        stats = mark_learned(stats, f"run{n}")
    assert stats.to_dict() == dataclasses.asdict(stats)
    assert ProviderStats.from_dict(stats.to_dict()) == stats
    assert stats.calls == sum(1 for o in observations if not o[4])
    assert stats.censored == sum(1 for o in observations if o[4])


async def test_a_run_folds_every_attempt_in_the_order_the_calls_started() -> None:
    """The learn node gives the statistics that folding each attempt in turn gives: every
    call counted once, in start order, the run remembered; a provider scored and not used
    ages."""
    resources = await Resources.open(parse_config({}))
    store = InMemoryStore()
    other = ("internal:text.stats", "text.stats")
    order = [3, 0, 4, 1, 2, 5]
    attempts = [
        attempt(n, n % 3 != 1) | {"latency_ms": 1.0 + 7.0 * n, "started_at": 1000.0 + order[n]}
        for n in range(6)
    ]
    state: dict[str, Any] = {
        "run_id": "run",
        "started_at": 1000.0,
        "requests": [{"id": f"r{n}", "skill": SKILL, "args": {}} for n in range(6)],
        "attempts": attempts,
        "results": {},
        "allocations": {"r0": {"scores": {PROVIDER: {}, other[0]: {}}}},
    }
    try:
        await load_stats(store, [(PROVIDER, SKILL)])
        runtime = Runtime(context=Context(resources=resources), store=store)
        await learn(state, runtime)  # type: ignore[arg-type]
        learned = await load_stats(store, [(PROVIDER, SKILL), other])
    finally:
        await resources.close()
    now_used, passed = learned[PROVIDER, SKILL], learned[other]
    assert passed.passed_over == 1 and passed.calls == 0 and passed.recent_runs == ("run@1000.0",)
    expected = ProviderStats(PROVIDER, SKILL)
    for a in sorted(attempts, key=lambda a: a["started_at"]):
        expected = observe_call(
            expected,
            ok=a["ok"],
            latency_ms=a["latency_ms"],
            cost=0.0,
            now=now_used.updated_at or 0.0,
            alpha=resources.config.arbitration_config.ewma_alpha,
        )
    assert now_used == mark_learned(expected, "run@1000.0")


def _run_state(run_id: str, started_at: float, n: int = 2) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "started_at": started_at,
        "requests": [{"id": f"r{i}", "skill": SKILL, "args": {}} for i in range(n)],
        "attempts": [attempt(i, True) for i in range(n)],
        "results": {},
        "allocations": {},
    }


@pytest.mark.parametrize("others", [0, 1, 40])
async def test_a_run_resumed_at_its_learn_step_is_counted_once_however_many_learned_since(
    tmp_path, others: int
) -> None:
    """A run killed after its learn step saved the statistics and before the step's checkpoint
    runs learn again when resumed. Its own record in the store (saved in the same write as the
    statistics) says it learned: nothing is counted twice, even after more runs than the
    statistics' own list of recent runs (16) learned into the same records meanwhile."""
    from hybridmcp.persistence import open_persistence

    resources = await Resources.open(parse_config({}))
    try:
        async with open_persistence(str(tmp_path / "learn.db")) as (_saver, store):
            runtime = Runtime(context=Context(resources=resources), store=store)
            start = time.time()
            killed = _run_state("killed", start)
            await learn(killed, runtime)  # type: ignore[arg-type]
            for k in range(others):
                await learn(_run_state(f"other{k}", start + 1 + k), runtime)  # type: ignore[arg-type]
            await learn(killed, runtime)  # type: ignore[arg-type]  # the resumed run
            stats = (await load_stats(store, [(PROVIDER, SKILL)]))[(PROVIDER, SKILL)]
    finally:
        await resources.close()
    assert stats.calls == 2 * (1 + others)


async def test_the_records_of_runs_older_than_the_kept_days_are_deleted(tmp_path) -> None:
    """One record per learned run would grow without end: those of runs that started more
    than ``LEARNED_KEPT_DAYS`` ago go (one range of keys, once a day per store)."""
    from hybridmcp.persistence import open_persistence
    from hybridmcp.stats_store import LEARNED_KEPT_DAYS, LEARNED_NAMESPACE

    day = 86400.0
    now = 1_800_000_000.0
    clock = [now - (LEARNED_KEPT_DAYS + 3) * day]
    resources = await Resources.open(parse_config({}))
    resources.clock = lambda: clock[0]
    try:
        async with open_persistence(str(tmp_path / "learn.db")) as (_saver, store):
            runtime = Runtime(context=Context(resources=resources), store=store)
            for k, age in enumerate((LEARNED_KEPT_DAYS + 3, LEARNED_KEPT_DAYS + 1, 2, 0)):
                clock[0] = now - age * day
                await learn(_run_state(f"r{k}", clock[0]), runtime)  # type: ignore[arg-type]
            kept = await store.asearch(LEARNED_NAMESPACE, limit=100)
    finally:
        await resources.close()
    assert sorted(item.key.partition("|")[2].partition("@")[0] for item in kept) == ["r2", "r3"]

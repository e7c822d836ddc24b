"""Analysis and arbitration assess and decide requests that are alike once, each getting a
copy: every request of a mixed run gets exactly the profile, the allocation and the watched
work item it gets when it is analysed and arbitrated alone (against a real MCP server, with
learned statistics that make validation sampling draw)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from langgraph.runtime import Runtime
from langgraph.store.memory import InMemoryStore

from hybridmcp import parse_config
from hybridmcp.nodes.analyze import analyze
from hybridmcp.nodes.arbitrate import arbitrate
from hybridmcp.policy.learning import ProviderStats
from hybridmcp.runtime import Context, Resources
from hybridmcp.stats_store import save_stats
from hybridmcp.testing.harness import faultserver_stdio

EXTERNAL, INTERNAL = "mcp:faults/calculate", "internal:math.calculate"
CONFIG = parse_config(
    {
        "mcpServers": {"faults": {**faultserver_stdio(), "clearance": "internal"}},
        "skills": {
            "math.calculate": {
                "providers": [
                    {
                        "side": "external",
                        "server": "faults",
                        "tool": "calculate",
                    }
                ]
            }
        },
        "privacy": {"policy": "redact"},
    }
)


LONG = " + ".join(["1"] * 200)  # a few of these take the run's scan off the event loop


def requests(rng: random.Random, n: int, long: bool = True) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        r: dict[str, Any] = {
            "id": f"r{i}",
            "skill": rng.choice(["math.calculate", "math.calculate", "time.now"]),
            "strategy": rng.choice(["auto", "auto", "internal", "external", "hybrid"]),
        }
        r["args"] = (
            {
                "expression": rng.choice(
                    ["1 + 2", "2 * 3", "10 + 20", "card 4111 1111 1111 1111", *[LONG] * long]
                )
            }
            if r["skill"] == "math.calculate"
            else {"timezone": "UTC"}
        )
        if rng.random() < 0.3:
            r["critical"] = True
        if rng.random() < 0.3:
            r["fallback"] = rng.random() < 0.5
        if rng.random() < 0.3:
            r["sensitivity"] = rng.choice(["public", "internal", "confidential", "restricted"])
        out.append(r)
    return out


async def decide(res: Resources, store: Any, reqs: list[dict[str, Any]], run: str) -> Any:
    runtime = Runtime(context=Context(resources=res), store=store)
    state: dict[str, Any] = {"requests": reqs, "constraints": {}, "run_id": run}
    state |= await analyze(state, runtime, {"configurable": {"thread_id": run}})  # type: ignore[arg-type]
    update = await arbitrate(state, runtime)  # type: ignore[arg-type]
    pending = {(p["request_id"], p["provider"]): p for p in update["pending"]}
    errors = state["errors"] | update.get("errors", {})
    return update["allocations"], pending, errors, state["profiles"]


async def test_every_request_of_a_mixed_run_is_allocated_as_it_would_be_alone():
    async with asyncio.timeout(120):
        res = await Resources.open(CONFIG)
        try:
            for learned in (False, True):
                store = InMemoryStore()
                if learned:  # both sides agreed ten times in a row: validation sampling draws
                    await save_stats(
                        store,
                        [
                            ProviderStats(
                                p,
                                "math.calculate",
                                calls=40,
                                successes=40,
                                evidence=40.0,
                                ewma_latency_ms=2.0,
                                p95_latency_ms=3.0,
                                success_rate=1.0,
                                cross_validations=12,
                                agreements=12,
                                agreement_streak=12,
                            )
                            for p in (EXTERNAL, INTERNAL)
                        ],
                    )
                for seed in range(8):
                    run = f"run-{learned}-{seed}"
                    # small runs are scanned on the event loop, large ones in a thread
                    reqs = (
                        requests(random.Random(seed), 60)
                        if seed % 2
                        else requests(random.Random(seed), 10, long=False)
                    )
                    together, pending, errors, profiles = await decide(res, store, reqs, run)
                    assert together  # the run decided something
                    for r in reqs:
                        alone, alone_pending, alone_errors, alone_profiles = await decide(
                            res, store, [r], run
                        )
                        rid = r["id"]
                        assert profiles.get(rid) == alone_profiles.get(rid), r
                        assert together.get(rid) == alone.get(rid), r
                        assert errors.get(rid) == alone_errors.get(rid), r
                        mine = {k: v for k, v in pending.items() if k[0] == rid}
                        assert mine == alone_pending, r
                    modes = {a["mode"] for a in together.values()}
                    assert {"internal", "hybrid"} <= modes
        finally:
            await res.close()

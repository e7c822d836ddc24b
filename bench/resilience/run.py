"""Resilience benchmark: hybridmcp against plain strategies, under injected faults.

    python -m bench.resilience                  # the full run (a few minutes on 2 cores)
    python -m bench.resilience --requests 5 --warmup 3 --scenarios healthy,hang   # a smoke run

Every scenario starts a fresh fault server (the project's own, over stdio) whose ``calculate``
tool serves ``math.calculate`` beside the built-in internal skill. Healthy, the external side
answers in 10-15 ms (an injected network latency); each scenario then changes the server's faults
at run time (``fault_control``) after a warm-up every strategy gets:

- ``healthy``: no fault;
- ``slow10x``: 10x the latency (100-150 ms);
- ``errors30``: 30% of calls fail;
- ``hang``: calls never answer;
- ``crash``: the process exits in the middle of the 10th call after the warm-up (the pool starts
  a new one, which is healthy).

Strategies: ``external-only``, ``internal-only`` and ``naive retry-then-fallback`` (external,
once more on failure, then internal) are plain clients over the same held MCP session and gate
(no breaker); ``hybridmcp`` is the coordinator with its defaults (arbitration, cross-validation,
reallocation, circuit breaker, hedging, straggler cut). Requests run one at a time; the latency
of a request is the wall time until its answer (for hybridmcp, a whole graph run: about 4 ms of
the coordinator's own overhead is in every figure).

Results: ``bench/results/resilience.json`` and ``bench/results/resilience.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.plain import PlainClient
from hybridmcp.config import HybridConfig, parse_config
from hybridmcp.coordinator import Coordinator
from hybridmcp.errors import HybridMCPError
from hybridmcp.task import parse_task
from hybridmcp.testing.harness import faultserver_stdio

RESULTS = Path(__file__).resolve().parents[1] / "results"
BASE_LATENCY = {"latency_ms": 10, "jitter_ms": 5}
SCENARIOS: dict[str, dict[str, Any]] = {
    "healthy": {},
    "slow10x": {"latency_ms": 100, "jitter_ms": 50},
    "errors30": {**BASE_LATENCY, "fail_rate": 0.3},
    "hang": {**BASE_LATENCY, "hang": True},
    "crash": {**BASE_LATENCY, "crash_after": 10},
}
STRATEGIES = ("external-only", "internal-only", "naive-retry-fallback", "hybridmcp")
CALL_TIMEOUT_MS = 250


def bench_config() -> HybridConfig:
    return parse_config(
        {
            "mcpServers": {"faulty": faultserver_stdio({"calculate": BASE_LATENCY}, seed=11)},
            "skills": {
                "math.calculate": {
                    "providers": [
                        {
                            "side": "external",
                            "server": "faulty",
                            "tool": "calculate",
                            "timeout_ms": CALL_TIMEOUT_MS,
                            "expected_latency_ms": 12,
                        }
                    ]
                }
            },
        }
    )


def expressions(n: int, seed: int) -> list[tuple[str, float]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b, c = rng.randint(1, 999), rng.randint(1, 99), rng.randint(1, 9)
        out.append((f"({a} + {b}) * {c}", float((a + b) * c)))
    return out


@dataclass
class Outcome:
    ok: bool
    latency_ms: float
    external_calls: int = 0
    hedges: int = 0
    bad: bool = False
    """An external call failed, timed out or was cut off as degraded."""
    detected: bool = False
    """``EXTERNAL_DEGRADATION_DETECTED`` was reported."""
    circuit_opened: bool = False
    started: float = 0.0


@dataclass
class Cell:
    """One strategy under one scenario."""

    scenario: str
    strategy: str
    requests: int
    success_rate: float
    p50_ms: float
    p99_ms: float
    external_calls_per_request: float
    hedge_extra_calls: float
    detect_calls: int | None
    """External calls from the first bad one to the first degradation event, inclusive."""
    detect_ms: float | None
    circuit_calls: int | None
    """External calls from the first bad one until the circuit opened, inclusive."""
    seconds: float
    outcomes: list[Outcome] = field(default_factory=list, repr=False)


class Plain(PlainClient):
    """The baseline clients of ``math.calculate`` (see :class:`bench.plain.PlainClient`)."""

    def __init__(self, co: Coordinator) -> None:
        super().__init__(co)
        self.external = self.provider("math.calculate", "external")
        self.internal = self.provider("math.calculate", "internal")

    async def run(self, strategy: str, expression: str) -> tuple[Any, int]:
        args = {"expression": expression}
        if strategy == "internal-only":
            return await self.call(self.internal, args), 0
        if strategy == "external-only":
            return await self.call(self.external, args), 1
        for attempt in (1, 2):  # naive: try external twice, then fall back to internal
            try:
                return await self.call(self.external, args), attempt
            except HybridMCPError:
                continue
        return await self.call(self.internal, args), 2


HEALTHY_MAX_MS = 2 * (BASE_LATENCY["latency_ms"] + BASE_LATENCY["jitter_ms"])


def _bad(attempt: dict[str, Any]) -> bool:
    """A failed external call, or a hedge's loser cut after running longer than any healthy
    call takes here (the degraded hedge); not a healthy call that merely lost a race."""
    if attempt["ok"]:
        return False
    return attempt["error"] != "cancelled: hedge lost" or attempt["latency_ms"] > HEALTHY_MAX_MS


async def run_hybridmcp(co: Coordinator, expression: str, n: int) -> tuple[Any, Outcome]:
    # Half the requests leave the choice to arbitration (auto: cross-validated while both sides
    # are healthy), half prefer the external service (single-side: these are the ones hedged).
    request = {"id": "q", "skill": "math.calculate", "args": {"expression": expression}}
    task = parse_task({"requests": [request | {"strategy": "external" if n % 2 else "auto"}]})
    t0 = time.perf_counter()
    out = await co.run(task)
    latency = (time.perf_counter() - t0) * 1000
    result = out["results"]["q"]
    codes = [e["code"] for e in out["events"]]
    external = [a for a in result["attempts"] if a["side"] == "external"]
    outcome = Outcome(
        ok=result["error"] is None,
        latency_ms=latency,
        external_calls=len(external),
        hedges=codes.count("HEDGE_STARTED"),
        bad=any(_bad(a) for a in external),
        detected="EXTERNAL_DEGRADATION_DETECTED" in codes,
        circuit_opened="CIRCUIT_OPENED" in codes,
    )
    return result["value"], outcome


async def one_request(
    strategy: str, co: Coordinator, plain: Plain, expression: str, expected: float, n: int
) -> Outcome:
    started = time.perf_counter()
    if strategy == "hybridmcp":
        value, outcome = await run_hybridmcp(co, expression, n)
    else:
        t0 = time.perf_counter()
        try:
            value, calls = await plain.run(strategy, expression)
            ok = True
        except HybridMCPError:
            value, calls, ok = None, 1, False
        outcome = Outcome(ok, (time.perf_counter() - t0) * 1000, external_calls=calls)
    correct = isinstance(value, dict) and value.get("value") == expected
    outcome.ok = outcome.ok and correct
    outcome.started = started
    return outcome


def detection(outcomes: list[Outcome], flag: str) -> tuple[int | None, float | None]:
    """External calls (and ms) from the first bad call to the first outcome with ``flag``."""
    first = next((i for i, o in enumerate(outcomes) if o.bad), None)
    if first is None:
        return None, None
    for i in range(first, len(outcomes)):
        if getattr(outcomes[i], flag):
            calls = sum(o.external_calls for o in outcomes[first : i + 1])
            done = outcomes[i].started + outcomes[i].latency_ms / 1000
            return calls, round((done - outcomes[first].started) * 1000, 1)
    return None, None


async def set_faults(co: Coordinator, faults: dict[str, Any]) -> None:
    control = {"faults": {"calculate": faults} if faults else {}, "reset_counters": True}
    await co.resources.pool.call_tool("faulty", "fault_control", control, 10)


async def cell(scenario: str, strategy: str, requests: int, warmup: int, seed: int) -> Cell:
    started = time.perf_counter()
    async with Coordinator.open(bench_config()) as co:
        plain = Plain(co)
        work = expressions(warmup + requests, seed)
        for n, (expression, expected) in enumerate(work[:warmup]):  # the same warm-up for all
            await one_request(strategy, co, plain, expression, expected, n)
        await set_faults(co, SCENARIOS[scenario] or BASE_LATENCY)
        outcomes = [
            await one_request(strategy, co, plain, expression, expected, n)
            for n, (expression, expected) in enumerate(work[warmup:])
        ]
    latencies = [o.latency_ms for o in outcomes]
    detect_calls, detect_ms = detection(outcomes, "detected")
    circuit_calls, _ = detection(outcomes, "circuit_opened")
    return Cell(
        scenario,
        strategy,
        requests,
        round(sum(o.ok for o in outcomes) / len(outcomes), 4),
        round(float(np.percentile(latencies, 50)), 2),
        round(float(np.percentile(latencies, 99)), 2),
        round(sum(o.external_calls for o in outcomes) / len(outcomes), 3),
        round(sum(o.hedges for o in outcomes) / len(outcomes), 4),
        detect_calls,
        detect_ms,
        circuit_calls,
        round(time.perf_counter() - started, 1),
        outcomes,
    )


def targets(cells: dict[tuple[str, str], Cell]) -> list[str]:
    """The issue's targets, checked against the figures."""
    lines = []
    hy = {s: cells.get((s, "hybridmcp")) for s in SCENARIOS}
    ext = {s: cells.get((s, "external-only")) for s in SCENARIOS}
    healthy = hy.get("healthy")
    for s, c in hy.items():
        if c is None:
            continue
        lines.append(f"- {s}: success {c.success_rate:.2%} (target >= 99.9%)")
    if healthy:
        lines.append(
            f"- healthy: hedging added {healthy.hedge_extra_calls:.2%} extra calls per request "
            "(target <= 5%)"
        )
        for s in ("slow10x", "errors30", "hang", "crash"):
            c, e = hy.get(s), ext.get(s)
            if c is None:
                continue
            ratio = c.p99_ms / healthy.p99_ms if healthy.p99_ms else float("nan")
            below = f", {1 - c.p99_ms / e.p99_ms:.0%} below external-only" if e else ""
            lines.append(
                f"- {s}: p99 {c.p99_ms} ms = {ratio:.2f}x healthy p99 (target <= 1.5x){below} "
                "(target >= 50%)"
            )
            if c.detect_calls is not None:
                circuit = f"; circuit opened after {c.circuit_calls}" if c.circuit_calls else ""
                lines.append(
                    f"- {s}: degradation detected {c.detect_calls} external call(s) after the "
                    f"first bad one, {c.detect_ms} ms{circuit} (target: within 5 calls)"
                )
    return lines


def markdown(cells: dict[tuple[str, str], Cell], meta: dict[str, Any]) -> str:
    head = (
        "| scenario | strategy | success | p50 ms | p99 ms | ext calls/req | hedge extra "
        "| detect (calls / ms) | circuit open (calls) |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for c in cells.values():
        detect = f"{c.detect_calls} / {c.detect_ms}" if c.detect_calls is not None else "-"
        rows.append(
            f"| {c.scenario} | {c.strategy} | {c.success_rate:.2%} | {c.p50_ms} | {c.p99_ms} "
            f"| {c.external_calls_per_request} | {c.hedge_extra_calls:.2%} | {detect} "
            f"| {c.circuit_calls if c.circuit_calls is not None else '-'} |"
        )
    return (
        f"# Resilience benchmark\n\n{meta['requests']} requests per cell after a warm-up of "
        f"{meta['warmup']}, one at a time; external call deadline {CALL_TIMEOUT_MS} ms; "
        f"{meta['machine']}. Generated by `python -m bench.resilience`.\n\n"
        + head
        + "\n".join(rows)
        + "\n\n## Targets\n\n"
        + "\n".join(targets(cells))
        + "\n"
    )


async def main_async(args: argparse.Namespace) -> dict[tuple[str, str], Cell]:
    scenarios = [s for s in args.scenarios.split(",") if s]
    strategies = [s for s in args.strategies.split(",") if s]
    cells: dict[tuple[str, str], Cell] = {}
    for scenario in scenarios:
        for strategy in strategies:
            c = await asyncio.wait_for(
                cell(scenario, strategy, args.requests, args.warmup, args.seed), args.cell_timeout
            )
            cells[(scenario, strategy)] = c
            print(
                f"{scenario:9} {strategy:21} success {c.success_rate:7.2%}  p50 {c.p50_ms:7.2f}"
                f"  p99 {c.p99_ms:7.2f}  ext/req {c.external_calls_per_request:5.2f}"
                f"  detect {c.detect_calls}  ({c.seconds} s)",
                flush=True,
            )
    return cells


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.resilience", description=__doc__)
    p.add_argument("--requests", type=int, default=100, help="measured requests per cell")
    p.add_argument("--warmup", type=int, default=30, help="healthy requests before the fault")
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cell-timeout", type=float, default=300, help="seconds per cell at most")
    p.add_argument("--out", type=Path, default=RESULTS, help="where to write the results")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    cells = asyncio.run(main_async(args))
    meta = {
        "requests": args.requests,
        "warmup": args.warmup,
        "seed": args.seed,
        "call_timeout_ms": CALL_TIMEOUT_MS,
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "scenarios": {k: SCENARIOS[k] for k in args.scenarios.split(",") if k},
    }
    report = {
        "meta": meta,
        "cells": [{k: v for k, v in asdict(c).items() if k != "outcomes"} for c in cells.values()],
        "targets": targets(cells),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "resilience.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "resilience.md").write_text(markdown(cells, meta))
    print(f"wrote {args.out / 'resilience.md'} and resilience.json")
    return report


if __name__ == "__main__":
    main()

"""The avoidable costs of issue 14, each measured with its remedy on and off in one process.

    python -m bench.costs                          # the figures in bench/README.md
    python -m bench.costs --sizes 20 --repeats 1   # a smoke run

Each remedy is switched off by restoring what the code did before it, in this process only, and
the two variants run interleaved (medians of ``--repeats``), on one coordinator opened once
(its defaults, the internal no-op skill and the built-in ``time.now``):

- ``batches``: attempts in batches of ``BATCH_SIZE`` per LangGraph task, against one task per
  attempt (``BATCH_SIZE = 1``, what ``Send`` per attempt did);
- ``gc-freeze``: the objects alive after start-up frozen out of the cyclic GC, against not
  frozen (fresh processes, alternating: unfreezing later would not undo the collector's
  accounting);
- ``inline-builtins``: ``time.now`` run on the event loop, against in a worker thread;
- ``arbitration-memo``: :func:`hybridmcp.policy.arbitration.arbitrate` for N requests of one skill
  with one memo, against a fresh computation (and copy) per request.

Results: ``bench/results/costs.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import RESULTS, describe_machine, machine, table, write_report
from bench.overhead import CALL_TIMEOUT_S, bench_config, time_task
from hybridmcp.capabilities import builtin
from hybridmcp.config import ArbitrationConfig, CapabilityMapping, OptimizationCriteria
from hybridmcp.coordinator import Coordinator
from hybridmcp.nodes import execute
from hybridmcp.policy.arbitration import Candidate, analyze_requirements, arbitrate
from hybridmcp.policy.learning import Prediction
from hybridmcp.task import parse_task


@contextmanager
def one_task_per_attempt(on: bool) -> Iterator[None]:
    saved = execute.BATCH_SIZE
    execute.BATCH_SIZE = saved if on else 1
    try:
        yield
    finally:
        execute.BATCH_SIZE = saved


async def gc_probe(freeze: bool, n: int, repeats: int) -> list[float]:
    """In a process of its own: ms per request of runs of ``n`` internal no-op requests, with
    the start-up freeze or without it (unfreezing later would not restore the collector's
    accounting of what was frozen)."""
    from hybridmcp import runtime

    if not freeze:
        runtime.freeze_startup_objects = lambda: None
    samples = []
    async with Coordinator.open(bench_config()) as co:
        await co.run(time_task(10, "bench.noop"))
        for _ in range(repeats):
            t0 = time.perf_counter()
            await co.run(time_task(n, "bench.noop"))
            samples.append((time.perf_counter() - t0) * 1000 / n)
    return samples


def measure_gc(sizes: list[int], repeats: int) -> list[dict[str, Any]]:
    """:func:`gc_probe` with and without the freeze, alternating fresh processes."""
    rows = []
    for n in sizes:
        samples: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(repeats):
            for on in (False, True):
                command = [sys.executable, "-m", "bench.costs", "--gc-probe", "on" if on else "off"]
                done = subprocess.run(
                    [*command, "--sizes", str(n), "--repeats", "1"],
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=True,
                )
                samples[on] += json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(_row("gc-freeze", n, samples))
        print(f"gc-freeze n={n:5} before {rows[-1]['before_ms']} after {rows[-1]['after_ms']}")
    return rows


@contextmanager
def inline(on: bool) -> Iterator[None]:
    when = builtin.current_time.inline_when  # type: ignore[attr-defined]
    if not on:
        del builtin.current_time.inline_when  # type: ignore[attr-defined]
    try:
        yield
    finally:
        builtin.current_time.inline_when = when  # type: ignore[attr-defined]


def time_now_task(n: int) -> Any:
    return parse_task(
        [
            {
                "id": f"r{i}",
                "skill": "time.now",
                "args": {"timezone": "UTC"},
                "strategy": "internal",
            }
            for i in range(n)
        ]
    )


def arbitration_ms(n: int, memo: bool) -> float:
    """ms per request of arbitrating ``n`` requests of one two-sided skill."""
    prediction = Prediction(1.0, 2.0, 0.99, 0.0, 0.9, 50, 50.0, 10, 1.0, 10)
    candidates = [
        Candidate("internal:x", "internal", "restricted", prediction),
        Candidate("mcp:x", "external", "public", Prediction(3.0, 6.0, 0.99, 0.001, 0.9, 50)),
    ]
    profile = analyze_requirements(skill="time.now", tags=(), complexity="low", args={})
    shared: dict[Any, Any] = {}
    t0 = time.perf_counter()
    for i in range(n):
        arbitrate(
            strategy="auto",
            critical=False,
            profile=profile,
            candidates=candidates,
            criteria=OptimizationCriteria(),
            arbitration=ArbitrationConfig(),
            mapping=CapabilityMapping(),
            audit_key=f"run:{i}",
            memo=shared if memo else None,
        )
    return (time.perf_counter() - t0) * 1000 / n


async def measure(co: Coordinator, sizes: list[int], repeats: int) -> list[dict[str, Any]]:
    async def run(task: Any) -> None:
        out = await asyncio.wait_for(co.run(task), CALL_TIMEOUT_S * 4)
        assert out["status"] == "ok", out["status"]

    cases: list[tuple[str, int, Callable[[bool], Any], Callable[[], Awaitable[None]]]] = []
    for n in sizes:
        noop = time_task(n, "bench.noop")
        cases.append(("batches", n, one_task_per_attempt, lambda t=noop: run(t)))
        now = time_now_task(n)
        cases.append(("inline-builtins", n, inline, lambda t=now: run(t)))
    rows = []
    for name, n, switch, fn in cases:
        samples: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(repeats):
            for on in (False, True):
                with switch(on):
                    t0 = time.perf_counter()
                    await fn()
                    samples[on].append((time.perf_counter() - t0) * 1000 / n)
        rows.append(_row(name, n, samples))
        print(f"{name:18} n={n:5} before {rows[-1]['before_ms']} after {rows[-1]['after_ms']}")
    for n in sizes:
        samples = {True: [], False: []}
        for _ in range(repeats):
            for on in (False, True):
                samples[on].append(arbitration_ms(n, on))
        rows.append(_row("arbitration-memo", n, samples))
    return rows


def _row(name: str, n: int, samples: dict[bool, list[float]]) -> dict[str, Any]:
    before, after = statistics.median(samples[False]), statistics.median(samples[True])
    return {
        "cost": name,
        "requests": n,
        "before_ms": round(before, 4),
        "after_ms": round(after, 4),
        "saved_ms": round(before - after, 4),
        "ratio": round(after / before, 2),
    }


async def main_async(sizes: list[int], repeats: int) -> list[dict[str, Any]]:
    async with Coordinator.open(bench_config()) as co:
        await co.run(time_task(10, "bench.noop"))  # warm up
        await co.run(time_now_task(10))
        return await measure(co, sizes, repeats)


def markdown(report: dict[str, Any]) -> str:
    rows = [
        [r["cost"], r["requests"], r["before_ms"], r["after_ms"], r["saved_ms"], r["ratio"]]
        for r in report["rows"]
    ]
    return (
        "# Avoidable costs, before and after\n\n"
        f"{describe_machine(report['meta']['machine'])}. Generated by `python -m bench.costs`.\n\n"
        "ms per request, one run of N requests; each remedy off (before) and on (after), "
        f"interleaved, median of {report['meta']['repeats']}.\n\n"
        + table(["cost", "requests", "before ms", "after ms", "saved ms", "after / before"], rows)
        + "\n"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.costs", description=__doc__)
    p.add_argument("--sizes", default="100,1000,5000", help="requests per run, comma-separated")
    p.add_argument("--repeats", type=int, default=5, help="interleaved runs of each variant")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--gc-probe", choices=("on", "off"), default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(",") if s)
    if args.gc_probe:  # one measurement, in a process of its own
        samples = asyncio.run(gc_probe(args.gc_probe == "on", sizes[-1], args.repeats))
        print(json.dumps(samples), flush=True)
        return {"samples": samples}
    meta = {"machine": machine(), "sizes": sizes, "repeats": args.repeats}
    rows = asyncio.run(main_async(sizes, args.repeats))
    report = {"meta": meta, "rows": rows + measure_gc(sizes, args.repeats)}
    write_report(args.out, "costs", report, markdown(report))
    return report


if __name__ == "__main__":
    main()

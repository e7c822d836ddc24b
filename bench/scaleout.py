"""Scale-out benchmark: several coordinator processes on one database, PostgreSQL or SQLite.

    python -m bench.scaleout                        # 1, 2, 4 processes; 40 runs each
    python -m bench.scaleout --runs 10 --processes 1,2   # a smoke run

Every cell starts its worker processes (each a coordinator with its own fault-server MCP
process over stdio, persistence opened on the database), waits until all are ready, then
releases them together: each runs ``--runs`` durable runs (a thread each, checkpointed, learning
into the shared statistics), ``--concurrency`` at a time. Runs/s is all runs over the time from
the release to the last run's end; the run latency is each run's own wall time. The PostgreSQL
cells run 1, 2 and 4 processes on one throwaway cluster (``initdb`` under a temp dir, a fresh
database per cell); the SQLite cells as many processes on one SQLite file (a fresh file per
cell; ``--sqlite-processes``). After each cell the learned statistics are checked: every
attempt of every run counted once.

``python -m bench.scaleout worker ...`` is one worker process (the tests drive it too): it
prints ``{"ready": ...}``, waits for a line on stdin, then prints one JSON line per run and
``{"done": ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import RESULTS, describe_machine, machine, percentile, table, write_report

SRC = str(Path(__file__).resolve().parents[1] / "src")
ROOT = str(Path(__file__).resolve().parents[1])

REQUESTS = [
    {"id": "sum", "skill": "faults.calculate", "args": {"expression": "6*7"}},
    {"id": "words", "skill": "faults.word_count", "args": {"text": "Scale out, learn once."}},
    {"id": "echo", "skill": "faults.echo", "args": {"text": "hello"}},
]


def write_setup(directory: Path, *, record: Path | None = None) -> tuple[Path, Path]:
    """A configuration (the fault server over stdio) and a task, written into ``directory``."""
    server = ["-m", "hybridmcp.testing.faultserver"]
    if record is not None:
        server += ["--record", str(record)]
    config, task = directory / "config.json", directory / "task.json"
    config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "faults": {
                        "command": sys.executable,
                        "args": server,
                        "env": {"PYTHONPATH": SRC},
                        "timeout_ms": 60_000,
                    }
                }
            }
        )
    )
    task.write_text(json.dumps({"requests": REQUESTS}))
    return config, task


# --------------------------------------------------------------------------------------------
# One worker process.
# --------------------------------------------------------------------------------------------


def _line(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


async def worker(args: argparse.Namespace) -> None:
    from hybridmcp.config import load_config
    from hybridmcp.coordinator import Coordinator
    from hybridmcp.persistence import open_persistence
    from hybridmcp.policy.blame import learnable, request_faults
    from hybridmcp.task import load_task

    config = load_config(args.config)
    task = load_task(args.task)
    async with (
        open_persistence(args.db) as (checkpointer, store),
        Coordinator.open(config, checkpointer=checkpointer, store=store) as co,
    ):
        slots = asyncio.Semaphore(args.concurrency)

        async def one(thread: str, warmup: bool = False) -> dict[str, Any]:
            async with slots:
                started = time.perf_counter()
                out = await co.run(task, thread_id=thread)
                ms = (time.perf_counter() - started) * 1000
            # Every attempt of the run as checkpointed, with how learn takes it (the product's
            # own rule: an attempt never sent, e.g. refused by an open circuit, is not learned).
            snapshot = await co.graph.aget_state(co.run_config(thread))
            made = snapshot.values.get("attempts", [])
            faults = request_faults(made)
            attempts = [[a["provider"], a["skill"], a["ok"], learnable(a, faults)] for a in made]
            return {"thread": thread, "ms": round(ms, 3), "status": out.get("status"),
                    "attempts": attempts, "warmup": warmup}  # fmt: skip

        # Untimed runs first (imports, first sessions and statements): reported at the end.
        warm = [await one(f"{args.name}-warmup-{i}", True) for i in range(args.warmup)]
        _line({"ready": args.name})
        await asyncio.to_thread(sys.stdin.readline)

        async def timed(i: int) -> None:
            _line(await one(f"{args.name}-{i}"))

        await asyncio.gather(*(timed(i) for i in range(args.runs)))
        for line in warm:
            _line(line)
    _line({"done": args.name})


def start_workers(
    n: int,
    *,
    db: str,
    config: Path,
    task: Path,
    runs: int,
    concurrency: int,
    prefix: str,
    warmup: int = 0,
) -> list[subprocess.Popen[str]]:
    """``n`` worker processes, each ready (its MCP server started, the database open)."""
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, ROOT])}
    procs = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "bench.scaleout", "worker"),
                *("--db", db, "--config", str(config), "--task", str(task)),
                *("--runs", str(runs), "--concurrency", str(concurrency)),
                *("--warmup", str(warmup)),
                *("--name", f"{prefix}{k}"),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for k in range(n)
    ]
    for p in procs:
        assert p.stdout is not None
        first = p.stdout.readline()
        if not first.startswith('{"ready"'):
            for q in procs:
                q.kill()
            raise RuntimeError(f"a worker failed to start: {first}{p.communicate()[1][-3000:]}")
    return procs


def release(procs: list[subprocess.Popen[str]], timeout: float = 600) -> list[dict[str, Any]]:
    """Let the ready workers run; every run's line once all have finished."""
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    runs: list[dict[str, Any]] = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"a worker failed ({p.returncode}): {err[-3000:]}")
        lines = [json.loads(line) for line in out.splitlines() if line.strip()]
        runs += [r for r in lines if "thread" in r]
    return runs


async def _learned(db: str) -> dict[tuple[str, str], int]:
    from hybridmcp.persistence import open_persistence
    from hybridmcp.stats_store import all_stats

    async with open_persistence(db) as (_saver, store):
        return {(s.provider, s.skill): s.calls + s.censored for s in await all_stats(store)}


def learned_counts(db: str) -> dict[tuple[str, str], int]:
    """Attempts the statistics on ``db`` hold, per (provider, skill)."""
    return asyncio.run(_learned(db))


def attempted_counts(runs: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """Attempts the runs made that learn takes in (an outcome or a censored latency), per
    (provider, skill)."""
    counts: dict[tuple[str, str], int] = {}
    for r in runs:
        for provider, skill, _ok, how in r["attempts"]:
            if how is not None:
                counts[(provider, skill)] = counts.get((provider, skill), 0) + 1
    return counts


# --------------------------------------------------------------------------------------------
# The benchmark.
# --------------------------------------------------------------------------------------------


def cell(
    backend: str,
    processes: int,
    db: str,
    setup: tuple[Path, Path],
    runs: int,
    concurrency: int,
    tag: str,
) -> dict[str, Any]:
    config, task = setup
    procs = start_workers(
        processes, db=db, config=config, task=task, runs=runs, concurrency=concurrency,
        prefix=f"{backend}{processes}-{tag}-", warmup=2,
    )  # fmt: skip
    started = time.perf_counter()
    done = release(procs)
    wall = time.perf_counter() - started
    timed = [r for r in done if not r["warmup"]]
    return {"runs": timed, "all": done, "wall_s": wall}


def run(
    process_counts: list[int],
    runs: int,
    concurrency: int,
    rounds: int,
    sqlite_counts: list[int] | None = None,
) -> dict[str, Any]:
    """Every cell once per round, the cells interleaved (the machine's load moves); per cell,
    the median round's runs/s and the latency percentiles of all its timed runs."""
    from hybridmcp.testing.pgcluster import TempCluster

    sqlite = process_counts if sqlite_counts is None else sqlite_counts
    cells = [*(("sqlite", n) for n in sqlite), *(("postgresql", n) for n in process_counts)]
    measured: dict[tuple[str, int], list[dict[str, Any]]] = {c: [] for c in cells}
    exact: dict[tuple[str, int], bool] = {c: True for c in cells}
    with tempfile.TemporaryDirectory() as tmp, TempCluster() as cluster:
        setup = write_setup(Path(tmp))
        for r in range(rounds):
            for backend, n in cells:
                if backend == "sqlite":
                    db = str(Path(tmp) / f"runs-{n}-{r}.db")
                else:
                    db = cluster.create_database(f"scaleout_{n}_{r}")
                got = cell(backend, n, db, setup, runs, concurrency, f"r{r}")
                measured[(backend, n)].append(got)
                # warm-up runs learn too: every run's attempts against the statistics
                exact[(backend, n)] &= attempted_counts(got["all"]) == learned_counts(db)
    rows = []
    for backend, n in cells:
        results = measured[(backend, n)]
        rates = sorted(len(x["runs"]) / x["wall_s"] for x in results)
        latencies = [run_["ms"] for x in results for run_ in x["runs"]]
        rows.append(
            {
                "backend": backend,
                "processes": n,
                "runs": sum(len(x["runs"]) for x in results),
                "ok": sum(run_["status"] == "ok" for x in results for run_ in x["runs"]),
                "runs_per_s": round(statistics.median(rates), 2),
                "runs_per_s_rounds": [round(x, 2) for x in rates],
                "p50_ms": percentile(latencies, 50),
                "p99_ms": percentile(latencies, 99),
                "statistics_exact": exact[(backend, n)],
            }
        )
    return {"machine": machine(), "runs_per_process": runs, "concurrency": concurrency,
            "rounds": rounds, "cells": rows}  # fmt: skip


HEADER = ["database", "processes", "runs", "ok", "runs/s (median of rounds)", "rounds' runs/s",
          "p50 ms", "p99 ms", "every attempt learned once"]  # fmt: skip


def markdown(report: dict[str, Any]) -> str:
    rows = [
        [c["backend"], c["processes"], c["runs"], c["ok"], c["runs_per_s"],
         ", ".join(map(str, c["runs_per_s_rounds"])), c["p50_ms"], c["p99_ms"],
         "yes" if c["statistics_exact"] else "NO"]
        for c in report["cells"]
    ]  # fmt: skip
    return (
        "# Scale-out: processes on one database\n\n"
        f"{describe_machine(report['machine'])}. {report['runs_per_process']} timed runs per "
        f"process (after 2 untimed), {report['concurrency']} at a time, {report['rounds']} "
        "rounds with the cells interleaved; a run = 3 requests to the fault server "
        "(its own stdio process per worker), checkpointed, learning into shared statistics.\n\n"
        + table(HEADER, rows)
        + "\n"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.scaleout", description=__doc__)
    sub = p.add_subparsers(dest="command")
    w = sub.add_parser("worker", help="one worker process (driven by the benchmark or tests)")
    w.add_argument("--db", required=True)
    w.add_argument("--config", required=True)
    w.add_argument("--task", required=True)
    w.add_argument("--runs", type=int, default=50)
    w.add_argument("--concurrency", type=int, default=4)
    w.add_argument("--name", default="w")
    w.add_argument("--warmup", type=int, default=0, help="untimed runs before ready")
    p.add_argument("--processes", default="1,2,4", help="PostgreSQL cells, comma-separated")
    p.add_argument(
        "--sqlite-processes", default="1,2,4", help="SQLite cells (one file each), comma-separated"
    )
    p.add_argument("--runs", type=int, default=40, help="runs per process")
    p.add_argument("--concurrency", type=int, default=4, help="runs in flight per process")
    p.add_argument("--rounds", type=int, default=2, help="rounds of every cell, interleaved")
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    if args.command == "worker":
        asyncio.run(worker(args))
        return None
    processes = [int(n) for n in args.processes.split(",")]
    sqlite = [int(n) for n in args.sqlite_processes.split(",") if n.strip()]
    report = run(processes, args.runs, args.concurrency, args.rounds, sqlite)
    write_report(args.out, "scaleout", report, markdown(report))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()

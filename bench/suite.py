"""Run every benchmark, each in its own process, and gather the latest figures.

    python -m bench                 # the full run (about 10 minutes on 2 cores)
    python -m bench --quick         # a tiny workload of each (under a minute), into results/quick

Writes each benchmark's ``.md``/``.json``/``.png`` and ``summary.md`` into ``--out``
(default ``bench/results``); a full run into the default folder also refreshes the figures
in ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import RESULTS, describe_machine, machine, table
from bench.criteria import side_by_side, strategies_table

README = Path(__file__).resolve().parent / "README.md"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"

FULL: dict[str, list[str]] = {
    "overhead": [],
    "costs": [],
    "throughput": [],
    "criteria": [],
    "resilience": [],
    "server": [],
}
QUICK: dict[str, list[str]] = {
    "overhead": [
        *("--sizes", "3,6", "--sequential", "2", "--adapters-calls", "1"),
        *("--memory-sizes", "6", "--cli-runs", "1"),
    ],
    "costs": ["--sizes", "6", "--repeats", "1"],
    "throughput": ["--seconds", "0.2", "--batches", "2", "--clients", "2"],
    "criteria": ["--limit", "6"],
    "resilience": [
        *("--requests", "3", "--warmup", "2", "--scenarios", "hang"),
        *("--strategies", "naive-retry-fallback,hybridmcp"),
    ],
    "server": ["--quick"],
}


def run_all(args: argparse.Namespace) -> dict[str, float]:
    """Each benchmark in a process of its own (so each reports its own peak RSS); ``--jobs``
    at once (1 for figures that count: benchmarks run together slow each other down)."""
    plan = QUICK if args.quick else FULL
    only = [b for b in args.only.split(",") if b] or list(plan)
    unknown = set(only) - set(plan)
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {sorted(unknown)}; known: {', '.join(plan)}")

    def one(name: str) -> float:
        command = [sys.executable, "-m", f"bench.{name}", *plan[name], "--out", str(args.out)]
        print(f"== {' '.join(command[1:])}", flush=True)
        t0 = time.perf_counter()
        subprocess.run(command, check=True, timeout=args.timeout)
        return round(time.perf_counter() - t0, 1)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        return dict(zip(only, pool.map(one, only), strict=True))


def _load(out: Path, name: str) -> dict[str, Any] | None:
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def _memory_and_cli(overhead: dict[str, Any]) -> str:
    """The overhead report's peak RSS per request, CLI start and targets, as markdown."""
    parts = []
    memory = overhead.get("memory") or []
    if memory:
        parts.append(
            "Peak RSS added per request (KB, a fresh process each): "
            + "; ".join(
                f"{m['subject']} {m['kb_per_request']} at N = {m['requests']}" for m in memory
            )
            + "."
        )
    cli = overhead.get("cli")
    if cli:
        parts.append(
            "CLI start to exit (median): "
            + ", ".join(f"`{k}` {v} s" for k, v in cli["seconds"].items())
            + f" ({cli['ratio']}x)."
        )
    if overhead.get("targets"):
        rows = [
            [t["target"], t["measured"], "-" if t["met"] is None else "yes" if t["met"] else "no"]
            for t in overhead["targets"]
        ]
        parts.append(
            "Targets (every measurement with the defaults: degradation detection, hedging and "
            "learning on; see Configuration):\n\n" + table(["target", "measured", "met"], rows)
        )
    return "".join(f"\n\n{p}" for p in parts)


def summary(out: Path) -> str:
    """The headline figures of every report in ``out``, as markdown."""
    parts = [f"Machine: {describe_machine(machine())} (summary written then).\n"]
    overhead = _load(out, "overhead")
    if overhead:
        rows = [
            [
                r["requests"],
                r["raw-session_ms"],
                r["hybridmcp-external_ms"],
                f"{r['overhead_vs_raw_session_ms']:+}",
                r["bare-send_ms"],
                r["hybridmcp-internal_ms"],
                f"{r['overhead_vs_bare_send_ms']:+}",
                f"{r['growth_external']} / {r['growth_internal']} / {r['growth_bare_send']}",
            ]
            for r in overhead["rows"]
        ]
        seq = overhead.get("sequential") or {}
        parts.append(
            "### Overhead (ms per request, one run of N requests)\n\n"
            + table(
                [
                    "N",
                    "raw session",
                    "hybridmcp ext",
                    "overhead",
                    "bare Send",
                    "hybridmcp int",
                    "overhead",
                    "growth ext / int / bare",
                ],
                rows,
            )
            + (
                f"\n\nOne request per run: hybridmcp external {seq['hybridmcp-external']} ms vs "
                f"raw session {seq['raw-session']} ms; internal {seq['hybridmcp-internal']} ms "
                f"vs bare Send {seq['bare-send']} ms."
                if seq
                else ""
            )
            + (
                f" langchain-mcp-adapters `get_tools()` tool: {overhead['adapters_ms_per_call']} "
                "ms per call (a server process per call)."
                if overhead.get("adapters_ms_per_call")
                else ""
            )
            + _memory_and_cli(overhead)
            + "\n"
        )
    costs = _load(out, "costs")
    if costs:
        rows = [
            [r["cost"], r["requests"], r["before_ms"], r["after_ms"], r["ratio"]]
            for r in costs["rows"]
        ]
        parts.append(
            "### Avoidable costs (ms per request, remedy off / on, one process)\n\n"
            + table(["cost", "N", "before", "after", "after / before"], rows)
            + "\n"
        )
    throughput = _load(out, "throughput")
    if throughput:
        rows = [[c["workload"], c["subject"], c["batch"], c["rps"]] for c in throughput["cells"]]
        parts.append(
            f"### Throughput ({throughput['meta']['clients']} callers, "
            f"{throughput['meta']['seconds']} s per cell)\n\n"
            + table(["workload", "subject", "requests per task", "requests/s"], rows)
            + f"\n\nPeak RSS {throughput['peak_rss_mb']} MB (benchmark process).\n"
        )
    criteria = _load(out, "criteria")
    if criteria:
        workloads = criteria["workloads"]
        for name, rep in workloads.items():
            parts.append(
                f"### Success criteria (`{name}`, {rep['workload']['requests']} labelled "
                "requests)\n\n" + strategies_table(rep["strategies"], calls=False) + "\n"
            )
        both = side_by_side(workloads)
        if both:
            parts.append("hybridmcp against the spec's criteria:\n\n" + both + "\n")
    resilience = _load(out, "resilience")
    if resilience:
        rows = [
            [c["scenario"], c["strategy"], pct(c["success_rate"]), c["p50_ms"], c["p99_ms"]]
            for c in resilience["cells"]
        ]
        parts.append(
            "### Resilience (fault server)\n\n"
            + table(["scenario", "strategy", "success", "p50 ms", "p99 ms"], rows)
            + "\n"
        )
    server = _load(out, "server")
    if server:
        rows = [
            [
                r["concurrency"],
                r["runs"],
                r["runs_per_s"],
                r["p50_ms"],
                r["p99_ms"],
                r["server"]["queue_p50_ms"],
                r["server"]["exec_p50_ms"],
                f"{r.get('correct', 0)}/{r['runs'] * 10}",
                r.get("cross_talk", 0),
                r.get("hedges_started", 0),
                r.get("hedges_lost", 0),
                r["sessions_replaced"],
            ]
            for r in server["levels"]
        ]
        parts.append(
            "### Server concurrency (`langgraph dev --n-jobs-per-worker "
            f"{server['meta']['jobs']}`, 10-request runs)\n\n"
            + table(
                [
                    "runs at once",
                    "runs",
                    "runs/s",
                    "p50 ms",
                    "p99 ms",
                    "queue p50 ms",
                    "exec p50 ms",
                    "correct",
                    "cross-talk",
                    "hedges started",
                    "hedges lost",
                    "sessions replaced",
                ],
                rows,
            )
            + "\n"
        )
    return "\n".join(parts)


def refresh_readme(text: str) -> None:
    readme = README.read_text()
    if START not in readme or END not in readme:
        raise SystemExit(f"{README} has no {START} ... {END} block to refresh")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{text}\n{END}{tail}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="a tiny workload of each benchmark")
    p.add_argument("--only", default="", help="comma-separated: overhead,throughput,server,...")
    p.add_argument("--out", type=Path, default=None, help="default: bench/results[/quick]")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per benchmark at most")
    p.add_argument("--jobs", type=int, default=1, help="benchmarks run at once (default 1)")
    args = p.parse_args(argv)
    if args.out is None:
        args.out = RESULTS / "quick" if args.quick else RESULTS
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    seconds = run_all(args)
    text = summary(args.out)
    (args.out / "summary.md").write_text("# Benchmark summary\n\n" + text)
    print(f"wrote {args.out / 'summary.md'}; seconds per benchmark: {seconds}")
    if not args.quick and args.out == RESULTS and not args.only:
        refresh_readme(text)
        print(f"refreshed the figures in {README}")


if __name__ == "__main__":
    main()

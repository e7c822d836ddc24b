"""Server concurrency benchmark: many runs at once on one ``langgraph dev``.

    python -m bench.server                    # 1, 10 and 100 runs at once, 3 rounds each
    python -m bench.server --quick            # a smoke run: 1 and 3 runs, one round

Starts ``langgraph dev`` on loopback from a fresh directory (the repository's ``langgraph.json``,
an API key in ``HYBRIDMCP_API_KEYS``, the embedded default config and its real
``mcp-server-time``) with ``--n-jobs-per-worker`` (default 100): without the flag the in-memory
server sets ``N_JOBS_PER_WORKER=1`` and runs one run at a time, so 100 runs submitted together
would be served one after another. With ``langgraph_sdk`` it then launches, for each level of
concurrency, that many runs together (each on a thread of its own) of a 10-request task:
``math.calculate`` x4, ``text.stats`` x3, ``time.now`` x3 (one of each kind ``critical``, so
cross-validated on both sides), every run with its own expressions, texts and request ids.

Per level: runs/s (runs over the wall time of the round), p50/p99 of a run's latency (submit to
output), the server process's CPU per run, and, read from the runs' outputs, hedges started
(``HEDGE_STARTED``) and lost (attempts cancelled as ``hedge lost``), stragglers cut
(cancelled as ``straggler``; the output's attempts carry no ``cancelled`` field, their error
``cancelled: <why>`` says it), circuits opened (``CIRCUIT_OPENED``) and cross-validations
skipped (``CROSS_VALIDATION_SKIPPED``). The server has no API for its pool's status, so sessions
replaced are counted from its log (``hybridmcp.pool`` lines saying ``replac``). Every answer is
checked against a reference computed here (arithmetic while building each expression, word and
sentence counts from the generated text, ``time.now`` against the clock), and every output
against cross-talk: its results, attempts and events name only its own request ids.

The server is stopped with SIGINT at the end (its lifespan closes the MCP sessions and the
stdio servers); the report says whether any process it started outlived it.
Results: ``bench/results/server.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from langgraph_sdk import get_client

from bench.common import RESULTS, describe_machine, machine, percentile, table, write_report
from bench.criteria import correct
from bench.workload.generate import NO_DST_ZONES, expression, text
from hybridmcp.policy.blame import HEDGE_LOST, STRAGGLER
from hybridmcp.testing.harness import child_processes, free_port, langgraph_config_in

ROOT = Path(__file__).resolve().parents[1]
LANGGRAPH = Path(sys.executable).with_name("langgraph")
START_DEADLINE_S = 180.0
RUN_DEADLINE_S = 300.0
STOP_DEADLINE_S = 30.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")
EXEC_MS, WAIT_MS = re.compile(r"run_exec_ms=(\d+)"), re.compile(r"run_wait_time_ms=(\d+)")


# -- the server ---------------------------------------------------------------------------------


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (stdio MCP servers run in sessions of their own)."""
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        children = [c for p in frontier for c in child_processes(p) if c not in found]
        found.update(children)
        frontier = children
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """A ``langgraph dev`` process on a free loopback port, and how it was stopped."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path, key: str) -> None:
        self.proc, self.url, self.log, self.key = proc, url, log, key
        self.stop_report: dict[str, Any] = {}

    def lines(self) -> list[str]:
        """The server's log so far, colour codes removed."""
        return ANSI.sub("", self.log.read_text(errors="replace")).splitlines()

    def replacements(self) -> int:
        """Sessions replaced, from the pool's log lines (the server has no status API)."""
        return sum(1 for line in self.lines() if "hybridmcp.pool" in line and "replac" in line)

    def finished_runs(self) -> list[dict[str, int]]:
        """Per run the server finished so far: its time in the queue and executing (ms)."""
        runs = []
        for line in self.lines():
            if "Background run" in line and (exec_ms := EXEC_MS.search(line)):
                wait = WAIT_MS.search(line)
                runs.append(
                    {
                        "ok": int("Background run succeeded" in line),
                        "exec_ms": int(exec_ms.group(1)),
                        "queue_ms": int(wait.group(1)) if wait else -1,
                    }
                )
        return runs

    def stop(self) -> dict[str, Any]:
        """SIGINT to the server alone (its lifespan stops the MCP servers); whatever it started
        and is still alive afterwards is reported, then killed."""
        tree = descendants(self.proc.pid)
        t0 = time.perf_counter()
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=STOP_DEADLINE_S)
            clean = True
        except subprocess.TimeoutExpired:
            clean = False
        left = sorted(p for p in tree if Path(f"/proc/{p}").exists() and _alive(p))
        for pid in [*left, *([] if clean else [self.proc.pid])]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=15)
        self.stop_report = {
            "signal": "SIGINT",
            "exited_by_itself": clean,
            "seconds": round(time.perf_counter() - t0, 2),
            "processes_started": len(tree),
            "processes_left": len(left),
        }
        return self.stop_report


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@contextmanager
def serve(folder: Path, jobs: int) -> Iterator[Server]:
    """``langgraph dev`` serving ``langgraph.json`` from ``folder`` with ``jobs`` runs at once."""
    port, key = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "LANGSMITH_TRACING": "false",
        "LANGCHAIN_TRACING_V2": "false",
        "HYBRIDMCP_API_KEYS": f"bench={key}",
    }
    env.pop("HYBRIDMCP_CONFIG", None)  # the embedded default: mcp-server-time only
    log = folder / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *(str(LANGGRAPH), "dev", "--no-browser", "--no-reload"),
                *("--port", str(port), "--host", "127.0.0.1"),
                *("--n-jobs-per-worker", str(jobs)),
                *("--config", str(langgraph_config_in(folder, ROOT))),
            ],
            cwd=folder,  # its threads and learned statistics start empty
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(proc, f"http://127.0.0.1:{port}", log, key)
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"langgraph dev exited with {proc.returncode}:\n{log.read_text()}"
                )
            try:
                if httpx.get(f"{server.url}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"langgraph dev did not answer /ok in time:\n{log.read_text()}")
            time.sleep(0.5)
        yield server
    finally:
        if not server.stop_report:
            server.stop()


# -- the task -----------------------------------------------------------------------------------


def task(run: str, rng: random.Random) -> tuple[list[dict[str, Any]], dict[str, tuple[str, Any]]]:
    """Ten requests with ids prefixed by ``run``, and each one's ``(check, reference)``."""
    requests: list[dict[str, Any]] = []
    references: dict[str, tuple[str, Any]] = {}

    def add(
        rid: str, skill: str, args: dict[str, Any], check: str, ref: Any, critical: bool
    ) -> None:
        request: dict[str, Any] = {"id": f"{run}-{rid}", "skill": skill, "args": args}
        requests.append(request | ({"critical": True} if critical else {}))
        references[f"{run}-{rid}"] = (check, ref)

    for i in range(4):
        expr, value = expression(rng)
        add(
            f"calc-{i}",
            "math.calculate",
            {"expression": expr},
            "numeric_value",
            {"value": value},
            i == 0,
        )
    for i in range(3):
        body, words = text(rng, rng.randint(1, 4))
        ref = {"words": words, "sentences": body.count(".")}
        add(f"stats-{i}", "text.stats", {"text": body}, "fields", ref, i == 0)
    for i in range(3):
        zone = rng.choice(NO_DST_ZONES)
        zone_ref = {"timezone": zone, "is_dst": False}
        add(f"now-{i}", "time.now", {"timezone": zone}, "time_now", zone_ref, i == 0)
    return requests, references


def cut(attempt: dict[str, Any]) -> str | None:
    """Why the coordinator cut an attempt (``hedge lost``, ``straggler``), if it did. A run's
    output summarises attempts without their ``cancelled`` field; their error says it."""
    if attempt.get("cancelled"):
        return str(attempt["cancelled"])
    error = attempt.get("error") or ""
    for why in (HEDGE_LOST, STRAGGLER):
        if error.startswith(f"cancelled: {why}"):
            return why
    return None


def tally(output: dict[str, Any], references: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    """What one run's output says: correct answers, cross-talk, the counted events (and, to
    explain them, every event code, the attempts' errors and the circuits opened)."""
    own = set(references)
    results = output.get("results") or {}
    attempts = [a for r in results.values() for a in r.get("attempts") or []]
    events = output.get("events") or []
    now = datetime.now(UTC)
    named = (
        set(results)
        | {r.get("id") for r in results.values()}
        | {e["request_id"] for e in events if e.get("request_id")}
    )
    codes = Counter(e.get("code") for e in events)
    cancelled = Counter(cut(a) for a in attempts)
    return {
        "requests": len(own),
        "correct": sum(
            1
            for rid, (check, ref) in references.items()
            if rid in results and correct(check, results[rid].get("value"), ref, now)
        ),
        "cross_talk": len(named - own - {None}),
        "missing": len(own - set(results)),
        "hedges_started": codes["HEDGE_STARTED"],
        "hedges_lost": cancelled[HEDGE_LOST],
        "stragglers_cut": cancelled[STRAGGLER],
        "circuits_opened": codes["CIRCUIT_OPENED"],
        "cross_validations_skipped": codes["CROSS_VALIDATION_SKIPPED"],
        "status_ok": int(output.get("status") == "ok"),
        "event_codes": dict(codes),
        "attempt_errors": dict(Counter(a["error"][:80] for a in attempts if a.get("error"))),
        "circuit_events": [e for e in events if e.get("code") == "CIRCUIT_OPENED"],
    }


# -- the levels ---------------------------------------------------------------------------------


async def one_run(client: Any, run: str, rng: random.Random) -> dict[str, Any]:
    requests, references = task(run, rng)
    thread = await client.threads.create()
    t0 = time.perf_counter()
    try:
        output = await client.runs.wait(
            thread["thread_id"], "hybridmcp", input={"requests": requests}, raise_error=True
        )
    except Exception as exc:  # a failed run is counted, not fatal: the figures say how many
        return {"latency_ms": (time.perf_counter() - t0) * 1000, "error": repr(exc)[:300]}
    latency = (time.perf_counter() - t0) * 1000
    return {"latency_ms": latency, "error": None, **tally(output, references)}


async def level(client: Any, server: Server, n: int, rounds: int, rng: random.Random) -> dict:
    """``rounds`` times: ``n`` runs submitted together, awaited together."""
    runs: list[dict[str, Any]] = []
    wall = 0.0
    cpu: Counter[str] = Counter()
    for r in range(rounds):
        cpu0, t0 = cpu_use(server), time.perf_counter()
        runs += await asyncio.gather(*(one_run(client, f"c{n}r{r}n{i}", rng) for i in range(n)))
        wall += time.perf_counter() - t0
        cpu.update(cpu_use(server))
        cpu.subtract(cpu0)
    latencies = [x["latency_ms"] for x in runs]
    answered = [x for x in runs if x["error"] is None]
    sums: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    circuits: list[dict[str, Any]] = []
    for x in answered:
        codes.update(x.pop("event_codes"))
        errors.update(x.pop("attempt_errors"))
        circuits += x.pop("circuit_events")
        sums.update({k: v for k, v in x.items() if k not in ("latency_ms", "error")})
    return {
        "concurrency": n,
        "rounds": rounds,
        "runs": len(runs),
        "failed_runs": len(runs) - len(answered),
        "errors": sorted({x["error"] for x in runs if x["error"]})[:5],
        "seconds": round(wall, 2),
        "runs_per_s": round(len(runs) / wall, 2),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        **{f"{k}_cpu_ms_per_run": round(v * 1000 / len(runs), 1) for k, v in cpu.items()},
        "server_cores_busy": round(cpu["server"] / wall, 2),
        **dict(sums),
        "event_codes": dict(codes),
        "attempt_errors": dict(errors),
        "circuit_events": circuits[:5],
    }


def cpu_use(server: Server) -> dict[str, float]:
    """CPU seconds so far: the server process, the MCP servers it started, this client."""
    mcp = 0.0
    for pid in descendants(server.proc.pid):
        try:
            mcp += cpu_seconds(pid)
        except (OSError, IndexError):
            pass
    return {"server": cpu_seconds(server.proc.pid), "mcp": mcp, "client": time.process_time()}


def server_side(runs: list[dict[str, int]]) -> dict[str, Any]:
    """The server's own timing of a level's runs: waiting in its queue, then executing."""
    queue = [r["queue_ms"] for r in runs if r["queue_ms"] >= 0]
    execution = [r["exec_ms"] for r in runs]
    return {
        "runs_logged": len(runs),
        "runs_failed": sum(1 for r in runs if not r["ok"]),
        "queue_p50_ms": percentile(queue, 50),
        "queue_p99_ms": percentile(queue, 99),
        "exec_p50_ms": percentile(execution, 50),
        "exec_p99_ms": percentile(execution, 99),
    }


async def measure(server: Server, levels: list[int], rounds: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    client = get_client(url=server.url, api_key=server.key, timeout=RUN_DEADLINE_S)
    warm = await asyncio.wait_for(one_run(client, "warmup", rng), RUN_DEADLINE_S)
    if warm["error"]:
        raise RuntimeError(f"the warm-up run failed: {warm['error']}\n{server.log.read_text()}")
    rows = []
    for n in levels:
        replaced, finished = server.replacements(), len(server.finished_runs())
        row = await asyncio.wait_for(level(client, server, n, rounds, rng), RUN_DEADLINE_S * rounds)
        await asyncio.sleep(1.0)  # the server logs a run's end just after its output is sent
        row["sessions_replaced"] = server.replacements() - replaced
        row["server"] = server_side(server.finished_runs()[finished:])
        rows.append(row)
        print(
            f"{n:4} at once x{rounds}: {row['runs_per_s']:7.2f} runs/s  p50 {row['p50_ms']} ms  "
            f"p99 {row['p99_ms']} ms  correct {row.get('correct', 0)}/{row['runs'] * 10}  "
            f"failed {row['failed_runs']}",
            flush=True,
        )
    return {"warmup_ms": round(warm["latency_ms"], 1), "levels": rows}


# -- the report ---------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    meta = report["meta"]
    base = report["levels"][0]
    rows = [
        [
            r["concurrency"],
            r["runs"],
            r["runs_per_s"],
            round(r["runs_per_s"] / base["runs_per_s"], 2),
            r["p50_ms"],
            r["p99_ms"],
            round(r["p50_ms"] / base["p50_ms"], 2),
            f"{r['server_cpu_ms_per_run']} / {r['mcp_cpu_ms_per_run']} / "
            f"{r['client_cpu_ms_per_run']}",
            r["server_cores_busy"],
            f"{r.get('correct', 0)}/{r['runs'] * 10}",
            r.get("cross_talk", 0),
            r["failed_runs"],
        ]
        for r in report["levels"]
    ]
    events = [
        [
            r["concurrency"],
            r.get("hedges_started", 0),
            r.get("hedges_lost", 0),
            r.get("stragglers_cut", 0),
            r.get("circuits_opened", 0),
            r.get("cross_validations_skipped", 0),
            r["sessions_replaced"],
        ]
        for r in report["levels"]
    ]
    timing = [
        [
            r["concurrency"],
            r["server"]["runs_logged"],
            r["server"]["runs_failed"],
            r["server"]["queue_p50_ms"],
            r["server"]["queue_p99_ms"],
            r["server"]["exec_p50_ms"],
            r["server"]["exec_p99_ms"],
        ]
        for r in report["levels"]
    ]
    details = "".join(
        f"\n- {r['concurrency']} at once: events {json.dumps(r['event_codes'], sort_keys=True)}; "
        f"attempt errors {json.dumps(r['attempt_errors'], sort_keys=True)}"
        + (f"; circuits opened {json.dumps(r['circuit_events'])}" if r["circuit_events"] else "")
        for r in report["levels"]
    )
    stop = report["stop"]
    return (
        "# Server concurrency benchmark\n\n"
        f"{describe_machine(meta['machine'])}. Generated by `python -m bench.server`.\n\n"
        f"`langgraph dev --n-jobs-per-worker {meta['jobs']}` on loopback (the embedded default "
        "config, its real `mcp-server-time`), driven with `langgraph_sdk`. Each level submits "
        f"that many runs at once, {meta['rounds']} round(s); a run is a 10-request task "
        "(`math.calculate` x4, `text.stats` x3, `time.now` x3, one of each `critical`). "
        f"Warm-up run (opens the MCP session): {report['warmup_ms']} ms. Levels run in order "
        "on the same server, so later levels meet a coordinator that has learned more.\n\n"
        + table(
            [
                "runs at once",
                "runs",
                "runs/s",
                "x level 1",
                "p50 ms",
                "p99 ms",
                "p50 x level 1",
                "CPU ms/run server / MCP / client",
                "server cores busy",
                "correct",
                "cross-talk",
                "failed runs",
            ],
            rows,
        )
        + "\n\nCounted from the runs' outputs (sessions replaced: the server's log):\n\n"
        + table(
            [
                "runs at once",
                "hedges started",
                "hedges lost",
                "stragglers cut",
                "circuits opened",
                "cross-validations skipped",
                "sessions replaced",
            ],
            events,
        )
        + "\n\nEvery event code and attempt error in the outputs, per level:\n"
        + details
        + "\n\nThe server's own timing of the runs (its log: `run_wait_time_ms`, time in its "
        "queue, and `run_exec_ms`). An idle in-memory queue looks for runs every 0.5 s and "
        "takes only those created before its wait began, so a lone run waits 0.5-1 s:\n\n"
        + table(
            [
                "runs at once",
                "runs logged",
                "runs failed",
                "queue p50 ms",
                "queue p99 ms",
                "exec p50 ms",
                "exec p99 ms",
            ],
            timing,
        )
        + f"\n\nStopped with {stop['signal']}: exited by itself {stop['exited_by_itself']} in "
        f"{stop['seconds']} s; processes it started {stop['processes_started']}, left alive "
        f"{stop['processes_left']}.\n"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.server", description=__doc__)
    p.add_argument("--levels", default="1,10,100", help="runs at once, comma-separated")
    p.add_argument("--rounds", type=int, default=3, help="rounds per level")
    p.add_argument("--jobs", type=int, default=100, help="--n-jobs-per-worker of langgraph dev")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="levels 1,3, one round (a smoke run)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.quick:
        args.levels, args.rounds = "1,3", 1
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    levels = [int(n) for n in args.levels.split(",") if n]
    meta = {"machine": machine(), "jobs": args.jobs, "rounds": args.rounds, "levels": levels}
    with tempfile.TemporaryDirectory(prefix="bench-server-") as folder:
        with serve(Path(folder), args.jobs) as server:
            raw = asyncio.run(measure(server, levels, args.rounds, args.seed))
            server.stop()
            raw["log_tail"] = server.log.read_text(errors="replace")[-2000:]
        report = {"meta": meta, **raw, "stop": server.stop_report}
    write_report(args.out, "server", report, markdown(report))
    return report


if __name__ == "__main__":
    main()

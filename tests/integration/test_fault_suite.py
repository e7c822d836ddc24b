"""Acceptance: judgement that holds under real conditions (ARCHITECTURE.md, invariants 7-10).

Sixteen real fault servers over streamable HTTP, eight behaviours in each of two answer modes
(``--answers structured`` and ``--answers text``): healthy, slow (steady latency far above the
healthy one, inside the deadline), hang, crash, error (every call fails), garbage (truncated
JSON), wrong (plausible wrong values) and recovering (its first calls fail, then healthy). Each is
the external provider of a skill of its own that also has the built-in internal provider of
``time.now``, ``time.convert`` or ``math.calculate``. One task mixing ``critical`` and ``auto``
requests over all of them (and requests the caller got wrong, on the healthy servers) runs FIVE
times through the real command line on ONE SQLite database; the servers live across the runs
(a supervisor restarts a crashed one before the next run), so the recovering server does
recover. The five runs happen once per module; each test below checks one claim over them.

What is asserted, over the five runs:

- a critical request answered ``ok`` carries the right value (the built-in's, computed here;
  times within a few seconds of the run): wrong, garbage or hanging servers never win a conflict;
- no ``CIRCUIT_OPENED`` for the healthy servers, nor for the slow ones: a slow server answers
  right, every time, inside its deadline, at a steady latency, so it is never degraded against
  its own baseline, and calls the coordinator cut (a hedge that lost, a straggler) are censored,
  never failures (invariant 7). Slowness is for arbitration to weigh, not for the breaker;
- the healthy servers' learned success is at least 99 %, though caller errors were sent to them
  (the request's fault, not theirs), and the slow ones learned no failure at all;
- the faults were real: the hang, crash and error servers had their circuits opened or their
  requests moved to the internal side;
- the recovering server answers again in run 5;
- the output contract: per result ``status``, ``served_by``, ``agreement``; the run's status and
  the command's exit code; ``hybridmcp stats --json`` with ``censored``, ``confirmations``,
  ``refutations``.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from hybridmcp import Coordinator, parse_config, parse_task
from hybridmcp.capabilities import builtin
from hybridmcp.capabilities.registry import builtin_skill_configs
from hybridmcp.persistence import open_persistence
from hybridmcp.testing.harness import HttpFaultServer, faultserver_stdio

pytestmark = pytest.mark.integration

SRC = str(Path(__file__).resolve().parents[2] / "src")
MODES = ("structured", "text")
RUNS = 5
CALL_TIMEOUT_MS = 1500  # the deadline of the servers that never answer (hang, crash)
ANSWERING_TIMEOUT_MS = 10_000  # the others answer in milliseconds: a load spike on a small
# machine (sixteen servers, cold sessions, two cores) must not pass for their fault
SLOW_MS = 300  # healthy calls take a few ms; the slow server answers well inside its deadline
RECOVER_AFTER = 4  # the recovering server fails its first four calls (2 critical a run)
TIME_SLACK_S = 3.0
SUITE_LIMIT_S = 240
EXIT_CODES = {"ok": 0, "partial": 3, "unresolved": 4, "failed": 1}

FAULTS: dict[str, dict[str, Any]] = {
    "healthy": {},
    "slow": {"latency_ms": SLOW_MS},
    "hang": {"hang": True},
    "crash": {"crash": True},
    "error": {"fail_rate": 1.0},
    "garbage": {"malformed": "invalid_json"},
    "wrong": {"wrong_answer": True},
    "recovering": {"fail_first": RECOVER_AFTER},
}
# Which built-in skill each instance stands beside: every behaviour meets two skills.
SKILL_OF: dict[tuple[str, str], str] = {
    ("healthy", "structured"): "math.calculate",
    ("healthy", "text"): "time.convert",
    ("slow", "structured"): "time.convert",
    ("slow", "text"): "math.calculate",
    ("hang", "structured"): "math.calculate",
    ("hang", "text"): "time.now",
    ("crash", "structured"): "time.now",
    ("crash", "text"): "math.calculate",
    ("error", "structured"): "math.calculate",
    ("error", "text"): "time.convert",
    ("garbage", "structured"): "time.convert",
    ("garbage", "text"): "math.calculate",
    ("wrong", "structured"): "math.calculate",
    ("wrong", "text"): "time.convert",
    ("recovering", "structured"): "time.now",
    ("recovering", "text"): "math.calculate",
}
TOOL_OF = {
    "math.calculate": "calculate",
    "time.convert": "convert_time",
    "time.now": "get_current_time",
}
ZONES = ["Europe/Paris", "Asia/Tokyo", "America/New_York", "Australia/Sydney", "UTC"]


@dataclass(frozen=True)
class Instance:
    """One fault server: its behaviour, its answer mode, the built-in skill it twins."""

    fault: str
    mode: str
    builtin: str

    @property
    def server(self) -> str:
        return f"{self.fault}_{self.mode}"

    @property
    def skill(self) -> str:
        return f"{self.builtin.split('.')[1]}_{self.fault}_{self.mode}"

    @property
    def provider(self) -> str:
        return f"mcp:{self.server}/{TOOL_OF[self.builtin]}"


INSTANCES = [Instance(f, m, SKILL_OF[(f, m)]) for m in MODES for f in FAULTS]


# -- configuration and task -------------------------------------------------------------------


def suite_config(urls: dict[str, str]) -> dict[str, Any]:
    builtins = builtin_skill_configs()
    skills = {}
    for inst in INSTANCES:
        base = builtins[inst.builtin].model_dump(mode="json", exclude_unset=True)
        skills[inst.skill] = {
            "description": f"{base['description']} ({inst.fault} twin, {inst.mode} answers)",
            "input_schema": base["input_schema"],
            "comparator": base["comparator"],
            "providers": [
                *base["providers"],  # the built-in internal provider, declared as it is there
                {"side": "external", "server": inst.server, "tool": TOOL_OF[inst.builtin]},
            ],
        }
    return {
        "coordination_config": {"default_timeout_ms": ANSWERING_TIMEOUT_MS},
        "resilience": {
            # small numbers, so a faulty server trips within one run of a few calls
            "breaker": {"consecutive_failures": 2, "minimum_calls": 4},
            "pool": {"reopen_backoff_ms": 100, "reopen_backoff_max_ms": 1000},
        },
        "mcpServers": {
            inst.server: {
                "transport": "streamable_http",
                "url": urls[inst.server],
                "timeout_ms": (
                    CALL_TIMEOUT_MS if inst.fault in ("hang", "crash") else ANSWERING_TIMEOUT_MS
                ),
                "startup_timeout_ms": 5000,
            }
            for inst in INSTANCES
        },
        "skills": skills,
    }


def args_for(builtin_skill: str, run: int, i: int) -> dict[str, Any]:
    zone, other = ZONES[(run + i) % len(ZONES)], ZONES[(run + i + 2) % len(ZONES)]
    if builtin_skill == "math.calculate":
        return {"expression": f"({run + 2} * {i + 7} + 0.5) ** 2 - {run} / 4"}
    if builtin_skill == "time.convert":
        return {
            "source_timezone": zone,
            "time": f"{(9 + run + i) % 24:02d}:30",
            "target_timezone": other,
        }
    return {"timezone": zone}


CALLER_ERRORS = {  # well-formed requests no provider can serve: the caller's mistake
    "math.calculate": [{"expression": "1/0"}, {"expression": "7 % 0"}],
    "time.convert": [
        {"source_timezone": "Mars/Olympus_Mons", "time": "10:00", "target_timezone": "UTC"},
        {"source_timezone": "UTC", "time": "10:00", "target_timezone": "Atlantis/Capital"},
    ],
}


def suite_task(run: int) -> dict[str, Any]:
    requests = []
    for inst in INSTANCES:
        for i in range(2):
            args = args_for(inst.builtin, run, i)
            requests.append(
                {"id": f"{inst.server}-c{i}", "skill": inst.skill, "args": args, "critical": True}
            )
            args = args_for(inst.builtin, run, i + 2)
            requests.append({"id": f"{inst.server}-a{i}", "skill": inst.skill, "args": args})
        if inst.fault == "healthy":
            for i, args in enumerate(CALLER_ERRORS[inst.builtin]):
                requests.append({"id": f"{inst.server}-x{i}", "skill": inst.skill, "args": args})
    return {"requests": requests}


# -- what the built-ins say (the truth a critical answer must match) --------------------------


def right_value(
    builtin_skill: str, args: dict[str, Any], value: Any, window: tuple[float, float]
) -> bool:
    """Is ``value`` the built-in's answer? Times: the same zone, a moment inside the run."""
    if not isinstance(value, dict):
        return False
    if builtin_skill == "math.calculate":
        expected = builtin.calculate(**args)["value"]
        got = value.get("value")
        return isinstance(got, int | float) and math.isclose(got, expected, rel_tol=1e-9)
    if builtin_skill == "time.convert":
        # "today" in the source zone as the run saw it: the run may straddle midnight there.
        target = value.get("target") or {}
        moments = {datetime.fromtimestamp(w, UTC) for w in window if w} or {datetime.now(UTC)}
        return any(
            target.get("datetime") == expected["target"]["datetime"]
            and target.get("timezone") == expected["target"]["timezone"]
            and value.get("time_difference") == expected["time_difference"]
            for expected in (builtin.convert_time(**args, now=m) for m in moments)
        )
    try:
        moment = datetime.fromisoformat(value["datetime"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return False
    start, end = window
    return value.get("timezone") == args["timezone"] and (
        start - TIME_SLACK_S <= moment <= end + TIME_SLACK_S
    )


# -- the five runs ----------------------------------------------------------------------------


@dataclass
class Run:
    number: int
    exit_code: int
    out: dict[str, Any]
    started: float
    ended: float
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    def codes(self, code: str) -> list[dict[str, Any]]:
        return [e for e in self.out.get("events", []) if e.get("code") == code]


@dataclass
class Suite:
    runs: list[Run]
    stats: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    seconds: float

    def stats_of(self, provider: str, skill: str) -> dict[str, Any]:
        found = [s for s in self.stats if s["provider"] == provider and s["skill"] == skill]
        assert found, f"nothing learned of {provider} for {skill}"
        return found[0]


def cli_env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


async def cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hybridmcp.cli",
        *args,
        env=cli_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, stdout.decode(), stderr.decode()


async def run_suite(tmp: Path) -> Suite:
    t0 = time.monotonic()
    servers = {
        inst.server: HttpFaultServer({"*": FAULTS[inst.fault]}, answers=inst.mode)
        for inst in INSTANCES
    }
    try:
        # sixteen Python processes starting at once on two cores: give them time
        await asyncio.gather(*(s.start(limit_s=90) for s in servers.values()))
        config = tmp / "config.yaml"
        config.write_text(yaml.safe_dump(suite_config({n: s.url for n, s in servers.items()})))
        db = str(tmp / "suite.db")
        runs, tasks = [], []
        for number in range(1, RUNS + 1):
            crashed = [
                s for s in servers.values() if s.proc is None or s.proc.returncode is not None
            ]
            # a supervisor brings a crashed server back before the next run
            await asyncio.gather(*(s.start(limit_s=30) for s in crashed))
            task = suite_task(number)
            tasks.append(task)
            path = tmp / f"task{number}.json"
            path.write_text(json.dumps(task))
            started = time.time()
            code, stdout, stderr = await cli(
                "run", str(path), "--config", str(config), "--db", db, "--json"
            )
            ended = time.time()
            assert stdout.strip(), f"run {number} printed nothing (exit {code}): {stderr[-2000:]}"
            (tmp / f"run{number}.json").write_text(stdout)  # kept for a reader of a failure
            out = json.loads(stdout)
            run = Run(number, code, out, started, ended)
            run.results = {r["id"]: r for r in out["results"]}
            runs.append(run)
        code, stdout, stderr = await cli("stats", "--json", "--db", db)
        assert code == 0, stderr
        stats = json.loads(stdout)
    finally:
        await asyncio.gather(*(s.stop() for s in servers.values()))
    return Suite(runs, stats, tasks, time.monotonic() - t0)


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    async def limited(tmp: Path) -> Suite:
        async with asyncio.timeout(SUITE_LIMIT_S):
            return await run_suite(tmp)

    tmp = tmp_path_factory.mktemp("fault_suite")
    done = asyncio.run(limited(tmp))
    each = ", ".join(f"{r.ended - r.started:.1f}" for r in done.runs)
    print(f"\nfault suite: {done.seconds:.1f} s, runs {each} s; outputs in {tmp}")
    yield done


def instances(*faults: str) -> list[Instance]:
    return [inst for inst in INSTANCES if inst.fault in faults]


def status_of(result: dict[str, Any]) -> str:
    """The result's status; a result from before the contract counts as ok when it has no
    error, so the correctness claim is checked on today's output too."""
    return result.get("status") or ("ok" if result.get("error") is None else "error")


# -- the claims -------------------------------------------------------------------------------


def test_no_wrong_answer_is_returned_ok_on_a_critical_request(suite):
    wrong = []
    for run, task in zip(suite.runs, suite.tasks, strict=True):
        for request in task["requests"]:
            if not request.get("critical"):
                continue
            result = run.results[request["id"]]
            inst = next(i for i in INSTANCES if i.skill == request["skill"])
            window = (run.started, run.ended)
            if status_of(result) == "ok" and not right_value(
                inst.builtin, request["args"], result["value"], window
            ):
                wrong.append((run.number, request["id"], result["value"]))
    assert wrong == [], f"{len(wrong)} wrong critical answers returned as ok: {wrong[:6]}"


def test_critical_requests_of_the_wrong_servers_are_never_ok_with_their_value(suite):
    # The specific case: a wrong server against the internal side, nothing to tell them apart
    # but evidence of correctness. Unresolved (or the internal value) is right; theirs is not.
    for run in suite.runs:
        for inst in instances("wrong"):
            for i in range(2):
                result = run.results[f"{inst.server}-c{i}"]
                if status_of(result) == "ok":
                    assert (result.get("served_by") or {}).get("provider") != inst.provider, (
                        run.number,
                        result,
                    )


def test_critical_conflicts_without_evidence_stay_unresolved(suite):
    # Each wrong twin has a skill of its own: neither its internal nor its external provider
    # was ever confirmed right by a third party, so their conflicts have no evidence to be
    # decided by (invariant 8). They stay unresolved, with an event, or a tie-break says why.
    for run in suite.runs:
        unresolved = {e.get("request_id") for e in run.codes("CONFLICT_UNRESOLVED")}
        tie_broken = {e.get("request_id") for e in run.codes("TIE_BREAK")}
        skipped = {e.get("request_id") for e in run.codes("CROSS_VALIDATION_SKIPPED")}
        for inst in instances("wrong"):
            for i in range(2):
                rid = f"{inst.server}-c{i}"
                result = run.results[rid]
                if result["status"] == "unresolved":
                    assert rid in unresolved, (run.number, rid, "no CONFLICT_UNRESOLVED")
                    assert set(result["values"]) == {a["provider"] for a in result["attempts"]}
                elif result["agreement"] is None:
                    # one side only (the other cut, failed or its circuit open): said so
                    assert rid in skipped, (run.number, rid, "no CROSS_VALIDATION_SKIPPED")
                else:
                    assert result["status"] == "ok" and rid in tie_broken, (run.number, result)


def test_healthy_and_slow_servers_never_get_their_circuit_opened(suite):
    watched = {inst.provider for inst in instances("healthy", "slow")}
    opened = [
        (run.number, e["provider"], e.get("reason"))
        for run in suite.runs
        for e in run.codes("CIRCUIT_OPENED")
        if e.get("provider") in watched
    ]
    assert opened == []


def real_failures(stats: dict[str, Any]) -> int:
    """Failures that are the provider's: calls that neither succeeded nor were censored (read
    the same whether ``calls`` counts censored observations or not)."""
    return max(0, stats["calls"] - stats["successes"] - stats["censored"])


def test_healthy_servers_learned_success_is_at_least_99_percent(suite):
    for inst in instances("healthy"):
        stats = suite.stats_of(inst.provider, inst.skill)
        judged = stats["successes"] + real_failures(stats)
        assert judged > 0, stats
        assert stats["successes"] / judged >= 0.99, stats
        assert stats["success_rate"] >= 0.99, stats


def test_slow_servers_learned_no_failure(suite):
    for inst in instances("slow"):
        stats = suite.stats_of(inst.provider, inst.skill)
        assert stats["successes"] > 0 and real_failures(stats) == 0, stats


def test_caller_errors_are_the_requests(suite):
    for run in suite.runs:
        flagged = {e.get("request_id") for e in run.codes("REQUEST_ERROR")}
        for inst in instances("healthy"):
            for i in range(len(CALLER_ERRORS[inst.builtin])):
                rid = f"{inst.server}-x{i}"
                assert status_of(run.results[rid]) == "error", run.results[rid]
                assert rid in flagged, (run.number, rid, run.out.get("events"))
    for inst in instances("healthy"):  # neither side is blamed for them
        internal = suite.stats_of(f"internal:{inst.skill}", inst.skill)
        assert real_failures(internal) == 0, internal


def test_faults_were_real_circuits_opened_or_work_moved(suite):
    for inst in instances("hang", "crash", "error"):
        opened = any(
            e.get("provider") == inst.provider
            for run in suite.runs
            for e in run.codes("CIRCUIT_OPENED")
        )
        moved = 0
        for run in suite.runs:
            for rid, result in run.results.items():
                if not rid.startswith(f"{inst.server}-"):
                    continue
                attempts = result["attempts"]
                failed_here = any(a["provider"] == inst.provider and not a["ok"] for a in attempts)
                internal_ok = any(a["side"] == "internal" and a["ok"] for a in attempts)
                moved += failed_here and internal_ok
        assert opened or moved, f"{inst.server}: no circuit opened, no work moved"


def test_recovering_server_is_used_again_by_run_5(suite):
    last = suite.runs[-1]
    for inst in instances("recovering"):
        answered = [
            rid
            for rid, result in last.results.items()
            if rid.startswith(f"{inst.server}-")
            and any(a["provider"] == inst.provider and a["ok"] for a in result["attempts"])
        ]
        assert answered, f"{inst.server} not used (with success) in run {last.number}"


def test_result_contract(suite):
    for run in suite.runs:
        for rid, result in run.results.items():
            assert result["status"] in ("ok", "unresolved", "error"), (rid, result)
            assert result["agreement"] in (True, False, None)
            for key in ("value", "allocation", "attempts", "confidence", "error"):
                assert key in result, (rid, key)
            served = result["served_by"]
            if result["status"] == "ok":
                assert set(served) == {"provider", "side"}
                assert any(
                    a["provider"] == served["provider"] and a["side"] == served["side"] and a["ok"]
                    for a in result["attempts"]
                ), (rid, result)
            else:
                assert served is None, (rid, result)
            if result["status"] == "unresolved":
                assert result["value"] is None
                values = result["values"]
                assert len(values) >= 2 and set(values) <= {
                    a["provider"] for a in result["attempts"]
                }


def test_run_status_and_exit_code(suite):
    for run in suite.runs:
        statuses = {r.get("status") for r in run.results.values()}
        expected = (
            "ok"
            if statuses == {"ok"}
            else "failed"
            if statuses == {"error"}
            else "partial"
            if "error" in statuses
            else "unresolved"
        )
        assert run.out["status"] == expected, (run.number, statuses)
        assert run.exit_code == EXIT_CODES[run.out["status"]], (run.number, run.out["status"])


def test_unresolved_critical_conflicts_leave_an_event(suite):
    for run in suite.runs:
        unresolved = {rid for rid, r in run.results.items() if r.get("status") == "unresolved"}
        flagged = {e.get("request_id") for e in run.codes("CONFLICT_UNRESOLVED")}
        assert unresolved <= flagged, (run.number, unresolved - flagged)


def test_learned_statistics_contract(suite):
    for inst in INSTANCES:
        for record in (s for s in suite.stats if s["skill"] == inst.skill):
            for key in (
                "calls",
                "successes",
                "success_rate",
                "censored",
                "confirmations",
                "refutations",
            ):
                assert key in record, (record["provider"], key)


# -- a third-party server nobody tuned for: mcp-server-time beside a wrong twin ---------------


async def test_mcp_server_time_beside_a_wrong_twin_never_lets_the_wrong_value_out(tmp_path):
    """``time.convert`` has three providers: the built-in, the PyPI ``mcp-server-time`` and a
    fault server answering plausible wrong conversions (text answers). Critical requests, three
    runs on one SQLite database: a result is never ``ok`` with the wrong value."""
    wrong = "mcp:wrong/convert_time"
    config = parse_config(
        {
            "coordination_config": {"default_timeout_ms": 5000},
            "mcpServers": {
                "time": {
                    "command": str(Path(sys.executable).parent / "mcp-server-time"),
                    "args": ["--local-timezone", "UTC"],
                },
                "wrong": faultserver_stdio({"*": {"wrong_answer": True}}, answers="text"),
            },
            "skills": {
                "time.convert": {
                    "providers": [
                        # The wrong twin is declared first and flattered (fast, free, high
                        # quality), so arbitration sends it work: priors are no evidence.
                        {
                            "side": "external",
                            "server": "wrong",
                            "tool": "convert_time",
                            "quality": 0.99,
                            "expected_latency_ms": 1,
                            "cost_per_call": 0,
                        },
                        {"side": "external", "server": "time", "tool": "convert_time"},
                    ]
                }
            },
        }
    )
    seen: set[str] = set()
    returned_wrong = []
    async with (
        asyncio.timeout(120),
        open_persistence(str(tmp_path / "twin.db")) as (checkpointer, store),
        Coordinator.open(config, checkpointer=checkpointer, store=store) as co,
    ):
        for run in range(3):
            requests = [
                {
                    "id": f"c{i}",
                    "skill": "time.convert",
                    "args": args_for("time.convert", run, i),
                    "critical": True,
                }
                for i in range(4)
            ]
            started = time.time()
            out = await co.run(parse_task({"requests": requests}))
            window = (started, time.time())
            for request in requests:
                result = out["results"][request["id"]]
                seen |= {a["provider"] for a in result["attempts"] if a["ok"]}
                served = (result.get("served_by") or {}).get("provider")
                if status_of(result) == "ok" and (
                    served == wrong
                    or not right_value("time.convert", request["args"], result["value"], window)
                ):
                    returned_wrong.append((run, request["id"], result["value"]))
    assert returned_wrong == []
    assert wrong in seen, "the wrong twin was never consulted: the test proved nothing"

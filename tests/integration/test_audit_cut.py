"""The audit trail under runs cut at any point: many runs in flight on one coordinator and one
real MCP server (the fault server, over stdio and over streamable HTTP, recording every call
it receives), an audit file whose writes are held up (another process appending to the same
trail holds its lock for a while, so records queue for the writer), runs cancelled by their
callers at seeded random moments, and the coordinator closed at another.

Whatever was cut where, every call the gate let out has exactly its records: its decision
(written before the call was sent) and one ``external_call`` record after it; a call cut while
its decision was still being written is recorded as ``cancelled``, nothing sent. Every call the
server received is recorded as sent, and the trail verifies. A process killed outright keeps
the record of every answer its run was given.
"""

from __future__ import annotations

import asyncio
import collections
import fcntl
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hybridmcp.audit import iter_records, load_key, verify
from hybridmcp.config import parse_config
from hybridmcp.coordinator import Coordinator
from hybridmcp.persistence import head_anchor
from hybridmcp.task import parse_task
from hybridmcp.testing.harness import HttpFaultServer, faultserver_stdio
from tests.integration.test_durable import cli_env, recorded

pytestmark = pytest.mark.integration

OUTER_S = 240
"""Each test's whole bound: generous on a loaded 2-core machine; never a timing assertion."""
RUNS = 30
SEEDS = (1, 2, 3)


def request_ms(n: int, j: int) -> int:
    """The ``ms`` a run's call asks the server to sleep: unique per call, so the calls the
    server received are told apart."""
    return 400 + 3 * n + j


def plan(rng: random.Random) -> tuple[list[list[int]], list[float | None], float, float]:
    """Per run its calls' sleeps, and when its caller cancels it (None: never); how long the
    other process holds the trail's lock; when the coordinator closes."""
    sleeps = [[request_ms(n, j) for j in range(rng.randint(1, 3))] for n in range(RUNS)]
    held_s = rng.uniform(0.05, 0.4)
    close_at = held_s + rng.uniform(0.05, 0.3)  # while calls sent after the lock are in flight
    cuts = [rng.choice([None, rng.uniform(0.0, close_at)]) for _ in range(RUNS)]
    return sleeps, cuts, held_s, close_at


async def cut_runs(tmp_path: Path, server: dict[str, Any], seed: int, record: Path) -> Path:
    """The runs of one seed, cut as planned; returns the trail."""
    trail = tmp_path / "trail.jsonl"
    db = tmp_path / "runs.db"
    cfg = parse_config(
        {
            "mcpServers": {"faulty": server},
            "audit": {"path": str(trail), "run_db": str(db), "fsync": True},
        }
    )
    sleeps, cuts, held_s, close_at = plan(random.Random(seed))
    async with asyncio.timeout(OUTER_S):
        async with Coordinator.open(cfg) as co:
            other = os.open(trail, os.O_RDWR | os.O_APPEND)  # another appender's lock
            fcntl.flock(other, fcntl.LOCK_EX)
            try:
                runs = []
                for n, ms in enumerate(sleeps):
                    requests = [
                        {"id": f"r{n}x{j}", "skill": "faulty.sleep", "args": {"ms": m}}
                        for j, m in enumerate(ms)
                    ]
                    runs.append(asyncio.create_task(co.run(parse_task({"requests": requests}))))
                loop = asyncio.get_running_loop()
                for run, cut in zip(runs, cuts, strict=True):
                    if cut is not None:
                        loop.call_later(cut, run.cancel)
                await asyncio.sleep(held_s)
            finally:
                fcntl.flock(other, fcntl.LOCK_UN)
                os.close(other)
            await asyncio.sleep(max(0.0, close_at - held_s))
        await asyncio.gather(*runs, return_exceptions=True)
    return trail


def check(trail: Path, record: Path) -> collections.Counter[str]:
    """The trail's invariants; returns how its calls ended (their outcome's category)."""
    report = verify(trail, key=load_key(f"{trail}.key", create=False), anchor=heads(trail))
    assert report.ok, report
    records = list(iter_records(trail))
    decided: collections.Counter[tuple[str, str, str]] = collections.Counter()
    ended: collections.Counter[tuple[str, str, str]] = collections.Counter()
    sends: collections.Counter[str] = collections.Counter()
    for r in records:
        key = (r["run_id"], r["request_id"], r.get("idempotency_key", ""))
        if r["kind"] == "policy_decision" and r.get("stage") == "gate":
            if r.get("policy") in ("budget", "breaker"):
                decided[key] -= 1  # refused at the gate after it was let out: never sent
            elif r["action"] in ("allow", "redact"):
                decided[key] += 1
        elif r["kind"] == "external_call":
            assert decided[key] > ended[key], ("a call recorded before its decision", r)
            ended[key] += 1
            sends[r["request_id"]] += r["sends"]
    assert decided, "no call passed the gate"
    missing = {k: (decided[k], ended[k]) for k in decided | ended if decided[k] != ended[k]}
    assert not missing, f"calls without exactly one record of their end: {missing}"
    ids = {request_ms(n, j): f"r{n}x{j}" for n in range(RUNS) for j in range(3)}
    got = collections.Counter(
        ids[c["arguments"]["ms"]] for c in recorded(record) if c["tool"] == "sleep"
    )
    unrecorded = {rid: (n, sends[rid]) for rid, n in got.items() if n > sends[rid]}
    assert not unrecorded, f"calls the server received, not recorded as sent: {unrecorded}"
    return collections.Counter(
        r["outcome"].split(":")[0] for r in records if r["kind"] == "external_call"
    )


def heads(trail: Path) -> Any:
    """Where the coordinator anchored the trail's head (beside its run database)."""
    return head_anchor(str(trail.parent / "runs.db"))


@pytest.mark.parametrize("seed", SEEDS)
async def test_runs_cut_at_any_point_leave_each_call_its_records_over_stdio(
    tmp_path: Path, seed: int
) -> None:
    record = tmp_path / "received.jsonl"
    trail = await cut_runs(tmp_path, faultserver_stdio(record=record), seed, record)
    ends = check(trail, record)
    assert ends["cancelled"] and ends["closed"], ends  # cuts landed before and after sending


@pytest.mark.parametrize("seed", SEEDS)
async def test_runs_cut_at_any_point_leave_each_call_its_records_over_streamable_http(
    tmp_path: Path, seed: int
) -> None:
    record = tmp_path / "received.jsonl"
    async with HttpFaultServer(record=record) as server:
        trail = await cut_runs(tmp_path, server.server_config(), seed, record)
    ends = check(trail, record)
    assert ends["cancelled"] and ends["closed"], ends


async def test_the_cli_reads_a_trail_while_runs_write_it(tmp_path: Path) -> None:
    """``hybridmcp audit verify`` and ``show`` on a trail the writer thread is appending to
    (runs of calls in flight, records flushed one by one): every reading verifies (a reader
    sees whole appends, each with its head), and the last, once the runs ended, has them all."""
    trail, db = tmp_path / "trail.jsonl", tmp_path / "runs.db"
    cfg = parse_config(
        {
            "mcpServers": {"faulty": faultserver_stdio()},
            "audit": {"path": str(trail), "run_db": str(db), "fsync": True},
        }
    )
    readings: list[int] = []

    async def cli(*args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hybridmcp.cli", "audit", *args, str(trail), "--db", str(db),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=cli_env(),
        )  # fmt: skip
        out, err = await proc.communicate()
        assert proc.returncode == 0, (args, out.decode(), err.decode())
        return out.decode()

    async with asyncio.timeout(OUTER_S), Coordinator.open(cfg) as co:
        tasks = [
            parse_task({"requests": [{"id": f"r{n}x{j}", "skill": "faulty.sleep",
                                      "args": {"ms": 1000 + j}} for j in range(3)]})
            for n in range(20)
        ]  # fmt: skip
        runs = asyncio.gather(*(co.run(t) for t in tasks))
        while not runs.done():
            await cli("verify")
            readings.append(len((await cli("show", "--json")).splitlines()))
        outs = await runs
    assert all(out["status"] == "ok" for out in outs)
    assert readings == sorted(readings), readings  # the trail only grew
    assert len(readings) >= 2 and readings[0] < 20 * 3 * 2, readings  # read while written
    done = len((await cli("show", "--json")).splitlines())
    calls = [r for r in iter_records(trail) if r["kind"] == "external_call"]
    assert len(calls) == 20 * 3 and done == len(list(iter_records(trail))), done


KILLED_RUN = """
import asyncio, json, sys
from hybridmcp import Coordinator, parse_config, parse_task

async def main(config, n):
    async with Coordinator.open(parse_config(json.loads(config))) as co:
        requests = [
            {"id": f"r{i}", "skill": "faulty.sleep", "args": {"ms": 20 + (37 * i) % 400}}
            for i in range(int(n))
        ]
        async for event in co.stream(parse_task({"requests": requests})):
            if event.get("type") == "attempt" and event.get("ok"):
                print(event["request_id"], flush=True)  # the run was given its answer

asyncio.run(main(*sys.argv[1:]))
"""


def killed_ms(i: int) -> int:
    """What the killed run's call ``r{i}`` sleeps (as its script says): unique per call."""
    return 20 + (37 * i) % 400


@pytest.mark.parametrize("seed", SEEDS)
def test_a_process_killed_keeps_the_record_of_every_answer_its_run_was_given(
    tmp_path: Path, seed: int
) -> None:
    """SIGKILL at a seeded random point while a run's calls end one after another (records
    flushed one by one): every call whose answer the run was given (its attempt reported
    finished) has its ``external_call`` record, ``ok``, in the trail, every call the server
    received has its decision, and the trail verifies (an append cut between its record and
    its head is the documented one-record slack)."""
    trail, db, record = tmp_path / "trail.jsonl", tmp_path / "runs.db", tmp_path / "got.jsonl"
    config = {
        "mcpServers": {"faulty": faultserver_stdio(record=record)},
        "audit": {"path": str(trail), "run_db": str(db), "fsync": True},
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, json.dumps(config), "40"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=cli_env(),
    )
    given: list[str] = []
    try:
        assert proc.stdout is not None
        for _ in range(random.Random(seed).randint(1, 25)):
            line = proc.stdout.readline()
            if not line:
                break
            given.append(line.strip())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert given, "no answer was given before the kill"
    report = verify(trail, key=load_key(f"{trail}.key", create=False), anchor=heads(trail))
    assert report.ok, report
    records = list(iter_records(trail))
    ok = {r["request_id"] for r in records if r["kind"] == "external_call" and r["outcome"] == "ok"}
    assert set(given) <= ok, sorted(set(given) - ok)
    decided = {r["request_id"] for r in records if r["kind"] == "policy_decision"}
    ids = {killed_ms(i): f"r{i}" for i in range(40)}
    got = {ids[c["arguments"]["ms"]] for c in recorded(record) if c["tool"] == "sleep"}
    assert got <= decided, sorted(got - decided)  # decided (in the file) before it was sent

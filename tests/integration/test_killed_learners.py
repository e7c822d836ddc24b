"""Several processes running durable runs and learning into one database, SQLite and
PostgreSQL, some of them killed with SIGKILL at points Hypothesis picks (mid-call, mid-learn,
mid-checkpoint: wherever the kill lands), then every thread run again by another process:

- no completed call is made again: a call whose answer a checkpoint holds is in the fault
  server's record once; a call is made again only if its answer was lost with its process;
- no attempt is lost: every request of every thread ends answered;
- the statistics count each attempt of the threads' final states exactly once.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.test_durable import SRC, cli_env, recorded, wait_for

pytestmark = pytest.mark.integration

WORKER = """
import asyncio, json, sys
from hybridmcp.config import load_config
from hybridmcp.coordinator import Coordinator
from hybridmcp.persistence import open_persistence
from hybridmcp.task import parse_task

async def main(db, config, threads):
    async with (
        open_persistence(db) as (checkpointer, store),
        Coordinator.open(load_config(config), checkpointer=checkpointer, store=store) as co,
    ):
        async def one(thread):
            task = parse_task({"requests": [
                {"id": "sum", "skill": "faults.calculate", "args": {"expression": f"{thread}*1"}},
                {"id": "echo", "skill": "faults.echo", "args": {"text": f"{thread}"}},
                {"id": "words", "skill": "faults.word_count", "args": {"text": f"{thread} x"}},
            ]}, "task")
            out = await co.run(task, thread_id=f"t{thread}")
            print(json.dumps({"thread": thread, "status": out["status"]}), flush=True)
        await asyncio.gather(*(one(t) for t in threads))

asyncio.run(main(sys.argv[1], sys.argv[2], [int(t) for t in sys.argv[3].split(",")]))
"""


def write_config(directory: Path, record: Path) -> Path:
    faults = directory / "faults.json"
    # slow enough that a kill lands mid-call as often as between calls
    faults.write_text(json.dumps({"*": {"latency_ms": 100, "jitter_ms": 300}}))
    config = directory / "config.json"
    config.write_text(json.dumps({"mcpServers": {"faults": {
        "command": sys.executable,
        "args": ["-m", "hybridmcp.testing.faultserver", "--faults", str(faults),
                 "--record", str(record)],
        "env": {"PYTHONPATH": SRC}, "timeout_ms": 60_000,
    }}}))  # fmt: skip
    return config


def start(db: str, config: Path, threads: list[int]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, db, str(config), ",".join(map(str, threads))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
    )  # fmt: skip


async def final_states(db: str, threads: list[int]) -> tuple[dict[int, list[dict]], list[Any]]:
    """Each thread's checkpointed attempts (its state's and its pending writes'), and the
    learned statistics."""
    from hybridmcp.persistence import open_persistence
    from hybridmcp.stats_store import all_stats

    found: dict[int, list[dict]] = {}
    async with open_persistence(db) as (saver, store):
        for t in threads:
            saved = await saver.aget_tuple({"configurable": {"thread_id": f"t{t}"}})
            if saved is None:
                found[t] = []
                continue
            attempts = list(saved.checkpoint["channel_values"].get("attempts") or [])
            for _task, channel, value in saved.pending_writes or []:
                if channel == "attempts":
                    attempts += value
            found[t] = attempts
        return found, await all_stats(store)


def call_of(thread: int, attempt: dict) -> tuple[str, str]:
    """The fault server's record of the call an attempt made: (tool, argument)."""
    return {
        "sum": ("calculate", f"{thread}*1"),
        "echo": ("echo", f"{thread}"),
        "words": ("word_count", f"{thread} x"),
    }[attempt["request_id"]]


def made_calls(record: Path) -> Counter[tuple[str, str]]:
    return Counter((c["tool"], next(iter(c["arguments"].values()))) for c in recorded(record))


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request):
    if request.param == "postgresql":
        cluster = request.getfixturevalue("pg_cluster")
        return lambda: cluster.create_database("k" + uuid.uuid4().hex[:10])
    folder = request.getfixturevalue("tmp_path")
    return lambda: str(folder / f"{uuid.uuid4().hex[:8]}.db")


@settings(max_examples=6, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    threads=st.lists(st.integers(1, 3), min_size=2, max_size=3),
    kills=st.lists(st.tuples(st.booleans(), st.floats(0, 1), st.floats(0, 0.4)),
                   min_size=3, max_size=3),
)  # fmt: skip
def test_killed_learners_resume_without_repeating_or_losing_a_call(
    backend, tmp_path_factory, threads, kills
):
    """``threads[i]`` durable runs in process i, all at once; process i is killed (if
    ``kills[i][0]``) once that share (``kills[i][1]``) of its calls is in the record, after
    ``kills[i][2]`` s more; then one process runs every thread again."""
    db = backend()
    folder = tmp_path_factory.mktemp("kill")
    record = folder / "calls.jsonl"
    config = write_config(folder, record)
    names: list[list[int]] = []
    first = 0
    for n in threads:
        names.append(list(range(first, first + n)))
        first += n
    everyone = [t for group in names for t in group]
    procs = [start(db, config, group) for group in names]
    try:
        for proc, group, (kill, share, pause) in zip(procs, names, kills, strict=False):
            if not kill:
                continue
            after = max(1, round(share * 3 * len(group)))
            mine = {str(t) for t in group} | {f"{t}*1" for t in group} | {f"{t} x" for t in group}
            wait_for(
                lambda mine=mine, after=after, proc=proc: proc.poll() is not None
                or sum(1 for c in recorded(record)
                       if next(iter(c["arguments"].values()), None) in mine) >= after,
                120, "the worker's calls",
            )  # fmt: skip
            time.sleep(pause)
            proc.send_signal(signal.SIGKILL)
        for proc in procs:
            _out, err = proc.communicate(timeout=180)
            assert proc.returncode in (0, -signal.SIGKILL), err[-3000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

    before, _ = asyncio.run(final_states(db, everyone))
    held = {(t, a["request_id"]) for t, attempts in before.items() for a in attempts if a["ok"]}
    calls_before = made_calls(record)

    again = start(db, config, everyone)  # another process runs every thread again
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-3000:]
    assert sorted(json.loads(line)["status"] for line in out.splitlines()) == ["ok"] * len(everyone)

    after, stats = asyncio.run(final_states(db, everyone))
    calls = made_calls(record)
    for t, attempts in after.items():
        answered = {a["request_id"] for a in attempts if a["ok"]}
        assert answered == {"sum", "echo", "words"}, (t, attempts)  # no attempt lost
        for rid in answered:
            call = call_of(t, {"request_id": rid})
            tried = sum(1 for a in attempts if a["request_id"] == rid)
            if (t, rid) in held:  # answered and checkpointed before: never made again
                assert calls[call] == calls_before[call] == tried, (t, rid, calls, attempts)
            else:  # made again only if its answer was lost with a killed process
                assert tried <= calls[call] <= tried + 1, (t, rid, calls, attempts)
    learned = Counter(
        {(s.provider, s.skill): s.calls + s.censored for s in stats if s.calls + s.censored}
    )
    attempted = Counter(
        (a["provider"], a["skill"]) for attempts in after.values() for a in attempts
    )
    assert learned == attempted  # every attempt of every thread learned once

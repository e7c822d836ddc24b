"""Several processes on one SQLite run database, on one machine: two terminals, a cron job
beside an interactive run, ``langgraph dev`` beside the command line.

- 4 processes x 50 durable runs (8 in flight in each), released together on one file: every
  run succeeds, every run's checkpoints read back afterwards, the statistics count every attempt
  exactly once, and the one audit trail they all appended to verifies;
- 4 ``hybridmcp run`` commands started together, twice, on one file and one trail;
- a write lock held by another process past the busy timeout is one line naming the file,
  exit 2: never a hang, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bench.scaleout import attempted_counts, release, start_workers, write_setup
from hybridmcp import persistence
from hybridmcp.persistence import DatabaseBusy, open_persistence
from hybridmcp.policy.learning import ProviderStats
from hybridmcp.stats_store import all_stats
from tests.integration.test_durable import cli, cli_env

pytestmark = pytest.mark.integration


def one_line(text: str) -> str:
    return " ".join(text.split())


def with_faults_and_audit(config: Path, tmp_path: Path) -> Path:
    """The setup's fault server failing a third of word_count's calls, and an audit trail."""
    data = json.loads(config.read_text())
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps({"word_count": {"fail_rate": 0.3}}))
    data["mcpServers"]["faults"]["args"] += ["--faults", str(faults)]
    trail = tmp_path / "audit.jsonl"
    data["audit"] = {"path": str(trail)}
    config.write_text(json.dumps(data))
    return trail


def learned(db: str) -> dict[tuple[str, str], ProviderStats]:
    async def read() -> list[ProviderStats]:
        async with open_persistence(db) as (_saver, store):
            return await all_stats(store)

    return {(s.provider, s.skill): s for s in asyncio.run(read())}


def checkpointed(db: str, thread: str) -> list[dict]:
    """The attempts in the thread's latest checkpoint, read by LangGraph's own SQLite saver."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    with SqliteSaver.from_conn_string(db) as saver:
        saved = saver.get_tuple({"configurable": {"thread_id": thread}})
    assert saved is not None, f"no checkpoint for {thread}"
    return list(saved.checkpoint["channel_values"].get("attempts", []))


def assert_learned_once(db: str, runs: list[dict]) -> None:
    stats = learned(db)
    made = attempted_counts(runs)
    assert made and set(made) <= set(stats)
    for key, n in made.items():
        assert stats[key].calls + stats[key].censored == n, (key, stats[key], n)


def test_four_processes_share_one_sqlite_file(tmp_path, monkeypatch):
    config, task = write_setup(tmp_path)
    trail = with_faults_and_audit(config, tmp_path)
    db = str(tmp_path / "runs.db")
    monkeypatch.setenv("HYBRIDMCP_DB", db)  # the trail's head is anchored beside the run db
    # (Before the store's writing transactions began IMMEDIATE, most such cells failed with
    # "database is locked": a batch that read, then wrote after another process committed.)
    procs = start_workers(4, db=db, config=config, task=task, runs=50, concurrency=8,
                          prefix="p")  # fmt: skip
    runs = release(procs)
    assert len(runs) == 200 and len({r["thread"] for r in runs}) == 200
    assert {r["status"] for r in runs} <= {"ok", "partial"}

    for r in runs:  # every run's checkpoints, as the run itself saw them
        saved = checkpointed(db, r["thread"])
        assert [[a["provider"], a["skill"], a["ok"]] for a in saved] == [
            a[:3] for a in r["attempts"]
        ]
    assert_learned_once(db, runs)
    word_count = ("mcp:faults/word_count", "faults.word_count")
    stats = learned(db)
    assert 0 < stats[word_count].successes < stats[word_count].calls  # failures counted too

    verified = cli("audit", "verify", str(trail), env=cli_env(HYBRIDMCP_DB=db))
    assert verified.returncode == 0, verified.stderr + verified.stdout
    records = len(trail.read_text().splitlines())
    external = sum(1 for r in runs for a in r["attempts"] if a[3] is not None)
    assert records >= external
    assert f"ok: {records} records, MAC chain intact" in verified.stdout
    assert "head anchored in" in verified.stdout


def test_cli_runs_started_together_share_one_sqlite_file(tmp_path):
    config, task = write_setup(tmp_path)
    trail = tmp_path / "audit.jsonl"
    db = str(tmp_path / "runs.db")
    outs: list[dict] = []
    for round_ in range(2):  # the first round also creates the file, all at once
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "hybridmcp.cli", "run", str(task), "--config",
                 str(config), "--db", db, "--audit", str(trail), "--json",
                 "--thread", f"t{round_}-{k}"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
            )
            for k in range(4)
        ]  # fmt: skip
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
            outs.append(json.loads(out))
    assert [o["status"] for o in outs] == ["ok"] * 8
    runs = [
        {"attempts": [[a["provider"], r["skill"], a["ok"], "outcome"] for r in o["results"]
                      for a in r["attempts"]]}
        for o in outs
    ]  # fmt: skip
    assert_learned_once(db, runs)
    for round_ in range(2):
        for k in range(4):
            assert len(checkpointed(db, f"t{round_}-{k}")) == len(runs[round_ * 4 + k]["attempts"])
    verified = cli("audit", "verify", str(trail), "--db", db)
    assert verified.returncode == 0, verified.stderr + verified.stdout
    again = cli("run", str(task), "--config", str(config), "--db", db, "--thread", "t0-0")
    assert again.returncode == 0 and "stored result" in one_line(again.stderr)


HOLD = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("CREATE TABLE IF NOT EXISTS held (x)")
print("held", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


def hold_write_lock(db: str) -> subprocess.Popen[str]:
    """Another process holding the file's write lock until its stdin closes."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, db], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def release_lock(holder: subprocess.Popen[str]) -> None:
    holder.communicate("\n", timeout=30)
    assert holder.returncode == 0


async def test_a_write_waits_for_another_process_then_fails_in_one_line(tmp_path, monkeypatch):
    db = str(tmp_path / "runs.db")
    monkeypatch.setattr(persistence, "BUSY_TIMEOUT_S", 1.0)
    async with open_persistence(db) as (_saver, store):
        holder = hold_write_lock(db)
        try:
            # a wait shorter than the timeout just waits
            loop = asyncio.get_running_loop()
            loop.call_later(0.3, holder.stdin.write, "\n")  # type: ignore[union-attr]
            loop.call_later(0.3, holder.stdin.flush)  # type: ignore[union-attr]
            await store.aput(("ns",), "k", {"v": 1})
        finally:
            holder.communicate(timeout=30)
        assert (await store.aget(("ns",), "k")).value == {"v": 1}  # type: ignore[union-attr]

    holder = hold_write_lock(db)
    try:
        with pytest.raises(DatabaseBusy) as err:
            async with open_persistence(db) as (_saver, store):
                await store.aput(("ns",), "k", {"v": 2})
    finally:
        release_lock(holder)
    message = str(err.value)
    assert "\n" not in message and repr(db) in message and "locked" in message
    with sqlite3.connect(db) as conn:  # nothing of the failed write was kept
        assert conn.execute("SELECT count(*) FROM store").fetchone() == (1,)


SHORT_TIMEOUT_CLI = (
    "import sys, hybridmcp.persistence as p; p.BUSY_TIMEOUT_S = 1.0; "
    "from hybridmcp.cli import main; sys.argv[0] = 'hybridmcp'; main()"
)


def test_the_cli_on_a_file_locked_past_the_timeout_is_one_line_exit_2(tmp_path):
    config, task = write_setup(tmp_path)
    db = str(tmp_path / "runs.db")
    first = cli("run", str(task), "--config", str(config), "--db", db, "--json")
    assert first.returncode == 0, first.stderr
    holder = hold_write_lock(db)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", SHORT_TIMEOUT_CLI, "run", str(task), "--config", str(config),
             "--db", db, "--thread", "busy"],
            capture_output=True, text=True, timeout=120, env=cli_env(),
        )  # fmt: skip
    finally:
        release_lock(holder)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert db in one_line(proc.stderr) and "locked" in proc.stderr


async def test_store_batches_that_write_take_the_write_lock_first(tmp_path):
    """What keeps a batch mixing reads and writes from failing at once when another process
    commits between them: it begins IMMEDIATE. Read-only batches keep the deferred BEGIN (in
    WAL they never wait), and a batch that fails keeps nothing."""
    from langgraph.store.base import GetOp, PutOp

    db = str(tmp_path / "runs.db")
    async with open_persistence(db) as (saver, store):
        seen: list[str] = []
        await store.conn.set_trace_callback(seen.append)
        await store.abatch([GetOp(("ns",), "a"), PutOp(("ns",), "a", {"v": 1})])
        assert [s for s in seen if s.startswith("BEGIN")] == ["BEGIN IMMEDIATE"]
        seen.clear()
        await store.abatch([GetOp(("ns",), "a")])
        assert [s for s in seen if s.startswith("BEGIN")] == ["BEGIN"]
        assert seen[-1] == "COMMIT"
        seen.clear()
        with pytest.raises(TypeError):  # a value JSON cannot hold, after a good one
            await store.abatch([PutOp(("ns",), "b", {"v": 2}), PutOp(("ns",), "c", {"v": {1j}})])
        assert "ROLLBACK" in seen and await store.aget(("ns",), "b") is None
        async with saver.conn.execute("PRAGMA journal_mode") as cursor:
            assert (await cursor.fetchone())[0] == "wal"

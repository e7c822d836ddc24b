"""PostgreSQL going away under a coordinator (a real cluster of the test's own, stopped and
started again with ``pg_ctl``): a run it cuts fails in one line and is resumed later without
repeating a completed call or learning one twice; a long-lived process keeps working once the
server is back, without being restarted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from hybridmcp.testing.harness import child_processes
from hybridmcp.testing.pgcluster import ClusterError, TempCluster
from tests.integration.test_durable import (
    FAST,
    SLOW,
    cli,
    cli_env,
    fault_server_setup,
    recorded,
    wait_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster() -> Iterator[TempCluster]:
    """A cluster of this test's own: stopping it disturbs no other test's database. Commits
    are synchronous (the throwaway cluster's default is not), so a crash loses none."""
    try:
        made = TempCluster(settings={"synchronous_commit": "on"}).start()
    except ClusterError as err:  # CI installs PostgreSQL: a skip there fails the run
        pytest.skip(f"no PostgreSQL to test against: {err}")
    try:
        yield made
    finally:
        made.stop()


def one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("mode", ["fast", "immediate"])  # told, or as a crash
async def test_a_process_keeps_working_after_the_server_restarts(cluster, mode):
    """One long-lived process (a server replica, a worker): the server is restarted while
    every connection of the pool sits idle in it. Every later use of the checkpointer, the
    store and the statistics lock succeeds (no connection the restart closed is handed out),
    and each update is counted once."""
    from langgraph.checkpoint.base import empty_checkpoint

    from hybridmcp.persistence import PG_POOL_MAX, open_persistence
    from hybridmcp.policy.learning import observe_call
    from hybridmcp.stats_store import all_stats, load_stats, save_stats, stats_lock

    db = cluster.create_database("outage")
    lock = asyncio.Lock()
    async with open_persistence(db) as (saver, store):

        async def use(i: int, record: tuple[str, str] = ("p", "s")) -> None:
            config = {"configurable": {"thread_id": f"t{i}", "checkpoint_ns": ""}}
            await saver.aput(config, empty_checkpoint(), {}, {})  # type: ignore[arg-type]
            async with stats_lock(store, [record], lock):
                loaded = await load_stats(store, [record])
                seen = loaded[record]
                await save_stats(store, [observe_call(seen, ok=True, latency_ms=1.0, cost=0.0,
                                                      now=0.0)])  # fmt: skip

        async def busy() -> None:  # the pool's every connection opened, then idle in it
            pool = store.conn  # type: ignore[attr-defined]
            async with contextlib.AsyncExitStack() as held:
                for _ in range(PG_POOL_MAX):  # (a connection the pool lost count of: fails)
                    await held.enter_async_context(pool.connection(timeout=20))
            assert pool.get_stats()["pool_available"] == PG_POOL_MAX
            await asyncio.gather(*(use(i) for i in range(PG_POOL_MAX * 2)))

        await busy()
        await asyncio.to_thread(cluster.halt, mode)  # each connection the pool holds is closed
        await asyncio.to_thread(cluster.start)
        await busy()
        await asyncio.to_thread(cluster.halt, mode)  # again, then
        await asyncio.to_thread(cluster.start)
        # uses cancelled by their callers at every point, while stale connections are replaced
        cut = [asyncio.ensure_future(use(200 + i, ("q", "s"))) for i in range(PG_POOL_MAX * 2)]
        for k, task in enumerate(cut):
            for _ in range(k):
                await asyncio.sleep(0)
            task.cancel()
        ended = await asyncio.gather(*cut, return_exceptions=True)
        assert all(e is None or isinstance(e, asyncio.CancelledError) for e in ended), ended
        await busy()
        for i in range(PG_POOL_MAX + 1):  # one at a time, more than the pool holds
            await use(100 + i)
        learned = {s.provider: s.calls for s in await all_stats(store)}
        assert learned["p"] == PG_POOL_MAX * 6 + PG_POOL_MAX + 1


@dataclass
class CutRun:
    """A CLI run on a thread of the fault server's task, cut by its database while the slow
    call was in flight: its arguments (to run it again), the calls the server recorded, and
    its error as one line."""

    args: list[str]
    faults: Path
    record: Path
    said: str


def cut_cli_run(
    tmp_path: Path,
    db: str,
    cut: Callable[[], AbstractContextManager[Any]],
    patience_s: float,
    **env: str,
) -> CutRun:
    """Start the run, wait until the fast calls are made and the slow one (3 s) is in flight,
    then hold ``cut()`` open until the run ends: it must end within ``patience_s``, exit
    2, with one error line, no traceback, nothing on stdout and no child left."""
    faults, record, config, task = fault_server_setup(tmp_path)
    faults.write_text(json.dumps({SLOW[1]: {"latency_ms": 3000}}))
    args = ["run", str(task), "--config", str(config), "--db", db, "--json", "--thread", "job-1"]
    first = subprocess.Popen([sys.executable, "-m", "hybridmcp.cli", *args], env=cli_env(**env),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_for(lambda: len(recorded(record)) == len(FAST) + 1, 90, "the calls to be made")
        with cut():
            out, err = first.communicate(timeout=patience_s)  # a hang fails here
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 2, err
    assert "Traceback" not in err and err.count("error:") == 1, err
    assert out == ""
    assert not child_processes(first.pid)
    return CutRun(args, faults, record, one_line(err))


def resumed_without_repeats(run: CutRun) -> None:
    """The cut run's thread, run again with the database back, ends ok, having made no
    completed call again (the slow one again if its answer was lost)."""
    run.faults.write_text("{}")
    resumed = cli(*run.args)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "ok"
    calls = [(c["tool"], c["arguments"]) for c in recorded(run.record)]
    for tool, arguments in FAST.values():
        assert calls.count((tool, arguments)) == 1, calls  # checkpointed before the cut
    assert calls.count((SLOW[1], SLOW[2])) in (1, 2)  # made again if its answer was lost


def test_a_run_the_server_stops_under_fails_in_one_line_and_resumes(cluster, tmp_path):
    """A CLI run on a thread whose database stops while a call is in flight: one line, exit
    2, no traceback; once the server is back, the thread resumes without repeating a completed
    call, and what is learned counts each call made once."""
    db = cluster.create_database("cut")

    @contextlib.contextmanager
    def halted() -> Iterator[None]:
        cluster.halt()  # while the slow call is in flight
        yield

    run = cut_cli_run(tmp_path, db, halted, 180)
    said = run.said
    if "the PostgreSQL connection holding its lock ended mid-run" in said:
        pass  # the thread lock's connection was seen to end first (ThreadLockLost)
    else:  # a statement of the run met the server gone
        assert "database postgresql://127.0.0.1" in said and "/cut" in said, said
        assert "--thread" in said, said  # how to go on: run the thread again
        # the server is gone, said as such (not a pool's wait for a connection, run to its end)
        assert "connection failed" in said or "server closed the connection" in said, said
        assert "couldn't get a connection" not in said, said
    assert "resumes where its checkpoints stop" in said, said

    cluster.start()
    resumed_without_repeats(run)
    with psycopg.connect(db) as conn:
        value = conn.execute(
            "SELECT value FROM store WHERE prefix = 'hybridmcp.provider_stats'"
        ).fetchall()
    learned = {v[0]["provider"]: v[0]["calls"] + v[0]["censored"] for v in value}
    # learned once, by the run that finished: the cut one never reached learn, and the slow
    # call's answer is in the thread once, whichever run received it
    assert learned == {"mcp:faults/calculate": 2, "mcp:faults/word_count": 1, "mcp:faults/echo": 1}


def _server_processes(cluster: TempCluster) -> list[int]:
    """The cluster's postmaster and every process it started (its backends)."""
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    return [postmaster, *child_processes(postmaster)]


@contextlib.contextmanager
def not_answering(cluster: TempCluster, db: str, how: str, tables: str) -> Iterator[None]:
    """The database stops answering without closing a connection until the block ends:
    ``locked``, another session holds ``tables`` (ACCESS EXCLUSIVE) in an open transaction;
    ``frozen``, every process of the server is stopped (SIGSTOP), then let go on."""
    holder: psycopg.Connection[Any] | None = None
    frozen: list[int] = []
    try:
        if how == "locked":
            holder = psycopg.connect(db)
            holder.execute(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE")
        else:
            frozen = _server_processes(cluster)
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
        yield
    finally:
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        if holder is not None:
            holder.rollback()
            holder.close()


@pytest.mark.parametrize("how", ["locked", "frozen"])
def test_a_run_the_database_stops_answering_under_fails_in_one_line_and_resumes(
    cluster, tmp_path, how
):
    """The database stops answering a run without closing its connections, while a call is
    in flight: another session holds a lock on the checkpoint tables (a migration, a stuck
    transaction), or the server is frozen (SIGSTOP: a host that hangs, a partition). The
    run's next checkpoint waits at most ``$HYBRIDMCP_DB_TIMEOUT_S``, then ends the run in one
    line and exit 2, instead of hanging; once the database answers, the thread resumes
    without repeating a completed call."""
    db = cluster.create_database("hang")

    @contextlib.contextmanager
    def stopped_answering() -> Iterator[None]:
        time.sleep(0.5)  # the fast calls' answers checkpointed; the slow one in flight (3 s)
        with not_answering(cluster, db, how, "checkpoints, checkpoint_writes"):
            yield

    run = cut_cli_run(tmp_path, db, stopped_answering, 120, HYBRIDMCP_DB_TIMEOUT_S="2")
    said = run.said
    # (a frozen server was noticed before, later, by the thread lock's watch on its session)
    assert "database postgresql://127.0.0.1" in said and "/hang" in said, said
    assert "no answer from the database within 2 s" in said, said
    assert "resumes where its checkpoints stop" in said, said
    resumed_without_repeats(run)


def test_a_bad_database_timeout_is_one_line(tmp_path):
    """``$HYBRIDMCP_DB_TIMEOUT_S`` that is no number of seconds: refused before anything."""
    task = tmp_path / "task.json"
    task.write_text(json.dumps({"requests": [{"id": "a", "skill": "math.add",
                                              "args": {"a": 1, "b": 2}}]}))  # fmt: skip
    url = "postgresql://nobody@127.0.0.1:1/none"
    for bad in ("soon", "-1", "nan", "inf"):
        done = cli("run", str(task), "--db", url, env=cli_env(HYBRIDMCP_DB_TIMEOUT_S=bad))
        assert done.returncode == 2, done.stderr
        assert one_line(done.stderr) == (
            f"error: $HYBRIDMCP_DB_TIMEOUT_S must be a number of seconds (0: no limit), not {bad!r}"
        ), done.stderr


def test_a_connection_is_told_closed_by_its_socket_at_any_descriptor_number(cluster):
    """The check a pooled connection passes as it is handed out: a healthy one passes, even
    with a descriptor past select()'s 1024 (a server process holding many sockets); one the
    server closed does not."""
    import os
    import resource

    from hybridmcp.persistence import closed_by_server

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200 <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    spare = []
    try:
        while len(spare) < 1100 and (not spare or spare[-1] < 1030):
            spare.append(os.open(os.devnull, os.O_RDONLY))
        with psycopg.connect(cluster.create_database("fds"), autocommit=True) as conn:
            assert conn.pgconn.socket > 1024
            conn.execute("SELECT 1")
            assert not closed_by_server(conn)
            cluster.halt()
            wait_for(lambda: closed_by_server(conn), 30, "the server's goodbye")
    finally:
        for fd in spare:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_the_thread_lock_session_is_opened_again_after_the_server_restarts(cluster, mode):
    """A process holds its own session for thread locks. A restart closes it; the next run of
    any thread takes its lock on a new session instead of failing on the closed one (as the
    first run after every restart did), and the lock still keeps another holder out."""
    from hybridmcp.errors import ThreadBusy
    from hybridmcp.persistence import open_persistence
    from hybridmcp.thread_lock import ThreadLocks

    db = cluster.create_database("locks")
    async with open_persistence(db) as (_saver, store):
        locks, other = ThreadLocks(), ThreadLocks()  # this process, and another one
        try:
            async with locks.hold(store, "t1"):
                pass
            await asyncio.to_thread(cluster.halt, mode)
            await asyncio.to_thread(cluster.start)
            async with locks.hold(store, "t2"):
                with pytest.raises(ThreadBusy):
                    async with other.hold(store, "t2"):
                        pass
            async with other.hold(store, "t2"):  # released: free for the other process
                pass
        finally:
            await locks.close()
            await other.close()


@pytest.mark.parametrize("how", ["locked", "frozen"])
def test_audit_heads_on_a_database_that_stops_answering_are_an_audit_error(
    cluster, monkeypatch, tmp_path, how
):
    """The audit-head anchor's statements (a blocking connection of its own) are bounded as
    a run's are: a lock another session holds on its table, or a frozen server, makes the
    append an audit error naming the limit, not a wait without end. Whether the head was
    saved is then not known (a frozen server resumed may still take it), so the record stays:
    the trail verifies either way, and the next append goes on from it."""
    from concurrent.futures import ThreadPoolExecutor

    from hybridmcp.audit import AuditLog, verify
    from hybridmcp.errors import AuditError
    from hybridmcp.persistence import PostgresHeads

    monkeypatch.setenv("HYBRIDMCP_DB_TIMEOUT_S", "1")
    db = cluster.create_database("heads")
    trail, key, heads = tmp_path / "audit.jsonl", b"k" * 32, PostgresHeads(db)
    pool = ThreadPoolExecutor(1)
    with AuditLog(trail, key=key, anchor=heads) as log:
        for i in range(3):
            log.append({"kind": "external_call", "i": i})
        try:
            with not_answering(cluster, db, how, PostgresHeads.TABLE):
                appending = pool.submit(log.append, {"kind": "external_call", "i": 3})
                with pytest.raises(AuditError) as err:
                    appending.result(timeout=60)  # a hang fails here
        finally:
            pool.shutdown(wait=False)
        said = str(err.value)
        assert "\n" not in said and "no answer from the database within 1 s" in said, said
        time.sleep(0.5)  # a statement the frozen server had read is taken by now
        report = verify(trail, key=key, anchor=heads)
        assert report.ok, (report.problems, report.notes)
        assert report.head.seq == 4 and report.anchored.seq in (3, 4), report
        log.append({"kind": "external_call", "i": 4})
    report = verify(trail, key=key, anchor=heads)
    assert report.ok and report.head == report.anchored and report.head.seq == 5, report
    heads.close()

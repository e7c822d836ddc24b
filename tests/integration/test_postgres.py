"""Scale-out on a real PostgreSQL (a throwaway cluster, ``conftest.pg_cluster``): checkpoints,
learned statistics and audit heads in one database shared by several processes.

- every attempt of 4 processes x 50 concurrent runs is counted once in the statistics;
- a run killed with SIGKILL in one process is resumed by another, no completed call repeated;
- an unreachable server and a schema from a newer version are one clear line, exit 2;
- ``hybridmcp stats`` and ``hybridmcp audit`` work against PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from bench.scaleout import attempted_counts, release, start_workers, write_setup
from hybridmcp.errors import ConfigError
from hybridmcp.persistence import PostgresHeads, head_anchor, open_persistence
from hybridmcp.policy.learning import ProviderStats
from hybridmcp.stats_store import all_stats, save_stats
from hybridmcp.testing.pgcluster import free_port
from tests.integration.test_durable import (
    FAST,
    SLOW,
    cli,
    cli_env,
    fault_server_setup,
    killed_mid_call,
    recorded,
)

pytestmark = pytest.mark.integration


def one_line(text: str) -> str:
    return " ".join(text.split())


async def test_checkpoints_and_statistics_live_in_postgres_through_a_pool(pg_url):
    from psycopg_pool import AsyncConnectionPool

    async with open_persistence(pg_url) as (saver, store):
        assert isinstance(store.conn, AsyncConnectionPool)  # type: ignore[attr-defined]
        assert saver.conn is store.conn  # type: ignore[attr-defined]  # one pool per process
        await save_stats(store, [ProviderStats("p", "s", calls=3, evidence=3.0)])
    async with open_persistence(pg_url) as (_saver, store):  # tables exist: set up again
        assert [(s.provider, s.calls) for s in await all_stats(store)] == [("p", 3)]
    with psycopg.connect(pg_url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables").fetchall()}
        version = conn.execute("SELECT version FROM hybridmcp_schema").fetchall()
    assert {"checkpoints", "store", "hybridmcp_schema", "hybridmcp_audit_heads"} <= tables
    assert version == [(1,)]


async def test_processes_opening_a_new_database_at_once_set_it_up_once(pg_url):
    async def open_one() -> int:
        async with open_persistence(pg_url) as (_saver, store):
            return len(await all_stats(store))

    assert await asyncio.gather(*(open_one() for _ in range(4))) == [0, 0, 0, 0]
    with psycopg.connect(pg_url) as conn:
        migrations = conn.execute("SELECT count(*), count(DISTINCT v) FROM store_migrations")
        total, distinct = migrations.fetchone()  # type: ignore[misc]
    assert total == distinct > 0


def test_an_unreachable_server_is_one_clear_line():
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    for args in (["stats", "--db", url], ["run", "--json", "--db", url]):
        proc = cli(*args)
        assert proc.returncode == 2, proc.stderr
        said = one_line(proc.stderr)
        assert f"database postgresql://127.0.0.1:{url.split(':')[2]}" in said, said
        assert "is unreachable" in said and "--db" in said, said
        assert "Traceback" not in proc.stderr and proc.stdout == ""


@pytest.mark.parametrize(
    ("table", "sql"),
    [
        ("hybridmcp_schema", "INSERT INTO hybridmcp_schema (version) VALUES (99)"),
        ("checkpoint_migrations", "INSERT INTO checkpoint_migrations (v) VALUES (999)"),
        ("store_migrations", "INSERT INTO store_migrations (v) VALUES (999)"),
    ],
)
async def test_a_schema_from_a_newer_version_is_refused_untouched(pg_url, table, sql):
    async with open_persistence(pg_url) as (_saver, store):
        await save_stats(store, [ProviderStats("p", "s", calls=1, evidence=1.0)])
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql)
        before = conn.execute("SELECT key, value::text FROM store ORDER BY key").fetchall()
    with pytest.raises(ConfigError, match="schema from a newer version") as err:
        async with open_persistence(pg_url):
            pass
    assert "\n" not in str(err.value) and "postgresql://127.0.0.1" in str(err.value)
    with psycopg.connect(pg_url) as conn:
        after = conn.execute("SELECT key, value::text FROM store ORDER BY key").fetchall()
    assert after == before
    proc = cli("stats", "--db", pg_url)
    assert proc.returncode == 2 and "schema from a newer version" in one_line(proc.stderr)


def test_run_stats_and_audit_against_postgres(pg_url, tmp_path):
    faults, _record, config, task = fault_server_setup(tmp_path)
    faults.write_text("{}")
    trail = tmp_path / "audit.jsonl"
    env = cli_env(HYBRIDMCP_DB=pg_url)
    runs = []
    for _ in range(2):
        proc = cli("run", str(task), "--config", str(config), "--audit", str(trail), "--json",
                   env=env)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        runs.append(json.loads(proc.stdout))
    shown = cli("stats", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    stats = {(r["provider"], r["skill"]): r for r in json.loads(shown.stdout)}
    made = attempted_counts(
        [{"attempts": [[a["provider"], r["skill"], a["ok"], "outcome"] for r in run["results"]
                       for a in r["attempts"]]} for run in runs]
    )  # fmt: skip
    assert {k: s["calls"] + s["censored"] for k, s in stats.items() if k in made} == made
    assert "postgresql://127.0.0.1" in cli("stats", env=env).stdout

    # the trail's head is anchored in the run database's own table
    anchor = head_anchor(pg_url)
    assert isinstance(anchor, PostgresHeads)
    lines = trail.read_text().splitlines()
    head = anchor.load(str(trail.resolve()))
    anchor.close()
    assert head is not None and head.seq == len(lines)
    verified = cli("audit", "verify", str(trail), env=env)
    assert verified.returncode == 0, verified.stderr + verified.stdout
    assert f"ok: {len(lines)} records, MAC chain intact" in verified.stdout
    assert "head anchored in postgresql://127.0.0.1" in verified.stdout

    trail.write_text("\n".join(lines[:-1]) + "\n")  # the tail cut behind the writer's back
    cut = cli("audit", "verify", str(trail), env=env)
    assert cut.returncode == 1 and cut.stderr.startswith("FAILED:"), cut.stderr
    refused = cli("run", str(task), "--config", str(config), "--audit", str(trail), env=env)
    assert refused.returncode == 2 and "does not verify" in one_line(refused.stderr)


def test_four_processes_learn_every_attempt_exactly_once(pg_url, tmp_path):
    """4 processes x 50 runs, 4 in flight in each, all learning into the same statistics:
    the statistics count exactly the attempts the runs checkpointed, successes and failures
    (those learn takes in: one refused by an open circuit never reached the provider)."""
    config, task = write_setup(tmp_path)
    # Failures too: a third of word_count's calls fail (the run's answer is partial then).
    data = json.loads(config.read_text())
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps({"word_count": {"fail_rate": 0.3}, "*": {"jitter_ms": 5}}))
    data["mcpServers"]["faults"]["args"] += ["--faults", str(faults)]
    config.write_text(json.dumps(data))
    procs = start_workers(4, db=pg_url, config=config, task=task, runs=50, concurrency=4,
                          prefix="p")  # fmt: skip
    runs = release(procs)
    assert len(runs) == 200 and len({r["thread"] for r in runs}) == 200

    async def learned() -> list[ProviderStats]:
        async with open_persistence(pg_url) as (_saver, store):
            return await all_stats(store)

    stats = {(s.provider, s.skill): s for s in asyncio.run(learned())}
    made = attempted_counts(runs)
    assert set(made) <= set(stats) and sum(made.values()) >= 400  # (a circuit may open)
    for key, n in made.items():
        assert stats[key].calls + stats[key].censored == n, (key, stats[key], n)
    succeeded: dict[tuple[str, str], int] = {}
    for r in runs:
        for provider, skill, ok, how in r["attempts"]:
            if how == "outcome":
                succeeded[(provider, skill)] = succeeded.get((provider, skill), 0) + int(ok)
    assert {k: stats[k].successes for k in made} == succeeded
    word_count = ("mcp:faults/word_count", "faults.word_count")
    assert 0 < stats[word_count].successes < stats[word_count].calls  # failures were counted


def checkpointed_attempts_pg(url: str, thread: str) -> set[str]:
    from langgraph.checkpoint.postgres import PostgresSaver

    with PostgresSaver.from_conn_string(url) as saver:
        try:
            saved = saver.get_tuple({"configurable": {"thread_id": thread}})
        except psycopg.errors.ProgrammingError:  # the run's process is still making tables
            return set()
    if saved is None:
        return set()
    return {
        a["request_id"]
        for _task, channel, value in saved.pending_writes or []
        if channel == "attempts"
        for a in value
    }


def test_a_run_killed_in_one_process_is_resumed_by_another(pg_url, tmp_path):
    """Process A starts a durable run on PostgreSQL and is killed with SIGKILL mid-way;
    process B, sharing only the database, resumes it: no completed call is made again."""
    faults, record, config, task = fault_server_setup(tmp_path)
    faults.write_text(json.dumps({SLOW[1]: {"latency_ms": 600_000}}))  # hangs for ten minutes
    args = ["run", str(task), "--config", str(config), "--db", pg_url, "--json"]
    killed_mid_call(args, record, lambda: checkpointed_attempts_pg(pg_url, "job-1"), timeout_s=90)

    faults.write_text("{}")  # the slow service has recovered
    # another process (the other's connections are gone with it) resumes the thread
    resumed = cli(*args, "--thread", "job-1")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed where it stopped" in one_line(resumed.stderr)
    out = json.loads(resumed.stdout)
    calls = [(c["tool"], c["arguments"]) for c in recorded(record)]
    for tool, arguments in FAST.values():  # each completed call was made exactly once
        assert calls.count((tool, arguments)) == 1, calls
    assert calls.count((SLOW[1], SLOW[2])) == 2  # the one in flight was made again
    assert out["status"] == "ok" and out["thread"] == {"id": "job-1", "found": "unfinished"}
    assert {r["id"]: r["value"] for r in out["results"]}["slow"] == {"text": "slow one"}

    # learned once: the killed process never reached learn, the resumed run did
    shown = cli("stats", "--db", pg_url, "--json")
    echo = next(r for r in json.loads(shown.stdout) if r["provider"] == "mcp:faults/echo")
    assert echo["calls"] + echo["censored"] == 1

    before = len(recorded(record))
    again = cli(*args, "--thread", "job-1")  # a finished thread: its stored result, no call
    assert again.returncode == 0 and "stored result" in one_line(again.stderr)
    assert len(recorded(record)) == before


def test_audit_heads_follow_the_database_and_an_unreachable_one_is_an_audit_error(tmp_path):
    from hybridmcp.errors import AuditError

    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    anchor = head_anchor(url)
    assert isinstance(anchor, PostgresHeads) and anchor.db.startswith("postgresql://127.0.0.1")
    with pytest.raises(AuditError, match="cannot be used") as err:
        anchor.load("trail")
    assert "\n" not in str(err.value)
    assert head_anchor(None, url).db == anchor.db  # type: ignore[union-attr]
    assert Path(str(head_anchor(str(tmp_path / "r.db")).db)).name == "r.audit-heads.db"  # type: ignore[union-attr]


HAMMER = """
import asyncio, sys
from hybridmcp.stats_store import load_stats, save_stats, stats_lock
from hybridmcp.persistence import open_persistence
from hybridmcp.policy.learning import observe_call

async def main(db, n):
    lock = asyncio.Lock()
    async with open_persistence(db) as (_saver, store):
        async def one(i):
            pairs = [("p", "s"), ("q", "s")]
            async with stats_lock(store, pairs, lock):
                loaded = await load_stats(store, pairs)
                await asyncio.sleep(0.001)  # widen the window a lost update needs
                await save_stats(store, [
                    observe_call(s, ok=i % 3 != 0, latency_ms=1.0, cost=0.0, now=0.0)
                    for s in loaded.values()
                ])
        await asyncio.gather(*(one(i) for i in range(n)))

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_updates_of_the_same_statistics_are_never_lost(backend, request, tmp_path):
    """Processes updating the same two records at once, on SQLite and on PostgreSQL: every
    update is in the result (the store's own read-modify-write would lose most of them)."""
    db = request.getfixturevalue("pg_url") if backend == "postgresql" else str(tmp_path / "s.db")
    procs = [
        subprocess.Popen([sys.executable, "-c", HAMMER, db, "40"], env=cli_env(),
                         stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]  # fmt: skip
    for p in procs:
        _out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err

    async def learned() -> list[ProviderStats]:
        async with open_persistence(db) as (_saver, store):
            return await all_stats(store)

    stats = asyncio.run(learned())
    assert sorted((s.provider, s.calls, s.successes) for s in stats) == [
        ("p", 160, 4 * 26),
        ("q", 160, 4 * 26),
    ]


async def test_the_langgraph_server_keeps_checkpoints_and_statistics_in_postgres(pg_url, tmp_path):
    """``langgraph dev`` with ``langgraph.postgres.json``: the server's own checkpointer and
    store are hybridmcp's on PostgreSQL; a second server (another replica, started after the
    first stopped) on the same database adds to the same statistics."""
    from langgraph_sdk import get_client

    from tests.integration.test_server import REQUESTS, RUN_DEADLINE_S, serve

    request = REQUESTS[:1]  # math.calculate: internal, no external server needed
    outputs, threads = [], []
    for replica in ("one", "two"):
        folder = tmp_path / replica
        folder.mkdir()
        with serve(folder / "server.log", config="langgraph.postgres.json",
                   HYBRIDMCP_DB=pg_url) as url:  # fmt: skip
            client = get_client(url=url)
            async with asyncio.timeout(RUN_DEADLINE_S):
                thread = await client.threads.create()
                outputs.append(
                    await client.runs.wait(thread["thread_id"], "hybridmcp",
                                           input={"requests": request})
                )  # fmt: skip
            threads.append(thread["thread_id"])
        assert "hybridmcp.server_persistence" in (folder / "server.log").read_text()
    assert [o["status"] for o in outputs] == ["ok", "ok"]
    with psycopg.connect(pg_url) as conn:
        saved = conn.execute("SELECT DISTINCT thread_id FROM checkpoints").fetchall()
        value = conn.execute(
            "SELECT value FROM store WHERE prefix = 'hybridmcp.provider_stats'"
        ).fetchall()
    assert sorted(t[0] for t in saved) == sorted(threads)
    assert sum(v[0]["calls"] for v in value) == sum(
        len(r["attempts"]) for o in outputs for r in o["results"].values()
    )


def test_a_report_reads_postgres_in_read_only_sessions_and_migrates_nothing(pg_url, tmp_path):
    """``report`` on a database whose store is a migration behind (its last one's row gone):
    the report is written, and the migration is not run (its row still missing), where
    opening the database to write would run it."""
    faults, _record, config, task = fault_server_setup(tmp_path)
    faults.write_text("{}")
    env = cli_env(HYBRIDMCP_DB=pg_url)
    ran = cli("run", str(task), "--config", str(config), "--thread", "t", env=env)
    assert ran.returncode == 0, ran.stderr
    last = "SELECT max(v) AS v FROM store_migrations"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        (newest,) = conn.execute(last).fetchone()
        conn.execute("DELETE FROM store_migrations WHERE v = %s", (newest,))
    out = tmp_path / "r.html"
    proc = cli("report", "--thread", "t", "-o", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    assert 'data-request="' in out.read_text()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute(last).fetchone() == (newest - 1,)
    assert cli("stats", env=env).returncode == 0  # opened to write: migrated
    with psycopg.connect(pg_url) as conn:
        assert conn.execute(last).fetchone() == (newest,)

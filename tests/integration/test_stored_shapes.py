"""A database whose learned-statistics rows another version or application wrote, on SQLite
and on PostgreSQL: ``run`` and ``stats`` refuse it in one line (exit 2), the row untouched;
``stats --reset`` forgets it without reading it, and the next run learns afresh."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import psycopg
import pytest

from tests.integration.test_durable import cli

pytestmark = pytest.mark.integration

KEY = "internal:math.calculate|math.calculate"
SHAPES = {  # the stored value, as SQL on the row's JSON (SQLite's json1, PostgreSQL's jsonb)
    "a count as a string": ("json_set(value, '$.calls', '3')",
                            "jsonb_set(value, '{calls}', '\"3\"')"),
    "a list, not an object": ("'[1, 2]'", "'[1, 2]'::jsonb"),
    "not JSON (a JSON string on PostgreSQL)": ("'not json'", "'\"not json\"'::jsonb"),
    "no provider": ("json_remove(value, '$.provider')", "value - 'provider'"),
    "another provider's": ("json_set(value, '$.provider', 'other')",
                           "jsonb_set(value, '{provider}', '\"other\"')"),
}  # fmt: skip


def rows(db: str) -> list[tuple[str, str]]:
    if db.startswith("postgresql://"):
        with psycopg.connect(db) as conn:
            got = conn.execute("SELECT key, value::text FROM store ORDER BY key").fetchall()
            return [(str(k), str(v)) for k, v in got]
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT key, CAST(value AS TEXT) FROM store ORDER BY key").fetchall()


def damage(db: str, sql: tuple[str, str]) -> None:
    if db.startswith("postgresql://"):
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(f"UPDATE store SET value = {sql[1]} WHERE key = %s", (KEY,))
        return
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(f"UPDATE store SET value = {sql[0]} WHERE key = ?", (KEY,))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_statistics_row_of_another_shape_is_refused_untouched(backend, shape, request, tmp_path):
    db = request.getfixturevalue("pg_url") if backend == "postgresql" else str(tmp_path / "r.db")
    first = cli("run", "--json", "--db", db)
    assert first.returncode == 0, first.stderr
    damage(db, SHAPES[shape])
    before = rows(db)
    for args in (["stats", "--db", db], ["run", "--json", "--db", db]):
        proc = cli(*args)
        said = " ".join(proc.stderr.split())
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and proc.stderr.count("error:") == 1, proc.stderr
        # (the store fails to decode a value that is not JSON, or on PostgreSQL not an
        # object, before hybridmcp sees its key)
        assert f"the learned statistics record {KEY!r}" in said or (
            "a learned statistics record is not a JSON object the store can read" in said
        ), said
        assert "hybridmcp stats --reset" in said, said
        assert proc.stdout == ""
    assert rows(db) == before  # nothing learned over it, nothing rewritten

    reset = cli("stats", "--db", db, "--reset", "--json")
    assert reset.returncode == 0, reset.stderr
    assert json.loads(reset.stdout) == []
    again = cli("run", "--json", "--db", db)
    assert again.returncode == 0, again.stderr
    shown = cli("stats", "--db", db, "--json")
    learned = {r["provider"]: r for r in json.loads(shown.stdout)}
    assert learned["internal:math.calculate"]["calls"] == 1  # learned afresh, once


CHECKPOINT_DAMAGE = {  # (SQLite, PostgreSQL): a thread's saved state of another format
    "a serialization this version refuses": (
        "UPDATE checkpoints SET type = 'pickle'",
        "UPDATE checkpoint_blobs SET type = 'pickle' WHERE type = 'msgpack'",
    ),
    "bytes of another format": (
        "UPDATE checkpoints SET checkpoint = x'00ff00ff'",
        "UPDATE checkpoint_blobs SET blob = '\\x00ff00ff'::bytea WHERE type = 'msgpack'",
    ),
}


def checkpoint_rows(db: str) -> list[tuple]:
    if db.startswith("postgresql://"):
        with psycopg.connect(db) as conn:
            return conn.execute(
                "SELECT thread_id, channel, type, blob FROM checkpoint_blobs ORDER BY 1, 2, 3"
            ).fetchall()
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(
            "SELECT thread_id, checkpoint_id, type, checkpoint FROM checkpoints ORDER BY 1, 2"
        ).fetchall()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("damage", list(CHECKPOINT_DAMAGE))
def test_a_thread_whose_checkpoint_cannot_be_read_is_one_line(backend, damage, request, tmp_path):
    db = request.getfixturevalue("pg_url") if backend == "postgresql" else str(tmp_path / "r.db")
    first = cli("run", "--json", "--db", db, "--thread", "job-1")
    assert first.returncode == 0, first.stderr
    sql = CHECKPOINT_DAMAGE[damage][backend == "postgresql"]
    if db.startswith("postgresql://"):
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(sql)
    else:
        with closing(sqlite3.connect(db)) as conn, conn:
            conn.execute(sql)
    before = checkpoint_rows(db)
    proc = cli("run", "--json", "--db", db, "--thread", "job-1")
    said = " ".join(proc.stderr.split())
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("error:") == 1, proc.stderr
    # (bytes that happen to decode, as another value, read as another task's thread)
    assert "thread 'job-1': its checkpoint cannot be read" in said or (
        "thread 'job-1' already holds a different task" in said
    ), said
    assert "new thread id" in said and proc.stdout == ""
    assert checkpoint_rows(db) == before  # left as it was
    other = cli("run", "--json", "--db", db, "--thread", "job-2")  # the database still works
    assert other.returncode == 0, other.stderr

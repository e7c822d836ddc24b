"""Choosing and opening the database of checkpoints and learned statistics."""

from pathlib import Path

import pytest

from hybridmcp.errors import ConfigError
from hybridmcp.persistence import default_db_path, open_persistence, resolve_db
from hybridmcp.policy.learning import ProviderStats
from hybridmcp.stats_store import all_stats, reset_stats, save_stats


def test_the_database_is_the_option_else_the_environment_else_the_default(monkeypatch):
    monkeypatch.setenv("HYBRIDMCP_DB", "/from/env.db")
    assert resolve_db("/given.db") == "/given.db"
    assert resolve_db(None) == "/from/env.db"
    monkeypatch.delenv("HYBRIDMCP_DB")
    assert resolve_db(None) == str(default_db_path())


def test_the_default_lives_in_the_user_data_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    path = default_db_path()
    assert path.name == "hybridmcp.db" and path.parent.name == "hybridmcp"
    try:
        import platformdirs
    except ImportError:
        assert path == tmp_path / "hybridmcp" / "hybridmcp.db"
    else:
        assert path == Path(platformdirs.user_data_dir("hybridmcp")) / "hybridmcp.db"


def test_cli_runs_of_the_tests_keep_out_of_the_users_data_directory(tmp_path_factory):
    """The CLI tests that drop ``HYBRIDMCP_DB`` (to use the default location) write a
    database of the test session, never the one of whoever runs the tests."""
    assert default_db_path().is_relative_to(tmp_path_factory.getbasetemp())


async def test_sqlite_file_keeps_statistics_between_openings(tmp_path):
    db = tmp_path / "a" / "b" / "stats.db"
    async with open_persistence(str(db)) as (_saver, store):
        await save_stats(store, [ProviderStats("p", "s", calls=3, evidence=3.0)])
    assert db.is_file()
    async with open_persistence(str(db)) as (_saver, store):
        assert [s.calls for s in await all_stats(store)] == [3]
        assert await reset_stats(store) == 1
        assert await all_stats(store) == []


async def test_memory_keeps_nothing_and_postgres_needs_its_extra():
    async with open_persistence(":memory:") as (saver, store):
        assert await all_stats(store) == [] and saver is not None
    try:
        import langgraph.checkpoint.postgres  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"hybridmcp\[postgres\]"):
            async with open_persistence("postgresql://localhost/x"):
                pass


# --------------------------------------------------------------------------------------------
# PostgreSQL: what is decided without a server (the server itself: test_postgres.py).
# --------------------------------------------------------------------------------------------

from urllib.parse import quote  # noqa: E402

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from hybridmcp.persistence import (  # noqa: E402
    SCHEMA_VERSION,
    head_anchor,
    pg_schema_problem,
    pg_where,
    shown_db,
)
from hybridmcp.stats_store import lock_id  # noqa: E402

secret = st.text(min_size=4, max_size=20).filter(lambda s: s.strip() == s and s.strip())


@given(user=secret, password=secret, port=st.integers(1, 65535))
def test_a_postgres_url_is_shown_without_its_user_and_password(user, password, port):
    url = f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@db.example:{port}/runs"
    shown = shown_db(url)
    unparsable = "\x00" in user + password  # libpq refuses the URL: nothing of it is shown
    expected = "postgresql://?" if unparsable else f"postgresql://db.example:{port}/runs"
    assert shown == pg_where(url) == expected
    assert shown_db("/some/file.db") == "/some/file.db"


def test_only_schemas_newer_than_this_version_are_refused():
    from langgraph.checkpoint.postgres.base import BasePostgresSaver
    from langgraph.store.postgres.base import BasePostgresStore

    newest = len(BasePostgresSaver.MIGRATIONS) - 1
    assert pg_schema_problem({}) is None  # a new database
    fine = {
        "hybridmcp_schema": SCHEMA_VERSION,
        "checkpoint_migrations": newest,
        "store_migrations": len(BasePostgresStore.MIGRATIONS) - 1,
    }
    assert pg_schema_problem(fine) is None
    assert pg_schema_problem(fine | {"checkpoint_migrations": 3}) is None  # older: migrated
    for table in fine:
        problem = pg_schema_problem(fine | {table: fine[table] + 1})
        assert problem and "newer version" in problem and str(fine[table] + 1) in problem


@given(st.lists(st.tuples(st.text(max_size=30), st.text(max_size=30)), min_size=2, unique=True))
def test_each_statistics_record_has_its_own_stable_64_bit_lock(pairs):
    ids = [lock_id(p, s) for p, s in pairs]
    assert all(-(2**63) <= i < 2**63 for i in ids)
    assert ids == [lock_id(p, s) for p, s in pairs]  # stable within and across processes
    keys = {f"{p}|{s}" for p, s in pairs}
    if len(keys) == len(pairs):  # distinct records: distinct locks (64-bit, no collisions here)
        assert len(set(ids)) == len(ids)


def test_audit_heads_live_where_the_runs_do(tmp_path):
    from hybridmcp.persistence import PostgresHeads, SqliteHeads

    url = "postgresql://u:pw@db.example:5432/runs"
    assert isinstance(head_anchor(url), PostgresHeads)
    assert head_anchor(url).db == "postgresql://db.example:5432/runs"  # type: ignore[union-attr]
    sqlite = head_anchor(str(tmp_path / "runs.db"))
    assert isinstance(sqlite, SqliteHeads) and sqlite.db.endswith("runs.audit-heads.db")
    assert isinstance(head_anchor(str(tmp_path / "r.db"), url), PostgresHeads)
    assert head_anchor(url, ":memory:") is None and head_anchor(":memory:") is None


def test_audit_heads_in_sqlite_keep_a_connection_per_thread_and_follow_the_file(tmp_path):
    """A thread's connection is kept between saves; a heads file removed or replaced behind
    it is opened again (the head is saved where the path leads now, never into a lost file)."""
    import sqlite3
    import threading

    from hybridmcp.audit import Head
    from hybridmcp.persistence import SqliteHeads

    for durable in (True, False):
        heads = SqliteHeads(tmp_path / f"heads-{durable}.db", durable=durable)
        heads.save("t", Head(1, "a"))
        first = heads._connection()
        heads.save("t", Head(2, "b"))
        assert heads._connection() is first and heads.load("t") == Head(2, "b")
        with sqlite3.connect(heads.db) as other:  # WAL: what another connection sees
            assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert other.execute("SELECT seq FROM hybridmcp_audit_heads").fetchone()[0] == 2

        seen: list[Head | None] = []

        def elsewhere(heads: SqliteHeads = heads, seen: list[Head | None] = seen) -> None:
            heads.save("u", Head(7, "c"))
            seen.append(heads.load("t"))

        worker = threading.Thread(target=elsewhere)
        worker.start()
        worker.join()
        assert seen == [Head(2, "b")] and heads.load("u") == Head(7, "c")

        Path(heads.db).unlink()  # the file removed behind the connection
        for suffix in ("-wal", "-shm"):
            Path(heads.db + suffix).unlink(missing_ok=True)
        assert heads.load("t") is None
        heads.save("t", Head(3, "d"))
        with sqlite3.connect(heads.db) as other:
            assert other.execute("SELECT seq FROM hybridmcp_audit_heads").fetchall() == [(3,)]
        heads.close()
        assert heads.load("t") == Head(3, "d")  # closed: a later use opens again
        heads.close()

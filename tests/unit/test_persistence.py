"""Choosing and opening the database of checkpoints and learned statistics."""

from pathlib import Path

import pytest

from hybridmcp.errors import ConfigError
from hybridmcp.memory import all_stats, reset_stats, save_stats
from hybridmcp.persistence import default_db_path, open_persistence, resolve_db
from hybridmcp.policy.learning import ProviderStats


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

"""Shared fixtures: configurations that start real MCP servers."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import settings

# llama.cpp's OpenMP threads must wait passively on a shared machine (see
# hybridmcp.capabilities.local_model); the choice is read when the runtime loads, which is the
# first import of llama_cpp, and a test module may import it before hybridmcp does.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from hybridmcp.config import HybridConfig, parse_config

# Property tests judge values, never speed: no per-example deadline (2 cores shared by a whole
# suite of subprocess servers make one example's time meaningless). Tests that want a time
# bound measure it themselves.
settings.register_profile("hybridmcp", deadline=None)
settings.load_profile("hybridmcp")


def time_server_config(**overrides: Any) -> HybridConfig:
    """The embedded default's shape: built-in skills cross-validated against mcp-server-time."""
    data: dict[str, Any] = {
        "mcpServers": {"time": {"command": "mcp-server-time", "args": ["--local-timezone", "UTC"]}},
        "skills": {
            "time.now": {
                "providers": [{"side": "external", "server": "time", "tool": "get_current_time"}]
            },
            "time.convert": {
                "providers": [{"side": "external", "server": "time", "tool": "convert_time"}]
            },
        },
    }
    data.update(overrides)
    return parse_config(data)


@pytest.fixture
def time_config() -> HybridConfig:
    return time_server_config()


@pytest.fixture(autouse=True)
def _private_database(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """CLI runs started by a test keep their checkpoints and statistics in a database of the
    test session, never in the user's data directory: so do those that drop ``HYBRIDMCP_DB``
    to use the default location (``XDG_DATA_HOME`` is the session's, as the servers' log)."""
    if "HYBRIDMCP_DB" not in os.environ:
        db = tmp_path_factory.getbasetemp() / "hybridmcp.db"
        monkeypatch.setenv("HYBRIDMCP_DB", str(db))
    if "XDG_DATA_HOME" not in os.environ:
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.getbasetemp() / "data-home"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI (``HYBRIDMCP_NO_SKIPS=1``, set by ``.ci/run``) a skipped test fails the run: CI
    installs everything every test needs, so a skip means a feature went untested."""
    if os.environ.get("HYBRIDMCP_NO_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if skipped and session.exitstatus == 0:
        reporter.write_line(f"{skipped} test(s) skipped: CI runs every test", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --------------------------------------------------------------------------------------------
# A real PostgreSQL: one throwaway cluster per test session, a fresh database per test.
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_cluster():
    """A PostgreSQL cluster under a temp dir (``initdb`` + ``pg_ctl``), stopped at the end."""
    from hybridmcp.testing.pgcluster import ClusterError, TempCluster

    try:
        cluster = TempCluster().start()
    except ClusterError as err:  # CI installs PostgreSQL: a skip there fails the run
        pytest.skip(f"no PostgreSQL to test against: {err}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster, request) -> str:
    """The URL of an empty database of its own on the session's cluster."""
    import re
    import uuid

    name = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:6]
    return pg_cluster.create_database(name)

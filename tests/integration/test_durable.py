"""The command line's database: learned statistics and checkpoints in a real SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")
PRIORS = {"internal": 1.0, "external": 25.0}  # the providers' configured expected latencies


def cli_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("HYBRIDMCP_DB", None)
    return env | extra


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120):
    return subprocess.run(
        [sys.executable, "-m", "hybridmcp.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or cli_env(),
    )


def run_json(*args: str, env: dict[str, str] | None = None) -> dict:
    proc = cli("run", "--json", *args, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.integration
def test_statistics_survive_across_cli_runs(tmp_path):
    db = tmp_path / "nested" / "hybridmcp.db"
    first = run_json("--db", str(db))
    assert db.is_file()
    for r in first["results"]:
        for a in r["attempts"]:  # nothing learned yet: every prediction is the prior
            assert a["predicted"]["latency_ms"] == PRIORS[a["side"]]
    # the second run finds the database through the environment variable
    second = run_json(env=cli_env(HYBRIDMCP_DB=str(db)))
    learned = [a for r in second["results"] for a in r["attempts"]]
    assert learned and all(a["predicted"]["latency_ms"] != PRIORS[a["side"]] for a in learned)
    assert second["metrics"]["prediction"]["attempts"] == len(learned)
    assert second["thread"] == {"id": None, "found": "new"}


@pytest.mark.integration
def test_an_unusable_database_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = cli("run", "--json", "--db", str(blocker / "x.db"))
    assert proc.returncode == 2
    said = " ".join(proc.stderr.split())  # the console wraps long lines
    assert "file/x.db' cannot be used" in said and "--db" in said

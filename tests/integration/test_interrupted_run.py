"""Ctrl-C (SIGINT) in the middle of a real run on the fault server: one line says what was
kept and how to resume, no traceback, nothing half-written; the same command resumes the
thread, completed calls not made again, and an unnamed run keeps nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_durable import (
    FAST,
    SLOW,
    checkpointed_attempts,
    cli,
    cli_env,
    fault_server_setup,
    recorded,
    wait_for,
)


def _interrupted(args: list[str], record: Path, db: Path, thread: str | None) -> str:
    """Start the run, wait until its fast calls are checkpointed while the slow one runs, send
    SIGINT; its stderr."""
    named = ["--thread", thread] if thread else []
    first = subprocess.Popen(
        [sys.executable, "-m", "hybridmcp.cli", *args, *named],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    try:
        if thread:
            wait_for(lambda: set(FAST) <= checkpointed_attempts(db, thread), 60, "fast calls")
        else:
            wait_for(lambda: SLOW[1] in [c["tool"] for c in recorded(record)], 60, "slow call")
        first.send_signal(signal.SIGINT)
        _out, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    return err


@pytest.mark.integration
def test_ctrl_c_says_how_to_resume_and_the_same_command_resumes(tmp_path: Path) -> None:
    faults, record, config, task = fault_server_setup(tmp_path)
    db = tmp_path / "runs.db"
    faults.write_text(json.dumps({SLOW[1]: {"latency_ms": 600_000}}))
    args = ["run", str(task), "--config", str(config), "--db", str(db), "--json"]
    err = _interrupted(args, record, db, "job-1")
    (line,) = [x for x in err.splitlines() if "interrupted" in x]
    assert "job-1" in line and "resume" in line

    faults.write_text("{}")
    resumed = cli(*args, "--thread", "job-1")
    assert resumed.returncode == 0, resumed.stderr
    out = json.loads(resumed.stdout)
    assert out["thread"] == {"id": "job-1", "found": "unfinished"}
    assert {r["status"] for r in out["results"]} == {"ok"}
    calls = [(c["tool"], c["arguments"]) for c in recorded(record)]
    for tool, arguments in FAST.values():  # completed calls were not made again
        assert calls.count((tool, arguments)) == 1, calls


@pytest.mark.integration
def test_ctrl_c_of_an_unnamed_run_says_nothing_is_kept(tmp_path: Path) -> None:
    faults, record, config, task = fault_server_setup(tmp_path)
    db = tmp_path / "runs.db"
    faults.write_text(json.dumps({SLOW[1]: {"latency_ms": 600_000}}))
    args = ["run", str(task), "--config", str(config), "--db", str(db), "--json"]
    err = _interrupted(args, record, db, None)
    (line,) = [x for x in err.splitlines() if "interrupted" in x]
    assert "--thread" in line

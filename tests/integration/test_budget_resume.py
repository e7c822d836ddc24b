"""A run's budget survives the process: a run killed with SIGKILL mid-way and resumed by
another process (the command line on the same thread, SQLite checkpoints) starts from what its
checkpointed attempts cost, not from a fresh budget; each call counted at the fault servers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_durable import (
    FAST,
    SRC,
    checkpointed_attempts,
    cli,
    cli_env,
    kill_mid_call,
    recorded,
    wait_for,
)

pytestmark = pytest.mark.integration


def _server(faults: Path, record: Path) -> dict:
    args = ["-m", "hybridmcp.testing.faultserver", "--faults", str(faults), "--record", str(record)]
    return {
        "command": sys.executable,
        "args": args,
        "env": {"PYTHONPATH": SRC},
        "timeout_ms": 300_000,
        "cost_per_call": 1,
    }


def test_a_run_resumed_in_another_process_does_not_get_its_budget_afresh(tmp_path: Path) -> None:
    """Four requests at 1 each under a budget of 4. The first process answers three and is
    killed while the fourth (``x``) is in flight. The resumed process makes ``x`` again, which
    now fails: the run has spent its 4, so the reallocation of ``x`` to its second provider is
    refused by the gate (a fresh budget would have paid for it)."""
    faults, spare_faults = tmp_path / "faults.json", tmp_path / "spare.json"
    record, spare_record = tmp_path / "calls.jsonl", tmp_path / "spare.jsonl"
    spare_faults.write_text("{}")
    config, task = tmp_path / "config.json", tmp_path / "task.json"
    config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "faults": _server(faults, record),
                    "spare": _server(spare_faults, spare_record),
                },
                "builtin_skills": False,
                "skills": {
                    "note.echo": {
                        "input_schema": {"type": "object"},
                        "providers": [
                            {"side": "external", "server": "faults", "tool": "echo",
                             "name": "first", "quality": 1.0},
                            {"side": "external", "server": "spare", "tool": "echo",
                             "name": "second", "quality": 0.5},
                        ],
                    }
                },
            }
        )
    )  # fmt: skip
    requests = [
        {"id": rid, "skill": f"faults.{tool}", "args": args} for rid, (tool, args) in FAST.items()
    ]
    requests.append({"id": "x", "skill": "note.echo", "args": {"text": "slow one"}})
    task.write_text(json.dumps({"requests": requests, "constraints": {"budget": 4}}))
    db = tmp_path / "runs.db"
    args = ["run", str(task), "--config", str(config), "--db", str(db), "--json"]

    faults.write_text(json.dumps({"echo": {"latency_ms": 600_000}}))  # x hangs
    first = subprocess.Popen(
        [sys.executable, "-m", "hybridmcp.cli", *args, "--thread", "job-1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )
    try:
        wait_for(lambda: set(FAST) <= checkpointed_attempts(db, "job-1"), 60, "fast calls")
        wait_for(lambda: "echo" in [c["tool"] for c in recorded(record)], 60, "x's call")
        kill_mid_call(first)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()

    faults.write_text(json.dumps({"echo": {"fail_first": 1000}}))  # x now fails on "first"
    resumed = cli(*args, "--thread", "job-1")
    assert resumed.returncode == 3, resumed.stderr  # partial: x failed
    out = json.loads(resumed.stdout)
    x = next(r for r in out["results"] if r["id"] == "x")
    assert "budget exhausted" in str(x["error"]), x
    assert recorded(spare_record) == []  # the second provider was never paid
    assert out["cost"]["spent"] <= 4
    assert out["cost"]["by_provider"]["mcp:second"]["calls"] == 0  # refused: never sent
    assert [c["tool"] for c in recorded(record)].count("echo") == 2  # in flight, then again

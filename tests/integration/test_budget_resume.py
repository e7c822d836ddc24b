"""A run's budget survives the process: a run killed with SIGKILL mid-way and resumed by
another process (the command line on the same thread, SQLite checkpoints) starts from what its
checkpointed attempts cost, not from a fresh budget, and with the sends the killed process
made whose answers it lost (``hybridmcp.sends``); each call counted at the fault servers."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.base import Op, PutOp, Result
from langgraph.store.memory import InMemoryStore

from hybridmcp import Coordinator, parse_task
from hybridmcp.config import parse_config
from hybridmcp.errors import SendNotRecorded
from hybridmcp.sends import SENDING
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


def _configure(tmp_path: Path, budget: float) -> tuple[list[str], Path, Path, Path]:
    """Three fast requests at 1 each on ``faults``, and ``x`` (``note.echo``) at 1 on ``first``
    (the same server), or at 1 on ``second`` (another). Returns the CLI's arguments, the
    fault file of ``faults``, and each server's record of the calls it received."""
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
    task.write_text(json.dumps({"requests": requests, "constraints": {"budget": budget}}))
    args = ["run", str(task), "--config", str(config), "--db", str(tmp_path / "runs.db"), "--json"]
    return args, faults, record, spare_record


def _killed_while_x_is_in_flight(args: list[str], faults: Path, record: Path, db: Path) -> None:
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


def _sends_recorded(db: Path) -> list[str]:
    """The requests whose priced sends the store still holds records of (deleted once their
    attempts are checkpointed, a batch's together when its calls are done)."""
    with sqlite3.connect(db) as conn:
        query = "SELECT value FROM store WHERE prefix LIKE 'hybridmcp.sending.%'"
        return sorted(json.loads(row[0])["request_id"] for row in conn.execute(query))


def test_a_run_resumed_in_another_process_does_not_get_its_budget_afresh(tmp_path: Path) -> None:
    """Four requests at 1 each under a budget of 4. The first process answers three and is
    killed while the fourth (``x``) is in flight: the run has spent its 4, the last on a send
    whose answer was lost. The resumed process counts that send before anything goes out, so
    it can pay neither ``x`` again nor its second provider (a budget rebuilt from the
    checkpointed attempts alone would have paid for one of them, and passed the budget)."""
    args, faults, record, spare_record = _configure(tmp_path, budget=4)
    db = tmp_path / "runs.db"
    _killed_while_x_is_in_flight(args, faults, record, db)
    assert _sends_recorded(db) == sorted([*FAST, "x"])  # x's never answered

    faults.write_text("{}")  # x would answer now
    resumed = cli(*args, "--thread", "job-1")
    assert resumed.returncode == 3, resumed.stderr  # partial: x failed
    out = json.loads(resumed.stdout)
    x = next(r for r in out["results"] if r["id"] == "x")
    assert "budget exhausted" in str(x["error"]), x
    assert recorded(spare_record) == []  # the second provider was never paid
    assert [c["tool"] for c in recorded(record)].count("echo") == 1  # not sent again
    assert out["cost"]["spent"] == 4
    assert out["cost"]["budget_remaining"] == 0
    assert out["cost"]["by_provider"]["mcp:first"] == {"side": "external", "calls": 1, "cost": 1}
    assert out["cost"]["by_provider"]["mcp:second"]["calls"] == 0  # refused: never sent
    assert _sends_recorded(db) == []


def test_a_send_the_killed_process_made_is_paid_beside_the_one_that_answered(
    tmp_path: Path,
) -> None:
    """Under a budget that pays for it, ``x`` in flight at the kill is made again on resume,
    and answers: the run paid for both sends, and its cost says so."""
    args, faults, record, _spare = _configure(tmp_path, budget=100)
    db = tmp_path / "runs.db"
    _killed_while_x_is_in_flight(args, faults, record, db)

    faults.write_text("{}")
    resumed = cli(*args, "--thread", "job-1")
    assert resumed.returncode == 0, resumed.stderr
    out = json.loads(resumed.stdout)
    assert [c["tool"] for c in recorded(record)].count("echo") == 2  # in flight, then again
    assert out["cost"]["spent"] == 5  # three fast calls, and x's two sends
    assert out["cost"]["budget_remaining"] == 95
    assert out["cost"]["by_provider"]["mcp:first"] == {"side": "external", "calls": 2, "cost": 2}
    assert _sends_recorded(db) == []
    again = cli(*args, "--thread", "job-1")  # finished: the stored result, nothing paid
    assert json.loads(again.stdout)["cost"] == out["cost"]


class _FullStore(InMemoryStore):
    """A store that cannot take a priced send's record (as a full disk would refuse it)."""

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        if any(isinstance(op, PutOp) and op.namespace[:2] == SENDING for op in ops):
            raise OSError(28, "No space left on device")
        return await super().abatch(ops)


async def test_a_priced_call_whose_send_cannot_be_recorded_is_not_sent(tmp_path: Path) -> None:
    """On a durable run with a budget, a priced read goes out only once a resumed run could
    count it: a store that cannot record the send stops the run, the server receiving
    nothing."""
    faults, record = tmp_path / "faults.json", tmp_path / "calls.jsonl"
    faults.write_text("{}")
    config = parse_config({"mcpServers": {"faults": _server(faults, record)}})
    task = parse_task(
        {
            "requests": [{"id": "a", "skill": "faults.echo", "args": {"text": "hi"}}],
            "constraints": {"budget": 10},
        }
    )
    async with Coordinator.open(
        config, checkpointer=InMemorySaver(), store=_FullStore()
    ) as coordinator:
        with pytest.raises(SendNotRecorded, match="No space left on device"):
            await coordinator.run(task, thread_id="t-1")
    assert recorded(record) == []


ROOT = Path(__file__).resolve().parents[2]


def _internal(tmp_path: Path, budget: float) -> tuple[list[str], dict[str, str], Path, Path]:
    """One request ``x`` served by an internal provider at 1 a call (``held_lookup``, a read
    that journals each call it starts and waits while the hold file exists). Returns the
    CLI's arguments and environment, the journal, and the hold file."""
    config, task = tmp_path / "config.json", tmp_path / "task.json"
    journal, hold = tmp_path / "calls.txt", tmp_path / "hold"
    provider = {
        "side": "internal", "function": "tests.helpers:held_lookup", "cost_per_call": 1,
        "effect": "read", "timeout_ms": 600_000,
    }  # fmt: skip
    skill = {"input_schema": {"type": "object"}, "providers": [provider]}
    config.write_text(json.dumps({"builtin_skills": False, "skills": {"note.lookup": skill}}))
    request = {"id": "x", "skill": "note.lookup", "args": {"text": "x"}}
    task.write_text(json.dumps({"requests": [request], "constraints": {"budget": budget}}))
    args = ["run", str(task), "--config", str(config), "--db", str(tmp_path / "runs.db"), "--json"]
    env = cli_env(
        PYTHONPATH=f"{SRC}{os.pathsep}{ROOT}",
        HYBRIDMCP_TEST_JOURNAL=str(journal),
        HYBRIDMCP_TEST_HOLD=str(hold),
    )
    return args, env, journal, hold


def _calls(journal: Path) -> int:
    return len(journal.read_text().splitlines()) if journal.exists() else 0


def _killed_while_internal_x_runs(args: list[str], env: dict[str, str], journal: Path) -> None:
    first = subprocess.Popen(
        [sys.executable, "-m", "hybridmcp.cli", *args, "--thread", "job-1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        wait_for(lambda: _calls(journal) == 1 or first.poll() is not None, 60, "x's call")
        first.kill()
    finally:
        _, err = first.communicate(timeout=10)
    assert first.returncode == -9, err  # killed while x ran, not ended


@pytest.mark.parametrize("budget", [1, 100])
def test_a_priced_internal_call_in_flight_at_a_kill_is_paid_on_resume(
    tmp_path: Path, budget: float
) -> None:
    """An internal provider's price counts against the budget as an external one's does, so
    its call in flight when the process is killed is counted by the resumed run as a send it
    lost: under a budget of 1, spent on it, the resumed run cannot pay for it again (a budget
    rebuilt from the checkpointed attempts alone would have, and run it twice); under one that
    pays for both, it runs again and both calls are in its cost."""
    args, env, journal, hold = _internal(tmp_path, budget)
    hold.touch()
    _killed_while_internal_x_runs(args, env, journal)
    assert _sends_recorded(tmp_path / "runs.db") == ["x"]
    hold.unlink()
    resumed = cli(*args, "--thread", "job-1", env=env, cwd=ROOT)
    out = json.loads(resumed.stdout or "{}")
    x = next((r for r in out.get("results", ()) if r["id"] == "x"), {})
    if budget == 1:
        assert resumed.returncode == 1, resumed.stderr  # its one request failed
        assert "budget exhausted" in str(x.get("error")), x
        assert _calls(journal) == 1  # not run again
        assert out["cost"]["spent"] == 1
    else:
        assert resumed.returncode == 0, resumed.stderr
        assert _calls(journal) == 2 and x["status"] == "ok", x
        assert out["cost"]["spent"] == 2
        assert out["cost"]["by_provider"]["internal:note.lookup"]["cost"] == 2, out["cost"]
    assert _sends_recorded(tmp_path / "runs.db") == []

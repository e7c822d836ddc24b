"""The command line's database: learned statistics and checkpoints in a real SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hybridmcp.testing.harness import child_processes

SRC = str(Path(__file__).resolve().parents[2] / "src")
PRIORS = {"internal": 1.0, "external": 25.0}  # the providers' configured expected latencies


def cli_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("HYBRIDMCP_DB", None)
    env.pop("HYBRIDMCP_CONFIG", None)
    return env | extra


def cli(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess, on this checkout's source."""
    return subprocess.run(
        [sys.executable, "-m", "hybridmcp.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or cli_env(),
        cwd=cwd,
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

    # `hybridmcp stats` shows what was learned; --reset forgets it
    shown = cli("stats", "--db", str(db), "--json")
    assert shown.returncode == 0, shown.stderr
    records = {(r["provider"], r["skill"]): r for r in json.loads(shown.stdout)}
    external = records[("mcp:time/get_current_time", "time.now")]
    calls_made = sum(
        1 for d in (first, second) for r in d["results"] for a in r["attempts"]
        if a["provider"] == "mcp:time/get_current_time"
    )  # fmt: skip
    assert external["calls"] == calls_made and external["agreement_rate"] == 1.0
    assert external["ewma_latency_ms"] > 0 and external["p95_latency_ms"] >= 0
    table = cli("stats", "--db", str(db))
    assert table.returncode == 0 and "mcp:time/get_current_time" in table.stdout
    reset = cli("stats", "--db", str(db), "--reset", "--json")
    assert reset.returncode == 0 and json.loads(reset.stdout) == []
    assert f"{len(records)} statistics deleted" in reset.stderr
    assert "nothing learned yet" in cli("stats", "--db", str(db)).stdout


@pytest.mark.integration
def test_stats_of_a_database_not_made_yet_reads_nothing_and_makes_nothing(tmp_path):
    """`stats` only reads: a database that does not exist has nothing learned, and is not
    created (nor its folder, nor its lock file) by looking."""
    db = tmp_path / "not" / "yet.db"
    for args in (["--db", str(db)], ["--db", str(db), "--json"], ["--db", str(db), "--reset"]):
        proc = cli("stats", *args)
        assert proc.returncode == 0, proc.stderr
    assert "nothing learned yet" in cli("stats", "--db", str(db)).stdout
    assert json.loads(cli("stats", "--db", str(db), "--json").stdout) == []
    assert not (tmp_path / "not").exists()


@pytest.mark.integration
def test_an_unusable_database_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = cli("run", "--json", "--db", str(blocker / "x.db"))
    assert proc.returncode == 2
    said = " ".join(proc.stderr.split())  # the console wraps long lines
    assert "file/x.db' cannot be used" in said and "--db" in said


# --------------------------------------------------------------------------------------------
# A durable run killed with SIGKILL mid-way, resumed on its thread.
# --------------------------------------------------------------------------------------------

FAST = {
    "a": ("calculate", {"expression": "1+1"}),
    "b": ("calculate", {"expression": "2*3"}),
    "c": ("word_count", {"text": "Two words."}),
}
SLOW = ("slow", "echo", {"text": "slow one"})


def fault_server_setup(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """A task on the fault server over stdio, which records every call it receives."""
    faults, record = tmp_path / "faults.json", tmp_path / "calls.jsonl"
    config, task = tmp_path / "config.json", tmp_path / "task.json"
    server = [
        *("-m", "hybridmcp.testing.faultserver"),
        *("--faults", str(faults), "--record", str(record)),
    ]
    config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "faults": {
                        "command": sys.executable,
                        "args": server,
                        "env": {"PYTHONPATH": SRC},
                        "timeout_ms": 300_000,
                    }
                }
            }
        )
    )
    requests = [
        {"id": rid, "skill": f"faults.{tool}", "args": args} for rid, (tool, args) in FAST.items()
    ]
    requests.append({"id": SLOW[0], "skill": f"faults.{SLOW[1]}", "args": SLOW[2]})
    task.write_text(json.dumps({"requests": requests}))
    return faults, record, config, task


def recorded(record: Path) -> list[dict]:
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines() if line.strip()]


def checkpointed_attempts(db: Path, thread: str) -> set[str]:
    """Request ids whose attempts the checkpointer has saved for the thread's current step."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    if not db.exists():
        return set()
    with SqliteSaver.from_conn_string(str(db)) as saver:
        saved = saver.get_tuple({"configurable": {"thread_id": thread}})
    if saved is None:
        return set()
    return {
        a["request_id"]
        for _task, channel, value in saved.pending_writes or []
        if channel == "attempts"
        for a in value
    }


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its new parent to reap it has exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def kill_mid_call(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the CLI (no cleanup of any kind) and wait for its stdio server to exit: it sees
    its pipes close, even mid-call, so no orphan is left."""
    servers = child_processes(process.pid)
    assert servers, "the fault server runs as the CLI's child"
    process.kill()
    process.wait(timeout=10)
    wait_for(lambda: not any(alive(p) for p in servers), 20, "the server to exit")


def killed_mid_call(
    args: list[str],
    record: Path,
    checkpointed: Callable[[], set[str]],
    *,
    timeout_s: float,
) -> None:
    """Start the CLI run ``args`` on thread ``job-1``, wait until its fast calls have answered
    and are checkpointed while the slow one runs, and SIGKILL it mid-call."""
    first = subprocess.Popen(
        [sys.executable, "-m", "hybridmcp.cli", *args, "--thread", "job-1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )
    try:
        wait_for(lambda: set(FAST) <= checkpointed(), timeout_s, "fast calls")
        assert [c["tool"] for c in recorded(record)].count(SLOW[1]) == 1
        assert SLOW[0] not in checkpointed()
        kill_mid_call(first)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()


@pytest.mark.integration
def test_a_run_killed_mid_way_resumes_without_repeating_completed_calls(tmp_path):
    faults, record, config, task = fault_server_setup(tmp_path)
    db = tmp_path / "runs.db"
    faults.write_text(json.dumps({SLOW[1]: {"latency_ms": 600_000}}))  # hangs for ten minutes
    args = ["run", str(task), "--config", str(config), "--db", str(db), "--json"]
    killed_mid_call(args, record, lambda: checkpointed_attempts(db, "job-1"), timeout_s=60)

    faults.write_text("{}")  # the slow service has recovered
    resumed = cli(*args, "--thread", "job-1")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed where it stopped" in " ".join(resumed.stderr.split())
    out = json.loads(resumed.stdout)

    calls = [(c["tool"], c["arguments"]) for c in recorded(record)]
    for tool, arguments in FAST.values():  # each completed call was made exactly once
        assert calls.count((tool, arguments)) == 1, calls
    assert calls.count((SLOW[1], SLOW[2])) == 2  # the one in flight was made again
    assert len(calls) == len(FAST) + 2

    # the same result as a run that was never interrupted
    reference = run_json(*args[1:], "--thread", "job-2")
    assert out["status"] == reference["status"] == "ok"

    def outcome(data: dict) -> list:
        return [(r["id"], r["value"], r["allocation"], r["error"]) for r in data["results"]]

    assert outcome(out) == outcome(reference)
    assert {r["id"]: r["value"] for r in out["results"]} == {
        "a": {"value": 2},
        "b": {"value": 6},
        "c": {"words": 2, "characters": 10, "sentences": 1},
        "slow": {"text": "slow one"},
    }
    assert out["thread"] == {"id": "job-1", "found": "unfinished"}

    # a finished thread returns its stored result and calls nothing
    before = len(recorded(record))
    again = cli(*args, "--thread", "job-1")
    assert again.returncode == 0, again.stderr
    assert "stored result" in " ".join(again.stderr.split())
    assert len(recorded(record)) == before
    replay = json.loads(again.stdout)
    assert replay["results"] == out["results"] and replay["thread"]["found"] == "finished"


@pytest.mark.integration
def test_a_thread_holds_one_task(tmp_path):
    _faults, _record, config, task = fault_server_setup(tmp_path)
    db = tmp_path / "runs.db"
    other = tmp_path / "other.json"
    request = {"id": "x", "skill": "math.calculate", "args": {"expression": "1+2"}}
    other.write_text(json.dumps({"requests": [request]}))
    assert cli("run", str(other), "--db", str(db), "--thread", "t", "--json").returncode == 0
    proc = cli("run", str(task), "--config", str(config), "--db", str(db), "--thread", "t")
    assert proc.returncode == 2
    assert "thread 't' already holds a different task" in " ".join(proc.stderr.split())


def test_a_thread_id_of_bytes_that_are_not_utf8_is_refused_saying_so(tmp_path):
    task = tmp_path / "task.json"
    request = {"id": "x", "skill": "math.calculate", "args": {"expression": "1+2"}}
    task.write_text(json.dumps({"requests": [request]}))
    db = tmp_path / "runs.db"
    proc = cli("run", str(task), "--db", str(db), "--thread", os.fsdecode(b"job\xff"))
    assert proc.returncode == 2, proc.stderr
    said = " ".join(proc.stderr.split())
    assert "is not text a database can hold" in said and "not UTF-8" in said, said
    assert "written by another application" not in said


def test_a_thread_on_a_database_in_memory_is_said_to_be_kept_nowhere(tmp_path):
    task = tmp_path / "task.json"
    request = {"id": "x", "skill": "math.calculate", "args": {"expression": "1+2"}}
    task.write_text(json.dumps({"requests": [request]}))
    proc = cli("run", str(task), "--db", ":memory:", "--thread", "t[/b]", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "ok"  # the run itself is as ever
    said = " ".join(proc.stderr.split())
    assert "note: --db :memory: keeps nothing after this command: thread 't[/b]' cannot be" in said
    named = cli("run", str(task), "--db", str(tmp_path / "runs.db"), "--thread", "t", "--json")
    assert named.returncode == 0 and ":memory:" not in named.stderr

"""The audit trail against what really reached the servers: real MCP servers in subprocesses
(the fault server, recording every call it receives; the hostile server), the CLI and the
Python API. Every call a server received has a record written before it was sent (its gate
decision) and, once it ended, its ``external_call`` record, one for one; a run killed mid-call
or resumed leaves a trail that verifies with no call unrecorded; a trail that cannot be
written stops the run in one line before anything more is sent; hostile text from a server
stays one line that verifies."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hybridmcp import Coordinator, parse_config, parse_task
from hybridmcp.audit import iter_records
from hybridmcp.testing.harness import faultserver_stdio
from hybridmcp.testing.hostile_server import ODD_ERROR
from tests.integration.test_durable import cli_env, recorded, wait_for

pytestmark = pytest.mark.integration

HOSTILE = [sys.executable, "-m", "hybridmcp.testing.hostile_server"]
EXT = {"side": "external", "server": "f"}


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hybridmcp.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(),
        check=False,
    )


def records(trail: Path, kind: str | None = None) -> list[dict[str, Any]]:
    return [r for r in iter_records(trail) if kind is None or r["kind"] == kind]


def sends(trail: Path) -> collections.Counter[str]:
    """Per request: the gate decisions that let a call go (each written before its call was
    queued to be sent), less the calls the budget or breaker then refused."""
    counts: collections.Counter[str] = collections.Counter()
    for r in records(trail, "policy_decision"):
        if r.get("stage") != "gate":
            continue
        if r.get("policy") in ("budget", "breaker"):
            counts[r["request_id"]] -= 1
        elif r["action"] in ("allow", "redact"):
            counts[r["request_id"]] += 1
    return counts


def ended(trail: Path) -> collections.Counter[str]:
    """Per request: the ``external_call`` records of calls that were sent."""
    return collections.Counter(
        r["request_id"]
        for r in records(trail, "external_call")
        if not r["outcome"].startswith(("not sent", "request error", "closed"))
        and (r["cost"] > 0 or r["latency_ms"] > 0)
    )


def received(record: Path, by: str) -> collections.Counter[str]:
    """Per request (the argument ``by`` names it): the calls the server received."""
    return collections.Counter(
        str(c["arguments"][by]) for c in recorded(record) if c["tool"] != "fault_control"
    )


def verified(trail: Path, db: Path) -> str:
    done = cli("audit", "verify", str(trail), "--db", str(db))
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


# -- hostile text ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["odd_error", "odd_tool_error"])
async def test_a_servers_hostile_error_text_is_recorded_on_one_line_that_verifies(
    mode, tmp_path
) -> None:
    """A server's error of 250,000 characters holding line breaks of every kind, NUL and
    terminal escapes: the call's record is one line to every reader, and the trail verifies;
    the record keeps the message's first 2,000 characters (it kept it whole, after scanning
    it all on the event loop: seconds for a message of a megabyte, and a server may send 16)."""
    from hybridmcp.policy import privacy

    privacy.scan({"to": "someone@example.com"})  # the detection engines built, as in a run
    trail, db = tmp_path / "audit.jsonl", tmp_path / "runs.db"
    server = {
        "command": HOSTILE[0],
        "args": [*HOSTILE[1:], mode],
        "env": {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(sys.path)},
        "timeout_ms": 5000,
    }
    config = parse_config(
        {
            "mcpServers": {"h": server},
            "skills": {"t.echo": {"providers": [{**EXT, "server": "h", "tool": "echo"}]}},
            "audit": {"path": str(trail), "run_db": str(db)},
        }
    )
    task = parse_task([{"id": "odd", "skill": "t.echo", "args": {"text": "hostile"}}])
    async with asyncio.timeout(60), Coordinator.open(config) as co:
        out = await co.run(task)
    (result,) = out["results"].values()
    assert result["status"] == "error"
    assert "UnicodeEncodeError" not in result["error"], result["error"][:300]
    (call,) = records(trail, "external_call")
    assert call["outcome"].startswith("error:") and "bad" in call["outcome"]
    raw = trail.read_bytes()
    text = raw.decode("utf-8")
    assert len(text.splitlines()) == text.count("\n") == len(records(trail))
    assert "\x1b" not in text and "\x00" not in text
    assert len(ODD_ERROR) > 200_000
    assert len(call["outcome"]) < 2200  # (a tool error's text is cut at 500 already)
    assert mode == "odd_tool_error" or call["outcome"].endswith(" characters in all)")
    verified(trail, db)


# -- a trail that cannot be written -----------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A file system of 2 MiB of its own (tmpfs), to fill up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with filler.open("wb") as out:
        out.write(b"\0" * shutil.disk_usage(disk).free)
    return filler


def _echo_setup(tmp_path: Path, trail: Path, faults: dict[str, Any], n: int) -> tuple[Path, Path]:
    record = tmp_path / "calls.jsonl"
    config, task = tmp_path / "config.json", tmp_path / "task.json"
    server = faultserver_stdio(faults, record=record, max_concurrency=1, timeout_ms=60_000)
    config.write_text(
        json.dumps(
            {
                "mcpServers": {"f": server},
                "skills": {"t.echo": {"providers": [{**EXT, "tool": "echo"}]}},
                "audit": {"path": str(trail)},
            }
        )
    )
    requests = [{"id": f"e{i}", "skill": "t.echo", "args": {"text": f"e{i}"}} for i in range(n)]
    task.write_text(json.dumps({"requests": requests}))
    return config, task


def test_a_trail_whose_disk_fills_mid_run_stops_the_run_in_one_line_nothing_unrecorded(
    small_disk, tmp_path
) -> None:
    """The trail's disk fills while calls are in flight and queued: the run stops at the first
    record it cannot write (exit 2, one line saying why and how to resume; it used to go on,
    each call's answer replaced by the audit error, blamed on the server as a degradation),
    sends nothing more, and every call the server received has the record written before it
    was sent. Once there is room, the same command resumes the run, and the trail verifies."""
    trail, db = small_disk / "audit.jsonl", tmp_path / "runs.db"
    config, task = _echo_setup(tmp_path, trail, {"echo": {"latency_ms": 400}}, 6)
    args = ["run", str(task), "-c", str(config), "--db", str(db), "--thread", "t1", "--json"]
    run = subprocess.Popen(
        [sys.executable, "-m", "hybridmcp.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    try:
        wait_for(lambda: len(recorded(tmp_path / "calls.jsonl")) >= 1, 60, "the first call")
        filler = fill(small_disk)
        _out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 2, err[-2000:]
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert "the disk holding it is full" in line and "the run stopped" in line, line
    assert "thread 't1'" in line, line
    got = received(tmp_path / "calls.jsonl", "text")
    assert sum(got.values()) < 6  # it stopped: not every call went
    sent = sends(trail)
    for rid, n in got.items():
        assert sent[rid] >= n, (rid, got, sent)  # recorded before it was sent
    filler.unlink()
    verified(trail, db)
    again = cli(*args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert {r["status"] for r in json.loads(again.stdout)["results"]} == {"ok"}
    verified(trail, db)
    got = received(tmp_path / "calls.jsonl", "text")
    sent, done = sends(trail), ended(trail)
    assert set(got) == {f"e{i}" for i in range(6)}
    for rid, n in got.items():
        assert sent[rid] >= n >= done[rid] >= 1, (rid, got, sent, done)

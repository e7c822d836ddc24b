"""An agent's graph killed inside its ``HybridToolNode`` and resumed from its checkpoint makes
no write twice: ``tests/toolnode_agent.py`` (a ``StateGraph`` checkpointed in SQLite, async
and sync, and with LangGraph's plain ``ToolNode`` of ``SkillTool`` tools) SIGKILLed while a write
it asked sleeps on the server after writing, then resumed.
The writes are counted in the journal ``tests/annotation_server.py`` appends to."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hybridmcp.testing.harness import child_processes
from tests.integration.test_durable import alive, cli_env, wait_for
from tests.toolnode_agent import ROOT

pytestmark = pytest.mark.integration


def agent(phase: str, where: Path, mode: str, **popen: Any) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "tests.toolnode_agent", phase, str(where), "--mode", mode]
    env = cli_env(PYTHONPATH=f"{ROOT / 'src'}:{ROOT}")
    return subprocess.Popen(command, cwd=ROOT, env=env, text=True, **popen)


def journal(where: Path) -> list[str]:
    path = where / "journal.txt"
    return path.read_text().splitlines() if path.exists() else []


def messages(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def killed_inside_the_node(where: Path, mode: str, extra_s: float) -> None:
    """The agent's first turn run and SIGKILLed ``extra_s`` after both its writes were made
    (``slow`` still sleeping on the server after writing)."""
    run = agent("run", where, mode, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:

        def written() -> bool:
            return len(journal(where)) == 2 or run.poll() is not None

        wait_for(written, 60, "both writes")
        time.sleep(extra_s)
        servers = child_processes(run.pid)
        run.kill()
        run.wait(timeout=10)
        wait_for(lambda: not any(alive(p) for p in servers), 20, "the server to exit")
    finally:
        if run.poll() is None:
            run.kill()
        _, err = run.communicate()
    assert run.returncode == -9, err  # killed inside the node, not ended


@pytest.mark.parametrize("mode", ["async", "sync", "plain"])
@pytest.mark.parametrize("extra_s", [0.0, 0.4])
def test_an_agent_killed_inside_its_tool_node_resumes_without_writing_again(
    tmp_path, mode, extra_s
):
    """Killed once ``slow`` and ``fast`` (asked beside it) are written, ``extra_s`` later: the
    resumed graph writes neither again (``slow`` is reported with its outcome unknown,
    ``fast`` with its recorded answer, or unknown too when the kill came before the answer
    was recorded), and its next turn's write, asked under the same tool call id as ``fast``,
    is made. Resumed once more, nothing is written."""
    killed_inside_the_node(tmp_path, mode, extra_s)
    assert sorted(journal(tmp_path)) == ["bare fast", "bare slow"]
    resumed = agent("resume", tmp_path, mode, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err[-3000:]
    assert sorted(journal(tmp_path)) == ["bare again", "bare fast", "bare slow"], out
    slow, fast, again = messages(out)
    assert slow["id"] == "call_1" and slow["status"] == "error", slow
    assert "outcome_unknown" in slow["content"], slow
    assert fast["id"] == "call_2", fast
    if fast["status"] == "success":  # its answer was recorded before the kill
        assert json.loads(fast["content"])["entry"] == "fast", fast
    else:  # killed between its write and the record of its answer
        assert "outcome_unknown" in fast["content"], fast
    assert again["id"] == "call_2" and again["status"] == "success", again
    assert json.loads(again["content"])["entry"] == "again" and not again["replayed"], again
    once_more = agent("resume", tmp_path, mode, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = once_more.communicate(timeout=120)
    assert once_more.returncode == 0, err[-3000:]
    assert sorted(journal(tmp_path)) == ["bare again", "bare fast", "bare slow"]


def resumed(where: Path, mode: str, *thread: str) -> list[dict[str, Any]]:
    """The tool messages of the agent resumed (on ``--thread``, when given)."""
    extra = ["--thread", *thread] if thread else []
    command = [sys.executable, "-m", "tests.toolnode_agent", "resume", str(where), "--mode", mode]
    env = cli_env(PYTHONPATH=f"{ROOT / 'src'}:{ROOT}")
    done = subprocess.run(
        [*command, *extra], cwd=ROOT, env=env, text=True, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return messages(done.stdout)


@pytest.mark.parametrize("mode", ["async", "sync", "plain"])
@pytest.mark.parametrize("copy_first", [False, True])
def test_a_copy_of_an_agent_killed_inside_its_tool_node_makes_no_write_again(
    tmp_path, mode, copy_first
):
    """The killed agent's thread copied (as the LangGraph server's ``threads.copy`` does),
    then the original and the copy resumed, in either order: the write in flight at the kill
    is made again by neither, each reporting it ``outcome_unknown``, since in each thread's
    history it was sent; ``fast``, answered before the kill, is not made again either. Each
    thread's next turn, asked after the copy, is its own: made once on each."""
    killed_inside_the_node(tmp_path, mode, 0.0)
    copy = subprocess.run(
        [sys.executable, "-m", "tests.toolnode_agent", "copy", str(tmp_path)],
        cwd=ROOT,
        env=cli_env(PYTHONPATH=f"{ROOT / 'src'}:{ROOT}"),
        text=True,
        capture_output=True,
        timeout=60,
    )
    assert copy.returncode == 0, copy.stderr[-3000:]
    threads = [("agent-2",), ()] if copy_first else [(), ("agent-2",)]
    for thread in threads:
        slow, fast, again = resumed(tmp_path, mode, *thread)
        assert slow["id"] == "call_1" and slow["status"] == "error", (thread, slow)
        assert "outcome_unknown" in slow["content"], (thread, slow)
        if fast["status"] != "success":  # killed between its write and its record
            assert "outcome_unknown" in fast["content"], (thread, fast)
        assert again["status"] == "success" and not again["replayed"], (thread, again)
    lines = sorted(journal(tmp_path))
    assert lines == ["bare again", "bare again", "bare fast", "bare slow"], lines


@pytest.mark.parametrize("mode", ["async", "sync", "plain"])
def test_a_copy_resumed_after_its_original_was_deleted_makes_no_write_again(tmp_path, mode):
    """The killed agent's thread copied, then the original deleted (the server's thread
    delete): the copy still holds the checkpoint the write in flight was sent from, so its
    resumed node reports it ``outcome_unknown`` and does not make it again."""
    killed_inside_the_node(tmp_path, mode, 0.0)
    for phase in ("copy", "delete"):
        done = subprocess.run(
            [sys.executable, "-m", "tests.toolnode_agent", phase, str(tmp_path)],
            cwd=ROOT, env=cli_env(PYTHONPATH=f"{ROOT / 'src'}:{ROOT}"),
            text=True, capture_output=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    slow, _fast, again = resumed(tmp_path, mode, "agent-2")
    assert slow["status"] == "error" and "outcome_unknown" in slow["content"], slow
    assert again["status"] == "success", again
    lines = sorted(journal(tmp_path))
    assert lines == ["bare again", "bare fast", "bare slow"], lines


@pytest.mark.parametrize("mode", ["async", "sync", "plain"])
def test_a_copy_made_before_the_tool_node_ran_makes_its_own_writes(tmp_path, mode):
    """The agent stopped before its tools node (``interrupt_before``), its thread copied, then
    both resumed: the node had not run when the copy was made, so each thread's calls are its
    own, every write made once on each (none answered with the other thread's record)."""
    for phase in ("pause", "copy"):
        done = subprocess.run(
            [sys.executable, "-m", "tests.toolnode_agent", phase, str(tmp_path), "--mode", mode],
            cwd=ROOT, env=cli_env(PYTHONPATH=f"{ROOT / 'src'}:{ROOT}"),
            text=True, capture_output=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    assert journal(tmp_path) == []
    for thread in [(), ("agent-2",)]:
        for message in resumed(tmp_path, mode, *thread):
            assert message["status"] == "success" and not message["replayed"], (thread, message)
    lines = sorted(journal(tmp_path))
    assert lines == sorted(["bare slow", "bare fast", "bare again"] * 2), lines

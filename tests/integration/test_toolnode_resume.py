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
    run = agent("run", tmp_path, mode, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def written() -> bool:
            return len(journal(tmp_path)) == 2 or run.poll() is not None

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

"""The examples run as a user runs them (examples/server_client.py runs in test_server.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, *args: str, stdin: str | None = None, code: int = 0) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == code, proc.stderr
    if code:
        assert "Traceback" not in proc.stderr
        return proc.stderr
    return proc.stdout


def test_toolnode_agent() -> None:
    out = run_example("toolnode_agent.py")
    assert "tool time__now [success]" in out and "(hybrid, agreement True" in out
    assert 'tool math__calculate [success]: {"value": 59.97}' in out
    assert out.splitlines()[-1].startswith("answer: tokyo: ")


@pytest.mark.parametrize("side", ["internal", "external"])
def test_interrupt_resume_takes_the_chosen_side(side: str) -> None:
    out = run_example("interrupt_resume.py", stdin=f"{side}\n")
    assert "conflict on 'now' (clock.now):" in out
    assert out.splitlines()[-1] == f"resolution: {{'by': 'human', 'choice': '{side}'}}"
    assert "status ok:" in out


def test_interrupt_resume_without_an_answer_says_how_to_give_one() -> None:
    err = run_example("interrupt_resume.py", stdin="", code=2)
    assert err.strip().splitlines()[-1] == (
        "error: no answer on stdin: give it as an argument (internal or external)"
    )

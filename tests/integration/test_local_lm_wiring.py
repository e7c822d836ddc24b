"""The real local model (SmolLM2-135M through llama.cpp) driving arbitration and ``--ask``.

A 135M model is weak: these tests assert structure and the fallback contract, never content.
Every LM step either records a well-formed answer or leaves an ``LM_FALLBACK`` event, and the
run itself always completes. Answers are bounded to a few dozen tokens to keep this short.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip(
    "llama_cpp",
    reason="llama-cpp-python is not installed (pip install 'hybridmcp[local]'); "
    "CI installs it, so these tests run there",
)

from hybridmcp.prompts.advice import ALLOCATION_CHOICES, LM_FALLBACK
from hybridmcp.prompts.lm import LOCAL_MODEL, LocalLlamaLM

from hybridmcp import Coordinator, parse_task
from tests.conftest import time_server_config

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
HYBRIDMCP = str(Path(sys.executable).with_name("hybridmcp"))


async def test_local_model_as_arbitrator_never_breaks_a_run():
    config = time_server_config(
        arbitration_config={"bias_ratio": 100.0},  # every auto request is in the hybrid band
        llm_config={"arbitrator_model": LOCAL_MODEL, "max_tokens": 48, "timeout_ms": 90_000},
    )
    requests = [
        {"id": "tokyo", "skill": "time.now", "args": {"timezone": "Asia/Tokyo"}},
        {"id": "calc", "skill": "math.calculate", "args": {"expression": "2+2*3"}},
    ]
    async with asyncio.timeout(240), Coordinator.open(config) as co:
        assert set(co.resources.lms) == {"arbitrator"}
        assert isinstance(co.resources.lms["arbitrator"], LocalLlamaLM)
        out = await co.run(parse_task({"requests": requests}))
    assert out["status"] == "ok"
    assert out["results"]["calc"]["value"]["value"] == 8
    assert "allocation_advice" not in out["results"]["calc"]  # internal only: nothing to decide
    fallbacks = {e["role"] for e in out["events"] if e["code"] == LM_FALLBACK}
    tokyo = out["results"]["tokyo"]
    advice = tokyo["allocation_advice"]
    assert advice["used"] is ("arbitrator" not in fallbacks)
    if advice["used"]:
        assert advice["decision"] in ALLOCATION_CHOICES
        assert tokyo["allocation"] == advice["decision"]
    else:
        assert tokyo["allocation"] == "hybrid"  # the deterministic rule stands
    assert tokyo["value"]["timezone"] == "Asia/Tokyo"


def test_ask_with_the_local_model_runs_a_valid_plan_or_says_why_not(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("{}\n")  # no planner_model: --ask falls back to the local model
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    done = subprocess.run(
        [HYBRIDMCP, "run", "--json", "-c", str(config), "--ask", "what is 2+2*3"],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    if done.returncode == 2:  # the model's answer was not a valid plan: a clear error
        assert "error:" in done.stderr and ("plan:" in done.stderr or "planner" in done.stderr)
        assert done.stdout == ""
        return
    plan = json.loads(done.stderr.strip().splitlines()[0])["plan"]
    assert plan["model"] == LOCAL_MODEL and plan["requests"]
    out = json.loads(done.stdout)
    assert out["plan"] == plan
    assert [r["id"] for r in out["results"]] == [r["id"] for r in plan["requests"]]
    assert done.returncode in (0, 1, 3)  # ok, failed or partial: the plan ran

"""The real local model (SmolLM2-135M through llama.cpp) driving arbitration and ``--ask``.

Every answer is bound by a grammar, so these tests assert the model's own parsed answer was
used where the form is guaranteed (no ``LM_FALLBACK``); they never judge what a 135M model
chose. Until advice has earned trust, it is recorded and the deterministic rule stands.
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

from hybridmcp import Coordinator, parse_task
from hybridmcp.capabilities.local_model import LOCAL_MODEL
from hybridmcp.prompts.arbitrator import ALLOCATION_CHOICES
from hybridmcp.prompts.asking import LM_FALLBACK
from hybridmcp.prompts.models import LocalLlamaLM
from tests.conftest import time_server_config

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
HYBRIDMCP = str(Path(sys.executable).with_name("hybridmcp"))


async def test_local_model_as_arbitrator_gives_parsed_advice_that_is_recorded_and_scored():
    config = time_server_config(
        arbitration_config={"bias_ratio": 100.0},  # every auto request is in the hybrid band
        llm_config={"arbitrator_model": LOCAL_MODEL, "timeout_ms": 90_000},
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
    assert not [e for e in out["events"] if e["code"] == LM_FALLBACK]
    tokyo = out["results"]["tokyo"]
    advice = tokyo["allocation_advice"]
    assert advice["decision"] in ALLOCATION_CHOICES  # the model's own parsed answer
    assert "error" not in advice
    assert advice["used"] is False and tokyo["allocation"] == "hybrid"  # not trusted yet
    assert tokyo["value"]["timezone"] == "Asia/Tokyo"
    (record,) = out["metrics"]["advice"]["records"]
    assert record["advice"] == advice["decision"] and record["rule"] == advice["rule_choice"]


def test_ask_with_the_local_model_runs_a_plan_of_known_skills(tmp_path):
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
    # The grammar binds skill names and argument types, so the plan is the model's own.
    assert done.returncode != 2, done.stderr
    plan = json.loads(done.stderr.strip().splitlines()[0])["plan"]
    assert plan["model"] == LOCAL_MODEL and plan["requests"]
    out = json.loads(done.stdout)
    assert out["plan"] == plan
    assert [r["id"] for r in out["results"]] == [r["id"] for r in plan["requests"]]
    assert done.returncode in (0, 1, 3)  # ok, failed or partial: the plan ran

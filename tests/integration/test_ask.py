"""``hybridmcp run --ask``: a free-text task planned by an LM, shown, validated, then run.

The planner here is a scripted dspy ``DummyLM`` named in the configuration
(``python:tests.helpers:scripted_planner_lm``), answering with the plan in an environment
variable, so the real CLI runs in a subprocess exactly as a user would run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hybridmcp.capabilities import local_model
from hybridmcp.config import parse_config
from hybridmcp.errors import ConfigError, TaskError
from hybridmcp.prompts import planner
from hybridmcp.runtime import Resources
from tests.helpers import PLANNER_ANSWER_ENV, SCRIPTED_LM_ENV

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
HYBRIDMCP = str(Path(sys.executable).with_name("hybridmcp"))
SCRIPTED = "python:tests.helpers:scripted_planner_lm"


def ask(tmp_path: Path, text: str, answer: Any, *extra: str):
    config = tmp_path / "config.yaml"
    config.write_text(f"llm_config: {{planner_model: '{SCRIPTED}'}}\n" if answer else "{}\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        PLANNER_ANSWER_ENV: json.dumps(answer or {}),
    }
    return subprocess.run(
        [HYBRIDMCP, "run", "--ask", text, "-c", str(config), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )


def plan_answer(requests: Any) -> dict[str, Any]:
    text = requests if isinstance(requests, str) else json.dumps(requests)
    return {"requests": text, "rationale": "one call per question"}


def test_ask_plans_shows_the_plan_then_runs_it(tmp_path):
    requests = [
        {"id": "calc", "skill": "math.calculate", "args": {"expression": "2+2*3"}},
        {"id": "words", "skill": "text.stats", "args": {"text": "Two words."}},
    ]
    done = ask(
        tmp_path,
        "what is 2+2*3, and count the words in 'Two words.'",
        plan_answer(requests),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stderr.strip().splitlines()[0])["plan"]
    assert plan["requests"] == requests and plan["model"] == "dummy"
    out = json.loads(done.stdout)
    assert out["status"] == "ok" and out["plan"] == plan
    values = {r["id"]: r["value"] for r in out["results"]}
    assert values["calc"]["value"] == 8
    assert values["words"]["words"] == 2


def test_ask_prints_the_plan_as_a_table_before_the_results(tmp_path):
    requests = [{"id": "calc", "skill": "math.calculate", "args": {"expression": "6*7"}}]
    done = ask(tmp_path, "six times seven", plan_answer(requests))
    assert done.returncode == 0, done.stderr
    assert done.stdout.index("plan by dummy") < done.stdout.index("hybridmcp run: ok")
    assert "math.calculate" in done.stdout and "42" in done.stdout


@pytest.mark.parametrize(
    ("requests", "message"),
    [
        ([{"skill": "math.calculator", "args": {"expression": "1"}}], "unknown skill"),
        ([{"skill": "math.calculate", "args": {"expr": "1"}}], "invalid args"),
        ("I would call the calculator.", "no JSON list of requests"),
    ],
)
def test_an_invalid_plan_is_a_clear_error_and_runs_nothing(tmp_path, requests, message):
    done = ask(tmp_path, "what is 1", plan_answer(requests), "--json")
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""


def test_a_refused_plan_goes_back_to_the_planner_once_with_the_reason(tmp_path):
    bad = [{"skill": "math.calculator", "args": {"expression": "6*7"}}]
    good = [{"id": "calc", "skill": "math.calculate", "args": {"expression": "6*7"}}]
    answers: Any = [plan_answer(bad), plan_answer(good)]
    done = ask(tmp_path, "six times seven", answers, "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["plan"]["requests"] == good
    assert out["results"][0]["value"]["value"] == 42


TOKYO = {"id": "tokyo", "skill": "time.now", "args": {"timezone": "Asia/Tokyo"}}
CALC = {"id": "calc", "skill": "math.calculate", "args": {"expression": "2+2*3"}}
TWO_PARTS = "what time is it in Tokyo and what is 2+2*3"


def test_a_plan_missing_a_part_of_the_question_is_asked_again_naming_the_part(tmp_path):
    answers: Any = [plan_answer([TOKYO]), plan_answer([TOKYO, CALC])]
    done = ask(tmp_path, TWO_PARTS, answers, "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["plan"]["requests"] == [TOKYO, CALC]
    assert "uncovered" not in out["plan"]
    assert {r["id"] for r in out["results"]} == {"tokyo", "calc"}


async def test_the_second_ask_names_the_missing_part(monkeypatch):
    monkeypatch.setenv(
        PLANNER_ANSWER_ENV, json.dumps([plan_answer([TOKYO]), plan_answer([TOKYO, CALC])])
    )
    from tests.helpers import scripted_planner_lm

    lm = scripted_planner_lm()
    async with await Resources.open(parse_config({})) as res:
        plan = await planner.plan_requests(res, TWO_PARTS, lm)
    assert plan.requests == [TOKYO, CALC] and plan.uncovered == ()
    retry = json.dumps(lm.history[1]["messages"])
    assert "missed: what is 2+2*3" in retry


def test_a_part_still_missing_after_asking_again_is_shown_with_the_plan(tmp_path):
    answers: Any = [plan_answer([TOKYO]), plan_answer([TOKYO])]
    done = ask(tmp_path, TWO_PARTS, answers, "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["plan"]["uncovered"] == ["what is 2+2*3"]
    table = ask(tmp_path, TWO_PARTS, answers)
    assert "not planned: what is 2+2*3" in table.stdout


def test_ask_and_a_task_file_together_are_refused(tmp_path):
    done = ask(tmp_path, "anything", plan_answer([]), str(tmp_path / "task.json"))
    assert done.returncode == 2 and "not both" in done.stderr


async def test_without_a_planner_or_the_local_model_ask_names_the_fix(monkeypatch):
    monkeypatch.setattr(local_model, "local_model_installed", lambda: False)
    async with await Resources.open(parse_config({})) as res:
        with pytest.raises(ConfigError, match="planner_model"):
            await planner.plan_requests(res, "what is 1+1")
        with pytest.raises(TaskError, match="empty"):
            await planner.plan_requests(res, "   ")


def test_json_output_carries_the_coordinators_plan(tmp_path):
    answer = {
        "coordination_strategy": "run both requests internally, in parallel",
        "capability_allocation": "internal",
        "integration_points": "none",
        "performance_optimization": "no external calls",
    }
    config = tmp_path / "config.yaml"
    config.write_text("llm_config: {coordinator_model: 'python:tests.helpers:scripted_lm'}\n")
    task = tmp_path / "task.json"
    task.write_text(
        json.dumps([{"id": "c", "skill": "math.calculate", "args": {"expression": "1+1"}}])
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        SCRIPTED_LM_ENV: json.dumps({"task_requirements": answer}),
    }
    done = subprocess.run(
        [HYBRIDMCP, "run", str(task), "-c", str(config), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["coordination"] == {"source": "lm", "model": "dummy"} | answer


def test_the_run_output_reports_advice_beside_the_rule_and_its_learned_accuracy(tmp_path):
    answer = {
        "allocation_decision": "external",
        "performance_prediction": "fast",
        "cost_optimization": "one call",
        "risk_assessment": "low",
    }
    config = tmp_path / "config.yaml"
    config.write_text(
        "mcpServers: {time: {command: mcp-server-time, args: [--local-timezone, UTC]}}\n"
        "skills:\n  time.now:\n    providers:\n"
        "      - {side: external, server: time, tool: get_current_time}\n"
        "arbitration_config: {bias_ratio: 100.0}\n"
        "llm_config: {arbitrator_model: 'python:tests.helpers:scripted_lm'}\n"
    )
    task = tmp_path / "task.json"
    task.write_text(
        json.dumps([{"id": "t", "skill": "time.now", "args": {"timezone": "Asia/Tokyo"}}])
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        SCRIPTED_LM_ENV: json.dumps({"capability_comparison": answer}),
    }
    done = subprocess.run(
        [HYBRIDMCP, "run", str(task), "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())  # the console wraps long lines
    assert "advice arbitrator|time.now: accuracy 0.67 vs the rule's 0.67 over 1 scored" in text
    assert "(not trusted: the rule decides)" in text

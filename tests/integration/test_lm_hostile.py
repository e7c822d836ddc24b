"""A model outside the process that answers badly: every way is a clear ``LM_FALLBACK`` (or,
for ``--ask``, one clear error line and exit 2), never a traceback, a hang or a bad answer
taken silently.

The model is the recording OpenAI-compatible server of :mod:`tests.model_server`, told to
answer in hostile ways (HTTP errors, a body that is not a completion, bytes that are not
UTF-8, empty content, a lone surrogate, a key given twice, no answer in time), reached through
a plain ``dspy.LM`` as a user configures one. The CLI runs in a subprocess, as a user runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hybridmcp.audit import iter_records
from tests.helpers import MODEL_URL_ENV
from tests.model_server import Model

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
HYBRIDMCP = str(Path(sys.executable).with_name("hybridmcp"))

COORDINATION = {
    "coordination_strategy": "count the words internally",
    "capability_allocation": "w: internal",
    "integration_points": "none",
    "performance_optimization": "none needed",
}
TASK = "requests:\n  - {id: w, skill: text.stats, args: {text: 'the quick brown fox'}}\n"


def cli(
    tmp_path: Path, model: Model, role: str, *args: str, timeout_ms: int = 20_000
) -> subprocess.CompletedProcess:
    """``hybridmcp run ARGS`` with ``model`` as the ``role``'s LM."""
    lm = f"{role}_model: 'python:tests.helpers:served_model_lm', timeout_ms: {timeout_ms}"
    config = tmp_path / "config.yaml"
    config.write_text(f"llm_config: {{{lm}}}\naudit: {{path: '{tmp_path / 'audit.jsonl'}'}}\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        MODEL_URL_ENV: model.url,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    return subprocess.run(
        [HYBRIDMCP, "run", *args, "-c", str(config), "--db", ":memory:"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )


def run_task(
    tmp_path: Path, model: Model, *args: str, timeout_ms: int = 20_000
) -> subprocess.CompletedProcess:
    task = tmp_path / "task.yaml"
    task.write_text(TASK)
    return cli(tmp_path, model, "coordinator", str(task), *args, timeout_ms=timeout_ms)


TWICE = json.dumps(COORDINATION)[:-1] + ', "integration_points": "outside"}'
WITHOUT = {k: v for k, v in COORDINATION.items() if k != "integration_points"}
HOSTILE = {
    "rate limited": ({"__status__": 429, "__body__": "slow down"}, "LMRateLimitError"),
    "server error": ({"__status__": 500, "__body__": "internal error"}, "LMServerError"),
    "not a completion": ({"__garbage__": "<html>bad gateway</html>"}, "is not JSON"),
    "not UTF-8": ({"__bytes__": "7b2261223a22ff227d"}, "can't decode byte 0xff"),
    "empty": ({"__content__": ""}, "empty or null response"),
    "null": ({"__content__": None}, "empty or null response"),
    "prose": ({"__content__": "I would run it all internally."}, "not a JSON object"),
    "a list": ({"__content__": json.dumps([COORDINATION])}, "not a JSON object"),
    "missing field": (WITHOUT, "'integration_points' is a required property"),
    "extra field": (COORDINATION | {"allocation": "external"}, "'allocation' was unexpected"),
    "wrong type": (COORDINATION | {"integration_points": [1]}, "is not of type 'string'"),
    "blank field": (COORDINATION | {"integration_points": "  "}, "empty output field"),
    "a key twice": ({"__content__": TWICE}, "names 'integration_points' twice"),
    "lone surrogate": (COORDINATION | {"integration_points": "\ud800"}, "written as UTF-8"),
    "too slow": ({"__sleep__": 30}, "TimeoutError"),
}


@pytest.mark.parametrize("answer,error", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_bad_answer_is_one_clear_fallback_and_the_run_goes_on(
    tmp_path, start_model, answer, error
):
    model = start_model([answer])
    slow = "__sleep__" in answer
    done = run_task(tmp_path, model, "--json", timeout_ms=1500 if slow else 20_000)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    out = json.loads(done.stdout)
    assert out["results"][0]["value"]["words"] == 4  # the deterministic path answered
    assert "coordination" not in out  # nothing of the bad answer was taken
    (event,) = [e for e in out["events"] if e["code"] == "LM_FALLBACK"]
    assert event["role"] == "coordinator" and event["fallback"] == "deterministic"
    assert error in event["error"], event["error"]
    assert "\n" not in event["error"]
    assert len(model.bodies()) == 1  # asked once, not retried into a storm
    (call,) = [r for r in iter_records(tmp_path / "audit.jsonl") if r["kind"] == "model_call"]
    assert call["outcome"].startswith("error: ") and "\n" not in call["outcome"]


def test_an_enormous_answer_is_kept_to_the_records_size(tmp_path, start_model):
    model = start_model([COORDINATION | {"integration_points": "x" * 2_000_000}])
    done = run_task(tmp_path, model, "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["coordination"]["coordination_strategy"] == COORDINATION["coordination_strategy"]
    assert 0 < len(out["coordination"]["integration_points"]) <= 1500


@pytest.mark.parametrize(
    "answer",
    [COORDINATION | {"coordination_strategy": "a \ud800 b"}, HOSTILE["not UTF-8"][0]],
    ids=["lone surrogate", "not UTF-8"],
)
def test_the_table_of_a_run_whose_model_answered_badly_prints(tmp_path, start_model, answer):
    model = start_model([answer])
    done = run_task(tmp_path, model)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "w" in done.stdout
    assert len(model.bodies()) == 1  # the model was asked and answered within its deadline


# --------------------------------------------------------------------------- --ask


def ask(
    tmp_path: Path, model: Model, text: str, timeout_ms: int = 20_000
) -> subprocess.CompletedProcess:
    return cli(tmp_path, model, "planner", "--json", "--ask", text, timeout_ms=timeout_ms)


PLAN = {
    "requests": [{"skill": "text.stats", "args": {"text": "the quick brown fox"}}],
    "rationale": "count the words",
}


@pytest.mark.parametrize(
    "wrap", ["```json\n{}\n```", "Here is the plan:\n{}"], ids=["fence", "prose"]
)
def test_a_complete_plan_in_a_fence_or_prose_runs(tmp_path, start_model, wrap):
    model = start_model([{"__content__": wrap.format(json.dumps(PLAN))}])
    done = ask(tmp_path, model, "Count the words in: the quick brown fox")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"][0]["value"]["words"] == 4
    assert len(model.bodies()) == 1


@pytest.mark.parametrize(
    ("answer", "error", "asked"),
    [
        ({"__content__": "I cannot plan this."}, "not a JSON object", 2),
        ({"__status__": 500, "__body__": "line one\nline two"}, "LMServerError", 1),
        ({"__sleep__": 30}, "TimeoutError", 1),
        (PLAN | {"rationale": "\udc80"}, "cannot be written as UTF-8", 2),
        ({"__content__": json.dumps(PLAN)[:-1] + ', "requests": []}'}, "twice", 2),
    ],
    ids=["prose", "server error", "too slow", "lone surrogate", "a key twice"],
)
def test_a_planner_that_answers_badly_is_one_error_line_and_nothing_runs(
    tmp_path, start_model, answer, error, asked
):
    """An answer outside its form is asked for again once, with the reason; no answer at all
    (a server's failure, no answer in time) is not."""
    model = start_model([answer])
    slow = "__sleep__" in answer
    done = ask(tmp_path, model, "Count the words in: the quick brown fox", 1500 if slow else 20_000)
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: the planner (openai/recorded) gave no usable answer")
    assert error in line
    assert len(model.bodies()) == asked
    if asked == 2:
        assert "A previous answer was refused" in model.bodies()[1]


MANY = {"requests": PLAN["requests"] * 20, "rationale": "twenty counts"}
LONG_ID = {"requests": [PLAN["requests"][0] | {"id": "x" * 5000}], "rationale": "count"}


def test_a_plan_longer_than_its_bound_is_refused_and_asked_again(tmp_path, start_model):
    model = start_model([MANY, PLAN])
    done = ask(tmp_path, model, "Count the words in: the quick brown fox")
    assert done.returncode == 0, done.stderr
    assert [r["id"] for r in json.loads(done.stdout)["results"]] == ["r1"]
    _, second = model.bodies()
    assert "20 requests, more than a plan may hold (8)" in second


def test_a_plan_the_task_checks_refuse_is_asked_again_then_a_clear_error(tmp_path, start_model):
    model = start_model([LONG_ID])
    done = ask(tmp_path, model, "Count the words in: the quick brown fox")
    assert done.returncode == 2 and done.stdout == ""
    assert "at most 200 characters" in done.stderr
    assert '"plan"' not in done.stderr  # refused before it was shown, nothing ran
    assert len(model.bodies()) == 2 and "at most 200 characters" in model.bodies()[1]


def test_a_task_that_is_not_utf8_on_the_command_line_is_refused_before_the_planner(
    tmp_path, start_model
):
    model = start_model([PLAN])
    config = tmp_path / "config.yaml"
    config.write_text("llm_config: {planner_model: 'python:tests.helpers:served_model_lm'}\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        MODEL_URL_ENV: model.url,
    }
    text = b"Count the words in: \xff the fox"  # reaches Python as a lone surrogate
    done = subprocess.run(
        [HYBRIDMCP, b"run", b"--ask", text, b"-c", str(config), b"--db", b":memory:"],
        capture_output=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 2 and done.stdout == b""
    (line,) = done.stderr.decode().strip().splitlines()
    assert line.startswith("error: --ask: the task text is not valid UTF-8")
    assert "U+DCFF" in line
    assert model.bodies() == []

"""A model outside the process is an external service: what it is shown passes the gate
(privacy policy, clearance ``public``) and every call to it is audited (``kind: model_call``).

The model is a real HTTP server speaking the OpenAI chat API (:mod:`tests.model_server`),
reached through a plain ``dspy.LM`` as a user would configure one; it records every request
body, so the tests read exactly what left the process. The CLI runs in a subprocess.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hybridmcp.audit import iter_records
from hybridmcp.capabilities.builtin import text_stats
from hybridmcp.policy.privacy import redact
from tests.helpers import MODEL_URL_ENV
from tests.model_server import Model

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
HYBRIDMCP = str(Path(sys.executable).with_name("hybridmcp"))
EMAIL = "ada.lovelace@example.com"
PRIVATE_TASK = f"Count the words in: Please email {EMAIL} about the invoice"


def plan(requests: list[dict[str, Any]]) -> dict[str, Any]:
    return {"requests": requests, "rationale": "one request per question"}


def ask(tmp_path: Path, model: Model, text: str, policy: str | None) -> subprocess.CompletedProcess:
    audit = tmp_path / "audit.jsonl"
    privacy = f"privacy: {{policy: {policy}}}\n" if policy else ""
    config = tmp_path / "config.yaml"
    config.write_text(
        "llm_config: {planner_model: 'python:tests.helpers:served_model_lm'}\n"
        f"audit: {{path: '{audit}'}}\n" + privacy
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        MODEL_URL_ENV: model.url,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    return subprocess.run(
        [HYBRIDMCP, "run", "--ask", text, "-c", str(config), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )


def model_calls(tmp_path: Path) -> list[dict[str, Any]]:
    return [r for r in iter_records(tmp_path / "audit.jsonl") if r.get("kind") == "model_call"]


def pseudonymised(text: str) -> tuple[str, str]:
    """The text as the gate shows it to the model, and the pseudonym of its one finding."""
    shown = redact({"task": text}).value["task"]
    (token,) = re.findall(r"<[A-Z_]+_\d+>", shown)
    return shown, token


def test_under_redact_the_planner_sees_a_pseudonym_and_the_plan_gets_the_value_back(
    tmp_path, start_model
):
    shown, token = pseudonymised(PRIVATE_TASK)
    words = shown.split(": ", 1)[1]
    answer = plan([{"id": "w", "skill": "text.stats", "args": {"text": words}}])
    model = start_model([answer])
    done = ask(tmp_path, model, PRIVATE_TASK, "redact")
    assert done.returncode == 0, done.stderr
    bodies = model.bodies()
    assert bodies and all(EMAIL not in b for b in bodies)
    assert all(token in b for b in bodies)
    out = json.loads(done.stdout)
    assert out["plan"]["requests"][0]["args"]["text"] == f"Please email {EMAIL} about the invoice"
    raw = f"Please email {EMAIL} about the invoice"
    assert text_stats(raw) != text_stats(words)
    assert out["results"][0]["value"] == text_stats(raw)  # the raw text, counted in-process
    calls = model_calls(tmp_path)
    assert len(calls) == len(bodies)
    assert {c["role"] for c in calls} == {"planner"}
    assert all(c["action"] == "redact" and c["outcome"] == "ok" for c in calls)
    assert all(c["prompt_sensitivity"] == "confidential" for c in calls)
    assert [r["entity_type"] for r in calls[0]["redactions"]] == ["EMAIL_ADDRESS"]
    assert calls[0]["bytes_sent"] > len(PRIVATE_TASK) and calls[0]["bytes_received"] > 0
    assert EMAIL not in (tmp_path / "audit.jsonl").read_text()


def test_under_the_default_policy_private_text_is_not_sent_and_the_error_says_why(
    tmp_path, start_model
):
    model = start_model([plan([])])
    done = ask(tmp_path, model, PRIVATE_TASK, None)
    assert done.returncode == 2
    assert "not sent to a model outside this process (EMAIL_ADDRESS in task)" in done.stderr
    assert "policy route_internal" in done.stderr and EMAIL not in done.stderr
    assert done.stdout == ""
    assert model.bodies() == []  # nothing reached the model
    (call,) = model_calls(tmp_path)
    assert call["role"] == "planner" and call["action"] == "refuse"
    assert call["outcome"] == "refused: privacy" and call["bytes_sent"] == 0
    assert EMAIL not in (tmp_path / "audit.jsonl").read_text()


@pytest.mark.parametrize("policy", ["refuse", "route_internal"])
def test_a_secret_in_the_task_never_reaches_the_planner_under_a_refusing_policy(
    tmp_path, start_model, policy
):
    secret = "AKIA" + "Q3EGRIOSFODNN7EXAMPLE"[:16]
    model = start_model([plan([])])
    done = ask(tmp_path, model, f"Count the words in: the key is {secret}", policy)
    assert done.returncode == 2 and "not sent" in done.stderr
    assert model.bodies() == []
    assert model_calls(tmp_path)[0]["prompt_sensitivity"] == "restricted"


def test_public_text_goes_as_it_is_and_is_audited(tmp_path, start_model):
    text = "Count the words in: the quick brown fox"
    answer = plan([{"id": "w", "skill": "text.stats", "args": {"text": "the quick brown fox"}}])
    model = start_model([answer])
    done = ask(tmp_path, model, text, None)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"][0]["value"]["words"] == 4
    (body, *_) = model.bodies()
    assert "the quick brown fox" in body
    (call,) = model_calls(tmp_path)
    assert {k: call[k] for k in ("kind", "role", "model", "run_id", "request_id")} == {
        "kind": "model_call",
        "role": "planner",
        "model": "openai/recorded",
        "run_id": None,  # the plan is made before the run
        "request_id": None,
    }
    assert call["prompt_sensitivity"] == "public" and call["action"] == "allow"
    assert call["outcome"] == "ok" and call["redactions"] == []
    assert call["bytes_sent"] > len(text) and call["bytes_received"] > 0

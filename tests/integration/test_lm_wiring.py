"""The spec's signatures wired through the real graph, with scripted LMs.

The LMs are dspy's ``DummyLM`` keyed by a field name that only one signature's prompt holds
(``task_requirements``: coordinator, ``capability_comparison``: arbitrator,
``internal_results``: synchronizer), so concurrent calls get the right answer; they answer in
JSON, the form the structured adapter asks for. External services are real: mcp-server-time,
and the project's fault server for text. Advice decides only once it has earned trust, so the
tests that show advice deciding first give it a learned record (``trust``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import dspy
import pytest
from dspy.utils import DummyLM

from hybridmcp import Coordinator, parse_task
from hybridmcp.config import parse_config
from hybridmcp.policy.advice_trust import MIN_SCORED, AdviceStats
from hybridmcp.prompts.asking import LM_FALLBACK
from hybridmcp.prompts.synchronizer import EXPERT_ARBITRATION
from hybridmcp.prompts.trust import NAMESPACE
from hybridmcp.testing.harness import faultserver_stdio
from tests.conftest import time_server_config

pytestmark = pytest.mark.integration

COORDINATOR = {
    "coordination_strategy": "Run the arithmetic internally, in parallel with the text stats.",
    "capability_allocation": "calc: internal; words: internal",
    "integration_points": "none: the requests are independent",
    "performance_optimization": "no external calls needed",
}
ARBITRATOR = {
    "performance_prediction": "the time server answers in milliseconds",
    "cost_optimization": "one call instead of two",
    "risk_assessment": "low: a clock is easy to check later",
}
SYNCHRONIZER = {
    "quality_validation": "the time server is authoritative",
    "consistency_verification": "the internal clock is two hours ahead",
    "optimization_insights": "trust the time server for wall-clock time",
}
CLOCK_COMPARATOR = {
    "type": "fields",
    "fields": {"timezone": {"type": "exact"}, "datetime": {"type": "datetime", "tolerance": 5}},
}


def scripted(answers: Any) -> DummyLM:
    return DummyLM(answers, adapter=dspy.JSONAdapter())


def earned(role: str, skill: str) -> AdviceStats:
    """A record of advice that was right every time the rule was right half the time."""
    return AdviceStats(role, skill, MIN_SCORED, MIN_SCORED, MIN_SCORED // 2, MIN_SCORED)


async def run(
    config,
    requests,
    lms: dict[str, Any],
    trust: tuple[AdviceStats, ...] = (),
    audit: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The run's output; its audit records are appended to ``audit`` when given."""
    async with asyncio.timeout(60), Coordinator.open(config) as co:
        co.resources.lms = lms
        for stats in trust:
            await co.resources.store.aput(NAMESPACE, f"{stats.role}|{stats.skill}", stats.to_dict())
        out = await co.run(parse_task({"requests": requests}))
        if audit is not None:
            audit += co.resources.gate.audit.records
        return out


def codes(out: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [e for e in out["events"] if e["code"] == code]


def prompts(lm: DummyLM) -> str:
    return json.dumps([entry["messages"] for entry in lm.history])


INTERNAL_ONLY = [
    {"id": "calc", "skill": "math.calculate", "args": {"expression": "1234*5678"}},
    {"id": "words", "skill": "text.stats", "args": {"text": "Quarterly figures for Bluebird."}},
]


async def test_no_llm_config_runs_without_any_lm():
    async with Coordinator.open(parse_config({})) as co:
        assert co.resources.lms == {}
        out = await co.run(parse_task({"requests": INTERNAL_ONLY}))
    assert out["status"] == "ok"
    assert "coordination" not in out
    assert not codes(out, LM_FALLBACK)


async def test_coordinator_plan_is_recorded_and_sees_no_arguments():
    lm = scripted({"task_requirements": COORDINATOR})
    out = await run(parse_config({}), INTERNAL_ONLY, {"coordinator": lm})
    assert out["status"] == "ok"
    assert out["coordination"] == {"source": "lm", "model": "dummy"} | COORDINATOR
    assert len(lm.history) == 1
    sent = prompts(lm)
    assert "math.calculate" in sent and "text.stats" in sent
    assert "1234*5678" not in sent and "Bluebird" not in sent  # profiles only, no data


async def test_every_call_to_a_model_outside_the_process_is_audited_with_its_run():
    coordinator = scripted({"task_requirements": COORDINATOR})
    arbitrator = scripted(
        {"capability_comparison": {"allocation_decision": "external", **ARBITRATOR}}
    )
    audit: list[dict[str, Any]] = []
    lms = {"coordinator": coordinator, "arbitrator": arbitrator}
    out = await run(band_config(), BAND_REQUESTS[:1], lms, audit=audit)
    calls = [r for r in audit if r["kind"] == "model_call"]
    assert sorted(c["role"] for c in calls) == ["arbitrator", "coordinator"]
    run_ids = {r["run_id"] for r in audit if r["kind"] == "external_call"}
    assert len(run_ids) == 1 and out["status"] == "ok"
    assert {c["run_id"] for c in calls} == run_ids
    by_role = {c["role"]: c for c in calls}
    assert by_role["arbitrator"]["request_id"] == "band"
    assert by_role["coordinator"]["request_id"] is None  # about the whole run
    for call in calls:
        assert call["model"] == "dummy" and call["action"] == "allow" and call["outcome"] == "ok"
        assert call["prompt_sensitivity"] == "public" and call["bytes_sent"] > 0


async def test_malformed_coordinator_answer_falls_back_with_an_event():
    lm = scripted({"task_requirements": {"something_else": "junk"}})
    out = await run(parse_config({}), INTERNAL_ONLY, {"coordinator": lm})
    assert out["status"] == "ok"
    assert "coordination" not in out
    (event,) = codes(out, LM_FALLBACK)
    assert event["role"] == "coordinator" and event["fallback"] == "deterministic"
    assert "AdapterParseError" in event["error"]


class SlowLM(DummyLM):
    """An LM that never answers in time."""

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(60)


async def test_a_slow_lm_is_cut_off_at_its_deadline():
    config = parse_config({"llm_config": {"timeout_ms": 200}})
    out = await run(config, INTERNAL_ONLY, {"coordinator": SlowLM([])})
    assert out["status"] == "ok"
    (event,) = codes(out, LM_FALLBACK)
    assert event["error"].startswith("TimeoutError")


def band_config(**overrides: Any):
    """A bias ratio so wide that every auto request is undecided by the numbers."""
    return time_server_config(arbitration_config={"bias_ratio": 100.0}, **overrides)


BAND_REQUESTS = [
    {"id": "band", "skill": "time.now", "args": {"timezone": "Asia/Tokyo"}},
    {"id": "asked", "skill": "time.now", "args": {"timezone": "UTC"}, "strategy": "internal"},
    {
        "id": "secret",
        "skill": "time.now",
        "args": {"timezone": "Europe/Oslo"},
        "sensitivity": "confidential",
    },
]


async def test_arbitrator_decides_inside_the_band_only():
    lm = scripted({"capability_comparison": {"allocation_decision": "external", **ARBITRATOR}})
    trust = (earned("arbitrator", "time.now"),)
    out = await run(band_config(), BAND_REQUESTS, {"arbitrator": lm}, trust)
    assert out["status"] == "ok"
    assert len(lm.history) == 1  # only the undecided request was put to the LM
    band = out["results"]["band"]
    assert band["allocation"] == "external"
    assert "arbitrator advice 'external'" in band["allocation_rule"]
    assert [a["side"] for a in band["attempts"]] == ["external"]
    assert band["allocation_advice"]["used"] is True
    assert band["allocation_advice"]["decision"] == "external"
    assert band["allocation_advice"]["risk_assessment"] == ARBITRATOR["risk_assessment"]
    assert "within the 100 band" in band["allocation_advice"]["deterministic_rule"]
    # A requested strategy and a hard privacy constraint are not the LM's to change.
    assert out["results"]["asked"]["allocation"] == "internal"
    assert "allocation_advice" not in out["results"]["asked"]
    assert out["results"]["secret"]["allocation"] == "internal"
    assert "allocation_advice" not in out["results"]["secret"]


@pytest.mark.parametrize(
    "answer",
    [
        "internal or external, hybrid if unsure",  # names more than one choice
        "send it to the cloud",  # names none
    ],
)
async def test_ambiguous_arbitrator_answer_keeps_the_hybrid_rule(answer):
    lm = scripted({"capability_comparison": {"allocation_decision": answer, **ARBITRATOR}})
    out = await run(band_config(), BAND_REQUESTS[:1], {"arbitrator": lm})
    band = out["results"]["band"]
    assert band["allocation"] == "hybrid" and band["agreement"] is True
    assert band["allocation_advice"]["used"] is False
    (event,) = codes(out, LM_FALLBACK)
    assert event["role"] == "arbitrator" and event["request_id"] == "band"


async def test_untrusted_advice_is_recorded_beside_the_rule_and_scored_after_the_run():
    lm = scripted({"capability_comparison": {"allocation_decision": "external", **ARBITRATOR}})
    out = await run(band_config(), BAND_REQUESTS[:1], {"arbitrator": lm})
    band = out["results"]["band"]
    advice = band["allocation_advice"]
    # Parsed and recorded, but it has no record yet: the rule's hybrid stands, both sides run.
    assert advice["decision"] == "external" and advice["used"] is False
    assert "not yet beaten" in advice["not_used"]
    assert advice["rule_choice"] in ("internal", "external")
    assert advice["trust"]["scored"] == 0 and advice["trust"]["trusted"] is False
    assert band["allocation"] == "hybrid" and band["agreement"] is True
    assert not codes(out, LM_FALLBACK)
    # The sides agreed, so both picks were right; the run output reports the learned accuracy.
    report = out["metrics"]["advice"]
    (record,) = report["records"]
    assert record == {
        "role": "arbitrator",
        "skill": "time.now",
        "request_id": "band",
        "advice": "external",
        "rule": advice["rule_choice"],
        "used": False,
        "truth": ["external", "internal"],
    }
    learned = report["accuracy"]["arbitrator|time.now"]
    assert learned["scored"] == 1 and learned["advice_accuracy"] == learned["rule_accuracy"]
    assert learned["trusted"] is False  # a tie with the rule never earns trust


def clock_config(clearance: str = "public"):
    return time_server_config(
        mcpServers={
            "time": {
                "command": "mcp-server-time",
                "args": ["--local-timezone", "UTC"],
                "clearance": clearance,
            }
        },
        skills={
            "clock.now": {
                "input_schema": {
                    "type": "object",
                    "properties": {"timezone": {"type": "string"}},
                    "required": ["timezone"],
                },
                "comparator": CLOCK_COMPARATOR,
                "providers": [
                    {"side": "internal", "function": "tests.helpers:wrong_time"},
                    {"side": "external", "server": "time", "tool": "get_current_time"},
                ],
            }
        },
    )


def clock(rid: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "skill": "clock.now",
        "args": {"timezone": "UTC"},
        "strategy": "hybrid",
    } | extra


async def test_conflict_resolved_by_expert_arbitration():
    lm = scripted({"internal_results": {"synchronized_results": "external", **SYNCHRONIZER}})
    out = await run(
        clock_config("confidential"),
        [clock("pub"), clock("conf", sensitivity="confidential")],
        {"synchronizer": lm},
        (earned("synchronizer", "clock.now"),),
    )
    assert len(lm.history) == 1  # confidential values never reach a non-local LM
    by_id = {c["request_id"]: c for c in out["conflicts"]}
    conflict, result = by_id["pub"], out["results"]["pub"]
    assert conflict["resolution_strategy"] == EXPERT_ARBITRATION
    assert conflict["expert_arbitration"]["verdict"] == "external"
    assert conflict["expert_arbitration"]["used"] is True
    assert conflict["confidence_adjustment"] == -0.2
    assert set(conflict["uncertainty"]) == {"disagreement", "confidence_before", "confidence_after"}
    assert conflict["uncertainty"]["confidence_after"] == result["confidence"]
    external = next(v for p, v in conflict["values"].items() if p.startswith("mcp:"))
    assert result["value"] == external
    assert result["resolution"]["by"] == "expert_arbitration"
    assert result["sources"][0].startswith("mcp:")
    detected = {e["request_id"]: e for e in codes(out, "RESULT_CONFLICT_DETECTED")}
    assert detected["pub"]["resolution_strategy"] == EXPERT_ARBITRATION
    # The confidential one keeps the deterministic resolution and says why.
    assert by_id["conf"]["resolution_strategy"] == "HIGHER_CONFIDENCE_WINS"
    assert "not sent" in by_id["conf"]["expert_arbitration"]["withheld"]


async def test_malformed_verdict_keeps_the_deterministic_resolution():
    lm = scripted(
        {"internal_results": {"synchronized_results": "both look fine to me", **SYNCHRONIZER}}
    )
    out = await run(clock_config(), [clock("pub")], {"synchronizer": lm})
    (conflict,) = out["conflicts"]
    assert conflict["resolution_strategy"] == "HIGHER_CONFIDENCE_WINS"
    assert conflict["expert_arbitration"]["used"] is False
    assert "resolution" not in out["results"]["pub"]
    (event,) = codes(out, LM_FALLBACK)
    assert event["step"] == "resolve_conflict" and event["request_id"] == "pub"


def echo_config():
    return parse_config(
        {
            "mcpServers": {"fault": faultserver_stdio()},
            "skills": {
                "text.echo": {
                    "input_schema": {
                        "type": "object",
                        "properties": {"text": {"type": "string"}},
                        "required": ["text"],
                    },
                    "comparator": {
                        "type": "fields",
                        "fields": {"text": {"type": "text_similarity", "threshold": 0.6}},
                    },
                    "integration": "hybrid_synthesis",
                    "providers": [
                        {"side": "internal", "function": "tests.helpers:echo_text"},
                        {"side": "external", "server": "fault", "tool": "echo"},
                    ],
                }
            },
        }
    )


async def test_hybrid_synthesis_of_text_is_recorded_beside_the_merge():
    text = "The release moves to March. Billing stays on the old system until then."
    answer = {"synchronized_results": "The release is in March; billing waits.", **SYNCHRONIZER}
    lm = scripted({"internal_results": answer})
    requests = [{"id": "e", "skill": "text.echo", "args": {"text": text}, "strategy": "hybrid"}]
    out = await run(echo_config(), requests, {"synchronizer": lm})
    result = out["results"]["e"]
    assert result["agreement"] is True and result["strategy"] == "hybrid_synthesis"
    assert result["value"] == {"text": text}  # the validated merge stays the value
    lm_synthesis = result["synthesis"]["lm_synthesis"]
    assert lm_synthesis["synchronized_results"] == answer["synchronized_results"]
    assert lm_synthesis["model"] == "dummy"
    assert text in prompts(lm)

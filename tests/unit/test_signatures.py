"""Signatures, the LM factory, and the never-raising wiring around them.

The LM here is dspy's own scripted ``DummyLM`` or a dspy.LM over a tiny engine class, so these
run in milliseconds without any model.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import dspy
import pytest
from dspy.utils import DummyLM

from hybridmcp.capabilities.local_model import LOCAL_MODEL
from hybridmcp.capabilities.registry import unknown_skills
from hybridmcp.errors import ConfigError, TaskError
from hybridmcp.prompts.models import make_lm, make_lms
from hybridmcp.prompts.plans import parse_plan, skill_catalogue
from hybridmcp.prompts.running import arun_signature, run_signature
from hybridmcp.prompts.signatures import (
    CapabilityArbitratorSignature,
    HybridCoordinatorSignature,
    ResultSynchronizerSignature,
    TaskPlannerSignature,
)

SPEC = Path(__file__).resolve().parents[3] / "shared/spec/hybrid-coordination-pattern.md"

# The spec's signatures, transcribed: (docstring, [(name, kind, desc), ...]) in field order.
EXPECTED = {
    HybridCoordinatorSignature: (
        "Coordinate between internal capabilities and external MCP services.",
        [
            ("task_requirements", "input", "Complex task requiring hybrid approach"),
            ("internal_capabilities", "input", "Available internal agent capabilities"),
            ("external_services", "input", "Available external MCP services"),
            ("optimization_criteria", "input", "Performance, cost, and quality criteria"),
            ("coordination_strategy", "output", "Optimal coordination approach"),
            ("capability_allocation", "output", "Distribution of work between internal/external"),
            ("integration_points", "output", "Points where internal and external results merge"),
            ("performance_optimization", "output", "Optimization strategy for hybrid execution"),
        ],
    ),
    CapabilityArbitratorSignature: (
        "Decide optimal allocation between internal and external capabilities.",
        [
            ("capability_comparison", "input", "Comparison of internal vs external capabilities"),
            (
                "performance_requirements",
                "input",
                "Performance, latency, and quality requirements",
            ),
            ("cost_constraints", "input", "Cost and resource usage constraints"),
            ("security_considerations", "input", "Security and privacy requirements"),
            ("allocation_decision", "output", "Optimal work allocation strategy"),
            ("performance_prediction", "output", "Expected performance outcomes"),
            ("cost_optimization", "output", "Cost optimization recommendations"),
            ("risk_assessment", "output", "Risk analysis and mitigation strategies"),
        ],
    ),
    ResultSynchronizerSignature: (
        "Synchronize and integrate results from internal and external processing.",
        [
            ("internal_results", "input", "Results from internal agent processing"),
            ("external_results", "input", "Results from external MCP services"),
            ("integration_requirements", "input", "Requirements for result integration"),
            ("quality_standards", "input", "Quality validation and consistency requirements"),
            ("synchronized_results", "output", "Integrated and synchronized final results"),
            ("quality_validation", "output", "Quality assessment of integrated results"),
            ("consistency_verification", "output", "Consistency validation across sources"),
            ("optimization_insights", "output", "Insights for future coordination optimization"),
        ],
    ),
}

SPEC_SIGNATURES = list(EXPECTED)
ALL_SIGNATURES = [*SPEC_SIGNATURES, TaskPlannerSignature]


def fields(signature: type[dspy.Signature]) -> list[tuple[str, str, str]]:
    out = [(n, "input", f.json_schema_extra["desc"]) for n, f in signature.input_fields.items()]
    out += [(n, "output", f.json_schema_extra["desc"]) for n, f in signature.output_fields.items()]
    return out


def answers_for(signature: type[dspy.Signature]) -> dict[str, str]:
    return {name: f"{name} value" for name in signature.output_fields}


def inputs_for(signature: type[dspy.Signature]) -> dict[str, str]:
    return {name: f"{name} text" for name in signature.input_fields}


SKILLS = [
    {
        "name": "echo",
        "description": "Repeat the text.",
        "input_schema": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
            "additionalProperties": False,
        },
    },
    {
        "name": "add",
        "description": "Add two integers.",
        "input_schema": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
    {"name": "now", "description": "The current time; no arguments."},
]

GOOD_PLAN = [
    {"id": "r1", "skill": "echo", "args": {"text": "hi"}},
    {"id": "r2", "skill": "add", "args": {"a": 1, "b": 2}},
]


class FailingEngine:
    """A dspy engine whose provider is down."""

    def complete(self, request):
        raise RuntimeError("provider is down")


class AsyncFailingEngine:
    async def complete(self, request):
        raise RuntimeError("provider is down")


def scripted(answers):
    """dspy's scripted LM, answering in JSON as the structured adapter asks."""
    return DummyLM(answers, adapter=dspy.JSONAdapter())


def failing_lm() -> dspy.LM:
    return dspy.LM(
        "test/failing",
        engine=FailingEngine(),
        async_engine=AsyncFailingEngine(),
        num_retries=0,
        cache=False,
    )


# --------------------------------------------------------------------------- signatures


@pytest.mark.parametrize("signature", SPEC_SIGNATURES, ids=lambda s: s.__name__)
def test_spec_signature_fields_match_transcription(signature):
    doc, expected = EXPECTED[signature]
    assert signature.instructions == doc
    assert fields(signature) == expected


@pytest.mark.skipif(not SPEC.is_file(), reason=f"spec not found beside the repo at {SPEC}")
def test_spec_signatures_match_the_spec_file_itself():
    text = SPEC.read_text(encoding="utf-8")
    block = re.search(r"```python\n(class HybridCoordinatorSignature.*?)```", text, re.DOTALL)
    assert block, "the spec's signature block moved; update this test"
    namespace: dict = {"dspy": dspy}
    exec(block.group(1), namespace)
    for signature in SPEC_SIGNATURES:
        spec_signature = namespace[signature.__name__]
        assert signature.instructions == spec_signature.instructions
        assert fields(signature) == fields(spec_signature)


def test_task_planner_fields():
    assert list(TaskPlannerSignature.input_fields) == ["task", "skills"]
    assert list(TaskPlannerSignature.output_fields) == ["requests", "rationale"]
    assert "JSON" in TaskPlannerSignature.input_fields["skills"].json_schema_extra["desc"]


# --------------------------------------------------------------------------- run_signature


@pytest.mark.parametrize("signature", ALL_SIGNATURES, ids=lambda s: s.__name__)
def test_run_signature_returns_the_scripted_prediction(signature):
    lm = scripted([answers_for(signature)])
    prediction, error = run_signature(signature, lm, **inputs_for(signature))
    assert error is None
    for name, value in answers_for(signature).items():
        assert getattr(prediction, name) == value


def test_run_signature_chain_of_thought_adds_reasoning():
    lm = scripted([{"reasoning": "step by step", **answers_for(TaskPlannerSignature)}])
    outcome = run_signature(
        TaskPlannerSignature, lm, chain_of_thought=True, **inputs_for(TaskPlannerSignature)
    )
    assert outcome.ok
    assert outcome.prediction.reasoning == "step by step"


def test_run_signature_malformed_output_returns_none_with_error():
    # Neither dspy's chat adapter nor its JSON fallback can find the fields in this answer.
    lm = scripted([{"unrelated": "junk"}] * 2)
    prediction, error = run_signature(
        CapabilityArbitratorSignature, lm, **inputs_for(CapabilityArbitratorSignature)
    )
    assert prediction is None
    assert "AdapterParseError" in error


def test_run_signature_empty_output_field_is_a_failure():
    lm = scripted([{"requests": "", "rationale": "none"}])
    outcome = run_signature(TaskPlannerSignature, lm, **inputs_for(TaskPlannerSignature))
    assert not outcome.ok
    assert "requests" in outcome.error


def test_run_signature_lm_error_returns_none_with_error():
    lm = failing_lm()
    prediction, error = run_signature(
        ResultSynchronizerSignature, lm, **inputs_for(ResultSynchronizerSignature)
    )
    assert prediction is None
    assert "provider is down" in error


def test_run_signature_mismatched_inputs_return_none_without_calling_the_lm():
    lm = scripted([])  # any call would fail differently: there are no scripted answers
    prediction, error = run_signature(TaskPlannerSignature, lm, task="t", skils="[]")
    assert prediction is None
    assert "missing ['skills']" in error
    assert "unknown ['skils']" in error
    assert lm.history == []


def test_run_signature_rejects_a_non_signature_without_raising():
    outcome = run_signature(object, scripted([]), task="t")
    assert not outcome.ok
    assert "not a dspy signature" in outcome.error


async def test_arun_signature_success_and_failure():
    lm = scripted([answers_for(HybridCoordinatorSignature)])
    outcome = await arun_signature(
        HybridCoordinatorSignature, lm, **inputs_for(HybridCoordinatorSignature)
    )
    assert outcome.ok
    assert outcome.prediction.coordination_strategy == "coordination_strategy value"

    broken = failing_lm()
    outcome = await arun_signature(
        HybridCoordinatorSignature, broken, **inputs_for(HybridCoordinatorSignature)
    )
    assert outcome.prediction is None
    assert "provider is down" in outcome.error


def test_planner_through_dummy_lm_then_parse_plan():
    fenced = "```json\n" + json.dumps(GOOD_PLAN) + "\n```"
    lm = scripted([{"requests": fenced, "rationale": "echo then add"}])
    prediction, error = run_signature(
        TaskPlannerSignature, lm, task="echo hi and add 1 and 2", skills=skill_catalogue(SKILLS)
    )
    assert error is None
    assert parse_plan(prediction.requests, SKILLS) == GOOD_PLAN


# --------------------------------------------------------------------------- parse_plan


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(GOOD_PLAN),
        "```json\n" + json.dumps(GOOD_PLAN, indent=2) + "\n```",
        "```\n" + json.dumps(GOOD_PLAN) + "\n```\nThat is the plan.",
        "Here is the plan: " + json.dumps(GOOD_PLAN) + "\nI chose echo [first] then add.",
        json.dumps({"requests": GOOD_PLAN}),
    ],
    ids=["plain", "fenced", "fence-no-lang", "prose-around", "wrapped"],
)
def test_parse_plan_accepts_good_json(text):
    assert parse_plan(text, SKILLS) == GOOD_PLAN


def test_parse_plan_defaults_ids_and_args_and_accepts_a_parsed_list():
    plan = parse_plan([{"skill": "now"}, {"id": 7, "skill": "echo", "args": {"text": "x"}}], SKILLS)
    assert plan == [
        {"id": "r1", "skill": "now", "args": {}},
        {"id": "7", "skill": "echo", "args": {"text": "x"}},
    ]


def test_parse_plan_accepts_a_single_request_object():
    assert parse_plan('{"skill": "now", "args": {}}', SKILLS) == [
        {"id": "r1", "skill": "now", "args": {}}
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no json here", "no JSON list of requests"),
        ("[]", "empty list"),
        ('[{"id": "r1", "skill": "echo", "args": {"text": "hi"}}, {"id": "r2"', "no JSON list"),
        ('["echo"]', "not an object"),
        ('[{"skill": "echo", "args": ["hi"]}]', "args that are not an object"),
        ('[{"id": "a", "skill": "now"}, {"id": "a", "skill": "now"}]', "used twice"),
        ('[{"id": {"x": 1}, "skill": "now"}]', "id that is not a string"),
    ],
    ids=["no-json", "empty", "truncated", "not-object", "args-list", "dup-id", "bad-id"],
)
def test_parse_plan_rejects_bad_json(text, message):
    with pytest.raises(TaskError, match=re.escape(message)):
        parse_plan(text, SKILLS)


def test_parse_plan_rejects_unknown_skill_and_suggests_a_close_one():
    with pytest.raises(TaskError, match=r"unknown skill 'ecno' \(did you mean 'echo'\?\)"):
        parse_plan('[{"skill": "ecno", "args": {"text": "hi"}}]', SKILLS)
    with pytest.raises(TaskError, match=r"unknown skill 'ECHO' \(did you mean 'echo'\?\)"):
        parse_plan('[{"skill": "ECHO", "args": {"text": "hi"}}]', SKILLS)
    with pytest.raises(TaskError, match=r"unknown skill None; known skills: add, echo, now"):
        parse_plan('[{"args": {}}]', SKILLS)


@pytest.mark.parametrize("name", ["ECHO", "Ec-ho", "echo_", "ecno", "weather.forecast", 7])
@pytest.mark.parametrize("many", [False, True])
def test_a_plans_unknown_skill_is_said_as_a_tasks_is(name, many):
    """The planner's unknown skill is told as the registry tells a task's: the same name found
    through another case or separators, the same list (or count) of known skills."""
    skills = SKILLS + [{"name": f"extra.s{i}"} for i in range(20 if many else 0)]
    text = json.dumps([{"skill": name, "args": {}}])
    with pytest.raises(TaskError) as info:
        parse_plan(text, skills)
    known = [s["name"] for s in skills]
    assert str(info.value) == f"plan: request #1 names {unknown_skills([name], known)}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"a": 1}, "'b' is a required property"),
        ({"a": 1, "b": "two"}, "at b: 'two' is not of type 'integer'"),
    ],
)
def test_parse_plan_rejects_args_that_break_the_schema(args, message):
    text = json.dumps([{"id": "x", "skill": "add", "args": args}])
    with pytest.raises(TaskError, match=re.escape(message)) as info:
        parse_plan(text, SKILLS)
    assert "request 'x' (add)" in str(info.value)


def test_parse_plan_rejects_extra_args_when_the_schema_forbids_them():
    with pytest.raises(TaskError, match="Additional properties"):
        parse_plan('[{"skill": "echo", "args": {"text": "hi", "loud": true}}]', SKILLS)


def test_parse_plan_accepts_catalogue_shapes():
    class Tool:  # shaped like an MCP Tool
        name = "add"
        description = "Add."
        inputSchema = SKILLS[1]["input_schema"]  # the MCP SDK's spelling

    as_mapping = {"add": {"description": "Add.", "inputSchema": SKILLS[1]["input_schema"]}}
    for catalogue in (skill_catalogue(SKILLS), as_mapping, [Tool()]):
        assert parse_plan('[{"skill": "add", "args": {"a": 1, "b": 2}}]', catalogue)
        with pytest.raises(TaskError, match="required property"):
            parse_plan('[{"skill": "add", "args": {"a": 1}}]', catalogue)


def test_parse_plan_leaves_the_args_of_a_schema_that_is_not_json_schema_unchecked():
    """A server's schema may be anything: one that cannot check arguments leaves them to the
    skill's own check and its server, as a request given directly does."""
    broken = [{"name": "bad", "input_schema": {"type": "not-a-type"}}]
    assert parse_plan('[{"skill": "bad", "args": {"a": 1}}]', broken)[0]["args"] == {"a": 1}


def test_parse_plan_reports_a_nameless_catalogue_entry_as_config_error():
    with pytest.raises(ConfigError, match="no name"):
        parse_plan('[{"skill": "x"}]', [{"description": "nameless"}])


def test_skill_catalogue_is_json_the_planner_can_read():
    catalogue = json.loads(skill_catalogue(SKILLS))
    assert [entry["name"] for entry in catalogue] == ["echo", "add", "now"]
    assert catalogue[2]["input_schema"] == {"type": "object"}


# --------------------------------------------------------------------------- make_lm


def test_make_lm_hands_other_models_to_dspy():
    lm = make_lm("openai/gpt-4o-mini", temperature=0.2, max_tokens=1500)
    assert type(lm) is dspy.LM
    assert lm.model == "openai/gpt-4o-mini"
    assert lm.kwargs["temperature"] == 0.2
    assert lm.kwargs["max_tokens"] == 1500


@pytest.mark.parametrize("model", ["", "   ", "local:", "local/llama-70b", "openai/"])
def test_make_lm_rejects_bad_model_strings(model):
    with pytest.raises(ConfigError, match="llm_config"):
        make_lm(model)


def test_make_lm_local_without_the_extra_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import now raises ImportError
    for model in (LOCAL_MODEL, "local:/models/any.gguf"):
        with pytest.raises(ConfigError, match=re.escape("pip install 'hybridmcp[local]'")):
            make_lm(model)


def test_local_agent_without_the_extra_names_the_extra(monkeypatch):
    from hybridmcp.capabilities.local_agent import local_answer, local_summarize

    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(ConfigError, match=re.escape("hybridmcp[local]")):
        local_answer("What is the code name?", "The code name is Bluebird.")
    with pytest.raises(ConfigError, match=re.escape("hybridmcp[local]")):
        local_summarize("Some private text.")


def test_make_lms_builds_one_lm_per_role_and_shares_equal_models():
    spec_config = {
        "coordinator_model": "gpt-4",
        "arbitrator_model": "gpt-4",
        "synchronizer_model": "openai/gpt-4o-mini",
        "temperature": 0.2,
        "max_tokens": 1500,
    }
    lms = make_lms(spec_config)
    assert set(lms) == {"coordinator", "arbitrator", "synchronizer"}
    assert lms["coordinator"] is lms["arbitrator"]
    assert lms["synchronizer"].model == "openai/gpt-4o-mini"
    assert lms["coordinator"].kwargs["max_tokens"] == 1500


def test_make_lms_reads_the_projects_llm_config():
    from hybridmcp.config import LLMConfig

    lms = make_lms(LLMConfig(planner_model="openai/gpt-4o-mini", max_tokens=300))
    assert set(lms) == {"planner"}  # roles left unset get no LM: the engine runs without one
    assert lms["planner"].kwargs["max_tokens"] == 300

"""The LM glue's pure parts: strict choices, the hybrid band, plan repair, LM configuration."""

from __future__ import annotations

import json

import dspy
import pytest
from dspy.utils import DummyLM

from hybridmcp.config import parse_config
from hybridmcp.errors import ConfigError, TaskError
from hybridmcp.prompts.arbitrator import ALLOCATION_CHOICES, in_hybrid_band
from hybridmcp.prompts.asking import parse_choice
from hybridmcp.prompts.models import make_lm, make_lms
from hybridmcp.prompts.planner import (
    PLAN_ATTEMPTS,
    PLANNER_DEMOS,
    _compact_catalogue,
    plan_requests,
)
from hybridmcp.prompts.plans import parse_plan, plan_schema
from hybridmcp.prompts.signatures import TaskPlannerSignature
from hybridmcp.prompts.structured import StructuredAdapter
from hybridmcp.runtime import Resources

SKILLS = [
    {
        "name": "math.calculate",
        "description": "Evaluate an arithmetic expression.",
        "input_schema": {
            "type": "object",
            "properties": {"expression": {"type": "string"}, "precision": {"type": "integer"}},
            "required": ["expression"],
        },
    }
]


@pytest.mark.parametrize(
    ("text", "choice"),
    [
        ("external", "external"),
        ("  Hybrid.", "hybrid"),
        ("Internal-only: the data stays here", "internal"),
        ("hybrid_parallel execution", "hybrid"),
        ("internal and external, so hybrid", None),
        ("internal, unless external is faster", None),
        ("the cloud", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_choice_takes_exactly_one_named_choice(text, choice):
    assert parse_choice(text, ALLOCATION_CHOICES) == choice


def allocation(i, e, mode="hybrid", strategy="auto"):
    return {"mode": mode, "strategy": strategy, "internal_fitness": i, "external_fitness": e}


@pytest.mark.parametrize(
    ("alloc", "critical", "inside"),
    [
        (allocation(0.70, 0.65), False, True),
        (allocation(0.65, 0.70), False, True),
        (allocation(0.70, 0.70 * 1.2), False, True),  # on the edge: not above the ratio
        (allocation(0.90, 0.50), False, False),  # internal leads (hybrid by the threshold rule)
        (allocation(0.70, 0.65), True, False),  # critical: cross-validate, always
        (allocation(0.70, 0.65, strategy="hybrid"), False, False),  # the user asked
        (allocation(0.70, None, mode="internal"), False, False),  # one side only
        (allocation(0.90, 0.50, mode="internal"), False, False),
        # an audit of learned agreement is there to cross-validate: advice leaves it alone
        (allocation(0.70, 0.65) | {"validation_sampling": {"audit": True}}, False, False),
        (allocation(0.70, 0.65) | {"validation_sampling": {"sampled": False}}, False, True),
    ],
)
def test_in_hybrid_band(alloc, critical, inside):
    assert in_hybrid_band(alloc, critical, 1.2) is inside


def test_parse_plan_repairs_a_closed_list_with_a_stray_brace():
    text = '[{"id": "r1", "skill": "math.calculate", "args": {"expression": "1+1"}}}]'
    assert parse_plan(text, SKILLS) == [
        {"id": "r1", "skill": "math.calculate", "args": {"expression": "1+1"}}
    ]


def test_parse_plan_does_not_repair_a_list_cut_off_midway():
    text = '[{"id": "r1", "skill": "math.calculate", "args": {"expression": "1+1"}}, {"id": "r2"'
    with pytest.raises(TaskError, match="no JSON list"):
        parse_plan(text, SKILLS)


def test_compact_catalogue_lists_names_argument_types_and_purpose():
    text = _compact_catalogue(json.dumps(SKILLS))
    name, args, purpose = text.split(" ", 1)[0], *text.split(" ", 1)[1].split(" - ")
    assert name == "math.calculate"
    assert json.loads(args) == {"expression": "string", "precision": "integer?"}
    assert purpose == "Evaluate an arithmetic expression."


def test_the_planner_prompt_shows_demos_as_json_answers_and_asks_for_the_plan_first():
    adapter = StructuredAdapter(fields={"requests": plan_schema(SKILLS)})
    messages = adapter.format(
        TaskPlannerSignature, list(PLANNER_DEMOS), {"task": "what is 1+1", "skills": "S"}
    )
    assert messages[0]["role"] == "system"
    assert "- requests:" in messages[0]["content"] and "- rationale:" in messages[0]["content"]
    assert [m["role"] for m in messages[1:]] == ["user", "assistant"] * len(PLANNER_DEMOS) + [
        "user"
    ]
    demo = json.loads(messages[2]["content"])
    assert list(demo) == ["requests", "rationale"]
    assert demo["requests"] == PLANNER_DEMOS[0]["requests"]
    assert "what is 1+1" in messages[-1]["content"]
    parsed = adapter.parse(TaskPlannerSignature, '{"requests": [{"skill": "x"}], "rationale": "r"}')
    assert json.loads(parsed["requests"]) == [{"skill": "x"}] and parsed["rationale"] == "r"


def json_lm(answers):
    """dspy's scripted LM, answering in JSON as the structured adapter asks."""
    return DummyLM(answers, adapter=dspy.JSONAdapter())


def scripted(**options):
    return DummyLM([{"answer": "ok"}])


def test_make_lm_builds_an_lm_from_a_python_factory():
    lm = make_lm("python:tests.unit.test_advice:scripted", temperature=0.1, max_tokens=5)
    assert isinstance(lm, dspy.BaseLM)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("python:tests.unit.test_advice", "python:<module>:<callable>"),
        ("python:tests.unit.test_advice:no_such", "no_such"),
        ("python:json:dumps", "failed"),  # dumps() needs an object: the factory raises
        ("python:builtins:dict", "not a dspy.BaseLM"),
    ],
)
def test_make_lm_refuses_a_bad_factory(model, message):
    with pytest.raises(ConfigError, match=message):
        make_lm(model)


def test_make_lms_shares_a_factory_lm_between_roles():
    lms = make_lms(
        {
            "coordinator_model": "python:tests.unit.test_advice:scripted",
            "arbitrator_model": "python:tests.unit.test_advice:scripted",
        }
    )
    assert lms["coordinator"] is lms["arbitrator"]


async def test_resources_build_no_lm_by_default_and_the_configured_ones_otherwise():
    async with await Resources.open(parse_config({})) as res:
        assert res.lms == {}
    config = parse_config(
        {"llm_config": {"planner_model": "python:tests.unit.test_advice:scripted"}}
    )
    async with await Resources.open(config) as res:
        assert set(res.lms) == {"planner"}


async def test_a_bad_model_string_fails_when_resources_open():
    config = parse_config({"llm_config": {"arbitrator_model": "local/no-such-model"}})
    with pytest.raises(ConfigError, match="unknown local model"):
        await Resources.open(config)


async def test_plan_requests_puts_a_refused_plan_back_once_with_the_reason():
    bad = {"requests": '[{"skill": "math.calculator"}]', "rationale": "r"}
    lm = json_lm([bad, bad, bad])
    async with await Resources.open(parse_config({})) as res:
        with pytest.raises(TaskError, match="unknown skill 'math.calculator'"):
            await plan_requests(res, "what is 6*7", lm)
    assert len(lm.history) == PLAN_ATTEMPTS == 2
    retry = json.dumps(lm.history[1]["messages"])
    assert "previous plan was refused" in retry and "math.calculator" in retry

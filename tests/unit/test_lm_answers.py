"""Answers of shapes the LM layer was not shaped around: each is read, or refused with one clear
line, never guessed at, never a traceback.

No model runs here: the answers are given as text to the adapter, or through dspy's
``DummyLM`` to :func:`~hybridmcp.prompts.running.run_signature`.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import dspy
import pytest
from dspy.utils import DummyLM
from dspy.utils.exceptions import AdapterParseError
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridmcp.capabilities.local_model import check_gguf
from hybridmcp.errors import ConfigError
from hybridmcp.prompts.models import describe
from hybridmcp.prompts.planner import planner_adapter
from hybridmcp.prompts.plans import parse_plan, skill_catalogue
from hybridmcp.prompts.running import run_signature
from hybridmcp.prompts.signatures import HybridCoordinatorSignature, TaskPlannerSignature
from hybridmcp.prompts.structured import StructuredAdapter

COORDINATION = {
    "coordination_strategy": "run both in parallel",
    "capability_allocation": "a: internal",
    "integration_points": "none",
    "performance_optimization": "none needed",
}
CATALOGUE = skill_catalogue(
    [
        {
            "name": "text.stats",
            "description": "Count words.",
            "input_schema": {
                "type": "object",
                "properties": {"text": {"type": "string"}},
                "required": ["text"],
            },
        }
    ]
)
PLAN = {
    "requests": [{"skill": "text.stats", "args": {"text": "the quick brown fox"}}],
    "rationale": "one count",
}


def test_an_answer_naming_a_key_twice_is_refused_not_guessed():
    first = json.dumps(COORDINATION)
    twice = first[:-1] + ', "coordination_strategy": "run everything outside"}'
    assert json.loads(twice)["coordination_strategy"] == "run everything outside"  # JSON's pick
    with pytest.raises(AdapterParseError, match="names 'coordination_strategy' twice"):
        StructuredAdapter().parse(HybridCoordinatorSignature, twice)
    nested = json.dumps(PLAN).replace('"args": {', '"args": {"text": "rm -rf", ', 1)
    with pytest.raises(AdapterParseError, match="names 'text' twice"):
        planner_adapter(CATALOGUE).parse(TaskPlannerSignature, nested)


def test_an_answer_holding_two_objects_is_refused_not_guessed():
    internal = json.dumps(COORDINATION)
    external = json.dumps(COORDINATION | {"coordination_strategy": "run everything outside"})
    for text in (f"{internal} {external}", f"First: {internal}\nOr rather: {external}"):
        with pytest.raises(AdapterParseError, match="more than one JSON object"):
            StructuredAdapter().parse(HybridCoordinatorSignature, text)


@pytest.mark.parametrize(
    "wrap",
    [
        "```json\n{}\n```",
        "```\n{}\n```",
        "Here is the plan:\n{}\nI hope it helps.",
        "Thinking {{about it}}... then: {}",
    ],
)
def test_a_complete_plan_in_a_fence_or_prose_is_read_without_repairing_anything(wrap):
    adapter = planner_adapter(CATALOGUE)
    assert adapter.repair is False
    out = adapter.parse(TaskPlannerSignature, wrap.format(json.dumps(PLAN)))
    (request,) = parse_plan(out["requests"], CATALOGUE)
    assert request["args"] == {"text": "the quick brown fox"}


def test_a_plan_cut_off_inside_a_fence_is_still_refused():
    text = "```json\n" + json.dumps(PLAN)[:-30] + "\n```"
    with pytest.raises(AdapterParseError):
        planner_adapter(CATALOGUE).parse(TaskPlannerSignature, text)


def test_an_answer_holding_a_lone_surrogate_is_no_answer():
    answer = COORDINATION | {"integration_points": "a \ud800 b"}
    lm = DummyLM([answer], adapter=dspy.JSONAdapter())  # answers JSON text: "\\ud800"
    outcome = run_signature(
        HybridCoordinatorSignature,
        lm,
        task_requirements="t",
        internal_capabilities="i",
        external_services="e",
        optimization_criteria="o",
    )
    assert outcome.prediction is None
    assert outcome.error is not None and "cannot be written as UTF-8" in outcome.error
    assert "integration_points" in outcome.error and "U+D800" in outcome.error
    outcome.error.encode("utf-8")  # the error itself can be printed


@settings(max_examples=60, deadline=None)
@given(message=st.text(), answer=st.text())
def test_a_failure_is_described_on_one_line(message, answer):
    for exc in (
        ValueError(message),
        AdapterParseError("StructuredAdapter", HybridCoordinatorSignature, answer, message),
    ):
        text = describe(exc)
        assert "\n" not in text and "\r" not in text
        assert text.startswith(type(exc).__name__ + ":") and len(text) <= 600


# --------------------------------------------------------------------------- the GGUF header


def _header(version: int = 3, tensors: int = 272, keys: int = 33) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, tensors, keys)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "does not start with 'GGUF'"),
        (b"<html><body>404 Not Found</body></html>", "does not start with 'GGUF'"),
        (b"GGUF\x03\x00\x00\x00gar", "cut short"),
        (_header(version=99), "GGUF version 99"),
        (_header(tensors=0), "damaged GGUF header"),
        (_header(keys=1 << 40), "damaged GGUF header"),
    ],
)
def test_a_file_that_is_not_a_model_is_a_config_error(tmp_path: Path, data, message):
    path = tmp_path / "model.gguf"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match=message):
        check_gguf(path)


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=64).filter(lambda b: not b.startswith(b"GGUF")))
def test_random_bytes_are_never_taken_for_a_model(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("gguf") / "model.gguf"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match="not a GGUF model"):
        check_gguf(path)


def test_a_well_formed_header_passes(tmp_path: Path):
    path = tmp_path / "model.gguf"
    path.write_bytes(_header() + b"\0" * 64)
    check_gguf(path)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    answer=st.one_of(
        st.text(max_size=300),
        json_values.map(json.dumps),
        st.dictionaries(st.sampled_from(list(COORDINATION)), json_values).map(json.dumps),
        st.builds(lambda a, b: a + json.dumps(COORDINATION) + b, st.text(), st.text()),
    ),
    repair=st.booleans(),
)
def test_any_answer_is_read_or_refused_with_a_parse_error(answer, repair):
    try:
        out = StructuredAdapter(repair=repair).parse(HybridCoordinatorSignature, answer)
    except AdapterParseError as exc:
        assert "\n" not in describe(exc)
    else:
        assert set(out) == set(COORDINATION)
        assert all(isinstance(v, str) for v in out.values())

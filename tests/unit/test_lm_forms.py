"""The LM layer's pure parts: answer schemas and grammars, prompt fitting, advice trust, clauses.

No model runs here; the grammar tests compile with llama-cpp-python's own parser.
"""

from __future__ import annotations

import json
from typing import Literal

import dspy
import pytest
from dspy.utils.exceptions import AdapterParseError
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridmcp.policy.advice_trust import (
    MIN_SCORED,
    AdviceStats,
    accuracy,
    arbitration_truth,
    observe_advice,
    review_truth,
    trusted,
)
from hybridmcp.prompts.clauses import clauses, uncovered
from hybridmcp.prompts.grammar import TEXT_CHARS, answer_budget, output_schema, schema_grammar
from hybridmcp.prompts.plans import parse_plan, plan_schema
from hybridmcp.prompts.signatures import (
    CapabilityArbitratorSignature,
    HybridCoordinatorSignature,
    ResultSynchronizerSignature,
    TaskPlannerSignature,
)
from hybridmcp.prompts.structured import (
    MIN_INPUT_CHARS,
    PromptDoesNotFit,
    StructuredAdapter,
    fit_inputs,
)

ARBITRATOR = CapabilityArbitratorSignature.with_updated_fields(
    "allocation_decision", type_=Literal["internal", "external", "hybrid"]
)

# --------------------------------------------------------------------------- schema and grammar


def test_output_schema_has_every_output_field_in_order_and_enums_for_literals():
    schema = output_schema(ARBITRATOR, text_chars=100)
    assert list(schema["properties"]) == list(ARBITRATOR.output_fields)
    assert schema["required"] == list(ARBITRATOR.output_fields)
    assert schema["additionalProperties"] is False
    assert schema["properties"]["allocation_decision"]["enum"] == ["internal", "external", "hybrid"]
    assert schema["properties"]["risk_assessment"]["maxLength"] == 100


@pytest.mark.parametrize(
    "signature",
    [HybridCoordinatorSignature, ARBITRATOR, ResultSynchronizerSignature, TaskPlannerSignature],
    ids=lambda s: s.__name__,
)
def test_every_signature_compiles_to_a_grammar_llama_cpp_accepts(signature):
    llama_cpp = pytest.importorskip("llama_cpp")
    gbnf = schema_grammar(output_schema(signature))
    assert '[^"\\\\\\x00-\\x1f\\x7f]' in gbnf  # strings hold no raw control characters
    assert f"char{{1,{TEXT_CHARS}}}" in gbnf or "enum" in json.dumps(output_schema(signature))
    llama_cpp.LlamaGrammar.from_string(gbnf, verbose=False)  # raises on a bad grammar


def test_a_plan_grammar_binds_skill_names_and_their_argument_schemas():
    llama_cpp = pytest.importorskip("llama_cpp")
    skills = [
        {
            "name": "math.calculate",
            "description": "",
            "input_schema": {
                "type": "object",
                "properties": {"expression": {"type": "string", "pattern": "^[0-9+*/() -]+$"}},
                "required": ["expression"],
            },
        },
        {"name": "time.now", "description": "", "input_schema": {"type": "object"}},
    ]
    schema = output_schema(TaskPlannerSignature, fields={"requests": plan_schema(skills)})
    gbnf = schema_grammar(schema)
    assert '"\\"math.calculate\\""' in gbnf and '"\\"time.now\\""' in gbnf
    assert "pattern" not in json.dumps(plan_schema(skills))  # narrowed to what a grammar takes
    llama_cpp.LlamaGrammar.from_string(gbnf, verbose=False)


def test_the_answer_budget_follows_the_schema_not_a_fixed_number():
    small = answer_budget(output_schema(ARBITRATOR, text_chars=40))
    large = answer_budget(output_schema(ARBITRATOR, text_chars=400))
    assert 20 < small < large < 1500
    # Enough for every string at its longest at two characters a token.
    assert large >= 3 * 400 / 2


# --------------------------------------------------------------------------- the adapter's parse


def test_parse_accepts_control_characters_and_holds_the_answer_to_its_enum():
    adapter = StructuredAdapter()
    answer = {
        "allocation_decision": "external",
        "performance_prediction": "fast\nand cheap",
        "cost_optimization": "c",
        "risk_assessment": "r",
    }
    raw = json.dumps(answer).replace("\\n", "\n")  # a raw newline inside a string
    assert adapter.parse(ARBITRATOR, raw)["performance_prediction"] == "fast\nand cheap"
    with pytest.raises(AdapterParseError, match="allocation_decision"):
        adapter.parse(ARBITRATOR, json.dumps(answer | {"allocation_decision": "cloud"}))
    with pytest.raises(AdapterParseError, match="not a JSON object"):
        adapter.parse(ARBITRATOR, "I think internal is best.")


def test_a_cut_off_answer_is_closed_only_when_repair_is_allowed():
    cut = '{"allocation_decision": "internal", "performance_prediction": "p", "cost_optimization'
    text = cut + '": "c", "risk_assessment": "long text cut o'
    assert StructuredAdapter().parse(ARBITRATOR, text)["risk_assessment"] == "long text cut o"
    with pytest.raises(AdapterParseError):
        StructuredAdapter(repair=False).parse(ARBITRATOR, text)


# --------------------------------------------------------------------------- fitting the context


def chars(messages):
    """A stand-in tokenizer: one token per four characters, plus the template."""
    return sum(6 + len(m["content"]) // 4 for m in messages)


def render(signature):
    adapter = StructuredAdapter()
    return lambda inputs, demos: adapter.format(signature, demos, inputs)


def test_a_prompt_that_fits_is_left_alone():
    inputs = {"task": "what is 1+1", "skills": "math.calculate"}
    fitted, _, notes = fit_inputs(chars, render(TaskPlannerSignature), inputs, [], 100, 2048)
    assert fitted == inputs and notes == []


def test_demos_go_first_then_the_longest_input_is_cut_with_a_mark():
    demo = {"task": "t", "skills": "s", "requests": "[]", "rationale": "r"}
    inputs = {"task": "what is 1+1", "skills": "skill line\n" * 2000}
    fitted, demos, notes = fit_inputs(
        chars, render(TaskPlannerSignature), inputs, [demo], 300, 2048
    )
    assert demos == [] and notes[0].startswith("dropped")
    assert fitted["task"] == inputs["task"]
    assert "… [cut: kept" in fitted["skills"]
    assert chars(render(TaskPlannerSignature)(fitted, [])) + 300 <= 2048


def test_a_prompt_that_cannot_fit_is_refused_before_sending():
    inputs = {"task": "x" * 5000, "skills": "y" * 5000}
    with pytest.raises(PromptDoesNotFit, match="context window of 200"):
        fit_inputs(chars, render(TaskPlannerSignature), inputs, [], 150, 200)


@settings(max_examples=60, deadline=None)
@given(
    task=st.text(min_size=0, max_size=6000),
    skills=st.text(min_size=0, max_size=9000),
    budget=st.integers(min_value=16, max_value=900),
)
def test_fitted_prompts_always_fit_or_are_refused(task, skills, budget):
    inputs = {"task": task, "skills": skills}
    try:
        fitted, _, _ = fit_inputs(chars, render(TaskPlannerSignature), inputs, [], budget, 2048)
    except PromptDoesNotFit:
        return
    assert chars(render(TaskPlannerSignature)(fitted, [])) + budget <= 2048
    for name, text in fitted.items():
        assert text == inputs[name] or (
            text.startswith(inputs[name][:MIN_INPUT_CHARS]) and "… [cut: kept" in text
        )


# --------------------------------------------------------------------------- advice trust


def scored(advice_right, advice_n, rule_right, rule_n):
    return AdviceStats("arbitrator", "s", advice_right, advice_n, rule_right, rule_n)


@pytest.mark.parametrize(
    ("stats", "expected"),
    [
        (scored(0, 0, 0, 0), False),  # never scored
        (scored(MIN_SCORED - 1, MIN_SCORED - 1, 0, MIN_SCORED - 1), False),  # not enough yet
        (scored(5, 5, 1, 5), True),
        (scored(4, 5, 4, 5), False),  # a tie does not beat the rule
        (scored(3, 10, 9, 10), False),  # the 135M model's "always internal"
    ],
)
def test_advice_decides_only_while_it_beats_the_rule(stats, expected):
    assert trusted(stats) is expected


def test_observe_scores_both_picks_abstains_without_a_pick_and_counts_a_run_once():
    s = AdviceStats("arbitrator", "s")
    s = observe_advice(s, advice="internal", rule="external", truth={"external"}, run="a")
    assert (s.advice_right, s.advice_scored, s.rule_right, s.rule_scored) == (0, 1, 1, 1)
    s = observe_advice(s, advice="hybrid", rule="internal", truth={"internal"}, run="b")
    assert (s.advice_scored, s.rule_scored, s.rule_right) == (1, 2, 2)  # hybrid abstains
    s = observe_advice(s, advice="internal", rule="internal", truth=set(), run="c")
    assert s.advice_scored == 1  # nothing shown right: nothing scored
    already = AdviceStats("arbitrator", "s", runs=("d",))
    assert observe_advice(already, advice="internal", rule="x", truth={"internal"}, run="d") == (
        already
    )
    assert AdviceStats.from_dict(s.to_dict()) == s
    assert accuracy(0, 0) == 0.5


def attempt(provider, side, ok=True):
    return {"provider": provider, "side": side, "ok": ok}


def test_truth_of_a_result():
    both = [attempt("i", "internal"), attempt("e", "external")]
    assert arbitration_truth({"attempts": both, "agreement": True}) == {"internal", "external"}
    conflict = {"attempts": both, "agreement": False, "verdicts": {"i": False, "e": True}}
    assert arbitration_truth(conflict) == {"external"}
    assert arbitration_truth({"attempts": both[:1], "agreement": None}) == set()
    assert review_truth({"resolution": {"by": "human", "choice": "internal"}}) == {"internal"}
    assert review_truth({"resolution": {"by": "expert_arbitration", "choice": "internal"}}) == set()


# --------------------------------------------------------------------------- clauses of --ask


def test_a_two_part_question_has_two_clauses_and_a_half_plan_misses_one():
    question = "what time is it in Tokyo and what is 2+2*3"
    assert clauses(question) == ["what time is it in Tokyo", "what is 2+2*3"]
    tokyo = {"skill": "time.now", "args": {"timezone": "Asia/Tokyo"}}
    calc = {"skill": "math.calculate", "args": {"expression": "2+2*3"}}
    assert uncovered(question, [tokyo]) == ["what is 2+2*3"]
    assert uncovered(question, [calc, tokyo]) == []


def test_a_single_request_whose_argument_holds_every_clause_covers_them():
    text = "Summarize: the sky is blue and grass is green"
    request = {"skill": "text.summarize", "args": {"text": "the sky is blue and grass is green"}}
    assert len(clauses(text)) == 2 and uncovered(text, [request]) == []


@settings(max_examples=80, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=5))
def test_a_plan_quoting_each_clause_covers_the_question(parts):
    question = " and ".join(parts)
    requests = [{"skill": "echo", "args": {"text": clause}} for clause in clauses(question)]
    assert uncovered(question, requests) == []


def test_parse_plan_reads_the_adapters_json_text_of_a_plan():
    skills = [{"name": "echo", "input_schema": {"type": "object"}}]
    adapter = StructuredAdapter(fields={"requests": plan_schema(skills)})
    answer = {"requests": [{"id": "r1", "skill": "echo", "args": {}}], "rationale": "why"}
    parsed = adapter.parse(TaskPlannerSignature, json.dumps(answer))
    assert parse_plan(parsed["requests"], skills) == answer["requests"]
    assert isinstance(dspy.Prediction(**parsed).requests, str)


async def test_advice_earns_trust_from_runs_where_it_was_right_and_the_rule_was_not():
    from langgraph.store.memory import InMemoryStore

    from hybridmcp.prompts.trust import learn_advice, load_advice_stats

    store = InMemoryStore()
    both = [attempt("i", "internal"), attempt("e", "external")]
    result = {
        "id": "r1",
        "skill": "s",
        "attempts": both,
        "agreement": False,
        "verdicts": {"i": False, "e": True},  # a third provider sided with external
        "allocation_advice": {"decision": "external", "rule_choice": "internal", "used": False},
    }
    for run in range(MIN_SCORED):
        report = await learn_advice(store, {"r1": result}, f"run{run}")
        assert report["accuracy"]["arbitrator|s"]["trusted"] is (run + 1 >= MIN_SCORED)
    again = await learn_advice(store, {"r1": result}, f"run{MIN_SCORED - 1}")  # a resume
    assert again["accuracy"]["arbitrator|s"]["scored"] == MIN_SCORED
    (stats,) = (await load_advice_stats(store, [("arbitrator", "s")])).values()
    assert trusted(stats) and stats.rule_right == 0
    assert await learn_advice(store, {"r1": {"id": "r1", "skill": "s"}}, "x") == {}

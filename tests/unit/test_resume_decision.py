"""What a paused run accepts as its decision (``check_decision``), on any shape of mapping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langgraph.types import Interrupt

from hybridmcp.coordinator import check_decision
from hybridmcp.errors import TaskError


def review(*request_ids: str, interrupt_id: str = "q1") -> Interrupt:
    conflicts = [{"request_id": rid, "values": {}} for rid in request_ids]
    return Interrupt(value={"type": "conflict_review", "conflicts": conflicts}, id=interrupt_id)


def elicitation(interrupt_id: str) -> Interrupt:
    return Interrupt(value={"type": "elicitation", "requested_schema": {}}, id=interrupt_id)


ids = st.text(min_size=1, max_size=8)
choices = st.one_of(st.sampled_from(["internal", "external"]), st.integers(), st.none())


@given(st.lists(ids, min_size=1, max_size=5, unique=True), st.data())
def test_a_mapping_of_requests_under_review_is_an_answer(under, data) -> None:
    chosen = data.draw(st.lists(st.sampled_from(under), unique=True))
    check_decision({rid: data.draw(choices) for rid in chosen}, [review(*under)])


@given(st.lists(ids, min_size=1, max_size=5, unique=True), ids, st.data())
def test_a_mapping_naming_any_other_request_is_refused(under, other, data) -> None:
    if other in under:
        return
    chosen = data.draw(st.lists(st.sampled_from(under), unique=True))
    decision = {rid: "internal" for rid in chosen} | {other: "external"}
    with pytest.raises(TaskError, match="not under review"):
        check_decision(decision, [review(*under)])


@given(choices)
def test_a_bare_choice_answers_every_conflict(choice) -> None:
    check_decision(choice, [review("a", "b")])


def test_langgraphs_own_form_for_one_question_is_checked_inside() -> None:
    check_decision({"q1": {"a": "internal"}}, [review("a")])
    with pytest.raises(TaskError, match="'b', not under review"):
        check_decision({"q1": {"b": "internal"}}, [review("a")])


def test_an_elicitation_answer_is_any_object() -> None:
    check_decision({"name": "Ada"}, [elicitation("q1")])


def test_several_questions_need_a_mapping_of_their_ids() -> None:
    pending = [elicitation("q1"), review("now", interrupt_id="q2")]
    check_decision({"q1": {"name": "Ada"}, "q2": {"now": "external"}}, pending)
    with pytest.raises(TaskError, match=r"2 questions are pending: .*\(q1, q2\)"):
        check_decision({"name": "Ada"}, pending)
    with pytest.raises(TaskError, match="'later', not under review"):
        check_decision({"q2": {"later": "external"}}, pending)


def asking(schema: dict, interrupt_id: str = "q1") -> Interrupt:
    return Interrupt(value={"type": "elicitation", "requested_schema": schema}, id=interrupt_id)


NAME = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "default": 30}},
    "required": ["name"],
}


@pytest.mark.parametrize(
    "answer",
    [{"name": "Ada"}, {"name": "Ada", "age": 36}, "decline", "cancel", {"action": "cancel"}],
)
def test_an_answer_that_fits_the_servers_question_resumes(answer) -> None:
    check_decision(answer, [asking(NAME)])


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (
            {"nmae": "Ada"},
            r"answer to question q1: nmae: not a field of the question \(its fields: name, age\)",
        ),
        (  # the same answer in the accept form
            {"action": "accept", "content": {"nmae": "Ada"}},
            r"answer to question q1: nmae: not a field of the question",
        ),
        ({"age": 36}, r"answer to question q1: answer: 'name' is a required property"),
        (
            {"name": "Ada", "age": "old"},
            r"answer to question q1: age: 'old' is not of type 'integer'",
        ),
        (["Ada"], r"answer to question q1: an answer must be 'decline', 'cancel' or an object"),
    ],
)
def test_an_answer_that_does_not_fit_the_servers_question_is_refused(answer, says) -> None:
    with pytest.raises(TaskError, match=says):
        check_decision(answer, [asking(NAME)])


@given(st.dictionaries(st.text(min_size=1, max_size=6), st.text(max_size=4), min_size=1))
def test_a_field_the_question_does_not_have_is_named(extra) -> None:
    answer = {"name": "Ada"} | extra
    unknown = sorted(k for k in answer if k not in NAME["properties"])
    if not unknown:
        check_decision(answer, [asking(NAME)])
        return
    with pytest.raises(TaskError, match="not a field of the question"):
        check_decision(answer, [asking(NAME)])

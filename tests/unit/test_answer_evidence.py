"""``answer_for`` with a memo of the evidence read of each score gives the answer it gives
without one, for any scores and attempts (Hypothesis); a memo entry is used only for the very
score it was read of."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hybridmcp.policy.integration import Evidence, answer_for

PREDICTION = st.fixed_dictionaries(
    {},
    optional={
        "confirmations": st.integers(0, 50),
        "refutations": st.integers(0, 50),
        "quality": st.floats(0, 1),
    },
)
SCORE = st.fixed_dictionaries({}, optional={"prediction": PREDICTION, "quality": st.floats(0, 1)})
ATTEMPT = st.fixed_dictionaries(
    {
        "provider": st.sampled_from(["a", "b", "c"]),
        "side": st.sampled_from(["internal", "external"]),
        "value": st.integers() | st.text(max_size=3),
        "latency_ms": st.floats(0, 1e4),
    }
)


@settings(max_examples=300, deadline=None)
@given(st.lists(SCORE, min_size=1, max_size=4), st.lists(st.tuples(ATTEMPT, st.integers(0, 3))))
def test_a_memo_changes_no_answer(scores: list[dict[str, Any]], calls: list[Any]) -> None:
    memo: Evidence = {}
    for attempt, i in calls:
        score = scores[i % len(scores)]
        assert answer_for(attempt, score, memo) == answer_for(attempt, score)


def test_an_entry_is_used_only_for_its_own_score() -> None:
    attempt = {"provider": "a", "side": "internal", "value": 1, "latency_ms": 2.0}
    trusted = {"quality": 0.9, "prediction": {"confirmations": 9, "refutations": 0}}
    other = {"quality": 0.1, "prediction": {"confirmations": 0, "refutations": 9}}
    memo: Evidence = {id(other): (trusted, 0.9, 0.9, 9)}  # a stale entry under other's id
    answer = answer_for(attempt, other, memo)
    assert answer == answer_for(attempt, other)
    assert answer.confidence == 0.1 and answer.confirmations == 0
    assert memo[id(other)][0] is other  # read again, and kept for other

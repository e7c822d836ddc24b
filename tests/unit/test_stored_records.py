"""Learned-statistics records of another shape (another application's, a version whose fields
had other types, edited by hand) are refused in one line, never read as wrong numbers that
fail a run with a traceback further on."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridmcp.errors import StoredRecordError
from hybridmcp.policy.advice_trust import AdviceStats
from hybridmcp.policy.learning import (
    ProviderStats,
    draft_of,
    fold_agreement,
    fold_call,
    fold_censored,
    fold_learned,
    fold_pass,
    from_draft,
    predict,
    record_problem,
)
from hybridmcp.stats_store import stats_record

GOOD = ProviderStats(
    "mcp:s/t", "skill", calls=3, successes=2, ewma_latency_ms=12.5, ewma_latency_dev_ms=1.0,
    p95_latency_ms=14.5, success_rate=0.7, slow_rate=0.0, cross_validations=2, agreements=2,
    agreement_streak=2, cost_per_call=0.01, evidence=3.0, last_call_at=5.0, updated_at=5.0,
    recent_runs=("r@1",),
).to_dict() | {"recent_runs": ["r@1"]}  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=3),
    max_leaves=6,
)  # fmt: skip


def use(stats: ProviderStats) -> None:
    """What the product does with a record read back: predict from it, fold a run into it,
    show it."""
    predict(stats, prior_latency_ms=25.0, prior_quality=0.9, prior_cost=0.0)
    draft = draft_of(stats)
    fold_pass(draft, now=9.0, half_life=25.0)
    fold_call(draft, ok=True, latency_ms=3.0, cost=0.0, now=9.0, alpha=0.2, slow=False)
    fold_censored(draft, latency_ms=30.0, now=9.0, alpha=0.2, slow=True)
    fold_agreement(draft, agreed=False, now=9.0)
    fold_learned(draft, "run@9")
    folded = from_draft(draft)
    record = stats_record(folded)
    assert all(not isinstance(v, float) or math.isfinite(v) for v in record.values())
    f"{record['success_rate'] or 0:.0%} {record['ewma_latency_ms'] or 0:.1f}"


@given(
    field=st.sampled_from([*GOOD, "unknown"]),
    value=json_values,
    drop=st.booleans(),
)
def test_a_record_with_any_field_changed_is_read_whole_or_refused_in_one_line(field, value, drop):
    data: dict[str, Any] = dict(GOOD)
    if drop:
        data.pop(field, None)
    else:
        data[field] = value
    try:
        stats = ProviderStats.from_dict(data)
    except StoredRecordError as err:
        assert "\n" not in str(err) and len(str(err)) < 200, str(err)
        assert record_problem(data) == str(err)
        return
    use(stats)  # no TypeError, ValueError or OverflowError anywhere after


@given(json_values)
def test_a_record_that_is_not_an_object_is_refused(value):
    if isinstance(value, dict) and {"provider", "skill"} <= value.keys():
        return
    with pytest.raises(StoredRecordError):
        ProviderStats.from_dict(value)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"calls": "3"}, "has calls = '3', where a whole number >= 0 belongs"),
        ({"calls": True}, "has calls = True"),
        ({"calls": 2.5}, "has calls = 2.5"),
        ({"ewma_latency_ms": "fast"}, "has ewma_latency_ms = 'fast', where a finite number"),
        ({"evidence": None}, "has evidence = None, where a finite number belongs"),
        ({"p95_latency_ms": float("inf")}, "has p95_latency_ms = inf"),
        ({"recent_runs": 5}, "has recent_runs = 5, where a list of strings belongs"),
        ({"recent_runs": "r@1"}, "has recent_runs = 'r@1'"),
        ({"provider": None}, "has provider = None, where a string belongs"),
    ],
)
def test_what_is_wrong_is_named(change, said):
    with pytest.raises(StoredRecordError) as err:
        ProviderStats.from_dict(GOOD | change)
    assert said in str(err.value)


def test_records_of_older_versions_are_still_read():
    old = {"provider": "p", "skill": "s", "calls": 4, "successes": 4, "ewma_latency_ms": 3}
    stats = ProviderStats.from_dict(old | {"a_field_of_a_newer_version": [1, 2]})
    assert stats.evidence == 4.0 and stats.recent_runs == ()
    use(stats)


@given(field=st.sampled_from(["role", "skill", "advice_right", "rule_scored", "runs"]),
       value=json_values)  # fmt: skip
def test_an_advice_record_of_another_shape_is_refused_not_coerced(field, value):
    good = AdviceStats("arbitrator", "s", 3, 4, 2, 4, ("r",)).to_dict()
    try:
        stats = AdviceStats.from_dict(good | {field: value})
    except StoredRecordError as err:
        assert "\n" not in str(err)
        return
    assert stats.to_dict()[field] == (list(value) if field == "runs" else value)

"""The statistics fold: each observation folded into a draft in place gives, bit for bit, what
the one-object-per-observation update it replaced gave (kept here as the reference)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridmcp.errors import StoredRecordError
from hybridmcp.policy.learning import (
    TAIL_DEVIATIONS,
    ProviderStats,
    draft_of,
    fold_agreement,
    fold_call,
    fold_censored,
    fold_learned,
    fold_pass,
    fold_verdict,
    from_draft,
    mark_learned,
    observe_agreement,
    observe_call,
    observe_censored,
    observe_pass,
    observe_verdict,
)

# ---- the reference: each observation returns a new object (``dataclasses.replace``) ----------


def _blend(old: float | None, new: float, weight: float) -> float:
    return new if old is None else (1 - weight) * old + weight * new


def _latency(s: ProviderStats, latency_ms: float, weight: float) -> dict[str, float]:
    mean = _blend(s.ewma_latency_ms, latency_ms, weight)
    dev = (
        0.0
        if s.ewma_latency_ms is None
        else (1 - weight) * s.ewma_latency_dev_ms + weight * abs(latency_ms - mean)
    )
    return {
        "ewma_latency_ms": mean,
        "ewma_latency_dev_ms": dev,
        "p95_latency_ms": mean + TAIL_DEVIATIONS * dev,
    }


def ref_call(
    s: ProviderStats,
    *,
    ok: bool,
    latency_ms: float,
    cost: float,
    now: float,
    alpha: float,
    slow: bool,
) -> ProviderStats:
    w = max(alpha, 1.0 / (s.evidence + 1.0))
    return replace(
        s,
        **_latency(s, latency_ms, w),
        calls=s.calls + 1,
        successes=s.successes + int(ok),
        success_rate=_blend(s.success_rate, 1.0 if ok else 0.0, w),
        slow_rate=_blend(s.slow_rate, 1.0 if slow else 0.0, w),
        cost_per_call=_blend(s.cost_per_call, cost, w),
        evidence=s.evidence + 1.0,
        passed_over=0,
        last_call_at=now,
        updated_at=now,
    )


def ref_censored(
    s: ProviderStats, *, latency_ms: float, now: float, alpha: float, slow: bool
) -> ProviderStats:
    w = max(alpha, 1.0 / (s.evidence + 1.0))
    if slow:
        s = replace(
            s, slow_rate=_blend(s.slow_rate, 1.0, w), evidence=s.evidence + 1.0, passed_over=0
        )
    if s.ewma_latency_ms is None or latency_ms <= s.ewma_latency_ms:
        return replace(s, censored=s.censored + 1, last_call_at=now, updated_at=now)
    return replace(
        s, **_latency(s, latency_ms, w), censored=s.censored + 1, last_call_at=now, updated_at=now
    )


def ref_verdict(s: ProviderStats, *, confirmed: bool, now: float) -> ProviderStats:
    return replace(
        s,
        confirmations=s.confirmations + int(confirmed),
        refutations=s.refutations + int(not confirmed),
        updated_at=now,
    )


def ref_agreement(s: ProviderStats, *, agreed: bool, now: float) -> ProviderStats:
    return replace(
        s,
        cross_validations=s.cross_validations + 1,
        agreements=s.agreements + int(agreed),
        agreement_streak=s.agreement_streak + 1 if agreed else 0,
        updated_at=now,
    )


def ref_pass(s: ProviderStats, *, now: float, half_life: float) -> ProviderStats:
    return replace(
        s,
        passed_over=s.passed_over + 1,
        evidence=s.evidence * 0.5 ** (1.0 / half_life),
        updated_at=now,
    )


def ref_learned(s: ProviderStats, run: str, keep: int = 16) -> ProviderStats:
    return replace(s, recent_runs=(*s.recent_runs, run)[-keep:])


# ---- observations drawn at random ------------------------------------------------------------

latency = st.floats(0.0, 10_000.0, allow_nan=False)
now = st.floats(0.0, 2e9, allow_nan=False)
alpha = st.floats(0.01, 1.0)
observation = st.one_of(
    st.tuples(
        st.just("call"),
        st.fixed_dictionaries(
            {
                "ok": st.booleans(),
                "latency_ms": latency,
                "cost": st.floats(0.0, 5.0),
                "now": now,
                "alpha": alpha,
                "slow": st.booleans(),
            }
        ),
    ),
    st.tuples(
        st.just("censored"),
        st.fixed_dictionaries(
            {"latency_ms": latency, "now": now, "alpha": alpha, "slow": st.booleans()}
        ),
    ),
    st.tuples(st.just("verdict"), st.fixed_dictionaries({"confirmed": st.booleans(), "now": now})),
    st.tuples(st.just("agreement"), st.fixed_dictionaries({"agreed": st.booleans(), "now": now})),
    st.tuples(
        st.just("pass"), st.fixed_dictionaries({"now": now, "half_life": st.floats(0.5, 100.0)})
    ),
    st.tuples(st.just("learned"), st.fixed_dictionaries({"run": st.text(max_size=8)})),
)
REFERENCE: dict[str, Any] = {
    "call": ref_call,
    "censored": ref_censored,
    "verdict": ref_verdict,
    "agreement": ref_agreement,
    "pass": ref_pass,
    "learned": ref_learned,
}
OBSERVE: dict[str, Any] = {
    "call": observe_call,
    "censored": observe_censored,
    "verdict": observe_verdict,
    "agreement": observe_agreement,
    "pass": observe_pass,
    "learned": mark_learned,
}
FOLD: dict[str, Any] = {
    "call": fold_call,
    "censored": fold_censored,
    "verdict": fold_verdict,
    "agreement": fold_agreement,
    "pass": fold_pass,
    "learned": fold_learned,
}


def _apply(table: dict[str, Any], stats: ProviderStats, kind: str, kw: dict[str, Any]) -> Any:
    if kind == "learned":
        return table[kind](stats, kw["run"])
    return table[kind](stats, **kw)


@given(st.lists(observation, max_size=40))
def test_folding_a_draft_gives_exactly_what_a_new_object_per_observation_gave(observations):
    reference = observed = ProviderStats("p", "s")
    draft = draft_of(reference)
    for kind, kw in observations:
        reference = _apply(REFERENCE, reference, kind, kw)
        observed = _apply(OBSERVE, observed, kind, kw)
        _apply(FOLD, draft, kind, kw)  # type: ignore[arg-type]
    folded = from_draft(draft)
    # exact: same arithmetic in the same order, not merely close
    assert observed.__dict__ == reference.__dict__
    assert folded.__dict__ == reference.__dict__
    assert folded == reference and observed == reference


def test_a_draft_is_a_copy_the_statistics_it_came_from_are_left_alone():
    stats = ProviderStats("p", "s", calls=2, evidence=2.0, ewma_latency_ms=10.0)
    draft = draft_of(stats)
    fold_call(draft, ok=True, latency_ms=30.0, cost=0.0, now=1.0)
    assert stats.calls == 2 and stats.ewma_latency_ms == 10.0
    assert from_draft(draft).calls == 3


stored = st.fixed_dictionaries(
    {"provider": st.text(max_size=5), "skill": st.text(max_size=5)},
    optional={
        "calls": st.integers(0, 100),
        "ewma_latency_ms": st.none() | st.floats(0, 1e4),
        "evidence": st.floats(0, 100),
        "recent_runs": st.lists(st.text(max_size=3), max_size=3),
        "agreement_streak": st.integers(0, 9),
        "unknown_key": st.integers(),
    },
)


@given(stored)
def test_a_stored_record_reads_back_as_the_constructor_builds_it(data):
    values = {k: v for k, v in data.items() if k != "unknown_key"}
    values.setdefault("evidence", float(values.get("calls", 0)))
    values["recent_runs"] = tuple(values.get("recent_runs") or ())
    built = ProviderStats(**values)
    read = ProviderStats.from_dict(data)
    assert read == built
    assert list(read.to_dict().items()) == list(built.to_dict().items())  # same order too


def test_a_stored_record_without_its_provider_is_refused():
    with pytest.raises(StoredRecordError, match="has no provider"):
        ProviderStats.from_dict({"skill": "s"})

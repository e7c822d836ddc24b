"""Hedge plans, the hedge budget, degradation assessment and answer-shape checks: pure."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hybridmcp.config import (
    ComparatorConfig,
    DegradationConfig,
    HedgingConfig,
    ResilienceConfig,
)
from hybridmcp.policy.degradation import HEDGE_LOST, STRAGGLER, assess, plan_round, shape_error
from hybridmcp.policy.hedging import HedgeBudget, hedge_target, slow_threshold_ms, watch_plan


def prediction(latency=10.0, p95=20.0, n=20, success=1.0, cost=0.001, quality=0.9):
    return {
        "latency_ms": latency,
        "p95_latency_ms": p95,
        "observations": n,
        "success": success,
        "cost": cost,
        "quality": quality,
    }


def allocation(mode="external", n=20):
    return {
        "mode": mode,
        "providers": ["e"] if mode == "external" else ["i", "e"],
        "ranking": ["e", "i"],
        "scores": {
            "e": {"side": "external", "prediction": prediction(n=n)},
            "i": {"side": "internal", "prediction": prediction(1.0, 2.0, n, cost=0.0)},
        },
    }


def test_slow_threshold_is_the_larger_of_3_ewma_and_1_5_p95():
    cfg = DegradationConfig()
    assert slow_threshold_ms(prediction(10, 30), cfg) == 45.0
    assert slow_threshold_ms(prediction(10, 12), cfg) == 30.0
    assert slow_threshold_ms(prediction(n=2), cfg) is None  # too few observations


def test_hedge_goes_to_the_other_side_past_p95():
    target = hedge_target(allocation(), "e", HedgingConfig())
    assert target == {"provider": "i", "side": "internal", "after_ms": 20.0}
    assert hedge_target(allocation(n=3), "e", HedgingConfig()) is None
    assert hedge_target(allocation("hybrid"), "e", HedgingConfig()) is None
    assert hedge_target(allocation(), "e", HedgingConfig(enabled=False)) is None


def test_watch_plan_per_mode_and_round():
    cfg = ResilienceConfig()
    single = watch_plan(allocation(), "e", cfg)
    assert single["hedge"] and single["peer_side"] is None and single["slow_after_ms"] == 30.0
    hybrid = watch_plan(allocation("hybrid"), "e", cfg)
    assert hybrid["hedge"] is None and hybrid["peer_side"] == "internal"
    later = watch_plan(allocation(), "i", cfg, round_no=2)
    assert later["hedge"] is None and later["peer_side"] is None


def test_hedge_budget_bounds_extra_calls_to_the_ratio():
    budget = HedgeBudget(ratio=0.05, burst=10)
    hedges = 0
    for _ in range(1000):
        budget.earn()
        hedges += budget.spend()  # a provider so slow every request wants a hedge
    assert hedges == 50 and budget.spent == 50


def test_hedge_budget_caps_saved_tokens():
    budget = HedgeBudget(ratio=1.0, burst=2)
    for _ in range(10):
        budget.earn()
    assert budget.tokens == 2 and budget.spend() and budget.spend() and not budget.spend()


def test_assess_attempts():
    cfg, base = DegradationConfig(), prediction()
    assert assess({"ok": True, "latency_ms": 5.0}, base, cfg) == []
    assert assess({"ok": True, "latency_ms": 50.0}, base, cfg) == ["latency"]
    assert assess({"ok": False, "latency_ms": 50.0}, base, cfg) == ["error", "latency"]
    assert assess({"ok": False, "latency_ms": 25.0, "cancelled": HEDGE_LOST}, base, cfg) == []
    assert assess({"ok": False, "latency_ms": 1.0, "cancelled": STRAGGLER}, base, cfg) == [
        "latency"
    ]


def attempt(provider, side, ok, latency, rnd=1, **extra):
    return {
        "request_id": "r",
        "provider": provider,
        "side": side,
        "round": rnd,
        "ok": ok,
        "latency_ms": latency,
        "cost": 0.001 if side == "external" else 0.0,
        "error": None if ok else "boom",
        **extra,
    }


def test_slow_side_of_a_hybrid_request_is_reported_with_measured_impact():
    plan = plan_round(
        requests=["r"],
        allocations={"r": allocation("hybrid")},
        attempts=[
            attempt("i", "internal", True, 1.2),
            attempt("e", "external", False, 400.0, cancelled=STRAGGLER),
        ],
        round_no=1,
        max_rounds=3,
        sides={"e": "external", "i": "internal"},
        recent={"e": {"failure_rate": 0.4, "window_calls": 10}},
    )
    assert plan.settled == ["r"]
    (event,) = plan.events
    assert event["code"] == "EXTERNAL_DEGRADATION_DETECTED"
    assert event["reallocation_strategy"] == "SHIFT_TO_INTERNAL_PROCESSING"
    metrics = event["degradation_metrics"]
    assert metrics["response_time_increase"] == "+3900%"
    assert metrics["error_rate_increase"] == "+40%"
    assert metrics["quality_score_decrease"] == "40%"
    assert event["performance_impact"] | {} == {
        "basis": "measured",
        "served_by": "i",
        "latency_ms": 1.2,
        "baseline_latency_ms": 10.0,
        "latency_change": "-88%",
        "lost_ms": 400.0,
    }
    assert event["cost_impact"]["cost_change"] == "-100%"


def test_hedge_lost_in_normal_time_is_not_degradation():
    plan = plan_round(
        requests=["r"],
        allocations={"r": allocation()},
        attempts=[
            attempt("e", "external", False, 21.0, cancelled=HEDGE_LOST),
            attempt("i", "internal", True, 1.0),
        ],
        round_no=1,
        max_rounds=3,
        sides={"e": "external", "i": "internal"},
    )
    assert plan.settled == ["r"] and plan.events == []


def test_a_move_reports_the_expected_impact_and_a_passed_deadline_stops_it():
    args = dict(
        requests=["r"],
        allocations={"r": allocation()},
        attempts=[attempt("e", "external", False, 3.0)],
        round_no=1,
        max_rounds=3,
        sides={"e": "external", "i": "internal"},
    )
    plan = plan_round(**args)
    assert plan.moves[0]["provider"] == "i"
    assert plan.events[0]["performance_impact"]["basis"] == "expected"
    stopped = plan_round(**args, deadline_passed=True)
    assert not stopped.moves and "deadline passed" in stopped.failed["r"]
    assert stopped.events[0]["reallocation_strategy"] == "NONE_AVAILABLE"


def test_shape_error_from_the_comparator_keys():
    fields = ComparatorConfig(type="fields", fields={"value": ComparatorConfig(type="numeric")})
    assert shape_error(fields, {"value": 1}) is None
    assert "got str" in (shape_error(fields, '{"val') or "")
    assert "missing ['value']" in (shape_error(fields, {"status": "ok"}) or "")
    subset = ComparatorConfig(type="json_subset", fields=["words"])
    assert shape_error(subset, {"words": 3}) is None
    assert shape_error(ComparatorConfig(), "anything") is None


def test_a_critical_requests_slow_side_is_waited_for_not_cut():
    from hybridmcp.config import ResilienceConfig
    from hybridmcp.policy.hedging import watch_plan

    scores = {
        "i": {"side": "internal", "prediction": {}},
        "e": {"side": "external", "prediction": {}},
    }
    hybrid = {"mode": "hybrid", "scores": scores, "ranking": ["i", "e"]}
    assert watch_plan(hybrid, "e", ResilienceConfig())["peer_side"] == "internal"
    critical = hybrid | {"critical": True}
    assert watch_plan(critical, "e", ResilienceConfig())["peer_side"] is None


def _score(side: str, quality: float, confirmations: int = 0, refutations: int = 0) -> dict:
    return {
        "side": side,
        "quality": quality,
        "prediction": prediction(quality=quality)
        | {"confirmations": confirmations, "refutations": refutations},
    }


def _hybrid(internal: dict, external: dict) -> dict:
    return {
        "mode": "hybrid",
        "providers": ["i", "e"],
        "ranking": ["i", "e"],
        "scores": {"i": internal, "e": external},
    }


def test_the_side_a_conflict_would_keep_is_never_cut_as_a_straggler():
    cfg = ResilienceConfig()
    # the external side carries the strength the request needs (its quality's bonus)
    needs_external = _hybrid(_score("internal", 0.8), _score("external", 0.95))
    assert watch_plan(needs_external, "e", cfg)["kept"] is True
    assert "kept" not in watch_plan(needs_external, "i", cfg)
    assert watch_plan(needs_external, "i", cfg)["peer_side"] == "external"
    assert watch_plan(needs_external, "e", cfg)["peer_side"] == "internal"  # still paired
    # evidence of correctness outranks the a-priori confidence, as in a conflict
    proven = _hybrid(_score("internal", 0.8, confirmations=6), _score("external", 0.95, 0, 4))
    assert watch_plan(proven, "i", cfg)["kept"] is True
    assert "kept" not in watch_plan(proven, "e", cfg)
    # a tie keeps either answer: either may be cut
    tie = _hybrid(_score("internal", 0.9), _score("external", 0.9))
    assert not any("kept" in watch_plan(tie, p, cfg) for p in ("i", "e"))


@given(
    qualities=st.tuples(st.floats(0, 1), st.floats(0, 1)),
    evidence=st.tuples(*[st.integers(0, 12)] * 4),
)
def test_at_most_one_side_is_kept_and_a_cut_side_never_outranks_the_other(
    qualities: tuple[float, float], evidence: tuple[int, int, int, int]
) -> None:
    """Whatever the scores, settling on one answer never returns the answer a conflict
    would override: a side that may be cut loses (or ties) a conflict with the other."""
    from hybridmcp.policy.integration import kept_over

    internal = _score("internal", qualities[0], evidence[0], evidence[1])
    external = _score("external", qualities[1], evidence[2], evidence[3])
    plans = {p: watch_plan(_hybrid(internal, external), p, ResilienceConfig()) for p in "ie"}
    assert sum("kept" in plan for plan in plans.values()) <= 1
    for me, mine, theirs in (("i", internal, external), ("e", external, internal)):
        if "kept" not in plans[me]:
            assert not kept_over(mine, theirs)
        else:
            assert not kept_over(theirs, mine)


def test_a_call_is_not_hedged_to_a_side_lacking_a_strength_the_request_needs():
    needs_external = allocation() | {"strengths_needed": {"internal": [], "external": ["rt"]}}
    assert hedge_target(needs_external, "e", HedgingConfig()) is None
    both = allocation() | {"strengths_needed": {"internal": ["ctx"], "external": ["rt"]}}
    assert hedge_target(both, "e", HedgingConfig()) is not None
    needs_internal = allocation() | {"strengths_needed": {"internal": ["ctx"], "external": []}}
    assert hedge_target(needs_internal, "e", HedgingConfig()) is not None  # to the side with it

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from hybridmcp.config import DegradationConfig
from hybridmcp.policy.degradation import degradation_metrics, plan_round, run_calls

SIDES = {"i": "internal", "e": "external"}


def attempt(provider, ok, rnd=1, rid="r", error=None):
    return {
        "request_id": rid,
        "provider": provider,
        "side": SIDES[provider],
        "round": rnd,
        "ok": ok,
        "latency_ms": 3.0,
        "error": error,
    }


def plan(allocation, attempts, rnd=1, max_rounds=3):
    return plan_round(
        requests=["r"],
        allocations={"r": allocation},
        attempts=attempts,
        round_no=rnd,
        max_rounds=max_rounds,
        sides=SIDES,
    )


ALLOC = {"mode": "external", "providers": ["e"], "ranking": ["e", "i"], "scores": {}}


def test_success_settles():
    p = plan(ALLOC, [attempt("e", True)])
    assert p.settled == ["r"] and not p.moves and not p.failed


def test_external_failure_moves_internal_with_degradation_event():
    p = plan(ALLOC, [attempt("e", False, error="boom")])
    assert p.moves == [{"request_id": "r", "provider": "i", "side": "internal", "reason": "boom"}]
    (event,) = p.events
    assert event["code"] == "EXTERNAL_DEGRADATION_DETECTED"
    assert event["reallocation_strategy"] == "SHIFT_TO_INTERNAL_PROCESSING"


def test_nothing_left_fails_with_the_errors():
    p = plan(ALLOC, [attempt("e", False, error="boom"), attempt("i", False, 2, error="bad")], rnd=2)
    assert "every provider failed" in p.failed["r"] and "boom" in p.failed["r"]


def test_rounds_are_bounded():
    p = plan(ALLOC, [attempt("e", False, error="boom")], rnd=1, max_rounds=1)
    assert "stopped after 1 rounds" in p.failed["r"]


def test_hybrid_with_one_side_down_settles_on_the_other():
    alloc = {"mode": "hybrid", "providers": ["i", "e"], "ranking": ["i", "e"], "scores": {}}
    p = plan(alloc, [attempt("i", True), attempt("e", False, error="timeout")])
    assert p.settled == ["r"]
    assert p.events[0]["reallocation_strategy"] == "SHIFT_TO_INTERNAL_PROCESSING"


def test_hybrid_losing_both_sides_is_a_coordination_failure():
    alloc = {"mode": "hybrid", "providers": ["i", "e"], "ranking": ["i", "e"], "scores": {}}
    p = plan(alloc, [attempt("i", False, error="x"), attempt("e", False, error="y")])
    codes = [e["code"] for e in p.events]
    assert "COORDINATION_FAILURE" in codes
    assert (
        next(e for e in p.events if e["code"] == "COORDINATION_FAILURE")["fallback_strategy"]
        == "SEQUENTIAL_PROCESSING_WITH_BEST_AVAILABLE"
    )
    assert "r" in p.failed


HYBRID3 = {"mode": "hybrid", "providers": ["i", "e"], "ranking": ["i", "e", "e2"], "scores": {}}


def test_a_disputed_request_asks_a_third_provider():
    sides = {**SIDES, "e2": "external"}
    attempts = [attempt("i", True), attempt("e", True)]
    p = plan_round(
        requests=["r"],
        allocations={"r": HYBRID3},
        attempts=attempts,
        round_no=1,
        max_rounds=3,
        sides=sides,
        disputed={"r"},
    )
    assert [m["provider"] for m in p.moves] == ["e2"] and not p.settled
    assert p.events[0]["code"] == "TIE_BREAK"


def test_a_disputed_request_settles_when_no_third_provider_is_left():
    attempts = [attempt("i", True), attempt("e", True)]
    alloc = {**HYBRID3, "ranking": ["i", "e"]}
    p = plan_round(
        requests=["r"],
        allocations={"r": alloc},
        attempts=attempts,
        round_no=1,
        max_rounds=3,
        sides=SIDES,
        disputed={"r"},
    )
    assert p.settled == ["r"] and not p.moves


def test_a_request_error_ends_the_request_without_a_move():
    bad = attempt("e", False, error="rejected") | {"error_kind": "request"}
    p = plan(ALLOC, [bad])
    assert not p.moves and "request error" in p.failed["r"]
    assert [e["code"] for e in p.events] == ["REQUEST_ERROR"]


def test_calls_never_sent_blame_no_side():
    """Still queued when the caller's own deadline came: no degradation is said of either side,
    no coordination failure, and the failure says nothing was sent."""
    hybrid = {"mode": "hybrid", "providers": ["i", "e"], "ranking": ["i", "e"], "scores": {}}
    queued = [
        attempt(p, False, error="the run's deadline came before the call was sent")
        | {"sent": False, "error_kind": "queued"}
        for p in ("i", "e")
    ]
    p = plan_round(
        requests=["r"],
        allocations={"r": hybrid},
        attempts=queued,
        round_no=1,
        max_rounds=3,
        sides=SIDES,
        deadline_passed=True,
    )
    assert p.events == [] and p.moves == []
    assert "before any call was sent" in p.failed["r"]


def test_a_sent_failure_beside_a_queued_one_still_counts():
    queued = attempt("i", False, error="queued") | {"sent": False, "error_kind": "queued"}
    failed = attempt("e", False, error="boom") | {"sent": True}
    p = plan(ALLOC, [queued, failed])
    assert [e["degradation_metrics"]["provider"] for e in p.events] == ["e"]


# -- a run's error rates are counted once per round --------------------------------------------

_attempt = st.fixed_dictionaries(
    {
        "provider": st.sampled_from(["a", "b", "c"]),
        "ok": st.booleans(),
    },
    optional={"cancelled": st.sampled_from([None, "hedge_lost", "straggler_cut"])},
)


@given(attempts=st.lists(_attempt, max_size=30), provider=st.sampled_from(["a", "b", "c", "z"]))
def test_error_rates_counted_once_per_round_are_those_of_a_scan_per_event(
    attempts: list[dict[str, Any]], provider: str
) -> None:
    """plan_round counts each provider's calls once for all its events (a scan of the run's
    attempts per event is quadratic when a large run fails); the metrics are the same."""
    attempt = {"provider": provider, "ok": False, "latency_ms": 12.0, "side": "internal"}
    cfg = DegradationConfig()
    counts = run_calls(attempts)
    assert degradation_metrics(attempt, attempts, None, cfg, None, counts) == (
        degradation_metrics(attempt, attempts, None, cfg)
    )
    mine = [a for a in attempts if a["provider"] == provider and not a.get("cancelled")]
    assert counts.get(provider, (0, 0)) == (sum(not a["ok"] for a in mine), len(mine))

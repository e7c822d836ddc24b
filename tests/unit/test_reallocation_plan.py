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


def _reference_plan_request(rnd, plan_, rid, allocation, tried):
    """``_plan_request`` as it decided before answered requests took their short path."""
    from hybridmcp.policy import degradation as d

    this_round = [a for a in tried if a.get("round") == rnd.round_no]
    ok = [a for a in tried if a["ok"]]
    failed_now = [a for a in this_round if not a["ok"]]
    ranking = list(allocation.get("ranking", ()))
    used = {a["provider"] for a in tried}
    remaining = [p for p in ranking if p not in used]
    can_move = bool(remaining) and rnd.round_no < rnd.max_rounds and not rnd.deadline_passed
    if allocation.get("mode") == "none":
        plan_.failed[rid] = allocation.get("rule", "no eligible provider")
    elif ok and rid in rnd.disputed and can_move:
        d._tie_break(rnd, plan_, rid, ok, remaining[0])
    elif not ok and failed_now and rid in rnd.faults:
        why = "; ".join(f"{a['provider']}: {a.get('error')}" for a in failed_now)
        plan_.failed[rid] = f"request error (the request itself is wrong): {why}"
        plan_.events.append({"code": d.EventCode.REQUEST_ERROR, "request_id": rid, "errors": why})
    elif ok:
        d._settle(rnd, plan_, rid, allocation, this_round, served=ok[0])
    elif failed_now:
        d._after_failure(rnd, plan_, rid, allocation, tried, failed_now, remaining, can_move)


ROUND_ATTEMPTS = st.lists(
    st.builds(
        lambda p, ok, rnd, rid, kind: (
            attempt(p, ok, rnd, rid, None if ok else "boom")
            | ({"error_kind": kind, "tool_error": True} if kind else {})
        ),
        st.sampled_from(["i", "e"]),
        st.booleans(),
        st.integers(1, 3),
        st.sampled_from(["r0", "r1", "r2"]),
        st.sampled_from([None, "request", "provider"]),
    ),
    max_size=8,
)
ALLOCATIONS = st.sampled_from(
    [
        ALLOC,
        {"mode": "internal", "providers": ["i"], "ranking": ["i", "e"], "scores": {}},
        {"mode": "hybrid", "providers": ["i", "e"], "ranking": ["i", "e"], "scores": {}},
        {"mode": "none", "providers": [], "ranking": [], "scores": {}, "rule": "nothing"},
        {"mode": "external", "providers": ["e"], "ranking": ["e"], "scores": {}},
    ]
)


@given(
    ROUND_ATTEMPTS,
    st.dictionaries(st.sampled_from(["r0", "r1", "r2"]), ALLOCATIONS),
    st.integers(1, 3),
    st.integers(1, 3),
    st.sets(st.sampled_from(["r0", "r1", "r2"])),
    st.booleans(),
)
def test_every_request_is_planned_as_before_the_short_path(
    attempts, allocations, round_no, max_rounds, disputed, deadline_passed
):
    from hybridmcp.policy import degradation as d

    requests = ["r0", "r1", "r2"]
    kwargs: dict[str, Any] = dict(
        requests=requests,
        allocations=allocations,
        attempts=attempts,
        round_no=round_no,
        max_rounds=max_rounds,
        sides=SIDES,
        disputed=disputed,
        deadline_passed=deadline_passed,
    )
    now = plan_round(**kwargs)
    before = d._plan_request
    d._plan_request = _reference_plan_request
    try:
        reference = plan_round(**kwargs)
    finally:
        d._plan_request = before
    assert now == reference


def test_a_side_that_rejected_the_request_is_not_degraded_when_the_other_answered():
    """A hybrid request: the server rejects the input (``MCP error -32602``, a request error)
    while the internal side answers it. The request settles on the answer; the server is not
    reported degraded (it was, with an error rate counting the rejection), nor does the
    rejection count among the run's failed calls of that server."""
    hybrid = {"mode": "hybrid", "providers": ["i", "e"], "ranking": ["i", "e"], "scores": {}}
    rejected = {**attempt("e", False, error="rejected the request"), "error_kind": "request"}
    p = plan(hybrid, [attempt("i", True), rejected])
    assert p.settled == ["r"] and not p.moves and not p.failed
    assert p.events == []
    assert run_calls([attempt("i", True), rejected, attempt("e", False, error="boom")]) == {
        "i": (0, 1),
        "e": (1, 2),
    }


def test_an_answer_too_large_for_the_coordinator_moves_without_blaming_the_server():
    big = {
        **attempt("e", False, error="answer of 2000000 bytes exceeds ..."),
        "error_kind": "too_large",
    }
    p = plan(ALLOC, [big])
    assert [m["provider"] for m in p.moves] == ["i"]
    assert p.events == []
    assert run_calls([big]) == {"e": (0, 1)}


def test_a_call_the_coordinator_never_made_or_cut_itself_is_no_degradation():
    """A hybrid request answered by the internal side, its external call still queued at the
    run's deadline, refused by the gate (budget, circuit, privacy) or cut by the run's
    deadline: nothing is said against the server (each was EXTERNAL_DEGRADATION_DETECTED,
    ``detected_by: error``: 300 of them for one run of 300 requests with a deadline)."""
    hybrid = {"mode": "hybrid", "providers": ["i", "e"], "ranking": ["i", "e"], "scores": {}}
    never = [
        {**attempt("e", False, error="queued"), "error_kind": "queued", "sent": False},
        {**attempt("e", False, error="budget"), "error_kind": "refused", "sent": False},
        {**attempt("e", False, error="open"), "circuit_open": True, "sent": False},
        {**attempt("e", False, error="cancelled: the run's deadline"), "censored": "run deadline"},
    ]
    for a in never:
        p = plan(hybrid, [attempt("i", True), a])
        assert p.settled == ["r"] and p.events == [], a
        assert run_calls([a]).get("e", (0, 0)) == (0, 0), a  # no failure, and no call


def test_a_request_error_names_each_provider_once():
    """The gate's messages begin with the provider's id; the request's error and its
    ``REQUEST_ERROR`` event name it once, as they do an error that does not."""
    own = {
        **attempt("e", False, error="e rejected the request: Access denied"),
        "error_kind": "request",
    }
    bare = {**attempt("i", False, error="bad input"), "error_kind": "request"}
    alloc = {"mode": "hybrid", "providers": ["i", "e"], "ranking": ["i", "e"], "scores": {}}
    p = plan(alloc, [own, bare])
    why = "e rejected the request: Access denied; i: bad input"
    assert p.failed == {"r": f"request error (the request itself is wrong): {why}"}
    assert p.events == [{"code": "REQUEST_ERROR", "request_id": "r", "errors": why}]
    # an error that merely starts with the id's letters is still named
    other = {**attempt("e", False, error="effect refused"), "error_kind": "request"}
    assert "e: effect refused" in plan(ALLOC, [other]).failed["r"]

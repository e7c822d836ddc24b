"""The circuit breaker state machine: pure, driven by outcomes and ``now``."""

from __future__ import annotations

import pytest

from hybridmcp.config import BreakerConfig
from hybridmcp.policy.breaker import BreakerBoard, CircuitBreaker

P = "mcp:srv/tool"


def breaker(**cfg: object) -> CircuitBreaker:
    return CircuitBreaker(P, BreakerConfig(**cfg))  # type: ignore[arg-type]


def test_consecutive_failures_open_it():
    b = breaker(consecutive_failures=3)
    assert b.record(False, 0.0) is None
    assert b.record(False, 1.0) is None
    t = b.record(False, 2.0)
    assert t is not None and t.to_state == "open" and "3 failed calls in a row" in t.reason
    assert b.allow(2.5) == (False, None)


def test_a_success_resets_the_run_of_failures():
    b = breaker(consecutive_failures=3, minimum_calls=100)
    for ok in (False, False, True, False, False):
        assert b.record(ok, 0.0) is None
    assert b.current(0.0) == "closed"


def test_failure_rate_needs_minimum_calls():
    b = breaker(consecutive_failures=100, minimum_calls=4, failure_rate_threshold=0.5)
    assert b.record(True, 0) is None
    assert b.record(False, 0) is None
    assert b.record(True, 0) is None
    t = b.record(False, 0)  # 4 calls, 50% failed
    assert t is not None and t.failure_rate == 0.5 and t.window_calls == 4


def test_a_call_answered_in_time_never_opens_the_circuit():
    """A slow start (or a warm-up after recovery), then healthy: the call that reaches the
    minimum with the slow ones still at the rate shows the provider well, and does not open
    it (resilience4j's would); the next slow call, with the rate still there, does."""
    b = breaker(consecutive_failures=100, minimum_calls=10, failure_rate_threshold=0.5)
    for _ in range(5):
        assert b.record(True, 0, slow=True) is None
    for _ in range(5):
        assert b.record(True, 0) is None  # 10 calls, 50% slow: healthy now
    assert b.state == "closed"
    t = b.record(True, 0, slow=True)  # 11 calls, 6 slow
    assert t is not None and "slow-call rate" in t.reason
    c = breaker(consecutive_failures=100, minimum_calls=4, failure_rate_threshold=0.5)
    for ok in (False, False, True, True, True):
        assert c.record(ok, 0) is None
    assert c.state == "closed"


def test_slow_calls_open_it_like_failures():
    b = breaker(consecutive_failures=100, minimum_calls=2)
    assert b.record(True, 0, slow=True) is None
    t = b.record(True, 0, slow=True)
    assert t is not None and "slow-call rate" in t.reason and t.slow_rate == 1.0


def test_window_is_bounded():
    b = breaker(window_size=3, consecutive_failures=100, minimum_calls=100)
    for _ in range(10):
        b.record(True, 0)
    assert len(b.window) == 3


def test_open_then_half_open_after_the_period_then_closed_by_trials():
    b = breaker(consecutive_failures=1, open_ms=1000, half_open_calls=2)
    b.record(False, 10.0)
    assert b.current(10.5) == "open" and b.allow(10.5)[0] is False
    allowed, moved = b.allow(11.0)
    assert allowed and moved is not None and moved.to_state == "half_open"
    assert b.allow(11.0)[0] is True
    assert b.allow(11.0)[0] is False  # only two trials at once
    assert b.record(True, 11.1) is None
    closed = b.record(True, 11.2)
    assert closed is not None and closed.to_state == "closed"
    assert b.allow(11.3) == (True, None)


def test_failed_trial_reopens_for_twice_as_long_up_to_the_maximum():
    b = breaker(consecutive_failures=1, open_ms=1000, max_open_ms=3000)
    t1 = b.record(False, 0.0)
    assert t1 is not None and t1.open_for_ms == 1000
    assert b.allow(1.0)[0]
    t2 = b.record(False, 1.0)
    assert t2 is not None and t2.from_state == "half_open" and t2.open_for_ms == 2000
    assert b.allow(3.0)[0]
    t3 = b.record(False, 3.0)
    assert t3 is not None and t3.open_for_ms == 3000


def test_cancelled_trial_frees_its_slot():
    b = breaker(consecutive_failures=1, open_ms=1000, half_open_calls=1)
    b.record(False, 0.0)
    assert b.allow(1.0)[0] and not b.allow(1.0)[0]
    b.release(1.0)
    assert b.allow(1.0)[0]


def test_late_outcome_while_open_is_ignored():
    b = breaker(consecutive_failures=1, open_ms=1000)
    b.record(False, 0.0)
    assert b.record(False, 0.1) is None and b.current(0.1) == "open"


def test_board_reports_transitions_once_and_blocks_arbitration():
    board = BreakerBoard(BreakerConfig(consecutive_failures=2, open_ms=5000))
    assert board.allow(P, 0.0)
    board.record(P, False, 0.0)
    board.record(P, False, 0.1)
    assert "circuit breaker open" in (board.blocked(P, 1.0) or "")
    assert board.blocked("other", 1.0) is None
    (t,) = board.take_transitions(P)
    assert t.to_event()["code"] == "CIRCUIT_OPENED"
    assert board.take_transitions(P) == []
    assert board.snapshot(1.0)[P]["state"] == "open"
    assert board.blocked(P, 6.0) is None  # half-open: trials may go


def test_disabled_board_never_trips():
    board = BreakerBoard(BreakerConfig(enabled=False, consecutive_failures=1))
    board.record(P, False, 0.0)
    assert board.allow(P, 0.0) and board.blocked(P, 0.0) is None


@pytest.mark.parametrize("bad", [{"failure_rate_threshold": 0}, {"half_open_calls": 0}])
def test_config_refuses_nonsense(bad):
    with pytest.raises(ValueError):
        BreakerConfig(**bad)


def test_a_burst_of_slow_calls_is_not_a_run_of_failures():
    """Slow calls open the breaker only as a rate over the window, never as a run: many runs
    sharing one server make slow calls come in bursts."""
    b = breaker(consecutive_failures=5, minimum_calls=10, window_size=20)
    for _ in range(10):
        assert b.record(True, 0) is None
    for _ in range(6):
        assert b.record(True, 0, slow=True) is None  # 6 slow in a row: 6/16 = 38% < 50%
    assert b.state == "closed"

"""The provider's time: from the send, less the coordinator's queue and the loop's lateness."""

from __future__ import annotations

import asyncio
import itertools
import time

from hypothesis import example, given, settings
from hypothesis import strategies as st

from hybridmcp.capabilities.timing import LAG_INTERVAL_S, RECENT_WAKES, CallTiming, LoopLag


async def test_queue_time_is_apart_from_latency() -> None:
    timing = CallTiming()
    await asyncio.sleep(0.05)  # waiting for a slot
    timing.mark_sent()
    await asyncio.sleep(0.02)
    timing.mark_ended()
    assert timing.queue_ms >= 45
    assert 15 <= timing.latency_ms() < 45


async def test_a_busy_event_loop_is_not_the_providers_latency() -> None:
    lag = LoopLag()
    lag.ensure_running()
    await asyncio.sleep(0.05)
    timing = CallTiming(loop_lag=lag)
    timing.mark_sent()
    time.sleep(0.3)  # noqa: ASYNC251 - the loop is busy elsewhere: the answer waits
    timing.mark_ended()
    await lag.close()
    assert timing.latency_ms() < 100  # not the 300 ms the loop spent elsewhere


async def test_a_never_sent_call_has_no_latency() -> None:
    timing = CallTiming()
    timing.mark_ended()
    assert timing.latency_ms() == 0.0 and timing.sent_at is None


# A loop simulated turn by turn on a controlled clock: the probe and a call as the loop runs them.
I_MS = LAG_INTERVAL_S * 1000
slice_ms = st.floats(min_value=0.3, max_value=8.0)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _turn_ends(turns_ms: list[float]) -> list[float]:
    return list(itertools.accumulate(turns_ms))


def _cycled(pattern: list[float], until_ms: float) -> list[float]:
    turns: list[float] = []
    for t in itertools.cycle(pattern):
        if sum(turns) >= until_ms:
            return turns
        turns.append(t)
    raise AssertionError  # unreachable: the pattern is not empty


def _measure(
    turns_ms: list[float], send_ms: float, answer_ms: float, step: int, hops: int, probe_first: bool
) -> tuple[float, float]:
    """One call on a loop whose turns last ``turns_ms`` back to back: the probe runs ``step``
    turn ends after it is due, the call is sent at the first turn end from ``send_ms``, its
    answer arrives ``answer_ms`` later and is noticed ``hops`` turn ends after arriving. Returns
    the measured latency and the wall time from sending to noticing."""
    clock = _Clock()
    lag = LoopLag(clock=clock)
    timing = CallTiming(queued_at=0.0, loop_lag=lag, clock=clock)
    lag._armed()
    due, probe_ends, arrives, answer_ends = I_MS, 0, None, 0
    for end in _turn_ends(turns_ms):
        clock.now = end / 1000

        def probe(end: float = end) -> None:
            nonlocal due, probe_ends
            if end >= due:
                probe_ends += 1
                if probe_ends == step:
                    lag._woke()
                    lag._armed()
                    due, probe_ends = end + I_MS, 0

        if probe_first:
            probe()
        if arrives is None and end >= send_ms:
            timing.mark_sent()
            arrives = end + answer_ms
        elif arrives is not None and end >= arrives:
            answer_ends += 1
            if answer_ends == hops:
                timing.mark_ended()
                assert timing.sent_at is not None
                return timing.latency_ms(), end - timing.sent_at * 1000
        if not probe_first:
            probe()
    raise AssertionError("the turns ended before the answer was noticed")


@given(
    pattern=st.lists(slice_ms, min_size=1, max_size=5),
    answer_ms=st.floats(min_value=300, max_value=1500),
    early_block=st.one_of(st.none(), st.tuples(st.floats(20, 150), st.floats(0, 1))),
    step=st.integers(1, 2),
    hops=st.integers(1, 3),
    probe_first=st.booleans(),
)
@example(pattern=[5.0], answer_ms=500, early_block=None, step=2, hops=2, probe_first=True)
@settings(max_examples=200, deadline=None)
def test_loop_lateness_while_the_provider_works_is_the_providers_time(
    pattern: list[float],
    answer_ms: float,
    early_block: tuple[float, float] | None,
    step: int,
    hops: int,
    probe_first: bool,
) -> None:
    """The loop busy in short turns all through the call (other runs), perhaps with one long
    turn well before the answer came: the answer is noticed within a few turns, so the provider
    is measured at its own time, less at most the lateness of the loop's last turns."""
    send_ms = 100.0
    turns = _cycled(pattern, send_ms + 20)
    if early_block is not None:  # ends at least 100 ms before the answer arrives
        block_ms, where = early_block
        turns += [*_cycled(pattern, where * (answer_ms - block_ms - 130)), block_ms]
    turns += _cycled(pattern, answer_ms + 200)
    measured, wall = _measure(turns, send_ms, answer_ms, step, hops, probe_first)
    last_turns = (RECENT_WAKES + 1) * step * max(pattern)
    assert answer_ms - last_turns <= measured <= wall + 1e-6


@given(
    pattern=st.lists(slice_ms, min_size=1, max_size=5),
    before_ms=st.floats(min_value=50, max_value=800),
    block_ms=st.floats(min_value=30, max_value=800),
    arrives_in_block=st.floats(min_value=0.01, max_value=0.99),
    step=st.integers(1, 2),
    hops=st.integers(1, 3),
    probe_first=st.booleans(),
)
@settings(max_examples=200, deadline=None)
def test_an_answer_held_behind_a_long_turn_at_the_end_is_not_the_providers_time(
    pattern: list[float],
    before_ms: float,
    block_ms: float,
    arrives_in_block: float,
    step: int,
    hops: int,
    probe_first: bool,
) -> None:
    """The answer arrives while the loop is in one long turn (many runs at once on one
    server) and is noticed only after it: that turn is left out of the provider's time, which
    keeps at most one probe interval and the few short turns after it."""
    send_ms = 100.0
    head = _cycled(pattern, send_ms + before_ms)
    turns = [*head, block_ms, *_cycled(pattern, 300)]
    ends = _turn_ends(turns)
    sent = next(end for end in ends if end >= send_ms)
    arrival = sum(head) + arrives_in_block * block_ms
    measured, wall = _measure(turns, send_ms, arrival - sent, step, hops, probe_first)
    assert measured <= arrival - sent + I_MS + hops * max(pattern)
    assert wall >= block_ms * (1 - arrives_in_block)

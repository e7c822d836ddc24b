"""The cost of joining a call's values with what its run sent before (``policy/privacy/sent.py``).

    python -m bench.privacy_sent            # 30 runs of 10 time-zone calls, 6 rounds

Times :meth:`ScanningPolicy.decide` over the calls of runs, with the memory of what each run
sent each server and with that memory turned off, side by side in one process (rounds
alternate which goes first). "First sight" clears every detection cache before each call;
"seen before" warms them once and times fresh policies. Prints the ratio with / without.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from typing import Any

from bench.privacy_scan import _typical
from hybridmcp.capabilities.gate import CallContext, ScanningPolicy
from hybridmcp.capabilities.registry import Provider
from hybridmcp.policy import privacy
from hybridmcp.policy.privacy import detection, scanning
from hybridmcp.policy.privacy.sent import SentPieces


class _NoMemory(SentPieces):
    def completed(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []

    def record(self, *args: Any, **kwargs: Any) -> None:
        return None


PROVIDER = Provider(
    id="tz",
    skill="tz",
    side="external",
    quality=1.0,
    expected_latency_ms=1.0,
    cost_per_call=0.0,
    clearance=privacy.Sensitivity.public,
    timeout_ms=1000.0,
    server="tz",
    tool="convert",
)


def _go(policy: ScanningPolicy, runs: list[list[dict[str, Any]]], first: bool) -> float:
    spent = 0.0
    for n, run in enumerate(runs):
        for i, args in enumerate(run):
            if first:
                detection._detect_cached.cache_clear()
                scanning._CLEAN_WINDOWS.clear()
                scanning._CLEAN_COMPLETIONS.clear()
                policy._clean._kept.clear()
            ctx = CallContext(
                run_id=f"run{n}", request_id=f"r{i}", skill="tz", idempotency_key=f"k{n}-{i}"
            )
            started = time.perf_counter()
            policy.decide(PROVIDER, args, ctx)
            spent += time.perf_counter() - started
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=6)
    opts = parser.parse_args()
    privacy.engines_ready()
    rng = random.Random(3)
    runs = [_typical(rng, opts.calls) for _ in range(opts.runs)]
    calls = opts.runs * opts.calls * opts.rounds
    for first in (True, False):
        with_memory = without = 0.0
        for n in range(opts.rounds):
            on, off = ScanningPolicy(), ScanningPolicy()
            off._sent = _NoMemory()
            if not first:
                _go(ScanningPolicy(), runs, False)  # warm the caches both share
            gc.collect()
            if n % 2:
                with_memory += _go(on, runs, first)
                without += _go(off, runs, first)
            else:
                without += _go(off, runs, first)
                with_memory += _go(on, runs, first)
        label = "first sight" if first else "seen before"
        print(
            f"{label}: with memory {with_memory / calls * 1e6:.1f} us/call, without "
            f"{without / calls * 1e6:.1f} us/call, with/without {with_memory / without:.3f}"
        )


if __name__ == "__main__":
    main()

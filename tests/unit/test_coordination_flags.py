"""coordination_config's switches, each read where it acts (pure parts)."""

from __future__ import annotations

from hybridmcp.config import ResilienceConfig
from hybridmcp.policy.hedging import watch_plan

ALLOCATION = {
    "mode": "hybrid",
    "critical": False,
    "ranking": ["e", "i"],
    "providers": ["e", "i"],
    "scores": {
        "e": {
            "side": "external",
            "prediction": {"latency_ms": 20.0, "p95_latency_ms": 40.0, "observations": 50},
        },
        "i": {
            "side": "internal",
            "prediction": {"latency_ms": 1.0, "p95_latency_ms": 2.0, "observations": 50},
        },
    },
}


def test_monitoring_and_parallel_execution_shape_what_a_worker_watches():
    cfg = ResilienceConfig()
    full = watch_plan(ALLOCATION, "e", cfg)
    assert full["slow_after_ms"] is not None and full["peer_side"] == "internal"
    blind = watch_plan(ALLOCATION, "e", cfg, monitoring=False)
    assert blind == {"slow_after_ms": None, "hedge": None, "peer_side": None}
    serial = watch_plan(ALLOCATION, "e", cfg, parallel=False)
    assert serial["slow_after_ms"] == full["slow_after_ms"]  # still judged, never raced
    assert serial["hedge"] is None and serial["peer_side"] is None

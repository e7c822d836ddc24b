"""The CLI's tables at the widths users' terminals have: every figure whole, nothing cut."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from hybridmcp.cli import STATS_FULL_WIDTH, render_stats
from hybridmcp.policy.learning import ProviderStats
from hybridmcp.stats_store import stats_record


def _shown(records: list[dict], width: int) -> str:
    out = io.StringIO()
    render_stats(records, "db", Console(file=out, width=width, color_system=None))
    return out.getvalue()


def _record(provider: str, skill: str, calls: int, failures: int, cost: float) -> dict:
    stats = ProviderStats(provider, skill, calls=calls, successes=calls - failures)
    return stats_record(stats) | {
        "cost_per_call": cost,
        "cross_validations": 7,
        "agreement_rate": 1.0,
        "p95_latency_ms": 12.9,
    }


@settings(max_examples=50, deadline=None)
@given(
    provider=st.from_regex(r"mcp:[a-z_]{1,30}/[a-z_]{1,30}", fullmatch=True),
    calls=st.integers(1, 10**6),
    failures=st.integers(0, 999),
    cost=st.floats(0, 10, allow_nan=False),
    width=st.integers(80, 200),
)
def test_the_statistics_keep_every_figure_at_any_width(provider, calls, failures, cost, width):
    failures = min(failures, calls)
    record = _record(provider, "a.skill", calls, failures, cost)
    shown = _shown([record], width)
    lines = shown.splitlines()
    assert max(len(line) for line in lines) <= width
    assert str(calls) in shown and "100% of 7" in shown and "12.9" in shown
    assert (f"{failures} failed" in shown) == (failures > 0)
    assert f"{cost:.3g}" in shown
    assert "…" not in shown  # nothing cut with an ellipsis
    assert ("evidence" in shown) == (width >= STATS_FULL_WIDTH)

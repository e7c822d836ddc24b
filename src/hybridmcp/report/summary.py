"""The command line's summary of a big run: counts instead of a row per request.

``hybridmcp run`` prints it above :data:`SUMMARY_ABOVE` requests (``--table`` prints the full
table instead): counts per status, side and skill, the failures listed (the first
:data:`FAILURES_LISTED`), conflicts, events by code, cost against always-external, quality.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from hybridmcp.terminal import shown

SUMMARY_ABOVE = 50
"""Runs of more requests print this summary by default."""
FAILURES_LISTED = 20


def _counts(counter: Counter[str]) -> str:
    return " · ".join(f"{k} {v}" for k, v in sorted(counter.items(), key=lambda kv: -kv[1]))


def _one_line(value: Any, width: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def skill_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per skill: requests, statuses and the side that served them."""
    rows: dict[str, dict[str, Any]] = {}
    for r in results:
        row = rows.setdefault(
            str(r.get("skill")), {"requests": 0, "status": Counter(), "side": Counter()}
        )
        row["requests"] += 1
        row["status"][r.get("status", "none")] += 1
        row["side"][(r.get("served_by") or {}).get("side", "none")] += 1
    return [{"skill": k, **v} for k, v in sorted(rows.items())]


def render_summary(data: dict[str, Any], console: Console) -> None:
    """The summary of a run's JSON-ready output (what ``--json`` prints)."""
    results = data["results"]
    status = Counter(str(r.get("status")) for r in results)
    sides = Counter((r.get("served_by") or {}).get("side", "none") for r in results)
    allocations = Counter(str(r.get("allocation")) for r in results)
    say = lambda text: console.print(text, highlight=False, soft_wrap=True)  # noqa: E731
    say(f"[bold]hybridmcp run: {data['status']}[/bold] — {len(results)} requests")
    say(f"status:      {_counts(status)}")
    say(f"served by:   {_counts(sides)}")
    say(f"allocation:  {_counts(allocations)}")
    table = Table(box=box.SIMPLE_HEAD, title="by skill", title_justify="left")
    for name in ("skill", "requests", "status", "served by"):
        table.add_column(name, justify="right" if name == "requests" else "left")
    for row in skill_rows(results):
        table.add_row(shown(row["skill"]), str(row["requests"]), _counts(row["status"]),
                      _counts(row["side"]))  # fmt: skip
    console.print(table)
    failed = [r for r in results if r.get("status") not in ("ok",)]
    if failed:
        say(f"[red]failures ({len(failed)})[/red]:")
        for r in failed[:FAILURES_LISTED]:
            why = r.get("error") or (
                "unresolved conflict: " + _one_line(r.get("values"), 100)
                if r.get("status") == "unresolved"
                else r.get("status")
            )
            say(shown(f"  {r['id']} ({r.get('skill')}): {_one_line(why, 140)}"))
        if len(failed) > FAILURES_LISTED:
            say(f"  … {len(failed) - FAILURES_LISTED} more (--table or --json lists them all)")
    if data.get("conflicts"):
        say(f"conflicts:   {len(data['conflicts'])}")
    events = Counter(str(e.get("code")) for e in data.get("events", []))
    if events:
        say(f"events:      {_counts(events)}")
    render_totals(data, console)


def render_totals(data: dict[str, Any], console: Console) -> None:
    """Quality, calls and cost: the lines both the table and the summary end with."""
    q, m, c = data.get("quality") or {}, data.get("metrics") or {}, data.get("cost") or {}
    say = lambda text: console.print(text, highlight=False, soft_wrap=True)  # noqa: E731
    if q:  # a run paused before it ended has no quality or metrics yet
        scores = (f"{k} {v:.2f}" for k, v in q.items() if isinstance(v, float))
        say("quality:     " + ", ".join(scores))
    if m:
        say(
            f"metrics:     {m.get('answered')}/{m.get('requests')} answered, rounds "
            f"{m.get('rounds')}, calls {m.get('calls')}, failed {m.get('failed_calls')}"
            f"{_cancelled(m.get('cancelled_calls'))}, "
            f"reallocations {m.get('reallocations')}, wall {m.get('wall_ms')} ms"
        )
    if c:
        opt = c["cost_optimization"]
        budget = (
            f", budget {c['budget']:g} ({c['budget_remaining']:g} left)"
            if c.get("budget") is not None
            else ""
        )
        say(
            f"cost:        spent {c['spent']:g}{budget}; always-external would have cost "
            f"{opt['always_external']:g} for {opt['requests_compared']} request(s), "
            f"saved {opt['saved']:g}"
        )


def _cancelled(counts: Any) -> str:
    """The calls the coordinator cancelled itself (a hedge lost, a straggler cut, the run's
    deadline): not the providers' failures, said apart and only when there were some."""
    if not isinstance(counts, dict) or not any(counts.values()):
        return ""
    return f", cancelled by the coordinator {counts}"

"""What the HTML report shows, computed from a run's final state: pure functions over plain data.

:func:`report_model` takes the checkpointed state of a finished run (the values a thread holds:
``requests``, ``attempts``, ``allocations``, ``results``, ``conflicts``, ``events``, ``quality``,
``metrics``, ``cost``, ``started_at``) and the learned statistics (``hybridmcp stats --json``
records), and returns the page's content as plain data: the timeline's geometry, per-request
decisions, conflicts, events, circuit transitions, the summary and the aggregates. No I/O, no
clock: the template only lays it out.

Large runs stay readable and small: the timeline draws at most ``max_requests`` requests (those
with a conflict, a failure, a hedge, a cancellation or a reallocation first, then the earliest),
says so, and adds one aggregated lane per provider (attempts in flight over time) that covers
every attempt; the per-request table lists the same sample, every request's record is kept in
compact JSON for the page's lookup.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hybridmcp.events import EventCode

MAX_GANTT_REQUESTS = 120
"""Requests drawn on the timeline; beyond that, a sample (the page says which)."""
MAX_LISTED = 500
"""Rows of the events and conflicts lists; the rest are counted."""
VALUE_CHARS = 240
"""Characters of a value kept in the report."""

CHART_WIDTH = 1000.0
"""Width of the timeline's drawing area, in SVG units (the page scales it)."""
LANE_HEIGHT = 14.0
MIN_BAR = 2.5
"""Narrowest bar drawn: a call of a few microseconds in a run of seconds stays visible."""
LABEL_WIDTH = 260.0
HEAT_BUCKETS = 120

BAR_KINDS = ("ok", "failed", "cancelled", "hedge", "reallocated")
"""How an attempt is drawn: answered, failed, cancelled by the coordinator (a lost hedge, a
cut straggler, the run's deadline), a hedge (the second call of a hedged request), or made in
a later round after a reallocation."""
CIRCUIT_CODES = {EventCode.CIRCUIT_OPENED, EventCode.CIRCUIT_HALF_OPEN, EventCode.CIRCUIT_CLOSED}


def short(value: Any, width: int = VALUE_CHARS) -> str:
    """A value as compact JSON text, cut to ``width`` characters."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def isolated(text: Any) -> str:
    """``text`` as a bidirectional isolate (between U+2068 and U+2069): a right-to-left
    override in a server's or a task's text cannot reorder what the page writes after it."""
    return f"\u2068{text}\u2069"


def bar_kind(attempt: Mapping[str, Any]) -> str:
    """One of :data:`BAR_KINDS` for an attempt record."""
    if attempt.get("hedge") == "hedge":
        return "hedge"
    if attempt.get("cancelled") or attempt.get("censored"):
        return "cancelled"
    if not attempt.get("ok"):
        return "failed"
    if (_finite(attempt.get("round")) or 1) > 1:
        return "reallocated"
    return "ok"


def _pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _finite(value: Any) -> float | None:
    """A number the page can place: finite, else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def readable(attempt: Mapping[str, Any]) -> dict[str, Any]:
    """An attempt record as the page reads it: its request and provider as text, its times
    finite numbers or ``None`` (a record another version wrote may lack one; a state read from
    a server may hold a NaN or an infinity)."""
    out = dict(attempt)
    out["request_id"] = str(attempt.get("request_id"))
    out["provider"] = str(attempt.get("provider") or "?")
    for key in ("started_at", "queue_ms", "latency_ms"):
        out[key] = _finite(attempt.get(key))
    return out


def served_by(result: Mapping[str, Any]) -> Mapping[str, Any]:
    served = result.get("served_by")
    return served if isinstance(served, Mapping) else {}


# -- the timeline -----------------------------------------------------------------------------


def _notable(attempts: Sequence[Mapping[str, Any]], result: Mapping[str, Any]) -> bool:
    return (
        result.get("agreement") is False
        or result.get("status") not in (None, "ok")
        or any(bar_kind(a) != "ok" for a in attempts)
    )


def pick_sample(
    order: Sequence[str],
    by_request: Mapping[str, Sequence[Mapping[str, Any]]],
    results: Mapping[str, Mapping[str, Any]],
    limit: int,
) -> list[str]:
    """The requests to draw: all when they fit; else the notable ones (conflict, failure,
    hedge, cancellation, reallocation) first, then the earliest, in run order."""
    if len(order) <= limit:
        return list(order)
    notable = [r for r in order if _notable(by_request.get(r, ()), results.get(r, {}))]
    chosen = set(notable[:limit])
    for rid in order:
        if len(chosen) >= limit:
            break
        chosen.add(rid)
    return [r for r in order if r in chosen]


def _ticks(span_ms: float) -> list[dict[str, Any]]:
    """About 8 round tick marks over ``[0, span_ms]``."""
    if span_ms <= 0:
        return [{"x": 0.0, "label": "0 ms"}]
    raw = span_ms / 8
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    ticks, t = [], 0.0
    while t <= span_ms + 1e-9:
        label = f"{t / 1000:g} s" if step >= 1000 else f"{t:g} ms"
        ticks.append({"x": round(t / span_ms * CHART_WIDTH, 2), "label": label})
        t += step
    return ticks


# Long by design: one bar per attempt with every field the page draws, built in one pass.
def timeline(
    state: Mapping[str, Any], sample: Sequence[str], by_request: Mapping[str, Sequence[Any]]
) -> dict[str, Any]:
    """Lanes (one per request and provider) and their bars: the queue wait, then the call."""
    t0 = _finite(state.get("started_at")) or 0.0
    attempts = [a for rid in by_request for a in by_request[rid]]
    ends = [
        (a.get("started_at") or t0)
        - t0
        + ((a.get("queue_ms") or 0.0) + (a.get("latency_ms") or 0.0)) / 1000
        for a in attempts
    ]
    wall_ms = _finite((state.get("metrics") or {}).get("wall_ms")) or 0.0
    span_ms = max([e * 1000 for e in ends] + [wall_ms])
    span_ms = max(span_ms, 1.0)
    scale = CHART_WIDTH / span_ms
    results = state.get("results") or {}
    lanes: list[dict[str, Any]] = []
    for rid in sample:
        providers: list[str] = []
        for a in by_request.get(rid, ()):
            if a["provider"] not in providers:
                providers.append(a["provider"])
        first_lane = len(lanes)
        for provider in providers or ["-"]:
            bars = []
            for a in by_request.get(rid, ()):
                if a["provider"] != provider:
                    continue
                start_ms = ((a.get("started_at") or t0) - t0) * 1000
                queue = a.get("queue_ms") or 0.0
                latency = a.get("latency_ms") or 0.0
                kind = bar_kind(a)
                bars.append(
                    {
                        "kind": kind,
                        "side": a.get("side"),
                        "round": a.get("round"),
                        "x": round(start_ms * scale, 2),
                        "queue_w": round(queue * scale, 2),
                        "w": round(max(latency * scale, MIN_BAR), 2),
                        "title": f"{isolated(rid)} · {isolated(provider)} · round "
                        f"{a.get('round')} · {kind}"
                        f" · queue {queue:.1f} ms · call {latency:.1f} ms"
                        + (f" · {short(a.get('error'), 120)}" if a.get("error") else ""),
                    }
                )
            lanes.append(
                {"request": rid, "provider": provider, "first": len(lanes) == first_lane,
                 "bars": bars}
            )  # fmt: skip
        result = results.get(rid, {})
        lanes[first_lane]["conflict"] = result.get("agreement") is False
        lanes[first_lane]["status"] = result.get("status")
    transitions = [
        {
            "x": round(((e.get("at") or t0) - t0) * 1000 * scale, 2),
            "label": f"{isolated(e.get('provider'))}: {e.get('from_state')} → {e.get('to_state')}",
            "code": str(e["code"]),
        }
        for e in state.get("events") or []
        if e.get("code") in CIRCUIT_CODES and e.get("at") is not None
    ]
    return {
        "lanes": lanes,
        "span_ms": round(span_ms, 3),
        "ticks": _ticks(span_ms),
        "transitions": transitions,
        "height": round(len(lanes) * LANE_HEIGHT, 1),
        "bars": sum(len(lane["bars"]) for lane in lanes),
    }


def in_flight_lanes(
    state: Mapping[str, Any], attempts: Sequence[Mapping[str, Any]], span_ms: float
) -> list[dict[str, Any]]:
    """One aggregated lane per provider over every attempt: how many of its calls were in
    flight in each of :data:`HEAT_BUCKETS` time slices (the peak per slice)."""
    t0 = _finite(state.get("started_at")) or 0.0
    width = span_ms / HEAT_BUCKETS
    by_provider: dict[str, list[int]] = {}
    sides: dict[str, str] = {}
    for a in attempts:
        counts = by_provider.setdefault(a["provider"], [0] * HEAT_BUCKETS)
        sides[a["provider"]] = str(a.get("side"))
        start = ((a.get("started_at") or t0) - t0) * 1000 + (a.get("queue_ms") or 0.0)
        end = start + (a.get("latency_ms") or 0.0)
        first = min(HEAT_BUCKETS - 1, max(0, int(start / width)))
        last = min(HEAT_BUCKETS - 1, max(first, int(end / width)))
        for b in range(first, last + 1):
            counts[b] += 1
    lanes = []
    for provider in sorted(by_provider, key=lambda p: (sides[p], p)):
        counts = by_provider[provider]
        peak = max(counts) or 1
        lanes.append(
            {
                "provider": provider,
                "side": sides[provider],
                "peak": max(counts),
                "cells": [
                    {"x": round(i * CHART_WIDTH / HEAT_BUCKETS, 2), "n": n,
                     "o": round(0.12 + 0.88 * n / peak, 3)}
                    for i, n in enumerate(counts) if n
                ],
            }
        )  # fmt: skip
    return lanes


# -- aggregates -------------------------------------------------------------------------------


def histogram(attempts: Iterable[Mapping[str, Any]], bins: int = 24) -> dict[str, Any]:
    """Latency of the calls sent (queue excluded), per side, on log-spaced bins."""
    values = [
        (str(a.get("side")), float(a["latency_ms"]))
        for a in attempts
        if a.get("sent", True) and a.get("latency_ms") is not None
    ]
    if not values:
        return {"bins": [], "peak": 0, "edges": []}
    lo = max(0.01, min(v for _, v in values))
    hi = max(lo * 1.0001, max(v for _, v in values))
    edges = [lo * (hi / lo) ** (i / bins) for i in range(bins + 1)]
    counts = {"internal": [0] * bins, "external": [0] * bins}
    ratio = math.log(hi / lo)
    for side, v in values:
        i = min(bins - 1, int(math.log(max(v, lo) / lo) / ratio * bins)) if ratio else 0
        counts.setdefault(side, [0] * bins)[i] += 1
    peak = max(max(c) for c in counts.values()) or 1
    out = []
    for i in range(bins):
        out.append(
            {
                "lo": round(edges[i], 3),
                "hi": round(edges[i + 1], 3),
                "internal": counts["internal"][i],
                "external": counts["external"][i],
            }
        )
    return {
        "bins": out,
        "peak": peak,
        "edges": [f"{edges[0]:.3g}", f"{edges[bins // 2]:.3g}", f"{edges[-1]:.3g}"],
    }


def by_skill(
    requests: Sequence[Mapping[str, Any]],
    results: Mapping[str, Mapping[str, Any]],
    by_request: Mapping[str, Sequence[Mapping[str, Any]]],
) -> list[dict[str, Any]]:
    """Per skill: requests, their status counts, who served them, their latency."""
    groups: dict[str, dict[str, Any]] = {}
    for request in requests:
        rid = str(request["id"])
        result = results.get(rid, {})
        g = groups.setdefault(
            str(request.get("skill")),
            {"requests": 0, "status": Counter(), "served": Counter(), "latency": []},
        )
        g["requests"] += 1
        g["status"][result.get("status", "none")] += 1
        g["served"][served_by(result).get("side", "-")] += 1
        g["latency"] += [
            a["latency_ms"]
            for a in by_request.get(rid, ())
            if a.get("ok") and a.get("latency_ms") is not None
        ]
    return [
        {
            "skill": skill,
            "requests": g["requests"],
            "status": dict(sorted(g["status"].items())),
            "served": dict(sorted(g["served"].items())),
            "p50_ms": _r(_pct(g["latency"], 0.5)),
            "p95_ms": _r(_pct(g["latency"], 0.95)),
        }
        for skill, g in sorted(groups.items())
    ]


def by_provider(
    attempts: Sequence[Mapping[str, Any]], learned: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Per provider and skill: this run's calls, success and latency beside what was learned."""
    runs: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for a in attempts:
        runs[(a["provider"], str(a.get("skill")))].append(a)
    known = {(str(s["provider"]), str(s["skill"])): s for s in learned}
    rows = []
    for key in sorted(set(runs) | set(known) if runs else set(), key=lambda k: (k[1], k[0])):
        if key not in runs:
            continue
        made = runs[key]
        judged = [a for a in made if a.get("sent", True) and not a.get("censored")]
        latencies = [
            float(a["latency_ms"])
            for a in judged
            if a.get("ok") and a.get("latency_ms") is not None
        ]
        stats = known.get(key, {})
        rows.append(
            {
                "provider": key[0],
                "skill": key[1],
                "side": made[0].get("side"),
                "calls": len(made),
                "failed": sum(1 for a in made if not a.get("ok") and bar_kind(a) == "failed"),
                "cancelled": sum(1 for a in made if bar_kind(a) == "cancelled"),
                "success": _r(sum(1 for a in judged if a.get("ok")) / len(judged), 4)
                if judged
                else None,
                "p50_ms": _r(_pct(latencies, 0.5)),
                "p95_ms": _r(_pct(latencies, 0.95)),
                "queue_p50_ms": _r(_pct([a.get("queue_ms") or 0.0 for a in made], 0.5)),
                "learned_success": _r(stats.get("success_rate"), 4),
                "learned_ms": _r(stats.get("ewma_latency_ms")),
                "learned_p95_ms": _r(stats.get("p95_latency_ms")),
                "learned_calls": stats.get("calls"),
            }
        )
    return rows


# -- per request ------------------------------------------------------------------------------


# Long by design: the one record the page shows per request, field by field.
def request_record(
    request: Mapping[str, Any],
    result: Mapping[str, Any],
    allocation: Mapping[str, Any] | None,
    attempts: Sequence[Mapping[str, Any]],
    conflict: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """One request's decisions: allocation, scores and rule; the values compared and the
    verdict; every attempt."""
    allocation = allocation or {}
    verdicts = result.get("verdicts") or {}
    values = [
        {
            "provider": a["provider"],
            "side": a.get("side"),
            "value": short(a.get("value")),
            "verdict": verdicts.get(a["provider"]),
        }
        for a in attempts
        if a.get("ok")
    ]
    scores = [
        {"provider": p, "side": s.get("side")}
        | {k: s.get(k) for k in ("performance", "cost", "quality", "security", "total")}
        for p, s in (allocation.get("scores") or {}).items()
    ]
    record = {
        "id": str(request["id"]),
        "skill": request.get("skill"),
        "critical": bool(request.get("critical")),
        "strategy": request.get("strategy", "auto"),
        "status": result.get("status", "none"),
        "allocation": allocation.get("mode", result.get("allocation", "none")),
        "rule": allocation.get("rule") or result.get("allocation_rule"),
        "scores": sorted(scores, key=lambda s: -(s["total"] or 0)),
        "excluded": [
            f"{e.get('provider')}: {e.get('reason')}" for e in allocation.get("excluded", [])
        ],
        "values": values,
        "agreement": result.get("agreement"),
        "similarity": result.get("similarity"),
        "integration": result.get("strategy"),
        "confidence": result.get("confidence"),
        "served_by": served_by(result).get("provider"),
        "value": short(result["value"]) if "value" in result else None,
        "error": short(result.get("error"), 400) if result.get("error") else None,
        "attempts": [
            {
                "provider": a["provider"],
                "side": a.get("side"),
                "round": a.get("round"),
                "kind": bar_kind(a),
                "queue_ms": _r(a.get("queue_ms")),
                "latency_ms": _r(a.get("latency_ms")),
                "cost": a.get("cost"),
                "error": short(a.get("error"), 200) if a.get("error") else None,
            }
            for a in attempts
        ],
    }
    if conflict:
        details = conflict.get("conflict_details") or {}
        record["conflict"] = {
            "level": details.get("disagreement_level"),
            "areas": short(details.get("conflict_areas"), 200),
            "resolution": conflict.get("resolution_strategy"),
        }
    if len(values) == 1 and values[0]["value"] == record["value"]:
        values[0].pop("value")  # the one answer is the value: kept once
    return record


SCORE_FIELDS = ("performance", "cost", "quality", "security", "total")
ATTEMPT_FIELDS = ("round", "kind", "queue_ms", "latency_ms", "cost", "error")


def page_records(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Every request's record as the page keeps it for its lookup: providers named once in a
    table (``[name, side]``), scores, attempts and values as rows that refer to it by index
    (``[provider, *SCORE_FIELDS]``, ``[provider, *ATTEMPT_FIELDS]``, ``[provider, value,
    verdict]``), empty fields left out."""
    index: dict[str, int] = {}
    providers: list[list[Any]] = []

    def ref(name: str, side: Any) -> int:
        if name not in index:
            index[name] = len(providers)
            providers.append([name, side])
        return index[name]

    out = []
    for r in records:
        row = {k: v for k, v in r.items() if k not in ("scores", "attempts", "values")}
        row["scores"] = [
            [ref(x["provider"], x["side"]), *(x[f] for f in SCORE_FIELDS)] for x in r["scores"]
        ]
        row["attempts"] = [
            [ref(a["provider"], a["side"]), *(a[f] for f in ATTEMPT_FIELDS)] for a in r["attempts"]
        ]
        row["values"] = [
            [ref(v["provider"], v["side"]), v.get("value"), v.get("verdict")] for v in r["values"]
        ]
        out.append(compact(row))
    return {"providers": providers, "records": out}


def compact(value: Any) -> Any:
    """The value without its empty fields (None, empty lists and dicts), for the page's
    records: a big run's lookup data is most of the file."""
    if isinstance(value, dict):
        kept = {k: compact(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, [], {})}
    if isinstance(value, list):
        return [compact(v) for v in value]
    return value


def conflict_rows(
    conflicts: Sequence[Mapping[str, Any]], sides: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Each conflict with both values and both confidences."""
    rows = []
    for c in conflicts[:MAX_LISTED]:
        details = c.get("conflict_details") or {}
        rows.append(
            {
                "request": c.get("request_id"),
                "level": details.get("disagreement_level"),
                "similarity": details.get("similarity"),
                "internal_confidence": details.get("internal_confidence"),
                "external_confidence": details.get("external_confidence"),
                "answers": [
                    {"provider": p, "side": sides.get(p, "?"), "value": short(v)}
                    for p, v in (c.get("values") or {}).items()
                ],
                "resolution": c.get("resolution_strategy"),
                "areas": short(details.get("conflict_areas"), 200),
            }
        )
    return rows


def event_rows(events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    counts = Counter(str(e.get("code")) for e in events)
    listed = [
        {
            "code": str(e.get("code")),
            "request": e.get("request_id"),
            "detail": short({k: v for k, v in e.items() if k not in ("code", "request_id")}, 300),
        }
        for e in events[:MAX_LISTED]
    ]
    return {"counts": sorted(counts.items(), key=lambda kv: -kv[1]), "listed": listed,
            "total": len(events)}  # fmt: skip


def circuit_rows(events: Sequence[Mapping[str, Any]], t0: float) -> list[dict[str, Any]]:
    """Each circuit breaker's change of state, at its time into the run."""
    return [
        {
            "provider": e.get("provider"),
            "from": e.get("from_state"),
            "to": e.get("to_state"),
            "at_ms": _r(((e.get("at") or t0) - t0) * 1000, 1),
            "reason": e.get("reason"),
        }
        for e in events
        if e.get("code") in CIRCUIT_CODES
    ]


# -- the whole page ---------------------------------------------------------------------------


def summary(state: Mapping[str, Any], results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    metrics = state.get("metrics") or {}
    cost = state.get("cost") or {}
    optimization = cost.get("cost_optimization") or {}
    served = Counter(served_by(r).get("side", "none") for r in results.values())
    return {
        # synchronize sets it: without it the run stopped before its answers were reconciled
        "status": state.get("status") or "unfinished",
        "unfinished": not state.get("status"),
        "requests": len(state.get("requests") or []),
        "statuses": dict(sorted(Counter(r.get("status") for r in results.values()).items())),
        "served": dict(sorted(served.items())),
        "allocations": dict(sorted(Counter(r.get("allocation") for r in results.values()).items())),
        "spent": cost.get("spent"),
        "always_external": optimization.get("always_external"),
        "saved": optimization.get("saved"),
        "saved_pct": optimization.get("saved_pct"),
        "compared": optimization.get("requests_compared"),
        "budget": cost.get("budget"),
        "quality": {k: v for k, v in (state.get("quality") or {}).items()
                    if isinstance(v, int | float)},
        "rounds": metrics.get("rounds"),
        "calls": metrics.get("calls"),
        "failed_calls": metrics.get("failed_calls"),
        "cancelled_calls": metrics.get("cancelled_calls") or {},
        "reallocations": metrics.get("reallocations"),
        "wall_ms": _finite(metrics.get("wall_ms")),
        "circuits": metrics.get("circuits") or {},
    }  # fmt: skip


def report_model(
    state: Mapping[str, Any],
    learned: Sequence[Mapping[str, Any]] = (),
    *,
    title: str = "hybridmcp run",
    max_requests: int = MAX_GANTT_REQUESTS,
) -> dict[str, Any]:
    """The report's content from a run's final state and the learned statistics."""
    requests = list(state.get("requests") or [])
    results = state.get("results") or {}
    attempts = [readable(a) for a in state.get("attempts") or [] if isinstance(a, Mapping)]
    by_request: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for a in attempts:
        by_request[str(a["request_id"])].append(a)
    t0 = _finite(state.get("started_at")) or 0.0
    for rid in by_request:
        by_request[rid].sort(
            key=lambda a: (a.get("started_at") or t0, _finite(a.get("round")) or 1)
        )
    order = sorted(
        (str(r["id"]) for r in requests),
        key=lambda rid: min([a.get("started_at") or t0 for a in by_request.get(rid, [])] or [t0]),
    )
    sample = pick_sample(order, by_request, results, max_requests)
    chart = timeline(state, sample, {rid: by_request.get(rid, []) for rid in sample})
    conflicts = {str(c.get("request_id")): c for c in state.get("conflicts") or []}
    allocations = state.get("allocations") or {}
    requests_by_id = {str(r["id"]): r for r in requests}
    records = [
        request_record(
            requests_by_id[rid],
            results.get(rid, {}),
            allocations.get(rid),
            by_request.get(rid, []),
            conflicts.get(rid),
        )
        for rid in order
    ]
    sides = {a["provider"]: str(a.get("side")) for a in attempts}
    sampled = set(sample)
    return {
        "title": title,
        "summary": summary(state, results),
        "timeline": chart,
        "sampled": len(sample) < len(order),
        "shown": len(sample),
        "total": len(order),
        "attempts": len(attempts),
        "in_flight": in_flight_lanes(state, attempts, chart["span_ms"]),
        "histogram": histogram(attempts),
        "skills": by_skill(requests, results, by_request),
        "providers": by_provider(attempts, learned),
        "listed": [r for r in records if r["id"] in sampled],
        "records": records,
        "conflicts": conflict_rows(list(state.get("conflicts") or []), sides),
        "conflict_total": len(state.get("conflicts") or []),
        "events": event_rows(list(state.get("events") or [])),
        "transitions": circuit_rows(list(state.get("events") or []), t0),
        "bar_kinds": BAR_KINDS,
        "geometry": {"width": CHART_WIDTH, "lane": LANE_HEIGHT, "label": LABEL_WIDTH},
    }

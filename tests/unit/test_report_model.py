"""The report's content from a run's state (pure), its HTML, and the live progress view."""

from __future__ import annotations

import io
import json
import math
import re
from html.parser import HTMLParser
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from hybridmcp.live import LiveProgress
from hybridmcp.report import render_report
from hybridmcp.report.model import (
    BAR_KINDS,
    CHART_WIDTH,
    bar_kind,
    histogram,
    pick_sample,
    report_model,
)
from hybridmcp.report.summary import render_summary

T0 = 1_700_000_000.0
PROVIDERS = [("internal:s", "internal"), ("mcp:x/t", "external"), ("mcp:y/t", "external")]


@st.composite
def attempts_of(draw: st.DrawFn, rid: str) -> list[dict[str, Any]]:
    out = []
    for _ in range(draw(st.integers(0, 3))):
        provider, side = draw(st.sampled_from(PROVIDERS))
        ok = draw(st.booleans())
        extra = draw(
            st.sampled_from(
                [
                    {},
                    {"hedge": "hedge"},
                    {"hedge": "primary", "cancelled": "hedge lost"},
                    {"censored": "straggler"},
                ]
            )
        )
        out.append(
            {
                "request_id": rid,
                "skill": "s",
                "provider": provider,
                "side": side,
                "round": draw(st.integers(1, 3)),
                "ok": ok,
                "sent": draw(st.booleans()),
                "started_at": T0 + draw(st.floats(0, 30, allow_nan=False)),
                "queue_ms": draw(st.floats(0, 5000, allow_nan=False)),
                "latency_ms": draw(st.floats(0, 60_000, allow_nan=False)),
                "cost": 0.0,
                "value": draw(st.one_of(st.none(), st.text(max_size=20), st.integers())),
                "error": None if ok else draw(st.text(max_size=30)),
            }
            | extra
        )
    return out


@st.composite
def states(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(0, 40))
    requests = [{"id": f"r{i}", "skill": "s", "args": {}} for i in range(n)]
    attempts = [a for r in requests for a in draw(attempts_of(r["id"]))]
    results = {
        r["id"]: {
            "id": r["id"],
            "skill": "s",
            "status": draw(st.sampled_from(["ok", "error", "unresolved"])),
            "agreement": draw(st.sampled_from([None, True, False])),
            "served_by": None,
            "confidence": 0.5,
        }
        for r in requests
    }
    return {
        "requests": requests,
        "attempts": attempts,
        "results": results,
        "started_at": T0,
        "status": "partial",
        "events": [],
        "conflicts": [],
    }


@settings(max_examples=60, deadline=None)
@given(states(), st.integers(1, 50))
def test_the_timeline_draws_every_attempt_of_the_sample_inside_the_chart(state, limit):
    model = report_model(state, max_requests=limit)
    chart = model["timeline"]
    shown = {lane["request"] for lane in chart["lanes"]}
    assert len(shown) == min(limit, len(state["requests"])) == model["shown"]
    assert chart["bars"] == sum(1 for a in state["attempts"] if a["request_id"] in shown)
    for lane in chart["lanes"]:
        for bar in lane["bars"]:
            assert bar["kind"] in BAR_KINDS
            assert 0 <= bar["x"] and bar["x"] + bar["queue_w"] + bar["w"] <= CHART_WIDTH + 3
    assert len(model["records"]) == len(state["requests"])


@settings(max_examples=60, deadline=None)
@given(states(), st.integers(1, 50))
def test_the_sample_takes_the_notable_requests_first(state, limit):
    by_request: dict[str, list[dict[str, Any]]] = {}
    for a in state["attempts"]:
        by_request.setdefault(a["request_id"], []).append(a)
    order = [r["id"] for r in state["requests"]]
    sample = pick_sample(order, by_request, state["results"], limit)
    notable = [
        rid
        for rid in order
        if state["results"][rid]["agreement"] is False
        or state["results"][rid]["status"] != "ok"
        or any(bar_kind(a) != "ok" for a in by_request.get(rid, []))
    ]
    assert len(sample) == min(limit, len(order))
    assert set(notable[: len(sample)]) <= set(sample)
    assert sample == [rid for rid in order if rid in sample]  # run order kept


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["internal", "external"]), st.floats(0, 1e6)), max_size=200)
)
def test_the_histogram_counts_every_call_sent_once(calls):
    attempts = [{"side": side, "latency_ms": ms, "sent": True} for side, ms in calls]
    h = histogram(attempts)
    assert sum(b["internal"] + b["external"] for b in h["bins"]) == len(calls)


def test_bar_kinds_tell_hedges_cancellations_failures_and_reallocations_apart():
    assert bar_kind({"ok": True, "round": 1}) == "ok"
    assert bar_kind({"ok": True, "round": 2}) == "reallocated"
    assert bar_kind({"ok": False, "round": 1}) == "failed"
    assert bar_kind({"ok": True, "round": 1, "hedge": "hedge"}) == "hedge"
    assert bar_kind({"ok": False, "round": 1, "hedge": "primary", "cancelled": "x"}) == "cancelled"
    assert bar_kind({"ok": False, "round": 1, "censored": "run deadline"}) == "cancelled"


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts = 0
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "script":
            self.scripts += 1


def test_values_from_servers_cannot_break_out_of_the_page():
    hostile = "</script><script>alert(1)</script><img src=x onerror=alert(2)>"
    state = {
        "requests": [{"id": hostile, "skill": "s", "args": {}}],
        "attempts": [
            {
                "request_id": hostile,
                "skill": "s",
                "provider": hostile,
                "side": "external",
                "round": 1,
                "ok": True,
                "started_at": T0,
                "latency_ms": 3.0,
                "queue_ms": 0.0,
                "value": hostile,
                "error": None,
            }
        ],
        "results": {hostile: {"id": hostile, "status": "ok", "value": hostile, "agreement": None}},
        "started_at": T0,
        "events": [{"code": "REQUEST_ERROR", "request_id": hostile, "detail": hostile}],
    }
    html = render_report(state)
    parser = _Scripts()
    parser.feed(html)
    assert parser.scripts == 2  # the page's own: its records and its code
    assert "img" not in parser.tags
    records = re.search(r'<script id="records" type="application/json">(.*?)</script>', html, re.S)
    assert records is not None and json.loads(records.group(1))["records"][0]["id"] == hostile


def test_an_empty_run_renders():
    html = render_report({"requests": [], "status": "failed"})
    assert 'id="timeline"' in html and 'data-requests="0"' in html


def test_the_summary_counts_instead_of_listing():
    results = [
        {
            "id": f"r{i}",
            "skill": "a" if i % 2 else "b",
            "status": "ok" if i % 10 else "error",
            "served_by": {"side": "internal"},
            "error": None if i % 10 else "boom",
        }
        for i in range(200)
    ]
    data = {
        "status": "partial",
        "results": results,
        "events": [],
        "conflicts": [],
        "quality": {"overall": 0.9},
        "metrics": {},
        "cost": {},
    }
    buffer = io.StringIO()
    render_summary(data, Console(file=buffer, width=120))
    out = buffer.getvalue()
    assert "200 requests" in out and "ok 180" in out and "error 20" in out
    assert "failures (20)" in out and "r0 (b): boom" in out
    assert "r1 " not in out  # answered requests are counted, not listed


def test_progress_shows_done_failed_in_flight():
    buffer = io.StringIO()
    view = LiveProgress(Console(file=buffer, force_terminal=True, width=160, color_system=None))
    key = {"provider": "p", "side": "external", "round": 1}
    with view:
        view.update({"type": "phase", "node": "arbitrate", "status": "finished", "attempts": 3})
        for rid in ("a", "b", "c"):
            view.update({"type": "attempt", "status": "started", "request_id": rid, **key})
        view.update({"type": "attempt", "status": "finished", "request_id": "a", "ok": True, **key})
        view.update(
            {
                "type": "attempt",
                "status": "finished",
                "request_id": "b",
                "ok": False,
                "error": "boom",
                **key,
            }
        )
        assert (view.failed, len(view.flying), view.total) == (1, 1, 3)
        view.progress.refresh()
    shown = buffer.getvalue()
    assert "1 failed" in shown and "1 in flight" in shown and "ETA" in shown
    assert "b: p failed: boom" in shown


def test_a_number_json_has_no_form_for_leaves_the_page_readable():
    """A NaN or an infinity (a server's answer, a similarity of NaNs) is written as null in
    the page's records, which its script reads with JSON.parse (that refuses NaN)."""
    state = {
        "requests": [{"id": "r", "skill": "s", "args": {}}],
        "attempts": [],
        "results": {
            "r": {
                "id": "r",
                "status": "ok",
                "value": {"v": float("nan")},
                "similarity": float("nan"),
                "confidence": float("inf"),
                "agreement": None,
            }
        },
        "started_at": T0,
    }
    html = render_report(state)
    records = re.search(r'<script id="records" type="application/json">(.*?)</script>', html, re.S)
    assert records is not None

    def refuse(constant: str) -> None:
        raise ValueError(constant)

    json.loads(records.group(1), parse_constant=refuse)


ODD_NUMBERS = st.one_of(
    st.none(),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), -1.0, 0.0, True, "12"]),
    st.floats(0, 1e6),
)


@st.composite
def odd_attempts(draw: st.DrawFn) -> dict[str, Any]:
    """An attempt as another version may have written it: any optional field missing, null,
    not finite or of another type."""
    attempt: dict[str, Any] = {
        "request_id": draw(st.sampled_from(["r0", "r1", 7])),
        "provider": draw(st.sampled_from(["internal:s", "mcp:x/t", None])),
        "side": draw(st.sampled_from(["internal", "external", None])),
        "ok": draw(st.booleans()),
    }
    for key in ("queue_ms", "latency_ms", "round", "sent", "cost"):
        if draw(st.booleans()):
            attempt[key] = draw(ODD_NUMBERS)
    if draw(st.booleans()):
        attempt["started_at"] = draw(st.one_of(ODD_NUMBERS, st.floats(T0, T0 + 5)))
    return attempt


@settings(max_examples=60, deadline=None)
@given(
    st.lists(odd_attempts(), max_size=6),
    st.sampled_from([{"provider": "p", "side": "external"}, "p", None, 3]),
    st.sampled_from([{}, {"provider": "p"}, {"at": T0}]),
    ODD_NUMBERS,
)
def test_a_state_of_another_shape_renders_with_every_bar_placed(attempts, served, event, wall):
    """An attempt's missing, null or non-finite time, a ``served_by`` that is not a mapping,
    a circuit event without its provider: the page renders, every bar at a finite place."""
    state = {
        "requests": [{"id": "r0", "skill": "s", "args": {}}, {"id": "r1", "skill": "s"}],
        "attempts": attempts,
        "results": {"r0": {"id": "r0", "status": "ok", "served_by": served, "value": 1}},
        "started_at": T0,
        "metrics": {"wall_ms": wall},
        "events": [{"code": "CIRCUIT_OPENED", **event}],
    }
    model = report_model(state)
    for lane in model["timeline"]["lanes"]:
        for bar in lane["bars"]:
            assert all(math.isfinite(bar[k]) for k in ("x", "w", "queue_w")), bar
    html = render_report(state)
    assert "nan" not in re.findall(r'(?:x|width)="([^"]*)"', html)

"""Cost and budgets against a real MCP server (the fault server, stdio, recording its calls):
the budget steers arbitration to cheaper providers, stops spending when exhausted (an event, an
internal fallback or a per-request error), and the gate never overspends a run's budget."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from hybridmcp.capabilities.gate import CallContext
from hybridmcp.config import HybridConfig, parse_config
from hybridmcp.coordinator import Coordinator
from hybridmcp.errors import BudgetExhausted
from hybridmcp.task import parse_task
from hybridmcp.testing.harness import faultserver_stdio

pytestmark = pytest.mark.integration

PRICE = 0.01


def config(record: Path) -> HybridConfig:
    ext = {"side": "external", "server": "paid", "timeout_ms": 10_000}
    return parse_config(
        {
            "mcpServers": {"paid": faultserver_stdio(record=record, cost_per_call=PRICE)},
            "skills": {
                "math.calculate": {"providers": [{**ext, "tool": "calculate"}]},
                "note.echo": {
                    "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
                    "providers": [{**ext, "tool": "echo"}],
                },
                "math.priced": {
                    "input_schema": {"type": "object"},
                    "providers": [
                        {**ext, "tool": "calculate", "name": "cheap", "quality": 0.7,
                         "cost_per_call": 0.008},
                        {**ext, "tool": "calculate", "name": "dear", "quality": 1.0,
                         "cost_per_call": 0.02},
                    ],
                },
            },
        }
    )  # fmt: skip


def calls(record: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


def calc(n: int, budget: float | None, skill: str = "math.calculate") -> Any:
    requests = [
        {"id": f"r{i}", "skill": skill, "args": {"expression": f"{i} + 1"}, "strategy": "external"}
        for i in range(n)
    ]
    constraints = {"budget": budget} if budget is not None else {}
    return parse_task({"requests": requests, "constraints": constraints})


async def test_exhausted_budget_falls_back_internal_with_an_event(tmp_path: Path) -> None:
    record = tmp_path / "calls.jsonl"
    async with Coordinator.open(config(record)) as co:
        out = await co.run(calc(5, budget=0.025))
    assert out["status"] == "ok"
    sides = {r: out["results"][r]["attempts"][0]["side"] for r in out["results"]}
    assert sorted(sides.values()) == ["external", "external", "internal", "internal", "internal"]
    assert len(calls(record)) == 2
    event = next(e for e in out["events"] if e["code"] == "BUDGET_EXHAUSTED")
    assert sorted(event["served_by_cheaper_provider"]) == sorted(
        r for r, side in sides.items() if side == "internal"
    )
    cost = out["cost"]
    assert cost["spent"] == pytest.approx(0.02) and cost["budget_remaining"] == pytest.approx(0.005)
    assert cost["by_provider"]["mcp:paid/calculate"]["calls"] == 2
    opt = cost["cost_optimization"]
    assert opt["always_external"] == pytest.approx(0.05) and opt["saved"] == pytest.approx(0.03)


async def test_exhausted_budget_without_internal_provider_is_a_per_request_error(
    tmp_path: Path,
) -> None:
    record = tmp_path / "calls.jsonl"
    requests = [
        {"id": f"e{i}", "skill": "note.echo", "args": {"text": f"hi {i}"}} for i in range(3)
    ]
    async with Coordinator.open(config(record)) as co:
        out = await co.run(parse_task({"requests": requests, "constraints": {"budget": 0.015}}))
    errors = [r["error"] for r in out["results"].values()]
    assert errors.count(None) == 1
    assert sum(1 for e in errors if e and "budget: costs 0.01, 0.005 of 0.015 left" in e) == 2
    assert out["status"] == "partial" and len(calls(record)) == 1


async def test_budget_steers_arbitration_to_the_cheaper_provider(tmp_path: Path) -> None:
    """Without a budget the dearer, better provider wins; with a budget that could pay for it
    for every request (0.036 for three requests whose dearest provider costs 0.02, the
    cheapest 0.008: 0.02 + 2 x 0.008 fits; pressure 1.67, cost weight 0.3 -> 0.8) the cheaper
    one does while the dearer one is affordable. With 0.03, the dearer one is affordable for
    no request without taking what the others need to be served at all: it is excluded for
    each, and each is served by the cheaper one."""
    record = tmp_path / "calls.jsonl"
    async with Coordinator.open(config(record)) as co:  # fresh statistics for each
        free = await co.run(calc(3, budget=None, skill="math.priced"))
    async with Coordinator.open(config(record)) as co:
        steered = await co.run(calc(3, budget=0.036, skill="math.priced"))
    async with Coordinator.open(config(record)) as co:
        tight = await co.run(calc(3, budget=0.03, skill="math.priced"))
    assert {r["attempts"][0]["provider"] for r in free["results"].values()} == {"mcp:dear"}
    for out in (steered, tight):
        assert {r["attempts"][0]["provider"] for r in out["results"].values()} == {"mcp:cheap"}
        assert out["cost"]["spent"] == pytest.approx(0.024)
    assert not [e for e in steered["events"] if e["code"] == "BUDGET_EXHAUSTED"]
    event = next(e for e in tight["events"] if e["code"] == "BUDGET_EXHAUSTED")
    assert event["excluded"] == {r: ["mcp:dear"] for r in ("r0", "r1", "r2")}
    assert event["failed"] == []


async def test_the_gate_never_overspends_a_run(tmp_path: Path) -> None:
    record = tmp_path / "calls.jsonl"
    async with Coordinator.open(config(record)) as co:
        gate = co.resources.gate
        provider = co.resources.registry.provider("mcp:paid/echo")
        ctx = CallContext("run-1", "r", "note.echo", "k", budget=0.015)
        await gate.call(provider, {"text": "one"}, ctx, timeout_s=10)
        with pytest.raises(BudgetExhausted, match="budget exhausted"):
            await gate.call(provider, {"text": "two"}, ctx, timeout_s=10)
        other_run = CallContext("run-2", "r", "note.echo", "k", budget=0.015)
        await gate.call(provider, {"text": "three"}, other_run, timeout_s=10)
    assert [c["arguments"]["text"] for c in calls(record)] == ["one", "three"]


async def test_a_call_cut_while_still_queued_costs_the_budget_nothing(tmp_path: Path) -> None:
    """A call cancelled before it was sent (waiting for the server's only slot: a hedge that
    lost, the run's deadline) was never paid: its price goes back to the run's budget, and
    the next call that fits is made."""
    record = tmp_path / "calls.jsonl"
    one_slot = faultserver_stdio(record=record, cost_per_call=PRICE, max_concurrency=1)
    async with Coordinator.open(parse_config({"mcpServers": {"paid": one_slot}})) as co:
        gate = co.resources.gate
        sleep = co.resources.registry.provider("mcp:paid/sleep")
        echo = co.resources.registry.provider("mcp:paid/echo")

        def ctx(key: str) -> CallContext:
            return CallContext("run-1", key, "paid.sleep", key, budget=2 * PRICE)

        busy = asyncio.create_task(gate.call(sleep, {"ms": 400}, ctx("a"), timeout_s=10))
        queued = asyncio.create_task(gate.call(echo, {"text": "queued"}, ctx("b"), timeout_s=10))
        await asyncio.sleep(0.2)  # the first call holds the slot; the second waits for it
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        await busy
        await gate.call(echo, {"text": "paid"}, ctx("c"), timeout_s=10)
        with pytest.raises(BudgetExhausted):
            await gate.call(echo, {"text": "over"}, ctx("d"), timeout_s=10)
    assert [c["tool"] for c in calls(record)] == ["sleep", "echo"]
    assert [c["arguments"].get("text") for c in calls(record)] == [None, "paid"]


async def test_many_parallel_calls_send_only_what_the_budget_pays(tmp_path: Path) -> None:
    """Forty calls of one run at once against a budget for seven: exactly seven reach the
    server, the others are refused before anything is sent."""
    record = tmp_path / "calls.jsonl"
    async with Coordinator.open(config(record)) as co:
        gate = co.resources.gate
        echo = co.resources.registry.provider("mcp:paid/echo")
        outcomes = await asyncio.gather(
            *(
                gate.call(
                    echo,
                    {"text": f"t{i}"},
                    CallContext("run-1", f"r{i}", "note.echo", f"k{i}", budget=7 * PRICE),
                    timeout_s=10,
                )
                for i in range(40)
            ),
            return_exceptions=True,
        )
    refused = [o for o in outcomes if isinstance(o, BudgetExhausted)]
    assert len(refused) == 33 and len(calls(record)) == 7


async def test_a_priced_internal_side_counts_against_the_budget(tmp_path: Path) -> None:
    """Internal work with a price is paid from the run's budget like external work: a request
    moved to a priced internal provider after its external call failed is refused when the
    budget has nothing left for it, instead of spending past the budget."""
    record = tmp_path / "calls.jsonl"
    failing = faultserver_stdio(
        {"echo": {"fail_first": 100}}, record=record, cost_per_call=1.0
    )
    cfg = parse_config(
        {
            "mcpServers": {"paid": failing},
            "builtin_skills": False,
            "skills": {
                "note.echo": {
                    "input_schema": {"type": "object"},
                    "providers": [
                        {"side": "external", "server": "paid", "tool": "echo", "quality": 1.0},
                        {"side": "internal", "function": "tests.helpers:echo_text",
                         "cost_per_call": 1.0, "quality": 0.5},
                    ],
                }
            },
        }
    )  # fmt: skip
    task = parse_task(
        {
            "requests": [{"id": "e", "skill": "note.echo", "args": {"text": "hi"},
                          "strategy": "external"}],
            "constraints": {"budget": 1.5},
        }
    )  # fmt: skip
    async with Coordinator.open(cfg) as co:
        out = await co.run(task)
    attempts = out["results"]["e"]["attempts"]
    assert [a["side"] for a in attempts][:1] == ["external"] and len(calls(record)) == 1
    assert out["cost"]["spent"] <= 1.5, out["cost"]
    assert "budget exhausted" in str(out["results"]["e"]["error"]), attempts
    by_provider = out["cost"]["by_provider"]  # calls made, as the server counts them
    assert by_provider["mcp:paid/echo"] == {"side": "external", "calls": 1, "cost": 1.0}
    assert by_provider["internal:note.echo"] == {"side": "internal", "calls": 0, "cost": 0.0}


def priced_sides(record: Path) -> HybridConfig:
    """``math.calculate`` on a server at 0.01 a call and on an internal function at 0.005."""
    return parse_config(
        {
            "mcpServers": {"paid": faultserver_stdio(record=record, cost_per_call=0.01)},
            "builtin_skills": False,
            "skills": {
                "math.calculate": {
                    "providers": [
                        {"side": "external", "server": "paid", "tool": "calculate"},
                        {"side": "internal", "cost_per_call": 0.005,
                         "function": "hybridmcp.testing.faultserver:calculate"},
                    ]
                }
            },
        }
    )  # fmt: skip


async def test_a_hybrid_goes_to_one_side_when_the_budget_cannot_pay_both(tmp_path: Path) -> None:
    """Cross-validation runs both sides, so it is planned at both prices: a request whose two
    sides each fit what is left, but not together, runs on the side that fits (the dearer one
    is excluded), instead of being planned over the budget, refused at the gate, and leaving
    the next requests nothing."""
    record = tmp_path / "calls.jsonl"
    cfg = priced_sides(record)
    requests = [
        {"id": f"r{i}", "skill": "math.calculate", "args": {"expression": f"{i} + 1"},
         "strategy": "hybrid"}
        for i in range(4)
    ]  # fmt: skip
    async with Coordinator.open(cfg) as co:
        out = await co.run(parse_task({"requests": requests, "constraints": {"budget": 0.04}}))
    assert out["status"] == "ok", {r: v["error"] for r, v in out["results"].items()}
    modes = {r: v["allocation"] for r, v in out["results"].items()}
    assert modes == {"r0": "hybrid", "r1": "hybrid", "r2": "internal", "r3": "internal"}
    assert len(calls(record)) == 2 == out["cost"]["by_provider"]["mcp:paid/calculate"]["calls"]
    assert out["cost"]["spent"] == pytest.approx(0.04) and out["cost"]["budget_remaining"] == 0
    budget_events = [e for e in out["events"] if e["code"] == "BUDGET_EXHAUSTED"]
    assert [e["stage"] for e in budget_events] == ["arbitrate"]  # nothing refused at the gate
    excluded = {"r2": ["mcp:paid/calculate"], "r3": ["mcp:paid/calculate"]}
    assert budget_events[0]["excluded"] == excluded


async def test_no_request_is_left_unserved_for_another_ones_extras(tmp_path: Path) -> None:
    """Thirty requests that arbitration would cross-validate (both sides: 0.015), under a
    budget that pays every one of them on its cheapest provider (internal, 0.005) and a few
    cross-validations: each is answered. Before any request gets a dearer provider or both
    sides, what the requests after it need at the least is kept for them."""
    record = tmp_path / "calls.jsonl"
    cfg = priced_sides(record)
    requests = [
        {"id": f"r{i}", "skill": "math.calculate", "args": {"expression": f"{i} + 1"}}
        for i in range(30)
    ]
    async with Coordinator.open(cfg) as co:
        out = await co.run(parse_task({"requests": requests, "constraints": {"budget": 0.2}}))
    assert out["status"] == "ok", {r: v["error"] for r, v in out["results"].items() if v["error"]}
    modes = [v["allocation"] for v in out["results"].values()]
    assert modes.count("hybrid") == len(calls(record)) == 5  # (0.2 - 30 x 0.005) / 0.01
    assert out["cost"]["spent"] == pytest.approx(0.2)

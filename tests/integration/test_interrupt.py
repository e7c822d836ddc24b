"""A conflict pauses the run for a human decision, resumed with Command(resume=...).

The two sides really disagree: a test-only internal clock two hours fast
(``tests.helpers:wrong_time``) is cross-validated against the real ``mcp-server-time``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from hybridmcp import Coordinator, parse_task
from hybridmcp.errors import TaskError
from tests.conftest import time_server_config
from tests.helpers import WRONG_TIME_SHIFT

pytestmark = pytest.mark.integration

TIME_NOW_COMPARATOR = {
    "type": "fields",
    "fields": {
        "timezone": {"type": "exact"},
        "datetime": {"type": "datetime", "tolerance": 5},
        "is_dst": {"type": "exact"},
    },
}


def config(**coordination: Any):
    return time_server_config(
        coordination_config=coordination,
        skills={
            "clock.now": {
                "input_schema": {
                    "type": "object",
                    "properties": {"timezone": {"type": "string"}},
                    "required": ["timezone"],
                },
                "comparator": TIME_NOW_COMPARATOR,
                "providers": [
                    {"side": "internal", "function": "tests.helpers:wrong_time"},
                    {"side": "external", "server": "time", "tool": "get_current_time"},
                ],
            }
        },
    )


TASK = parse_task(
    {
        "requests": [
            {"id": "now", "skill": "clock.now", "args": {"timezone": "UTC"}, "critical": True},
            {"id": "calc", "skill": "math.calculate", "args": {"expression": "6*7"}},
        ]
    }
)


async def test_conflict_pauses_and_resumes_with_the_chosen_side() -> None:
    cfg = config(interrupt_on_conflict=True)
    async with asyncio.timeout(60), Coordinator.open(cfg, checkpointer=InMemorySaver()) as co:
        paused = await co.run(TASK, thread_id="review-1")
        assert "__interrupt__" in paused
        request = paused["__interrupt__"][0].value
        assert request["type"] == "conflict_review"
        [conflict] = request["conflicts"]
        assert conflict["request_id"] == "now" and conflict["disagreement"] > 0
        internal = datetime.fromisoformat(conflict["values"]["internal"]["datetime"])
        external = datetime.fromisoformat(conflict["values"]["external"]["datetime"])
        assert abs((internal - external) - WRONG_TIME_SHIFT).total_seconds() <= 5

        out = await co.resume({"now": "external"}, thread_id="review-1")
    assert "__interrupt__" not in out
    assert out["status"] == "ok"
    now = out["results"]["now"]
    assert now["value"] == conflict["values"]["external"]
    assert now["resolution"] == {"by": "human", "choice": "external"}
    assert out["results"]["calc"]["value"] == {"value": 42}
    codes = [e["code"] for e in out["events"]]
    assert "RESULT_CONFLICT_DETECTED" in codes and "CONFLICT_RESOLVED_BY_HUMAN" in codes
    assert out["metrics"]["conflicts"] == 1  # learn ran after the decision


async def test_resume_with_a_value_of_the_reviewers_own() -> None:
    cfg = config(interrupt_on_conflict=True)
    mine = {"timezone": "UTC", "datetime": "2030-01-01T00:00:00+00:00"}
    async with asyncio.timeout(60), Coordinator.open(cfg, checkpointer=InMemorySaver()) as co:
        paused = await co.run(TASK, thread_id="review-2")
        assert "__interrupt__" in paused
        out = await co.resume({"now": mine}, thread_id="review-2")
    assert out["results"]["now"]["value"] == mine
    assert out["results"]["now"]["resolution"]["choice"] == "value"


@pytest.mark.parametrize(
    "coordination", [{}, {"interrupt_on_conflict": True, "conflict_interrupt_threshold": 0.99}]
)
async def test_conflicts_below_the_threshold_or_with_review_off_do_not_pause(coordination) -> None:
    async with asyncio.timeout(60), Coordinator.open(config(**coordination)) as co:
        out = await co.run(TASK)
    assert "__interrupt__" not in out
    assert out["results"]["now"]["agreement"] is False
    assert [c["request_id"] for c in out["conflicts"]] == ["now"]
    assert "resolution" not in out["results"]["now"]


async def test_a_decision_naming_no_request_under_review_is_refused_and_the_run_stays_paused():
    cfg = config(interrupt_on_conflict=True)
    async with asyncio.timeout(60), Coordinator.open(cfg, checkpointer=InMemorySaver()) as co:
        assert "__interrupt__" in await co.run(TASK, thread_id="review-3")
        with pytest.raises(TaskError, match=r"names 'nwo', not under review; under review: 'now'"):
            await co.resume({"nwo": "external"}, thread_id="review-3")
        status = await co.thread_status(TASK, "review-3")
        assert status.state == "paused"  # the typo ended nothing
        out = await co.resume({"now": "external"}, thread_id="review-3")
        assert out["results"]["now"]["resolution"] == {"by": "human", "choice": "external"}
        with pytest.raises(TaskError, match="'review-3' is not paused for a decision .*finished"):
            await co.resume({"now": "internal"}, thread_id="review-3")
        with pytest.raises(TaskError, match="'nobody' holds no run to resume"):
            await co.resume({"now": "internal"}, thread_id="nobody")


async def test_resume_without_a_checkpointer_says_what_it_needs() -> None:
    async with asyncio.timeout(60), Coordinator.open(config(interrupt_on_conflict=True)) as co:
        paused = await co.run(TASK)
        assert "__interrupt__" in paused  # the question is shown; nothing can answer it here
        with pytest.raises(TaskError, match=r"needs the checkpointer .*checkpointer=\.\.\."):
            await co.resume({"now": "external"}, thread_id="any")


async def test_a_run_given_no_thread_id_pauses_on_one_it_can_be_resumed_on() -> None:
    cfg = config(interrupt_on_conflict=True)
    async with asyncio.timeout(90), Coordinator.open(cfg, checkpointer=InMemorySaver()) as co:
        paused = await co.run(TASK)
        thread = paused["thread_id"]
        assert "__interrupt__" in paused and isinstance(thread, str) and thread
        assert (await co.thread_status(TASK, thread)).state == "paused"
        out = await co.resume({"now": "external"}, thread_id=thread)
        assert out["results"]["now"]["resolution"] == {"by": "human", "choice": "external"}
        assert "thread_id" not in out  # only a pause names it

        events = [e async for e in co.stream(TASK)]
        streamed = events[-1]["output"]
        assert "__interrupt__" in streamed and streamed["thread_id"] != thread
        out = await co.resume({"now": "internal"}, thread_id=streamed["thread_id"])
        assert out["results"]["now"]["resolution"] == {"by": "human", "choice": "internal"}

        named = await co.run(TASK, thread_id="review-named")
        assert "__interrupt__" in named and "thread_id" not in named  # the caller knows it

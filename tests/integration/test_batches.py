"""Attempts run in batches (one LangGraph task per batch), and each call is checkpointed as it
finishes: a run cut while a batch is under way resumes without repeating the batch's finished
calls (hybridmcp.journal), in the root graph and with more calls than one batch holds."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from hybridmcp import Coordinator, parse_config, parse_task
from hybridmcp.nodes.execute import BATCH_SIZE

pytestmark = pytest.mark.integration

CALLS: list[str] = []
GATE: dict[str, asyncio.Event] = {}
EXPECTED = {"calls": 0}


def _note(key: str) -> None:
    CALLS.append(key)
    if len(CALLS) >= EXPECTED["calls"] and "started" in GATE:
        GATE["started"].set()


async def counted(key: str) -> dict[str, Any]:
    """An internal skill that notes each call."""
    _note(key)
    return {"key": key}


async def held(key: str) -> dict[str, Any]:
    """Notes the call, then answers only once the gate opens."""
    _note(key)
    await GATE["open"].wait()
    return {"key": key}


def _skill(function: str) -> dict[str, Any]:
    return {
        "description": "test skill",
        "input_schema": {
            "type": "object",
            "properties": {"key": {"type": "string"}},
            "required": ["key"],
        },
        "providers": [{"side": "internal", "function": f"{__name__}:{function}"}],
    }


CONFIG = parse_config({"skills": {"t.count": _skill("counted"), "t.held": _skill("held")}})


async def test_a_run_cut_mid_batch_repeats_no_finished_call() -> None:
    CALLS.clear()
    GATE["open"], GATE["started"] = asyncio.Event(), asyncio.Event()
    n = BATCH_SIZE + 6  # two batches: one finishes whole, the other is cut with `held` in it
    requests = [{"id": f"c{i}", "skill": "t.count", "args": {"key": f"c{i}"}} for i in range(n)]
    requests.append({"id": "h", "skill": "t.held", "args": {"key": "h"}})
    task = parse_task(requests)
    async with Coordinator.open(CONFIG, checkpointer=InMemorySaver()) as co:
        EXPECTED["calls"] = n + 1
        first = asyncio.create_task(co.run(task, thread_id="cut"))
        async with asyncio.timeout(30):  # every call has started (all but `held` finished)
            await GATE["started"].wait()
        await asyncio.sleep(0.05)  # the finished calls' writes are saved as they finish
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        assert (await co.thread_status(task, "cut")).state == "unfinished"

        GATE["open"].set()
        async with asyncio.timeout(60):
            out = await co.run(task, thread_id="cut")
    assert out["status"] == "ok"
    assert {rid: r["value"] for rid, r in out["results"].items()} == {
        r["id"]: {"key": r["args"]["key"]} for r in requests
    }
    assert sorted(CALLS) == sorted([f"c{i}" for i in range(n)] + ["h", "h"])  # only h again
    attempts = [a for r in out["results"].values() for a in r["attempts"]]
    assert len(attempts) == n + 1  # one attempt each: replayed calls are not counted twice


class CountingSaver(InMemorySaver):
    """LangGraph's in-memory checkpointer, counting the reads of a given checkpoint."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    async def aget_tuple(self, config: Any) -> Any:
        if config["configurable"].get("checkpoint_id"):
            self.reads.append(config["configurable"]["checkpoint_id"])
        return await super().aget_tuple(config)


async def test_a_steps_batches_read_its_checkpoint_once() -> None:
    """Each batch's journal needs the step's saved calls: read once for all the step's
    batches (the checkpoint is the run's whole state), and afresh by a resumed run."""
    CALLS.clear()
    GATE.pop("started", None)
    n = 3 * BATCH_SIZE + 1  # four batches in one step
    task = parse_task(
        [{"id": f"c{i}", "skill": "t.count", "args": {"key": f"c{i}"}} for i in range(n)]
    )
    saver = CountingSaver()
    async with Coordinator.open(CONFIG, checkpointer=saver) as co, asyncio.timeout(60):
        out = await co.run(task, thread_id="once")
    assert out["status"] == "ok" and len(out["results"]) == n
    assert sorted(CALLS) == sorted(f"c{i}" for i in range(n))
    assert len(saver.reads) == len(set(saver.reads)) == 1


async def test_without_a_checkpointer_batches_answer_every_request() -> None:
    CALLS.clear()
    GATE.pop("started", None)
    n = 2 * BATCH_SIZE + 1
    task = parse_task(
        [{"id": f"c{i}", "skill": "t.count", "args": {"key": f"c{i}"}} for i in range(n)]
    )
    async with Coordinator.open(CONFIG) as co, asyncio.timeout(60):
        out = await co.run(task)
    assert out["status"] == "ok" and len(out["results"]) == n
    assert sorted(CALLS) == sorted(f"c{i}" for i in range(n))


async def test_built_ins_never_block_the_event_loop() -> None:
    """The built-ins that run on the loop (hybridmcp.capabilities.builtin.runs_inline) do no
    blocking I/O there, as LangGraph's server demands (its blocking-call detector, here
    in process): a time zone is loaded in a worker thread the first time, used inline after."""
    from blockbuster import blockbuster_ctx

    zones = ["America/Lima", "Pacific/Chatham", "Africa/Casablanca"]
    requests = [
        {"id": f"now-{z}", "skill": "time.now", "args": {"timezone": z}, "strategy": "internal"}
        for z in zones
    ] + [
        {
            "id": "convert",
            "skill": "time.convert",
            "args": {"source_timezone": zones[0], "time": "10:00", "target_timezone": zones[1]},
            "strategy": "internal",
        },
        {"id": "calc", "skill": "math.calculate", "args": {"expression": "1 + 2 * 3"}},
        {"id": "stats", "skill": "text.stats", "args": {"text": "One two. Three four five."}},
        {"id": "sum", "skill": "text.summarize", "args": {"text": "One. Two two. Three."}},
    ]
    async with Coordinator.open(parse_config({})) as co, asyncio.timeout(60):
        with blockbuster_ctx():
            for _ in range(2):  # the first loads the zones (in a thread), the second inline
                out = await co.run(parse_task(requests))
                errors = {k: r["error"] for k, r in out["results"].items() if r["error"]}
                assert out["status"] == "ok", errors

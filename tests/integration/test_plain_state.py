"""Checkpointed state holds only JSON types, so a run resumes under LangGraph's strict msgpack
mode (``LANGGRAPH_STRICT_MSGPACK``), which refuses custom types such as ``Enum`` members."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.types import Send

from hybridmcp.coordinator import Coordinator
from hybridmcp.task import parse_task
from tests.conftest import time_server_config

JSON_TYPES = (str, int, float, bool, type(None), list, dict)


def non_json(value: Any, path: str = "$") -> list[str]:
    if isinstance(value, Send):  # LangGraph's own (allowed) type: what it carries is ours
        return non_json(value.arg, f"{path}.arg")
    if type(value) not in JSON_TYPES:
        return [f"{path}: {type(value).__module__}.{type(value).__qualname__}"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_json(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in non_json(v, f"{path}[{i}]")]
    return []


async def test_every_checkpoint_and_write_holds_only_json_types(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A run with cross-validation, a declared sensitivity, privacy decisions, a request error
    and events of several kinds: every checkpoint and every pending write, loaded back by
    LangGraph's serializer, holds plain JSON values only, and loading them warns of no
    unregistered type (what strict mode would refuse)."""
    saver = InMemorySaver(serde=JsonPlusSerializer())
    task = parse_task(
        {
            "requests": [
                {"id": "a", "skill": "time.now", "args": {"timezone": "UTC"}, "critical": True},
                {
                    "id": "b",
                    "skill": "text.stats",
                    "args": {"text": "mail jane@acme.io"},
                    "sensitivity": "confidential",
                },
                {"id": "c", "skill": "time.now", "args": {"timezone": "Mars/Olympus"}},
                {"id": "d", "skill": "math.calculate", "args": {"expression": "2*21"}},
            ]
        }
    )
    async with Coordinator.open(time_server_config(), checkpointer=saver) as co:
        out = await co.run(task, thread_id="plain")
        assert set(out["results"]) == {"a", "b", "c", "d"}
        assert out["events"], "the run had events to check"
        problems: list[str] = []
        for tup in saver.list(None):
            problems += non_json(dict(tup.checkpoint["channel_values"]), "checkpoint")
            for _task, channel, value in tup.pending_writes or []:
                problems += non_json(value, f"write[{channel}]")
        state = await co.graph.aget_state(co.run_config("plain"))
        problems += non_json(dict(state.values), "state")
    assert not problems, "\n".join(sorted(set(problems))[:20])
    assert "unregistered type" not in caplog.text

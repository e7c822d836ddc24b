"""The coordinator embedded in a parent graph (examples/subgraph.py), both ways."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from hybridmcp import Context, Resources, build_graph, parse_config

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "subgraph.py"
QUESTION = "What is 17 * 23.5 + 2 ** 10 / 4, and the time in Asia/Tokyo?"


def _load_example():
    spec = importlib.util.spec_from_file_location("example_subgraph", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # so that its type hints resolve
    spec.loader.exec_module(module)
    return module


example = _load_example()

# The time server under a name of its own: answers that name it prove the subgraph ran on the
# parent's resources, not on resources it opened by itself.
CONFIG = parse_config(
    {
        "mcpServers": {
            "clock": {"command": "mcp-server-time", "args": ["--local-timezone", "UTC"]}
        },
        "skills": {
            "time.now": {
                "providers": [{"side": "external", "server": "clock", "tool": "get_current_time"}]
            }
        },
    }
)


@pytest.fixture
async def context():
    async with asyncio.timeout(60), await Resources.open(CONFIG) as resources:
        yield Context(resources=resources)


async def test_coordinator_as_a_node_with_shared_keys(context: Context) -> None:
    coordinator = build_graph().compile(name="hybridmcp")
    parent = example.build_shared_parent(coordinator)
    async with asyncio.timeout(60):
        out = await parent.ainvoke({"question": QUESTION}, context=context)
    assert out["status"] == "ok"
    assert [r["id"] for r in out["requests"]] == ["calc", "time-0"]
    assert out["results"]["calc"]["value"] == {"value": 655.5}
    time_result = out["results"]["time-0"]
    assert time_result["agreement"] is True
    assert "mcp:clock/get_current_time" in time_result["sources"]
    assert out["answer"].startswith("17 * 23.5 + 2 ** 10 / 4 = 655.5; in Asia/Tokyo it is ")
    assert out["answer"].endswith("(cross-validated)")
    assert "pending" not in out  # the coordinator's internal state stays inside it


async def test_coordinator_inside_a_mapping_node_with_a_checkpointer(context: Context) -> None:
    parent = example.build_mapping_parent()
    parent.checkpointer = InMemorySaver()
    config = {"configurable": {"thread_id": "qa"}}
    async with asyncio.timeout(60):
        out = await parent.ainvoke({"question": QUESTION}, config, context=context)
    assert set(out) == {"question", "answer"}
    assert "655.5" in out["answer"] and "(cross-validated)" in out["answer"]
    state = await parent.aget_state(config)
    assert state.values["answer"] == out["answer"]


async def test_nothing_to_coordinate(context: Context) -> None:
    out = await example.build_mapping_parent().ainvoke({"question": "hello?"}, context=context)
    assert out["answer"] == "nothing to coordinate in that question"


def test_the_example_runs_as_a_script() -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "What is 6 * 7, and the time in UTC?"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["qa-shared", "qa-mapping"]
    assert all("6 * 7 = 42; in UTC it is " in line for line in lines)

"""The two documented shapes of ``results`` (docs/server.md): a mapping by request id in the
graph's output, the same objects as a list in ``hybridmcp run --json``; both in task order."""

from __future__ import annotations

import asyncio

from hybridmcp import Coordinator, parse_config
from hybridmcp.cli import report
from hybridmcp.task import parse_task


async def test_results_are_a_mapping_in_the_graph_and_a_list_in_json():
    requests = [
        {"id": rid, "skill": "math.calculate", "args": {"expression": f"{n} * 2"}}
        for rid, n in [("z", 1), ("a", 2), ("m", 3), ("10", 4), ("2", 5)]
    ]
    async with asyncio.timeout(60), Coordinator.open(parse_config({})) as co:
        out = await co.run(parse_task({"requests": requests}))
    ids = [r["id"] for r in requests]
    assert isinstance(out["results"], dict)
    assert list(out["results"]) == ids  # task order, not sorted, not completion order
    assert all(out["results"][rid]["id"] == rid for rid in ids)
    printed = report(out)["results"]
    assert isinstance(printed, list)
    assert printed == [out["results"][rid] for rid in ids]
    assert [r["value"] for r in printed] == [{"value": v} for v in (2, 4, 6, 8, 10)]

"""Drive the coordinator on a LangGraph server with ``langgraph_sdk``.

Start the server from the repository root (it serves the graph named in ``langgraph.json``;
set ``HYBRIDMCP_CONFIG`` to serve your own configuration), then run this script:

    langgraph dev --no-browser                  # http://127.0.0.1:2024, Studio link printed
    python examples/server_client.py            # or: python examples/server_client.py URL

It streams one run (``updates`` and the coordinator's ``custom`` progress events) and waits for
a second on a thread of its own.
"""

from __future__ import annotations

import asyncio
import json
import sys

from langgraph_sdk import get_client

REQUESTS = [
    {"id": "total", "skill": "math.calculate", "args": {"expression": "(17 * 23.5) + 2 ** 10 / 4"}},
    {"id": "paris", "skill": "time.now", "args": {"timezone": "Europe/Paris"}, "critical": True},
]


def describe(event: dict) -> str | None:
    if event["type"] == "phase" and event["status"] == "finished":
        extra = f", {event['attempts']} attempts dispatched" if event.get("attempts") else ""
        return f"phase {event['node']} done in {event['ms']:.1f} ms{extra}"
    if event["type"] == "attempt" and event["status"] == "finished":
        mark = "ok" if event["ok"] else f"FAILED ({event['error']})"
        return f"  {event['request_id']} on {event['provider']}: {mark}"
    if event["type"] in ("reallocation", "conflict", "event"):
        return f"  {event['type']}: {json.dumps(event)}"
    return None


async def main(url: str) -> None:
    client = get_client(url=url)
    [assistant] = await client.assistants.search(graph_id="hybridmcp", limit=1)
    print(f"assistant {assistant['assistant_id']} serves graph {assistant['graph_id']!r}")

    async for part in client.runs.stream(
        None, "hybridmcp", input={"requests": REQUESTS}, stream_mode=["updates", "custom"]
    ):
        if part.event == "custom" and (line := describe(part.data)):
            print(line)
        elif part.event == "error":
            raise SystemExit(f"run failed: {part.data}")

    thread = await client.threads.create()
    out = await client.runs.wait(thread["thread_id"], "hybridmcp", input={"requests": REQUESTS})
    print(f"status: {out['status']}")
    for result in out["results"].values():
        agreement = {True: "agreed", False: "CONFLICT", None: "single side"}[result["agreement"]]
        print(
            f"  {result['id']}: {json.dumps(result['value'])} ({result['allocation']}, {agreement})"
        )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:2024"))

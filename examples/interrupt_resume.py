"""A conflict pauses the run for a human decision; the run resumes with the decision.

With ``coordination_config.interrupt_on_conflict`` on, a cross-validated request whose two
sides disagree (by at least ``conflict_interrupt_threshold``) pauses the run in the ``review``
node with ``interrupt()``. Here the internal side of ``clock.now`` is a clock two hours fast,
checked against the real ``mcp-server-time``. The run needs a checkpointer; it resumes with
``Command(resume={request_id: "internal" | "external" | <value>})`` (``Coordinator.resume``).
In LangGraph Studio the same pause shows as an interrupt to answer.

    python examples/interrupt_resume.py            # asks on the terminal
    python examples/interrupt_resume.py external   # answers without asking
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime, timedelta
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from hybridmcp import Coordinator, parse_config, parse_task
from hybridmcp.capabilities.builtin import current_time


def fast_clock(timezone: str) -> dict[str, Any]:
    """An internal clock two hours fast: the kind of disagreement a human should settle."""
    value = current_time(timezone)
    moment = datetime.fromisoformat(value["datetime"]) + timedelta(hours=2)
    return value | {"datetime": moment.isoformat(timespec="seconds")}


CONFIG = {
    "coordination_config": {"interrupt_on_conflict": True, "conflict_interrupt_threshold": 0.1},
    "mcpServers": {"time": {"command": "mcp-server-time", "args": ["--local-timezone", "UTC"]}},
    "skills": {
        "clock.now": {
            "description": "The current time in an IANA time zone.",
            "input_schema": {
                "type": "object",
                "properties": {"timezone": {"type": "string"}},
                "required": ["timezone"],
            },
            "comparator": {
                "type": "fields",
                "fields": {"timezone": {"type": "exact"}, "datetime": {"type": "datetime"}},
            },
            "providers": [
                {"side": "internal", "function": f"{__name__}:fast_clock"},
                {"side": "external", "server": "time", "tool": "get_current_time"},
            ],
        }
    },
}
TASK = {
    "requests": [{"id": "now", "skill": "clock.now", "args": {"timezone": "UTC"}, "critical": True}]
}


async def ask(prompt: str) -> str:
    try:
        return (await asyncio.to_thread(input, prompt)).strip()
    except EOFError:  # no terminal and nothing piped in
        print("\nerror: no answer on stdin: give it as an argument (internal or external)",
              file=sys.stderr)  # fmt: skip
        sys.exit(2)


async def main(answer: str | None) -> None:
    config = parse_config(CONFIG)
    async with Coordinator.open(config, checkpointer=InMemorySaver()) as co:
        out = await co.run(parse_task(TASK), thread_id="review-demo")
        while "__interrupt__" in out:
            request = out["__interrupt__"][0].value
            decision = {}
            for conflict in request["conflicts"]:
                print(f"conflict on {conflict['request_id']!r} ({conflict['skill']}):")
                for side, value in conflict["values"].items():
                    print(f"  {side}: {json.dumps(value)}")
                choice = answer or await ask("take which side? [internal/external] ")
                decision[conflict["request_id"]] = choice
            out = await co.resume(decision, thread_id="review-demo")
    result = out["results"]["now"]
    print(f"status {out['status']}: {json.dumps(result['value'])}")
    print(f"resolution: {result.get('resolution')}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))

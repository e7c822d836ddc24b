"""A small MCP server (stdio) that asks its client things no client was shaped for: raw
sampling, elicitation and roots requests with whatever params a test gives, floods of them,
requests that arrive after the call that caused them ended, and a tool that fails when its
question is refused.

Run: ``python tests/asking_server.py``. Tools:

- ``ask(method, params, timeout_s, delay_s)``: waits ``delay_s``, then sends one request
  ``method`` with ``params`` (any JSON, or JSON text decoded first; not checked) and answers
  ``{"result": ...}`` or ``{"refused": {"code", "message"}}``, or ``{"timeout": true}`` when
  the client gave no answer within ``timeout_s``;
- ``flood(method, params, n)``: sends ``n`` such requests at once; answers how many came back
  as results, as refusals (errors), and their messages;
- ``ask_later(method, params, delay_s)``: answers at once, then sends the request ``delay_s``
  later (after the call ended); ``later()`` answers what came back for it so far;
- ``progress(n, message_chars)``: sends ``n`` progress notifications, each with a message of
  ``message_chars`` characters, then answers;
- ``ask_or_fail(method, params, delay_s)``: waits ``delay_s``, sends the request and fails
  the tool call (``isError``) with the client's error when it gets one, as most servers do.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anyio
from mcp.server.fastmcp import Context, FastMCP
from mcp.shared.exceptions import McpError
from pydantic import BaseModel, ConfigDict

server = FastMCP("asking")


class _Raw(BaseModel):
    """A request of any method and params, sent as it is (the SDK checks nothing)."""

    model_config = ConfigDict(extra="allow")
    method: str
    params: Any = None


class _Anything(BaseModel):
    model_config = ConfigDict(extra="allow")


_LATER: list[dict[str, Any]] = []
_TASKS: set[asyncio.Task[Any]] = set()


async def _send(ctx: Context, method: str, params: Any, timeout_s: float) -> dict[str, Any]:  # type: ignore[type-arg]
    try:
        with anyio.fail_after(timeout_s):
            result = await ctx.session.send_request(
                _Raw(method=method, params=params),  # type: ignore[arg-type]
                _Anything,  # type: ignore[arg-type]
            )
    except McpError as err:
        return {"refused": {"code": err.error.code, "message": err.error.message}}
    except TimeoutError:
        return {"timeout": True}
    return {"result": result.model_dump()}


def _params(params: Any) -> Any:
    """``params`` as given, or decoded when it is JSON text (so that what no task may hold,
    such as a lone surrogate written ``\\ud800``, reaches the client)."""
    if isinstance(params, str):
        try:
            return json.loads(params)
        except ValueError:
            return params
    return params


@server.tool()
async def ask(  # type: ignore[type-arg]
    ctx: Context, method: str, params: Any = None, timeout_s: float = 30, delay_s: float = 0
) -> str:
    await asyncio.sleep(delay_s)
    return json.dumps(await _send(ctx, method, _params(params), timeout_s))


@server.tool()
async def flood(ctx: Context, method: str, params: Any = None, n: int = 10) -> str:  # type: ignore[type-arg]
    answers = await asyncio.gather(*(_send(ctx, method, _params(params), 60) for _ in range(n)))
    errors = sorted({a["refused"]["message"] for a in answers if "refused" in a})
    return json.dumps(
        {
            "results": sum("result" in a for a in answers),
            "refusals": sum("refused" in a for a in answers),
            "timeouts": sum("timeout" in a for a in answers),
            "messages": errors,
        }
    )


@server.tool()
async def ask_later(ctx: Context, method: str, params: Any = None, delay_s: float = 0.3) -> str:  # type: ignore[type-arg]
    async def later() -> None:
        await asyncio.sleep(delay_s)
        _LATER.append(await _send(ctx, method, _params(params), 30))

    task = asyncio.create_task(later())
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
    return "asked later"


@server.tool()
async def progress(ctx: Context, n: int = 3, message_chars: int = 10) -> str:  # type: ignore[type-arg]
    for i in range(n):
        await ctx.report_progress(i + 1, n, f"step {i + 1} " + "x" * message_chars)
    return "done"


@server.tool()
async def later() -> str:
    return json.dumps(_LATER)


@server.tool()
async def ask_or_fail(  # type: ignore[type-arg]
    ctx: Context, method: str, params: Any = None, delay_s: float = 0
) -> str:
    await asyncio.sleep(delay_s)
    answer = await _send(ctx, method, _params(params), 60)
    if "refused" in answer:
        raise ValueError(f"the client refused: {answer['refused']['message']}")
    return json.dumps(answer)


if __name__ == "__main__":
    server.run()

"""The fault server itself: FastMCP with every tool call passed through the plan, the
call recorder, the command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from hybridmcp.errors import ConfigError
from hybridmcp.testing.faultserver.plan import (
    ANSWER_MODES,
    CONTROL_TOOL,
    ENV_FAULTS,
    FAULTABLE_TOOLS,
    Answers,
    FaultDecision,
    FaultPlan,
    call_rng,
    load_fault_config,
    render_output,
)
from hybridmcp.testing.faultserver.tools import IMPLEMENTATIONS, WRONG_ANSWERS, ToolInputError


class CallRecorder:
    """Appends one JSON line per call to a file; one ``write`` each, so lines never interleave."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def record(self, tool: str, arguments: Mapping[str, Any]) -> None:
        line = json.dumps(
            {"ts": time.time(), "tool": tool, "arguments": dict(arguments)}, default=repr
        )
        os.write(self._fd, (line + "\n").encode("utf-8"))

    def close(self) -> None:
        os.close(self._fd)


class FaultState:
    """The live fault plan, the call counters and the seed; shared by all sessions."""

    def __init__(
        self,
        plan: FaultPlan,
        seed: int,
        recorder: CallRecorder | None = None,
        stdio: bool = True,
    ) -> None:
        self.plan = plan
        self.seed = seed
        self.recorder = recorder
        self.stdio = stdio
        """Served over stdio: a ``partial`` answer is written to stdout by hand."""
        self.counters: dict[str, int] = {}
        self.total_calls = 0

    def next_decision(self, tool: str) -> FaultDecision:
        self.total_calls += 1
        self.counters[tool] = self.counters.get(tool, 0) + 1
        call = self.counters[tool]
        return self.plan.decide(tool, call, self.total_calls, call_rng(self.seed, tool, call))

    def snapshot(self) -> dict[str, Any]:
        return {
            "faults": self.plan.to_config(),
            "counters": dict(self.counters),
            "total_calls": self.total_calls,
            "seed": self.seed,
            "pid": os.getpid(),
        }


def _answer(text: str, structured: dict[str, Any] | None) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structuredContent=structured
    )


def _normal(result: dict[str, Any]) -> CallToolResult:
    return _answer(*render_output(FaultDecision(), result))


def _run(tool: str, *args: Any) -> dict[str, Any]:
    try:
        return IMPLEMENTATIONS[tool](*args)
    except ToolInputError as err:
        raise ToolError(str(err)) from None


class TypedValue(BaseModel):
    """The declared output of ``calculate_typed``."""

    value: float


class FaultMCP(FastMCP):
    """FastMCP with one hook: every ``tools/call`` is recorded, then passes the fault plan."""

    def __init__(self, state: FaultState, answers: Answers = "both", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fault_state = state
        self.answers = answers

    def _present(self, result: Any) -> Any:
        """In ``text`` mode, a result built with structured content is sent without it."""
        if self.answers == "text" and isinstance(result, CallToolResult):
            return result.model_copy(update={"structuredContent": None})
        return result

    async def _partial(self, name: str, arguments: dict[str, Any], decision: Any) -> None:
        """Over stdio, the first half of the answer's line, then a stall or an exit; over HTTP,
        a hang or an exit in the middle of the call."""
        crash = decision.action == "partial_crash"
        if self.fault_state.stdio:
            result = await super().call_tool(name, arguments)
            content = result[0] if isinstance(result, tuple) else getattr(result, "content", [])
            texts = [getattr(part, "text", "") for part in content]
            line = json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": self.get_context().request_context.request_id,
                    "result": {"content": [{"type": "text", "text": t} for t in texts]},
                }
            ).encode()
            os.write(1, line[: len(line) // 2])
        if crash:
            print(f"faultserver: injected crash mid-answer in {name}", file=sys.stderr)
            sys.stderr.flush()
            os._exit(1)
        await asyncio.Event().wait()

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        state = self.fault_state
        if state.recorder is not None:
            state.recorder.record(name, arguments)
        if name not in FAULTABLE_TOOLS:
            return self._present(await super().call_tool(name, arguments))
        decision = state.next_decision(name)
        if decision.delay_s > 0:
            await asyncio.sleep(decision.delay_s)
        if decision.action == "crash":
            print(f"faultserver: injected crash in {name} ({decision.reason})", file=sys.stderr)
            sys.stderr.flush()
            os._exit(1)
        if decision.action in ("partial_stall", "partial_crash"):
            await self._partial(name, arguments, decision)
        if decision.action == "hang":
            await asyncio.Event().wait()  # nobody ever sets it: the call never answers
        if decision.action == "fail":
            raise ToolError(f"injected failure in {name} ({decision.reason})")
        result = await super().call_tool(name, arguments)
        if decision.output == "normal":
            return self._present(result)
        if isinstance(result, tuple):  # a tool with an output schema: (content, structured)
            structured = result[1]
        elif isinstance(result, CallToolResult) and not result.isError:
            structured = result.structuredContent
        else:  # pragma: no cover - defensive
            return result
        if structured is None:  # pragma: no cover - defensive
            return result
        # A CallToolResult is sent as it is: the server does not check it against the schema.
        return self._present(_answer(*render_output(decision, structured, WRONG_ANSWERS.get(name))))


# Long by design: one registration per tool, each a few lines, read as the tool list.
def build_server(
    state: FaultState,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "WARNING",
    answers: Answers = "both",
) -> FaultMCP:
    """The MCP server: the real tools, served through ``state``'s fault plan, answering as
    ``answers`` says (see the module docstring)."""
    server = FaultMCP(
        state,
        answers,
        name="hybridmcp-faultserver",
        instructions="Real tools with configurable injected faults (hybridmcp test tooling).",
        host=host,
        port=port,
        log_level=log_level,
    )
    read_only = ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False)
    structured = answers == "structured"
    returns = dict[str, Any] if structured else CallToolResult

    def answer(result: dict[str, Any]) -> Any:
        """A normal answer: the object itself for FastMCP to render, or text plus structure."""
        return result if structured else _normal(result)

    def tool(name: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
        """``server.tool``, with the return type and structured output of the answer mode."""

        def register(fn: Callable[..., Any]) -> Any:
            fn.__annotations__["return"] = returns
            return server.tool(name=name, structured_output=structured, **kwargs)(fn)

        return register

    @tool("get_current_time", annotations=read_only)
    def get_current_time(
        timezone: Annotated[str, Field(description="IANA timezone name, e.g. 'Europe/London'")],
    ) -> Any:
        """Get current time in a specific timezone."""
        return answer(_run("get_current_time", timezone))

    @tool("convert_time", annotations=read_only)
    def convert_time(
        source_timezone: Annotated[str, Field(description="Source IANA timezone name")],
        time: Annotated[str, Field(description="Time to convert in 24-hour format (HH:MM)")],
        target_timezone: Annotated[str, Field(description="Target IANA timezone name")],
    ) -> Any:
        """Convert time between timezones."""
        return answer(_run("convert_time", source_timezone, time, target_timezone))

    @tool("calculate", annotations=read_only)
    def calculate(
        expression: Annotated[str, Field(description="Arithmetic: + - * / // % ** and ( )")],
    ) -> Any:
        """Evaluate an arithmetic expression safely; returns {"value": number}."""
        return answer(_run("calculate", expression))

    @server.tool(name="calculate_typed", annotations=read_only, structured_output=True)
    def calculate_typed(
        expression: Annotated[str, Field(description="Arithmetic: + - * / // % ** and ( )")],
    ) -> TypedValue:
        """calculate, with an output schema: {"value": number}."""
        try:
            return TypedValue(**IMPLEMENTATIONS["calculate"](expression))
        except ToolInputError as err:
            raise ToolError(str(err)) from None

    @tool("word_count", annotations=read_only)
    def word_count(text: str) -> Any:
        """Count words, characters and sentences of a text."""
        return answer(_run("word_count", text))

    @tool("echo", annotations=read_only)
    def echo(text: str) -> Any:
        """Return the text unchanged, as {"text": text}."""
        return answer({"text": text})

    @tool("echo_json", annotations=read_only)
    def echo_json(payload: dict[str, Any]) -> Any:
        """Return a JSON object unchanged, as {"payload": payload}."""
        return answer({"payload": payload})

    @tool("sleep", annotations=read_only)
    async def sleep(
        ms: Annotated[int, Field(ge=0, le=3_600_000, description="Milliseconds to sleep")],
    ) -> Any:
        """Sleep for ms milliseconds (a real asyncio sleep), then return {"slept_ms": ms}."""
        await asyncio.sleep(ms / 1000.0)
        return answer({"slept_ms": ms})

    @tool(CONTROL_TOOL)
    def fault_control(faults: dict[str, Any] | None = None, reset_counters: bool = False) -> Any:
        """Replace the fault configuration (if given), optionally reset the call counters, and
        return the configuration, the per-tool call counters, the seed and the server's pid."""
        if faults is not None:
            try:
                state.plan = FaultPlan.from_config(faults, known_tools=FAULTABLE_TOOLS)
            except ConfigError as err:
                raise ToolError(str(err)) from None
        if reset_counters:
            state.counters.clear()
            state.total_calls = 0
        return answer(state.snapshot())

    return server


def require_header(app: Any, header: str) -> Any:
    """The ASGI ``app`` behind a check: an HTTP request without ``header`` ("Name: value")
    gets 401 and never reaches the MCP server."""
    name, _, value = header.partition(":")
    wanted = (name.strip().lower().encode(), value.strip().encode())

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and wanted not in list(scope.get("headers", [])):
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )
            await send({"type": "http.response.body", "body": b"missing or wrong header\n"})
            return
        await app(scope, receive, send)

    return guarded


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m hybridmcp.testing.faultserver",
        description="An MCP server with real tools and configurable injected faults.",
    )
    parser.add_argument("--transport", choices=("stdio", "streamable-http", "sse"), default="stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--faults",
        metavar="JSON_OR_PATH",
        help=f"fault config: a JSON object or a JSON/YAML file (default: ${ENV_FAULTS})",
    )
    parser.add_argument("--record", metavar="FILE", help="append one JSON line per call to FILE")
    parser.add_argument("--seed", type=int, help="seed of the random faults (default: random)")
    parser.add_argument(
        "--answers",
        choices=ANSWER_MODES,
        default="both",
        help="answer with JSON text and structured content (both), text only, or FastMCP's "
        "structured output with an output schema (structured)",
    )
    parser.add_argument(
        "--require-header",
        metavar="'NAME: VALUE'",
        help="HTTP transports: answer 401 to every request that lacks this header",
    )
    parser.add_argument(
        "--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR")
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    source = args.faults if args.faults is not None else os.environ.get(ENV_FAULTS)
    try:
        config = load_fault_config(source) if source else None
        plan = FaultPlan.from_config(config, known_tools=FAULTABLE_TOOLS)
    except ConfigError as err:
        print(f"faultserver: error: {err}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    try:
        recorder = CallRecorder(args.record) if args.record else None
    except OSError as err:
        print(f"faultserver: error: --record {args.record!r}: {err.strerror}", file=sys.stderr)
        return 2
    state = FaultState(plan, seed, recorder, stdio=args.transport == "stdio")
    server = build_server(
        state, host=args.host, port=args.port, log_level=args.log_level, answers=args.answers
    )
    try:
        if args.transport == "stdio":
            server.run("stdio")
        else:
            import uvicorn

            if args.transport == "streamable-http":
                app = server.streamable_http_app()  # the MCP endpoint is /mcp
            else:
                app = server.sse_app()  # the event stream is /sse, messages go to /messages/
            if args.require_header:
                app = require_header(app, args.require_header)
            config = uvicorn.Config(
                app,
                host=args.host,
                port=args.port,
                log_level=args.log_level.lower(),
                timeout_graceful_shutdown=1,  # a hanging call must not block shutdown
            )
            asyncio.run(uvicorn.Server(config).serve())
    except KeyboardInterrupt:
        pass
    finally:
        if recorder is not None:
            recorder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

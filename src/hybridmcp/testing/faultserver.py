"""A real MCP server that misbehaves on purpose: the project's fault-injecting test server.

It serves real tools, so its answers can be cross-validated against hybridmcp's internal skills:

- ``get_current_time(timezone)`` and ``convert_time(source_timezone, time, target_timezone)``,
  with the output shapes of the PyPI ``mcp-server-time`` server;
- ``calculate(expression)`` -> ``{"value": number}`` (safe arithmetic, an ``ast`` walker);
  ``calculate_typed(expression)`` is the same with a declared ``outputSchema`` (the only tool
  with one), so a ``wrong_shape`` answer breaks a schema the client can check;
- ``word_count(text)`` -> ``{"words", "characters", "sentences"}``;
- ``echo(text)`` -> ``{"text"}`` and ``sleep(ms)`` -> ``{"slept_ms"}`` (a real asyncio sleep);
- ``echo_json(payload)`` -> ``{"payload"}``: any JSON object back, never faulted (the privacy
  proof's recording target);
- ``fault_control(faults=None, reset_counters=False)``: replace the fault configuration at run
  time and read it back with the per-tool call counters (never itself subject to faults).

How results are answered is chosen with ``--answers`` (faulted answers included):

``both`` (the default)
    A JSON text content (indented, like ``mcp-server-time``) plus the same object as structured
    content. No tool declares an output schema, so a malformed answer reaches the client as it
    is, the way a badly behaved real server's would.
``text``
    The JSON text content only, no structured content: the client must parse the text.
``structured``
    FastMCP's natural structured output: each tool returns its object and is registered with
    ``structured_output=True``, so it declares an output schema (any object) and FastMCP writes
    both contents. A faulted answer is still sent as it is; the client checks it against the
    schema (an ``invalid_json`` answer, having no structured content, fails that check).

``calculate_typed`` keeps its declared output schema and structured content in every mode.

Run it::

    python -m hybridmcp.testing.faultserver                       # stdio
    python -m hybridmcp.testing.faultserver --transport streamable-http --port 8123  # /mcp
    python -m hybridmcp.testing.faultserver --transport sse --port 8124              # /sse
    python -m hybridmcp.testing.faultserver --transport streamable-http \\
        --require-header 'Authorization: Bearer s3cret'   # 401 to any request without it
    python -m hybridmcp.testing.faultserver --faults '{"calculate": {"fail_first": 2}}' \\
        --seed 7 --record calls.jsonl --answers text

Faults are keyed by tool name, or ``"*"`` for every tool (a tool's own keys override the ``"*"``
keys one by one). They come from ``--faults`` (a JSON object, or the path of a JSON or YAML file),
else the ``HYBRIDMCP_FAULTS`` environment variable (same format), and can be replaced at run time
with ``fault_control``. Keys of one tool's spec, all optional:

``latency_ms``, ``jitter_ms``
    Delay added to every call: ``latency_ms`` plus a uniform draw in ``[0, jitter_ms]``.
``fail_rate``, ``fail_first``
    The call fails with an MCP tool error (``isError=true``): with probability ``fail_rate``
    (deterministic given ``--seed``), or for the first ``fail_first`` calls.
``hang``, ``hang_rate``
    The call never answers (always, or with probability ``hang_rate``).
``crash``, ``crash_after``
    The process exits with ``os._exit(1)`` in the middle of the call, without answering: on every
    call, or on call ``crash_after + 1`` and later.
``malformed``
    ``true`` or ``"invalid_json"``: the text is truncated JSON (no structured content);
    ``"wrong_shape"``: valid JSON of the wrong shape (``{"status": "ok", "data": [values]}``).
``oversized_bytes``
    The text content is exactly that many bytes (the real answer padded, while it fits).
``error_text``
    The given message is returned as a NORMAL result, ``isError=false``, as some servers do.
``wrong_answer``
    A plausible but different value: ``calculate`` +1, times shifted by 3 hours, ``word_count``
    one word more, ``echo`` one character less, ``sleep`` one millisecond more.

Counting keys (``fail_first``, ``crash_after``) count the calls of the scope they are written in:
under a tool name, that tool's calls; under ``"*"``, all tool calls. Precedence when several
apply: crash, hang, fail; then error_text, malformed, oversized, wrong_answer. Random draws come
from ``random.Random`` seeded by (seed, tool, call number), so a given call of a given tool gets
the same fate whatever the order or concurrency of the calls.

``--record FILE`` appends one JSON line per received tool call, before any fault is applied::

    {"ts": 1767225600.123, "tool": "echo", "arguments": {"text": "hi"}}

(``fault_control`` calls are recorded too; filter on ``tool``.)
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import math
import operator
import os
import random
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hybridmcp.errors import ConfigError

WILDCARD = "*"
CONTROL_TOOL = "fault_control"
FAULTABLE_TOOLS = (
    "get_current_time",
    "convert_time",
    "calculate",
    "calculate_typed",
    "word_count",
    "echo",
    "sleep",
)
ENV_FAULTS = "HYBRIDMCP_FAULTS"
Answers = Literal["both", "text", "structured"]
ANSWER_MODES: tuple[Answers, ...] = ("both", "text", "structured")
WRONG_TIME_SHIFT = timedelta(hours=3)


# --------------------------------------------------------------------------------------------
# The fault plan: pure decisions, no I/O, no MCP.
# --------------------------------------------------------------------------------------------


class FaultSpec(BaseModel):
    """The faults of one tool (or of ``"*"``). Every key is optional; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    latency_ms: float = Field(default=0.0, ge=0)
    jitter_ms: float = Field(default=0.0, ge=0)
    fail_rate: float = Field(default=0.0, ge=0, le=1)
    fail_first: int = Field(default=0, ge=0)
    hang: bool = False
    hang_rate: float = Field(default=0.0, ge=0, le=1)
    crash: bool = False
    crash_after: int | None = Field(default=None, ge=0)
    malformed: bool | Literal["invalid_json", "wrong_shape"] = False
    oversized_bytes: int | None = Field(default=None, ge=0)
    error_text: str | None = None
    wrong_answer: bool = False


Action = Literal["answer", "fail", "hang", "crash"]
Output = Literal["normal", "error_text", "invalid_json", "wrong_shape", "oversized", "wrong_answer"]


@dataclass(frozen=True)
class FaultDecision:
    """What to do with one call: wait ``delay_s``, then ``action``; if answering, ``output``."""

    delay_s: float = 0.0
    action: Action = "answer"
    output: Output = "normal"
    reason: str = ""
    error_text: str | None = None
    oversized_bytes: int | None = None


def _describe_validation_error(err: ValidationError, prefix: str) -> str:
    """One clause per offending key, e.g. ``faults.echo.fail_rate: ... (got 2)``."""
    reasons: dict[str, list[str]] = {}
    inputs: dict[str, Any] = {}
    for item in err.errors():
        key = f"{prefix}.{item['loc'][0]}" if item["loc"] else prefix
        if item["type"] == "extra_forbidden":
            message = f"unknown fault key; known keys: {', '.join(FaultSpec.model_fields)}"
        else:
            message = item["msg"]
            inputs[key] = item.get("input")
        reasons.setdefault(key, [])
        if message not in reasons[key]:  # a union reports one error per member
            reasons[key].append(message)
    return "; ".join(
        f"{key}: {', or '.join(messages)}" + (f" (got {inputs[key]!r})" if key in inputs else "")
        for key, messages in reasons.items()
    )


class FaultPlan(BaseModel):
    """Fault specs by tool name (``"*"`` for all tools), and the per-call decision rule."""

    model_config = ConfigDict(frozen=True)

    faults: dict[str, FaultSpec] = Field(default_factory=dict)

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any] | None, known_tools: Sequence[str] | None = None
    ) -> FaultPlan:
        """Validate a ``{tool: {key: value}}`` mapping; errors name the tool and the key."""
        if config is None:
            return cls()
        if not isinstance(config, Mapping):
            raise ConfigError(
                f"faults: expected an object mapping tool names to fault specs, "
                f"got {type(config).__name__}"
            )
        specs: dict[str, FaultSpec] = {}
        for tool, raw in config.items():
            if not isinstance(tool, str):
                raise ConfigError(f"faults: tool names must be strings, got {tool!r}")
            if known_tools is not None and tool != WILDCARD and tool not in known_tools:
                raise ConfigError(
                    f"faults.{tool}: unknown tool {tool!r}; known tools: "
                    f"{', '.join([WILDCARD, *known_tools])}"
                )
            if raw is None:
                raw = {}
            if not isinstance(raw, Mapping):
                raise ConfigError(
                    f"faults.{tool}: expected an object of fault keys, got {type(raw).__name__}"
                )
            try:
                specs[tool] = FaultSpec.model_validate(dict(raw))
            except ValidationError as err:
                raise ConfigError(_describe_validation_error(err, f"faults.{tool}")) from None
        return cls(faults=specs)

    def to_config(self) -> dict[str, dict[str, Any]]:
        """The plan as it was configured (only the keys that were given)."""
        return {tool: spec.model_dump(exclude_unset=True) for tool, spec in self.faults.items()}

    def _key(self, tool: str, name: str) -> tuple[Any, str]:
        """A key's effective value and the scope it comes from (the tool's own, or ``"*"``)."""
        own = self.faults.get(tool)
        if own is not None and name in own.model_fields_set:
            return getattr(own, name), tool
        star = self.faults.get(WILDCARD)
        if star is not None and name in star.model_fields_set:
            return getattr(star, name), WILDCARD
        return FaultSpec.model_fields[name].default, tool

    def decide(
        self, tool: str, tool_call: int, total_call: int, rng: random.Random
    ) -> FaultDecision:
        """The fate of call number ``tool_call`` of ``tool`` (``total_call`` over all tools).

        Both numbers count from 1 and include this call. ``rng`` is drawn from exactly three
        times whatever the plan, so decisions do not shift when the plan changes.
        """
        u_jitter, u_hang, u_fail = rng.random(), rng.random(), rng.random()

        def get(name: str) -> Any:
            return self._key(tool, name)[0]

        def count(name: str) -> int:
            return total_call if self._key(tool, name)[1] == WILDCARD else tool_call

        delay_s = (get("latency_ms") + get("jitter_ms") * u_jitter) / 1000.0

        crash_after = get("crash_after")
        if get("crash"):
            return FaultDecision(delay_s, "crash", reason="crash")
        if crash_after is not None and count("crash_after") > crash_after:
            return FaultDecision(
                delay_s, "crash", reason=f"crash_after={crash_after} (call {count('crash_after')})"
            )
        if get("hang"):
            return FaultDecision(delay_s, "hang", reason="hang")
        if u_hang < get("hang_rate"):
            return FaultDecision(delay_s, "hang", reason=f"hang_rate={get('hang_rate')}")
        fail_first = get("fail_first")
        if count("fail_first") <= fail_first:
            return FaultDecision(
                delay_s, "fail", reason=f"fail_first={fail_first} (call {count('fail_first')})"
            )
        if u_fail < get("fail_rate"):
            return FaultDecision(delay_s, "fail", reason=f"fail_rate={get('fail_rate')}")

        if get("error_text") is not None:
            return FaultDecision(delay_s, output="error_text", error_text=get("error_text"))
        malformed = get("malformed")
        if malformed:
            output: Output = "wrong_shape" if malformed == "wrong_shape" else "invalid_json"
            return FaultDecision(delay_s, output=output)
        if get("oversized_bytes") is not None:
            return FaultDecision(
                delay_s, output="oversized", oversized_bytes=get("oversized_bytes")
            )
        if get("wrong_answer"):
            return FaultDecision(delay_s, output="wrong_answer")
        return FaultDecision(delay_s)


def call_rng(seed: int, tool: str, call: int) -> random.Random:
    """The random source of one call: a function of (seed, tool, call number) only."""
    return random.Random(f"{seed}:{tool}:{call}")


def load_fault_config(source: str) -> Any:
    """Parse ``--faults``: a JSON object given inline, or the path of a JSON or YAML file."""
    text = source.strip()
    if text.startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"faults: invalid JSON: {err}") from None
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"faults: {source!r} is neither a JSON object nor an existing file")
    content = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(content)
        except yaml.YAMLError as err:
            raise ConfigError(f"faults: invalid YAML in {path}: {err}") from None
    try:
        return json.loads(content)
    except json.JSONDecodeError as err:
        raise ConfigError(f"faults: invalid JSON in {path}: {err}") from None


def render_output(
    decision: FaultDecision,
    result: dict[str, Any],
    wrong: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> tuple[str, dict[str, Any] | None]:
    """The text content and structured content of an answer, after the decided output fault."""
    match decision.output:
        case "error_text":
            return decision.error_text or "", None
        case "invalid_json":
            text = json.dumps(result, indent=2)
            return text[: max(1, len(text) // 2)], None
        case "wrong_shape":
            shaped = {"status": "ok", "data": list(result.values())}
            return json.dumps(shaped, indent=2), shaped
        case "oversized":
            return _padded_json(result, decision.oversized_bytes or 0), None
        case "wrong_answer":
            changed = (wrong or _wrong_generic)(result)
            return json.dumps(changed, indent=2), changed
        case _:
            return json.dumps(result, indent=2), result


def _padded_json(result: dict[str, Any], size: int) -> str:
    """A text of exactly ``size`` bytes: the result with a padding field, or ``x`` repeated."""
    empty = json.dumps({**result, "padding": ""})  # ensure_ascii: one byte per character
    room = size - len(empty)
    if room < 0:
        return "x" * size
    return json.dumps({**result, "padding": "x" * room})


def _wrong_generic(result: dict[str, Any]) -> dict[str, Any]:
    return {**result, "wrong": True}


# --------------------------------------------------------------------------------------------
# The tools' real implementations (pure functions of their arguments and the clock).
# --------------------------------------------------------------------------------------------


class ToolInputError(ValueError):
    """A tool was called with arguments it cannot serve (answered as an MCP tool error)."""


_ZONES: frozenset[str] | None = None


def _zone(name: str) -> ZoneInfo:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    if name not in _ZONES:
        raise ToolInputError(f"Invalid timezone: No time zone found with key {name}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:  # pragma: no cover - listed, unloadable
        raise ToolInputError(f"Invalid timezone: {err}") from None


def _time_result(zone_name: str, moment: datetime) -> dict[str, Any]:
    return {
        "timezone": zone_name,
        "datetime": moment.isoformat(timespec="seconds"),
        "day_of_week": moment.strftime("%A"),
        "is_dst": bool(moment.dst()),
    }


def _hours_text(hours: float) -> str:
    if hours.is_integer():
        return f"{hours:+.1f}h"
    return f"{hours:+.2f}".rstrip("0").rstrip(".") + "h"


def current_time(timezone: str) -> dict[str, Any]:
    """``mcp-server-time``'s ``get_current_time``: the time now in an IANA zone."""
    zone = _zone(timezone)
    return _time_result(timezone, datetime.now(zone))


def convert_time(source_timezone: str, time: str, target_timezone: str) -> dict[str, Any]:
    """``mcp-server-time``'s ``convert_time``: HH:MM today in the source zone, in the target."""
    source, target = _zone(source_timezone), _zone(target_timezone)
    try:
        parsed = datetime.strptime(time, "%H:%M").time()
    except ValueError:
        raise ToolInputError("Invalid time format. Expected HH:MM [24-hour format]") from None
    now = datetime.now(source)
    moment = datetime(now.year, now.month, now.day, parsed.hour, parsed.minute, tzinfo=source)
    round_trip = datetime.fromtimestamp(moment.timestamp(), source)
    if round_trip.replace(tzinfo=None) != moment.replace(tzinfo=None):
        raise ToolInputError(
            f"Invalid time: {time} does not exist in {source_timezone} on "
            f"{moment.date().isoformat()} (skipped by a clock change)"
        )
    converted = moment.astimezone(target)
    offset = (converted.utcoffset() or timedelta()) - (moment.utcoffset() or timedelta())
    return {
        "source": _time_result(source_timezone, moment),
        "target": _time_result(target_timezone, converted),
        "time_difference": _hours_text(offset.total_seconds() / 3600),
    }


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
MAX_EXPRESSION_CHARS = 2_000
MAX_INT_BITS = 4_096  # about 1233 decimal digits: far below Python's int-to-str limit


def _check_int(value: int | float) -> int | float:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ToolInputError(f"result is too large (more than {MAX_INT_BITS} bits)")
    return value


def _power(base: int | float, exponent: int | float) -> int | float:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        # |base| ** exponent has at least exponent * (bit_length - 1) + 1 bits: refuse early.
        if exponent * (abs(base).bit_length() - 1) + 1 > MAX_INT_BITS:
            raise ToolInputError(f"exponent {exponent} is too large for base {base}")
    value = base**exponent
    if isinstance(value, complex):
        raise ToolInputError(f"{base} ** {exponent} is not a real number")
    return value


def _walk(node: ast.AST) -> int | float:
    if isinstance(node, ast.Expression):
        return _walk(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _check_int(cast(int | float, node.value))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _walk(node.left), _walk(node.right)
        if isinstance(node.op, ast.Pow):
            return _check_int(_power(left, right))
        if isinstance(node.op, ast.Mult) and isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
                raise ToolInputError(f"result is too large (more than {MAX_INT_BITS} bits)")
        return _check_int(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_walk(node.operand))
    raise ToolInputError(f"unsupported element in expression: {type(node).__name__}")


def calculate(expression: str) -> dict[str, Any]:
    """Safe arithmetic over int and float literals: + - * / // % ** unary +/-, parentheses."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolInputError(f"expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as err:
        raise ToolInputError(f"invalid expression {expression!r}: {err.msg}") from None
    try:
        value = _walk(tree)
    except ZeroDivisionError:
        raise ToolInputError(f"division by zero in {expression!r}") from None
    except (OverflowError, RecursionError, MemoryError) as err:
        raise ToolInputError(f"cannot evaluate {expression!r}: {type(err).__name__}") from None
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ToolInputError(f"{expression!r} has no finite value")
        if value.is_integer() and abs(value) < 2**53:
            value = int(value)
    return {"value": value}


_WORD = re.compile(r"[A-Za-z0-9À-ÿ']+")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")


def word_count(text: str) -> dict[str, int]:
    """Words (runs of letters, digits, apostrophes), characters, sentences (split after .!?)."""
    sentences = [s for s in _SENTENCE_BREAK.split(text.strip()) if s.strip()]
    return {"words": len(_WORD.findall(text)), "characters": len(text), "sentences": len(sentences)}


def _shift_time(result: dict[str, Any]) -> dict[str, Any]:
    zone = ZoneInfo(result["timezone"])
    moment = (datetime.fromisoformat(result["datetime"]) + WRONG_TIME_SHIFT).astimezone(zone)
    return _time_result(result["timezone"], moment)


def _wrong_convert(result: dict[str, Any]) -> dict[str, Any]:
    hours = float(result["time_difference"].rstrip("h")) + WRONG_TIME_SHIFT.total_seconds() / 3600
    return {
        **result,
        "target": _shift_time(result["target"]),
        "time_difference": _hours_text(hours),
    }


def _wrong_echo(result: dict[str, Any]) -> dict[str, Any]:
    text = result["text"]
    return {"text": text[:-1] if text else "?"}


IMPLEMENTATIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "get_current_time": current_time,
    "convert_time": convert_time,
    "calculate": calculate,
    "word_count": word_count,
}
WRONG_ANSWERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "get_current_time": _shift_time,
    "convert_time": _wrong_convert,
    "calculate": lambda r: {"value": r["value"] + 1},
    "calculate_typed": lambda r: {"value": r["value"] + 1},
    "word_count": lambda r: {**r, "words": r["words"] + 1},
    "echo": _wrong_echo,
    "sleep": lambda r: {"slept_ms": r["slept_ms"] + 1},
}


# --------------------------------------------------------------------------------------------
# The server wiring.
# --------------------------------------------------------------------------------------------


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

    def __init__(self, plan: FaultPlan, seed: int, recorder: CallRecorder | None = None) -> None:
        self.plan = plan
        self.seed = seed
        self.recorder = recorder
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
    state = FaultState(plan, seed, recorder)
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

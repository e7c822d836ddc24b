"""The fault server's plan: which faults apply to which call of which tool, drawn
deterministically from the seed (see :mod:`hybridmcp.testing.faultserver`)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

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
    slow_ms: float = Field(default=0.0, ge=0)
    slow_first: int = Field(default=0, ge=0)
    slow_rate: float = Field(default=0.0, ge=0, le=1)
    fail_rate: float = Field(default=0.0, ge=0, le=1)
    fail_first: int = Field(default=0, ge=0)
    fail_every: int | None = Field(default=None, ge=1)
    hang: bool = False
    hang_rate: float = Field(default=0.0, ge=0, le=1)
    crash: bool = False
    crash_after: int | None = Field(default=None, ge=0)
    malformed: bool | Literal["invalid_json", "wrong_shape"] = False
    oversized_bytes: int | None = Field(default=None, ge=0)
    error_text: str | None = None
    wrong_answer: bool = False
    partial: Literal["stall", "crash"] | None = None


Action = Literal["answer", "fail", "hang", "crash", "partial_stall", "partial_crash"]
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

        Both numbers count from 1 and include this call. ``rng`` is drawn from exactly four
        times whatever the plan, so decisions do not shift when the plan changes.
        """
        u_jitter, u_hang, u_fail = rng.random(), rng.random(), rng.random()
        u_slow = rng.random()  # drawn last: the first three draws are those of older plans

        def get(name: str) -> Any:
            return self._key(tool, name)[0]

        def count(name: str) -> int:
            return total_call if self._key(tool, name)[1] == WILDCARD else tool_call

        slow = count("slow_first") <= get("slow_first") or u_slow < get("slow_rate")
        delay_ms = get("latency_ms") + get("jitter_ms") * u_jitter
        delay_s = (delay_ms + (get("slow_ms") if slow else 0.0)) / 1000.0

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
        fail_every = get("fail_every")
        if fail_every is not None and count("fail_every") % fail_every == 0:
            return FaultDecision(
                delay_s, "fail", reason=f"fail_every={fail_every} (call {count('fail_every')})"
            )
        partial = get("partial")
        if partial is not None:
            action: Action = "partial_crash" if partial == "crash" else "partial_stall"
            return FaultDecision(delay_s, action, reason=f"partial={partial}")

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

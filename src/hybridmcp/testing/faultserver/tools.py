"""The fault server's real tools (time, arithmetic, word count, echo) and the plausible
wrong answers a ``wrong_answer`` fault gives."""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import regex

from hybridmcp.testing.faultserver.plan import WRONG_TIME_SHIFT


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


# Words: runs of letters (with their combining marks), digits and apostrophes, in any script.
_WORD = regex.compile(r"[\p{L}\p{M}\p{N}']+")
# after . ! ? and a blank, or after the full stops of CJK scripts (written with no blank after)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])\s*")


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

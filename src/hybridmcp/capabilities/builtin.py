"""Built-in internal skills: real implementations that run in-process.

The time skills produce the same shapes as ``mcp-server-time``'s ``get_current_time`` and
``convert_time``, so the two sides can cross-validate each other.
"""

from __future__ import annotations

import _strptime  # noqa: F401  # imported here, not on the event loop at the first strptime
import ast
import math
import operator
import re
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import regex

from hybridmcp.errors import ProviderError, RequestError
from hybridmcp.limits import preview

_KNOWN_ZONES: frozenset[str] | None = None
_LOADED_ZONES: dict[str, ZoneInfo] = {}
"""Zones loaded so far, held here so that using them again reads no file (``ZoneInfo``'s own
cache keeps only a few, the rest weakly)."""

F = TypeVar("F", bound=Callable[..., Any])
INLINE_TEXT_CHARS = 4_000
"""Texts up to this size are counted or summarized on the event loop (tens of microseconds);
longer ones in a worker thread."""


def runs_inline(when: Callable[..., bool]) -> Callable[[F], F]:
    """Declare a pure built-in cheap enough to run on the event loop when ``when(**args)``
    holds: a worker thread costs far more than the call itself (about 0.3 ms against a few
    microseconds). Arguments for which ``when`` is false (a long text) still run in a thread,
    so the loop is never held for long (:func:`hybridmcp.capabilities.registry.invoke_internal`)."""

    def mark(fn: F) -> F:
        fn.inline_when = when  # type: ignore[attr-defined]
        return fn

    return mark


def _zones_loaded(**args: Any) -> bool:
    """Every time zone the call names is loaded already: loading one reads files (the zone
    list, its tzdata file), which must not happen on the event loop."""
    names = [v for k, v in args.items() if k.endswith("timezone")]
    return all(isinstance(n, str) and n in _LOADED_ZONES for n in names)


def _short_text(text: Any = "", **args: Any) -> bool:
    return isinstance(text, str) and len(text) <= INLINE_TEXT_CHARS


def _no_powers(expression: Any = "", **args: Any) -> bool:
    """Arithmetic without exponentiation is microseconds; a power of a big base may not be."""
    return isinstance(expression, str) and "**" not in expression and len(expression) <= 500


def _zone(name: str) -> ZoneInfo:
    global _KNOWN_ZONES
    loaded = _LOADED_ZONES.get(name)
    if loaded is not None:
        return loaded
    if _KNOWN_ZONES is None:
        _KNOWN_ZONES = frozenset(available_timezones())
    if name not in _KNOWN_ZONES:
        raise RequestError(f"invalid timezone {preview(name)}: not an IANA time zone name")
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:  # pragma: no cover - listed but unloadable
        raise RequestError(f"invalid timezone {preview(name)}: {err}") from None
    _LOADED_ZONES[name] = zone
    return zone


def _time_result(zone_name: str, moment: datetime) -> dict[str, Any]:
    return {
        "timezone": zone_name,
        "datetime": moment.isoformat(timespec="seconds"),
        "day_of_week": moment.strftime("%A"),
        "is_dst": bool(moment.dst()),
    }


@runs_inline(_zones_loaded)
def current_time(timezone: str, now: datetime | None = None) -> dict[str, Any]:
    """The current time in an IANA time zone."""
    zone = _zone(timezone)
    moment = (now or datetime.now(zone)).astimezone(zone)
    return _time_result(timezone, moment)


@runs_inline(_zones_loaded)
def convert_time(
    source_timezone: str, time: str, target_timezone: str, now: datetime | None = None
) -> dict[str, Any]:
    """Convert a wall-clock time (HH:MM, today in the source zone) to another zone."""
    source, target = _zone(source_timezone), _zone(target_timezone)
    try:
        parsed = datetime.strptime(time, "%H:%M").time()
    except ValueError:
        raise RequestError(f"invalid time {preview(time)}: expected HH:MM (24-hour)") from None
    today = (now or datetime.now(source)).astimezone(source)
    moment = datetime(today.year, today.month, today.day, parsed.hour, parsed.minute, tzinfo=source)
    round_trip = datetime.fromtimestamp(moment.timestamp(), source)
    if round_trip.replace(tzinfo=None) != moment.replace(tzinfo=None):
        raise RequestError(f"{time} does not exist in {source_timezone} today (clock change)")
    converted = moment.astimezone(target)
    hours = (
        (converted.utcoffset() or timedelta()) - (moment.utcoffset() or timedelta())
    ).total_seconds() / 3600
    diff = f"{hours:+.1f}h" if hours.is_integer() else f"{hours:+.2f}".rstrip("0").rstrip(".") + "h"
    return {
        "source": _time_result(source_timezone, moment),
        "target": _time_result(target_timezone, converted),
        "time_difference": diff,
    }


_BINARY: dict[type[ast.operator], Callable[[Any, Any], float | int]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], float | int]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., float | int]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
_MAX_EXPONENT = 10_000
_MAX_EXPRESSION = 2_000
_MAX_INT_BITS = 13_000
"""About 3,900 decimal digits: below Python's 4,300-digit limit on printing an int, so every
result can be written as JSON, and far below what takes measurable time to compute."""


def _bounded(value: float | int) -> float | int:
    if isinstance(value, complex):  # (-8) ** (1/3)
        raise RequestError("result is not a real number")
    if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
        raise RequestError(f"result has more than {_MAX_INT_BITS} bits (about 3,900 digits)")
    if isinstance(value, float) and not math.isfinite(value):
        raise RequestError(f"result is not a finite number ({value})")
    return value


def _evaluate(node: ast.AST) -> float | int:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return cast(float | int, node.value)
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise RequestError(f"exponent {right} is too large (limit {_MAX_EXPONENT})")
        if (
            isinstance(node.op, ast.Pow)
            and isinstance(left, int)
            and isinstance(right, int)
            and right > 0
            and (abs(left).bit_length() - 1) * right > _MAX_INT_BITS
        ):  # refused before computing: (9**9999)**9999 would take minutes
            raise RequestError(f"result has more than {_MAX_INT_BITS} bits (about 3,900 digits)")
        return _bounded(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _bounded(_UNARY[type(node.op)](_evaluate(node.operand)))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        return _bounded(_FUNCTIONS[node.func.id](*(_evaluate(a) for a in node.args)))
    raise RequestError(f"unsupported expression element: {ast.dump(node)[:60]}")


@runs_inline(_no_powers)
def calculate(expression: str) -> dict[str, Any]:
    """Safe arithmetic: an AST walker over numbers and a few math functions, never ``eval``."""
    if len(expression) > _MAX_EXPRESSION:
        raise RequestError(f"expression is longer than {_MAX_EXPRESSION} characters")
    if not expression.strip():
        raise RequestError("empty expression: give arithmetic such as '2 * (3 + 4)'")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as err:
        raise RequestError(f"invalid expression {preview(expression)}: {err.msg}") from None
    try:
        value = _evaluate(tree)
    except ZeroDivisionError:
        raise RequestError(f"division by zero in {preview(expression)}") from None
    except (OverflowError, ValueError, TypeError) as err:
        raise RequestError(f"cannot evaluate {preview(expression)}: {err}") from None
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        value = int(value)
    return {"value": value}


# after . ! ? and a blank, or after the full stops of CJK scripts (written with no blank after)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])\s*")
# Words: runs of letters (with their combining marks), digits and apostrophes, in any script.
_WORD = regex.compile(r"[\p{L}\p{M}\p{N}']+")
_STOPWORDS = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to was "
    "were will with which who their there they them than then these those not but can".split()
)


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]


@runs_inline(_short_text)
def text_stats(text: str) -> dict[str, Any]:
    """Counts of words, characters and sentences, and the most frequent content words."""
    words = _WORD.findall(text)
    content = Counter(w.lower() for w in words if w.lower() not in _STOPWORDS)
    return {
        "words": len(words),
        "characters": len(text),
        "sentences": len(_sentences(text)),
        "top_words": [w for w, _ in content.most_common(5)],
    }


@runs_inline(_short_text)
def summarize(text: str, max_sentences: int = 2) -> dict[str, Any]:
    """Extractive summary: the sentences whose content words are most frequent, in order."""
    if max_sentences < 1:
        raise RequestError(f"max_sentences must be at least 1, got {max_sentences}")
    sentences = _sentences(text)
    freq = Counter(w.lower() for w in _WORD.findall(text) if w.lower() not in _STOPWORDS)

    def score(sentence: str) -> float:
        words = [w.lower() for w in _WORD.findall(sentence)]
        return sum(freq[w] for w in words if w not in _STOPWORDS) / (len(words) or 1)

    ranked = sorted(range(len(sentences)), key=lambda i: (-score(sentences[i]), i))
    chosen = sorted(ranked[:max_sentences])
    return {"summary": " ".join(sentences[i] for i in chosen), "sentences": len(chosen)}


_PATH_TOKEN = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+|\*)\]|\[\"([^\"]*)\"\]|\['([^']*)'\]")


def query_path(data: Any, path: str) -> Any:
    """Evaluate a small JSONPath subset: ``$``, ``.key``, ``["key"]``, ``[N]``, ``[*]``."""
    if not path.startswith("$"):
        raise ProviderError(f"invalid path {preview(path)}: a path starts with '$'")
    pos, values, wildcard = 1, [data], False
    while pos < len(path):
        m = _PATH_TOKEN.match(path, pos)
        if not m:
            raise ProviderError(
                f"invalid path {preview(path)} at position {pos}: {preview(path[pos:])}"
            )
        key = m.group(1) or m.group(3) or m.group(4)
        index = m.group(2)
        nxt: list[Any] = []
        for v in values:
            if key is not None:
                if isinstance(v, dict) and key in v:
                    nxt.append(v[key])
            elif index == "*":
                wildcard = True
                nxt.extend(v.values() if isinstance(v, dict) else v if isinstance(v, list) else [])
            elif isinstance(v, list) and int(index or 0) < len(v):
                nxt.append(v[int(index or 0)])
        values, pos = nxt, m.end()
    if wildcard:
        return values
    if not values:
        raise ProviderError(f"path {preview(path)} matches nothing")
    return values[0]


def json_query(data: Any, path: str) -> dict[str, Any]:
    """Select a value out of a JSON document with a JSONPath subset. The document and the path
    are both the request's, so a path that matches nothing is the request's error."""
    try:
        return {"result": query_path(data, path)}
    except ProviderError as err:
        raise RequestError(str(err)) from None

"""Cross-validation comparators: do two answers agree, and how closely?

Each comparator returns a :class:`Comparison` with a similarity in [0, 1] and the paths where
the answers differ, so a conflict record can say what disagreed.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hybridmcp.config import ComparatorConfig


@dataclass(frozen=True)
class Comparison:
    agree: bool
    similarity: float
    differences: list[str] = field(default_factory=list)


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _as_timestamp(value: Any) -> float | None:
    """Seconds since the epoch. A time without an offset is taken as UTC, not as this
    machine's local time: two answers are judged alike on every machine."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    return _as_number(value)


def _as_json(value: Any) -> Any:
    """The value as JSON means it: an integral float is that integer (JSON has one number type,
    and a JavaScript server sends ``36.0`` as ``36``), a tuple is a list, a key is a string."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {
            k if isinstance(k, str) else json.dumps(k, default=str): _as_json(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_as_json(v) for v in value]
    return value


def canonical(value: Any) -> str:
    """A JSON text of the value that two spellings of the same JSON value share: keys sorted,
    ``1.0`` written as ``1`` (see :func:`_as_json`)."""
    return json.dumps(_as_json(value), sort_keys=True, default=str)


def _spelled(text: Any, value: Any) -> bool:
    """Is ``text`` the JSON text of the object or array ``value``? One side may send an object
    as its JSON text (a ``str`` tool returning ``json.dumps(...)``) and the other as the
    object."""
    if not (isinstance(text, str) and isinstance(value, dict | list)):
        return False
    try:
        spelled = json.loads(text)
    except (ValueError, RecursionError):
        return False
    return isinstance(spelled, dict | list) and canonical(spelled) == canonical(value)


_JSON_NUMBER = re.compile(r"\s*-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?\s*")


def _number_spelled(text: str) -> float | int | None:
    """The number a text is the JSON text of (``"5"``, ``"5.0"``, ``"1e3"``), or None: a
    FastMCP tool declared ``-> str`` that returns ``str(total)`` means the number."""
    if not _JSON_NUMBER.fullmatch(text):
        return None
    try:
        number = json.loads(text)
    except (ValueError, RecursionError):  # digits beyond int()'s limit
        return None
    return number if not isinstance(number, float) or math.isfinite(number) else None


def _alike(a: Any, b: Any) -> bool:
    """Do two JSON values (read by :func:`_as_json`) mean the same, where one side spells as
    text what the other sends as a value, at any depth: the JSON text of an object or array is
    that object or array, the JSON text of a number that number. Two texts are compared as
    texts (``"1.10"`` is not ``"1.1"``), and ``"true"`` is not ``true``."""
    if isinstance(a, str) and not isinstance(b, str):
        a, b = b, a
    if isinstance(b, str) and not isinstance(a, str):
        if isinstance(a, dict | list):
            return _spelled(b, a)
        if isinstance(a, int | float) and not isinstance(a, bool):
            number = _number_spelled(b)
            return number is not None and _as_json(number) == a
        return False
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_alike(v, b[k]) for k, v in a.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_alike(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def same(a: Any, b: Any) -> bool:
    """Do two answers mean the same JSON value? (Equal texts first: the common case costs no
    more than two encodings; values spelled as text on one side only when they differ.)"""
    try:
        if json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str):
            return True
    except TypeError:  # keys of mixed types cannot be sorted: compared as JSON keys below
        pass
    if canonical(a) == canonical(b):
        return True
    try:
        return _alike(_as_json(a), _as_json(b))
    except RecursionError:
        return False


def _exact(a: Any, b: Any, path: str) -> Comparison:
    ok = same(a, b)
    return Comparison(ok, 1.0 if ok else 0.0, [] if ok else [path or "$"])


def _numeric(a: Any, b: Any, tolerance: float, path: str) -> Comparison:
    x, y = _as_number(a), _as_number(b)
    if x is None or y is None:
        return _exact(a, b, path)
    scale = max(abs(x), abs(y), 1e-12)
    rel = abs(x - y) / scale
    ok = math.isclose(x, y, rel_tol=tolerance, abs_tol=tolerance)
    return Comparison(ok, max(0.0, 1.0 - rel), [] if ok else [path or "$"])


def _datetime(a: Any, b: Any, tolerance_s: float, path: str) -> Comparison:
    x, y = _as_timestamp(a), _as_timestamp(b)
    if x is None or y is None:
        return _exact(a, b, path)
    gap = abs(x - y)
    ok = gap <= tolerance_s
    return Comparison(
        ok,
        1.0 / (1.0 + gap / max(tolerance_s, 1e-9)) if not ok else 1.0,
        [] if ok else [path or "$"],
    )


def _text(a: Any, b: Any, threshold: float, path: str) -> Comparison:
    sa = a if isinstance(a, str) else canonical(a)
    sb = b if isinstance(b, str) else canonical(b)
    ratio = difflib.SequenceMatcher(None, sa.split(), sb.split(), autojunk=False).ratio()
    return Comparison(ratio >= threshold, ratio, [] if ratio >= threshold else [path or "$"])


def _subset(a: Any, b: Any, keys: list[str] | None, path: str) -> Comparison:
    """Agree when the compared keys (all shared keys by default) hold equal values."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return _exact(a, b, path)
    chosen = keys if keys is not None else sorted(set(a) & set(b))
    diffs = [f"{path}.{k}" for k in chosen if not same(a.get(k), b.get(k))]
    sim = 1.0 - len(diffs) / len(chosen) if chosen else 1.0
    return Comparison(not diffs, sim, diffs)


def _fields(a: Any, b: Any, spec: dict[str, ComparatorConfig], path: str) -> Comparison:
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return _exact(a, b, path)
    parts = [compare(a.get(k), b.get(k), sub, f"{path}.{k}") for k, sub in spec.items()]
    if not parts:
        return Comparison(True, 1.0)
    diffs = [d for p in parts for d in p.differences]
    return Comparison(
        all(p.agree for p in parts), sum(p.similarity for p in parts) / len(parts), diffs
    )


def compare(a: Any, b: Any, config: ComparatorConfig, path: str = "$") -> Comparison:
    """Compare two answers with the skill's comparator."""
    kind = config.type
    if kind == "numeric":
        return _numeric(a, b, config.tolerance, path)
    if kind == "datetime":
        return _datetime(a, b, config.tolerance, path)
    if kind == "text_similarity":
        return _text(a, b, config.threshold, path)
    if kind == "json_subset":
        keys = config.fields if isinstance(config.fields, list) else None
        return _subset(a, b, keys, path)
    if kind == "fields":
        spec = config.fields if isinstance(config.fields, dict) else {}
        return _fields(a, b, spec, path)
    return _exact(a, b, path)

"""JSON text that every JSON reader reads: Python's ``json`` writes ``NaN`` and ``Infinity``,
which JSON has no form for (``JSON.parse``, ``jq`` and strict readers refuse them). A value
from outside (a server's answer) may hold them; they are written as ``null``."""

from __future__ import annotations

import json
import math
from typing import Any


def dumps(value: Any, **options: Any) -> str:
    """``json.dumps(value, **options)``, a non-finite number written as ``null`` (the common
    case, with none, costs one ``json.dumps``)."""
    try:
        return json.dumps(value, allow_nan=False, **options)
    except ValueError:
        return json.dumps(_finite(value), allow_nan=False, **options)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value

"""Internal twins of third-party MCP servers' tools (``tests.judgement_helpers:<name>`` in a
configuration), for the judgement tests (tests/integration/test_third_party_judgement.py)."""

from __future__ import annotations

from typing import Any

_ARITHMETIC = {
    "Add": lambda a, b: a + b,
    "Sub": lambda a, b: a - b,
    "Mult": lambda a, b: a * b,
    "Div": lambda a, b: a / b,
    "Pow": lambda a, b: a**b,
}


def _arithmetic(node: Any) -> Any:
    import ast

    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_arithmetic(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op).__name__ in _ARITHMETIC:
        return _ARITHMETIC[type(node.op).__name__](_arithmetic(node.left), _arithmetic(node.right))
    raise ValueError(f"unsupported expression: {ast.dump(node)}")


def arithmetic(expression: str) -> float | int:
    """``math.eval`` served internally: the number an arithmetic expression comes to, as a
    Python number (``mcp-server-calculator`` answers the same as its text: ``"5.0"``)."""
    import ast

    return _arithmetic(ast.parse(expression.replace("^", "**"), mode="eval").body)


def arithmetic_rounded(expression: str) -> float:
    """A fast ``math.eval`` that rounds to two places: wrong wherever that matters."""
    return round(float(arithmetic(expression)), 2)


def thought_step(
    thought: str, nextThoughtNeeded: bool, thoughtNumber: Any, totalThoughts: Any, **_: Any
) -> dict[str, Any]:
    """``think.step`` served internally: the step as
    ``@modelcontextprotocol/server-sequential-thinking`` answers it, with its numbers read from
    whatever was sent (``"2"`` or ``2``) as Python floats, its keys in another order, and
    without the server's session state (``thoughtHistoryLength``)."""
    return {
        "nextThoughtNeeded": nextThoughtNeeded,
        "totalThoughts": float(totalThoughts),
        "thoughtNumber": float(thoughtNumber),
        "branches": [],
    }


def sha256_hex(data: str) -> str:
    """``hash.sha256`` served internally, as ``mcp-hashlib``'s ``hash_sha256`` answers it."""
    import hashlib

    return hashlib.sha256(data.encode()).hexdigest()


def blake2b_hex(data: str, digest_size: int = 64) -> str:
    """``hash.blake2b`` served internally, as ``mcp-hashlib``'s ``hash_blake2b`` answers it."""
    import hashlib

    return hashlib.blake2b(data.encode(), digest_size=digest_size).hexdigest()

"""What an audit record keeps of a server's message (``Gate._audit_text``): bounded, whatever
its length, and no value the scanner finds survives, wherever it sits against the cut."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hybridmcp.capabilities.gate import AUDIT_TEXT_CHARS, AUDIT_TEXT_CONTEXT, Gate
from hybridmcp.capabilities.mcp_pool import SessionPool
from hybridmcp.policy import privacy

VALUES = ["grace.hopper@example.com", "4111 1111 1111 1111", "AKIAIOSFODNN7EXAMPLE"]


def _gate() -> Gate:
    privacy.scan({"to": "someone@example.com"})  # the detection engines built, as in a run
    return Gate(SessionPool({}))


GATE = _gate()


def _fragments(value: str, size: int = 6) -> set[str]:
    return {value[i : i + size] for i in range(len(value) - size + 1)}


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 4000),
    st.sampled_from(VALUES),
    st.integers(AUDIT_TEXT_CHARS - 100, 60_000),
    st.sampled_from(["word ", "x", "a1 b2 ", "\n"]),
)
def test_a_message_of_any_length_is_kept_bounded_with_no_value_left(
    at: int, value: str, length: int, filler: str
) -> None:
    body = (filler * (length // len(filler) + 1))[:length]
    at = min(at, len(body))
    text = f"error: f/echo failed: {body[:at]} {value} {body[at:]}"
    kept = GATE._audit_text(text)
    assert len(kept) <= AUDIT_TEXT_CHARS + 40
    assert not any(f in kept for f in _fragments(value)), (at, kept[max(0, at - 40) : at + 80])
    if len(text) > AUDIT_TEXT_CHARS + AUDIT_TEXT_CONTEXT:
        assert kept.endswith(f"(cut: {len(text):,} characters in all)")
    elif len(text) <= AUDIT_TEXT_CHARS:
        assert "characters in all" not in kept

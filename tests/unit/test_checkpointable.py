"""Answers and arguments a run's checkpoints can hold. LangGraph packs state as msgpack, whose
integers end at 64 bits: an answer holding ``2**70`` (a calculator, a 25-digit id) crashed the
run with a traceback at its first checkpoint; a task argument holding one did the same."""

from __future__ import annotations

from typing import Any

import ormsgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridmcp.capabilities.registry import checkpointable
from hybridmcp.config import ComparatorConfig
from hybridmcp.errors import TaskError
from hybridmcp.policy.comparators import compare
from hybridmcp.task import parse_task

huge = st.integers(min_value=2**64) | st.integers(max_value=-(2**63) - 1)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | huge | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)


def restored(original: Any, kept: Any) -> bool:
    """Is ``kept`` the original, with each integer beyond 64 bits as its decimal text?"""
    if type(original) is int and not -(2**63) <= original < 2**64:
        return kept == str(original)
    if isinstance(original, dict):
        return kept.keys() == original.keys() and all(
            restored(v, kept[k]) for k, v in original.items()
        )
    if isinstance(original, list):
        return len(kept) == len(original) and all(map(restored, original, kept))
    return kept is original


@settings(max_examples=400)
@given(values)
def test_every_answer_is_packed_as_a_checkpoint_packs_it(value: Any) -> None:
    kept = checkpointable(value)
    ormsgpack.packb(kept, option=ormsgpack.OPT_NON_STR_KEYS)
    assert restored(value, kept)


@settings(max_examples=200)
@given(huge)
def test_a_large_integer_still_agrees_with_itself_and_its_text(n: int) -> None:
    exact = ComparatorConfig(type="exact")
    assert compare(checkpointable(n), checkpointable(n), exact).agree
    assert compare(checkpointable(n), str(n), exact).agree
    assert not compare(checkpointable(n), checkpointable(n + 1), exact).agree


def test_an_answer_that_fits_is_not_copied() -> None:
    answer = {"rows": [{"id": 2**64 - 1, "min": -(2**63)}], "ok": True}
    assert checkpointable(answer) is answer
    assert checkpointable(9**9999).startswith("0x")  # past int -> str's 4300 digits


@pytest.mark.parametrize(
    ("args", "where"),
    [
        ({"n": 2**64}, "args.n"),
        ({"data": {"rows": [1, -(2**63) - 1]}}, "args.data.rows.1"),
    ],
)
def test_a_task_argument_beyond_64_bits_is_refused_at_the_edge(args: Any, where: str) -> None:
    with pytest.raises(TaskError, match=f"{where} is an integer beyond 64 bits"):
        parse_task([{"id": "a", "skill": "json.query", "args": args}])
    parse_task([{"id": "a", "skill": "json.query", "args": {"n": 2**64 - 1, "s": str(2**70)}}])

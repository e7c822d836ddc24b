"""Values cut over several calls of one run (``policy/privacy/sent.py``), the pure part: a
call whose piece completes a value with pieces the run sent the same server before is found,
in order (up to four pieces) and for two pieces in either order; ordinary successive calls
are not; memory stays bounded. tests/integration/test_privacy_gate_gaps.py runs it
through the gate to recording MCP servers."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridmcp.policy import privacy as scanner
from hybridmcp.policy.privacy import sent
from hybridmcp.policy.privacy.sent import SentPieces
from hybridmcp.testing.canary import SHAPE_KINDS, benign_corpus, shaped_value
from tests.privacy_cases import SCAN_SETTINGS

CONFIG = scanner.PrivacyConfig()

PUBLIC = scanner.Sensitivity.public
SETTINGS = SCAN_SETTINGS


pytestmark = pytest.mark.usefixtures("privacy_engines")


def _send(calls: list[dict], run: str = "run-1", server: str = "s") -> list[list]:
    """What the gate does per call: findings of completed values, then remember it (when
    nothing was completed: a completing call is not sent raw)."""
    pieces = SentPieces()
    out = []
    for n, args in enumerate(calls):
        found = pieces.completed(run, server, args, f"req-{n}", CONFIG)
        alone = scanner.scan(args).level > PUBLIC
        out.append(found if found or not alone else ["alone"])
        pieces.record(run, server, args, f"req-{n}")
    return out


def _cuts(draw: st.DrawFn, text: str, most: int) -> list[str]:
    n = draw(st.integers(2, min(most, len(text))))
    cuts = sorted(draw(st.sets(st.integers(1, len(text) - 1), min_size=n - 1, max_size=n - 1)))
    return [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]


def _held_back(results: list[list]) -> bool:
    """Whether some call before the last piece left was found (so not all pieces left raw)."""
    return any(results)


@SETTINGS
@given(kind=st.sampled_from(SHAPE_KINDS), seed=st.integers(0, 2**32), data=st.data())
def test_a_value_cut_over_calls_in_order_is_completed_at_the_last_piece(
    kind: str, seed: int, data: st.DataObject
) -> None:
    text, _ = shaped_value(kind, random.Random(seed))
    pieces = _cuts(data.draw, text, 4)
    field = data.draw(st.sampled_from(("text", "q", "note")))
    nested = data.draw(st.booleans())
    calls = [{"doc": {field: p}} if nested else {field: p} for p in pieces]
    assert _held_back(_send(calls)), (kind, pieces)


@SETTINGS
@given(kind=st.sampled_from(SHAPE_KINDS), seed=st.integers(0, 2**32), data=st.data())
def test_two_pieces_in_either_order_are_completed(
    kind: str, seed: int, data: st.DataObject
) -> None:
    text, _ = shaped_value(kind, random.Random(seed))
    a, b = _cuts(data.draw, text, 2)
    others = data.draw(st.integers(0, 2))  # other requests' pieces in between
    between = [{"text": f"note {i}"} for i in range(others)]
    assert _held_back(_send([{"text": b}, *between, {"text": a}])), (kind, a, b)


@SETTINGS
@given(seed=st.integers(0, 2**32), as_ints=st.booleans())
def test_a_card_sent_as_numbers_over_calls_is_completed(seed: int, as_ints: bool) -> None:
    """Its groups one per call, ints or digit strings."""
    text, _ = shaped_value("credit_card", random.Random(seed))
    groups = re.split(r"\D+", text)
    pieces = [int(g) if as_ints and not g.startswith("0") else g for g in groups]
    assert _held_back(_send([{"n": p} for p in pieces])), pieces


def test_ordinary_successive_calls_complete_nothing() -> None:
    corpus = benign_corpus(300, seed=5)
    for start in range(0, 300, 6):
        results = _send(corpus[start : start + 6])
        assert not any(r and r != ["alone"] for r in results), corpus[start : start + 6]


@SETTINGS
@given(
    values=st.lists(
        st.one_of(
            st.sampled_from(("Europe/Paris", "status: ok", "v1.2.3", "retry", "page 2")),
            st.integers(0, 99),
            st.floats(-1e6, 1e6, allow_nan=False).filter(lambda f: not f.is_integer()),
        ),
        min_size=2,
        max_size=8,
    )
)
def test_ordinary_values_over_calls_complete_nothing(values: list) -> None:
    assert not any(_send([{"v": v} for v in values])), values


def test_a_retry_of_the_same_request_is_not_joined_with_itself() -> None:
    pieces = SentPieces()
    args = {"n": 4111}
    for _ in range(4):
        assert pieces.completed("r", "s", args, "same-request", CONFIG) == []
        pieces.record("r", "s", args, "same-request")


def test_runs_and_servers_are_apart() -> None:
    pieces = SentPieces()
    pieces.record("r1", "s", {"t": "alice.smith@exa"}, "k1")
    assert pieces.completed("r2", "s", {"t": "mple.com"}, "k2", CONFIG) == []
    assert pieces.completed("r1", "other", {"t": "mple.com"}, "k2", CONFIG) == []
    [found] = pieces.completed("r1", "s", {"t": "mple.com"}, "k2", CONFIG)
    assert (found.entity_type, found.path, found.start, found.end) == ("EMAIL_ADDRESS", "/t", 0, 8)


def test_memory_is_bounded() -> None:
    pieces = SentPieces()
    for run in range(sent.RUNS_KEPT + 50):
        for field in range(sent.FIELDS_KEPT + 10):
            for n in range(sent.DEPTH + 2):
                pieces.record(f"r{run}", "s", {f"f{field}": "x" * 5000}, f"k{n}")
    kept = pieces._sent
    assert len(kept) == sent.RUNS_KEPT
    assert all(len(fields) == sent.FIELDS_KEPT for fields in kept.values())
    for fields in kept.values():
        for queue in fields.values():
            assert len(queue) <= sent.DEPTH
            assert all(len(p) <= 2 * sent.EDGE for p, _ in queue)

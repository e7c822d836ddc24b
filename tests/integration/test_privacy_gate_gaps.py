"""A value cut over several calls of one run, through the real gate to recording MCP servers.

Each piece goes in its own request of one task (the same skill and field), so each call is
clean on its own: the gate remembers what the run sent each server and judges the call that
completes the value as the value (``policy/privacy/sent.py``). Under ``refuse`` and
``route_internal`` that call is not sent; under ``redact`` it is sent as a pseudonym and its
answer restored. Either way the server never holds the value whole.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridmcp.testing.canary import SHAPE_KINDS, shaped_value, split_fields, strings_in
from tests.integration.test_privacy_properties import POLICIES, Recorded

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    rec = Recorded(tmp_path_factory.mktemp("privacy-across-calls"))
    yield rec
    rec.close()


def _whole_at_the_server(got: list[dict], secret: str) -> bool:
    """Whether the server could read ``secret`` from what it received, in any order."""
    texts = [s for g in got for s in strings_in(g.get("text"))]
    return any(secret in a + b or secret in a for a in texts for b in texts)


@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    kind=st.sampled_from(SHAPE_KINDS),
    seed=st.integers(0, 2**32),
    cut=st.floats(0.05, 0.95),
    data=st.data(),
)
def test_a_value_cut_over_two_calls_of_a_run_never_reaches_a_server_whole(
    recorded: Recorded, kind: str, seed: int, cut: float, data: st.DataObject
) -> None:
    text, secret = shaped_value(kind, random.Random(seed))
    at = min(len(text) - 1, max(1, round(len(text) * cut)))
    first, second = split_fields(text, at)
    for policy in POLICIES:
        out, got = recorded.run(policy, [{"text": first}, {"text": second}])
        assert not _whole_at_the_server(got, secret), (policy, kind, first, second, got)
        results = list(out["results"].values())
        if policy == "redact":
            assert [r["value"]["payload"]["text"] for r in results] == [first, second]
        elif policy == "route_internal":
            assert all(r["error"] is None for r in results), results
        else:
            assert len(got) <= 1, got
            refused = [r for r in results if r["error"]]
            assert refused and all("privacy" in r["error"] for r in refused), results


def test_runs_and_servers_are_kept_apart(recorded: Recorded) -> None:
    """Pieces sent in different runs are not joined: each run is judged on its own."""
    out1, got1 = recorded.run("refuse", [{"text": "alice.smith@exa"}])
    out2, got2 = recorded.run("refuse", [{"text": "mple.com"}])
    assert [g["text"] for g in got1 + got2] == ["alice.smith@exa", "mple.com"]
    assert all(r["error"] is None for r in [*out1["results"].values(), *out2["results"].values()])

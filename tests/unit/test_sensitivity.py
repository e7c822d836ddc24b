"""One sensitivity scale for tasks, config, registry, scoring and the privacy gate."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridmcp.capabilities.registry import Provider
from hybridmcp.config import parse_config
from hybridmcp.policy import arbitration as scoring
from hybridmcp.policy import disclosure
from hybridmcp.policy.learning import Prediction
from hybridmcp.policy.privacy import Sensitivity as PrivacySensitivity
from hybridmcp.sensitivity import Sensitivity
from hybridmcp.task import Request

LEVELS = list(Sensitivity)


def test_every_layer_uses_the_same_type() -> None:
    assert PrivacySensitivity is Sensitivity
    assert (
        Request(id="r", skill="s", sensitivity="Confidential").sensitivity
        is Sensitivity.confidential
    )
    config = parse_config({"mcpServers": {"t": {"command": "true", "clearance": 2}}})
    clearance = config.mcpServers["t"].clearance
    assert clearance is Sensitivity.confidential
    assert Provider.__dataclass_fields__["clearance"].type in ("Sensitivity", Sensitivity)
    assert disclosure.level("restricted") is Sensitivity.restricted


def test_dumps_as_the_name_in_json_and_state() -> None:
    request = Request(id="r", skill="s", sensitivity=3)
    assert request.model_dump(mode="json")["sensitivity"] == "restricted"
    assert json.loads(request.model_dump_json())["sensitivity"] == "restricted"
    assert json.dumps({"level": Sensitivity.internal}) == '{"level": "internal"}'
    assert Sensitivity.internal == "internal"


@pytest.mark.parametrize("bad", ["secret", "", "4", 7, -1, True, "public!"])
def test_refuses_what_is_not_a_level(bad: object) -> None:
    with pytest.raises(ValueError, match="unknown sensitivity"):
        Sensitivity.parse(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Request(id="r", skill="s", sensitivity=bad)


@given(st.sampled_from(LEVELS), st.sampled_from(LEVELS))
def test_order_is_the_level_order_in_every_spelling(a: Sensitivity, b: Sensitivity) -> None:
    expected = LEVELS.index(a) < LEVELS.index(b)
    assert (a < b) is expected
    assert (a < b.value) is expected
    assert (a < LEVELS.index(b)) is expected
    assert (Sensitivity.parse(a.value.upper()) < b) is expected
    assert max(a, b) is (b if expected else a)


@given(st.sampled_from(LEVELS), st.sampled_from(LEVELS))
def test_scoring_and_disclosure_agree_on_eligibility(
    clearance: Sensitivity, data: Sensitivity
) -> None:
    prediction = Prediction(
        latency_ms=10.0, p95_latency_ms=20.0, success=0.99, cost=0.001, quality=0.9, observations=0
    )
    candidate = scoring.Candidate(
        provider="mcp:s/t", side="external", clearance=clearance, prediction=prediction
    )
    refused = scoring.eligible(candidate, data.value) is not None
    assert refused is (data > clearance)
    release = disclosure.release(
        detected=data, declared=Sensitivity.public, clearance=clearance, action="refuse"
    )
    assert (release.action == "allow") is (data <= clearance)

"""An LM's advice never overrides a hard rule: whatever the arbitrator answers, trusted or not,
it can only narrow an allocation the 1.2 rule left undecided to one of the providers the
deterministic decision already chose. Privacy clearance, availability (an open circuit), a
requested strategy, a critical request, a write, an audit, a half-open circuit's trial call:
each was settled before advice is read, and stays settled.

Property tests over the real arbitration (:func:`hybridmcp.policy.arbitration.arbitrate`) and
the gate advice passes through (:func:`~hybridmcp.prompts.arbitrator.in_hybrid_band`,
the narrowing the arbitrator applies once its advice is trusted).
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hybridmcp.config import ArbitrationConfig, CapabilityMapping, OptimizationCriteria
from hybridmcp.policy.arbitration import (
    Candidate,
    add_probe,
    analyze_requirements,
    arbitrate,
    eligible,
)
from hybridmcp.policy.learning import Prediction
from hybridmcp.policy.privacy import Sensitivity
from hybridmcp.prompts.arbitrator import ALLOCATION_CHOICES, _apply_decision, in_hybrid_band

LEVELS = [str(s) for s in Sensitivity]


@st.composite
def candidates(draw: Any) -> list[Candidate]:
    found = []
    for side in ("internal", "external"):
        for n in range(draw(st.integers(1, 2))):
            latency = draw(st.sampled_from([1.0, 2.0, 5.0, 50.0, 5000.0]))
            quality = draw(st.sampled_from([0.5, 0.9, 1.0]))
            cost = draw(st.sampled_from([0.0, 0.001, 0.1]))
            prediction = Prediction(latency, latency * 2, quality, cost, quality, 10, 10.0)
            available = draw(st.sampled_from([True, True, True, False]))
            found.append(
                Candidate(
                    f"{side[0]}{n}",
                    side,
                    Sensitivity(draw(st.sampled_from(["restricted"] * 3 + LEVELS))),
                    prediction,
                    available=available,
                    unavailable_reason=None if available else "circuit open",
                )
            )
    return found


@st.composite
def allocations(draw: Any) -> tuple[dict[str, Any], list[Candidate], dict[str, Any], bool, float]:
    cands = draw(candidates())
    critical = draw(st.booleans())
    ratio = draw(st.sampled_from([1.0, 1.2, 2.0, 100.0]))
    profile = analyze_requirements(
        skill="s.x",
        tags=(),
        complexity="low",
        args={},
        sensitivity=draw(st.sampled_from(["public"] * 3 + LEVELS)),
    )
    sampling = {"enabled": draw(st.booleans()), "audit_share": 0.5, "min_cross_validations": 1}
    allocation = arbitrate(
        strategy=draw(st.sampled_from(["auto", "auto", "internal", "external", "hybrid"])),
        critical=critical,
        profile=profile,
        candidates=cands,
        criteria=OptimizationCriteria(),
        arbitration=ArbitrationConfig(bias_ratio=ratio, validation_sampling=sampling),
        mapping=CapabilityMapping(),
        audit_key=draw(st.text(max_size=8)),
        fallback=draw(st.booleans()),
        effect=draw(st.sampled_from(["read", "read", "write"])),
        cross_validate=draw(st.booleans()),
    )
    others = [p for p in allocation["ranking"] if p not in allocation["providers"]]
    if others and draw(st.booleans()):  # a half-open circuit's trial call
        allocation = add_probe(allocation, draw(st.sampled_from(others)), "probe")
    return allocation, cands, profile, critical, ratio


@settings(max_examples=400, deadline=None)
@given(case=allocations(), decision=st.sampled_from(ALLOCATION_CHOICES))
def test_trusted_advice_only_narrows_an_undecided_allocation_to_its_own_providers(case, decision):
    allocation, cands, profile, critical, ratio = case
    before = copy.deepcopy(allocation)
    advised = copy.deepcopy(allocation)
    if in_hybrid_band(advised, critical, ratio):
        _apply_decision(advised, decision)
    else:
        assert advised == before  # outside the band advice is not even asked
        return
    # Only an undecided, unconstrained request is advised at all.
    assert before["mode"] == "hybrid" and before["strategy"] == "auto" and not critical
    assert before.get("effect", "read") == "read"
    assert not (before.get("validation_sampling") or {}).get("audit")
    assert "probe" not in before  # a trial call is the circuit's, not the advice's
    # It narrows to a provider the deterministic decision chose, never adds one.
    assert set(advised["providers"]) <= set(before["providers"]) and advised["providers"]
    assert advised["mode"] in (
        "hybrid",
        *(before["scores"][p]["side"] for p in advised["providers"]),
    )
    by_id = {c.provider: c for c in cands}
    for provider in advised["providers"]:
        candidate = by_id[provider]
        sensitivity = str(profile.get("data_sensitivity"))
        assert candidate.available and eligible(candidate, sensitivity) is None

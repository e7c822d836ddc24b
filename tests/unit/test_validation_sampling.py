"""Learned cross-validation: a skill whose sides always agree runs on one side, with audits."""

import pytest

from hybridmcp.config import (
    ArbitrationConfig,
    CapabilityMapping,
    OptimizationCriteria,
    parse_config,
)
from hybridmcp.errors import ConfigError
from hybridmcp.policy.arbitration import Candidate, analyze_requirements, arbitrate, audit_draw
from hybridmcp.policy.learning import Prediction

CRIT, MAP = OptimizationCriteria(), CapabilityMapping()
AGREED = {"cross_validations": 40, "agreement_rate": 1.0, "agreement_streak": 40}
NEVER = {"cross_validations": 0, "agreement_rate": None, "agreement_streak": 0}


def cand(pid, side, *, latency=1.0, quality=0.9, cost=0.0, agreement=AGREED, **extra):
    clearance = "restricted" if side == "internal" else "public"
    pred = Prediction(latency, latency * 2, quality, cost, quality, 10, 10.0, **agreement)
    return Candidate(pid, side, clearance, pred, **extra)


def band(internal=AGREED, external=AGREED):
    """An internal and an external provider whose fitness lands within the 1.2 band."""
    return [
        cand("i", "internal", agreement=internal),
        cand("e", "external", latency=5, cost=0.001, agreement=external),
    ]


def decide(cands, key, strategy="auto", critical=False, sensitivity="public", **sampling):
    profile = analyze_requirements(
        skill="s.x", tags=(), complexity="low", args={}, sensitivity=sensitivity
    )
    return arbitrate(
        strategy=strategy,
        critical=critical,
        profile=profile,
        candidates=cands,
        criteria=CRIT,
        arbitration=ArbitrationConfig(validation_sampling=sampling),
        mapping=MAP,
        audit_key=key,
    )


def keys(audited: bool, share: float = 0.1) -> list[str]:
    """Request keys whose draw is (or is not) under the audit share."""
    found = [f"run-1:r{i}" for i in range(200)]
    return [k for k in found if (audit_draw(k) < share) is audited]


KEPT, AUDITED = keys(False)[0], keys(True)[0]


def test_the_draw_is_a_stable_number_in_the_unit_interval():
    assert audit_draw("run-1:r1") == audit_draw("run-1:r1")
    assert audit_draw("run-1:r1") != audit_draw("run-2:r1")
    assert all(0.0 <= audit_draw(f"k{i}") < 1.0 for i in range(1000))


def test_without_evidence_the_band_cross_validates_as_before():
    a = decide(band(NEVER, NEVER), KEPT)
    assert a["mode"] == "hybrid" and a["rule"].endswith(": cross-validate")
    assert a["validation_sampling"]["sampled"] is False
    assert "i: 0 agreeing cross-validations in a row < 10" in a["validation_sampling"]["reason"]


def test_consistent_agreement_runs_the_fitter_side_alone_and_says_why():
    a = decide(band(), KEPT)
    assert a["mode"] == "internal" and a["providers"] == ["i"]
    assert a["ranking"] == ["i", "e"]  # the other side stays the reallocation target
    assert a["validation_strategy"] == "none"
    assert "within the 1.2 band" in a["rule"]
    assert "agreed in their last 40 and 40 cross-validations" in a["rule"]
    assert "internal alone" in a["rule"] and f"audit draw {audit_draw(KEPT):.3f}" in a["rule"]
    record = a["validation_sampling"]
    assert record["sampled"] is True and record["audit"] is False
    assert record["evidence"]["e"] == {
        "cross_validations": 40,
        "agreement_rate": 1.0,
        "agreement_streak": 40,
        "short": None,
    }


def test_the_audit_share_is_still_cross_validated():
    a = decide(band(), AUDITED)
    assert a["mode"] == "hybrid" and set(a["providers"]) == {"i", "e"}
    assert "audited" in a["rule"] and a["validation_strategy"] == "cross_validation"
    assert a["validation_sampling"]["audit"] is True


def test_the_audit_share_over_many_requests_lands_near_the_configured_share():
    decisions = [decide(band(), f"run-{i // 50}:r{i % 50}")["mode"] for i in range(2000)]
    audited = decisions.count("hybrid") / len(decisions)
    assert 0.08 <= audited <= 0.12, audited
    assert set(decisions) == {"hybrid", "internal"}


@pytest.mark.parametrize(
    ("internal", "external", "why"),
    [
        (
            {"cross_validations": 9, "agreement_rate": 1.0, "agreement_streak": 9},
            AGREED,
            "i: 9 agreeing cross-validations in a row < 10",
        ),
        # a recent disagreement ended the streak, though the rate is still high
        (
            AGREED,
            {"cross_validations": 41, "agreement_rate": 0.9756, "agreement_streak": 0},
            "e: 0 agreeing cross-validations in a row < 10",
        ),
        # a long streak after many disagreements: the rate is still too low
        (
            AGREED,
            {"cross_validations": 40, "agreement_rate": 0.75, "agreement_streak": 12},
            "e: agreement rate 75% of 40 < 95%",
        ),
        (AGREED, NEVER, "e: 0 agreeing cross-validations in a row < 10"),
    ],
)
def test_too_little_evidence_keeps_cross_validating(internal, external, why):
    a = decide(band(internal, external), KEPT)
    assert a["mode"] == "hybrid" and a["rule"].endswith(": cross-validate")
    assert a["validation_sampling"]["sampled"] is False
    assert a["validation_sampling"]["reason"] == why


def test_the_thresholds_are_configurable():
    few = {"cross_validations": 3, "agreement_rate": 0.9, "agreement_streak": 3}
    assert decide(band(few, few), KEPT)["mode"] == "hybrid"
    a = decide(band(few, few), KEPT, min_cross_validations=3, min_agreement=0.9)
    assert a["mode"] == "internal"
    assert decide(band(), AUDITED, audit_share=0.0)["mode"] == "internal"  # never audited
    assert decide(band(), KEPT, audit_share=1.0)["mode"] == "hybrid"  # always audited
    off = decide(band(), KEPT, enabled=False)
    assert off["mode"] == "hybrid" and "validation_sampling" not in off


def test_the_external_side_runs_alone_when_it_is_the_fitter_one():
    cands = [
        cand("i", "internal", latency=60, quality=0.8),
        cand("e", "external", latency=5, cost=0.001),
    ]
    a = decide(cands, KEPT)
    assert a["external_fitness"] > a["internal_fitness"]
    assert a["mode"] == "external" and a["providers"] == ["e"] and "external alone" in a["rule"]


def test_a_leader_under_the_decision_threshold_runs_alone_once_the_sides_agree():
    cands = [
        cand("i", "internal", latency=400, quality=0.3, cost=0.004),
        cand("e", "external", latency=9000, quality=0.05, cost=0.5),
    ]
    a = decide(cands, KEPT)
    assert a["internal_fitness"] < 0.7
    assert a["mode"] == "internal" and "decision threshold" in a["rule"]


@pytest.mark.parametrize(
    ("strategy", "critical", "rule"),
    [
        ("hybrid", False, "requested strategy 'hybrid': both sides, cross-validated"),
        ("auto", True, "critical request: both sides, cross-validated"),
    ],
)
def test_a_requested_or_critical_cross_validation_is_never_sampled(strategy, critical, rule):
    a = decide(band(), KEPT, strategy=strategy, critical=critical)
    assert a["mode"] == "hybrid" and a["rule"] == rule
    assert "validation_sampling" not in a


def test_a_clear_winner_is_left_alone():
    a = decide([cand("i", "internal"), cand("e", "external", latency=5000, cost=0.1)], KEPT)
    assert a["mode"] == "internal" and "validation_sampling" not in a
    assert a["rule"].startswith("internal ") and "agreed" not in a["rule"]


def test_a_hard_constraint_keeps_cross_validating():
    # a second external provider was excluded (down): the request stays cross-validated
    down = cand("e2", "external", available=False, unavailable_reason="MCP server 'x' is down")
    a = decide([*band(), down], KEPT)
    assert a["mode"] == "hybrid"
    assert a["validation_sampling"]["reason"] == (
        "hard constraint: e2 excluded (MCP server 'x' is down)"
    )
    # the external side sees redacted arguments (privacy policy): its answers are not comparable
    internal, external = band()
    redacted = Candidate(**{**external.__dict__, "redacts": True})
    a = decide([internal, redacted], KEPT)
    assert a["mode"] == "hybrid"
    assert a["validation_sampling"]["reason"] == "hard constraint: e receives redacted arguments"


def test_bad_sampling_config_names_the_key():
    with pytest.raises(ConfigError, match="validation_sampling.audit_share"):
        parse_config({"arbitration_config": {"validation_sampling": {"audit_share": 1.5}}})
    with pytest.raises(ConfigError, match="validation_sampling.min_agreemnt"):
        parse_config({"arbitration_config": {"validation_sampling": {"min_agreemnt": 0.9}}})


def decide_needing(cands, key, tags):
    """:func:`decide` for a request of a skill with these tags."""
    profile = analyze_requirements(skill="s.x", tags=tags, complexity="low", args={})
    return arbitrate(
        strategy="auto",
        critical=False,
        profile=profile,
        candidates=cands,
        criteria=CRIT,
        arbitration=ArbitrationConfig(),
        mapping=MAP,
        audit_key=key,
    )


def test_a_request_needing_the_other_sides_strength_runs_on_that_side_once_they_agree():
    # internal is fitter (free), but the request needs real-time data, an external strength:
    # a conflict would have kept the external answer, so that is the side that runs alone
    a = decide_needing(band(), KEPT, ["real_time_data"])
    assert a["internal_fitness"] > a["external_fitness"]
    assert a["mode"] == "external" and a["providers"] == ["e"]
    assert (
        "external alone, the side whose strengths the request needs (real_time_data)" in (a["rule"])
    )
    assert a["validation_sampling"]["narrowed_to"] == "external"
    # the audit share is still cross-validated
    assert decide_needing(band(), AUDITED, ["real_time_data"])["mode"] == "hybrid"


@pytest.mark.parametrize(
    "tags",
    [
        (),  # nothing needed: the fitter side
        ("context_awareness",),  # the fitter side's own strength
        ("context_awareness", "real_time_data"),  # strengths of both sides: the fitter side
    ],
)
def test_otherwise_the_fitter_side_runs_alone(tags):
    a = decide_needing(band(), KEPT, list(tags))
    assert a["mode"] == "internal" and "internal alone, the fitter side" in a["rule"]


def test_a_needed_strength_does_not_end_cross_validation_before_the_sides_agree():
    a = decide_needing(band(external=NEVER), KEPT, ["real_time_data"])
    assert a["mode"] == "hybrid" and a["validation_sampling"]["sampled"] is False

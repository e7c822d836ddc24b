import pytest

from hybridmcp.config import ArbitrationConfig, CapabilityMapping, OptimizationCriteria
from hybridmcp.policy.arbitration import Candidate, analyze_requirements, arbitrate, security_score
from hybridmcp.policy.learning import Prediction

CRIT, ARB, MAP = OptimizationCriteria(), ArbitrationConfig(), CapabilityMapping()


def cand(pid, side, latency=1.0, quality=0.9, cost=0.0, clearance=None, available=True):
    clearance = clearance or ("restricted" if side == "internal" else "public")
    pred = Prediction(latency, latency * 2, quality, cost, quality, 0)
    return Candidate(pid, side, clearance, pred, available, None if available else "down")


def decide(cands, strategy="auto", critical=False, sensitivity="public", tags=(), fallback=True):
    profile = analyze_requirements(
        skill="s.x", tags=tags, complexity="low", args={}, sensitivity=sensitivity
    )
    return arbitrate(
        strategy=strategy,
        critical=critical,
        profile=profile,
        candidates=cands,
        criteria=CRIT,
        arbitration=ARB,
        mapping=MAP,
        fallback=fallback,
    )


def test_similar_fitness_goes_hybrid_within_the_bias_band():
    a = decide([cand("i", "internal"), cand("e", "external", latency=5, cost=0.001)])
    assert a["mode"] == "hybrid"
    assert a["internal_fitness"] < a["external_fitness"] * 1.2
    assert set(a["providers"]) == {"i", "e"}
    assert "band" in a["rule"]


def test_internal_wins_alone_when_external_is_slow_and_costly():
    a = decide([cand("i", "internal"), cand("e", "external", latency=5000, cost=0.1)])
    assert a["mode"] == "internal"
    assert a["internal_fitness"] > 1.2 * a["external_fitness"]
    assert a["providers"] == ["i"] and a["ranking"] == ["i", "e"]


def test_external_wins_alone_when_internal_is_poor():
    a = decide(
        [
            cand("i", "internal", latency=8000, quality=0.2, cost=0.2),
            cand("e", "external", latency=5),
        ]
    )
    assert a["mode"] == "external"


def test_below_decision_threshold_cross_validates():
    # internal wins by the ratio, but its own fitness is under 0.7: cross-validate.
    a = decide(
        [
            cand("i", "internal", latency=400, quality=0.3, cost=0.004),
            cand("e", "external", latency=9000, quality=0.05, cost=0.5),
        ]
    )
    assert a["internal_fitness"] > 1.2 * a["external_fitness"]
    assert a["internal_fitness"] < 0.7
    assert a["mode"] == "hybrid" and "decision threshold" in a["rule"]


def test_clearance_is_a_hard_constraint():
    a = decide(
        [cand("i", "internal"), cand("e", "external")],
        strategy="external",
        sensitivity="confidential",
    )
    assert a["mode"] == "internal"
    assert a["excluded"][0]["provider"] == "e" and "clearance" in a["excluded"][0]["reason"]


def test_unavailable_provider_is_excluded_and_none_when_nothing_left():
    a = decide([cand("e", "external", available=False)])
    assert a["mode"] == "none" and a["providers"] == []


@pytest.mark.parametrize("strategy", ["internal", "external", "hybrid"])
def test_requested_strategy_is_honoured(strategy):
    a = decide([cand("i", "internal"), cand("e", "external")], strategy=strategy)
    assert a["mode"] == strategy


def test_critical_request_is_cross_validated():
    a = decide([cand("i", "internal"), cand("e", "external", latency=5000, cost=1)], critical=True)
    assert a["mode"] == "hybrid"


def test_strengths_raise_quality_of_the_matching_side():
    with_tag = decide([cand("i", "internal"), cand("e", "external")], tags=["real_time_data"])
    without = decide([cand("i", "internal"), cand("e", "external")])
    assert with_tag["scores"]["e"]["quality"] > without["scores"]["e"]["quality"]


def test_security_score_is_headroom_above_sensitivity():
    assert security_score("public", "public") == 1.0
    assert security_score("restricted", "confidential") == 1.0
    assert security_score("confidential", "confidential") == 0.5


def test_profile_flags_scale_and_sensitivity():
    p = analyze_requirements(
        skill="text.stats",
        tags=[],
        complexity="low",
        args={"text": "x" * 200_000},
        sensitivity="confidential",
    )
    assert p["scale_requirements"] == "large"
    assert "privacy_sensitive" in p["needs"] and "large_scale_processing" in p["needs"]
    assert p["domain_specialization"] == "text"


def pinned(strategy, cands, fallback=True):
    return decide(cands, strategy=strategy, fallback=fallback)


def test_a_pin_the_side_cannot_serve_falls_back_and_says_so():
    a = pinned("external", [cand("i", "internal"), cand("e", "external", available=False)])
    assert a["mode"] == "internal"
    assert a["pin"]["overridden"] and "cannot be served" in a["rule"] and "e: down" in a["rule"]


def test_fallback_off_fails_the_pin_instead():
    a = pinned("external", [cand("i", "internal"), cand("e", "external", available=False)], False)
    assert a["mode"] == "none" and "fallback is off" in a["rule"]


def test_fallback_off_keeps_reallocation_and_hedging_on_the_pinned_side():
    a = pinned("external", [cand("i", "internal"), cand("e", "external")], fallback=False)
    assert a["mode"] == "external" and a["ranking"] == ["e"]
    assert not a["pin"]["overridden"]


def test_a_probe_cross_validates_a_single_side_allocation_with_the_recovering_provider():
    from hybridmcp.policy.arbitration import add_probe

    a = decide([cand("i", "internal"), cand("e", "external", latency=5000, cost=0.1)])
    assert a["mode"] == "internal"
    probed = add_probe(a, "e", "probe: e's circuit is half-open")
    assert probed["mode"] == "hybrid" and probed["providers"] == ["i", "e"]
    assert probed["probe"] == "e" and "half-open" in probed["rule"]
    assert add_probe(a, "i", "x") is a  # same side: nothing to probe
    pin = decide([cand("i", "internal"), cand("e", "external")], strategy="internal")
    assert add_probe(pin, "e", "x") is pin  # a pinned request is never widened


def _profile(sensitivity="public", tags=()):
    return analyze_requirements(
        skill="s.x", tags=tags, complexity="low", args={}, sensitivity=sensitivity
    )


def test_a_shared_memo_changes_no_decision_and_shares_the_scores():
    """Requests of one arbitration share their fitness and score records through the memo;
    each decision is the one made without it, and requests with other needs or sensitivity
    get their own numbers."""
    cands = [cand("i", "internal"), cand("e", "external", latency=5, cost=0.001)]
    memo: dict = {}
    cases = [
        ("public", ()),
        ("public", ()),
        ("confidential", ()),
        ("public", ("real_time_data",)),
        ("public", ()),
    ]
    made = []
    for sensitivity, tags in cases:
        profile = _profile(sensitivity, tags)
        kwargs = dict(
            strategy="auto",
            critical=False,
            profile=profile,
            candidates=cands,
            criteria=CRIT,
            arbitration=ARB,
            mapping=MAP,
        )
        alone, shared = arbitrate(**kwargs), arbitrate(**kwargs, memo=memo)
        assert shared == alone
        made.append(shared)
    assert made[0]["scores"] is made[1]["scores"] is made[4]["scores"]
    assert made[2]["scores"] is not made[0]["scores"]
    assert made[3]["scores"] is not made[0]["scores"]
    assert made[2]["mode"] == "internal" and made[0]["mode"] == "hybrid"


def test_without_quality_validation_an_undecided_request_runs_on_its_fitter_side():
    cands = [cand("i", "internal"), cand("e", "external", latency=5, cost=0.001)]
    profile = analyze_requirements(skill="s.x", tags=(), complexity="low", args={})
    common = dict(profile=profile, candidates=cands, criteria=CRIT, arbitration=ARB, mapping=MAP)
    band = arbitrate(strategy="auto", critical=False, cross_validate=False, **common)
    assert band["mode"] == "internal" and band["providers"] == ["i"]
    assert "quality_validation off" in band["rule"]
    # Asked for, or critical: still both sides.
    asked = arbitrate(strategy="hybrid", critical=False, cross_validate=False, **common)
    critical = arbitrate(strategy="auto", critical=True, cross_validate=False, **common)
    assert asked["mode"] == critical["mode"] == "hybrid"

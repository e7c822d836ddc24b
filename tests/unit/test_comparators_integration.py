import pytest

from hybridmcp.config import ComparatorConfig
from hybridmcp.policy.comparators import compare
from hybridmcp.policy.integration import Answer, integrate, quality_metrics


def C(**kw):
    return ComparatorConfig.model_validate(kw)


@pytest.mark.parametrize(
    ("a", "b", "cfg", "agree"),
    [
        ({"x": 1, "y": [1, 2]}, {"y": [1, 2], "x": 1}, C(type="exact"), True),
        ({"x": 1}, {"x": 2}, C(type="exact"), False),
        (100.0, 100.0000001, C(type="numeric", tolerance=1e-6), True),
        (100.0, 101.0, C(type="numeric", tolerance=1e-3), False),
        (
            "2026-01-01T12:00:00+00:00",
            "2026-01-01T13:00:03+01:00",
            C(type="datetime", tolerance=5),
            True,
        ),
        (
            "2026-01-01T12:00:00+00:00",
            "2026-01-01T12:01:00+00:00",
            C(type="datetime", tolerance=5),
            False,
        ),
        (
            {"a": 1, "b": 2, "c": 3},
            {"a": 1, "b": 2, "c": 4},
            C(type="json_subset", fields=["a", "b"]),
            True,
        ),
        ({"a": 1, "b": 2}, {"a": 1, "b": 3}, C(type="json_subset"), False),
        (
            "the cat sat on the mat",
            "the cat sat on a mat",
            C(type="text_similarity", threshold=0.7),
            True,
        ),
        ("the cat sat on the mat", "stocks fell sharply today", C(type="text_similarity"), False),
    ],
)
def test_comparators(a, b, cfg, agree):
    assert compare(a, b, cfg).agree is agree


def test_fields_comparator_names_the_disagreeing_field():
    cfg = C(
        type="fields", fields={"tz": {"type": "exact"}, "v": {"type": "numeric", "tolerance": 0.01}}
    )
    c = compare({"tz": "UTC", "v": 1.0}, {"tz": "UTC", "v": 2.0}, cfg)
    assert not c.agree and c.differences == ["$.v"] and 0 < c.similarity < 1


def answers(vi, ve, ci=0.9, ce=0.8):
    return [
        Answer("internal:x", "internal", vi, ci, 1.0),
        Answer("mcp:s/x", "external", ve, ce, 5.0),
    ]


def test_consensus_agreement_raises_confidence():
    r = integrate("r1", answers({"v": 1}, {"v": 1}), C(type="exact"), "consensus")
    assert r.agreement is True and r.conflict is None
    assert r.confidence == pytest.approx(1 - 0.1 * 0.2)
    assert r.value == {"v": 1}


def test_consensus_conflict_is_recorded_and_confidence_adjusted():
    r = integrate("r1", answers({"v": 1}, {"v": 2}, ci=0.85, ce=0.9), C(type="exact"), "consensus")
    assert r.agreement is False
    assert r.value == {"v": 2}  # the more confident side wins
    assert r.confidence == pytest.approx(0.9 - 0.2)
    c = r.conflict
    assert c["integration_status"] == "RESULT_CONFLICT_DETECTED"
    assert c["conflict_details"]["internal_confidence"] == 0.85
    assert c["conflict_details"]["external_confidence"] == 0.9
    assert c["confidence_adjustment"] == -0.2
    assert set(c["values"]) == {"internal:x", "mcp:s/x"}


def test_weighted_average_weights_numbers_by_confidence():
    r = integrate(
        "r",
        answers({"v": 10.0, "u": "a"}, {"v": 20.0, "u": "b"}, ci=0.75, ce=0.25),
        C(type="numeric", tolerance=1.0),
        "weighted_average",
    )
    assert r.value["v"] == pytest.approx(12.5)
    assert r.value["u"] == "a"


def test_best_performer_takes_the_most_confident():
    r = integrate("r", answers("x", "y", ci=0.5, ce=0.95), C(type="exact"), "best_performer")
    assert r.value == "y"


def test_hybrid_synthesis_merges_structures_and_explains():
    r = integrate(
        "r",
        answers({"a": 1, "only_i": True}, {"a": 1, "only_e": [1]}),
        C(type="json_subset", fields=["a"]),
        "hybrid_synthesis",
    )
    assert r.value == {"a": 1, "only_i": True, "only_e": [1]}
    t = r.synthesis["methodology_transparency"]
    assert t["internal_contribution"] == ["only_i"] and t["external_contribution"] == ["only_e"]
    assert set(r.synthesis["supporting_evidence"]) == {"internal:x", "mcp:s/x"}


def test_single_answer_passes_through():
    r = integrate("r", answers(1, 1)[:1], C(), "consensus")
    assert r.value == 1 and r.agreement is None and r.confidence == 0.9


def test_quality_metrics():
    results = {
        "a": {
            "error": None,
            "agreement": True,
            "confidence": 0.9,
            "allocation": "hybrid",
            "attempts": [],
        },
        "b": {
            "error": None,
            "agreement": False,
            "confidence": 0.5,
            "allocation": "hybrid",
            "attempts": [],
        },
        "c": {
            "error": "boom",
            "agreement": None,
            "confidence": 0.0,
            "allocation": "internal",
            "attempts": [],
        },
    }
    q = quality_metrics(results)
    assert q["completeness"] == pytest.approx(2 / 3, abs=1e-4)
    assert q["consistency"] == 0.5
    assert q["reliability"] == pytest.approx(1.4 / 3, abs=1e-4)
    assert q["cross_validated"] == 2
    assert q["overall"] == pytest.approx(
        (q["completeness"] + q["consistency"] + q["reliability"] + q["transparency"]) / 4, abs=1e-3
    )


def test_an_unresolved_conflict_counts_as_cross_validated_and_inconsistent():
    """A critical conflict nothing decided was cross-validated, and its sides disagreed: the
    run's consistency says so (it read 1.0, with the conflict left out of both counts)."""
    hybrid = {"allocation": "hybrid", "attempts": [], "confidence": 0.0}
    results = {
        "agreed": {**hybrid, "status": "ok", "error": None, "agreement": True},
        "undecided": {**hybrid, "status": "unresolved", "error": None, "agreement": False},
        "failed": {**hybrid, "status": "error", "error": "boom", "agreement": None},
    }
    q = quality_metrics(results)
    assert q["cross_validated"] == 2 and q["unresolved"] == 1
    assert q["consistency"] == 0.5
    assert q["completeness"] == pytest.approx(1 / 3, abs=1e-3)

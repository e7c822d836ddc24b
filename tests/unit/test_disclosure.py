"""The disclosure policy: request sensitivity, per skill/server policy, the gate's release rule."""

from __future__ import annotations

import json

import pytest

from hybridmcp.config import parse_config
from hybridmcp.errors import ConfigError
from hybridmcp.policy.disclosure import (
    UNSCANNED,
    ProviderView,
    assess,
    plan_disclosure,
    policy_for,
    release,
)
from hybridmcp.policy.privacy import PrivacyConfig, Sensitivity
from tests.privacy_cases import without_digests

EMAIL = "jamal.okafor@example.com"
CARD = "4111 1111 1111 1111"


def test_scan_raises_the_declared_level_and_never_lowers_it() -> None:
    found = assess({"note": f"mail {EMAIL}"}, None)
    assert found["data_sensitivity"] == "confidential"
    assert found["declared_sensitivity"] == "public"
    assert found["sensitive_entities"] == ["EMAIL_ADDRESS"]
    raised = assess({"card": CARD}, "internal")
    assert raised["data_sensitivity"] == "restricted"
    kept = assess({"q": "weather in Lyon"}, "confidential")
    assert kept["data_sensitivity"] == "confidential"
    assert kept["detected_sensitivity"] == "public"
    assert assess({"q": "weather in Lyon"}, None)["data_sensitivity"] == "public"


def test_profile_fields_hold_no_raw_value() -> None:
    fields = assess({"customer": {"email": EMAIL, "card": CARD}}, None)
    text = json.dumps(fields)
    assert EMAIL not in text and "4111" not in without_digests(text)
    assert fields["sensitivity_finding_count"] == len(fields["sensitivity_findings"]) >= 2
    assert {f["path"] for f in fields["sensitivity_findings"]} == {
        "/customer/email",
        "/customer/card",
    }


def test_thresholds_come_from_the_detection_config() -> None:
    lenient = PrivacyConfig(entity_levels={"EMAIL_ADDRESS": "internal"})
    assert assess({"m": EMAIL}, None, detection=lenient)["data_sensitivity"] == "internal"
    allowed = PrivacyConfig(allow_list={EMAIL})
    assert assess({"m": EMAIL}, None, detection=allowed)["data_sensitivity"] == "public"
    assert assess({"m": EMAIL}, None, enabled=False)["data_sensitivity"] == "public"


def test_oversized_arguments_fail_closed() -> None:
    fields = assess({"blob": "x" * 2000}, None, max_scan_bytes=1000)
    assert fields["data_sensitivity"] == "restricted"
    assert fields["sensitive_entities"] == [UNSCANNED]


def test_policy_precedence_skill_then_server_then_default() -> None:
    table = {"skills": {"a.b": "refuse"}, "servers": {"s": "redact"}}
    assert policy_for("a.b", "s", default="route_internal", **table) == "refuse"
    assert policy_for("x.y", "s", default="route_internal", **table) == "redact"
    assert policy_for("x.y", "t", default="route_internal", **table) == "route_internal"


PROVIDERS = [
    ProviderView("internal:x", "internal", None, "restricted"),
    ProviderView("mcp:pub/t", "external", "pub", "public"),
    ProviderView("mcp:conf/t", "external", "conf", "confidential"),
]


def _profile(sensitivity: str, declared: str = "public") -> dict[str, object]:
    return {
        "data_sensitivity": sensitivity,
        "declared_sensitivity": declared,
        "sensitive_entities": ["EMAIL_ADDRESS"],
    }


def test_plan_route_internal_redact_refuse() -> None:
    policy = {"default": "route_internal", "skills": {}, "servers": {"pub": "redact"}}
    plan = plan_disclosure("x", _profile("confidential"), PROVIDERS, policy)
    assert plan.refused is None
    assert plan.redacting == {"mcp:pub/t"}
    assert [d["provider"] for d in plan.decisions] == ["mcp:pub/t"]  # conf is cleared

    plan = plan_disclosure("x", _profile("restricted"), PROVIDERS, policy)
    assert {d["provider"]: d["action"] for d in plan.decisions} == {
        "mcp:pub/t": "redact",
        "mcp:conf/t": "route_internal",
    }

    refuse = {"default": "route_internal", "skills": {"x": "refuse"}, "servers": {}}
    plan = plan_disclosure("x", _profile("restricted"), PROVIDERS, refuse)
    assert plan.refused and "policy refuse" in plan.refused
    assert plan_disclosure("x", _profile("public"), PROVIDERS, refuse).decisions == []


def test_declared_sensitivity_cannot_be_redacted_away() -> None:
    policy = {"default": "redact", "skills": {}, "servers": {}}
    plan = plan_disclosure("x", _profile("confidential", "confidential"), PROVIDERS, policy)
    assert plan.redacting == set()
    assert "cannot be redacted away" in plan.decisions[0]["reason"]


@pytest.mark.parametrize("effect", ["write", "idempotent"])
def test_a_provider_that_writes_is_never_sent_pseudonyms(effect: str) -> None:
    """It would keep them, and nothing restores a stored pseudonym: under ``redact`` it is not
    a candidate, and the gate refuses the call; a reader is still sent pseudonyms."""
    policy = {"default": "redact", "skills": {}, "servers": {}}
    writer = ProviderView("mcp:pub/w", "external", "pub", "public", effect)
    reader = ProviderView("mcp:pub/r", "external", "pub", "public", "read")
    plan = plan_disclosure("x", _profile("confidential"), [writer, reader], policy)
    assert plan.redacting == {"mcp:pub/r"}
    actions = {d["provider"]: (d["action"], d["reason"]) for d in plan.decisions}
    assert actions["mcp:pub/w"][0] == "route_internal" and "writes" in actions["mcp:pub/w"][1]
    conf, pub = Sensitivity.confidential, Sensitivity.public
    kw = {"detected": conf, "declared": pub, "clearance": pub, "action": "redact"}
    assert release(**kw, effect=effect).action == "refuse"
    assert release(**kw, effect="read").action == "redact"


def test_release_at_call_time() -> None:
    pub, conf, res = Sensitivity.public, Sensitivity.confidential, Sensitivity.restricted
    assert release(detected=pub, declared=pub, clearance=pub, action="refuse").action == "allow"
    assert release(detected=res, declared=pub, clearance=conf, action="redact").action == "redact"
    assert release(detected=res, declared=res, clearance=conf, action="redact").action == "refuse"
    refused = release(detected=conf, declared=pub, clearance=pub, action="route_internal")
    assert refused.action == "refuse" and "route_internal" in refused.reason
    assert (
        release(detected=pub, declared=pub, clearance=res, action="redact", oversized=True).action
        == "refuse"
    )


def test_privacy_config_section_is_validated() -> None:
    cfg = parse_config(
        {
            "privacy": {
                "policy": "redact",
                "detection": {"min_score": 0.6, "disabled_entities": ["IP_ADDRESS"]},
                "skills": {"time.now": "refuse"},
            }
        }
    )
    assert cfg.privacy.policy == "redact" and cfg.privacy.detection.min_score == 0.6
    with pytest.raises(ConfigError, match=r"privacy.policy"):
        parse_config({"privacy": {"policy": "allow"}})
    with pytest.raises(ConfigError, match=r"privacy.detection"):
        parse_config({"privacy": {"detection": {"disabled_entities": ["EMAIL"]}}})
    with pytest.raises(ConfigError, match=r"privacy.servers: unknown MCP server"):
        parse_config({"privacy": {"servers": {"nope": "redact"}}})

"""Arbitration's privacy step: apply the disclosure policy to one request, record the decisions.

Each decision (an external provider the request's data is above the clearance of, and what the
policy does about it) becomes a ``PRIVACY_DECISION`` event in state and a ``policy_decision``
record in the audit trail; neither holds a raw value.
"""

from __future__ import annotations

from typing import Any

from hybridmcp.capabilities.registry import Skill
from hybridmcp.events import EventCode
from hybridmcp.policy.disclosure import DisclosurePlan, ProviderView, plan_disclosure
from hybridmcp.runtime import Resources

PRIVACY_DECISION = EventCode.PRIVACY_DECISION


def disclose(
    res: Resources, run_id: str, request_id: str, skill: Skill, profile: dict[str, Any]
) -> tuple[DisclosurePlan, list[dict[str, Any]]]:
    """The request's disclosure plan and its events (audit records are written here)."""
    views = [ProviderView(p.id, p.side, p.server, p.clearance) for p in skill.providers]
    plan = plan_disclosure(skill.name, profile, views, res.config.privacy.policy_table())
    events = []
    for d in plan.decisions:
        record = {
            "run_id": run_id,
            "request_id": request_id,
            "skill": skill.name,
            "provider": d["provider"],
            "side": "external",
            "stage": "arbitrate",
            "action": d["action"],
            "reason": d["reason"],
            "sensitivity": profile.get("data_sensitivity"),
            "entities": profile.get("sensitive_entities", []),
        }
        res.gate.audit.append({**record, "kind": "policy_decision"})
        events.append({"code": PRIVACY_DECISION, **record})
    return plan, events

"""What may leave the process: sensitivity of a request, and the policy for data above a
provider's clearance. Pure: values in, decisions out (the scan itself is
:func:`hybridmcp.policy.privacy.scan`, deterministic and offline).

Three policies, chosen per skill, else per MCP server, else the default
(``privacy.policy``). They apply only when a request's sensitivity is above an external
provider's clearance; data within a provider's clearance always flows:

- ``route_internal``: that provider is not a candidate; internal (or better cleared) providers
  serve the request, or it fails with an error naming the policy.
- ``redact``: the provider stays a candidate and receives the arguments with every finding
  replaced by a pseudonym (restored in its answer, in-process). A *declared* sensitivity above
  its clearance cannot be redacted away: then it is not a candidate.
- ``refuse``: the request is refused with an error; nothing runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from hybridmcp.policy.privacy import PrivacyConfig, Sensitivity, SensitivityReport, scan

PrivacyAction = Literal["route_internal", "redact", "refuse"]
ACTIONS: tuple[str, ...] = ("route_internal", "redact", "refuse")
MAX_FINDINGS_IN_PROFILE = 50
"""Findings kept per request in the profile (the count and entity types are always complete)."""
UNSCANNED = "UNSCANNED_OVERSIZED"
"""Pseudo entity of arguments too large to scan: treated as restricted (fail closed)."""


def policy_for(
    skill: str,
    server: str | None,
    *,
    default: str,
    skills: Mapping[str, str],
    servers: Mapping[str, str],
) -> str:
    """The policy of a skill on a server: the skill's own, else the server's, else the default."""
    if skill in skills:
        return skills[skill]
    if server is not None and server in servers:
        return servers[server]
    return default


def level(value: str | int | Sensitivity) -> Sensitivity:
    return Sensitivity.parse(value)


def profile_fields(
    report: SensitivityReport | None, declared: str | None, *, oversized: bool = False
) -> dict[str, Any]:
    """The requirement profile's privacy fields. ``data_sensitivity`` is the higher of the
    declared and the detected level: a declaration may raise the level, never lower it.
    Findings carry type, place and a salted digest, never the value."""
    declared_level = level(declared or "public")
    detected = report.level if report is not None else Sensitivity.public
    findings = list(report.findings) if report is not None else []
    entity_types = sorted({f.entity_type for f in findings})
    if oversized:
        detected = Sensitivity.restricted
        entity_types = [UNSCANNED]
    return {
        "data_sensitivity": str(max(declared_level, detected)),
        "declared_sensitivity": str(declared_level),
        "detected_sensitivity": str(detected),
        "sensitivity_findings": [
            f.model_dump(mode="json") for f in findings[:MAX_FINDINGS_IN_PROFILE]
        ],
        "sensitivity_finding_count": len(findings),
        "sensitive_entities": entity_types,
    }


_PLAIN_SCALARS = (str, int, float, bool, type(None))


def plain_json(value: Any) -> bool:
    """JSON's own types only (exact types, string keys): its JSON text says all of it, so two
    values with the same text are the same value (what scans or validates one does the other)."""
    kind = type(value)
    if kind is dict:
        for k, v in value.items():
            # a scalar is checked here, without a call of its own (most arguments are flat)
            if type(k) is not str or (type(v) not in _PLAIN_SCALARS and not plain_json(v)):
                return False
        return True
    if kind is list:
        return all(type(v) in _PLAIN_SCALARS or plain_json(v) for v in value)
    return kind in _PLAIN_SCALARS


_JSON = json.JSONEncoder(default=str)
"""Built once (``json.dumps`` with an option builds an encoder per call)."""


def json_text(value: Any) -> str:
    """``json.dumps(value, default=str)``: ASCII (every other character escaped), so its
    length is its size in bytes."""
    return _JSON.encode(value)


def assess(
    args: Any,
    declared: str | None,
    *,
    enabled: bool = True,
    detection: PrivacyConfig | None = None,
    max_scan_bytes: int = 1_000_000,
    size: int | None = None,
    scanner: Callable[[Any, PrivacyConfig | None], SensitivityReport] = scan,
) -> dict[str, Any]:
    """Scan a request's arguments and return its profile's privacy fields (``size``: the
    arguments' size in bytes as JSON, when the caller measured it already; ``scanner``: what
    scans, :func:`scan` or one that gives the same reports, e.g. through a memory)."""
    if not enabled or (isinstance(args, dict) and not args):  # nothing to scan
        return profile_fields(None, declared)
    if size is None:
        size = len(json_text(args))
    if size > max_scan_bytes:
        return profile_fields(None, declared, oversized=True)
    return profile_fields(scanner(args, detection), declared)


@dataclass(frozen=True)
class ProviderView:
    """What the disclosure plan needs of a provider."""

    id: str
    side: str
    server: str | None
    clearance: str | Sensitivity
    effect: str = "read"
    """Its effect class: one that is not ``read`` keeps what it is sent, so it is never sent
    pseudonyms (nothing could restore them where they are stored)."""


@dataclass
class DisclosurePlan:
    """The privacy decisions of one request, before arbitration."""

    refused: str | None = None
    """Why the whole request is refused (policy ``refuse``), or None."""
    redacting: set[str] = field(default_factory=set)
    """External providers that stay candidates because they receive redacted arguments."""
    decisions: list[dict[str, Any]] = field(default_factory=list)
    """One per external provider above whose clearance the request is: action and reason."""


def plan_disclosure(
    skill: str,
    profile: Mapping[str, Any],
    providers: Iterable[ProviderView],
    policy: Mapping[str, Any],
) -> DisclosurePlan:
    """Apply the per skill/server policy to every external provider the request's data exceeds.

    ``policy`` has ``default``, ``skills`` and ``servers`` (see :func:`policy_for`).
    """
    plan = DisclosurePlan()
    sensitivity = level(profile.get("data_sensitivity", "public"))
    declared = level(profile.get("declared_sensitivity", "public"))
    entities = ", ".join(profile.get("sensitive_entities") or []) or "declared"
    for p in providers:
        if p.side != "external" or sensitivity <= level(p.clearance):
            continue
        action = policy_for(
            skill,
            p.server,
            default=policy["default"],
            skills=policy.get("skills", {}),
            servers=policy.get("servers", {}),
        )
        what = f"{sensitivity} data ({entities}) above {p.id}'s clearance {str(p.clearance)!r}"
        if action == "redact" and declared > level(p.clearance):
            reason = (
                f"{what}; policy redact, but the declared sensitivity {declared} is itself above "
                "the clearance and cannot be redacted away: not a candidate"
            )
            action = "route_internal"
        elif action == "redact" and p.effect != "read":
            reason = f"{what}; policy redact, but {STORES.format(effect=p.effect)}: not a candidate"
            action = "route_internal"
        elif action == "redact":
            plan.redacting.add(p.id)
            reason = f"{what}; policy redact: it receives pseudonyms, restored in its answer"
        elif action == "refuse":
            reason = f"{what}; policy refuse: the request is refused"
            plan.refused = plan.refused or reason
        else:
            reason = f"{what}; policy route_internal: not a candidate"
        plan.decisions.append(
            {"provider": p.id, "server": p.server, "action": action, "reason": reason}
        )
    return plan


STORES = "it writes (effect {effect}): the server would keep the pseudonyms, which nothing restores"
"""Why a provider that writes is never sent redacted arguments."""


@dataclass(frozen=True)
class Release:
    """The gate's decision on one outbound call (see :func:`release`)."""

    action: Literal["allow", "redact", "refuse"]
    reason: str


def release(
    *,
    detected: Sensitivity,
    declared: Sensitivity,
    clearance: Sensitivity,
    action: str,
    oversized: bool = False,
    effect: str = "read",
) -> Release:
    """At call time, may these arguments go to a provider with this clearance, and how?

    ``detected`` is the scan of the arguments actually about to be sent; ``declared`` the
    request's declared level (redaction cannot lower it); ``effect`` the provider's effect
    class (one that writes is never sent pseudonyms)."""
    if oversized:
        return Release("refuse", "arguments too large to scan: refused (fail closed)")
    effective = max(detected, declared)
    if effective <= clearance:
        return Release("allow", f"{effective} data within clearance {clearance}")
    what = f"{effective} data above clearance {clearance}"
    if action == "redact" and effect != "read":
        return Release("refuse", f"{what}: policy redact, but {STORES.format(effect=effect)}")
    if action == "redact" and declared <= clearance:
        return Release("redact", f"{what}: policy redact")
    if action == "redact":
        return Release(
            "refuse", f"{what}: declared {declared}, which redaction cannot lower: refused"
        )
    return Release("refuse", f"{what}: policy {action}: refused")


def redaction_summary(findings: Sequence[Any]) -> list[dict[str, Any]]:
    """Audit-safe description of what was redacted: entity type and place, never the value."""
    return [
        {"entity_type": f.entity_type, "path": f.path, "in_key": f.in_key, "digest": f.digest}
        for f in findings
    ]


def decision_records(
    plan: DisclosurePlan, run_id: str, request_id: str, skill: str, profile: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """One record per decision of ``plan``: arbitration writes each to the audit trail (as a
    ``policy_decision``) and to state (as a ``PRIVACY_DECISION`` event). No raw value in it."""
    return [
        {
            "run_id": run_id,
            "request_id": request_id,
            "skill": skill,
            "provider": d["provider"],
            "side": "external",
            "stage": "arbitrate",
            "action": d["action"],
            "reason": d["reason"],
            "sensitivity": profile.get("data_sensitivity"),
            "entities": profile.get("sensitive_entities", []),
        }
        for d in plan.decisions
    ]

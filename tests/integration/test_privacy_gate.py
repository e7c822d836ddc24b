"""Privacy policy end to end against a real recording MCP server (the fault server, stdio):
route_internal, redact and refuse, the decisions in state, and the gate's own re-check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hybridmcp.capabilities.gate import CallContext
from hybridmcp.config import HybridConfig, parse_config
from hybridmcp.coordinator import Coordinator
from hybridmcp.errors import ConfigError, PrivacyRefused
from hybridmcp.task import parse_task
from hybridmcp.testing.harness import faultserver_stdio

pytestmark = pytest.mark.integration

EMAIL = "nadia.haddad@example.com"
INTERNAL = {"side": "internal", "function": "tests.helpers:echo_text"}
EXTERNAL = {"side": "external", "server": "faulty", "tool": "echo"}
SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}


def config(record: Path, *, internal: bool = True, **privacy: Any) -> HybridConfig:
    providers = [INTERNAL, EXTERNAL] if internal else [EXTERNAL]
    return parse_config(
        {
            "mcpServers": {"faulty": faultserver_stdio(record=record)},
            "skills": {
                "note.echo": {
                    "input_schema": SCHEMA,
                    "comparator": {"type": "fields", "fields": {"text": {"type": "exact"}}},
                    "providers": providers,
                }
            },
            "privacy": privacy,
        }
    )


def recorded(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def task(*texts: str, strategy: str = "auto") -> Any:
    return parse_task(
        [
            {"id": f"r{i}", "skill": "note.echo", "args": {"text": t}, "strategy": strategy}
            for i, t in enumerate(texts)
        ]
    )


async def test_route_internal_keeps_sensitive_requests_in_process(tmp_path: Path) -> None:
    record = tmp_path / "calls.jsonl"
    async with Coordinator.open(config(record)) as co:
        out = await co.run(task(f"write to {EMAIL}", "just a note", strategy="hybrid"))
    sensitive, clean = out["results"]["r0"], out["results"]["r1"]
    assert sensitive["error"] is None and sensitive["value"] == {"text": f"write to {EMAIL}"}
    assert sensitive["allocation"] == "internal"
    assert {a["side"] for a in sensitive["attempts"]} == {"internal"}
    assert clean["allocation"] == "hybrid"  # public data: both sides, as asked
    sent = [c["arguments"]["text"] for c in recorded(record)]
    assert sent == ["just a note"]
    decisions = [e for e in out["events"] if e["code"] == "PRIVACY_DECISION"]
    assert [(d["request_id"], d["action"]) for d in decisions] == [("r0", "route_internal")]
    assert "EMAIL_ADDRESS" in decisions[0]["entities"] and EMAIL not in json.dumps(out["events"])


async def test_route_internal_without_internal_provider_is_a_clear_error(tmp_path: Path) -> None:
    record = tmp_path / "calls.jsonl"
    async with Coordinator.open(config(record, internal=False)) as co:
        out = await co.run(task(f"write to {EMAIL}", "just a note"))
    error = out["results"]["r0"]["error"]
    assert "clearance 'public' is below the data's sensitivity 'confidential'" in error
    assert "privacy policy route_internal" in error
    assert out["results"]["r1"]["error"] is None
    assert out["status"] == "partial"
    assert [c["arguments"]["text"] for c in recorded(record)] == ["just a note"]


async def test_redact_sends_pseudonyms_and_restores_the_answer(tmp_path: Path) -> None:
    record = tmp_path / "calls.jsonl"
    cfg = config(record, internal=False, servers={"faulty": "redact"})
    async with Coordinator.open(cfg) as co:
        out = await co.run(task(f"write to {EMAIL} today"))
    result = out["results"]["r0"]
    assert result["error"] is None
    assert result["value"] == {"text": f"write to {EMAIL} today"}  # restored in-process
    sent = [c["arguments"]["text"] for c in recorded(record)]
    assert sent == ["write to <EMAIL_1> today"]
    assert EMAIL not in json.dumps(out["events"])
    decision = next(e for e in out["events"] if e["code"] == "PRIVACY_DECISION")
    assert decision["action"] == "redact"


async def test_declared_sensitivity_is_not_redacted_away(tmp_path: Path) -> None:
    record = tmp_path / "calls.jsonl"
    cfg = config(record, internal=False, policy="redact")
    request = {
        "id": "d",
        "skill": "note.echo",
        "args": {"text": "plain"},
        "sensitivity": "internal",
    }
    async with Coordinator.open(cfg) as co:
        out = await co.run(parse_task([request]))
    assert "cannot be redacted away" in json.dumps(out["events"])
    assert out["results"]["d"]["error"] and recorded(record) == []


async def test_refuse_refuses_the_request(tmp_path: Path) -> None:
    record = tmp_path / "calls.jsonl"
    cfg = config(record, skills={"note.echo": "refuse"})
    async with Coordinator.open(cfg) as co:
        out = await co.run(task(f"write to {EMAIL}", "just a note"))
    error = out["results"]["r0"]["error"]
    assert error.startswith("refused by privacy policy:") and "policy refuse" in error
    assert out["results"]["r0"]["attempts"] == []  # nothing ran, not even internally
    assert out["results"]["r1"]["error"] is None


async def test_gate_rechecks_at_call_time(tmp_path: Path) -> None:
    """Even handed a context claiming public data, the gate scans what it is about to send."""
    record = tmp_path / "calls.jsonl"
    async with Coordinator.open(config(record)) as co:
        gate, provider = co.resources.gate, co.resources.registry.provider("mcp:faulty/echo")
        ctx = CallContext("run", "r", "note.echo", "run:r:x:1", "public")
        with pytest.raises(PrivacyRefused, match="route_internal"):
            await gate.call(provider, {"text": f"mail {EMAIL}"}, ctx, timeout_s=10)
        ok = await gate.call(provider, {"text": "fine"}, ctx, timeout_s=10)
    assert ok.value == {"text": "fine"}
    assert [c["arguments"]["text"] for c in recorded(record)] == ["fine"]
    actions = [r["action"] for r in gate.audit.records if r["kind"] == "policy_decision"]  # type: ignore[attr-defined]
    assert actions == ["refuse", "allow"]


async def test_unknown_skill_in_privacy_policy_fails_at_open(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"privacy.skills: unknown skill\(s\) 'note.ecco'"):
        async with Coordinator.open(config(tmp_path / "c.jsonl", skills={"note.ecco": "redact"})):
            pass

"""The privacy proof: the canary corpus (600 requests laced with emails, phones, cards, IBANs,
SSNs, IPs, API keys, JWTs, private keys, passwords; in fields, nested JSON, lists, free text and
split across fields) runs through the coordinator under each policy, against real recording MCP
servers (the fault server, stdio, ``--record``: every argument it receives goes to a file).

Zero raw sensitive values may reach a server whose policy forbids raw data. A control server
cleared ``restricted`` receives raw data, which shows the recording (and ``leaked``) can see a
leak. Detection recall is printed; zero leaks under ``route_internal`` implies it is total
(an undetected value would have been sent raw).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hybridmcp.config import parse_config
from hybridmcp.coordinator import Coordinator
from hybridmcp.task import parse_task
from hybridmcp.testing.canary import CanaryCase, canary_corpus, leaked
from hybridmcp.testing.harness import faultserver_stdio

pytestmark = pytest.mark.integration

POLICIES = ("refuse", "route_internal", "redact")
CONTROL = 30
INTERNAL = {"side": "internal", "function": "tests.helpers:echo_payload"}


def external(server: str) -> dict[str, Any]:
    return {
        "side": "external",
        "server": server,
        "tool": "echo_json",
        "arguments": {"payload": "$"},
        "timeout_ms": 20_000,
    }


def skill(*providers: dict[str, Any]) -> dict[str, Any]:
    return {"input_schema": {"type": "object"}, "providers": list(providers)}


def received(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line)["arguments"]["payload"] for line in lines]


def args(case: CanaryCase) -> dict[str, Any]:
    """The case's arguments, tagged with its id so that what a server received can be matched
    to the case it came from."""
    return {**case.args, "case_id": case.id}


def requests(skill_name: str, cases: list[CanaryCase]) -> Any:
    return parse_task(
        [{"id": c.id, "skill": skill_name, "args": args(c), "strategy": "external"} for c in cases]
    )


@pytest.fixture(scope="module")
def proof(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the corpus once per policy (and a control slice raw); return outputs and records."""
    import asyncio

    tmp = tmp_path_factory.mktemp("canary")
    servers = {name: tmp / f"{name}.jsonl" for name in (*POLICIES, "raw")}
    cfg = parse_config(
        {
            "mcpServers": {
                name: faultserver_stdio(
                    record=path, clearance="restricted" if name == "raw" else "public"
                )
                for name, path in servers.items()
            },
            "skills": {
                "canary.refuse": skill(external("refuse")),
                "canary.route_internal": skill(INTERNAL, external("route_internal")),
                "canary.redact": skill(external("redact")),
                "canary.raw": skill(external("raw")),
            },
            "privacy": {
                "skills": {
                    "canary.refuse": "refuse",
                    "canary.route_internal": "route_internal",
                    "canary.redact": "redact",
                }
            },
        }
    )
    cases = canary_corpus(600, seed=0)

    async def run_all() -> dict[str, Any]:
        outputs = {}
        async with Coordinator.open(cfg) as co:
            for policy in POLICIES:
                outputs[policy] = await co.run(requests(f"canary.{policy}", cases))
            sensitive = [c for c in cases if not c.clean][:CONTROL]
            outputs["raw"] = await co.run(requests("canary.raw", sensitive))
        return outputs

    outputs = asyncio.run(run_all())
    return {
        "cases": cases,
        "outputs": outputs,
        "received": {name: received(path) for name, path in servers.items()},
    }


def _flagged(output: dict[str, Any]) -> set[str]:
    return {e["request_id"] for e in output["events"] if e["code"] == "PRIVACY_DECISION"}


def _leaks(payloads: list[Any], cases: list[CanaryCase]) -> list[str]:
    """Each case's secrets found in what the server received for that case, plus any secret of
    eight characters or more found anywhere (short ones, such as the four digits of an SSN's
    serial, also occur by chance in other cases' order numbers and prices)."""
    by_id = {c.id: c for c in cases}
    found = []
    for payload in payloads:
        case = by_id[payload["case_id"]]
        found += [f"{case.id}: {s}" for s in leaked(payload, case.secrets)]
    long_secrets = [s for c in cases for s in c.secrets if len(s) >= 8]
    return found + [f"anywhere: {s}" for s in leaked(payloads, long_secrets)]


def test_the_control_server_does_see_raw_values(proof: dict[str, Any]) -> None:
    cases = [c for c in proof["cases"] if not c.clean][:CONTROL]
    raw = proof["received"]["raw"]
    assert len(raw) == CONTROL
    assert len(_leaks(raw, cases)) >= CONTROL  # every case's secrets arrived: a leak is visible


def test_refuse_sends_nothing_sensitive_and_refuses_every_sensitive_request(
    proof: dict[str, Any],
) -> None:
    cases, out = proof["cases"], proof["outputs"]["refuse"]
    got = proof["received"]["refuse"]
    assert _leaks(got, cases) == []
    for c in cases:
        result = out["results"][c.id]
        if c.clean:
            assert result["error"] is None and result["value"] == {"payload": args(c)}
        else:
            assert result["error"].startswith("refused by privacy policy"), c.id
    assert len(got) == sum(1 for c in cases if c.clean)


def test_route_internal_serves_sensitive_requests_in_process(proof: dict[str, Any]) -> None:
    cases, out = proof["cases"], proof["outputs"]["route_internal"]
    got = proof["received"]["route_internal"]
    assert _leaks(got, cases) == []
    for c in cases:
        result = out["results"][c.id]
        assert result["error"] is None, (c.id, result["error"])
        assert result["value"] == {"payload": args(c)}
        sides = {a["side"] for a in result["attempts"]}
        assert sides == ({"external"} if c.clean else {"internal"}), c.id
    assert out["status"] == "ok"


def test_redact_answers_everything_without_sending_a_raw_value(proof: dict[str, Any]) -> None:
    cases, out = proof["cases"], proof["outputs"]["redact"]
    got = proof["received"]["redact"]
    assert len(got) == len(cases)  # every request went out, redacted where needed
    assert _leaks(got, cases) == []
    assert sum("<" in json.dumps(p) for p in got) >= sum(1 for c in cases if not c.clean)
    for c in cases:
        result = out["results"][c.id]
        assert result["error"] is None, (c.id, result["error"])
        assert result["value"] == {"payload": args(c)}, c.id  # pseudonyms restored in-process
    assert out["status"] == "ok"


# Measured (seed 0): 540/540 sensitive requests flagged under each policy, 0/60 clean ones.
MIN_RECALL = 1.0
MAX_FALSE_POSITIVES = 0


def test_detection_recall_on_the_corpus(proof: dict[str, Any], capsys: Any) -> None:
    cases = proof["cases"]
    sensitive = {c.id for c in cases if not c.clean}
    clean = {c.id for c in cases if c.clean}
    with capsys.disabled():
        for policy in POLICIES:
            flagged = _flagged(proof["outputs"][policy])
            recall = len(flagged & sensitive) / len(sensitive)
            false_positives = len(flagged & clean)
            print(
                f"\ncanary proof [{policy}]: recall {recall:.4f} "
                f"({len(flagged & sensitive)}/{len(sensitive)} sensitive requests), "
                f"false positives {false_positives}/{len(clean)}, "
                f"raw values received {len(_leaks(proof['received'][policy], cases))}"
            )
            assert recall >= MIN_RECALL
            assert false_positives <= MAX_FALSE_POSITIVES

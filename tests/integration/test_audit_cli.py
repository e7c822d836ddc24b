"""The audit trail as a user gets it: ``hybridmcp run --audit FILE`` against a real MCP server
(the fault server, stdio), then ``hybridmcp audit verify FILE`` on the real file, intact and
tampered with (a record edited, removed, reordered)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hybridmcp.testing.harness import faultserver_stdio

pytestmark = pytest.mark.integration

EMAIL = "priya.patel@acme.io"
CALL_FIELDS = {
    "run_id",
    "request_id",
    "skill",
    "provider",
    "side",
    "redactions",
    "bytes_sent",
    "bytes_received",
    "cost",
    "outcome",
}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hybridmcp.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def audited_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], Path]:
    """One real run with an audit file: a redacted request, a public one, a refused one."""
    tmp = tmp_path_factory.mktemp("audit")
    record = tmp / "calls.jsonl"
    ext = {"side": "external", "server": "faulty"}
    config = {
        "mcpServers": {"faulty": faultserver_stdio(record=record, cost_per_call=0.002)},
        "skills": {
            "note.echo": {
                "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
                "providers": [{**ext, "tool": "echo"}],
            },
            "math.calculate": {"providers": [{**ext, "tool": "calculate"}]},
        },
        "privacy": {"policy": "redact", "skills": {"math.calculate": "refuse"}},
    }
    (tmp / "config.json").write_text(json.dumps(config))
    task = [
        {"id": "mail", "skill": "note.echo", "args": {"text": f"send to {EMAIL}"}},
        {"id": "plain", "skill": "note.echo", "args": {"text": "hello"}},
        {"id": "calc", "skill": "math.calculate", "args": {"expression": f"1 + 1 # {EMAIL}"}},
        {"id": "sum", "skill": "math.calculate", "args": {"expression": "2 * 21"}},
    ]
    (tmp / "task.json").write_text(json.dumps({"requests": task}))
    audit = tmp / "audit.jsonl"
    proc = cli(
        "run",
        str(tmp / "task.json"),
        "-c",
        str(tmp / "config.json"),
        "--audit",
        str(audit),
        "--json",
    )
    assert proc.returncode == 3, proc.stderr  # partial: the refused request
    return audit, json.loads(proc.stdout), record


def test_one_record_per_flow_and_decision_without_raw_values(
    audited_run: tuple[Path, dict[str, Any], Path],
) -> None:
    audit, out, record = audited_run
    results = {r["id"]: r for r in out["results"]}
    assert results["mail"]["value"] == {"text": f"send to {EMAIL}"}
    assert "refused by privacy policy" in results["calc"]["error"]
    text = audit.read_text()
    assert EMAIL not in text and EMAIL not in record.read_text()
    records = [json.loads(line) for line in text.splitlines()]
    calls = [r for r in records if r["kind"] == "external_call"]
    assert sorted(r["request_id"] for r in calls) == ["mail", "plain", "sum"]
    for r in calls:
        assert CALL_FIELDS <= set(r) and r["outcome"] == "ok" and r["cost"] == 0.002
        assert r["bytes_sent"] > 0 and r["bytes_received"] > 0
    mail = next(r for r in calls if r["request_id"] == "mail")
    assert [x["entity_type"] for x in mail["redactions"]] == ["EMAIL_ADDRESS"]
    decisions = [
        (r["request_id"], r["stage"], r["action"])
        for r in records
        if r["kind"] == "policy_decision"
    ]
    assert ("calc", "arbitrate", "refuse") in decisions
    assert ("mail", "arbitrate", "redact") in decisions and ("mail", "gate", "redact") in decisions
    assert ("plain", "gate", "allow") in decisions
    assert len({r["run_id"] for r in records}) == 1


def test_verify_accepts_the_intact_trail(audited_run: tuple[Path, dict[str, Any], Path]) -> None:
    audit, _, _ = audited_run
    lines = audit.read_text().splitlines()
    proc = cli("audit", "verify", str(audit))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"ok: {len(lines)} records, chain intact")


def _tampered(audit: Path, tmp_path: Path, change: Any) -> subprocess.CompletedProcess[str]:
    lines = audit.read_text().splitlines(keepends=True)
    target = tmp_path / "tampered.jsonl"
    target.write_text("".join(change(lines)))
    return cli("audit", "verify", str(target))


def test_verify_names_the_edited_removed_or_reordered_record(
    audited_run: tuple[Path, dict[str, Any], Path], tmp_path: Path
) -> None:
    audit, _, _ = audited_run

    def edit(lines: list[str]) -> list[str]:
        record = json.loads(lines[2])
        record["outcome"] = "ok" if record.get("outcome") != "ok" else "error: hidden"
        return [*lines[:2], json.dumps(record) + "\n", *lines[3:]]

    proc = _tampered(audit, tmp_path, edit)
    assert proc.returncode == 1
    assert "FAILED: line 3 (seq 3): hash mismatch" in proc.stderr

    proc = _tampered(audit, tmp_path, lambda lines: lines[:1] + lines[2:])
    assert proc.returncode == 1
    assert "FAILED: line 2: seq 3 follows seq 1: 1 record(s) missing" in proc.stderr

    proc = _tampered(audit, tmp_path, lambda lines: [lines[0], lines[2], lines[1], *lines[3:]])
    assert proc.returncode == 1
    assert "FAILED: line 2: seq 3 follows seq 1" in proc.stderr

    proc = cli("audit", "verify", str(tmp_path / "missing.jsonl"))
    assert proc.returncode == 1 and "no such audit file" in proc.stderr

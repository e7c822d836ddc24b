"""The audit trail as a user gets it: ``hybridmcp run --audit FILE`` against a real MCP server
(the fault server, stdio), then ``hybridmcp audit verify FILE`` on the real file, intact and
tampered with (a record edited, removed, reordered; the tail cut, the file emptied, the chain
recomputed), ``audit head`` exported and checked, and a second run refusing a tampered trail.

Every CLI call here uses the test session's database (``HYBRIDMCP_DB``, set by conftest), where
the run anchored the trail's head; the key file sits beside the trail."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hybridmcp.audit import AuditLog, record_mac
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
def _module_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The session's database for the module's fixtures too (conftest's is per test, and a
    module fixture runs before it): the run anchors the head where `audit verify` looks."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HYBRIDMCP_DB", str(tmp_path_factory.getbasetemp() / "hybridmcp.db"))
        yield


@pytest.fixture(scope="module")
def audited_run(
    tmp_path_factory: pytest.TempPathFactory, _module_database: None
) -> tuple[Path, dict[str, Any], Path]:
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
    assert proc.stdout.startswith(f"ok: {len(lines)} records, MAC chain intact")


def _tampered(audit: Path, tmp_path: Path, change: Any) -> subprocess.CompletedProcess[str]:
    """Verify a copy of the trail changed by ``change``, with its key and its exported head."""
    lines = audit.read_text().splitlines(keepends=True)
    target = tmp_path / "tampered.jsonl"
    target.write_text("".join(change(lines)))
    head = cli("audit", "head", str(audit)).stdout.strip()
    return cli("audit", "verify", str(target), "--key-file", f"{audit}.key", "--head", head)


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
    assert "FAILED: line 3 (seq 3): MAC mismatch" in proc.stderr

    proc = _tampered(audit, tmp_path, lambda lines: lines[:1] + lines[2:])
    assert proc.returncode == 1
    assert "FAILED: line 2: seq 3 follows seq 1: 1 record(s) missing" in proc.stderr

    proc = _tampered(audit, tmp_path, lambda lines: [lines[0], lines[2], lines[1], *lines[3:]])
    assert proc.returncode == 1
    assert "FAILED: line 2: seq 3 follows seq 1" in proc.stderr

    proc = cli("audit", "verify", str(tmp_path / "missing.jsonl"))
    assert proc.returncode == 1 and "no such audit file" in proc.stderr


def _copy_run(audited_run: tuple[Path, dict[str, Any], Path], tmp_path: Path, name: str) -> Path:
    """A second real run writing its own trail, so tampering with it leaves the shared one."""
    audit, _, _ = audited_run
    folder = audit.parent
    trail = tmp_path / name
    proc = cli(
        "run",
        str(folder / "task.json"),
        "-c",
        str(folder / "config.json"),
        "--audit",
        str(trail),
        "--json",
    )
    assert proc.returncode == 3, proc.stderr
    return trail


def test_verify_shows_a_cut_tail_an_emptied_file_and_a_recomputed_chain(
    audited_run: tuple[Path, dict[str, Any], Path], tmp_path: Path
) -> None:
    trail = _copy_run(audited_run, tmp_path, "cut.jsonl")
    assert stat.S_IMODE(Path(f"{trail}.key").stat().st_mode) == 0o600
    lines = trail.read_text().splitlines(keepends=True)
    ok = cli("audit", "verify", str(trail))
    assert ok.returncode == 0 and "head anchored in" in ok.stdout, ok.stderr

    trail.write_text("".join(lines[:-2]))
    proc = cli("audit", "verify", str(trail))
    assert proc.returncode == 1
    assert f"the anchored head is seq {len(lines)}" in proc.stderr
    assert f"the file has seq {len(lines) - 2}: records were cut off" in proc.stderr

    trail.write_text("")
    proc = cli("audit", "verify", str(trail))
    assert proc.returncode == 1 and "the file has no records" in proc.stderr

    key = Path(f"{trail}.key").read_bytes().strip()  # a holder of the key rewrites it all
    prev, rewritten = "0" * 64, []
    for n, line in enumerate(lines, 1):
        record = json.loads(line)
        if n == 1:
            record["outcome"] = "rewritten"
        record["prev_mac"] = prev
        record.pop("mac")
        prev = record["mac"] = record_mac(record, key)
        rewritten.append(json.dumps(record) + "\n")
    trail.write_text("".join(rewritten))
    proc = cli("audit", "verify", str(trail))
    assert proc.returncode == 1
    assert f"FAILED: seq {len(lines)}: its MAC is not the anchored one" in proc.stderr


def test_a_run_refuses_to_append_to_a_trail_that_does_not_verify(
    audited_run: tuple[Path, dict[str, Any], Path], tmp_path: Path
) -> None:
    audit, _, _ = audited_run
    trail = _copy_run(audited_run, tmp_path, "refused.jsonl")
    cut = "".join(trail.read_text().splitlines(keepends=True)[:-1])
    trail.write_text(cut)
    folder = audit.parent
    proc = cli(
        "run", str(folder / "task.json"), "-c", str(folder / "config.json"), "--audit", str(trail)
    )
    assert proc.returncode == 2
    assert "does not verify, so nothing will be appended to it" in proc.stderr
    assert trail.read_text() == cut


def test_verify_reads_an_old_unkeyed_trail_and_says_what_it_cannot_show(tmp_path: Path) -> None:
    old = tmp_path / "old.jsonl"
    with AuditLog(old) as log:
        log.append({"kind": "external_call"})
    proc = cli("audit", "verify", str(old))
    assert proc.returncode == 0, proc.stderr
    assert "ok: 1 records, chain intact" in proc.stdout
    assert "note: unkeyed trail" in proc.stdout and "not records cut off the end" in proc.stdout


def test_verify_with_another_database_says_where_it_looked_for_the_head(
    audited_run: tuple[Path, dict[str, Any], Path], tmp_path: Path
) -> None:
    """A run given ``--db D`` anchors its heads beside D; ``verify`` without it looks beside the
    default database, finds none, and says where it looked and how to point it at the run's."""
    audit, _, _ = audited_run
    other = tmp_path / "other.db"
    proc = cli("audit", "verify", str(audit), "--db", str(other))
    assert proc.returncode == 1
    assert "no head is anchored for this file" in proc.stderr
    assert str(tmp_path / "other.audit-heads.db") in proc.stderr
    assert "--db" in proc.stderr


def test_verify_of_an_empty_trail_says_it_is_empty(tmp_path: Path) -> None:
    """A run whose requests all ran internally leaves an empty trail: it verifies, and says so
    (not ``last seq 0, ``)."""
    task = tmp_path / "t.yaml"
    task.write_text("requests: [{id: a, skill: math.calculate, args: {expression: '1+1'}}]\n")
    audit = tmp_path / "empty.jsonl"
    assert cli("run", str(task), "--audit", str(audit), "--quiet").returncode == 0
    proc = cli("audit", "verify", str(audit))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == (
        "ok: 0 records (the trail is empty: no external call or decision was recorded)"
    )


def test_verify_with_a_key_file_that_is_not_there_is_bad_input(
    audited_run: tuple[Path, dict[str, Any], Path], tmp_path: Path
) -> None:
    audit, _, _ = audited_run
    proc = cli("audit", "verify", str(audit), "--key-file", str(tmp_path / "nope.key"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"error: --key-file '{tmp_path / 'nope.key'}': no such file"


def test_show_lists_the_verified_records_by_run_and_kind(
    audited_run: tuple[Path, dict[str, Any], Path],
) -> None:
    audit, _, _ = audited_run
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    (run_id,) = {r["run_id"] for r in records}
    calls = [r for r in records if r["kind"] == "external_call"]
    whole = cli("audit", "show", str(audit), "--run", run_id, "--kind", "external_call", "--json")
    assert whole.returncode == 0, whole.stderr
    assert [json.loads(line) for line in whole.stdout.splitlines()] == calls
    assert cli("audit", "show", str(audit), "--run", "another-run", "--json").stdout == ""
    two = cli("audit", "show", str(audit), "--kind", "external_call", "--kind", "policy_decision")
    assert two.returncode == 0, two.stderr
    assert f"{len(records)} of {len(records)} records" in two.stdout
    assert "faulty/echo" in two.stdout and "faulty/calculate" in two.stdout
    assert all(call["request_id"] in two.stdout for call in calls)
    assert "redact" in two.stdout and "refuse" in two.stdout and EMAIL not in two.stdout


def test_show_refuses_a_trail_that_does_not_verify(
    audited_run: tuple[Path, dict[str, Any], Path], tmp_path: Path
) -> None:
    audit, _, _ = audited_run
    lines = audit.read_text().splitlines(keepends=True)
    target = tmp_path / "cut.jsonl"
    target.write_text("".join(lines[:1] + lines[2:]))  # a record removed
    proc = cli("audit", "show", str(target), "--key-file", f"{audit}.key")
    assert proc.returncode == 1 and proc.stdout == ""
    assert "FAILED: line 2: seq 3 follows seq 1" in proc.stderr

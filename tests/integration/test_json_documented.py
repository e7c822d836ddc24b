"""Every field ``hybridmcp run --json`` prints is named in docs/report.md, where the output is
documented: a field added to the output without a word in the docs fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.integration.test_durable import cli

DOC = (Path(__file__).resolve().parents[2] / "docs" / "report.md").read_text(encoding="utf-8")
NAMED = set(re.findall(r"`([a-z_]+)`", DOC))


def _undocumented(out: dict) -> list[str]:
    fields = {f"<top>.{k}" for k in out}
    for r in out["results"]:
        fields |= {f"results.{k}" for k in r}
        fields |= {f"attempts.{k}" for a in r["attempts"] for k in a}
        fields |= {f"served_by.{k}" for k in r["served_by"] or {}}
    fields |= {f"quality.{k}" for k in out["quality"]}
    fields |= {f"thread.{k}" for k in out["thread"]}
    return sorted(f for f in fields if f.split(".")[1] not in NAMED)


@pytest.mark.integration
def test_every_json_field_of_a_run_is_documented(tmp_path):
    proc = cli("run", "--json", "--db", str(tmp_path / "r.db"))  # the embedded demo task
    assert proc.returncode == 0, proc.stderr[-2000:]
    missing = _undocumented(json.loads(proc.stdout))
    assert not missing, f"--json fields not named in docs/report.md: {missing}"


@pytest.mark.integration
def test_every_json_field_of_a_failed_attempt_is_documented(tmp_path):
    """A failure carries more: who it is held against (an unknown zone is the request's)."""
    task = tmp_path / "t.yaml"
    task.write_text(
        "requests:\n"
        "- {id: a, skill: time.now, args: {timezone: Nowhere/Zone}, strategy: hybrid}\n"
        "- {id: b, skill: time.get_current_time, args: {timezone: Nowhere/Zone}}\n"
    )
    proc = cli("run", str(task), "--json", "--db", str(tmp_path / "r.db"))
    out = json.loads(proc.stdout)
    kinds = {a.get("error_kind") for r in out["results"] for a in r["attempts"]}
    assert "request" in kinds, out["results"]
    missing = _undocumented(out)
    assert not missing, f"--json fields not named in docs/report.md: {missing}"

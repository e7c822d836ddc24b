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


@pytest.mark.integration
def test_every_json_field_of_a_run_is_documented(tmp_path):
    proc = cli("run", "--json", "--db", str(tmp_path / "r.db"))  # the embedded demo task
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    fields = {f"<top>.{k}" for k in out}
    for r in out["results"]:
        fields |= {f"results.{k}" for k in r}
        fields |= {f"attempts.{k}" for a in r["attempts"] for k in a}
        fields |= {f"served_by.{k}" for k in r["served_by"] or {}}
    fields |= {f"quality.{k}" for k in out["quality"]}
    fields |= {f"thread.{k}" for k in out["thread"]}
    missing = sorted(f for f in fields if f.split(".")[1] not in NAMED)
    assert not missing, f"--json fields not named in docs/report.md: {missing}"

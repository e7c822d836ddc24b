"""The report and the command line on runs and uses they were not shaped around: a database
named wrong, a run interrupted midway, output read by a pipe that closes early, text from a
server that holds terminal control sequences."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_durable import cli

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("made", ["missing", "empty"])
def test_a_report_from_a_database_that_holds_nothing_makes_none(made: str, tmp_path: Path):
    """A ``--db`` that names no database (a typo) is one error line, exit 2, and no database,
    lock file or report is left behind (looking makes nothing)."""
    db = tmp_path / "typo.db"
    if made == "empty":
        db.touch()
    out = tmp_path / "r.html"
    proc = cli("report", "--thread", "t", "--db", str(db), "-o", str(out), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    said = " ".join(proc.stderr.split())
    assert ("does not exist" if made == "missing" else "is empty") in said
    assert "typo.db" in said
    expected = ["typo.db"] if made == "empty" else []
    assert sorted(p.name for p in tmp_path.iterdir()) == expected
    if made == "empty":
        assert db.stat().st_size == 0

"""The resilience benchmark runs (a tiny workload; its figures are not checked here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_bench_resilience_runs_and_writes_its_report(tmp_path):
    command = [
        sys.executable,
        "-m",
        "bench.resilience",
        "--requests",
        "3",
        "--warmup",
        "2",
        "--scenarios",
        "hang",
        "--strategies",
        "naive-retry-fallback,hybridmcp",
        "--out",
        str(tmp_path),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "resilience.json").read_text())
    cells = {(c["scenario"], c["strategy"]): c for c in report["cells"]}
    assert set(cells) == {("hang", "naive-retry-fallback"), ("hang", "hybridmcp")}
    assert all(c["requests"] == 3 for c in cells.values())
    assert "| hang | hybridmcp |" in (tmp_path / "resilience.md").read_text()

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


def run_bench(module: str, *args: str, timeout: float = 120) -> None:
    command = [sys.executable, "-m", module, *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]


def test_bench_overhead_runs_and_writes_its_report(tmp_path):
    run_bench(
        "bench.overhead",
        *("--sizes", "2,4", "--sequential", "1", "--adapters-calls", "1", "--out", str(tmp_path)),
    )
    report = json.loads((tmp_path / "overhead.json").read_text())
    assert [r["requests"] for r in report["rows"]] == [2, 4]
    for row in report["rows"]:
        for key in ("raw-session_ms", "hybridmcp-external_ms", "bare-send_ms"):
            assert row[key] > 0
        assert {"overhead_vs_raw_session_ms", "overhead_vs_bare_send_ms"} <= row.keys()
    assert set(report["sequential"]) == {
        "raw-session",
        "hybridmcp-external",
        "bare-send",
        "hybridmcp-internal",
    }
    assert report["adapters_ms_per_call"] > 0 and report["peak_rss_mb"] > 0
    assert "| 4 |" in (tmp_path / "overhead.md").read_text()


def test_bench_throughput_runs_and_writes_its_report(tmp_path):
    run_bench(
        "bench.throughput",
        *("--seconds", "0.2", "--batches", "2", "--clients", "2", "--out", str(tmp_path)),
    )
    report = json.loads((tmp_path / "throughput.json").read_text())
    cells = {(c["workload"], c["subject"]) for c in report["cells"]}
    assert ("internal-noop", "hybridmcp") in cells and ("external-pooled", "hybridmcp") in cells
    assert all(c["rps"] > 0 and c["batch"] == 2 for c in report["cells"])
    assert report["peak_rss_mb"] > 0
    assert "requests/s" in (tmp_path / "throughput.md").read_text()

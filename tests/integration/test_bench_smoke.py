"""Every benchmark runs on a tiny workload (``python -m bench --quick``) and writes its report.

The figures are not checked here (they depend on the machine); the structure of each report is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the bench package lives beside src


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    command = [sys.executable, "-m", "bench", "--quick", "--jobs", "2", "--out", str(out)]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=240, env=dict(os.environ)
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return out


def report(out: Path, name: str) -> dict[str, Any]:
    assert (out / f"{name}.md").read_text().startswith("# ")
    return json.loads((out / f"{name}.json").read_text())


def test_overhead_report(quick):
    rep = report(quick, "overhead")
    assert [r["requests"] for r in rep["rows"]] == [3, 6]
    for row in rep["rows"]:
        for key in ("raw-session_ms", "hybridmcp-external_ms", "bare-send_ms"):
            assert row[key] > 0
        assert {"overhead_vs_raw_session_ms", "overhead_vs_bare_send_ms"} <= row.keys()
    assert set(rep["sequential"]) == {
        "raw-session",
        "hybridmcp-external",
        "bare-send",
        "hybridmcp-internal",
    }
    assert rep["adapters_ms_per_call"] > 0 and rep["peak_rss_mb"] > 0
    assert (quick / "overhead.png").stat().st_size > 0


def test_throughput_report(quick):
    rep = report(quick, "throughput")
    cells = {(c["workload"], c["subject"]) for c in rep["cells"]}
    assert ("internal-noop", "hybridmcp") in cells and ("external-pooled", "hybridmcp") in cells
    assert all(c["rps"] > 0 and c["batch"] == 2 for c in rep["cells"])
    assert rep["peak_rss_mb"] > 0


def test_criteria_report(quick):
    rep = report(quick, "criteria")
    assert list(rep["workloads"]) == ["workload", "workload-seed2"]
    for name, one in rep["workloads"].items():
        assert one["workload"]["requests"] == 6
        assert set(one["strategies"]) == {
            "internal-only",
            "external-only",
            "static-routing",
            "naive-retry-fallback",
            "langchain-mcp-adapters",
            "hybridmcp",
        }
        for figures in one["strategies"].values():
            assert figures["requests"] == 6
            assert {"correct", "allocation_accuracy", "p50_ms", "p99_ms", "cost"} <= figures.keys()
        assert set(one["criteria"]) == {
            "allocation_accuracy",
            "performance_improvement",
            "cost_saved",
            "integration_quality",
            "reallocation_success",
            "cross_validation_accuracy",
            "prediction_accuracy",
        }
        assert all(len(records) == 6 for records in one["records"].values())
        assert all("rule" in r and r["attempts"] for r in one["records"]["hybridmcp"])
        prefix = "criteria" + name.removeprefix("workload")
        for plot in ("quality", "latency", "targets"):
            assert (quick / f"{prefix}_{plot}.png").stat().st_size > 0
    assert "`workload-seed2` (6)" in (quick / "criteria.md").read_text()


def test_resilience_report(quick):
    rep = report(quick, "resilience")
    cells = {(c["scenario"], c["strategy"]) for c in rep["cells"]}
    assert cells == {("hang", "naive-retry-fallback"), ("hang", "hybridmcp")}
    assert all(c["requests"] == 3 for c in rep["cells"])


def test_server_report(quick):
    rep = report(quick, "server")
    assert rep["meta"]["jobs"] == 100 and rep["meta"]["rounds"] == 1
    assert [r["concurrency"] for r in rep["levels"]] == [1, 3]
    for row in rep["levels"]:
        assert row["runs"] == row["concurrency"] and row["failed_runs"] == 0
        assert row["requests"] == 10 * row["runs"]
        assert row["correct"] == row["requests"] and row["cross_talk"] == 0
        assert row["runs_per_s"] > 0 and row["p50_ms"] > 0 and row["p99_ms"] > 0
        for key in (
            "hedges_started",
            "hedges_lost",
            "stragglers_cut",
            "circuits_opened",
            "cross_validations_skipped",
            "sessions_replaced",
        ):
            assert row[key] >= 0
        assert row["server"]["runs_logged"] == row["runs"]
    assert rep["stop"]["exited_by_itself"] and rep["stop"]["processes_left"] == 0


def test_summary_gathers_every_report(quick):
    text = (quick / "summary.md").read_text()
    for heading in (
        "### Overhead",
        "### Throughput",
        "### Success criteria",
        "### Resilience",
        "### Server concurrency",
    ):
        assert heading in text


@pytest.mark.parametrize("name", ["workload.json", "workload-seed2.json"])
def test_the_committed_workloads_are_the_generated_ones(name):
    from bench.workload.generate import WORKLOADS, generate

    path = next(p for p in WORKLOADS if p.name == name)
    committed = json.loads(path.read_text())
    spec = WORKLOADS[path]
    assert committed == json.loads(json.dumps(generate(spec["seed"], spec["mix"], spec["order"])))
    requests = committed["requests"]
    assert len(requests) >= 200
    assert len({r["id"] for r in requests}) == len(requests)
    for r in requests:
        assert r["oracle"]["allocation"] in {"internal", "external", "hybrid"}
        assert r["oracle"]["reason"] and "reference" in r and r["check"]


def test_the_second_workload_differs_in_seed_mix_and_order():
    from bench.workload.generate import WORKLOAD, WORKLOAD_SEED2

    first, second = (json.loads(p.read_text()) for p in (WORKLOAD, WORKLOAD_SEED2))
    assert first["seed"] != second["seed"]

    def counts(w: dict[str, Any]) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in w["requests"]:
            out[r["skill"]] = out.get(r["skill"], 0) + 1
        return out

    a, b = counts(first), counts(second)
    assert any(b[s] > a[s] for s in a) and any(b[s] < a[s] for s in a)
    # The requests best served externally arrive late in the second run.
    late = [i for i, r in enumerate(second["requests"]) if r["oracle"]["allocation"] == "external"]
    assert min(late) >= len(second["requests"]) // 3

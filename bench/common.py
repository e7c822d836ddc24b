"""Machinery the benchmarks share: the machine's description, percentiles, peak memory, the
no-op skills, and writing a report (markdown + JSON) into ``bench/results``."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


async def noop(**args: Any) -> dict[str, Any]:
    """An internal skill that does nothing: what is measured around it is the coordinator."""
    return {"ok": True}


NOOP_SKILL = {
    "description": "Does nothing (benchmarks measure the coordination around it).",
    "input_schema": {"type": "object"},
    "providers": [{"side": "internal", "function": "bench.common:noop"}],
}


def machine() -> dict[str, Any]:
    """What the figures were measured on, including how loaded the machine was."""
    versions = {}
    for package in ("langgraph", "mcp", "langchain-mcp-adapters"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "platform": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "versions": versions,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def describe_machine(m: dict[str, Any]) -> str:
    return (
        f"{m['platform']}, {m['cpus']} CPUs, Python {m['python']}, LangGraph "
        f"{m['versions']['langgraph']}, load average {m['load_average'][0]} at the start, "
        f"{m['when']}"
    )


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (``getrusage``; KiB on Linux)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kib / 1024 if sys.platform != "darwin" else kib / 2**20, 1)


def process_peak_rss_mb(pid: int) -> float | None:
    """Peak resident memory of a live process (``VmHWM``), e.g. an MCP server child."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def percentile(values: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def write_report(out: Path, name: str, report: dict[str, Any], markdown: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / f"{name}.md").write_text(markdown)
    print(f"wrote {out / (name + '.md')} and {name}.json", flush=True)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("-" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)

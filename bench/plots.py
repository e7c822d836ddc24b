"""PNG figures of the benchmark reports (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}", flush=True)


def criteria_plots(rep: dict[str, Any], out: Path, prefix: str = "criteria") -> None:
    per = rep["strategies"]
    names = list(per)
    x = range(len(names))

    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.4
    correct = [100 * (per[s]["correct"] or 0) for s in names]
    alloc = [100 * (per[s]["allocation_accuracy"] or 0) for s in names]
    ax.bar([i - width / 2 for i in x], correct, width, label="correct answers")
    ax.bar([i + width / 2 for i in x], alloc, width, label="allocation = oracle")
    ax.axhline(85, color="grey", linestyle="--", linewidth=1, label="allocation target 85%")
    ax.set_xticks(list(x), names, rotation=20, ha="right")
    ax.set_ylabel("% of requests")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title("Quality and allocation accuracy per strategy")
    _save(fig, out / f"{prefix}_quality.png")

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.bar([i - width / 2 for i in x], [per[s]["p50_ms"] or 0 for s in names], width, label="p50")
    ax.bar([i + width / 2 for i in x], [per[s]["p99_ms"] or 0 for s in names], width, label="p99")
    ax.set_yscale("log")
    ax.set_xticks(list(x), names, rotation=20, ha="right")
    ax.set_ylabel("latency per request, ms (log)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title("Latency per strategy")
    _save(fig, out / f"{prefix}_latency.png")

    if "criteria" in rep:
        crit = rep["criteria"]
        keys = list(crit)
        fig, ax = plt.subplots(figsize=(9, 4))
        values = [100 * (crit[k]["value"] or 0) for k in keys]
        colors = [
            "tab:grey" if crit[k]["met"] is None else "tab:green" if crit[k]["met"] else "tab:red"
            for k in keys
        ]
        ax.bar(range(len(keys)), values, color=colors, label="measured")
        ax.scatter(
            range(len(keys)),
            [100 * crit[k]["target"] for k in keys],
            marker="_",
            s=600,
            color="black",
            label="target",
            zorder=3,
        )
        ax.set_xticks(range(len(keys)), [k.replace("_", "\n") for k in keys], fontsize=8)
        ax.set_ylabel("%")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
        ax.set_title("hybridmcp against the spec's success criteria (green: met, grey: n/a)")
        _save(fig, out / f"{prefix}_targets.png")


def overhead_plot(rep: dict[str, Any], out: Path) -> None:
    rows = rep["rows"]
    sizes = [r["requests"] for r in rows]
    fig, ax = plt.subplots(figsize=(9, 4))
    for key, label in (
        ("raw-session_ms", "raw ClientSession.call_tool"),
        ("hybridmcp-external_ms", "hybridmcp, external"),
        ("bare-send_ms", "bare LangGraph Send"),
        ("hybridmcp-internal_ms", "hybridmcp, internal no-op"),
    ):
        ax.plot(sizes, [r[key] for r in rows], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("requests in one run")
    ax.set_ylabel("ms per request")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title("Per-request cost (flat = linear total)")
    _save(fig, out / "overhead.png")


def throughput_plot(rep: dict[str, Any], out: Path) -> None:
    cells = rep["cells"]
    labels = [f"{c['workload']}\n{c['subject']}\nbatch {c['batch']}" for c in cells]
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.bar(range(len(cells)), [c["rps"] for c in cells])
    ax.set_xticks(range(len(cells)), labels, fontsize=7)
    ax.set_ylabel("requests / s")
    ax.set_title("Sustained throughput")
    _save(fig, out / "throughput.png")

"""The LM layer with the shipped SmolLM2-135M: format fallbacks, queueing, advice accuracy.

``python -m bench.lm`` (a few minutes on 2 busy cores) measures three things and writes
``bench/results/lm.md`` and ``lm.json``:

1. **A 20-request task** with the local model as coordinator, arbitrator and synchronizer:
   8 requests in the 1.2 band (arbitrator), 6 critical conflicts (synchronizer's expert
   arbitration), 4 ``hybrid_synthesis`` of text (synchronizer), 2 plain requests; 19 LM steps.
   Counted: LM steps that fell back, by cause (format, time, context), and the advice records
   the run reports. Target: at most 5% of LM steps fall back for format reasons.
2. **Before/after on the arbitrator signature**, side by side in this process: dspy's chat
   format (the former path, answer bounded to 300 tokens to keep this short) against the
   grammar-bound structured answer; parse rate, tokens and seconds per call.
3. **Advice accuracy on labelled arbitration cases**: each case's right side is set by
   construction (the side whose measured quality is clearly higher); the rule picks the side
   with the higher fitness total, the model its answer. Both accuracies, and whether the
   advice would earn the trust to decide (:func:`hybridmcp.policy.advice_trust.trusted`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before llama_cpp loads (see local_model)

from bench.common import RESULTS, describe_machine, machine, table, write_report

SHIFT = timedelta(hours=2)


def wrong_time(timezone: str) -> dict[str, Any]:
    """An internal clock two hours fast: every answer conflicts with the time server."""
    from hybridmcp.capabilities.builtin import current_time

    value = current_time(timezone)
    shifted = datetime.fromisoformat(value["datetime"]) + SHIFT
    return value | {"datetime": shifted.isoformat(timespec="seconds")}


def echo_text(text: str) -> dict[str, Any]:
    return {"text": text}


def task_config(timeout_ms: float) -> Any:
    from hybridmcp.config import parse_config
    from hybridmcp.testing.harness import faultserver_stdio

    string = {"type": "object", "properties": {"timezone": {"type": "string"}}}
    return parse_config(
        {
            "mcpServers": {
                "time": {"command": "mcp-server-time", "args": ["--local-timezone", "UTC"]},
                "fault": faultserver_stdio(),
            },
            "arbitration_config": {"bias_ratio": 100.0},  # every auto request is in the band
            "llm_config": {
                "coordinator_model": "local/smollm2",
                "arbitrator_model": "local/smollm2",
                "synchronizer_model": "local/smollm2",
                "timeout_ms": timeout_ms,
            },
            "skills": {
                "time.now": {
                    "providers": [
                        {"side": "external", "server": "time", "tool": "get_current_time"}
                    ]
                },
                "clock.now": {
                    "input_schema": string | {"required": ["timezone"]},
                    "comparator": {
                        "type": "fields",
                        "fields": {
                            "timezone": {"type": "exact"},
                            "datetime": {"type": "datetime", "tolerance": 5},
                        },
                    },
                    "providers": [
                        {"side": "internal", "function": "bench.lm:wrong_time"},
                        {"side": "external", "server": "time", "tool": "get_current_time"},
                    ],
                },
                "text.echo": {
                    "input_schema": {
                        "type": "object",
                        "properties": {"text": {"type": "string"}},
                        "required": ["text"],
                    },
                    "comparator": {
                        "type": "fields",
                        "fields": {"text": {"type": "text_similarity", "threshold": 0.6}},
                    },
                    "integration": "hybrid_synthesis",
                    "providers": [
                        {"side": "internal", "function": "bench.lm:echo_text"},
                        {"side": "external", "server": "fault", "tool": "echo"},
                    ],
                },
            },
        }
    )


ZONES = ["Asia/Tokyo", "Europe/Paris", "America/New_York", "UTC", "Australia/Sydney",
         "Europe/Oslo", "Asia/Kolkata", "America/Sao_Paulo"]  # fmt: skip
TEXTS = [
    "The release moves to March. Billing stays on the old system until then.",
    "Dana leads the migration; the budget is forty thousand euros for the quarter.",
    "Support answers within a day. Urgent tickets are paged to the on-call engineer.",
    "The archive keeps invoices for ten years, then deletes them after a review.",
]


def task_requests() -> list[dict[str, Any]]:
    band = [{"id": f"band{i}", "skill": "time.now", "args": {"timezone": z}}
            for i, z in enumerate(ZONES)]  # fmt: skip
    conflicts = [
        {"id": f"clock{i}", "skill": "clock.now", "args": {"timezone": z},
         "strategy": "hybrid", "critical": True}
        for i, z in enumerate(ZONES[:6])
    ]  # fmt: skip
    texts = [{"id": f"text{i}", "skill": "text.echo", "args": {"text": t}, "strategy": "hybrid"}
             for i, t in enumerate(TEXTS)]  # fmt: skip
    plain = [{"id": f"calc{i}", "skill": "math.calculate", "args": {"expression": f"{i}*7"}}
             for i in range(2)]  # fmt: skip
    return band + conflicts + texts + plain


def _cause(error: str) -> str:
    if error.startswith("TimeoutError") or "no answer within" in error:
        return "time"
    if "context" in error.lower() and "window" in error.lower():
        return "context"
    return "format"


async def run_task(timeout_ms: float) -> dict[str, Any]:
    from hybridmcp import Coordinator, parse_task

    started = time.perf_counter()
    async with asyncio.timeout(900), Coordinator.open(task_config(timeout_ms)) as co:
        out = await co.run(parse_task({"requests": task_requests()}))
    seconds = time.perf_counter() - started
    results = out["results"].values() if isinstance(out["results"], dict) else out["results"]
    steps = {
        "coordinator": 1,
        "arbitrator": sum(1 for r in results if "allocation_advice" in r),
        "synchronizer": sum(
            1 for c in out["conflicts"] if "withheld" not in c.get("expert_arbitration", {"w": 1})
        )
        + sum(1 for r in results if "lm_synthesis" in (r.get("synthesis") or {})),
    }
    fallbacks = [e for e in out["events"] if e["code"] == "LM_FALLBACK"]
    causes: dict[str, int] = {}
    for event in fallbacks:
        causes[_cause(event["error"])] = causes.get(_cause(event["error"]), 0) + 1
    total = sum(steps.values())
    return {
        "lm_steps": total,
        "by_role": steps,
        "fallbacks": len(fallbacks),
        "fallbacks_by_cause": causes,
        "format_fallback_rate": round(causes.get("format", 0) / total, 4),
        "errors": [e["error"][:200] for e in fallbacks],
        "coordination_recorded": "coordination" in out,
        "advice": out["metrics"].get("advice", {}),
        "status": out["status"],
        "seconds": round(seconds, 1),
    }


ARBITRATION_CASES = [
    # (internal quality, external quality, internal total, external total): the right side is
    # the one with the clearly higher quality. The totals (the rule) weigh speed and cost too,
    # so they point to the right side in 6 of the 8 cases, as a reasonable rule would; the
    # right side is internal in half of them.
    (0.95, 0.60, 0.72, 0.65),
    (0.55, 0.92, 0.63, 0.70),
    (0.90, 0.50, 0.70, 0.62),
    (0.52, 0.94, 0.61, 0.69),
    (0.93, 0.58, 0.71, 0.66),
    (0.50, 0.91, 0.62, 0.68),
    (0.96, 0.55, 0.63, 0.69),  # the rule is wrong: speed and cost favour external
    (0.57, 0.95, 0.70, 0.66),  # the rule is wrong: speed and cost favour internal
]


def arbitration_inputs(case: tuple[float, float, float, float]) -> dict[str, str]:
    qi, qe, ti, te = case
    comparison = {
        "internal": {"quality": qi, "performance": 0.6, "cost": 0.9, "total": ti},
        "external": {"quality": qe, "performance": 0.8, "cost": 0.6, "total": te},
        "bias_ratio": 1.2,
    }
    return {
        "capability_comparison": json.dumps(comparison),
        "performance_requirements": '{"real_time_requirements": "low", "needs": ["accuracy"]}',
        "cost_constraints": '{"budget": null}',
        "security_considerations": '{"data_sensitivity": "public", "both_sides_cleared": true}',
    }


def arbitrator_signature() -> Any:
    from hybridmcp.prompts.arbitrator import advice_signature

    return advice_signature()  # exactly the form the arbitrator asks in


async def before_after(lm: Any, n: int) -> dict[str, Any]:
    """The same inputs through dspy's chat format and through the structured adapter."""
    import dspy

    from hybridmcp.prompts.asking import parse_choice
    from hybridmcp.prompts.running import arun_signature
    from hybridmcp.prompts.structured import StructuredAdapter

    signature = arbitrator_signature()
    rows: dict[str, dict[str, Any]] = {
        "chat format (before)": {"parsed": 0, "tokens": [], "seconds": []},
        "grammar-bound (after)": {"parsed": 0, "tokens": [], "seconds": []},
    }
    for case in ARBITRATION_CASES[:n]:
        for name, adapter, cap in (
            ("chat format (before)", dspy.ChatAdapter(use_json_adapter_fallback=False), 300),
            ("grammar-bound (after)", StructuredAdapter(text_chars=160), None),
        ):
            started = time.perf_counter()
            outcome = await arun_signature(
                signature.with_updated_fields("allocation_decision", type_=str)
                if cap
                else signature,
                lm.copy(max_tokens=cap) if cap else lm,
                adapter=adapter,
                time_limit=120,
                **arbitration_inputs(case),
            )
            row = rows[name]
            row["seconds"].append(time.perf_counter() - started)
            ok = outcome.ok and parse_choice(
                outcome.prediction.allocation_decision, ("internal", "external", "hybrid")
            )
            row["parsed"] += bool(ok)
    return {
        name: {
            "calls": n,
            "parsed": row["parsed"],
            "seconds_per_call": round(sum(row["seconds"]) / max(len(row["seconds"]), 1), 2),
        }
        for name, row in rows.items()
    }


async def advice_accuracy(lm: Any) -> dict[str, Any]:
    from hybridmcp.policy.advice_trust import AdviceStats, observe_advice, trust_view
    from hybridmcp.prompts.running import arun_signature
    from hybridmcp.prompts.structured import StructuredAdapter

    stats = AdviceStats("arbitrator", "labelled")
    rows = []
    for i, case in enumerate(ARBITRATION_CASES):
        qi, qe, ti, te = case
        truth = "internal" if qi > qe else "external"
        rule = "external" if te > ti else "internal"
        outcome = await arun_signature(
            arbitrator_signature(),
            lm,
            adapter=StructuredAdapter(text_chars=80),
            time_limit=120,
            **arbitration_inputs(case),
        )
        advice = outcome.prediction.allocation_decision if outcome.ok else None
        stats = observe_advice(stats, advice=advice, rule=rule, truth={truth}, run=f"case{i}")
        rows.append({"truth": truth, "rule": rule, "advice": advice, "error": outcome.error})
    return {"cases": rows, "learned": trust_view(stats)}


def markdown(report: dict[str, Any]) -> str:
    task = report["task"]
    lines = [
        "# LM layer with the shipped SmolLM2-135M",
        "",
        describe_machine(report["machine"]),
        "",
        "## A 20-request task, the local model in every role",
        "",
        table(
            ["LM steps", "fell back", "format", "time", "context", "format rate", "seconds"],
            [
                [
                    task["lm_steps"],
                    task["fallbacks"],
                    task["fallbacks_by_cause"].get("format", 0),
                    task["fallbacks_by_cause"].get("time", 0),
                    task["fallbacks_by_cause"].get("context", 0),
                    f"{task['format_fallback_rate']:.0%}",
                    task["seconds"],
                ]
            ],
        ),
        "",
        "Advice accuracy the run reports (learned per role and skill):",
        "",
        table(
            ["role|skill", "advice accuracy", "rule accuracy", "scored", "trusted"],
            [
                [k, v["advice_accuracy"], v["rule_accuracy"], v["scored"], v["trusted"]]
                for k, v in task["advice"].get("accuracy", {}).items()
            ],
        ),
        "",
        "## Arbitrator signature, before and after (same inputs, same process)",
        "",
        table(
            ["path", "calls", "parsed", "s per call"],
            [
                [k, v["calls"], v["parsed"], v["seconds_per_call"]]
                for k, v in report["before_after"].items()
            ],
        ),
        "",
        "## Advice accuracy on labelled arbitration cases",
        "",
        table(
            ["truth", "rule", "advice"],
            [[c["truth"], c["rule"], c["advice"]] for c in report["labelled"]["cases"]],
        ),
        "",
        f"Learned: {report['labelled']['learned']}",
    ]
    return "\n".join(lines) + "\n"


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from hybridmcp.prompts.models import make_lm

    lm = make_lm("local/smollm2", temperature=0.2, max_tokens=1500)
    report: dict[str, Any] = {"machine": machine()}
    report["task"] = await run_task(args.timeout_ms)
    report["before_after"] = await before_after(lm, args.before_after)
    report["labelled"] = await advice_accuracy(lm)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--timeout-ms", type=float, default=30_000, help="llm_config.timeout_ms")
    parser.add_argument("--before-after", type=int, default=3, help="cases run both ways")
    args = parser.parse_args(argv)
    report = asyncio.run(main_async(args))
    write_report(args.out, "lm", report, markdown(report))
    print(markdown(report))
    sys.exit(0)


if __name__ == "__main__":
    main()

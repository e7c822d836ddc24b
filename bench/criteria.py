"""The spec's success criteria, measured on the labelled workloads against the baselines.

    python -m bench.criteria                    # both workloads (several minutes on 2 cores)
    python -m bench.criteria --workload bench/workload/workload-seed2.json   # one of them
    python -m bench.criteria --limit 12         # the first 12 requests of each (a smoke run)

Providers are real: the built-in internal skills, ``mcp-server-time``, ``mcp-server-sqlite`` (on
a live database; the internal SQL path reads a stale replica), ``server-everything`` (npm), and
the project's fault server as two poor external providers (a slow ``calculate``, a
``word_count`` that fails 35% of its calls). Each workload (``bench/workload/workload.json``,
``workload-seed2.json``: another seed, another mix of skills, the requests best served externally
late in the run) gives each request its reference answer and the oracle's best allocation; each
runs in a coordinator of its own, and the report sets their criteria side by side.

Every strategy runs the whole workload in the same process run, one request at a time, in the
workload's order: ``internal-only``, ``external-only``, ``static-routing`` (a route per skill
from its tags: real-time skills external, confidential data internal, else internal when the
skill has an internal provider), ``naive-retry-fallback`` (external, once more on failure, then
internal), ``langchain-mcp-adapters`` (the tools of ``MultiServerMCPClient.get_tools()`` called
directly: a new session and server process per call; external providers only) and
``hybridmcp`` (the coordinator with its defaults; each request is one run, and it learns across
runs). The figures and how each is computed are in bench/README.md.

Results: ``bench/results/criteria.json`` (``workloads``: one report per workload), ``.md`` and
``criteria_*.png`` (``criteria-seed2_*.png`` for the second workload).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from langchain_mcp_adapters.client import MultiServerMCPClient

from bench import providers
from bench.common import (
    RESULTS,
    describe_machine,
    machine,
    peak_rss_mb,
    percentile,
    table,
    write_report,
)
from bench.plain import PlainClient
from bench.workload.generate import WORKLOADS
from hybridmcp.capabilities.mcp_pool import to_connection
from hybridmcp.capabilities.registry import Provider, map_arguments, python_literal
from hybridmcp.config import HybridConfig, parse_config
from hybridmcp.coordinator import Coordinator
from hybridmcp.runtime import Context
from hybridmcp.sensitivity import Sensitivity
from hybridmcp.task import parse_task
from hybridmcp.testing.harness import faultserver_stdio

STRATEGIES = (
    "internal-only",
    "external-only",
    "static-routing",
    "naive-retry-fallback",
    "langchain-mcp-adapters",
    "hybridmcp",
)
SINGLE = ("internal-only", "external-only")
COST_PER_CALL = {"time": 0.001, "sqlite": 0.002, "everything": 0.001, "faulty": 0.003}
"""The cost model: money per external call, per server (internal calls cost 0)."""
FAULTS = {
    "calculate": {"latency_ms": 120, "jitter_ms": 40},
    "word_count": {"latency_ms": 10, "jitter_ms": 5, "fail_rate": 0.35},
}
ADAPTER_TIMEOUT_S = 30.0
TARGETS = {
    "allocation_accuracy": 0.85,
    "performance_improvement": 0.25,
    "cost_saved": 0.20,
    "integration_quality": 0.90,
    "reallocation_success": 0.80,
    "cross_validation_accuracy": 0.90,
    "prediction_accuracy": 0.75,
}


# -- providers and configuration ---------------------------------------------------------------


def everything_entry() -> str | None:
    """server-everything's entry point: ``$MCP_EVERYTHING_DIR`` (an ``npm install --prefix``
    directory) or a global ``mcp-server-everything``."""
    prefix = os.environ.get("MCP_EVERYTHING_DIR")
    if prefix:
        entry = Path(prefix, "node_modules/@modelcontextprotocol/server-everything/dist/index.js")
        if entry.exists():
            return str(entry)
    return shutil.which("mcp-server-everything")


def build_databases(workload: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """The live database (every row) and the internal replica (without the recent rows)."""
    live, replica = folder / "live.db", folder / "replica.db"
    for path, statements in (
        (live, workload["database"]["base"] + workload["database"]["recent"]),
        (replica, workload["database"]["base"]),
    ):
        conn = sqlite3.connect(path)
        for s in statements:
            conn.execute(s)
        conn.commit()
        conn.close()
    return live, replica


def bench_config(live_db: Path) -> tuple[HybridConfig, list[str]]:
    """The criteria benchmark's configuration, and the servers left out (not installed)."""
    servers: dict[str, Any] = {
        "time": {"command": "mcp-server-time", "args": ["--local-timezone", "UTC"]},
        "sqlite": {"command": "mcp-server-sqlite", "args": ["--db-path", str(live_db)]},
        "faulty": faultserver_stdio(FAULTS, seed=3),
    }
    missing = []
    entry = everything_entry()
    if entry and shutil.which("node"):
        servers["everything"] = {"command": "node", "args": [entry, "stdio"]}
    else:
        missing.append("everything")
    for name, server in servers.items():
        server["cost_per_call"] = COST_PER_CALL[name]
    ext = "external"
    skills: dict[str, Any] = {
        "time.now": {"providers": [{"side": ext, "server": "time", "tool": "get_current_time"}]},
        "time.convert": {"providers": [{"side": ext, "server": "time", "tool": "convert_time"}]},
        "math.calculate": {
            "providers": [
                {"side": ext, "server": "faulty", "tool": "calculate", "timeout_ms": 1000}
            ]
        },
        "text.stats": {
            "providers": [
                {"side": ext, "server": "faulty", "tool": "word_count", "timeout_ms": 1000}
            ]
        },
        "sql.query": {
            "description": "A read-only SQL query on the shop database.",
            "tags": ["real_time_data"],
            "input_schema": {
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
            },
            "providers": [
                {"side": "internal", "function": "bench.providers:sql_query"},
                # mcp-server-sqlite declares no annotations: its read tool is declared here
                {"side": ext, "server": "sqlite", "tool": "read_query", "effect": "read"},
            ],
        },
    }
    if "everything" in servers:
        skills["math.add"] = {
            "description": "The sum of two integers, as a sentence.",
            "input_schema": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            },
            "providers": [
                {"side": "internal", "function": "bench.providers:add"},
                {"side": ext, "server": "everything", "tool": "get-sum"},
            ],
        }
        skills["text.echo"] = {
            "description": "Echo a message.",
            "input_schema": {
                "type": "object",
                "properties": {"message": {"type": "string"}},
                "required": ["message"],
            },
            "providers": [
                {"side": "internal", "function": "bench.providers:echo"},
                {"side": ext, "server": "everything", "tool": "echo"},
            ],
        }
    return parse_config({"mcpServers": servers, "skills": skills}), missing


# -- checking answers --------------------------------------------------------------------------


def correct(check: str, value: Any, reference: Any, now: datetime) -> bool:
    """Whether an answer matches the request's reference answer."""
    try:
        if check == "exact":
            # A text reference in Python's notation of rows (mcp-server-sqlite's str(rows)) is
            # compared as hybridmcp reads that text from a server (and from an internal twin
            # answering as the server does): the rows it spells.
            return bool(value == reference) or (
                isinstance(reference, str) and bool(value == python_literal(reference))
            )
        if check.startswith("fields"):
            return all(value[k] == v for k, v in reference.items())
        if check == "numeric_value":
            ref = reference["value"]
            return abs(float(value["value"]) - ref) <= 1e-9 * max(1.0, abs(ref))
        if check == "time_now":
            moment = datetime.fromisoformat(value["datetime"])
            return (
                value["timezone"] == reference["timezone"]
                and value["is_dst"] == reference["is_dst"]
                and abs((moment - now).total_seconds()) <= 60
            )
        if check == "time_convert":
            return (
                value["target"]["datetime"][11:16] == reference["target_time"]
                and value["time_difference"] == reference["time_difference"]
            )
    except (KeyError, TypeError, ValueError, IndexError):
        return False
    raise ValueError(f"unknown check {check!r} in the workload")


# -- the strategies -----------------------------------------------------------------------------


def record(req: dict[str, Any], allocation: str, **fields: Any) -> dict[str, Any]:
    base = {
        "id": req["id"],
        "allocation": allocation,
        "value": None,
        "answered": False,
        "correct": False,
        "latency_ms": 0.0,
        "cost": 0.0,
        "external_calls": 0,
        "privacy_violation": False,
        "error": None,
    }
    return base | fields


class Baselines(PlainClient):
    """The plain strategies over the coordinator's held sessions."""

    def exceeds(self, provider: Provider, req: dict[str, Any]) -> bool:
        """An external call with data above the provider's clearance (no policy stops it)."""
        level = req.get("sensitivity") or "public"
        return Sensitivity.parse(level) > Sensitivity.parse(provider.clearance)

    def plan(self, strategy: str, req: dict[str, Any]) -> list[Provider]:
        """The providers a baseline tries, in order."""
        internal = self.provider(req["skill"], "internal")
        external = self.provider(req["skill"], "external")
        if strategy == "internal-only":
            order = [internal]
        elif strategy == "external-only":
            order = [external]
        elif strategy == "naive-retry-fallback":
            order = [external, external, internal]
        else:  # static routing: one route per skill, decided from its description alone
            tags = set(self.registry.get(req["skill"]).tags)
            confidential = Sensitivity.parse(req.get("sensitivity") or "public") >= "confidential"
            realtime = "real_time_data" in tags and not confidential
            order = [external if realtime or internal is None else internal]
        return [p for p in order if p is not None]

    async def run(self, strategy: str, req: dict[str, Any]) -> dict[str, Any]:
        plan = self.plan(strategy, req)
        allocation = plan[0].side if plan else "none"
        out = record(req, allocation, error="no provider on this side" if not plan else None)
        t0 = time.perf_counter()
        for provider in plan:
            if provider.side == "external":
                out["external_calls"] += 1
                out["privacy_violation"] |= self.exceeds(provider, req)
            out["cost"] += provider.cost_per_call
            try:
                out["value"] = await self.call(
                    provider, req["args"], req.get("sensitivity") or "public"
                )
                out["answered"], out["error"] = True, None
                break
            except Exception as err:  # any failure of a plain client is a failed request
                out["error"] = f"{type(err).__name__}: {err}"[:200]
        out["latency_ms"] = (time.perf_counter() - t0) * 1000
        return out


class Adapters:
    """The plain langchain-mcp-adapters path: ``get_tools()`` tools called directly."""

    def __init__(self, config: HybridConfig, baselines: Baselines) -> None:
        self.config = config
        self.baselines = baselines
        self.tools: dict[str, dict[str, Any]] = {}

    async def tool(self, server: str, name: str) -> Any:
        if server not in self.tools:
            client = MultiServerMCPClient({server: to_connection(self.config.mcpServers[server])})  # type: ignore[dict-item]
            listed = await asyncio.wait_for(client.get_tools(), ADAPTER_TIMEOUT_S)
            self.tools[server] = {t.name: t for t in listed}
        return self.tools[server][name]

    async def run(self, req: dict[str, Any]) -> dict[str, Any]:
        provider = self.baselines.provider(req["skill"], "external")
        if provider is None:
            return record(req, "none", error="no MCP tool serves this skill")
        assert provider.server and provider.tool
        out = record(req, "external", external_calls=1, cost=provider.cost_per_call)
        out["privacy_violation"] = self.baselines.exceeds(provider, req)
        t0 = time.perf_counter()
        try:
            tool = await self.tool(provider.server, provider.tool)
            args = map_arguments(provider.arguments, req["args"])
            content = await asyncio.wait_for(tool.ainvoke(args), ADAPTER_TIMEOUT_S)
            out["value"], out["answered"] = adapter_value(content), True
        except Exception as err:  # a tool error, a timeout: a failed request
            out["error"] = f"{type(err).__name__}: {err}"[:200]
        out["latency_ms"] = (time.perf_counter() - t0) * 1000
        return out


def adapter_value(content: Any) -> Any:
    """A LangChain tool's content as the JSON value hybridmcp would extract."""
    if isinstance(content, list):
        content = "\n".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    if isinstance(content, str):
        try:
            return json.loads(content)
        except ValueError:
            return content
    return content


async def run_hybridmcp(co: Coordinator, req: dict[str, Any]) -> dict[str, Any]:
    """One coordinator run for one request; the whole final state is kept for the figures."""
    keys = ("id", "skill", "args", "strategy", "critical", "sensitivity")
    task = parse_task([{k: req[k] for k in keys if k in req}])
    t0 = time.perf_counter()
    state: dict[str, Any] = {}
    async for values in co.graph.astream(
        co.graph_input(task),
        co.run_config(),
        context=Context(resources=co.resources),
        stream_mode="values",
    ):
        state = values
    latency = (time.perf_counter() - t0) * 1000
    result = state["results"][req["id"]]
    allocation = state.get("allocations", {}).get(req["id"], {})
    attempts = [a for a in state.get("attempts", []) if a["request_id"] == req["id"]]
    codes = [e.get("code") for e in state.get("events", []) if e.get("request_id") == req["id"]]
    external = [a for a in attempts if a["side"] == "external"]
    scores = allocation.get("scores", {})
    return record(
        req,
        result["allocation"],
        value=result["value"],
        answered=result["error"] is None,
        latency_ms=latency,
        cost=sum(a.get("cost") or 0.0 for a in attempts),
        external_calls=len(external),
        privacy_violation=bool(external)
        and Sensitivity.parse(req.get("sensitivity") or "public") > Sensitivity.public,
        error=result["error"],
        reallocated="REALLOCATION" in codes or "HEDGE_STARTED" in codes,
        rule=allocation.get("rule"),
        agreement=result.get("agreement"),
        quality_overall=(state.get("quality") or {}).get("overall"),
        attempts=[
            {
                "provider": a["provider"],
                "side": a["side"],
                "ok": a["ok"],
                "error": a["error"],
                "latency_ms": a["latency_ms"],
                "value": a["value"],
                "prediction": scores.get(a["provider"], {}).get("prediction"),
            }
            for a in attempts
        ],
    )


# -- figures -----------------------------------------------------------------------------------


def rate(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def latency_prediction_ok(predicted: float, actual: float) -> bool:
    """A latency prediction is accurate within 50% of the prediction, or 2 ms (sub-millisecond
    internal calls)."""
    return abs(actual - predicted) <= max(0.5 * predicted, 2.0)


def strategy_figures(records: list[dict[str, Any]], workload: dict[str, dict[str, Any]]) -> dict:
    n = len(records)
    latencies = [r["latency_ms"] for r in records]
    good = [r for r in records if r["correct"]]
    return {
        "requests": n,
        "answered": rate(sum(r["answered"] for r in records), n),
        "correct": rate(len(good), n),
        "allocation_accuracy": rate(
            sum(r["allocation"] == workload[r["id"]]["oracle"]["allocation"] for r in records), n
        ),
        "cost": round(sum(r["cost"] for r in records), 4),
        "external_calls": sum(r["external_calls"] for r in records),
        "privacy_violations": sum(r["privacy_violation"] for r in records),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "mean_ms": round(sum(latencies) / n, 3) if n else None,
        "total_s": round(sum(latencies) / 1000, 3),
    }


def hybrid_figures(
    records: list[dict[str, Any]], workload: dict[str, dict[str, Any]], now: datetime
) -> dict[str, Any]:
    """The figures only the coordinator has: integration, reallocation, cross-validation,
    prediction."""
    answered = [r for r in records if r["answered"]]
    moved = [r for r in records if r.get("reallocated")]
    crossed = [r for r in records if r.get("agreement") is not None]
    verdicts = 0
    for r in crossed:
        req = workload[r["id"]]
        sides_ok = {}
        for a in r["attempts"]:
            if a["ok"]:
                sides_ok[a["side"]] = correct(req["check"], a["value"], req["reference"], now)
        truth = len(sides_ok) == 2 and all(sides_ok.values())
        verdicts += r["agreement"] == truth
    latency_hits: dict[str, list[bool]] = {"internal": [], "external": []}
    success_hits = []
    p95_hits = []
    for r in records:
        for a in r["attempts"]:
            p = a["prediction"]
            if p is None or (a["error"] or "").startswith("cancelled"):
                continue
            success_hits.append((p["success"] >= 0.5) == a["ok"])
            if a["ok"]:
                p95_hits.append(a["latency_ms"] <= p["p95_latency_ms"])
                latency_hits[a["side"]].append(
                    latency_prediction_ok(p["latency_ms"], a["latency_ms"])
                )
    all_latency = latency_hits["internal"] + latency_hits["external"]
    own_quality = [r["quality_overall"] for r in records if r.get("quality_overall") is not None]
    return {
        "integration_quality": rate(sum(r["correct"] for r in answered), len(answered)),
        "self_reported_quality": round(sum(own_quality) / len(own_quality), 4)
        if own_quality
        else None,
        "reallocated_requests": len(moved),
        "reallocation_success": rate(sum(r["correct"] for r in moved), len(moved)),
        "cross_validated_requests": len(crossed),
        "cross_validation_accuracy": rate(verdicts, len(crossed)),
        "prediction_accuracy": rate(sum(all_latency), len(all_latency)),
        "prediction_accuracy_internal": rate(
            sum(latency_hits["internal"]), len(latency_hits["internal"])
        ),
        "prediction_accuracy_external": rate(
            sum(latency_hits["external"]), len(latency_hits["external"])
        ),
        "success_prediction_accuracy": rate(sum(success_hits), len(success_hits)),
        "p95_coverage": rate(sum(p95_hits), len(p95_hits)),
        "predicted_attempts": len(all_latency),
    }


def criteria(
    per: dict[str, dict[str, Any]],
    records: dict[str, list[dict[str, Any]]],
    hybrid: dict[str, Any],
) -> dict[str, Any]:
    """The spec's success criteria for hybridmcp, each with its target."""
    h = per["hybridmcp"]
    singles = {s: per[s]["correct"] for s in SINGLE if s in per}
    best_single = max(singles, key=lambda s: singles[s] or 0) if singles else None
    improvement = None
    if best_single and singles[best_single]:
        improvement = round(h["correct"] / singles[best_single] - 1, 4)
    cost_saved = None
    ext = {r["id"]: r for r in records.get("external-only", [])}
    both = [r for r in records["hybridmcp"] if r["correct"] and ext.get(r["id"], {}).get("correct")]
    ext_cost = sum(ext[r["id"]]["cost"] for r in both)
    if ext_cost:
        cost_saved = round(1 - sum(r["cost"] for r in both) / ext_cost, 4)
    found = {
        "allocation_accuracy": h["allocation_accuracy"],
        "performance_improvement": improvement,
        "cost_saved": cost_saved,
        "integration_quality": hybrid["integration_quality"],
        "reallocation_success": hybrid["reallocation_success"],
        "cross_validation_accuracy": hybrid["cross_validation_accuracy"],
        "prediction_accuracy": hybrid["prediction_accuracy"],
    }
    return {
        "best_single_approach": best_single,
        "cost_saved_on_requests": len(both),
        "criteria": {
            k: {"value": v, "target": TARGETS[k], "met": None if v is None else v > TARGETS[k]}
            for k, v in found.items()
        },
    }


# -- running -----------------------------------------------------------------------------------


async def run_strategy(
    strategy: str,
    requests: list[dict[str, Any]],
    fn: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
) -> list[dict[str, Any]]:
    out = []
    t0 = time.perf_counter()
    for req in requests:
        rec = await fn(req)
        rec["correct"] = rec["answered"] and correct(
            req["check"], rec["value"], req["reference"], datetime.now(UTC)
        )
        out.append(rec)
    ok = sum(r["correct"] for r in out)
    print(f"{strategy:24} {ok}/{len(out)} correct  ({time.perf_counter() - t0:.1f} s)", flush=True)
    tried = [r for r in out if r["allocation"] != "none"]  # what the strategy could serve
    if tried and not any(r["answered"] for r in tried):
        # every request failing is the harness failing (a baseline that cannot even call),
        # not a figure to publish
        raise RuntimeError(
            f"{strategy}: none of the {len(tried)} requests it served was answered; the "
            f"first error: {tried[0].get('error')}"
        )
    return out


async def run(args: argparse.Namespace, workload: dict[str, Any]) -> dict[str, Any]:
    strategies = [s for s in args.strategies.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="hybridmcp-bench-") as folder:
        live, replica = build_databases(workload, Path(folder))
        providers.REPLICA["path"] = str(replica)
        config, missing = bench_config(live)
        async with Coordinator.open(config) as co:
            known = co.resources.registry.skills
            requests = [r for r in workload["requests"] if r["skill"] in known]
            skipped = len(workload["requests"]) - len(requests)
            requests = requests[: args.limit] if args.limit else requests
            baselines = Baselines(co)
            adapters = Adapters(config, baselines)
            runners: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
                "langchain-mcp-adapters": adapters.run,
                "hybridmcp": lambda req: run_hybridmcp(co, req),
            }
            records: dict[str, list[dict[str, Any]]] = {}
            rss: dict[str, float] = {}
            for strategy in strategies:
                fn = runners.get(strategy) or (lambda req, s=strategy: baselines.run(s, req))
                records[strategy] = await run_strategy(strategy, requests, fn)
                rss[strategy] = peak_rss_mb()
    return {
        "requests": requests,
        "records": records,
        "peak_rss_mb": rss,
        "missing_servers": missing,
        "skipped_requests": skipped,
    }


def report(raw: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """One workload's report: every strategy's figures, hybridmcp's criteria, the records."""
    by_id = {r["id"]: r for r in raw["requests"]}
    per = {s: strategy_figures(recs, by_id) for s, recs in raw["records"].items()}
    for s in per:
        per[s]["peak_rss_mb"] = raw["peak_rss_mb"][s]
    out: dict[str, Any] = {"meta": meta, "strategies": per}
    if "hybridmcp" in raw["records"]:
        hybrid = hybrid_figures(raw["records"]["hybridmcp"], by_id, datetime.now(UTC))
        out["hybridmcp"] = hybrid
        out |= criteria(per, raw["records"], hybrid)
    oracle: dict[str, int] = {}
    for r in raw["requests"]:
        oracle[r["oracle"]["allocation"]] = oracle.get(r["oracle"]["allocation"], 0) + 1
    out["workload"] = {
        "requests": len(raw["requests"]),
        "oracle": oracle,
        "skipped_requests": raw["skipped_requests"],
        "missing_servers": raw["missing_servers"],
    }
    out["allocations"] = {
        s: confusion(recs, by_id) for s, recs in raw["records"].items() if s == "hybridmcp"
    }
    out["records"] = {
        s: [
            {k: v for k, v in r.items() if k not in ("attempts", "value")} | decision_attempts(r)
            for r in recs
        ]
        for s, recs in raw["records"].items()
    }
    return out


def decision_attempts(r: dict[str, Any]) -> dict[str, Any]:
    """A coordinator run's attempts, as the report keeps them (baselines have none)."""
    return {"attempts": [decision_attempt(a) for a in r["attempts"]]} if "attempts" in r else {}


def decision_attempt(a: dict[str, Any]) -> dict[str, Any]:
    """One attempt of a coordinator run, as the report keeps it: what was predicted of it
    beside what it did, for reading the decisions request by request."""
    p = a["prediction"] or {}
    return {
        "provider": a["provider"],
        "ok": a["ok"],
        "error": a["error"],
        "latency_ms": round(a["latency_ms"], 3),
        "predicted_ms": None if not p else round(p["latency_ms"], 3),
        "predicted_success": None if not p else round(p["success"], 3),
    }


def confusion(records: list[dict[str, Any]], by_id: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Oracle allocation -> the strategy's allocation -> count."""
    out: dict[str, dict[str, int]] = {}
    for r in records:
        row = out.setdefault(by_id[r["id"]]["oracle"]["allocation"], {})
        row[r["allocation"]] = row.get(r["allocation"], 0) + 1
    return out


def met_text(met: bool | None) -> str:
    return "n/a (nothing to measure)" if met is None else "yes" if met else "**no**"


def pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


_COLUMNS = {
    "strategy": None,
    "correct": lambda f: pct(f["correct"]),
    "allocation = oracle": lambda f: pct(f["allocation_accuracy"]),
    "p50 ms": lambda f: f["p50_ms"],
    "p99 ms": lambda f: f["p99_ms"],
    "cost": lambda f: f["cost"],
    "external calls": lambda f: f["external_calls"],
    "privacy violations": lambda f: f["privacy_violations"],
    "peak RSS MB": lambda f: f["peak_rss_mb"],
}


def strategies_table(per: dict[str, Any], *, calls: bool = True) -> str:
    """One row per strategy: correctness, allocation accuracy, latency, cost, ..."""
    head = [h for h in _COLUMNS if calls or h != "external calls"]
    rows = [[s] + [_COLUMNS[h](f) for h in head[1:]] for s, f in per.items()]
    return table(head, rows)


def criteria_table(criteria: dict[str, Any], measured: str = "measured") -> str:
    """The spec's criteria: value, target, met."""
    rows = [
        [k.replace("_", " "), pct(v["value"]), f"> {v['target']:.0%}", met_text(v["met"])]
        for k, v in criteria.items()
    ]
    return table(["criterion", measured, "target", "met"], rows)


def workload_markdown(name: str, rep: dict[str, Any]) -> str:
    """One workload's section: every strategy, then hybridmcp's criteria and details."""
    per, w = rep["strategies"], rep["workload"]
    text = (
        f"## Workload `{name}`\n\n"
        f"{w['requests']} labelled requests (oracle: {w['oracle']}), one at a time, "
        "every strategy in the same process run."
        + (
            f" Left out: {w['skipped_requests']} requests of servers not installed "
            f"({', '.join(w['missing_servers'])})."
            if w["skipped_requests"]
            else ""
        )
        + "\n\n"
        + strategies_table(per)
        + "\n"
    )
    if "criteria" in rep:
        h = rep["hybridmcp"]
        text += (
            "\n### The spec's criteria (hybridmcp)\n\n"
            + criteria_table(rep["criteria"])
            + f"\n\nBest single approach: {rep['best_single_approach']}; cost saved measured on "
            f"the {rep['cost_saved_on_requests']} requests that both hybridmcp and external-only "
            f"answered correctly. Reallocated requests: {h['reallocated_requests']}; "
            f"cross-validated: {h['cross_validated_requests']}; latency predictions checked: "
            f"{h['predicted_attempts']} (internal {pct(h['prediction_accuracy_internal'])}, "
            f"external {pct(h['prediction_accuracy_external'])}); success predictions "
            f"{pct(h['success_prediction_accuracy'])}; answers within the predicted p95 latency "
            f"{pct(h['p95_coverage'])}; the coordinator's own quality score "
            f"{h['self_reported_quality']}.\n\n"
            "Allocations (oracle -> hybridmcp): "
            + "; ".join(
                f"{o}: " + ", ".join(f"{k} {v}" for k, v in sorted(row.items()))
                for o, row in sorted(rep["allocations"]["hybridmcp"].items())
            )
            + "\n"
        )
    return text


def side_by_side(workloads: dict[str, dict[str, Any]]) -> str:
    """hybridmcp's criteria on each workload, one column per workload."""
    names = [n for n, rep in workloads.items() if "criteria" in rep]
    if not names:
        return ""
    rows = []
    for key, target in TARGETS.items():
        cells = []
        for n in names:
            c = workloads[n]["criteria"][key]
            cells.append(f"{pct(c['value'])} ({met_text(c['met']).replace('**', '')})")
        rows.append([key.replace("_", " "), *cells, f"> {target:.0%}"])
    head = ["criterion", *(f"`{n}` ({workloads[n]['workload']['requests']})" for n in names)]
    return table([*head, "target"], rows)


def markdown(rep: dict[str, Any]) -> str:
    workloads = rep["workloads"]
    text = (
        "# Success criteria benchmark\n\n"
        f"{describe_machine(rep['meta']['machine'])}. Generated by `python -m bench.criteria`. "
        "Each workload runs in a coordinator of its own (nothing learned on one is carried to "
        "the next).\n\n"
    )
    both = side_by_side(workloads)
    if both:
        text += "hybridmcp against the spec's criteria, per workload:\n\n" + both + "\n\n"
    return text + "\n".join(workload_markdown(n, r) for n, r in workloads.items())


def plot_prefix(name: str) -> str:
    """``criteria`` for the first workload, ``criteria-seed2`` for ``workload-seed2``."""
    return "criteria" + name.removeprefix("workload")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.criteria", description=__doc__)
    p.add_argument(
        "--workload",
        action="append",
        type=Path,
        help="a workload file (repeatable); default: every committed one "
        f"({', '.join(p.name for p in WORKLOADS)})",
    )
    p.add_argument("--limit", type=int, default=0, help="only the first N requests of each")
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--no-plots", action="store_true")
    args = p.parse_args(argv)
    args.workload = args.workload or list(WORKLOADS)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    meta = {
        "machine": machine(),
        "workloads": [str(p) for p in args.workload],
        "cost_per_call": COST_PER_CALL,
    }
    reports: dict[str, dict[str, Any]] = {}
    for path in args.workload:
        print(f"== workload {path}", flush=True)
        workload = json.loads(path.read_text())
        raw = asyncio.run(run(args, workload))
        reports[path.stem] = {"path": str(path)} | report(raw, {})
        reports[path.stem].pop("meta")
    rep = {"meta": meta, "workloads": reports}
    write_report(args.out, "criteria", rep, markdown(rep))
    if not args.no_plots:
        from bench.plots import criteria_plots

        for name, one in reports.items():
            criteria_plots(one, args.out, plot_prefix(name))
    return rep


if __name__ == "__main__":
    main()

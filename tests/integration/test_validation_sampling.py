"""Learned cross-validation against a real MCP server and a real SQLite store: once both sides
of a skill have agreed consistently, its requests run on one side with an audit share still
cross-validated; when the sides start to disagree, an audit notices and full cross-validation
comes back."""

from __future__ import annotations

import asyncio

from langgraph.store.sqlite.aio import AsyncSqliteStore

from hybridmcp import Coordinator, parse_config, parse_task
from hybridmcp.policy.arbitration import audit_draw
from hybridmcp.stats_store import all_stats
from hybridmcp.testing.harness import faultserver_stdio

EXTERNAL, INTERNAL = "mcp:faults/calculate", "internal:math.calculate"
CONFIG = parse_config(
    {
        "mcpServers": {"faults": faultserver_stdio()},
        "skills": {
            "math.calculate": {
                "providers": [{"side": "external", "server": "faults", "tool": "calculate"}]
            }
        },
    }
)  # validation_sampling at its defaults: 10 agreeing in a row, 95% agreement, 10% audited


def calc_task(n: int):
    return parse_task(
        {
            "requests": [
                {"id": f"r{i}", "skill": "math.calculate", "args": {"expression": f"{i} * 3 + 2"}}
                for i in range(n)
            ]
        }
    )


def audited(run: str, n: int) -> set[str]:
    return {f"r{i}" for i in range(n) if audit_draw(f"{run}:r{i}") < 0.1}


def run_with_audits(prefix: str, n: int) -> str:
    """A run id whose requests include at least one audit (chosen deterministically)."""
    return next(f"{prefix}-{k}" for k in range(100) if audited(f"{prefix}-{k}", n))


async def test_agreeing_sides_stop_being_cross_validated_until_they_disagree(tmp_path):
    async with (
        asyncio.timeout(90),
        AsyncSqliteStore.from_conn_string(str(tmp_path / "stats.db")) as store,
    ):
        await store.setup()
        async with Coordinator.open(CONFIG, store=store) as co:
            # 1. no evidence yet: every request is within the band, so cross-validated
            warm = await co.run(calc_task(10), thread_id="warm")
            assert {r["allocation"] for r in warm["results"].values()} == {"hybrid"}
            assert all(r["agreement"] is True for r in warm["results"].values())
            learned = {s.provider: s for s in await all_stats(store)}
            assert learned[EXTERNAL].agreement_streak == learned[INTERNAL].agreement_streak == 10

            # 2. ten agreeing cross-validations on each side: the fitter (internal) side alone,
            # except the audit share, drawn from the run id and request id
            run = run_with_audits("learned", 20)
            out = await co.run(calc_task(20), thread_id=run)
            modes = {rid: r["allocation"] for rid, r in out["results"].items()}
            assert {rid for rid, m in modes.items() if m == "hybrid"} == audited(run, 20)
            assert {m for rid, m in modes.items() if rid not in audited(run, 20)} == {"internal"}
            alone = next(r for r in out["results"].values() if r["allocation"] == "internal")
            assert "agreed in their last 10 and 10 cross-validations" in alone["allocation_rule"]
            assert "internal alone" in alone["allocation_rule"]
            assert [a["provider"] for a in alone["attempts"]] == [INTERNAL]
            assert out["metrics"]["calls"]["external"] == len(audited(run, 20))
            assert all(r["value"] == {"value": i * 3 + 2} for i, r in enumerate(_ordered(out)))
            audit = out["results"][min(audited(run, 20))]
            assert "audited" in audit["allocation_rule"] and audit["agreement"] is True

            # 3. the external side starts to answer wrong: the audits notice it
            faults = {"calculate": {"wrong_answer": True}}  # the right value + 1
            fault = {"id": "f", "skill": "faults.fault_control", "args": {"faults": faults}}
            assert (await co.run(parse_task({"requests": [fault]})))["status"] == "ok"
            run = run_with_audits("drift", 20)
            out = await co.run(calc_task(20), thread_id=run)
            checked = [out["results"][rid] for rid in sorted(audited(run, 20))]
            assert all(r["allocation"] == "hybrid" and r["agreement"] is False for r in checked)
            learned = {s.provider: s for s in await all_stats(store)}
            assert learned[EXTERNAL].agreement_streak == 0

            # 4. one disagreement brought back full cross-validation
            out = await co.run(calc_task(10), thread_id="after-drift")
            assert {r["allocation"] for r in out["results"].values()} == {"hybrid"}
            assert all(r["agreement"] is False for r in out["results"].values())
            assert len(out["conflicts"]) == 10
            rule = out["results"]["r0"]["allocation_rule"]
            assert rule.startswith("within the 1.2 band") and rule.endswith(": cross-validate")


def _ordered(out):
    return [out["results"][f"r{i}"] for i in range(len(out["results"]))]

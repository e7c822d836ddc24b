"""The learned accuracy of LM advice, in the LangGraph Store beside the provider statistics.

:func:`load_advice_stats` is read by the advising roles before they let advice decide;
:func:`learn_advice` is called by ``learn`` with the finished run and scores every piece of
advice the run recorded against what turned out right (see
:mod:`hybridmcp.policy.advice_trust`). Its return value is the run output's ``advice`` report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from langgraph.store.base import BaseStore

from hybridmcp.errors import StoredRecordError
from hybridmcp.policy.advice_trust import (
    AdviceStats,
    arbitration_truth,
    mark_run,
    observe_advice,
    review_truth,
    trust_view,
)
from hybridmcp.stats_store import ADVICE_NAMESPACE

__all__ = ["NAMESPACE", "advice_records", "learn_advice", "load_advice_stats"]

NAMESPACE = ADVICE_NAMESPACE


def _key(role: str, skill: str) -> str:
    return f"{role}|{skill}"


async def load_advice_stats(
    store: BaseStore | None, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], AdviceStats]:
    """Stats per (role, skill); advice never scored gets empty stats (not trusted)."""
    out: dict[tuple[str, str], AdviceStats] = {}
    for role, skill in set(keys):
        item = await store.aget(NAMESPACE, _key(role, skill)) if store is not None else None
        try:
            out[(role, skill)] = (
                AdviceStats.from_dict(item.value) if item else AdviceStats(role, skill)
            )
        except StoredRecordError as err:
            raise StoredRecordError(
                f"{err} ({_key(role, skill)!r}): it was written by another application or "
                "version and was not read (forget what was learned with `hybridmcp stats "
                "--reset`, or use another database with --db)"
            ) from None
    return out


def advice_records(results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each piece of advice a run's results hold: role, skill, advice, rule, truth."""
    records = []
    for result in results.values():
        advice = result.get("allocation_advice")
        if advice and "decision" in advice:
            records.append(
                {
                    "role": "arbitrator",
                    "skill": result["skill"],
                    "request_id": result["id"],
                    "advice": advice["decision"],
                    "rule": advice.get("rule_choice"),
                    "used": bool(advice.get("used")),
                    "truth": sorted(arbitration_truth(result)),
                }
            )
        expert = result.get("expert_advice")
        if expert and "verdict" in expert:
            records.append(
                {
                    "role": "synchronizer",
                    "skill": result["skill"],
                    "request_id": result["id"],
                    "advice": expert["verdict"],
                    "rule": expert.get("rule_choice"),
                    "used": bool(expert.get("used")),
                    "truth": sorted(review_truth(result)),
                }
            )
    return records


async def learn_advice(
    store: BaseStore | None, results: Mapping[str, Mapping[str, Any]], run: str
) -> dict[str, Any]:
    """Fold a finished run's advice into the learned accuracies; the run's advice report.

    The report has, per piece of advice, what it said beside the rule and the truth, and per
    ``role|skill`` the learned accuracies after this run.
    """
    records = advice_records(results)
    if not records:
        return {}
    stats = await load_advice_stats(store, ((r["role"], r["skill"]) for r in records))
    for record in records:
        key = (record["role"], record["skill"])
        stats[key] = observe_advice(
            stats[key],
            advice=record["advice"],
            rule=record["rule"],
            truth=record["truth"],
            run=run,
        )
    if store is not None:
        for s in stats.values():
            await store.aput(NAMESPACE, _key(s.role, s.skill), mark_run(s, run).to_dict())
    return {
        "records": records,
        "accuracy": {_key(*key): trust_view(s) for key, s in sorted(stats.items())},
    }

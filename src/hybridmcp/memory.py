"""Provider statistics in the LangGraph Store: what every run learned, for the next one."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from langgraph.store.base import BaseStore

from hybridmcp.policy.learning import ProviderStats

NAMESPACE = ("hybridmcp", "provider_stats")


def stats_key(provider: str, skill: str) -> str:
    return f"{provider}|{skill}"


async def load_stats(
    store: BaseStore, pairs: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], ProviderStats]:
    """Stats for each (provider, skill) pair; a pair never seen gets empty stats."""
    out: dict[tuple[str, str], ProviderStats] = {}
    for provider, skill in set(pairs):
        item = await store.aget(NAMESPACE, stats_key(provider, skill))
        out[(provider, skill)] = (
            ProviderStats.from_dict(item.value) if item else ProviderStats(provider, skill)
        )
    return out


async def save_stats(store: BaseStore, stats: Iterable[ProviderStats]) -> None:
    for s in stats:
        await store.aput(NAMESPACE, stats_key(s.provider, s.skill), s.to_dict())


async def all_stats(store: BaseStore) -> list[ProviderStats]:
    items = await store.asearch(NAMESPACE, limit=10_000)
    return [ProviderStats.from_dict(i.value) for i in items]


async def reset_stats(store: BaseStore) -> int:
    """Forget everything learned; returns how many (provider, skill) records were deleted."""
    items = await store.asearch(NAMESPACE, limit=10_000)
    for item in items:
        await store.adelete(NAMESPACE, item.key)
    return len(items)


def stats_record(stats: ProviderStats) -> dict[str, Any]:
    """One provider's statistics as shown to a user: the stored fields plus derived rates."""
    return stats.to_dict() | {"failures": stats.failures, "agreement_rate": stats.agreement_rate}

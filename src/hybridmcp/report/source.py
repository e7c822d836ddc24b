"""Where a report's run comes from: a thread's final state and the learned statistics, read
from the run database (checkpoints and store) or from a LangGraph server serving the graph."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hybridmcp.errors import ConfigError
from hybridmcp.persistence import MEMORY, is_postgres, open_for_reading
from hybridmcp.stats_store import NAMESPACE, all_stats, stats_record

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

_SERDE_LOG = logging.getLogger("langgraph.checkpoint.serde.jsonplus")


def _not_our_types(record: logging.LogRecord) -> bool:
    return not (isinstance(record.args, tuple) and record.args[:1] == ("hybridmcp.events",))


@contextlib.contextmanager
def own_types_quiet() -> Iterator[None]:
    """Reading a checkpoint back, LangGraph warns once per process of each type it was not
    told about; the event codes in a run's state are ours, so that warning is noise here."""
    _SERDE_LOG.addFilter(_not_our_types)
    try:
        yield
    finally:
        _SERDE_LOG.removeFilter(_not_our_types)


def _check(values: dict[str, Any], thread: str, where: str) -> dict[str, Any]:
    if not values or not values.get("requests"):
        raise ConfigError(
            f"thread {thread!r} holds no run in {where}: give the --thread a run was started "
            "with (and its --db or --url)"
        )
    return values


async def from_database(db: str, thread: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The thread's checkpointed state and every learned statistic, from ``db``, read only
    (:func:`~hybridmcp.persistence.open_for_reading`: the database is left as it was). A
    SQLite file that does not exist (or is empty) holds no run: it is refused, not created."""
    from hybridmcp.graph import build_graph

    _check_made(db)

    async with open_for_reading(db) as (checkpointer, store):
        graph = build_graph().compile(checkpointer=checkpointer, store=store)
        config: RunnableConfig = {"configurable": {"thread_id": thread}}
        with own_types_quiet():
            snapshot = await graph.aget_state(config)
            saved = await checkpointer.aget_tuple(config)
        values = _check(dict(snapshot.values or {}), thread, db)
        values = _with_ended_calls(values, saved.pending_writes if saved is not None else None)
        learned = [stats_record(s) for s in await all_stats(store)]
    return values, learned


def _with_ended_calls(values: dict[str, Any], writes: Sequence[Any] | None) -> dict[str, Any]:
    """A run stopped while its calls ran: the attempts that ended are in the checkpoint's
    pending writes (a resume takes them, it does not make them again), not yet in its values.
    They are shown with the rest."""
    ended = [
        attempt
        for _task, channel, value in writes or ()
        if channel == "attempts" and isinstance(value, list)
        for attempt in value
    ]
    if not ended:
        return values
    return values | {"attempts": [*(values.get("attempts") or []), *ended]}


def _check_made(db: str) -> None:
    if db == MEMORY or is_postgres(db):
        return
    file = Path(db).expanduser()
    empty = file.is_file() and file.stat().st_size == 0
    if empty or not file.exists():
        what = "is empty" if empty else "does not exist"
        raise ConfigError(
            f"database {db!r} {what}: it holds no run (give the --db the run was started with)"
        )


async def from_server(
    url: str, thread: str, api_key: str | None, timeout_s: float = 30.0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The thread's state and the learned statistics from a LangGraph server (its store)."""
    import asyncio

    import httpx
    from langgraph_sdk import get_client

    client = get_client(url=url, api_key=api_key, timeout=timeout_s)
    try:
        async with asyncio.timeout(timeout_s):
            state = await client.threads.get_state(thread)
            items = await client.store.search_items(list(NAMESPACE), limit=1000)
    except (httpx.HTTPError, TimeoutError) as err:
        raise ConfigError(f"cannot read thread {thread!r} from {url}: {err}") from None
    values = state.get("values") if isinstance(state, dict) else None
    if not isinstance(values, dict):
        values = {}
    learned = [
        stats_record(_stats(item["value"])) for item in items.get("items", []) if item.get("value")
    ]
    return _check(dict(values), thread, url), learned


def _stats(value: dict[str, Any]) -> Any:
    from hybridmcp.policy.learning import ProviderStats

    return ProviderStats.from_dict(value)

"""The graph as the LangGraph server serves it (``langgraph.json``: ``graphs.hybridmcp``).

The server orders the runs of a thread within its own run queue, but separate server processes
that share one database (``langgraph dev`` twice with ``langgraph.postgres.json``, or on one
SQLite file) each keep their own queue: asked the same thread at once, both would run it,
making its reads twice and saving checkpoints on the thread in turn. So each run holds its
thread (:mod:`hybridmcp.thread_lock`, the lock ``hybridmcp run --thread`` and ``Coordinator``
take) for as long as it runs: the server enters this factory when a run starts and leaves it
when the run ends, and a run of a thread another process is running fails at once, in one
line (:class:`~hybridmcp.errors.ThreadBusy`), before anything is called. Within one process
the server never starts a thread's run while another runs, so the lock refuses nothing there,
and a server whose store no other process can share (``langgraph dev`` with ``langgraph.json``)
takes none. Reading a thread's state, drawing the graph (Studio) take no lock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore

from hybridmcp.graph import graph as compiled
from hybridmcp.runtime import Context, resources_for
from hybridmcp.stats_store import postgres_pool, sqlite_path

_FOR_EXECUTION = "__is_for_execution__"
"""Where the server says the graph is wanted for a run (``configurable``), not for reading a
thread or drawing the graph."""
_RUNTIME, _STORE = "__pregel_runtime", "__pregel_store"
"""Where the server hands the factory its store (``configurable``: a runtime holding it, or,
on servers before the runtime API, the store itself)."""


def _store(configurable: dict[str, Any]) -> BaseStore | None:
    store = getattr(configurable.get(_RUNTIME), "store", None) or configurable.get(_STORE)
    return store if isinstance(store, BaseStore) else None


@asynccontextmanager
async def graph(config: RunnableConfig) -> AsyncIterator[CompiledStateGraph[Any, Any, Any, Any]]:
    """The coordinator's graph; for a run on a thread, held for the run (see the module)."""
    conf = config.get("configurable") or {}
    thread_id, store = conf.get("thread_id"), _store(conf)
    if not conf.get(_FOR_EXECUTION) or not thread_id or not await _shared(store):
        yield compiled
        return
    path = conf.get("config_path")  # the run's context, mirrored here by the server
    res = await resources_for(Context(config_path=path if isinstance(path, str) else None))
    async with res.thread_locks.hold(store, str(thread_id), res.store_files):
        yield compiled


async def _shared(store: BaseStore | None) -> bool:
    """Is ``store`` one other processes may share (PostgreSQL, a SQLite file)? A store of one
    process (``langgraph dev``'s own) needs no lock: the server orders its runs itself, and the
    run opens the resources (its MCP servers) itself, not the factory (the server logs a
    factory that takes seconds as an error)."""
    return store is not None and (
        postgres_pool(store) is not None or await sqlite_path(store) is not None
    )

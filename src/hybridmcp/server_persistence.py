"""The LangGraph server's checkpointer and store on hybridmcp's database (scale-out).

``langgraph.postgres.json`` names these as the server's custom ``checkpointer.path`` and
``store.path``: with ``HYBRIDMCP_DB=postgresql://...`` every server replica keeps its threads,
checkpoints and the learned statistics in that one PostgreSQL database, through the official
``AsyncPostgresSaver`` / ``AsyncPostgresStore`` on a connection pool, with the statistics
updated under the database's locks (``stats_store.stats_lock``). The server enters each context
once per process and closes it at shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore

from hybridmcp.persistence import open_persistence, resolve_db


@asynccontextmanager
async def checkpointer() -> AsyncIterator[BaseCheckpointSaver]:
    """The checkpointer on ``$HYBRIDMCP_DB`` (else the default SQLite file)."""
    async with open_persistence(resolve_db(None)) as (saver, _store):
        yield saver


@asynccontextmanager
async def store() -> AsyncIterator[BaseStore]:
    """The store on ``$HYBRIDMCP_DB`` (else the default SQLite file)."""
    async with open_persistence(resolve_db(None)) as (_saver, opened):
        yield opened

"""Threads handled through the LangGraph server's API (``langgraph dev`` from
``langgraph.json``, driven with ``langgraph_sdk``) in ways a run does not shape itself: a
thread copied (``threads.copy``) and then run on, beside the thread it was copied from.

The write goes to the real stdio server ``tests/annotation_server.py`` (its ``bare`` tool: a
write), counted in the journal it appends to."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client

from tests.integration.test_server import RUN_DEADLINE_S, serve
from tests.toolnode_agent import config

pytestmark = pytest.mark.integration


def _write(entry: str) -> dict[str, Any]:
    return {"requests": [{"id": "w", "skill": "note.write", "args": {"entry": entry}}]}


@pytest.fixture(scope="module")
def notes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The server, and the journal its write tool appends to."""
    folder = tmp_path_factory.mktemp("threads")
    journal = folder / "journal.txt"
    journal.touch()
    settings = folder / "hybridmcp.json"
    settings.write_text(json.dumps(config(journal)), encoding="utf-8")
    with serve(folder / "server.log", HYBRIDMCP_CONFIG=str(settings)) as url:
        yield url, journal


def _lines(journal: Path) -> list[str]:
    return journal.read_text(encoding="utf-8").splitlines()


async def test_a_copied_thread_runs_its_own_writes(notes: tuple[str, Path]) -> None:
    """A copy holds the state of the thread it was copied from; each thread's later runs are
    runs of their own: the same write asked on both is made on both, and neither thread's
    write answers, or refuses, the other's."""
    url, journal = notes
    client = get_client(url=url)
    async with asyncio.timeout(RUN_DEADLINE_S):
        original = (await client.threads.create())["thread_id"]
        first = await client.runs.wait(original, "hybridmcp", input=_write("a"))
        assert first["results"]["w"]["status"] == "ok", first
        copy = (await client.threads.copy(original))["thread_id"]
        assert copy != original
        outs = []
        for thread, entry in [(original, "b"), (copy, "b"), (copy, "c"), (original, "c")]:
            out = await client.runs.wait(thread, "hybridmcp", input=_write(entry))
            outs.append(out["results"]["w"])
    for result in outs:
        assert result["status"] == "ok", result
        [attempt] = result["attempts"]
        assert not attempt.get("replayed"), result
    assert _lines(journal) == ["bare a", "bare b", "bare b", "bare c", "bare c"]

"""Threads handled through the LangGraph server's API (``langgraph dev`` from
``langgraph.json``, driven with ``langgraph_sdk``) in ways a run does not shape itself: a
thread copied (``threads.copy``) and then run on, beside the thread it was copied from; input
whose requests' fields, or ``run_id``, are of the wrong type or unknown.

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


CALC = {"id": "c", "skill": "math.calculate", "args": {"expression": "6 * 7"}}


async def test_a_requests_wrong_fields_are_its_own_error(notes: tuple[str, Path]) -> None:
    """The API takes the graph's input unchecked: a request whose field is of the wrong type
    or value, or not a request's field at all, is that request's one-line error (not the
    run's crash, not a field read the wrong way: ``critical: "no"`` is not critical); the
    others run, the write once."""
    url, journal = notes
    client = get_client(url=url)
    before = _lines(journal)
    given = [
        *_write("fields")["requests"],
        CALC,
        CALC | {"id": "secret", "sensitivity": "top-secret"},
        CALC | {"id": "no", "critical": "no"},
        CALC | {"id": "typo", "critcal": True},
        CALC | {"id": "fallback", "strategy": "internal", "fallback": "false"},
        CALC | {"id": "args", "args": "6 * 7"},
    ]
    async with asyncio.timeout(RUN_DEADLINE_S):
        thread = (await client.threads.create())["thread_id"]
        out = await client.runs.wait(thread, "hybridmcp", input={"requests": given})
    results = out["results"]
    assert results["w"]["status"] == "ok" and results["c"]["value"] == {"value": 42}, out
    says = {
        "secret": "sensitivity: unknown sensitivity 'top-secret'",
        "no": "critical: Input should be a valid boolean (got 'no')",
        "typo": "critcal: no request has this field",
        "fallback": "fallback: Input should be a valid boolean (got 'false')",
        "args": "args: Input should be a valid dictionary",
    }
    for rid, expected in says.items():
        result = results[rid]
        assert result["status"] == "error" and result["attempts"] == [], result
        assert expected in result["error"] and "\n" not in result["error"], result
    assert _lines(journal) == [*before, "bare fields"]


async def test_a_run_id_of_the_wrong_type_is_one_line_and_null_lifts_it(
    notes: tuple[str, Path],
) -> None:
    """A ``run_id`` that is not a string ends the run before anything runs, in one line (it
    used to run, and leave the thread failing every later run with "An internal error
    occurred"); the thread keeps it, as LangGraph keeps any input key, until an input gives
    ``run_id: null`` (or a string)."""
    url, _ = notes
    client = get_client(url=url)
    async with asyncio.timeout(RUN_DEADLINE_S):
        thread = (await client.threads.create())["thread_id"]
        for _ in range(2):
            out = await client.runs.wait(
                thread, "hybridmcp", input={"requests": [CALC], "run_id": 7}, raise_error=False
            )
            error = out["__error__"]
            assert error["error"] == "TaskError", error
            assert "graph input: 'run_id' must be a string" in error["message"], error
        out = await client.runs.wait(
            thread, "hybridmcp", input={"requests": [CALC], "run_id": None}
        )
        assert out["status"] == "ok", out
        out = await client.runs.wait(thread, "hybridmcp", input={"requests": [CALC]})
    assert out["status"] == "ok" and out["results"]["c"]["value"] == {"value": 42}, out

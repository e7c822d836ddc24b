"""Writes run once (invariant 9), against a real FastMCP server with an annotated write tool."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from hybridmcp import Coordinator, TaskError, parse_task
from hybridmcp.capabilities.gate import digest_id
from hybridmcp.config import parse_config
from hybridmcp.events import EventCode
from tests.helpers import JOURNAL_ENV

pytestmark = pytest.mark.integration
SRC = str(Path(__file__).resolve().parents[2] / "src")


def journal_config(journal: Path, **skill: Any) -> dict[str, Any]:
    return {
        "mcpServers": {
            "journal": {
                "command": sys.executable,
                "args": ["-m", "hybridmcp.testing.journal_server", "--journal", str(journal)],
                "env": {"PYTHONPATH": SRC},
                "timeout_ms": 400,
            }
        },
        "skills": {
            "journal.add": {
                "input_schema": {
                    "type": "object",
                    "properties": {"entry": {"type": "string"}, "sleep_ms": {"type": "integer"}},
                    "required": ["entry"],
                },
                "providers": [
                    {
                        "side": "internal",
                        "function": "tests.helpers:journal_append",
                        "effect": "write",
                        "timeout_ms": 400,
                    },
                    {"side": "external", "server": "journal", "tool": "append"},
                ],
                **skill,
            }
        },
    }


def lines(journal: Path) -> list[dict[str, Any]]:
    if not journal.exists():
        return []
    return [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]


async def test_effect_classes_come_from_annotations_and_config(tmp_path, monkeypatch):
    monkeypatch.setenv(JOURNAL_ENV, str(tmp_path / "j.jsonl"))
    cfg = parse_config(journal_config(tmp_path / "j.jsonl"))
    async with asyncio.timeout(60), Coordinator.open(cfg) as co:
        reg = co.resources.registry
        assert reg.provider("mcp:journal/append").effect == "write"
        assert reg.get("journal.put").providers[0].effect == "idempotent"
        assert reg.get("journal.read_journal").providers[0].effect == "read"
        assert reg.provider("internal:journal.add").effect == "write"
        assert reg.get("journal.add").effect == "write"
        assert reg.get("time.now").effect == "read"  # built-ins read


async def test_a_write_runs_once_per_request_whatever_the_faults(tmp_path, monkeypatch):
    journal = tmp_path / "journal.jsonl"
    monkeypatch.setenv(JOURNAL_ENV, str(journal))
    cfg = parse_config(journal_config(journal))
    requests = []
    for i in range(16):
        request: dict[str, Any] = {
            "id": f"r{i}",
            "skill": "journal.add",
            "args": {"entry": f"e{i}"},
        }
        if i % 2:
            request["critical"] = True  # asks for cross-validation: a write gets one side
        if i % 4 in (2, 3):
            request["args"]["sleep_ms"] = 1500  # times out after writing, on either side
        requests.append(request)
    async with asyncio.timeout(120), Coordinator.open(cfg) as co:
        out = await co.run(parse_task({"requests": requests}), thread_id="writes")
    written = lines(journal)
    entries = [w["entry"] for w in written]
    assert sorted(entries) == sorted(f"e{i}" for i in range(16)), written  # exactly once each

    events = out["events"]
    assert not [e for e in events if e["code"] == EventCode.HEDGE_STARTED]
    skipped = {
        e["request_id"]: e for e in events if e["code"] == EventCode.CROSS_VALIDATION_SKIPPED
    }
    for request in requests:
        r = out["results"][request["id"]]
        *moved_from, last = r["attempts"]
        # moved only after definite non-delivery (an internal call still queued for a thread)
        assert all(not a["sent"] for a in moved_from), r
        assert last["sent"] and r["allocation"] in ("internal", "external")
        if "sleep_ms" in request["args"]:
            assert r["status"] == "error" and r["error"].startswith("outcome_unknown"), r
        else:
            assert r["status"] == "ok" and r["value"]["written"] is True
            if request.get("critical"):
                assert skipped[request["id"]]["reason"] == "write effect"
    unknown = [e for e in events if e["code"] == EventCode.WRITE_NOT_REPEATED]
    assert len(unknown) == 8 and all(e["outcome"] == "unknown" for e in unknown)
    # the idempotency key travels in the call's _meta, as its digest
    external = [w for w in written if w["side"] == "external"]
    for w in external:
        rid = f"r{w['entry'][1:]}"
        [sent] = [a for a in out["results"][rid]["attempts"] if a["side"] == "external"]
        key = json.dumps(["writes", rid, sent["provider"], sent["round"]], separators=(",", ":"))
        assert w["key"] == digest_id(key) and sent["provider"] == "mcp:journal/append", (w, sent)


async def test_a_write_moves_only_when_it_was_never_sent(tmp_path, monkeypatch):
    """One slot on the server, two writes of 300 ms: the second waits past the queue limit,
    is never sent,
    and moves to the internal side, where it runs once."""
    journal = tmp_path / "journal.jsonl"
    monkeypatch.setenv(JOURNAL_ENV, str(journal))
    data = journal_config(journal)
    data["mcpServers"]["journal"]["max_concurrency"] = 1
    data["resilience"] = {"pool": {"max_queue_wait_ms": 100}, "hedging": {"enabled": False}}
    cfg = parse_config(data)
    pinned = {"skill": "journal.add", "strategy": "external"}
    task = {
        "requests": [
            pinned | {"id": "slow", "args": {"entry": "slow", "sleep_ms": 300}},
            pinned | {"id": "queued", "args": {"entry": "queued", "sleep_ms": 300}},
        ]
    }
    async with asyncio.timeout(60), Coordinator.open(cfg) as co:
        out = await co.run(parse_task(task))
    runs = {
        rid: [(a["side"], a["sent"], a["error"]) for a in r["attempts"]]
        for rid, r in out["results"].items()
    }
    assert all(r["status"] == "ok" for r in out["results"].values()), runs
    served, moved = sorted(runs.values(), key=len)
    assert served == [("external", True, None)], runs
    assert [a[:2] for a in moved] == [("external", False), ("internal", True)], runs
    assert sorted(w["side"] for w in lines(journal)) == ["external", "internal"]


def test_a_resumed_run_never_repeats_a_write_whose_outcome_is_unknown(tmp_path):
    """The CLI is killed while a write is in flight (the line is written, the answer is not
    in); the resumed thread reports ``outcome_unknown`` and does not call again. The write
    may have been made, so its price is counted as paid (a budget is never passed by it)."""
    import subprocess

    from tests.integration.test_durable import cli, cli_env, wait_for

    journal, config, task = tmp_path / "j.jsonl", tmp_path / "c.json", tmp_path / "t.json"
    data = journal_config(journal)
    data["mcpServers"]["journal"] |= {"timeout_ms": 300_000, "cost_per_call": 0.25}
    config.write_text(json.dumps(data))
    request = {"id": "w", "skill": "journal.append", "args": {"entry": "x", "sleep_ms": 600_000}}
    task.write_text(json.dumps({"requests": [request]}))
    db = tmp_path / "runs.db"
    args = ["run", str(task), "--config", str(config), "--db", str(db), "--json"]
    first = subprocess.Popen(
        [sys.executable, "-m", "hybridmcp.cli", *args, "--thread", "t-1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )
    try:
        # The write, or the CLI ending first (then its stderr says why).
        wait_for(lambda: len(lines(journal)) == 1 or first.poll() is not None, 180, "the write")
        assert first.poll() is None, first.communicate()[1].decode()[-2000:]
        first.kill()
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()
    resumed = cli(*args, "--thread", "t-1")
    assert "resumed where it stopped" in " ".join(resumed.stderr.split()), resumed.stderr
    out = json.loads(resumed.stdout)
    result = next(r for r in out["results"] if r["id"] == "w")
    assert result["status"] == "error" and result["error"].startswith("outcome_unknown"), result
    assert [w["entry"] for w in lines(journal)] == ["x"]  # not written a second time
    assert out["cost"]["spent"] == 0.25
    assert out["cost"]["by_provider"]["mcp:journal/append"]["calls"] == 1


async def test_calls_of_threads_whose_ids_run_together_carry_different_keys(tmp_path):
    """Thread ``tenant1`` asking request ``order:42`` and thread ``tenant1:order`` asking
    ``42`` read alike joined with colons; the keys their calls carry in ``_meta`` differ, so a
    server that keeps keys never takes the second for a repeat of the first."""
    journal = tmp_path / "journal.jsonl"
    cfg = journal_config(journal)
    cfg["skills"]["journal.add"]["providers"] = [
        {"side": "external", "server": "journal", "tool": "append"}
    ]
    async with asyncio.timeout(60), Coordinator.open(parse_config(cfg)) as co:
        for thread, rid in (("tenant1", "order:42"), ("tenant1:order", "42")):
            task = {"requests": [{"id": rid, "skill": "journal.add", "args": {"entry": thread}}]}
            out = await co.run(parse_task(task), thread_id=thread)
            assert out["results"][rid]["status"] == "ok", out["results"]
    first, second = lines(journal)
    assert (first["entry"], second["entry"]) == ("tenant1", "tenant1:order")
    assert first["key"].startswith("sha256:") and second["key"].startswith("sha256:")
    assert first["key"] != second["key"], (first, second)


def growing_config(journal: Path) -> dict[str, Any]:
    """Two replicas of ``tests.growing_server`` (one journal), and a skill on their tool
    ``late``, which neither lists at start-up; a call times out after 400 ms."""
    root = str(Path(SRC).parent)
    server = {
        "command": sys.executable,
        "args": ["-m", "tests.growing_server"],
        "env": {"PYTHONPATH": f"{SRC}:{root}", "GROWING_JOURNAL": str(journal)},
        "timeout_ms": 400,
    }
    return {
        "mcpServers": {"a": server, "b": server},
        "skills": {
            "note.late": {
                "input_schema": {
                    "type": "object",
                    "properties": {"entry": {"type": "string"}, "sleep_ms": {"type": "integer"}},
                    "required": ["entry"],
                },
                "providers": [{"side": "external", "server": s, "tool": "late"} for s in "ab"],
            }
        },
    }


async def until(condition: Any, what: str, tries: int = 1000) -> None:
    """Wait for ``condition`` (up to ``tries`` times 20 ms)."""
    for _ in range(tries):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_tool_listed_after_start_up_is_classed_by_its_annotations(tmp_path):
    """A tool a server adds after start-up (``tools/list_changed``) with ``destructiveHint``
    is a write from then on: not listed at start-up it was a read (a call could not act);
    listed, a call that writes and then times out is not moved to the other replica. The new
    tool is also a skill of its own (``a.late``)."""
    journal = tmp_path / "journal.txt"
    async with asyncio.timeout(90), Coordinator.open(parse_config(growing_config(journal))) as co:
        res = co.resources
        assert res.registry.provider("mcp:a/late").effect == "read"  # not listed (yet)
        grow = [
            {"id": s, "skill": f"{s}.grow", "args": {"name": "late", "hint": "destructive"}}
            for s in "ab"
        ]
        out = await co.run(parse_task({"requests": grow}))
        assert all(r["status"] == "ok" for r in out["results"].values()), out["results"]

        def relisted() -> bool:
            registry = res.registry
            return all(registry.provider(f"mcp:{s}/late").effect == "write" for s in "ab")

        await until(relisted, "both replicas' late listed again, as writes")
        assert res.registry.get("a.late").effect == "write"
        assert [t.name for t in res.pool.status("a").tools] == ["grow", "late"]
        slow = {"id": "slow", "skill": "note.late", "args": {"entry": "slow", "sleep_ms": 1500}}
        out = await co.run(parse_task({"requests": [slow]}))
    assert journal.read_text().splitlines() == ["late slow"]  # one replica wrote, once
    result = out["results"]["slow"]
    assert result["status"] == "error" and result["error"].startswith("outcome_unknown"), result


async def test_a_server_down_at_start_up_has_its_tools_classed_once_it_is_up(tmp_path):
    """A server that cannot start when the coordinator does (its command exits until a flag
    file exists): its configured tool is a write (nothing says otherwise) and its other
    tools are no skills. Once the pool's health loop opens it, its listing counts: the tool
    is what its annotations say (idempotent) and a skill of its own, and the server is no
    longer reported down."""
    flag = tmp_path / "up"
    root = str(Path(SRC).parent)
    script = f'test -f "{flag}" && exec "{sys.executable}" -m tests.growing_server'
    server = {
        "command": "/bin/sh",
        "args": ["-c", script],
        "env": {"PYTHONPATH": f"{SRC}:{root}", "GROWING_JOURNAL": str(tmp_path / "j.txt")},
        "startup_timeout_ms": 5000,
    }
    config = {
        "mcpServers": {"g": server},
        "skills": {
            "note.grow": {
                "input_schema": {"type": "object"},
                "providers": [{"side": "external", "server": "g", "tool": "grow"}],
            }
        },
        "resilience": {
            "pool": {
                "health_interval_ms": 100,
                "reopen_backoff_ms": 50,
                "reopen_backoff_max_ms": 200,
            },
        },
    }
    async with asyncio.timeout(90), Coordinator.open(parse_config(config)) as co:
        res = co.resources
        assert not res.pool.status("g").up and "g" in res.registry.unavailable
        assert res.registry.get("note.grow").effect == "write"  # not listed: the default
        with pytest.raises(TaskError, match="is down"):
            res.registry.get("g.grow")
        flag.touch()
        await until(lambda: "g.grow" in res.registry.skills, "the server's tools as skills")
        assert res.registry.get("note.grow").effect == "idempotent"  # its annotations
        assert res.registry.get("g.grow").effect == "idempotent"
        assert "g" not in res.registry.unavailable

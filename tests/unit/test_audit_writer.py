"""The audit log's writer thread: records handed over from an event loop (``submit``,
``hand_over``) are written in order, off the loop, whatever becomes of the task that handed
them over; closing the log, and the interpreter's exit, write every record still queued."""

from __future__ import annotations

import asyncio
import fcntl
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from blockbuster import BlockingError

from hybridmcp.audit import AuditLog, MemoryAudit, hand_over, iter_records, verify, written
from hybridmcp.errors import AuditError

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _record(i: int) -> dict[str, object]:
    return {"kind": "external_call", "request_id": f"r{i}", "outcome": "ok"}


async def test_records_handed_over_are_written_in_order_and_chain(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with AuditLog(path, key=b"k" * 32, fsync=True) as log:
        futures = [log.submit(_record(i)) for i in range(50)]
        written_ = [await written(f) for f in futures]
    assert [r["seq"] for r in written_] == list(range(1, 51))
    assert [r["request_id"] for r in iter_records(path)] == [f"r{i}" for i in range(50)]
    assert verify(path, key=b"k" * 32).ok


async def test_a_waiter_cancelled_mid_write_loses_no_record(tmp_path: Path) -> None:
    """Another process holds the trail's lock, so the write waits; the task waiting for it is
    cancelled, and the record is written all the same once the lock is released. The future
    of a record handed over cannot be cancelled."""
    path = tmp_path / "a.jsonl"
    path.touch()
    other = os.open(path, os.O_RDWR)
    fcntl.flock(other, fcntl.LOCK_EX)
    with AuditLog(path) as log:
        future = log.submit(_record(1))
        waiter = asyncio.create_task(written(future))
        await asyncio.sleep(0.05)
        assert not future.done() and not future.cancel()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        fcntl.flock(other, fcntl.LOCK_UN)
        os.close(other)
    # closed: the queue was written first
    assert [r["request_id"] for r in iter_records(path)] == ["r1"]


async def test_closing_writes_every_record_still_queued(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    log = AuditLog(path, fsync=True)
    for i in range(30):
        log.submit(_record(i))  # handed over, never waited for
    await asyncio.to_thread(log.close)
    assert len(list(iter_records(path))) == 30
    # a record handed over after the close is still written (the file is opened again)
    await written(log.submit(_record(30)))
    log.close()
    assert len(list(iter_records(path))) == 31 and verify(path).ok


def test_the_interpreters_exit_writes_every_record_still_queued(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    script = textwrap.dedent(
        f"""
        from hybridmcp.audit import AuditLog
        log = AuditLog({str(path)!r}, fsync=True)
        for i in range(200):
            log.submit({{"kind": "external_call", "request_id": f"r{{i}}"}})
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [r["request_id"] for r in iter_records(path)] == [f"r{i}" for i in range(200)]


async def test_a_failed_write_is_raised_where_it_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with AuditLog(path) as log:
        await written(log.submit(_record(1)))
        path.unlink()  # the trail moved away while it is written: refused, never hidden
        with pytest.raises(AuditError, match="is gone"):
            await written(log.submit(_record(2)))


def test_a_record_that_is_not_json_is_refused_when_handed_over(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "a.jsonl") as log, pytest.raises(AuditError, match="not JSON"):
        log.submit({"kind": "x", "value": object()})


async def test_a_sink_in_memory_takes_the_record_at_once() -> None:
    sink = MemoryAudit()
    assert hand_over(sink, _record(1)) is None and list(sink.records) == [_record(1)]
    assert await written(None) is None


async def test_handing_over_never_blocks_the_event_loop(tmp_path: Path) -> None:
    """The LangGraph server's blocking-call detector, set up as ``langgraph dev`` sets it up:
    an append on the loop is refused; a record handed over is written (from the writer)."""
    from langgraph_runtime_inmem.queue import _enable_blockbuster

    path = tmp_path / "a.jsonl"
    log = AuditLog(path, fsync=True)
    detector = _enable_blockbuster()
    try:
        with pytest.raises(BlockingError):
            log.append(_record(0))
        assert (await written(log.submit(_record(1))))["seq"] == 1
    finally:
        detector.deactivate()
    log.close()
    assert [r["request_id"] for r in iter_records(path)] == ["r1"]

"""The worker threads of internal functions: results, errors, the caller's context, the bound on
threads, and a job given up before a thread took it never runs."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from hybridmcp.capabilities.workers import Workers

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


async def test_results_errors_and_the_callers_context() -> None:
    workers = Workers()
    WHO.set("caller")
    assert await workers.run(lambda: WHO.get()) == "caller"
    assert await workers.run(lambda: threading.current_thread().daemon) is True

    def fail() -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await workers.run(fail)
    workers.close()
    with pytest.raises(RuntimeError, match="closed"):
        await workers.run(lambda: 1)


async def test_at_most_max_workers_threads_and_idle_ones_are_reused() -> None:
    workers = Workers(max_workers=2)
    gate = threading.Event()
    running = []

    def job(i: int) -> int:
        running.append(threading.current_thread().name)
        gate.wait(10)
        return i

    tasks = [asyncio.create_task(workers.run(lambda i=i: job(i))) for i in range(5)]
    for _ in range(200):
        if len(running) == 2:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert len(running) == 2  # the other three wait for a thread
    gate.set()
    assert await asyncio.gather(*tasks) == [0, 1, 2, 3, 4]
    assert len(set(running)) == 2
    for _ in range(3):  # one after the other: the idle thread takes each
        await workers.run(lambda: job(9))
    assert len(set(running)) == 2
    workers.close()


async def test_a_job_given_up_before_a_thread_took_it_never_runs() -> None:
    workers = Workers(max_workers=1)
    hold, ran = threading.Event(), []
    first = asyncio.create_task(workers.run(lambda: hold.wait(10)))
    second = asyncio.create_task(workers.run(lambda: ran.append(1)))
    await asyncio.sleep(0.05)
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    hold.set()
    assert await first is True
    assert await workers.run(lambda: "after") == "after"
    assert ran == []
    workers.close()

"""Worker threads for internal functions that are plain (not ``async``) functions.

A thread cannot be stopped: a function still running when its call was given up (its deadline,
the run's) runs on. asyncio's default executor is waited for when ``asyncio.run`` ends, and its
threads again when the interpreter exits, so one stuck function held the command's output and
its exit until it returned, if ever. These workers are daemon threads that nothing waits for:
a given-up function is abandoned, as an abandoned MCP call is, and the process ends when its
work is done.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[Callable[[], Any], Future[Any]]


class Workers:
    """A pool of daemon threads, started as work needs them (at most ``max_workers``, as many
    as asyncio's default executor has); each call runs in a copy of the caller's context."""

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = threading.Semaphore(0)
        """Released by a thread each time it waits for work (as ThreadPoolExecutor does)."""
        self._closed = False

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` in a worker thread. Cancelled before a thread took it, it never runs;
        cancelled while it runs, it is abandoned (it runs on; its result is dropped)."""
        if self._closed:
            raise RuntimeError("the worker threads are closed")
        ctx = contextvars.copy_context()
        done: Future[T] = Future()
        self._jobs.put((lambda: ctx.run(fn), done))
        if not self._idle.acquire(timeout=0):  # no thread waiting: start one, if allowed
            with self._lock:
                if self._threads < self.max_workers:
                    self._threads += 1
                    threading.Thread(
                        target=self._work, name=f"hybridmcp-worker-{self._threads}", daemon=True
                    ).start()
        return await asyncio.wrap_future(done)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, done = job
            if done.set_running_or_notify_cancel():
                try:
                    done.set_result(fn())
                except BaseException as err:
                    done.set_exception(err)
            self._idle.release()

    def close(self) -> None:
        """Let idle threads end; a thread still in an abandoned function ends with it (or with
        the process). Nothing waits for them."""
        with self._lock:
            self._closed = True
            threads = self._threads
        for _ in range(threads):
            self._jobs.put(None)

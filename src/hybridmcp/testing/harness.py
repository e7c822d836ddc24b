"""Test and benchmark harness around the fault server: configurations and server processes.

- :func:`faultserver_stdio` is the ``mcpServers`` entry that starts the fault server over stdio
  (the session pool owns that process);
- :class:`HttpFaultServer` runs it over streamable HTTP (or SSE) as a process of its own, which
  a test can kill mid-call and start again on the same port;
- :func:`child_processes` lists the live child processes of this process (from ``/proc``), to
  check that nothing was leaked.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

FAULTSERVER = "hybridmcp.testing.faultserver"


def faultserver_args(
    faults: dict[str, Any] | None = None,
    seed: int = 7,
    record: str | Path | None = None,
    answers: str = "both",
) -> list[str]:
    args = ["-m", FAULTSERVER, "--seed", str(seed)]
    if faults:
        args += ["--faults", json.dumps(faults)]
    if record:
        args += ["--record", str(record)]
    if answers != "both":
        args += ["--answers", answers]
    return args


def faultserver_stdio(
    faults: dict[str, Any] | None = None,
    seed: int = 7,
    record: str | Path | None = None,
    answers: str = "both",
    **server: Any,
) -> dict[str, Any]:
    """The ``mcpServers`` entry of a fault server over stdio."""
    return {
        "transport": "stdio",
        "command": sys.executable,
        "args": faultserver_args(faults, seed, record, answers),
        "env": {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(sys.path)},
        **server,
    }


def langgraph_config_in(folder: Path, root: Path, name: str = "langgraph.json") -> Path:
    """The ``langgraph.json`` (or another of its configurations, ``name``) of the repository at
    ``root`` with its paths made absolute, written to ``folder`` as ``langgraph.json``
    (``langgraph dev`` resolves them against its working directory)."""
    config = json.loads((root / name).read_text())
    config["dependencies"] = [str((root / d).resolve()) for d in config["dependencies"]]
    config["graphs"] = {
        name: str(root / spec) if spec.startswith("./") else spec
        for name, spec in config["graphs"].items()
    }
    path = folder / "langgraph.json"
    path.write_text(json.dumps(config))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HttpFaultServer:
    """The fault server over streamable HTTP (or SSE), in a process the caller controls."""

    def __init__(
        self,
        faults: dict[str, Any] | None = None,
        *,
        transport: str = "streamable-http",
        seed: int = 7,
        record: str | Path | None = None,
        port: int | None = None,
        answers: str = "both",
        require_header: str | None = None,
    ) -> None:
        self.faults = faults
        self.require_header = require_header
        self.transport = transport
        self.seed = seed
        self.record = record
        self.answers = answers
        self.port = port or free_port()
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        path = "/mcp" if self.transport == "streamable-http" else "/sse"
        return f"http://127.0.0.1:{self.port}{path}"

    def server_config(self, **server: Any) -> dict[str, Any]:
        kind = "streamable_http" if self.transport == "streamable-http" else "sse"
        return {"transport": kind, "url": self.url, **server}

    async def start(self, faults: dict[str, Any] | None = None, limit_s: float = 20.0) -> None:
        if faults is not None:
            self.faults = faults
        args = [*faultserver_args(self.faults, self.seed, self.record, self.answers)]
        args += ["--transport", self.transport, "--port", str(self.port)]
        if self.require_header:
            args += ["--require-header", self.require_header]
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, *args, stdout=asyncio.subprocess.DEVNULL
        )
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                raise RuntimeError(f"fault server exited with {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                await asyncio.sleep(0.05)
        await self.stop()
        raise TimeoutError(f"fault server did not listen on port {self.port} in {limit_s} s")

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            if proc is not None:
                await proc.wait()
            return
        proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def kill(self) -> None:
        """Kill it like a crash: no goodbye to open connections."""
        await self.stop(signal.SIGKILL)

    async def wait_exit(self, limit_s: float = 10.0) -> int | None:
        """Wait for the process to exit by itself (an injected crash)."""
        if self.proc is None:
            return None
        code = await asyncio.wait_for(self.proc.wait(), limit_s)
        self.proc = None
        return code

    async def __aenter__(self) -> HttpFaultServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def child_processes(pid: int | None = None) -> list[int]:
    """Live (not zombie) child processes of ``pid`` (default: this process), from ``/proc``."""
    parent = str(pid or os.getpid())
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, ppid = fields[0], fields[1]
        if ppid == parent and state != "Z":
            children.append(int(entry.name))
    return sorted(children)


async def no_children_left(
    limit_s: float = 10.0, pid: int | None = None, allowed: set[int] | frozenset[int] = frozenset()
) -> list[int]:
    """Wait until this process has no live children but ``allowed``; the others left after
    ``limit_s``."""
    deadline = time.monotonic() + limit_s
    for _ in range(int(limit_s / 0.05) + 1):
        left = [c for c in child_processes(pid) if c not in allowed]
        if not left or time.monotonic() >= deadline:
            return left
        await asyncio.sleep(0.05)
    return [c for c in child_processes(pid) if c not in allowed]

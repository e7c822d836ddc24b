"""hybridmcp's stdio transport against the MCP SDK's, side by side in one process.

    python -m bench.stdio_framing             # the figures in bench/README.md
    python -m bench.stdio_framing --rounds 1  # a smoke run

One session per transport to ``hybridmcp.testing.hostile_server ok`` (it echoes its argument),
the two interleaved for ``--rounds`` rounds; each cell is the best round's time for its calls,
and the ratio is the SDK's time over ours (above 1: ours is faster). The SDK's reader joins its
buffer to every chunk and splits the whole again, so its cost grows with the square of an
answer's size; ours copies each byte once (:mod:`hybridmcp.capabilities.stdio`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from contextlib import AbstractAsyncContextManager
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client as sdk_client

from hybridmcp.capabilities.stdio import stdio_client as our_client

CELLS = [("small answers", 2000, 2), ("1 MB answers", 5, 1_000_000), ("8 MB answer", 1, 8_000_000)]


async def _timed(client: AbstractAsyncContextManager[Any], calls: int, size: int) -> float:
    async with client as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        started = time.perf_counter()
        for _ in range(calls):
            await session.call_tool("echo", {"text": "x" * size})
        return time.perf_counter() - started


async def measure(rounds: int) -> list[tuple[str, float, float]]:
    env = {"PYTHONPATH": os.pathsep.join(sys.path)}
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "hybridmcp.testing.hostile_server", "ok"], env=env
    )
    rows = []
    for label, calls, size in CELLS:
        sdk, ours = [], []
        for _ in range(rounds):
            sdk.append(await _timed(sdk_client(params), calls, size))
            ours.append(await _timed(our_client(params, max_bytes=16_000_000), calls, size))
        rows.append((label, min(sdk), min(ours)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    print("| answers | SDK (s) | hybridmcp (s) | SDK / hybridmcp |\n|---|---|---|---|")
    for label, sdk, ours in asyncio.run(measure(args.rounds)):
        print(f"| {label} | {sdk:.3f} | {ours:.3f} | {sdk / ours:.2f} |")


if __name__ == "__main__":
    main()

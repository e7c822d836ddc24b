"""The two workers of a hybrid request, live: each side's answer as an ``asyncio.Event``, so a
side past its slow threshold can stop waiting once the other has answered (a straggler).

Owned by the runtime resources (never module-level), so two coordinators never share it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

PairKey = tuple[str, str, int]
"""(run id, request id, round)."""


class HybridPairs:
    def __init__(self) -> None:
        self._answered: dict[PairKey, dict[str, asyncio.Event]] = {}
        self._joined: dict[PairKey, list[int]] = {}

    def answer(self, key: PairKey, side: str) -> asyncio.Event:
        return self._answered.setdefault(key, {}).setdefault(side, asyncio.Event())

    @contextlib.contextmanager
    def pair(self, key: PairKey) -> Iterator[None]:
        """Track the two workers of a hybrid request; forget the pair when both are done."""
        counts = self._joined.setdefault(key, [0, 0])  # [joined, active]
        counts[0] += 1
        counts[1] += 1
        try:
            yield
        finally:
            counts[1] -= 1
            if counts[0] >= 2 and counts[1] == 0:
                self._joined.pop(key, None)
                self._answered.pop(key, None)

    def __len__(self) -> int:
        return len(self._joined)

"""The plain clients the benchmarks compare hybridmcp with: a skill's providers called directly
on the coordinator's held MCP sessions, through one gate with no circuit breaker (so the same
audit and argument mapping, none of the coordination)."""

from __future__ import annotations

import asyncio
from typing import Any

from hybridmcp.capabilities.gate import AlwaysClosed, CallContext, Gate
from hybridmcp.capabilities.registry import Provider, invoke_internal
from hybridmcp.config import Side
from hybridmcp.coordinator import Coordinator


class PlainClient:
    """Calls one provider at a time; the caller decides which (that is the baseline's policy)."""

    def __init__(self, co: Coordinator) -> None:
        self.registry = co.resources.registry
        self.gate = Gate(co.resources.pool, breaker=AlwaysClosed())
        self.calls = 0

    def provider(self, skill: str, side: Side) -> Provider | None:
        """The skill's first provider on that side, if it has one."""
        found = self.registry.get(skill).providers_on(side)
        return found[0] if found else None

    async def call(
        self, provider: Provider, args: dict[str, Any], sensitivity: str = "public"
    ) -> Any:
        """One call, bounded by the provider's deadline; raises on any failure."""
        self.calls += 1
        if provider.side == "internal":
            return await asyncio.wait_for(
                invoke_internal(provider, args), provider.timeout_ms / 1000
            )
        ctx = CallContext(
            "bench", str(self.calls), provider.skill, f"bench:{self.calls}", sensitivity
        )
        return (await self.gate.call(provider, args, ctx)).value

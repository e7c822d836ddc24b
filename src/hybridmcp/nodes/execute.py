"""Phase 2: the parallel branches. Each call makes one attempt and records it.

``internal`` runs an in-process provider; ``external`` calls an MCP tool through the gate.
Both are bounded by the provider's deadline and the run's; both write only through the
``attempts`` reducer, so any number of them can run in the same step.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from langgraph.runtime import Runtime

from hybridmcp.capabilities.gate import CallContext
from hybridmcp.capabilities.registry import Provider, invoke_internal
from hybridmcp.errors import HybridMCPError
from hybridmcp.runtime import Context, Resources, resources_for
from hybridmcp.state import WorkItem


def _timeout_s(provider: Provider, item: WorkItem, now: float) -> float:
    timeout = provider.timeout_ms / 1000
    if item.get("deadline_at") is not None:
        timeout = min(timeout, max(0.0, item["deadline_at"] - now))  # type: ignore[operator]
    return timeout


def _attempt(
    item: WorkItem,
    *,
    ok: bool,
    started: float,
    elapsed_s: float,
    cost: float,
    value: Any = None,
    error: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    attempt = {
        "request_id": item["request_id"],
        "skill": item["skill"],
        "provider": item["provider"],
        "side": item["side"],
        "round": item["round"],
        "idempotency_key": item["idempotency_key"],
        "ok": ok,
        "started_at": started,
        "latency_ms": round(elapsed_s * 1000, 3),
        "cost": cost,
        "value": value,
        "error": error,
    }
    return attempt | extra


async def _run(item: WorkItem, res: Resources) -> dict[str, Any]:
    provider = res.registry.provider(item["provider"])
    started, t0 = res.clock(), time.perf_counter()
    timeout = _timeout_s(provider, item, started)
    try:
        if timeout <= 0:
            raise TimeoutError
        if provider.side == "internal":
            async with asyncio.timeout(timeout):
                value = await invoke_internal(provider, item["args"])
            return _attempt(
                item,
                ok=True,
                started=started,
                elapsed_s=time.perf_counter() - t0,
                cost=provider.cost_per_call,
                value=value,
            )
        ctx = CallContext(
            item["run_id"],
            item["request_id"],
            item["skill"],
            item["idempotency_key"],
            item["sensitivity"],
        )
        result = await res.gate.call(provider, item["args"], ctx, timeout_s=timeout)
        return _attempt(
            item,
            ok=True,
            started=started,
            elapsed_s=time.perf_counter() - t0,
            cost=result.cost,
            value=result.value,
            privacy=result.privacy,
            bytes_sent=result.bytes_sent,
            bytes_received=result.bytes_received,
        )
    except TimeoutError:
        error = f"deadline exceeded after {timeout * 1000:.0f} ms"
    except HybridMCPError as err:
        error = str(err)
    except Exception as err:  # a provider's own bug must not take the run down
        error = f"{type(err).__name__}: {err}"
    return _attempt(
        item, ok=False, started=started, elapsed_s=time.perf_counter() - t0, cost=0.0, error=error
    )


async def internal(item: WorkItem, runtime: Runtime[Context]) -> dict[str, Any]:
    return {"attempts": [await _run(item, await resources_for(runtime.context))]}


async def external(item: WorkItem, runtime: Runtime[Context]) -> dict[str, Any]:
    return {"attempts": [await _run(item, await resources_for(runtime.context))]}

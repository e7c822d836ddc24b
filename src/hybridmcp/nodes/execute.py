"""Phase 2: the parallel branches. Each call makes one attempt (two when hedged) and records it.

``internal`` runs an in-process provider; ``external`` calls an MCP tool through the gate.
Both are bounded by the provider's deadline and the run's; both write only through the
``attempts`` and ``events`` reducers, so any number of them can run in the same step.

While a call runs, the worker watches it (:func:`hybridmcp.policy.hedging.watch_plan`):

- past the provider's tail-latency estimate, a single-side request is *hedged*: the other side
  starts too, the first valid answer wins, the other call is cancelled (``HEDGE_STARTED``);
  paid from the hedge budget, except past the degradation threshold (``degraded``) or when the
  provider's last judged call was degraded (``suspect``: hedged at its last healthy tail);
- past its degradation threshold, one side of a hybrid request whose other side has answered is
  a *straggler*: it is cancelled and the request settles on the answer it has.

Answers are checked against the shape the skill's comparator expects, so a truncated or
wrong-shaped answer is a failed attempt (and a failure for the circuit breaker), not a value.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

from langgraph.runtime import Runtime

from hybridmcp.capabilities.gate import BudgetExhausted, CallContext, CircuitOpen, PrivacyRefused
from hybridmcp.capabilities.registry import Provider, invoke_internal
from hybridmcp.errors import HybridMCPError, ProviderError
from hybridmcp.policy.cost import BUDGET_EXHAUSTED
from hybridmcp.policy.hedging import HedgeBudget
from hybridmcp.policy.resilience import HEDGE_LOST, STRAGGLER, shape_error
from hybridmcp.runtime import Context, Resources, resources_for
from hybridmcp.state import WorkItem


@dataclass
class _Live:
    """Per-resources live state of the workers: the hedge budget, the hybrid pairs' answers."""

    hedges: HedgeBudget
    answered: dict[tuple[str, str, int], dict[str, asyncio.Event]] = field(default_factory=dict)
    healthy_threshold: dict[str, float] = field(default_factory=dict)
    """Per provider: the slow threshold of its last call that was not slow."""
    suspect: set[str] = field(default_factory=set)
    """Providers whose last judged call was degraded: their next calls are hedged at the tail
    estimate of their last healthy call, without waiting for the hedge budget, until one
    answers in normal time."""
    healthy_tail: dict[str, float] = field(default_factory=dict)
    """Per provider: the hedge delay (tail estimate) of its last call that was not slow; the
    current estimate has begun to absorb the slow calls."""
    joined: dict[tuple[str, str, int], list[int]] = field(default_factory=dict)

    def answer(self, key: tuple[str, str, int], side: str) -> asyncio.Event:
        return self.answered.setdefault(key, {}).setdefault(side, asyncio.Event())

    @contextlib.contextmanager
    def pair(self, key: tuple[str, str, int]) -> Iterator[None]:
        """Track the two workers of a hybrid request; forget the pair when both are done."""
        counts = self.joined.setdefault(key, [0, 0])  # [joined, active]
        counts[0] += 1
        counts[1] += 1
        try:
            yield
        finally:
            counts[1] -= 1
            if counts[0] >= 2 and counts[1] == 0:
                self.joined.pop(key, None)
                self.answered.pop(key, None)


_LIVE: WeakKeyDictionary[Resources, _Live] = WeakKeyDictionary()
PIN_ALPHA = 0.05
SUSPECT = "suspect"
"""Hedge reason: the provider's last judged call was degraded."""
"""How fast a provider's pinned slow threshold follows its healthy calls' thresholds."""


def _live(res: Resources) -> _Live:
    if res not in _LIVE:
        _LIVE[res] = _Live(HedgeBudget.from_config(res.config.resilience.hedging))
    return _LIVE[res]


def hedge_budget(res: Resources) -> HedgeBudget:
    """The hedge budget these resources' runs share (for reports and tests)."""
    return _live(res).hedges


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


def _validator(res: Resources, skill: str) -> Any:
    comparator = res.registry.get(skill).comparator

    def validate(value: Any) -> None:
        problem = shape_error(comparator, value)
        if problem:
            raise ProviderError(problem)

    return validate


async def _run(item: WorkItem, res: Resources) -> dict[str, Any]:
    """One attempt; never raises except when cancelled."""
    provider = res.registry.provider(item["provider"])
    started, t0 = res.clock(), time.perf_counter()
    timeout = _timeout_s(provider, item, started)
    validate = _validator(res, item["skill"])
    slow_after_ms = (item.get("watch") or {}).get("slow_after_ms")
    try:
        if timeout <= 0:
            raise TimeoutError
        if provider.side == "internal":
            async with asyncio.timeout(timeout):
                value = await invoke_internal(provider, item["args"])
            validate(value)
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
            item.get("declared_sensitivity", "public"),
            item.get("budget"),
        )
        result = await res.gate.call(
            provider,
            item["args"],
            ctx,
            timeout_s=timeout,
            slow_after_s=None if slow_after_ms is None else slow_after_ms / 1000,
            validate=validate,
        )
        return _attempt(
            item,
            ok=True,
            started=started,
            elapsed_s=time.perf_counter() - t0,
            cost=result.cost,
            value=result.value,
            privacy=result.privacy,
            redactions=result.redactions,
            bytes_sent=result.bytes_sent,
            bytes_received=result.bytes_received,
        )
    except TimeoutError:
        error = f"deadline exceeded after {timeout * 1000:.0f} ms"
    except (PrivacyRefused, BudgetExhausted, CircuitOpen) as err:
        # Refused by the gate: the call never left, so the provider is not to blame for it.
        flag: dict[str, Any] = (
            {"privacy": "refuse"}
            if isinstance(err, PrivacyRefused)
            else {"budget_exhausted": True}
            if isinstance(err, BudgetExhausted)
            else {"circuit_open": True}
        )
        return _attempt(
            item,
            ok=False,
            started=started,
            elapsed_s=time.perf_counter() - t0,
            cost=0.0,
            error=str(err),
            **flag,
        )
    except HybridMCPError as err:
        error = str(err)
    except Exception as err:  # a provider's own bug must not take the run down
        error = f"{type(err).__name__}: {err}"
    return _attempt(
        item, ok=False, started=started, elapsed_s=time.perf_counter() - t0, cost=0.0, error=error
    )


@dataclass
class _Call:
    """An attempt in flight: its item, task and start."""

    item: WorkItem
    task: asyncio.Task[dict[str, Any]]
    started: float
    t0: float

    @classmethod
    def start(cls, item: WorkItem, res: Resources) -> _Call:
        started, t0 = res.clock(), time.perf_counter()
        return cls(item, asyncio.create_task(_run(item, res)), started, t0)

    async def cancel(self, res: Resources, why: str, **extra: Any) -> dict[str, Any]:
        """Cancel it and record it as a failed attempt (the call was made: its cost counts)."""
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task
        provider = res.registry.provider(self.item["provider"])
        return _attempt(
            self.item,
            ok=False,
            started=self.started,
            elapsed_s=time.perf_counter() - self.t0,
            cost=provider.cost_per_call,
            error=f"cancelled: {why}",
            **extra,
        )


async def _race(
    primary: _Call,
    hedge: dict[str, Any],
    res: Resources,
    events: list[dict[str, Any]],
    reason: str,
) -> list[dict[str, Any]]:
    """Run a hedge against the primary; the first valid answer wins, the other is cancelled."""
    item = primary.item
    alt = WorkItem(
        **{**item, "provider": hedge["provider"], "side": hedge["side"], "watch": {}},
    )
    alt["idempotency_key"] = f"{item['idempotency_key']}:hedge"
    second = _Call.start(alt, res)
    budget = _live(res).hedges
    events.append(
        {
            "code": "HEDGE_STARTED",
            "request_id": item["request_id"],
            "round": item["round"],
            "reason": reason,
            "provider": item["provider"],
            "hedge_provider": alt["provider"],
            "after_ms": hedge["after_ms"],
            "elapsed_ms": round((time.perf_counter() - primary.t0) * 1000, 3),
            "budget": {"tokens": round(budget.tokens, 3), "spent": budget.spent},
        }
    )
    calls = {primary.task: (primary, "primary"), second.task: (second, "hedge")}
    results: dict[asyncio.Task[dict[str, Any]], dict[str, Any]] = {}
    pending: set[asyncio.Task[dict[str, Any]]] = set(calls)
    while pending and not any(a["ok"] for a in results.values()):
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        results |= {t: t.result() for t in done}
    attempts = []
    for task, (call, role) in calls.items():
        if task in results:
            attempts.append(results[task] | {"hedge": role})
            continue
        lost = await call.cancel(res, HEDGE_LOST, cancelled=HEDGE_LOST, hedge=role)
        slow_after_ms = (call.item.get("watch") or {}).get("slow_after_ms")
        if slow_after_ms is not None and lost["latency_ms"] > slow_after_ms:
            lost["slow_after_ms"] = slow_after_ms
            _record_slow(res, call.item)
        elif role == "primary" and reason == SUSPECT:
            # Past its tail again while already suspect: more evidence for the breaker.
            _record_slow(res, call.item)
        attempts.append(lost)
    return attempts


async def _finished_within(call: _Call, at_ms: float) -> bool:
    """Wait until the call is done or ``at_ms`` after its start; is it done?"""
    remaining = at_ms / 1000 - (time.perf_counter() - call.t0)
    done, _ = await asyncio.wait({call.task}, timeout=max(0.0, remaining))
    return bool(done)


async def _hedged(
    call: _Call,
    hedge: dict[str, Any],
    slow_after_ms: float | None,
    res: Resources,
    events: list[dict[str, Any]],
) -> list[dict[str, Any]] | None:
    """Past the tail estimate, hedge if the budget allows; past the degradation threshold, move
    the work to the other side at once (the breaker bounds how often that can happen)."""
    live = _live(res)
    provider = call.item["provider"]
    if provider in live.suspect:
        at_ms = min(hedge["after_ms"], live.healthy_tail.get(provider, hedge["after_ms"]))
        if await _finished_within(call, at_ms):
            return None
        return await _race(call, {**hedge, "after_ms": at_ms}, res, events, SUSPECT)
    if await _finished_within(call, hedge["after_ms"]):
        return None
    if live.hedges.spend():
        return await _race(call, hedge, res, events, "tail")
    if slow_after_ms is None or await _finished_within(call, slow_after_ms):
        return None
    return await _race(call, hedge, res, events, "degraded")


async def _straggle(call: _Call, slow_after_ms: float, answered: asyncio.Event) -> bool:
    """Wait for the call; True when it should be cut: past ``slow_after_ms`` with the other
    side's answer in."""
    if await _finished_within(call, slow_after_ms):
        return False
    peer = asyncio.create_task(answered.wait())
    try:
        done, _ = await asyncio.wait({call.task, peer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        peer.cancel()
    return call.task not in done


def _effective_watch(item: WorkItem, live: _Live) -> WorkItem:
    """The degradation threshold measured against the provider's last healthy baseline, so a
    slowdown that the moving average has begun to absorb still counts as one."""
    watch = dict(item.get("watch") or {})
    current = watch.get("slow_after_ms")
    pinned = live.healthy_threshold.get(item["provider"])
    if current is not None and pinned is not None:
        watch["slow_after_ms"] = min(current, pinned)
    return WorkItem(**{**item, "watch": watch})


def _remember_health(
    attempt: dict[str, Any], effective_ms: float | None, planned_ms: float | None, live: _Live
) -> None:
    """Judge the attempt by ``effective_ms``; a healthy one moves the provider's pinned
    threshold slowly toward the current one (so a lasting change is learned, a slowdown is not
    absorbed within a few calls)."""
    if effective_ms is None:
        return
    attempt["slow_after_ms"] = round(effective_ms, 3)
    if attempt["latency_ms"] > effective_ms:
        live.suspect.add(attempt["provider"])
    elif attempt["ok"]:
        live.suspect.discard(attempt["provider"])
    if planned_ms is None or not attempt["ok"] or attempt["latency_ms"] > effective_ms:
        return
    pinned = live.healthy_threshold.get(attempt["provider"], planned_ms)
    live.healthy_threshold[attempt["provider"]] = pinned + PIN_ALPHA * (planned_ms - pinned)


async def _serve(item: WorkItem, res: Resources) -> dict[str, Any]:
    live = _live(res)
    planned = (item.get("watch") or {}).get("slow_after_ms")
    item = _effective_watch(item, live)
    watch = item.get("watch") or {}
    events: list[dict[str, Any]] = []
    key = (item["run_id"], item["request_id"], item["round"])
    peer_side = watch.get("peer_side")
    slow_after_ms = watch.get("slow_after_ms")
    hedge = watch.get("hedge")
    pairing = live.pair(key) if peer_side else contextlib.nullcontext()
    with pairing:
        call = _Call.start(item, res)
        try:
            attempts: list[dict[str, Any]] | None = None
            if hedge:
                live.hedges.earn()
                attempts = await _hedged(call, hedge, slow_after_ms, res, events)
            elif peer_side and slow_after_ms is not None:
                if await _straggle(call, slow_after_ms, live.answer(key, peer_side)):
                    why = f"{STRAGGLER}: past {slow_after_ms:.0f} ms, the other side answered"
                    attempts = [await call.cancel(res, why, cancelled=STRAGGLER)]
                    _record_slow(res, item)
            if attempts is None:
                attempts = [await call.task]
            if peer_side and attempts[0]["ok"]:
                live.answer(key, item["side"]).set()
        finally:
            if not call.task.done():
                call.task.cancel()
    primary = next(a for a in attempts if a["provider"] == item["provider"])
    _remember_health(primary, slow_after_ms, planned, live)
    if hedge and primary["ok"] and primary["provider"] not in live.suspect:
        live.healthy_tail[primary["provider"]] = hedge["after_ms"]
    events += [
        {
            "code": BUDGET_EXHAUSTED,
            "stage": "gate",
            "request_id": a["request_id"],
            "provider": a["provider"],
            "round": a["round"],
            "reason": a["error"],
        }
        for a in attempts
        if a.get("budget_exhausted")
    ]
    return {"attempts": attempts, "events": events + _breaker_events(res, attempts)}


def _record_slow(res: Resources, item: WorkItem) -> None:
    """A call cut off as degraded never reaches the gate's outcome: count it as slow here."""
    if item["side"] == "external":
        res.gate.breaker.record(item["provider"], True, res.clock(), slow=True)


def _breaker_events(res: Resources, attempts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    take = getattr(res.gate.breaker, "take_transitions", None)
    if take is None:
        return []
    providers = {a["provider"] for a in attempts if a["side"] == "external"}
    return [t.to_event() for p in sorted(providers) for t in take(p)]


async def internal(item: WorkItem, runtime: Runtime[Context]) -> dict[str, Any]:
    return await _serve(item, await resources_for(runtime.context))


async def external(item: WorkItem, runtime: Runtime[Context]) -> dict[str, Any]:
    return await _serve(item, await resources_for(runtime.context))

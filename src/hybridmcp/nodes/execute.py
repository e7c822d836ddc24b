"""Phase 2: the parallel branches. Each work item makes one attempt (two when hedged) and
records it.

``internal`` runs in-process providers; ``external`` calls MCP tools through the gate. Each
takes a bounded batch of work items (one LangGraph task per batch, not per call: see
``BATCH_SIZE``) and makes them concurrently; each call is checkpointed as it finishes
(:mod:`hybridmcp.journal`), so a resumed run repeats no finished call. Every call is bounded
by the provider's deadline and the run's; the workers write only through the ``attempts`` and
``events`` reducers, so any number of them can run in the same step.

A provider is measured from the moment its call was *sent* (:class:`CallTiming`): time waiting
for a session slot or a worker thread is the coordinator's queue, recorded as ``queue_ms``, and
never counts as the provider's latency or slowness (invariant 7).

While a call runs, the worker watches it (:func:`hybridmcp.policy.hedging.watch_plan`, with the
provider's memory in :class:`hybridmcp.policy.hedging.HealthWatch`):

- past the provider's tail-latency estimate, a single-side request is *hedged*: the other side
  starts too, the first valid answer wins, the other call is cancelled (``HEDGE_STARTED``);
  paid from the hedge budget, except past the degradation threshold (``degraded``) or when the
  provider's last judged call was degraded (``suspect``: hedged at its last healthy tail);
- past its degradation threshold, one side of a hybrid request whose other side has answered is
  a *straggler*: it is cancelled and the request settles on the answer it has.

A call the coordinator cut (a hedge that lost, a straggler, the run's deadline) is *censored*:
it tells only that the provider took longer than that, never that it failed
(:mod:`hybridmcp.policy.blame`). Answers are checked against the shape the skill's comparator
expects, so a truncated or wrong-shaped answer is a failed attempt, not a value.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore, GetOp, Item
from langgraph.types import interrupt

from hybridmcp.callcontext import apart_from_step
from hybridmcp.capabilities.client_features import CallScope, ElicitationRequired
from hybridmcp.capabilities.gate import CallContext, digest_id
from hybridmcp.capabilities.pairs import PairKey
from hybridmcp.capabilities.registry import Provider, checkpointable, invoke_internal
from hybridmcp.capabilities.timing import CallTiming
from hybridmcp.errors import (
    AnswerTooLarge,
    AuditError,
    BackPressureError,
    BudgetExhausted,
    CircuitOpen,
    ClientRefused,
    CoordinatorClosed,
    DeadlineExceededError,
    HybridMCPError,
    PrivacyRefused,
    ProviderError,
    RequestError,
    SendNotRecorded,
    ToolError,
)
from hybridmcp.events import EventCode
from hybridmcp.journal import CallJournal
from hybridmcp.policy import blame
from hybridmcp.policy.cost import Budget, money, spent_by
from hybridmcp.policy.degradation import HEDGE_LOST, STRAGGLER, shape_error
from hybridmcp.policy.effects import OUTCOME_UNKNOWN, WRITE
from hybridmcp.policy.hedging import HealthWatch
from hybridmcp.progress import attempt_finished, attempt_started, current_writer
from hybridmcp.runtime import Context, Resources, resources_for
from hybridmcp.sends import RequestRound, Sends
from hybridmcp.state import Batch, WorkItem, colon_key, idempotency_key
from hybridmcp.stats_store import stats_lock

SUSPECT = "suspect"
"""Hedge reason: the provider's last judged call was degraded."""
RUN_DEADLINE = "run deadline"
"""Censoring reason: the run's deadline came before the provider's own."""
RUN_STOPPED = "run stopped"
"""Censoring reason: the run's process stopped (killed, crashed) with the call in flight; a
resumed run finds its dispatch without an outcome. The provider was not seen to fail."""
INTERNAL_ERRORS_OF_INPUT = (RequestError, ValueError, ArithmeticError)
"""What an internal skill raises when its input is wrong: a request error, not its fault."""
BATCH_SIZE = 64
"""Attempts per worker task at most. LangGraph's cost per task grows with the number of tasks
in the step (each one's writes rescan the step's pending writes), so calls go in bounded
batches; each call is still checkpointed on its own (:mod:`hybridmcp.journal`)."""
ASKED = ("hybridmcp", "elicitation")
"""Store namespace of the questions servers asked a human during a call, by idempotency key."""
_ANSWERS: ContextVar[tuple[Any, ...]] = ContextVar("hybridmcp_elicitation_answers", default=())
"""A human's answers to the current attempt's questions (set by the node, read by its call)."""
_WRITER: ContextVar[Callable[[Any], None] | None] = ContextVar("hybridmcp_writer", default=None)
"""The run's progress writer bound to the graph's context (set by the batch for its calls)."""
_TIMINGS: ContextVar[list[CallTiming] | None] = ContextVar("hybridmcp_timings", default=None)
"""The timelines of a write's attempts (:func:`_once`): was any of them sent?"""
_SENDS: ContextVar[Sends | None] = ContextVar("hybridmcp_sends", default=None)
"""The batch's priced sends (set by the batch for its calls, :mod:`hybridmcp.sends`)."""
DISPATCHED = ("hybridmcp", "dispatched")
"""Store namespace of write calls dispatched, by :func:`dispatch_key` (what a resume may not
redo)."""
DISPATCH_LOCK = "hybridmcp.dispatched"
"""What :func:`_claim` locks a call's key under (PostgreSQL: an advisory lock per key; SQLite:
the one file lock beside the database)."""


def _run_left_s(item: WorkItem, now: float) -> float | None:
    deadline = item.get("deadline_at")
    return None if deadline is None else max(0.0, deadline - now)


def _attempt(
    item: WorkItem,
    timing: CallTiming,
    *,
    ok: bool,
    started: float,
    cost: float,
    value: Any = None,
    error: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    sent = timing.sent_at is not None
    attempt = {
        "request_id": item["request_id"],
        "skill": item["skill"],
        "provider": item["provider"],
        "side": item["side"],
        "round": item["round"],
        "idempotency_key": item["idempotency_key"],
        "ok": ok,
        "started_at": started,
        "latency_ms": round(timing.latency_ms(), 3),
        "queue_ms": round(timing.queue_ms, 3),
        "sent": sent,
        "cost": cost if sent else 0.0,
        "value": checkpointable(value),
        "error": error,
    }
    if timing.in_flight is not None:
        attempt["in_flight"] = timing.in_flight
        attempt["service_ms"] = round(timing.service_ms(), 3)
    if extra:
        attempt.update(extra)
    return attempt


def _validator(res: Resources, skill: str) -> Any:
    comparator = res.registry.get(skill).comparator

    def validate(value: Any) -> None:
        problem = shape_error(comparator, value)
        if problem:
            raise ProviderError(problem)

    return validate


def _refusal(err: Exception) -> dict[str, Any]:
    """What the gate refused, as attempt flags (the call never left the process, but for
    :class:`ClientRefused`)."""
    if isinstance(err, PrivacyRefused):
        return {"privacy": "refuse"}
    if isinstance(err, BudgetExhausted):
        return {"budget_exhausted": True}
    if isinstance(err, ClientRefused):  # sent; failed for what the client refused its server
        return {"client_refused": err.refusal}
    return {"circuit_open": True}


def _context(item: WorkItem) -> CallContext:
    """The call as the gate knows it: who calls, for policy and audit, and the run's budget
    with what the run had spent before the round."""
    return CallContext(
        item["run_id"],
        item["request_id"],
        item["skill"],
        item["idempotency_key"],
        item["sensitivity"],
        item.get("declared_sensitivity", "public"),
        item.get("budget"),
        item["round"],
        item.get("spent", 0.0),
    )


async def _call(
    item: WorkItem,
    provider: Provider,
    res: Resources,
    timing: CallTiming,
    run_left: float | None,
    scope: CallScope | None,
) -> tuple[Any, dict[str, Any]]:
    """Make the call; returns the validated value and what to record beside it."""
    validate = _validator(res, item["skill"])
    timeout = provider.timeout_ms / 1000
    if provider.side == "internal":
        budget = _internal_budget(res, item, provider)
        try:
            if budget is not None:  # recorded as a send is (mod:`hybridmcp.sends`)
                await _record_send(item, provider)
            async with asyncio.timeout(timeout if run_left is None else min(timeout, run_left)):
                try:
                    value = await invoke_internal(provider, item["args"], timing, res.workers)
                except ProviderError as err:
                    raise ToolError(str(err)) from None
        except BaseException:
            if budget is not None and timing.sent_at is None:  # never started: costs nothing
                budget.refund(provider.cost_per_call, item["idempotency_key"])
            raise
        timing.mark_ended()
        validate(value)
        return value, {"cost": provider.cost_per_call}
    slow_after_ms = (item.get("watch") or {}).get("slow_after_ms")
    calling = res.gate.call(
        provider,
        item["args"],
        _context(item),
        timeout_s=timeout,
        slow_after_s=None if slow_after_ms is None else _slow_after(res, provider, slow_after_ms),
        validate=validate,
        timing=timing,
        queue_timeout_s=run_left,
        scope=scope,
    )
    if run_left is None:  # no deadline of the run's (``asyncio.timeout(None)`` does nothing)
        result = await calling
    else:
        async with asyncio.timeout(run_left):
            result = await calling
    extra = {
        "cost": result.cost,
        "privacy": result.privacy,
        "redactions": result.redactions,
        "bytes_sent": result.bytes_sent,
        "bytes_received": result.bytes_received,
    }
    if scope is not None and scope.notifications:
        extra |= {"progress": scope.progress, "progress_notifications": scope.notifications}
    return result.value, extra | _sampled(scope, provider)


def _internal_budget(res: Resources, item: WorkItem, provider: Provider) -> Budget | None:
    """The run's budget with a priced internal call's price reserved in it (it counts against
    the budget as arbitration and the cost report count it), or None (no budget, or a free
    provider); raises :class:`BudgetExhausted` when the budget cannot pay for it."""
    if item.get("budget") is None or not provider.cost_per_call:
        return None
    budget = _budget(res, item)
    budget.reserve(provider.id, provider.cost_per_call, item["idempotency_key"])
    return budget


def _sampled(scope: CallScope | None, provider: Provider) -> dict[str, Any]:
    """The sampling answers the server was given during the call, charged to the run."""
    if scope is None or not scope.sampled:
        return {}
    cost = money(scope.sampling_cost)
    return {"sampling": {"server": provider.server, "answers": scope.sampled, "cost": cost}}


def _slow_after(
    res: Resources, provider: Provider, lone_ms: float
) -> Callable[[CallTiming], float | None]:
    """The breaker's slow threshold of a call, in seconds, once it has ended: at its load, None
    when its lateness was shared with the calls beside it (:meth:`HealthWatch.shared`)."""

    def after(t: CallTiming) -> float | None:
        if res.watch.shared(provider.id, t.service_ms(), t.in_flight):
            return None
        return res.watch.slow_at_load(provider.id, lone_ms, t.in_flight) / 1000

    return after


def _progress_reporter(item: WorkItem) -> Callable[[dict[str, Any]], None]:
    """Progress notifications of the call as progress events of the run (the writer is taken
    in the graph's context, once per batch: the notification arrives in the session's own
    task)."""
    write = _WRITER.get() or current_writer()
    who = {"request_id": item["request_id"], "provider": item["provider"], "round": item["round"]}

    def report(progress: dict[str, Any]) -> None:
        write({"type": "progress", **who, **progress})

    return report


def _scope(item: WorkItem, provider: Provider) -> CallScope | None:
    """What an external call's server sees of it while it runs (progress, a person's answers,
    the sampling answers it was given); an internal call has none."""
    if provider.side != "external":
        return None
    scope = CallScope(on_progress=_progress_reporter(item), answers=list(_ANSWERS.get()))
    scope.before_send = _before_send(item, provider)
    return scope


def _before_send(item: WorkItem, provider: Provider) -> Callable[[], Awaitable[None]] | None:
    """What records the call's send, when its batch records sends and it is priced: awaited
    by the session pool once an external call has its slot, before an internal one starts."""
    sends = _SENDS.get()
    if sends is None or not sends.active or not _priced_read(provider):
        return None
    request = (item["request_id"], item["round"])
    price = provider.cost_per_call
    return sends.before_send(dispatch_key(item), request, provider.id, price)


async def _record_send(item: WorkItem, provider: Provider) -> None:
    record = _before_send(item, provider)
    if record is not None:
        await record()


def _priced_read(provider: Provider) -> bool:
    """A call a resumed run would make again, and pay again (:mod:`hybridmcp.sends`): a priced
    one that does not write, on either side."""
    return provider.cost_per_call > 0 and provider.effect != WRITE


async def _run(
    item: WorkItem, res: Resources, timing: CallTiming, scope: CallScope | None = None
) -> dict[str, Any]:
    """One attempt; never raises except when cancelled or when the coordinator closed."""
    provider = res.registry.provider(item["provider"])
    started = res.clock()
    run_left = _run_left_s(item, started)
    record: dict[str, Any]
    scope = scope or _scope(item, provider)
    try:
        if run_left is not None and run_left <= 0:
            raise TimeoutError
        value, extra = await _call(item, provider, res, timing, run_left, scope)
        return _attempt(item, timing, ok=True, started=started, value=value, **extra)
    except TimeoutError:
        # The run's deadline (asyncio's), or an internal call past its own timeout.
        timing.mark_ended()
        by_run = run_left is not None and run_left * 1000 < provider.timeout_ms
        if not by_run:
            error, record = (
                f"deadline exceeded after {provider.timeout_ms:.0f} ms",
                {"error_kind": blame.TIMEOUT},
            )
        elif timing.sent_at is None:
            error, record = (
                "the run's deadline came before the call was sent",
                {"error_kind": blame.QUEUED},
            )
        else:
            error, record = "cancelled: the run's deadline", {"censored": RUN_DEADLINE}
    except ElicitationRequired:
        raise  # the node pauses the run for a human (see _work)
    except (CoordinatorClosed, AuditError, SendNotRecorded):
        # the run ends with it: nothing is known of the provider (Coordinator.run); with the
        # audit trail unwritable no further call goes out
        raise
    except (PrivacyRefused, BudgetExhausted, CircuitOpen, ClientRefused) as err:
        error, record = str(err), {"error_kind": blame.REFUSED, **_refusal(err)}
    except BackPressureError as err:
        error, record = str(err), {"error_kind": blame.QUEUED}
    except AnswerTooLarge as err:
        error, record = str(err), {"error_kind": blame.TOO_LARGE}
    except DeadlineExceededError as err:
        error, record = str(err), {"error_kind": blame.TIMEOUT}
    except RequestError as err:
        error, record = str(err), {"error_kind": blame.REQUEST}
        if err.by_tool:  # the tool ran and answered so (a write may have acted first)
            record["tool_error"] = True
    except ToolError as err:
        error, record = str(err), {"error_kind": blame.PROVIDER, "tool_error": True}
    except HybridMCPError as err:
        error, record = str(err), {"error_kind": blame.PROVIDER}
    except INTERNAL_ERRORS_OF_INPUT as err:
        kind = blame.REQUEST if provider.side == "internal" else blame.PROVIDER
        error, record = f"{type(err).__name__}: {err}", {"error_kind": kind}
    except Exception as err:  # a provider's own bug must not take the run down
        error, record = f"{type(err).__name__}: {err}", {"error_kind": blame.PROVIDER}
    timing.mark_ended()
    # A call that was sent is paid, answered or not (the gate's budget keeps its price)
    cost = provider.cost_per_call
    record |= _sampled(scope, provider)
    return _attempt(item, timing, ok=False, started=started, cost=cost, error=error, **record)


def _timing(res: Resources) -> CallTiming:
    """A new attempt's timeline, its provider time measured without the loop's lateness."""
    res.loop_lag.ensure_running()
    timing = CallTiming(loop_lag=res.loop_lag)
    kept = _TIMINGS.get()
    if kept is not None:
        kept.append(timing)
    return timing


@dataclass
class _Call:
    """An attempt in flight that is watched (hedge, straggler): its item, task and timeline."""

    item: WorkItem
    task: asyncio.Task[dict[str, Any]]
    timing: CallTiming
    started: float

    watch: HealthWatch
    scope: CallScope | None

    @classmethod
    def start(cls, item: WorkItem, res: Resources) -> _Call:
        timing = _timing(res)
        scope = _scope(item, res.registry.provider(item["provider"]))
        task = asyncio.create_task(_run(item, res, timing, scope))
        return cls(item, task, timing, res.clock(), res.watch, scope)

    def at_load(self, at_ms: float, *, tail: bool) -> float:
        """A lone call's timer (a hedge delay when ``tail``, else a slow threshold) at this
        call's load so far (:func:`hybridmcp.policy.hedging.at_load`)."""
        at = self.watch.tail_at_load if tail else self.watch.slow_at_load
        return at(self.item["provider"], at_ms, self.timing.in_flight)

    def shared_for_ms(self) -> float:
        """Past its slow threshold: how much longer its lateness counts as shared (the server
        answering the calls beside it: :meth:`HealthWatch.shared`); 0 once it is its own."""
        limit = self.watch.service_limit(self.item["provider"], self.timing.in_flight)
        return 0.0 if limit is None else max(0.0, limit - self.timing.service_ms())

    async def cancel(self, res: Resources, why: str, **extra: Any) -> dict[str, Any]:
        """Cancel it and record it as censored: the provider took longer than this, nothing
        more is known (its cost counts when it was sent)."""
        latency_ms = self.timing.latency_ms()
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task
        provider = res.registry.provider(self.item["provider"])
        attempt = _attempt(
            self.item,
            self.timing,
            ok=False,
            started=self.started,
            cost=provider.cost_per_call,
            error=f"cancelled: {why}",
            censored=why,
            **extra,
            **_sampled(self.scope, provider),
        )
        attempt["latency_ms"] = round(latency_ms, 3)
        if not attempt["sent"]:
            attempt |= {"censored": None, "error_kind": blame.QUEUED}
        return attempt


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
    budget = res.watch.hedges
    events.append(
        {
            "code": EventCode.HEDGE_STARTED,
            "request_id": item["request_id"],
            "round": item["round"],
            "reason": reason,
            "provider": item["provider"],
            "hedge_provider": alt["provider"],
            "after_ms": hedge["after_ms"],
            "elapsed_ms": round(primary.timing.since_sent_s() * 1000, 3),
            "budget": {"tokens": round(budget.tokens, 3), "spent": budget.spent},
        }
    )
    calls = {primary.task: (primary, "primary"), second.task: (second, "hedge")}
    results: dict[asyncio.Task[dict[str, Any]], dict[str, Any]] = {}
    pending: set[asyncio.Task[dict[str, Any]]] = set(calls)
    try:
        while pending and not any(a["ok"] for a in results.values()):
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            results |= {t: t.result() for t in done}
    except BaseException:  # a call paused for a human's input (or this task cancelled)
        for task in pending:
            task.cancel()
        raise
    attempts = []
    for task, (call, role) in calls.items():
        if task in results:
            attempts.append(results[task] | {"hedge": role})
            continue
        lost = await call.cancel(res, HEDGE_LOST, cancelled=HEDGE_LOST, hedge=role)
        slow_after_ms = (call.item.get("watch") or {}).get("slow_after_ms")
        if slow_after_ms is not None:
            slow_after_ms = round(call.at_load(slow_after_ms, tail=False), 3)
        if slow_after_ms is not None and lost["latency_ms"] > slow_after_ms:
            lost["slow_after_ms"] = slow_after_ms
            if res.watch.shared(lost["provider"], lost.get("service_ms"), lost.get("in_flight")):
                lost[blame.LATENESS_SHARED] = True
            else:
                _record_slow(res, call.item)
        elif role == "primary" and reason == SUSPECT and lost["sent"]:
            # Past its tail again while already suspect: more evidence for the breaker.
            _record_slow(res, call.item)
        attempts.append(lost)
    return attempts


async def _finished_within(call: _Call, at_ms: float, *, tail: bool = False) -> bool:
    """Wait until the call is done or ``at_ms`` after it was sent; is it done? Time in the
    queue does not count: a call is judged only once its provider has it, and ``at_ms`` (a
    lone call's hedge delay when ``tail``, else its slow threshold) is taken at the call's load
    (:meth:`_Call.at_load`)."""
    if call.timing.sent_at is None:
        sent = asyncio.ensure_future(call.timing.sent.wait())
        try:
            await asyncio.wait({call.task, sent}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sent.cancel()
        if call.task.done():
            return True
    while True:  # the provider's time, less the loop's lateness: wait until it reaches at_ms
        # (at the call's load so far: calls sent beside it while it waits move the limit on;
        # past a slow threshold, while the server keeps answering the others, it waits on)
        remaining = call.at_load(at_ms, tail=tail) / 1000 - call.timing.since_sent_s()
        if remaining <= 0 and not tail:
            remaining = call.shared_for_ms() / 1000
        if remaining <= 0:
            return call.task.done()
        done, _ = await asyncio.wait({call.task}, timeout=remaining)
        if done:
            return True


async def _hedged(
    call: _Call,
    hedge: dict[str, Any],
    slow_after_ms: float | None,
    res: Resources,
    events: list[dict[str, Any]],
) -> list[dict[str, Any]] | None:
    """Past the tail estimate, hedge if the budget allows; past the degradation threshold, move
    the work to the other side at once (the breaker bounds how often that can happen)."""
    suspect_at = res.watch.hedge_delay(call.item["provider"], hedge["after_ms"])
    if suspect_at is not None:
        if await _finished_within(call, suspect_at, tail=True):
            return None
        return await _race(call, {**hedge, "after_ms": suspect_at}, res, events, SUSPECT)
    if await _finished_within(call, hedge["after_ms"], tail=True):
        return None
    if res.watch.hedges.spend():
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


def _judge(
    res: Resources, primary: dict[str, Any], threshold: float | None, plan: dict[str, Any]
) -> None:
    """Fold the primary attempt into the provider's live health (provider time only)."""
    if not primary["sent"]:
        return
    if threshold is not None:  # at the call's load
        threshold = res.watch.slow_at_load(primary["provider"], threshold, primary.get("in_flight"))
    if primary.get("censored") and (threshold is None or primary["latency_ms"] <= threshold):
        return  # cut before its threshold: nothing known of its health
    if threshold is not None:
        primary["slow_after_ms"] = round(threshold, 3)
        late = primary["ok"] and primary["latency_ms"] > threshold
        if late and res.watch.shared(
            primary["provider"], primary.get("service_ms"), primary.get("in_flight")
        ):
            primary[blame.LATENESS_SHARED] = True
    hedge = plan.get("hedge")
    res.watch.remember(
        primary["provider"],
        latency_ms=primary["latency_ms"],
        ok=primary["ok"],
        threshold_ms=threshold,
        planned_ms=plan.get("slow_after_ms"),
        hedge_after_ms=hedge["after_ms"] if hedge else None,
        in_flight=primary.get("in_flight"),
        service_ms=primary.get("service_ms"),
    )


async def _serve(item: WorkItem, res: Resources) -> dict[str, Any]:
    plan = item.get("watch") or {}  # read only
    planned = plan.get("slow_after_ms")
    threshold = res.watch.threshold(item["provider"], planned)
    if threshold != planned:  # the call is watched and judged by the threshold as it is now
        item = WorkItem(**{**item, "watch": {**plan, "slow_after_ms": threshold}})
    events: list[dict[str, Any]] = []
    key = (item["run_id"], item["request_id"], item["round"])
    peer_side, hedge = plan.get("peer_side"), plan.get("hedge")
    cut_by = None if plan.get("kept") else peer_side  # a side a conflict would keep: waited for
    pairing = res.pairs.pair(key) if peer_side else contextlib.nullcontext()
    with pairing:
        if hedge or (cut_by and threshold is not None):
            attempts = await _watched(item, res, hedge, threshold, key, cut_by, events)
        else:  # nothing to watch the call for: it runs in this task
            attempts = [await _run(item, res, _timing(res))]
        if peer_side and attempts[0]["ok"]:
            res.pairs.answer(key, item["side"]).set()
    primary = next(a for a in attempts if a["provider"] == item["provider"])
    _judge(res, primary, threshold, plan)
    events += [
        {
            "code": EventCode.BUDGET_EXHAUSTED,
            "stage": "gate",
            "request_id": a["request_id"],
            "provider": a["provider"],
            "round": a["round"],
            "reason": a["error"],
        }
        for a in attempts
        if a.get("budget_exhausted")
    ]
    return _update(attempts, events + _breaker_events(res, attempts))


async def _watched(
    item: WorkItem,
    res: Resources,
    hedge: dict[str, Any] | None,
    threshold: float | None,
    key: PairKey,
    peer_side: str | None,
    events: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """The call in a task of its own, watched for a hedge or as a straggler."""
    call = _Call.start(item, res)
    try:
        attempts: list[dict[str, Any]] | None = None
        if hedge:
            res.watch.hedges.earn()
            attempts = await _hedged(call, hedge, threshold, res, events)
        elif peer_side and threshold is not None:
            if await _straggle(call, threshold, res.pairs.answer(key, peer_side)):
                why = f"{STRAGGLER}: past {threshold:.0f} ms, the other side answered"
                attempts = [await call.cancel(res, why, cancelled=STRAGGLER)]
                if attempts[0]["sent"]:
                    _record_slow(res, item)
        if attempts is None:
            attempts = [await call.task]
        return attempts
    finally:
        if not call.task.done():
            call.task.cancel()


def _budget(res: Resources, item: WorkItem) -> Budget:
    """The spending of the item's run's round (the item has a budget)."""
    return res.gate.run_budget(
        item["run_id"], item["round"], item["budget"] or 0.0, item.get("spent", 0.0)
    )


def _paid(res: Resources, item: WorkItem, attempts: list[dict[str, Any]]) -> None:
    """Count in the round's spending the attempts checkpointed before the run was resumed
    (by another process, or by this one before it forgot the round): each once by its key,
    none the round has charged itself."""
    budget = _budget(res, item)
    for attempt in attempts:
        cost = spent_by([attempt])
        if cost:
            budget.note(attempt["idempotency_key"], cost)


def _update(attempts: list[dict[str, Any]], events: list[dict[str, Any]]) -> dict[str, Any]:
    """A worker's state update. No empty ``events`` write: LangGraph rescans the step's pending
    writes for each one a task saves, so every write costs in proportion to the fan-out."""
    return {"attempts": attempts, "events": events} if events else {"attempts": attempts}


def _record_slow(res: Resources, item: WorkItem) -> None:
    """A call cut off as degraded never reaches the gate's outcome: count it as slow here."""
    if item["side"] == "external":
        res.gate.breaker.record(item["provider"], True, res.clock(), slow=True)


def _breaker_events(res: Resources, attempts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    providers = {a["provider"] for a in attempts if a["side"] == "external"}
    take = res.gate.breaker.take_transitions
    return [t.to_event() for p in sorted(providers) for t in take(p)]


def dispatch_key(item: WorkItem) -> str:
    """A write's key in the store: its :func:`~hybridmcp.state.idempotency_key` (a JSON array
    of its run, request, provider and round), computed afresh: a call of a run checkpointed by
    an earlier version carries that version's colon-joined key."""
    return idempotency_key(item["run_id"], item["request_id"], item["provider"], item["round"])


def call_digest(item: WorkItem) -> str:
    """What a write's dispatch record knows its call by beside its key: the digest of its
    arguments. A run forked from an earlier checkpoint of its thread (time travel, an input
    changed with ``update_state``) gives its calls the keys of the run it was forked from; a
    record under such a key made with other arguments is another call's (:func:`_once`)."""
    text = json.dumps(item["args"], sort_keys=True, ensure_ascii=False, default=repr)
    return digest_id(text)  # as the server is told the call's key


def _colon_key(item: WorkItem) -> str:
    return colon_key(item["run_id"], item["request_id"], item["provider"], item["round"])


def _earlier_form(prior: Item | None, item: WorkItem) -> Item | None:
    """A record kept under the colon-joined key (how a dispatch was recorded before
    :func:`dispatch_key`): this call's when its attempt says so; one still without an attempt
    is taken as this call's (a write in flight when the run stopped is not repeated)."""
    if prior is None:
        return None
    attempt = prior.value.get("attempt")
    if attempt is None:
        return prior
    mine = (item["request_id"], item["provider"], item["round"])
    return prior if (attempt["request_id"], attempt["provider"], attempt["round"]) == mine else None


async def _claim(
    item: WorkItem, res: Resources, store: BaseStore, journal: CallJournal
) -> Item | None:
    """Take the write's dispatch, or find it taken: the record of an earlier dispatch of the
    same call (a resumed run; another process running the same thread at the same time), or
    None once this run has recorded its own. Read and recorded under the lock every process
    on the store respects (:func:`hybridmcp.stats_store.stats_lock`), so two processes never
    both find it free. A record left by a thread whose checkpoints have since been deleted (a
    thread deleted and used again, a run rolled back) is not this thread's: its checkpoint is
    gone, and the call is made."""
    key = dispatch_key(item)
    refresh = (store.ttl_config or {}).get("refresh_on_read", True)  # as ``aget`` does
    async with stats_lock(store, [(DISPATCH_LOCK, key)], res.learn_lock, res.store_files):
        found = await store.abatch(
            [GetOp(DISPATCHED, key, refresh), GetOp(DISPATCHED, _colon_key(item), refresh)]
        )
        prior = found[0] if isinstance(found[0], Item) else None
        prior = prior or _earlier_form(found[1] if isinstance(found[1], Item) else None, item)
        if prior is not None and not await journal.gone(prior.value.get("checkpoint")):
            return prior
        dispatched = {"state": "dispatched", "at": res.clock(), "call": call_digest(item)}
        await _record_dispatch(store, key, journal, dispatched)
    return None


async def _record_dispatch(
    store: BaseStore, key: str, journal: CallJournal, record: dict[str, Any]
) -> None:
    """A write's dispatch record, with the checkpoint it was made from (:func:`_claim`)."""
    where = journal.where()
    await store.aput(DISPATCHED, key, record | ({"checkpoint": where} if where else {}))


async def _once(
    item: WorkItem, res: Resources, store: BaseStore, journal: CallJournal
) -> dict[str, Any]:
    """A write runs once, even across a resume (invariant 9): its dispatch is recorded in the
    store before the call (:func:`_claim`), its attempt after. A resumed run that finds the
    dispatch without its attempt does not call again: the outcome is unknown (the server may
    have written)."""
    key = dispatch_key(item)
    claim = asyncio.ensure_future(_claim(item, res, store, journal))
    try:
        prior = await asyncio.shield(claim)
    except asyncio.CancelledError:
        # Cut while taking the dispatch (its record may be written, its lock still being let
        # go): once the claim has ended, a dispatch it took was never sent, so it is
        # forgotten and the resumed run sends the write.
        with contextlib.suppress(Exception):
            if await claim is None:
                await _forget_dispatch(store, key)
        raise
    if prior is not None and prior.value.get("call") not in (None, call_digest(item)):
        return _update([_another_call(item, res)], [])
    if prior is not None and prior.value.get("attempt"):
        replayed = prior.value["attempt"] | {"replayed": True}
        if item.get("budget") is not None:
            _paid(res, item, [replayed])
        return _update([replayed], [])
    if prior is not None:
        timing = CallTiming()
        error = (
            f"{OUTCOME_UNKNOWN}: an earlier run of this thread dispatched this write and "
            "stopped before its outcome was recorded, or another process runs it now; not "
            "repeated (write effect)"
        )
        attempt = _attempt(item, timing, ok=False, started=res.clock(), cost=0.0, error=error)
        # Our process stopped, not the provider: no failure of its own (invariant 7), so no
        # degradation is reported against it; the request still ends outcome_unknown. It may
        # have been sent: counted as paid, so that the budget is never passed.
        price = res.registry.provider(item["provider"]).cost_per_call
        attempt |= {"sent": True, "replayed": True, "censored": RUN_STOPPED, "cost": price}
        if item.get("budget") is not None:
            _paid(res, item, [attempt])
        return _update([attempt], [])
    timings: list[CallTiming] = []
    token = _TIMINGS.set(timings)
    try:
        update = await _serve(item, res)
    except ElicitationRequired:
        # The server answered after its question was cancelled: the outcome is known, and the
        # call is made again once a human has answered.
        await store.adelete(DISPATCHED, key)
        raise
    except (asyncio.CancelledError, CoordinatorClosed, AuditError):
        # The run ended (cancelled, its coordinator closed, its audit trail unwritable) with
        # the write still queued: it was never sent, so the resumed run sends it. A write sent
        # stays unknown.
        if not any(t.sent_at is not None for t in timings):
            await _forget_dispatch(store, key)
        raise
    finally:
        _TIMINGS.reset(token)
    primary = next(a for a in update["attempts"] if a["provider"] == item["provider"])
    done = {"state": "done", "attempt": primary, "call": call_digest(item)}
    await _record_dispatch(store, key, journal, done)
    return update


def _another_call(item: WorkItem, res: Resources) -> dict[str, Any]:
    """The attempt of a write whose key an earlier call with other arguments has taken: the
    run was forked from an earlier checkpoint of its thread with its input changed. Not sent
    (the server would take the key for a repeat), and the request's own error: not moved."""
    error = (
        f"write not made: its idempotency key {item['idempotency_key']} was taken by an "
        "earlier call of this thread with other arguments (a run forked from an earlier "
        "checkpoint, its input changed); run the changed task on a new thread"
    )
    attempt = _attempt(item, CallTiming(), ok=False, started=res.clock(), cost=0.0, error=error)
    return attempt | {"sent": False, "error_kind": blame.REQUEST}


async def _forget_dispatch(store: BaseStore, key: str) -> None:
    """Forget a write's dispatch that was never sent, even when the run's other calls cancel
    this one meanwhile (the run is ending); a dispatch that cannot be forgotten stays unknown,
    never sent twice."""
    forget = asyncio.ensure_future(store.adelete(DISPATCHED, key))
    try:
        await asyncio.shield(forget)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await forget
        raise
    except Exception:
        return


async def _work(
    item: WorkItem,
    res: Resources,
    store: BaseStore,
    journal: CallJournal,
    answers: Sequence[Any] = (),
) -> dict[str, Any]:
    """One attempt; ``answers``: a person's answers to the questions its server asked so far
    (elicitation ``ask``, see :func:`_batch`)."""
    token = _ANSWERS.set(tuple(answers))
    try:
        if res.registry.provider(item["provider"]).effect == WRITE:
            return await _once(item, res, store, journal)
        return await _serve(item, res)
    finally:
        _ANSWERS.reset(token)


def _question(item: WorkItem, question: dict[str, Any], order: int) -> dict[str, Any]:
    """What the person sees: the server's question, and the request it came from."""
    return {
        **question,
        "request_id": item["request_id"],
        "skill": item["skill"],
        "provider": item["provider"],
        "question": "Answer with an object of the requested fields, or 'decline' or 'cancel'.",
        "order": order,
    }


async def _asked(store: BaseStore, items: Sequence[WorkItem]) -> dict[str, list[dict[str, Any]]]:
    """The questions servers asked a person during the batch's calls so far, by call (one
    read of the store for the whole batch)."""
    keys = [item["idempotency_key"] for item in items]
    refresh = (store.ttl_config or {}).get("refresh_on_read", True)  # as ``aget`` does
    kept = await store.abatch([GetOp(ASKED, key, refresh) for key in keys])
    return {
        key: list(item.value["questions"])
        for key, item in zip(keys, kept, strict=True)
        if isinstance(item, Item)
    }


def _answer(questions: dict[str, list[dict[str, Any]]]) -> dict[str, list[Any]]:
    """Each question put to the person with ``interrupt()``, in the order they were asked (so
    a resumed node meets them in the order LangGraph kept their answers); the first without
    an answer pauses the run."""
    answers: dict[str, list[Any]] = {key: [] for key in questions}
    ordered = sorted(
        ((q["order"], key, q) for key, qs in questions.items() for q in qs),
        key=lambda t: (t[0], t[1]),
    )
    for _order, key, question in ordered:
        answers[key].append(interrupt(question))
    return answers


async def _sends(
    store: BaseStore, journal: CallJournal, res: Resources, items: Sequence[WorkItem]
) -> Sends:
    """The batch's priced sends: recorded only on a durable run with a budget, for requests a
    priced read may answer (their provider's or a hedge's); with the sends an earlier run
    lost."""
    if not items or journal.saver is None or items[0].get("budget") is None:
        return Sends()
    provider = res.registry.provider
    priced: dict[RequestRound, str] = {}
    for item in items:
        hedge = (item.get("watch") or {}).get("hedge")
        names = [item["provider"], *([hedge["provider"]] if hedge else [])]
        if any(_priced_read(provider(name)) for name in names):
            priced[(item["request_id"], item["round"])] = item["idempotency_key"]
    return await Sends.open(
        store, items[0]["run_id"], priced, lambda request: priced[request] in journal.done
    )


def _with_lost(update: dict[str, Any], item: WorkItem, lost: tuple[int, float]) -> dict[str, Any]:
    """The request's update with the sends an earlier, killed run lost counted in its
    attempt's cost (:mod:`hybridmcp.sends`)."""
    count, cost = lost
    if not count:
        return update
    attempts = list(update["attempts"])
    at = next(i for i, a in enumerate(attempts) if a["provider"] == item["provider"])
    mine = attempts[at]
    paid = money(float(mine.get("cost") or 0.0) + cost)
    attempts[at] = mine | {"cost": paid, "lost_sends": count}
    return {**update, "attempts": attempts}


def batches(pending: list[WorkItem]) -> list[tuple[str, Batch]]:
    """The round's work as (side, batch) pairs: per side, in order, at most ``BATCH_SIZE``
    attempts a batch."""
    by_side: dict[str, list[WorkItem]] = {}
    for item in pending:
        by_side.setdefault(item["side"], []).append(item)
    return [
        (side, Batch(items=items[i : i + BATCH_SIZE]))
        for side, items in by_side.items()
        for i in range(0, len(items), BATCH_SIZE)
    ]


async def _batch(batch: Batch, runtime: Runtime[Context]) -> dict[str, Any]:
    """A batch's attempts, with the run's progress writer taken once for all its calls."""
    token = _WRITER.set(current_writer())
    try:
        return await _calls(batch, runtime)
    finally:
        _WRITER.reset(token)


async def _calls(batch: Batch, runtime: Runtime[Context]) -> dict[str, Any]:
    """Make a batch's attempts concurrently (one at a time with
    ``coordination_config.parallel_execution`` off). Each call is checkpointed as it finishes
    (:mod:`hybridmcp.journal`), so a resumed run replays the calls that finished instead of
    making them again; progress is reported per call."""
    res = await resources_for(runtime.context)
    store = runtime.store or res.store
    journal = await CallJournal.open(runtime.execution_info)
    items = batch["items"]
    questions = await _asked(store, items)
    answers = _answer(questions)  # a resumed run: the person's answers so far
    sends = await _sends(store, journal, res, items)
    new: list[str] = []

    async def one(item: WorkItem) -> dict[str, Any] | None:
        key = item["idempotency_key"]
        update = journal.done.get(key)
        if update is not None and item.get("budget") is not None:
            _paid(res, item, update["attempts"])  # made before the run was resumed
        if update is None:
            attempt_started(item)
            request = (item["request_id"], item["round"])
            lost = sends.lost_for(request)
            if lost[1] and item.get("budget") is not None:  # paid before anything is sent
                _budget(res, item).note(f"{key}:lost", lost[1])
            try:
                update = await _work(item, res, store, journal, answers.get(key, ()))
            except ElicitationRequired as need:  # asked at the end, in the order asked
                asked = questions.setdefault(key, [])
                asked.append(_question(item, need.question, time.time_ns()))
                await store.aput(ASKED, key, {"questions": asked})
                new.append(key)
                return None
            if key in questions:
                await store.adelete(ASKED, key)
            update = _with_lost(update, item, lost)
            await journal.record(key, update)
            sends.settled(request)
        attempt_finished(update)
        return update

    token = _SENDS.set(sends)
    try:
        updates = await _each(one, items, res.config.coordination_config.parallel_execution)
    finally:
        _SENDS.reset(token)
    await sends.forget()
    if new:  # the calls that finished are journaled; the run pauses for the person
        _answer({key: [questions[key][-1]] for key in new})
    done = [u for u in updates if u is not None]
    attempts = [a for u in done for a in u["attempts"]]
    return _update(attempts, [e for u in done for e in u.get("events", ())])


async def _each(
    one: Callable[[WorkItem], Coroutine[Any, Any, dict[str, Any] | None]],
    items: Sequence[WorkItem],
    parallel: bool,
) -> list[dict[str, Any] | None]:
    """``one`` of each item: concurrently, or one at a time (``parallel`` off)."""
    with apart_from_step():  # what outlives a call (its timers) must not keep the run's state
        if len(items) == 1 or not parallel:
            return [await one(item) for item in items]  # one at a time
        try:  # a call that fails the batch (its store or journal) cancels the others
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(item)) for item in items]
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None
        return [task.result() for task in tasks]


async def internal(batch: Batch, runtime: Runtime[Context]) -> dict[str, Any]:
    return await _batch(batch, runtime)


async def external(batch: Batch, runtime: Runtime[Context]) -> dict[str, Any]:
    return await _batch(batch, runtime)

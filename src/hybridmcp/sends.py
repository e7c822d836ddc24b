"""Priced calls a killed run sent: paid, and counted when the run resumes.

A read is safe to send again, so a run resumed after its process was killed makes again the
calls that were in flight (:mod:`hybridmcp.journal` replays only those that finished). Each
of those was sent twice and is paid twice; counting only the attempts the checkpoint holds, a
resumed run would not see the first payment, and could pass its budget by the price of every
call in flight at the kill.

So on a durable run (one with a checkpointer) with a budget, a priced call that does not
write is recorded in the store just before it is sent (an external call just before it is
written to its server, an internal one just before its function is started), under its run
and its :func:`~hybridmcp.nodes.execute.dispatch_key`, and the record is deleted once the call's
attempt is checkpointed (the batch's records in one write, once its calls are done). A record
costs a store write, so a run without a budget, which nothing would stop, records none.

A record the resumed batch finds without its request's attempt is a send whose answer was
lost: its price goes into the round's budget before anything is sent, and into the cost of
the request's attempt (with ``lost_sends``, how many), so the budget holds across a kill and
the reported spending is what was paid. A call's record is written when its session slot is
taken, not while it waits for one: a queued call cut by the kill was never sent and costs
nothing. An internal plain function is recorded before it waits for a worker thread: one still
queued at the kill is counted though it never ran (the budget errs on the side of holding).
An internal provider's price is what its call costs as an external's is (an in-house agent
paying a model, a metered service behind a function), so it is counted the same way. A
store that cannot take the record stops the run before the call is sent
(:class:`~hybridmcp.errors.SendNotRecorded`), as a write's dispatch does.

Writes are not repeated on resume (their dispatch record, ``nodes.execute._once``); one whose
outcome is unknown is counted as paid there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from langgraph.store.base import BaseStore, PutOp

from hybridmcp.errors import SendNotRecorded
from hybridmcp.policy.cost import whole_count

SENDING = ("hybridmcp", "sending")
"""Store namespace prefix of priced sends not yet checkpointed: ``(*SENDING, run_id)``."""
SEARCH_PAGE = 1000
"""Records read at a time when a batch looks for its lost sends."""

RequestRound = tuple[str, int]
"""A request of a round: each attempt for it (its provider's, a hedge's) shares it."""


@dataclass
class Sends:
    """The priced sends of one batch of a run: those an earlier, killed run of the batch left
    unanswered (``lost``), and those this run records as it sends (``recorded``)."""

    store: BaseStore | None = None
    """None: nothing is recorded (no checkpointer, or nothing priced in the batch)."""
    run_id: str = ""
    lost: dict[str, dict[str, Any]] = field(default_factory=dict)
    """By dispatch key: the record of each send no checkpointed attempt answers."""
    recorded: dict[RequestRound, set[str]] = field(default_factory=dict)
    """By request and round: the dispatch keys recorded (or found) for it."""
    done: set[str] = field(default_factory=set)
    """Keys of records whose request's attempt is checkpointed, to delete."""

    @classmethod
    async def open(
        cls,
        store: BaseStore,
        run_id: str,
        priced: Iterable[RequestRound],
        journaled: Callable[[RequestRound], bool],
    ) -> Sends:
        """The batch's sends, for the requests of ``priced`` (those with a priced external
        attempt, on a durable run); ``journaled``: is the request's attempt checkpointed?"""
        wanted = set(priced)
        if not wanted:
            return cls()
        sends = cls(store, run_id)
        offset = 0
        while True:
            page = await store.asearch((*SENDING, run_id), limit=SEARCH_PAGE, offset=offset)
            for item in page:
                value = item.value if isinstance(item.value, Mapping) else {}
                mine = (value.get("request_id"), value.get("round"))
                if mine in wanted and journaled(mine):  # answered: left to delete
                    sends.done.add(item.key)
                elif mine in wanted:
                    sends.recorded.setdefault(mine, set()).add(item.key)
                    sends.lost[item.key] = dict(value)
            if len(page) < SEARCH_PAGE:
                return sends
            offset += SEARCH_PAGE

    @property
    def active(self) -> bool:
        return self.store is not None

    def lost_for(self, request: RequestRound) -> tuple[int, float]:
        """How many sends of the request an earlier run lost, and what they cost."""
        count, cost = 0, 0.0
        for key in self.recorded.get(request, ()):
            lost = self.lost.get(key)
            if lost is not None:
                sends = whole_count(lost.get("sends"))
                count += sends
                cost += sends * _price(lost.get("price"))
        return count, cost

    def before_send(
        self, key: str, request: RequestRound, provider: str, price: float
    ) -> Callable[[], Awaitable[None]]:
        """What the session pool awaits once the call has its slot, just before writing it:
        the send recorded (with the sends of it an earlier run lost)."""

        async def record() -> None:
            assert self.store is not None
            earlier = whole_count(self.lost.get(key, {}).get("sends"))
            value = {
                "request_id": request[0],
                "round": request[1],
                "provider": provider,
                "price": price,
                "sends": earlier + 1,
            }
            try:
                await self.store.aput((*SENDING, self.run_id), key, value)
            except Exception as err:
                raise SendNotRecorded(
                    f"{provider} was not called: its send could not be recorded in the store "
                    f"({type(err).__name__}: {err}), and a priced call is sent only once a "
                    "resumed run can count it"
                ) from err
            self.recorded.setdefault(request, set()).add(key)

        return record

    def settled(self, request: RequestRound) -> None:
        """The request's attempt is checkpointed: its records are no longer needed (deleted
        with the batch's others, :meth:`forget`; until then a resumed run reads them as
        answered, its attempt being checkpointed)."""
        self.done.update(self.recorded.pop(request, set()))

    async def forget(self) -> None:
        """Delete the records of the batch's checkpointed requests, in one write."""
        if self.store is None or not self.done:
            return
        namespace = (*SENDING, self.run_id)
        await self.store.abatch([PutOp(namespace, key, None) for key in sorted(self.done)])
        self.done.clear()


def _price(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    return float(value) if value > 0 and value == value and value != float("inf") else 0.0

"""The runtime context: live objects a run needs, kept out of the checkpointed state.

In-process users open :class:`Resources` themselves (or use :class:`hybridmcp.Coordinator`)
and pass them in ``Context(resources=...)``. On the LangGraph server, where the context comes
from JSON, nodes open resources lazily once per process from ``Context.config_path`` (or the
``HYBRIDMCP_CONFIG`` environment variable, or the embedded default).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hybridmcp.audit import AuditLog, MemoryAudit, hand_over, load_key, trail_id, verify
from hybridmcp.capabilities.mcp_pool import SessionPool
from hybridmcp.capabilities.workers import Workers
from hybridmcp.config import CONFIG_ENV, HybridConfig, load_config
from hybridmcp.errors import AuditError, ConfigError, CoordinatorClosed
from hybridmcp.oauth import OAuthSessions, TokenStore
from hybridmcp.persistence import head_anchor, tokens_path

# What the resources are built of beyond the MCP pool (the gate, the registry, the policies,
# LangGraph's store) is imported where it is used: starting the servers (:func:`opening`)
# then waits only for the pool's own imports, and the rest loads while the processes start.
if TYPE_CHECKING:
    from langgraph.store.base import BaseStore

    from hybridmcp.capabilities.gate import AuditSink, Gate
    from hybridmcp.capabilities.registry import Registry
    from hybridmcp.stats_store import StoreFiles


CLOSE_GRACE_S = 5.0
"""How long closing the resources waits for the runs in flight to end (on the closed pool's
error, which ends an external call at once; an internal call may run on past it)."""


@dataclass
class Context:
    """Runtime configuration of one run (LangGraph ``context_schema``)."""

    config_path: str | None = None
    """Configuration file to load when no live resources are given (server mode)."""
    resources: Any = field(default=None, repr=False)
    """Live :class:`Resources`; never serialized."""
    validated: bool = False
    """The requests were checked against the registry of ``resources`` before the run (as
    :class:`hybridmcp.Coordinator` does): analyze does not check them again."""


def open_audit(config: HybridConfig) -> AuditSink:
    """The audit trail of the configuration: a MAC-chained file whose head is anchored in the
    run database, or records in memory. A trail that does not verify is refused (nothing is
    written to it), so a cut or rewritten trail is never continued and hidden."""
    settings = config.audit
    if settings.path is None:
        return MemoryAudit()
    path = Path(settings.path).expanduser()
    if path.is_dir():
        raise ConfigError(f"audit.path: {str(path)!r} is a directory; give the trail's file name")
    secret = settings.key.get_secret_value() if settings.key is not None else None
    try:
        key = load_key(settings.key_path(str(path)), secret=secret)
    except OSError as err:  # a part of the path that is a file, a directory it may not write
        why = (
            f"{err.filename} is a file, not a directory"
            if isinstance(err, FileExistsError | NotADirectoryError)
            else f"{err.strerror} ({err.filename})"
        )
        raise ConfigError(
            f"audit.path: cannot keep the trail's key beside {str(path)!r}: {why}"
        ) from None
    anchor = head_anchor(settings.run_db, settings.head_db, durable=settings.fsync)
    # a head database that cannot be reached fails here, not mid-run
    anchored = anchor.load(trail_id(path)) if anchor is not None else None
    if anchored is not None and not path.exists():
        raise AuditError(
            f"audit.path: {str(path)!r} is missing, but a trail of seq {anchored.seq} was "
            "written there (its head is anchored): it was deleted or moved, so nothing will be "
            "appended in its place. Find it and run `hybridmcp audit verify` on it, or give "
            "the run a new audit file."
        )
    if path.exists():
        report = verify(path, key=key, anchor=anchor)
        if report.keyed is False:
            raise AuditError(
                f"audit.path: {str(path)!r} is an unkeyed trail (written before MAC chains); "
                "keyed records cannot continue it. Keep it (`hybridmcp audit verify` still "
                "reads it) and give the run a new audit file."
            )
        if not report.ok:
            more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
            raise AuditError(
                f"audit.path: {str(path)!r} does not verify, so nothing will be appended to it: "
                f"{report.problems[0]}{more}. Run `hybridmcp audit verify {path}`, keep the file "
                "as evidence, and give the run a new audit file."
            )
    try:  # fail at open, not at the first external call
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as err:
        raise ConfigError(f"audit.path: cannot append to {str(path)!r}: {err.strerror}") from None
    return AuditLog(path, key=key, anchor=anchor, fsync=settings.fsync)


def _check_privacy_skills(config: HybridConfig, registry: Registry) -> None:
    unknown = sorted(set(config.privacy.skills) - set(registry.skills))
    if unknown:
        from hybridmcp.capabilities.registry import unknown_skills  # loaded with the registry

        raise ConfigError(f"privacy.skills: {unknown_skills(unknown, registry.skills)}")


def freeze_startup_objects() -> None:
    """Move what exists once the first resources are open (imported modules, configuration,
    registry, sessions: long-lived) out of the cyclic garbage collector's reach, so that its
    full passes during a run scan only what runs create (at 1,000 requests, they took a third
    of the run's time). Once per process, and never when anything is frozen already (the
    application froze its own heap, or an earlier open did). Reference counting still frees
    frozen objects; only cycles among them are kept."""
    if gc.get_freeze_count() == 0:
        gc.freeze()


OLDER_THRESHOLDS = (700, 10, 10)
"""The cyclic collector's thresholds by default on Python 3.11 and 3.12."""
YOUNG_THRESHOLD = 2000
"""Python 3.13's default threshold of the young generation (net allocations between passes)."""


def tune_collector() -> None:
    """On Python 3.11 and 3.12, pass over the young generation every 2,000 net allocations, as
    Python 3.13 does by default, not every 700. A run holds each request's state and calls in
    flight until they end; every young pass promotes them, and every 70,000 allocations a full
    pass goes over all a run holds: four a run at 5,000 requests, which made a request cost
    more the more requests a run had. Only when the process still has the older defaults (an
    application that chose its own keeps them)."""
    if gc.get_threshold() == OLDER_THRESHOLDS:
        gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS[1:])


class Resources:
    """Configuration, registry, MCP session pool, gate and a fallback store, opened together."""

    def __init__(
        self,
        config: HybridConfig,
        pool: SessionPool,
        registry: Registry,
        gate: Gate,
        store: BaseStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from langgraph.store.memory import InMemoryStore

        from hybridmcp.capabilities.pairs import HybridPairs
        from hybridmcp.capabilities.timing import LoopLag
        from hybridmcp.policy.hedging import HealthWatch

        self.config = config
        self.pool = pool
        self.registry = registry
        self.gate = gate
        self.store: BaseStore = store or InMemoryStore()
        self.clock = clock
        self.watch = HealthWatch.from_config(config.resilience)
        """What the workers remember of each provider between calls (hedging, thresholds)."""
        self.pairs = HybridPairs()
        """The live answers of hybrid requests' two sides (stragglers)."""
        self.loop_lag = LoopLag()
        """How late the event loop runs: left out of the providers' measured latency."""
        self.learn_lock = asyncio.Lock()
        """Orders this process's updates of the learned statistics (``stats_store.stats_lock``)."""
        self.store_files: StoreFiles = weakref.WeakKeyDictionary()
        """Each SQLite store's file, asked once (``stats_store.stats_lock``)."""
        self.old_runs_forgotten: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        """The UTC day each store last had its old runs' records deleted
        (``stats_store.forget_old_runs``): once a day, not at every learn."""
        self._lms: dict[str, Any] | None = None
        self._provider_index: tuple[Any, dict[str, str], dict[str, str]] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        """The event loop the resources were opened on (their MCP sessions live there)."""
        self.workers = Workers()
        """The threads internal plain functions run in: a function past its deadline is
        abandoned there, never waited for at the end of a run or of the process."""
        from hybridmcp.thread_lock import ThreadLocks

        self.thread_locks = ThreadLocks()
        """The threads running now, here and (through the database) in other processes."""
        self.closed = False
        """Closed (or closing): no run may start on them (:meth:`running`)."""
        self._running: set[asyncio.Event] = set()

    @property
    def lms(self) -> dict[str, Any]:
        """The configured ``dspy.BaseLM`` per role (``coordinator``, ``arbitrator``,
        ``synchronizer``, ``planner``), built on first use from ``llm_config``.

        Empty when ``llm_config`` names no model (the default): every step then takes its
        deterministic path, and dspy is not even imported.
        """
        if self._lms is None:
            llm = self.config.llm_config
            if any(v is not None for k, v in llm if k.endswith("_model")):
                from hybridmcp.prompts.models import make_lms

                self._lms = make_lms(llm)
            else:
                self._lms = {}
        return self._lms

    @lms.setter
    def lms(self, value: dict[str, Any]) -> None:
        self._lms = dict(value)

    @classmethod
    async def open(
        cls,
        config: HybridConfig,
        *,
        gate_factory: Callable[[SessionPool], Gate] | None = None,
        store: BaseStore | None = None,
    ) -> Resources:
        resources = await cls._open(config, gate_factory=gate_factory, store=store)
        freeze_startup_objects()
        tune_collector()
        return resources

    @classmethod
    async def _open(
        cls,
        config: HybridConfig,
        *,
        gate_factory: Callable[[SessionPool], Gate] | None = None,
        store: BaseStore | None = None,
    ) -> Resources:
        # The audit trail (and its anchored head) is checked before any server starts: a bad
        # trail or head file is refused with nothing started and nothing written. It takes the
        # records of what the servers are answered from their start (roots asked at once).
        audit = await asyncio.to_thread(open_audit, config)
        oauth = OAuthSessions(TokenStore(tokens_path(config.audit.run_db)))
        try:
            pool = SessionPool(config.mcpServers, config.resilience.pool, oauth=oauth)
            pool.hooks.record = partial(hand_over, audit)
            await pool.open()
        except BaseException:
            await _close_audit(audit)
            raise
        try:
            from hybridmcp.capabilities.registry import build_registry

            tools = {name: s.tools for name, s in pool.statuses().items() if s.up}
            # Reads files and imports the internal providers' modules: off the event loop.
            registry = await asyncio.to_thread(build_registry, config, tools)
            registry.unavailable = {
                name: s.error or "not started" for name, s in pool.statuses().items() if not s.up
            }
            _check_privacy_skills(config, registry)
        except BaseException:
            await pool.close()
            await _close_audit(audit)
            raise
        from hybridmcp.capabilities.client_features import make_sampler
        from hybridmcp.capabilities.gate import Gate, ScanningPolicy
        from hybridmcp.policy.breaker import BreakerBoard

        breaker = BreakerBoard(config.resilience.breaker)
        privacy = ScanningPolicy(config.privacy)
        gate = (
            gate_factory(pool)
            if gate_factory
            else Gate(
                pool, breaker=breaker, privacy=privacy, audit=audit, output=config.tool_output
            )
        )
        resources = cls(config, pool, registry, gate, store)
        resources.loop = asyncio.get_running_loop()
        pool.hooks.record = partial(hand_over, gate.audit)
        pool.hooks.tools_changed = resources.tools_changed
        pool.hooks.release = getattr(gate, "release_answer", None)
        pool.hooks.sample = make_sampler(
            gate, lambda: resources.lms, config.llm_config.timeout_ms / 1000
        )
        try:
            # A bad model string fails here, not mid-run (weights load on first call; building
            # the LMs imports dspy: off the event loop).
            await asyncio.to_thread(lambda: resources.lms)
        except BaseException:
            await pool.close()
            raise
        return resources

    @contextmanager
    def running(self) -> Iterator[None]:
        """A run on the resources, from its start to its end: refused once they are closed,
        and waited for (a few seconds) by :meth:`close`."""
        if self.closed:
            raise CoordinatorClosed("the coordinator is closed: open a new one to run tasks")
        ended = asyncio.Event()
        self._running.add(ended)
        try:
            yield
        finally:
            self._running.discard(ended)
            ended.set()

    async def close(self) -> None:
        """Close the MCP sessions (calls queued or in flight fail with
        :class:`CoordinatorClosed`), let the runs in flight end on that error (for at most
        ``CLOSE_GRACE_S``: their last audit records are written), then close the audit trail."""
        self.closed = True
        await self.loop_lag.close()
        await self.pool.close()
        if self._running:
            waits = [asyncio.ensure_future(e.wait()) for e in self._running]
            _done, late = await asyncio.wait(waits, timeout=CLOSE_GRACE_S)
            for wait in late:
                wait.cancel()
        await self.thread_locks.close()
        await _close_audit(self.gate.audit)
        self.workers.close()

    async def __aenter__(self) -> Resources:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def tools_changed(self, server: str) -> None:
        """``server`` listed its tools again (it said they changed, or it is up again or at
        last): the registry takes their annotations (a tool added since start-up with
        ``destructiveHint`` is a write from now on) and the new tools as skills."""
        from hybridmcp.capabilities.registry import build_registry, relisted

        tools = {name: s.tools for name, s in self.pool.statuses().items() if s.up}
        tools[server] = self.pool.status(server).tools
        try:
            fresh = await asyncio.to_thread(build_registry, self.config, tools)
        except Exception as err:  # the start-up listing built; this one could not: keep it
            logging.getLogger("hybridmcp.pool").warning(
                "MCP server %r: its new tool list was not taken: %s", server, err
            )
            return
        listed = [t.name for t in tools[server]]
        self.registry = relisted(self.registry, fresh, server, listed)

    def breaker_windows(self) -> dict[str, dict[str, Any]]:
        """Each external provider's circuit breaker state: the observed error rates."""
        return self.gate.breaker.snapshot(self.clock())

    def provider_sides(self) -> tuple[dict[str, str], dict[str, str]]:
        """Each provider's side and effect class, by provider id: built once per registry (its
        skills are fixed once built, as its provider index is), not at every round."""
        index = self._provider_index
        if index is None or index[0] is not self.registry:
            registry = self.registry
            sides: dict[str, str] = {
                p.id: p.side for s in registry.skills.values() for p in s.providers
            }
            effects: dict[str, str] = {pid: registry.provider(pid).effect for pid in sides}
            index = (registry, sides, effects)
            self._provider_index = index
        return index[1], index[2]

    def server_available(self, server: str) -> tuple[bool, str | None]:
        status = self.pool.status(server)
        return status.available, status.error


class Starting:
    """Resources being opened in the background (:func:`opening`)."""

    def __init__(self, task: asyncio.Task[Resources]) -> None:
        self._task = task
        self.given = False
        """The caller has the resources: closing them is its part."""

    async def resources(self, store: BaseStore | None = None) -> Resources:
        """The open resources, once every server has started or failed to (an error of the open
        is raised here); the caller closes them. ``store``: the run's store, opened meanwhile."""
        resources = await self._task
        self.given = True
        if store is not None:
            resources.store = store
        freeze_startup_objects()  # now that the caller's start-up imports are done too
        tune_collector()
        return resources

    async def discard(self) -> None:
        """Resources never given to the caller: the open is let finish, then closed, so no
        server process outlives the start-up that failed. Its own error is not raised: the
        caller's is the one being raised."""
        try:
            resources = await self._task
        except BaseException:
            return
        await resources.close()


@asynccontextmanager
async def opening(
    config: HybridConfig, *, gate_factory: Callable[[SessionPool], Gate] | None = None
) -> AsyncIterator[Starting]:
    """:meth:`Resources.open` begun now, in a task of its own: the MCP server processes start
    (the audit trail checked first, as ever) while the caller does the rest of its start-up
    (imports, the run database) on the same event loop or in worker threads; then
    ``await starting.resources(store)``. Resources not given to the caller by then are closed
    on exit."""
    task = asyncio.create_task(
        Resources._open(config, gate_factory=gate_factory), name="hybridmcp-resources-open"
    )
    starting = Starting(task)
    try:
        yield starting
    finally:
        if not starting.given:
            await starting.discard()


async def _close_audit(audit: object) -> None:
    """Close the audit trail once every record handed to it is written: in a worker thread
    (it waits for the trail's writer thread, then closes the file)."""
    close = getattr(audit, "close", None)
    if close is not None:
        await asyncio.to_thread(close)


_SHARED: dict[str | None, Resources] = {}
_SHARED_LOCK: asyncio.Lock | None = None


async def resources_for(context: Context | None) -> Resources:
    """The live resources of a run: given in the context, or opened once per process."""
    global _SHARED_LOCK
    if context is not None and context.resources is not None:
        return context.resources
    path = (context.config_path if context else None) or os.environ.get(CONFIG_ENV)
    if path in _SHARED:
        return _SHARED[path]
    if _SHARED_LOCK is None:
        _SHARED_LOCK = asyncio.Lock()
    async with _SHARED_LOCK:
        if path not in _SHARED:
            config = await asyncio.to_thread(load_config, path)
            for warning in config.warnings:
                logging.getLogger("hybridmcp.config").warning("%s", warning)
            _SHARED[path] = await Resources.open(config)
    return _SHARED[path]


async def close_shared() -> None:
    """Close every resource :func:`resources_for` opened in this process (server shutdown):
    the MCP sessions and the server processes they started. Safe to call more than once."""
    while _SHARED:
        path, resources = _SHARED.popitem()
        try:
            await resources.close()
        except Exception:  # one failed close must not keep the others open
            logging.getLogger("hybridmcp.pool").exception(
                "closing the shared resources of %s failed", path or "the default configuration"
            )

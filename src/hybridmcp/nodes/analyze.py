"""Phase 1: validate each request and build its requirement profile."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime
from langgraph.types import Overwrite

from hybridmcp.capabilities.gate import PrivacyPolicy, ScanningPolicy
from hybridmcp.config import PrivacySettings
from hybridmcp.errors import TaskError
from hybridmcp.journal import graph_namespace
from hybridmcp.policy.arbitration import analyze_requirements
from hybridmcp.policy.disclosure import assess, json_text, plain_json
from hybridmcp.policy.privacy import PrivacyConfig, SensitivityReport, scan
from hybridmcp.policy.privacy.engines import EnginesNotLoaded, without_loading
from hybridmcp.prompts.coordinator import coordinate
from hybridmcp.runtime import Context, Resources, resources_for
from hybridmcp.state import State
from hybridmcp.task import check_graph_input, request_problem

INLINE_SCAN_BYTES = 512
"""Arguments up to this size in all (as JSON) are scanned on the event loop: tens of
microseconds, less than the hop to a worker thread, once the detection engines are built;
larger ones, and a scan that would build an engine, in a worker thread (a few milliseconds
per request; building an engine takes seconds)."""


def _inline_sizes(
    requests: list[dict[str, Any]], settings: PrivacySettings
) -> tuple[list[int | None], list[str | None]] | None:
    """Each request's arguments' size in bytes as JSON (as the scan measures them), and that
    JSON text, when they are small enough in all to scan on the event loop; None when they are
    not."""
    if not settings.enabled:
        return [None] * len(requests), [None] * len(requests)
    sizes: list[int | None] = []
    texts: list[str | None] = []
    total = 0
    for r in requests:
        text = json_text(r.get("args", {}))
        size = len(text)  # ASCII: as many bytes as characters
        total += size
        if total > INLINE_SCAN_BYTES:
            return None
        sizes.append(size)
        texts.append(text)
    return sizes, texts


def _scan_all(
    requests: list[dict[str, Any]],
    settings: PrivacySettings,
    sizes: list[int | None] | None = None,
    scanner: Callable[[Any, PrivacyConfig | None], SensitivityReport] = scan,
    texts: list[str | None] | None = None,
    measured: list[int | None] | None = None,
) -> dict[str, Any]:
    """Each request's privacy fields: the declared sensitivity, raised by what the scan finds.
    Requests with the same plain arguments (the same JSON text) and the same declared level
    are assessed once and share the fields, read-only: the caller merges them into a profile
    of each request's own (``texts``: the arguments' JSON
    text, when the caller made it already; ``measured``, when given, gets the size of each
    text made here, as ``sizes`` would hold it)."""
    out: dict[str, Any] = {}
    seen: dict[tuple[str, str | None], dict[str, Any]] = {}
    alike = settings.enabled and len(requests) > 1  # a lone request has nothing to share
    for i, r in enumerate(requests):
        args = r.get("args", {})
        declared = r.get("sensitivity")
        size = sizes[i] if sizes else None
        key: tuple[str, str | None] | None = None
        if alike and (declared is None or type(declared) is str) and plain_json(args):
            text = texts[i] if texts else None
            if text is None:
                text = "{}" if not args and type(args) is dict else json_text(args)
                size = len(text)  # JSON text escapes every non-ASCII character: bytes = chars
                if measured is not None:
                    measured[i] = size
            key = (text, declared)
            fields = seen.get(key)
            if fields is not None:
                out[str(r.get("id"))] = fields
                continue
        fields = assess(
            args,
            declared,
            enabled=settings.enabled,
            detection=settings.detection,
            max_scan_bytes=settings.max_scan_bytes,
            size=size,
            scanner=scanner,
        )
        if key is not None:
            seen[key] = fields
        out[str(r.get("id"))] = fields
    return out


RUN_RECORDS = {
    "results": dict,
    "conflicts": list,
    "events": list,
    "errors": dict,
    "profiles": dict,
    "allocations": dict,
    "attempts": list,
    "settled": list,
}
"""The state a run adds to through reducers: what a later run on the same thread starts
without."""


def run_identity(state: State, thread: Any, namespace: str = "") -> tuple[str, bool]:
    """The run's id, and whether it follows an earlier run on the same thread.

    A thread takes run after run (the LangGraph server, Studio): each new input starts a new
    run, and this node runs once per run (a resumed run goes on from its checkpoint; one cut
    inside this node runs it again, before anything was dispatched). The first run's id is
    the thread's; a later one's is the earlier id with ``#<n>`` after it, so its idempotency
    keys are its own: a write asked again is a new call, never the earlier run's result. A
    thread id that holds a ``#`` (or a ``%``) has them written ``%23`` (``%25``) in its run
    ids, so that no thread's first run (``order#2``) takes the id of another's second.

    A copy of a thread (the server's ``threads.copy``) holds the state of the thread it was
    copied from, whose later runs would take the same ids: a later run on the copy (its state
    says its id was made on another thread, ``run_thread``) takes an id of the copy's own,
    numbered on from the earlier one, so neither thread's writes answer the other's.

    Run as a subgraph (``namespace``: the graph's checkpoint namespace, ``node:<task id>``
    of the parent's task), each run is a task of the parent's thread: its id is the thread's
    and the namespace (``thread/co:<task id>``), the same when the parent's task is resumed,
    another for each later task (a parent's next turn asking a write again makes it)."""
    own = _first_id(thread, namespace) if thread else None
    earlier = state.get("run_id")
    if not earlier or not any(state.get(key) for key in RUN_RECORDS):
        if earlier:
            return earlier, False
        return own or uuid.uuid4().hex, False
    base, n = _numbered(earlier)
    if thread and state.get("run_thread", str(thread)) != str(thread):
        base = str(own)  # a copy of another thread: ids of its own from here on
    return f"{base}#{n + 1}", True


def _first_id(thread: Any, namespace: str) -> str:
    """The id of a thread's first run: the thread's, ``#`` and ``%`` escaped."""
    label = f"{thread}/{namespace}" if namespace else str(thread)
    if "#" in label or "%" in label:
        label = label.replace("%", "%25").replace("#", "%23")
    return label


def _numbered(run_id: str) -> tuple[str, int]:
    """``thread#3`` is run 3 of ``thread``; ``thread`` its run 1."""
    base, sep, n = run_id.rpartition("#")
    return (base, int(n)) if sep and n.isdigit() else (run_id, 1)


def _request_problems(requests: list[dict[str, Any]], res: Resources) -> dict[str, str]:
    """The graph's own input (no task file checked it): each request whose skill is unknown
    or whose fields are wrong (:func:`~hybridmcp.task.request_problem`), with why. Found
    before the privacy scan, which reads a request's declared ``sensitivity``."""
    errors: dict[str, str] = {}
    for request in requests:
        try:
            res.registry.get(str(request.get("skill")))
        except TaskError as err:
            errors[str(request.get("id"))] = str(err)
            continue
        if problem := request_problem(request):
            errors[str(request.get("id"))] = problem
    return errors


def _memory_scan(
    privacy: PrivacyPolicy,
) -> Callable[[Any, PrivacyConfig | None], SensitivityReport]:
    """The gate's privacy step scanning through its memory of clean scans, when it has one
    (a policy of the caller's own has none): a request's arguments that scan clean here are
    then a hit when the gate scans its call (the gate still scans every call; the memory gives
    the report a fresh scan gives). Only on the event loop, the memory's one thread."""
    return privacy.scan if isinstance(privacy, ScanningPolicy) else scan


async def analyze(
    state: State, runtime: Runtime[Context], config: RunnableConfig
) -> dict[str, Any]:
    validated = runtime.context is not None and runtime.context.validated
    if not validated:  # the graph's own input (the server's API, a parent graph)
        check_graph_input(state)
    res = await resources_for(runtime.context)
    configurable = config.get("configurable") or {}
    namespace = graph_namespace(str(configurable.get("checkpoint_ns") or ""))
    thread = configurable.get("thread_id")
    run_id, again = run_identity(state, thread, namespace)
    profiles: dict[str, dict[str, Any]] = {}
    errors = {} if validated else _request_problems(state["requests"], res)
    requests = [r for r in state["requests"] if str(r.get("id")) not in errors]
    inline = _inline_sizes(requests, res.config.privacy)
    sizes = inline[0] if inline is not None else None
    privacy: dict[str, Any] | None = None
    if inline is not None:
        try:
            with without_loading():
                privacy = _scan_all(
                    requests,
                    res.config.privacy,
                    sizes,
                    _memory_scan(res.gate.privacy),
                    inline[1],
                )
        except EnginesNotLoaded:  # the first scan that needs an engine builds it, off the loop
            privacy = None
    if privacy is None:
        measured: list[int | None] = [None] * len(requests)
        privacy = await asyncio.to_thread(
            _scan_all, requests, res.config.privacy, None, scan, None, measured
        )
        sizes = measured
    # The requirements read the skill, the arguments' size and the sensitivity only: requests
    # alike share them (each profile is a dict of its own, merged with its privacy fields).
    requirements: dict[tuple[str, int, str], dict[str, Any]] = {}
    for i, request in enumerate(requests):
        rid = str(request.get("id"))
        try:
            skill = res.registry.get(str(request.get("skill")))
            if not validated:
                skill.validate_args(request.get("args", {}))
        except TaskError as err:
            errors[rid] = str(err)
            continue
        size = sizes[i] if sizes else None
        sensitivity = privacy[rid]["data_sensitivity"]
        key = (skill.name, size, sensitivity) if size is not None else None
        needs = requirements.get(key) if key is not None else None
        if needs is None:
            needs = analyze_requirements(
                skill=skill.name,
                tags=skill.tags,
                complexity=skill.complexity,
                args=request.get("args", {}),
                sensitivity=sensitivity,
                size=size,
            )
            if key is not None:
                requirements[key] = needs
        profiles[rid] = needs | privacy[rid]
    started_at = res.clock()  # before the LM: its time counts against the run's deadline
    coordination, events = await coordinate(res, state["requests"], profiles, run_id)
    update: dict[str, Any] = {
        "run_id": run_id,
        **({"run_thread": str(thread)} if thread else {}),
        "started_at": started_at,
        "profiles": profiles,
        "errors": errors,
        "round": 0,
        "events": events,
        **({"coordination": coordination} if coordination else {}),
    }
    if again:  # what the earlier run on the thread recorded is not this run's
        update |= {key: Overwrite(update.get(key) or empty()) for key, empty in RUN_RECORDS.items()}
    return update

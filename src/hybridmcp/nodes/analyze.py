"""Phase 1: validate each request and build its requirement profile."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from hybridmcp.capabilities.gate import PrivacyPolicy, ScanningPolicy
from hybridmcp.config import PrivacySettings
from hybridmcp.errors import TaskError
from hybridmcp.policy.arbitration import analyze_requirements
from hybridmcp.policy.disclosure import assess
from hybridmcp.policy.privacy import PrivacyConfig, SensitivityReport, scan
from hybridmcp.policy.privacy.engines import EnginesNotLoaded, without_loading
from hybridmcp.prompts.coordinator import coordinate
from hybridmcp.runtime import Context, resources_for
from hybridmcp.state import State

INLINE_SCAN_BYTES = 512
"""Arguments up to this size in all (as JSON) are scanned on the event loop: tens of
microseconds, less than the hop to a worker thread, once the detection engines are built;
larger ones, and a scan that would build an engine, in a worker thread (a few milliseconds
per request; building an engine takes seconds)."""


def _inline_sizes(
    requests: list[dict[str, Any]], settings: PrivacySettings
) -> list[int | None] | None:
    """Each request's arguments' size in bytes as JSON (as the scan measures them) when they
    are small enough in all to scan on the event loop; None when they are not."""
    if not settings.enabled:
        return [None] * len(requests)
    sizes: list[int | None] = []
    total = 0
    for r in requests:
        size = len(json.dumps(r.get("args", {}), default=str).encode())
        total += size
        if total > INLINE_SCAN_BYTES:
            return None
        sizes.append(size)
    return sizes


def _scan_all(
    requests: list[dict[str, Any]],
    settings: PrivacySettings,
    sizes: list[int | None] | None = None,
    scanner: Callable[[Any, PrivacyConfig | None], SensitivityReport] = scan,
) -> dict[str, Any]:
    """Each request's privacy fields: the declared sensitivity, raised by what the scan finds."""
    return {
        str(r.get("id")): assess(
            r.get("args", {}),
            r.get("sensitivity"),
            enabled=settings.enabled,
            detection=settings.detection,
            max_scan_bytes=settings.max_scan_bytes,
            size=size,
            scanner=scanner,
        )
        for r, size in zip(requests, sizes or [None] * len(requests), strict=True)
    }


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
    res = await resources_for(runtime.context)
    thread = (config.get("configurable") or {}).get("thread_id")
    run_id = state.get("run_id") or (str(thread) if thread else uuid.uuid4().hex)
    profiles: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    sizes = _inline_sizes(state["requests"], res.config.privacy)
    privacy = None
    if sizes is not None:
        try:
            with without_loading():
                privacy = _scan_all(
                    state["requests"], res.config.privacy, sizes, _memory_scan(res.gate.privacy)
                )
        except EnginesNotLoaded:  # the first scan that needs an engine builds it, off the loop
            privacy = None
    if privacy is None:
        privacy = await asyncio.to_thread(_scan_all, state["requests"], res.config.privacy)
    validated = runtime.context is not None and runtime.context.validated
    for i, request in enumerate(state["requests"]):
        rid = str(request.get("id"))
        try:
            skill = res.registry.get(str(request.get("skill")))
            if not validated:
                skill.validate_args(request.get("args", {}))
        except TaskError as err:
            errors[rid] = str(err)
            continue
        profiles[rid] = (
            analyze_requirements(
                skill=skill.name,
                tags=skill.tags,
                complexity=skill.complexity,
                args=request.get("args", {}),
                sensitivity=privacy[rid]["data_sensitivity"],
                size=sizes[i] if sizes else None,
            )
            | privacy[rid]
        )
    started_at = res.clock()  # before the LM: its time counts against the run's deadline
    coordination, events = await coordinate(res, state["requests"], profiles)
    return {
        "run_id": run_id,
        "started_at": started_at,
        "profiles": profiles,
        "errors": errors,
        "round": 0,
        "events": events,
        **({"coordination": coordination} if coordination else {}),
    }

"""Phase 1: validate each request and build its requirement profile."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from hybridmcp.config import PrivacySettings
from hybridmcp.errors import TaskError
from hybridmcp.policy.arbitration import analyze_requirements
from hybridmcp.policy.disclosure import assess
from hybridmcp.prompts.coordinator import coordinate
from hybridmcp.runtime import Context, resources_for
from hybridmcp.state import State

INLINE_SCAN_BYTES = 512
"""Arguments up to this size in all (as JSON) are scanned on the event loop: tens of
microseconds, less than the hop to a worker thread; larger ones in a worker thread (a few
milliseconds per request)."""


def _small(requests: list[dict[str, Any]], settings: PrivacySettings) -> bool:
    if not settings.enabled:
        return True
    size = 0
    for r in requests:
        size += len(json.dumps(r.get("args", {}), default=str))
        if size > INLINE_SCAN_BYTES:
            return False
    return True


def _scan_all(requests: list[dict[str, Any]], settings: PrivacySettings) -> dict[str, Any]:
    """Each request's privacy fields: the declared sensitivity, raised by what the scan finds."""
    return {
        str(r.get("id")): assess(
            r.get("args", {}),
            r.get("sensitivity"),
            enabled=settings.enabled,
            detection=settings.detection,
            max_scan_bytes=settings.max_scan_bytes,
        )
        for r in requests
    }


async def analyze(
    state: State, runtime: Runtime[Context], config: RunnableConfig
) -> dict[str, Any]:
    res = await resources_for(runtime.context)
    thread = (config.get("configurable") or {}).get("thread_id")
    run_id = state.get("run_id") or (str(thread) if thread else uuid.uuid4().hex)
    profiles: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    if _small(state["requests"], res.config.privacy):
        privacy = _scan_all(state["requests"], res.config.privacy)
    else:
        privacy = await asyncio.to_thread(_scan_all, state["requests"], res.config.privacy)
    for request in state["requests"]:
        rid = str(request.get("id"))
        try:
            skill = res.registry.get(str(request.get("skill")))
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

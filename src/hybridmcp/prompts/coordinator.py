"""The coordinator's advice (``analyze``): the spec's ``HybridCoordinatorSignature`` over the
task's requirement profiles. Its four fields are recorded in ``state["coordination"]`` for the
reader; it does not change allocations.

Privacy: the prompt carries skill names, requirement profiles (without findings, which may
quote the sensitive text) and provider names, never request arguments or results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hybridmcp.prompts.asking import ask_lm, clip, fallback_event, model_name, to_json

if TYPE_CHECKING:
    from hybridmcp.runtime import Resources

__all__ = ["coordinate"]

TEXT_CHARS = 120  # each of the four fields: a sentence (the record is for the reader)


def _profile_view(profile: Mapping[str, Any]) -> dict[str, Any]:
    """A requirement profile without findings (which may quote the sensitive text)."""
    return {k: v for k, v in profile.items() if k != "sensitivity_findings"}


async def coordinate(
    res: Resources,
    requests: Sequence[Mapping[str, Any]],
    profiles: Mapping[str, Any],
    run_id: str | None = None,
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The coordinator's plan for the run: ``(coordination record or None, events)``."""
    lm = res.lms.get("coordinator")
    if lm is None or not profiles:
        return None, []
    from hybridmcp.prompts.signatures import HybridCoordinatorSignature
    from hybridmcp.prompts.structured import StructuredAdapter

    task: dict[str, dict[str, Any]] = {}
    internal: dict[str, list[str]] = {}
    external: dict[str, list[str]] = {}
    for request in requests:
        rid = str(request.get("id"))
        if rid not in profiles:
            continue
        skill = res.registry.get(str(request["skill"]))
        entry = {
            "skill": skill.name,
            "strategy": request.get("strategy", "auto"),
            "critical": bool(request.get("critical", False)),
            "profile": _profile_view(profiles[rid]),
        }
        # Requests alike in all of that are one entry with their ids: twenty requests of four
        # kinds make a prompt of four entries, not twenty.
        task.setdefault(to_json(entry), entry | {"ids": []})["ids"].append(rid)
        for p in skill.providers:
            where = internal if p.side == "internal" else external
            name = p.id if p.side == "internal" else f"{p.server}/{p.tool}"
            if name not in where.setdefault(skill.name, []):
                where[skill.name].append(name)
    cfg = res.config
    prediction, error = await ask_lm(
        res,
        lm,
        HybridCoordinatorSignature,
        role="coordinator",
        run_id=run_id,
        adapter=StructuredAdapter(text_chars=TEXT_CHARS),
        task_requirements=to_json(list(task.values())),
        internal_capabilities=to_json(internal or "none"),
        external_services=to_json(external or "none"),
        optimization_criteria=to_json(
            {
                "weights": cfg.optimization_criteria.model_dump(),
                "internal_strengths": cfg.capability_mapping.internal_strengths,
                "external_strengths": cfg.capability_mapping.external_strengths,
            }
        ),
    )
    if prediction is None:
        return None, [fallback_event("coordinator", "coordinate", lm, error or "no answer")]
    fields = HybridCoordinatorSignature.output_fields
    record = {"source": "lm", "model": model_name(lm)}
    return record | {name: clip(getattr(prediction, name)) for name in fields}, []

"""What every advising role shares: asking its LM within the deadline, and falling back.

An LM here is advice, never authority (ARCHITECTURE.md, invariant 5). Each role module
(:mod:`~hybridmcp.prompts.coordinator`, :mod:`~hybridmcp.prompts.arbitrator`,
:mod:`~hybridmcp.prompts.synchronizer`, the planner) is called by one node, returns plain data
for the state, and turns every failure (no answer within ``llm_config.timeout_ms``, an answer
outside its schema) into an ``LM_FALLBACK`` event while the node keeps its deterministic
decision.

dspy is imported only when an LM is configured, so a deterministic run does not pay for it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hybridmcp.events import EventCode

if TYPE_CHECKING:
    import dspy

    from hybridmcp.runtime import Resources

__all__ = [
    "LM_FALLBACK",
    "ask_lm",
    "clip",
    "fallback_event",
    "is_local",
    "model_name",
    "parse_choice",
    "to_json",
]

LM_FALLBACK = EventCode.LM_FALLBACK

_RECORD_CHARS = 1500  # LM text kept in state per field
_WORD = re.compile(r"[a-z]+")


def clip(text: Any, limit: int = _RECORD_CHARS) -> str:
    text = str(text or "").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def to_json(value: Any, limit: int | None = None) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return clip(text, limit) if limit else text


def model_name(lm: Any) -> str:
    return str(getattr(lm, "model", type(lm).__name__))


def is_local(lm: Any) -> bool:
    from hybridmcp.prompts.models import LocalLlamaLM

    return isinstance(lm, LocalLlamaLM)


def fallback_event(
    role: str, step: str, lm: Any, error: str, request_id: str | None = None
) -> dict[str, Any]:
    """``LM_FALLBACK``: the LM gave nothing usable, the deterministic decision stands."""
    event = {
        "code": LM_FALLBACK,
        "role": role,
        "step": step,
        "model": model_name(lm),
        "error": clip(error, 600),
        "fallback": "deterministic",
    }
    return event | ({"request_id": request_id} if request_id else {})


async def ask_lm(
    res: Resources,
    lm: Any,
    signature: type[dspy.Signature],
    *,
    role: str,
    run_id: str | None = None,
    request_id: str | None = None,
    demos: Sequence[Mapping[str, Any]] = (),
    adapter: Any = None,
    **inputs: Any,
) -> tuple[Any, str | None]:
    """Ask ``lm``, bounded by ``llm_config.timeout_ms``; ``(prediction, error)``.

    The answer is bound to the signature's output schema
    (:class:`~hybridmcp.prompts.structured.StructuredAdapter` unless ``adapter`` is given).
    A model that does not run in this process is an external service: the inputs pass the
    gate first (:meth:`~hybridmcp.capabilities.gate.Gate.consult`: privacy, audit as
    ``role``, for ``run_id``/``request_id`` when the call is about one), which may send them
    redacted or refuse them (then ``(None, why)``, as for a model that gave no answer).
    """
    from hybridmcp.prompts.running import arun_signature

    async def asked(shown: Mapping[str, Any]) -> tuple[Any, str | None]:
        outcome = await arun_signature(
            signature,
            lm,
            adapter=adapter,
            demos=demos,
            time_limit=res.config.llm_config.timeout_ms / 1000,
            **shown,
        )
        return outcome.prediction, outcome.error

    if is_local(lm):
        return await asked(inputs)
    return await res.gate.consult(
        role, model_name(lm), inputs, asked, run_id=run_id, request_id=request_id
    )


def parse_choice(text: Any, choices: Sequence[str]) -> str | None:
    """The one choice an answer names, or None.

    Strict on purpose: an answer naming two choices ("internal and external, so hybrid") is
    ambiguous and rejected, so a rambling model cannot steer a decision by accident.
    """
    named = {w for w in _WORD.findall(str(text or "").lower()) if w in choices}
    return named.pop() if len(named) == 1 else None

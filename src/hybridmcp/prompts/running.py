"""Asking an LM to fill a signature, without ever raising.

The engine never needs an LM (ARCHITECTURE.md, invariant 5), so every call that asks one goes
through :func:`run_signature` / :func:`arun_signature`, which turn any failure into a value
the caller falls back on. The default adapter is :class:`~hybridmcp.prompts.structured.
StructuredAdapter`: one JSON object bound to the signature's output schema, from a prompt
checked to fit the model's context.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import dspy

from hybridmcp.limits import lone_surrogate_in
from hybridmcp.prompts.models import GENERATION_LIMIT, LocalLlamaLM, describe
from hybridmcp.prompts.structured import StructuredAdapter

__all__ = ["SignatureOutcome", "arun_signature", "run_signature"]

log = logging.getLogger(__name__)


class SignatureOutcome(NamedTuple):
    """What asking an LM gave: a prediction, or why there is none.

    ``error`` is a plain string so it can be stored in checkpointed state, next to the
    deterministic decision the engine fell back on.
    """

    prediction: dspy.Prediction | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.prediction is not None


def _prepare(
    signature: type[dspy.Signature],
    inputs: Mapping[str, Any],
    chain_of_thought: bool,
    demos: Sequence[Mapping[str, Any]] = (),
) -> tuple[dspy.Module | None, str | None]:
    try:
        missing = sorted(set(signature.input_fields) - set(inputs))
        unknown = sorted(set(inputs) - set(signature.input_fields))
    except AttributeError:
        return None, f"TypeError: not a dspy signature: {signature!r}"
    if missing or unknown:
        return None, (
            f"TaskError: {signature.__name__} inputs do not match: "
            f"missing {missing}, unknown {unknown}"
        )
    module = dspy.ChainOfThought(signature) if chain_of_thought else dspy.Predict(signature)
    if demos:
        predictor = module.predict if chain_of_thought else module
        predictor.demos = [dspy.Example(**dict(demo)) for demo in demos]
    return module, None


def _check(signature: type[dspy.Signature], prediction: Any) -> SignatureOutcome:
    empty = [
        name
        for name in signature.output_fields
        if not str(getattr(prediction, name, "") or "").strip()
    ]
    if empty:
        return SignatureOutcome(None, f"AdapterParseError: empty output field(s) {empty}")
    # Text that cannot be written as UTF-8 would fail later, far from here: in a table on a
    # terminal, a checkpoint, an audit line. It is not an answer.
    answer = {name: getattr(prediction, name, None) for name in signature.output_fields}
    if why := lone_surrogate_in(answer):
        why = f"the answer cannot be written as UTF-8 ({why})"
        return SignatureOutcome(None, f"AdapterParseError: {why}")
    return SignatureOutcome(prediction, None)


def _adapter(adapter: Any) -> Any:
    return StructuredAdapter() if adapter is None else adapter


def run_signature(
    signature: type[dspy.Signature],
    lm: dspy.BaseLM,
    /,
    *,
    chain_of_thought: bool = False,
    adapter: Any = None,
    demos: Sequence[Mapping[str, Any]] = (),
    **inputs: Any,
) -> SignatureOutcome:
    """Ask ``lm`` to fill ``signature``; never raises.

    Any failure (the LM's, a parse failure, an empty output field, a prompt that does not fit,
    inputs that do not match the signature) comes back as ``SignatureOutcome(None, error)``,
    because the caller always has a deterministic path to take instead. Unpacks as
    ``prediction, error = run_signature(...)``. ``demos`` are few-shot examples, each a
    mapping of the signature's field names to values. ``adapter`` defaults to
    :class:`StructuredAdapter`; pass ``dspy.ChatAdapter()`` for dspy's own format.
    """
    module, error = _prepare(signature, inputs, chain_of_thought, demos)
    if module is None:
        return SignatureOutcome(None, error)
    try:
        with dspy.context(lm=lm, adapter=_adapter(adapter)):
            prediction = module(**inputs)
    except Exception as exc:
        log.info("%s via %s failed: %s", signature.__name__, getattr(lm, "model", lm), exc)
        return SignatureOutcome(None, describe(exc))
    return _check(signature, prediction)


async def arun_signature(
    signature: type[dspy.Signature],
    lm: dspy.BaseLM,
    /,
    *,
    chain_of_thought: bool = False,
    adapter: Any = None,
    demos: Sequence[Mapping[str, Any]] = (),
    time_limit: float | None = None,
    **inputs: Any,
) -> SignatureOutcome:
    """:func:`run_signature` for async graph nodes: the LM call does not block the loop.

    ``time_limit`` (seconds) bounds the call; past it the outcome is a ``TimeoutError``
    failure. For the in-process model it bounds the *generation*: the wait in the model's
    queue is bounded by the limits of the calls ahead (:mod:`hybridmcp.capabilities.
    local_model`), so calls queued together do not time each other out.
    """
    module, error = _prepare(signature, inputs, chain_of_thought, demos)
    if module is None:
        return SignatureOutcome(None, error)
    outer = None if isinstance(lm, LocalLlamaLM) else time_limit
    token = GENERATION_LIMIT.set(time_limit)
    try:
        with dspy.context(lm=lm, adapter=_adapter(adapter)):
            async with asyncio.timeout(outer):
                prediction = await module.acall(**inputs)
    except TimeoutError as exc:
        log.info("%s via %s timed out", signature.__name__, getattr(lm, "model", lm))
        detail = str(exc) or f"no answer within {time_limit:g} s"
        return SignatureOutcome(None, f"TimeoutError: {detail}")
    except Exception as exc:
        log.info("%s via %s failed: %s", signature.__name__, getattr(lm, "model", lm), exc)
        return SignatureOutcome(None, describe(exc))
    finally:
        GENERATION_LIMIT.reset(token)
    return _check(signature, prediction)

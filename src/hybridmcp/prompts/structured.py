"""The adapter every LM step uses: a short prompt that fits, and an answer bound to a schema.

dspy's chat format (field headers to echo back, a completion marker) is more than a small model
can follow: SmolLM2-135M answered it in prose or Python and 19 of 19 steps fell back. This
adapter instead

- asks for **one JSON object** whose keys are the signature's output fields, and binds the
  answer to that form: the schema goes with the call as ``response_format`` (a grammar for the
  in-process model, see :mod:`hybridmcp.prompts.grammar`), so the model cannot answer outside
  it;
- sizes the **answer budget** from the schema (:func:`~hybridmcp.prompts.grammar.
  answer_budget`), capped by ``llm_config.max_tokens``;
- **checks the prompt fits** before sending: prompt tokens plus the answer budget must not
  exceed the model's context window. When they do, the rule is: drop the few-shot examples
  first; then cut the longest input, from its end, marking the cut (``… [cut: kept N of M
  characters]``), and repeat; an input is never cut below :data:`MIN_INPUT_CHARS`. A prompt
  that still does not fit is not sent (a ``ContextWindowExceededError`` fallback).

OpenAI-compatible servers differ in how they take a schema: the OpenAI form
(``{"type": "json_schema", ...}``) is sent first; a server that refuses it (llama-cpp-python's
server takes ``{"type": "json_object", "schema": ...}``) is asked once more in that form, which
is then remembered for that LM.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import dspy
import json_repair
import jsonschema
from dspy.utils.exceptions import AdapterParseError

from hybridmcp.prompts.grammar import TEXT_CHARS, answer_budget, output_schema

__all__ = ["MIN_INPUT_CHARS", "PromptDoesNotFit", "StructuredAdapter", "fit_inputs"]

MIN_INPUT_CHARS = 200
"""An input is never cut below this many characters to make a prompt fit."""

_CHARS_PER_TOKEN_ESTIMATE = 3.0  # for models whose tokenizer is not at hand (over-counts)
_FORMAT_ATTR = "_hybridmcp_response_format"
_CUT = "… [cut: kept {kept} of {total} characters]"
_OBJECT_STARTS = 32  # `{` positions tried for a complete object inside prose
_OBJECT_START = re.compile(r"\{")


class PromptDoesNotFit(ValueError):
    """Even with every input cut to its minimum, prompt plus answer exceed the context."""


def _counter(lm: Any) -> Any:
    from hybridmcp.prompts.models import LocalLlamaLM

    if isinstance(lm, LocalLlamaLM):
        model = lm.local_model()
        return model.prompt_tokens
    return lambda messages: sum(
        6 + math.ceil(len(str(m.get("content") or "")) / _CHARS_PER_TOKEN_ESTIMATE)
        for m in messages
    )


def _cut(text: str, keep: int) -> str:
    keep = max(keep, MIN_INPUT_CHARS)
    if len(text) <= keep:
        return text
    return text[:keep] + _CUT.format(kept=keep, total=len(text))


def fit_inputs(
    count: Any,
    render: Any,
    inputs: Mapping[str, Any],
    demos: Sequence[Mapping[str, Any]],
    budget: int,
    context: int,
) -> tuple[dict[str, Any], list[Mapping[str, Any]], list[str]]:
    """Inputs and demos cut by the documented rule until ``count(render(...)) + budget`` fits.

    ``render(inputs, demos)`` gives the messages, ``count(messages)`` their tokens. Returns the
    fitted inputs, the demos kept, and notes of what was cut. Pure apart from those two calls.
    """
    fitted = {k: v for k, v in inputs.items()}
    kept = list(demos)
    notes: list[str] = []
    limit = context - budget
    for _ in range(64):
        used = count(render(fitted, kept))
        if used <= limit:
            return fitted, kept, notes
        if kept:
            notes.append(f"dropped {len(kept)} example(s)")
            kept = []
            continue
        texts = {k: str(v) for k, v in fitted.items() if isinstance(v, str)}
        longest = max(texts, key=lambda k: len(texts[k]), default=None)
        if longest is None or len(texts[longest]) <= MIN_INPUT_CHARS + len(_CUT) + 16:
            break
        text = texts[longest]
        # Drop the excess at the estimate's pessimistic rate, and at least a tenth.
        excess_chars = math.ceil((used - limit) * _CHARS_PER_TOKEN_ESTIMATE) + len(_CUT) + 8
        shown = len(text) - len(_CUT.format(kept=0, total=0)) if "… [cut:" in text else len(text)
        keep = max(min(shown - excess_chars, int(shown * 0.9)), MIN_INPUT_CHARS)
        fitted[longest] = _cut(str(inputs[longest]), keep)
        if fitted[longest] == text:
            break
        notes.append(f"cut {longest} to {keep} of {len(str(inputs[longest]))} characters")
    used = count(render(fitted, kept))
    raise PromptDoesNotFit(
        f"prompt of {used} tokens plus an answer budget of {budget} exceeds the context window "
        f"of {context} tokens even with every input cut"
    )


class StructuredAdapter(dspy.Adapter):
    """JSON answers bound to the signature's output schema, from a prompt that fits.

    ``fields`` gives output fields a schema of their own (the planner's request list);
    ``text_chars`` bounds every free-text output field. With ``repair`` (the default) an
    answer cut off at its token budget is closed and then held to the schema; without it, it
    is a parse failure.
    """

    def __init__(
        self,
        *,
        fields: Mapping[str, Mapping[str, Any]] | None = None,
        text_chars: int = TEXT_CHARS,
        repair: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.fields = dict(fields or {})
        self.text_chars = text_chars
        self.repair = repair
        self.last_notes: list[str] = []

    # ------------------------------------------------------------------ planning a call

    def schema(self, signature: type[dspy.Signature]) -> dict[str, Any]:
        return output_schema(signature, text_chars=self.text_chars, fields=self.fields)

    def _plan(
        self,
        lm: Any,
        lm_kwargs: dict[str, Any],
        signature: type[dspy.Signature],
        demos: list[dict[str, Any]],
        inputs: dict[str, Any],
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        from hybridmcp.prompts.models import context_window

        schema = self.schema(signature)
        budget = answer_budget(schema)
        cap = lm_kwargs.get("max_tokens") or (getattr(lm, "kwargs", None) or {}).get("max_tokens")
        if isinstance(cap, int) and cap > 0:
            budget = min(budget, cap)
        lm_kwargs["max_tokens"] = budget
        lm_kwargs["response_format"] = self._response_format(lm, signature, schema)
        fitted, kept, notes = fit_inputs(
            _counter(lm),
            lambda i, d: self.format(signature, d, i),
            inputs,
            demos,
            budget,
            context_window(lm),
        )
        self.last_notes = notes
        return fitted, [dict(d) for d in kept]

    @staticmethod
    def _response_format(
        lm: Any, signature: type[dspy.Signature], schema: dict[str, Any]
    ) -> dict[str, Any]:
        if getattr(lm, _FORMAT_ATTR, None) == "json_object":
            return {"type": "json_object", "schema": schema}
        return {
            "type": "json_schema",
            "json_schema": {"name": signature.__name__, "schema": schema, "strict": True},
        }

    def __call__(
        self,
        lm: Any,
        lm_kwargs: dict[str, Any],
        signature: type[dspy.Signature],
        demos: list[dict[str, Any]],
        inputs: dict[str, Any],
    ) -> list[dict[str, Any]]:
        lm_kwargs = dict(lm_kwargs)
        inputs, demos = self._plan(lm, lm_kwargs, signature, demos, inputs)
        try:
            return super().__call__(lm, lm_kwargs, signature, demos, inputs)
        except Exception as exc:
            if not self._retry_format(lm, lm_kwargs, signature, exc):
                raise
            return super().__call__(lm, lm_kwargs, signature, demos, inputs)

    async def acall(
        self,
        lm: Any,
        lm_kwargs: dict[str, Any],
        signature: type[dspy.Signature],
        demos: list[dict[str, Any]],
        inputs: dict[str, Any],
    ) -> list[dict[str, Any]]:
        lm_kwargs = dict(lm_kwargs)
        inputs, demos = self._plan(lm, lm_kwargs, signature, demos, inputs)
        try:
            return await super().acall(lm, lm_kwargs, signature, demos, inputs)
        except Exception as exc:
            if not self._retry_format(lm, lm_kwargs, signature, exc):
                raise
            return await super().acall(lm, lm_kwargs, signature, demos, inputs)

    def _retry_format(
        self,
        lm: Any,
        lm_kwargs: dict[str, Any],
        signature: type[dspy.Signature],
        exc: Exception,
    ) -> bool:
        """After a refusal of the schema form: switch ``lm`` to the other form (once) and set
        ``lm_kwargs`` for the retry; False when the error is not such a refusal."""
        if not self._switch_format(lm, exc):
            return False
        lm_kwargs["response_format"] = self._response_format(lm, signature, self.schema(signature))
        return True

    @staticmethod
    def _switch_format(lm: Any, exc: Exception) -> bool:
        """A server that refused the OpenAI schema form gets llama.cpp's form, once."""
        text = str(exc)
        if getattr(lm, _FORMAT_ATTR, None) or "response_format" not in text:
            return False
        if "json_schema" not in text and "json_object" not in text:
            return False
        setattr(lm, _FORMAT_ATTR, "json_object")
        return True

    # ------------------------------------------------------------------ the prompt

    def format(
        self,
        signature: type[dspy.Signature],
        demos: list[dict[str, Any]],
        inputs: dict[str, Any],
    ) -> list[dict[str, Any]]:
        schema = self.schema(signature)
        lines = [signature.instructions.strip(), "", "Answer with one JSON object with the keys:"]
        for name, field in signature.output_fields.items():
            desc = (field.json_schema_extra or {}).get("desc", "")
            sub = schema["properties"][name]
            extra = f" (one of: {', '.join(sub['enum'])})" if "enum" in sub else ""
            lines.append(f"- {name}: {desc}{extra}")
        messages: list[dict[str, Any]] = [{"role": "system", "content": "\n".join(lines)}]
        for demo in demos:
            if all(name in demo for name in signature.output_fields):
                messages.append({"role": "user", "content": self._inputs(signature, demo)})
                answer = {name: demo[name] for name in signature.output_fields}
                messages.append({"role": "assistant", "content": json.dumps(answer)})
        messages.append({"role": "user", "content": self._inputs(signature, inputs)})
        return messages

    @staticmethod
    def _inputs(signature: type[dspy.Signature], values: Mapping[str, Any]) -> str:
        return "\n\n".join(f"{name}:\n{values.get(name, '')}" for name in signature.input_fields)

    # ------------------------------------------------------------------ the answer

    def parse(self, signature: type[dspy.Signature], completion: str) -> dict[str, Any]:
        """The answer's fields, held to the schema. A field with a schema of its own is passed
        on as it came (a JSON text of it is accepted); its caller checks it with better
        messages (the planner's :func:`~hybridmcp.prompts.plans.parse_plan`)."""
        try:
            value = _load_object(
                completion, repair=self.repair, keys=frozenset(signature.output_fields)
            )
        except AmbiguousAnswer as exc:
            raise AdapterParseError(
                adapter_name=type(self).__name__,
                signature=signature,
                lm_response=completion,
                message=str(exc),
            ) from exc
        if value is None:
            raise AdapterParseError(
                adapter_name=type(self).__name__,
                signature=signature,
                lm_response=completion,
                message="the answer is not a JSON object",
            )
        for name in self.fields:
            if isinstance(value.get(name), str) and self.fields[name].get("type") != "string":
                try:
                    value[name] = json.loads(value[name])
                except json.JSONDecodeError:
                    pass
        schema = _loose(self.schema(signature), self.fields)
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(schema).iter_errors(value)
        )
        if error is not None:
            where = "/".join(map(str, error.absolute_path)) or "(top level)"
            raise AdapterParseError(
                adapter_name=type(self).__name__,
                signature=signature,
                lm_response=completion,
                message=f"the answer does not match its schema at {where}: {error.message}",
            )
        out: dict[str, Any] = {}
        for name, field in signature.output_fields.items():
            raw = value[name]
            out[name] = (
                json.dumps(raw, ensure_ascii=False)
                if field.annotation is str and not isinstance(raw, str)
                else raw
            )
        return out


def _load_object(
    text: str, *, repair: bool = True, keys: frozenset[str] = frozenset()
) -> dict[str, Any] | None:
    """The answer's JSON object. Control characters inside strings are accepted (a server
    whose grammar lets them through); a complete object inside prose or a code fence is
    found (at any of the first few ``{``, holding one of the answer's ``keys``, so an object
    inside an answer cut short is not taken for it); an answer cut off at its token budget is
    closed by json_repair only with ``repair``, and then held to the schema like any other.

    An object that names a key twice, or an answer holding two objects, raises
    :class:`AmbiguousAnswer`: which of two decisions the model meant is not for the parser
    to guess (JSON's last-one-wins, or taking the first, would pick one silently).
    """
    text = text.strip()
    decoder = json.JSONDecoder(strict=False, object_pairs_hook=_unique_keys)
    try:
        value = decoder.decode(text)
    except (json.JSONDecodeError, RecursionError):
        found = _first_object(decoder, text, keys)
        if found is not None:
            value, end = found
            if _first_object(decoder, text, keys, end) is not None:
                raise AmbiguousAnswer("the answer holds more than one JSON object") from None
            return value
        start = text.find("{")
        if start < 0 or not repair:
            return None
        try:
            value = json_repair.loads(text[start:])
        except Exception:
            return None
    return value if isinstance(value, dict) else None


def _first_object(
    decoder: json.JSONDecoder, text: str, keys: frozenset[str], start: int = 0
) -> tuple[dict[str, Any], int] | None:
    """The first complete JSON object in ``text`` from ``start`` holding one of ``keys`` (any,
    when none are given) and where it ends (trying the first few ``{``), or None."""
    for tried, match in enumerate(_OBJECT_START.finditer(text, start)):
        if tried >= _OBJECT_STARTS:
            break
        try:
            value, end = decoder.raw_decode(text, match.start())
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(value, dict) and (not keys or keys & value.keys()):
            return value, end
    return None


class AmbiguousAnswer(ValueError):
    """An answer that says two things: a key named twice, or two objects."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise AmbiguousAnswer(f"the answer names {key!r:.80} twice")
        out[key] = value
    return out


def _loose(schema: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """The schema without length bounds (a string cut at the budget is still an answer), and
    without the schemas of fields that have their own (their caller checks them)."""

    def strip(node: Any) -> Any:
        if isinstance(node, Mapping):
            return {k: strip(v) for k, v in node.items() if k != "maxLength"}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    out = dict(strip(schema))
    out["properties"] = {
        name: {} if name in own else sub for name, sub in out["properties"].items()
    }
    return out

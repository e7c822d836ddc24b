"""Which model answers a signature: building a ``dspy.BaseLM`` from a model string.

``local/smollm2`` and ``local:<path.gguf>`` run in this process (:mod:`hybridmcp.capabilities.
local_model`); ``python:<module>:<callable>`` is an LM built by user code; anything else goes
to ``dspy.LM`` (any provider dspy knows, an OpenAI-compatible server among them).

The in-process model is plugged into dspy as an engine. It honours a ``response_format`` JSON
schema by compiling it to a llama.cpp grammar (:func:`~hybridmcp.prompts.grammar.
schema_grammar`), and the call's time limit (set by :func:`~hybridmcp.prompts.running.
arun_signature`) bounds its generation, not its wait in the model's queue.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import dspy
from dspy.lm15 import (
    ContextLengthError,
    Message,
    Request,
    Response,
    TextPart,
    Usage,
    response_to_events,
)
from dspy.utils.exceptions import AdapterParseError

from hybridmcp.capabilities.local_model import (
    LOCAL_MODEL,
    LOCAL_PATH_PREFIX,
    ContextOverflow,
    LocalCompletion,
    LocalModel,
    check_gguf,
    get_local_model,
    import_llama,
    resolve_model_path,
)
from hybridmcp.errors import ConfigError
from hybridmcp.prompts.grammar import schema_grammar

__all__ = [
    "GENERATION_LIMIT",
    "LocalLlamaLM",
    "context_window",
    "describe",
    "make_lm",
    "make_lms",
]

_FACTORY_PREFIX = "python:"
_ERROR_CHARS = 600
# dspy's chat adapter closes every answer with this marker; stopping there saves the tokens a
# small model would spend rambling past the end of the answer.
_DEFAULT_STOP = ("[[ ## completed ## ]]",)
_DEFAULT_CONTEXT = 8192

GENERATION_LIMIT: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "hybridmcp_generation_limit", default=None
)
"""Seconds the current LM call may generate; the local engine passes it to the model's queue."""


def describe(exc: BaseException) -> str:
    """One line naming the failure: an event's ``error``, or the one line of a CLI error.

    A parse failure says what was wrong and quotes the start of the answer (dspy's own text
    spreads the whole answer over several paragraphs); every other error's text is folded
    onto one line."""
    if isinstance(exc, AdapterParseError):
        reason = " ".join(str(exc).split("\n\n", 1)[0].split())
        text = f"{type(exc).__name__}: {reason} (answer: {str(exc.lm_response)!r:.200})"
    else:
        text = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 3] + "..."


# --------------------------------------------------------------------------- the local engine


def _request_messages(request: Request) -> list[dict[str, str]]:
    messages: list[dict[str, str]] = []
    if request.system is not None:
        system = request.system
        text = (
            system if isinstance(system, str) else "".join(getattr(p, "text", "") for p in system)
        )
        messages.append({"role": "system", "content": text})
    for message in request.messages:
        role = message.role if message.role in ("user", "assistant") else "user"
        messages.append({"role": role, "content": message.text or ""})
    return messages


def _grammar(request: Request) -> str | None:
    fmt = request.config.response_format
    if not fmt or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), Mapping):
        return None
    return schema_grammar(fmt["schema"])


class LlamaCppEngine:
    """A dspy engine (``complete(Request) -> Response``) over the in-process model."""

    def __init__(
        self, model_path: Path | None = None, *, seed: int = 0, default_max_tokens: int = 512
    ) -> None:
        self.model_path = model_path
        self.seed = seed
        self.default_max_tokens = default_max_tokens

    def model(self) -> LocalModel:
        return get_local_model(self.model_path)

    def complete(self, request: Request) -> Response:
        try:
            completion = self.model().chat(_request_messages(request), **self._options(request))
        except ContextOverflow as exc:
            raise ContextLengthError(str(exc), provider="llama.cpp") from exc
        return self._response(request, completion)

    async def acomplete(self, request: Request) -> Response:
        model = await asyncio.to_thread(self.model)  # the first call loads the weights
        try:
            completion = await model.achat(_request_messages(request), **self._options(request))
        except ContextOverflow as exc:
            raise ContextLengthError(str(exc), provider="llama.cpp") from exc
        return self._response(request, completion)

    def _options(self, request: Request) -> dict[str, Any]:
        config = request.config
        grammar = _grammar(request)
        return {
            "max_tokens": config.max_tokens or self.default_max_tokens,
            "temperature": 0.0 if config.temperature is None else config.temperature,
            "stop": () if grammar else _DEFAULT_STOP + tuple(config.stop),
            "seed": self.seed if config.seed is None else config.seed,
            "grammar": grammar,
            "time_limit": GENERATION_LIMIT.get(),
        }

    @staticmethod
    def _response(request: Request, completion: LocalCompletion) -> Response:
        return Response(
            id=None,
            model=request.model,
            message=Message.assistant([TextPart(completion.text)]),
            finish_reason=completion.finish_reason,
            usage=Usage(
                input_tokens=completion.prompt_tokens, output_tokens=completion.completion_tokens
            ),
        )

    def stream(self, request: Request) -> Iterator[Any]:
        return iter(response_to_events(self.complete(request)))

    def close(self) -> None:
        """Nothing to release: the loaded model is shared process-wide."""


class AsyncLlamaCppEngine:
    """The async face of :class:`LlamaCppEngine`: an async graph's event loop keeps serving."""

    def __init__(self, engine: LlamaCppEngine) -> None:
        self.engine = engine

    async def complete(self, request: Request) -> Response:
        return await self.engine.acomplete(request)

    async def stream(self, request: Request) -> AsyncIterator[Any]:
        for event in response_to_events(await self.complete(request)):
            yield event

    async def aclose(self) -> None:
        """Nothing to release: the loaded model is shared process-wide."""


class LocalLlamaLM(dspy.LM):
    """A ``dspy.BaseLM`` whose answers come from the in-process GGUF model.

    Construction checks the extra is installed and the file exists, so a bad configuration
    fails at load time; the weights themselves load on the first call. The response cache is
    off by default because dspy's cache persists prompts to disk, and the local model exists
    for text that must not be written anywhere.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        temperature: float = 0.2,
        max_tokens: int = 512,
        seed: int = 0,
        cache: bool = False,
        **kwargs: Any,
    ) -> None:
        import_llama()
        path = resolve_model_path(model_path)
        check_gguf(path)
        explicit = model_path is not None and str(model_path).strip() != ""
        engine = LlamaCppEngine(path if explicit else None, seed=seed)
        super().__init__(
            model=f"{LOCAL_PATH_PREFIX}{path}" if explicit else LOCAL_MODEL,
            temperature=temperature,
            max_tokens=max_tokens,
            cache=cache,
            num_retries=0,
            engine=engine,
            async_engine=AsyncLlamaCppEngine(engine),
            seed=seed,
            **kwargs,
        )
        self.model_path = path
        self.local_engine = engine

    def local_model(self) -> LocalModel:
        """The loaded model (loads it on first use): its tokenizer and context size."""
        return self.local_engine.model()


def context_window(lm: Any) -> int:
    """Tokens of context ``lm`` has: the local model's exact window; for others the
    ``context_window`` an LM factory set on the LM, else dspy's model metadata, else 8,192."""
    if isinstance(lm, LocalLlamaLM):
        return lm.local_model().n_ctx
    given = getattr(lm, "context_window", None) or (getattr(lm, "kwargs", None) or {}).get(
        "context_window"
    )
    if isinstance(given, int) and given > 0:
        return given
    try:
        from dspy.clients.model_metadata import model_info

        info = model_info(str(getattr(lm, "model", "")))
        found = getattr(info, "max_input_tokens", None) or (
            info.get("max_input_tokens") if isinstance(info, Mapping) else None
        )
        if isinstance(found, int) and found > 0:
            return found
    except Exception:  # metadata is a hint; an unknown model gets the default
        pass
    return _DEFAULT_CONTEXT


# --------------------------------------------------------------------------- construction


def make_lm(
    model: str, temperature: float = 0.2, max_tokens: int = 1500, **kwargs: Any
) -> dspy.BaseLM:
    """The LM a model string from ``llm_config`` names.

    ``local/smollm2`` and ``local:<path.gguf>`` run in-process; anything else is handed to
    ``dspy.LM`` (any provider dspy/litellm knows, with the user's keys from the environment).
    Bad strings fail here, at configuration time, rather than on the first call.
    """
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"llm_config: model must be a non-empty string, got {model!r}")
    model = model.strip()
    if model == LOCAL_MODEL:
        return LocalLlamaLM(temperature=temperature, max_tokens=max_tokens, **kwargs)
    if model.startswith(LOCAL_PATH_PREFIX):
        path = model[len(LOCAL_PATH_PREFIX) :].strip()
        if not path:
            raise ConfigError(f"llm_config: {model!r} names no file; use 'local:<path.gguf>'")
        return LocalLlamaLM(path, temperature=temperature, max_tokens=max_tokens, **kwargs)
    if model.startswith("local/"):
        raise ConfigError(
            f"llm_config: unknown local model {model!r}; use {LOCAL_MODEL!r} or 'local:<path.gguf>'"
        )
    if model.startswith(_FACTORY_PREFIX):
        return _lm_from_factory(model, temperature=temperature, max_tokens=max_tokens, **kwargs)
    try:
        return dspy.LM(model, temperature=temperature, max_tokens=max_tokens, **kwargs)
    except Exception as exc:  # dspy raises ValueError, TypeError or its own config errors
        raise ConfigError(f"llm_config: cannot use model {model!r}: {exc}") from exc


def _lm_from_factory(model: str, **kwargs: Any) -> dspy.BaseLM:
    """``python:<module>:<callable>``: an LM built by user code (an in-house gateway, a
    scripted LM in tests), called with the configured ``temperature`` and ``max_tokens``."""
    from hybridmcp.capabilities.registry import resolve_function

    spec = model[len(_FACTORY_PREFIX) :].strip()
    if ":" not in spec:
        raise ConfigError(f"llm_config: {model!r} must name 'python:<module>:<callable>'")
    factory = resolve_function(spec)
    try:
        lm = factory(**kwargs)
    except Exception as exc:
        raise ConfigError(f"llm_config: LM factory {spec!r} failed: {describe(exc)}") from exc
    if not isinstance(lm, dspy.BaseLM):
        raise ConfigError(
            f"llm_config: LM factory {spec!r} returned {type(lm).__name__}, not a dspy.BaseLM"
        )
    return lm


def make_lms(llm_config: Mapping[str, Any] | Any) -> dict[str, dspy.BaseLM]:
    """One LM per ``*_model`` key of an ``llm_config`` (mapping or model object).

    Roles that name the same model share one LM instance, so a local model's lock and
    history are not split across copies. Keys: ``coordinator_model`` gives role
    ``coordinator``, and so on.
    """
    values = (
        dict(llm_config)
        if isinstance(llm_config, Mapping)
        else dict(getattr(llm_config, "model_dump", lambda: vars(llm_config))())
    )
    temperature = float(values.get("temperature", 0.2))
    max_tokens = int(values.get("max_tokens", 1500))
    by_model: dict[str, dspy.BaseLM] = {}
    lms: dict[str, dspy.BaseLM] = {}
    for key, model in values.items():
        if not key.endswith("_model") or model is None:
            continue
        if model not in by_model:
            by_model[model] = make_lm(model, temperature=temperature, max_tokens=max_tokens)
        lms[key.removesuffix("_model")] = by_model[model]
    return lms

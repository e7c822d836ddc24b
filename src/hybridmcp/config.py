"""The configuration model: the spec's YAML sections, MCP servers, and skills.

A configuration is loaded from YAML or JSON and checked whole here, at the edge, before any MCP
server is started: every problem is one line naming its key
(``skills.time.now.providers.0.server: ...``), all reported at once. MCP server entries are
accepted as the MCP clients write them (Claude Desktop, Cursor, VS Code, Cline,
langchain-mcp-adapters); keys of an entry that nothing reads are dropped with a warning.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from importlib.machinery import PathFinder
from pathlib import Path
from typing import Annotated, Any, Literal, TypeGuard

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    SecretStr,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hybridmcp.entities import PrivacyConfig
from hybridmcp.errors import ConfigError
from hybridmcp.limits import (
    Amount,
    InputLimitError,
    InputLimits,
    decode,
    parse_document,
    preview,
    read_file,
)
from hybridmcp.sensitivity import Sensitivity, SensitivityField

Effect = Literal["read", "idempotent", "write"]
"""A provider's effect class (see :mod:`hybridmcp.policy.effects`)."""
DEFAULT_ERROR_PATTERNS: tuple[str, ...] = (
    r"^\s*(?:[A-Za-z][\w ]{0,40}?\s)?(?:error|exception)\s*:",
    r"^\s*Traceback \(most recent call last\)",
    r"^\s*(?:failed|failure)\s*:",
)
"""Text answers that start like these are errors (case-insensitive), unless structured
(:mod:`hybridmcp.policy.output`)."""

Side = Literal["internal", "external"]
Strategy = Literal["auto", "internal", "external", "hybrid"]
IntegrationStrategy = Literal["consensus", "weighted_average", "best_performer", "hybrid_synthesis"]
ElicitationPolicy = Literal["decline", "defaults", "ask"]
SamplingPolicy = Literal["decline", "lm"]
LMRole = Literal["coordinator", "arbitrator", "synchronizer", "planner"]


MAX_DURATION_S = 30 * 86_400
"""The longest duration a configuration may give (30 days): longer ones are refused, as a
timer of 1e300 ms is no deadline at all (and more than a ``timedelta`` can hold)."""
_SECONDS = frozenset({"timeout", "sse_read_timeout", "read_timeout_seconds"})
"""Duration fields in seconds that do not end in ``_s`` (langchain-mcp-adapters' names)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("*", mode="after")
    @classmethod
    def _bounded_duration(cls, value: Any, info: ValidationInfo) -> Any:
        """Every duration (a field named ``*_ms``, ``*_s`` or a timeout in seconds) is at
        most :data:`MAX_DURATION_S`."""
        if not isinstance(value, int | float) or isinstance(value, bool):
            return value
        name = info.field_name or ""
        if name.endswith("_ms"):
            limit, unit = MAX_DURATION_S * 1000, "ms"
        elif name.endswith("_s") or name in _SECONDS:
            limit, unit = MAX_DURATION_S, "s"
        else:
            return value
        if value > limit:
            raise ValueError(f"a duration of at most 30 days ({limit} {unit})")
        return value


@dataclass
class _Check:
    """What validating one configuration found beyond pydantic's own errors: passed to the
    validators as the validation context by :func:`parse_config`."""

    base_dir: Path | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    server_keys: dict[str, str] = field(default_factory=dict)
    """Each server entry's name -> the top-level key it was written under."""


def key_path(key: Any) -> str:
    """One step of a key path as an error message shows it: ``.name`` (dots and all, as in
    ``skills.time.now``), ``.0`` for a list index; a key that could not be read back that way
    (empty, with spaces, control characters or brackets) as ``['its repr']``."""
    text = str(key)
    plain = text and text.isprintable() and not any(c.isspace() or c in "[]'\"" for c in text)
    return f".{text}" if plain or isinstance(key, int) else f"[{preview(text, 40)}]"


def _check_of(info: ValidationInfo) -> _Check | None:
    context = info.context
    check = context.get("check") if isinstance(context, dict) else None
    return check if isinstance(check, _Check) else None


_IMPORT_LOCK = threading.Lock()


def import_function(spec: str, base_dir: Path | None = None) -> Callable[..., Any]:
    """Import ``module:function`` (``function`` may be dotted: ``module:Class.method``).

    A module that is not importable as installed is looked for in ``base_dir`` (the
    configuration file's directory): when found there, that directory is added to the end of
    ``sys.path``, so installed packages keep precedence and the module's own imports of its
    neighbours work too. Raises :class:`ValueError` with one line saying what is wrong."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        top = module_name.partition(".")[0]
        where = str(base_dir) if base_dir is not None else None
        if err.name != top or where is None or PathFinder.find_spec(top, [where]) is None:
            raise ValueError(f"cannot import {module_name!r}: {_one_line(err)}") from None
        with _IMPORT_LOCK:
            if where not in sys.path:
                sys.path.append(where)
        try:
            module = importlib.import_module(module_name)
        except (Exception, SystemExit) as again:
            raise ValueError(f"cannot import {module_name!r}: {_one_line(again)}") from None
    except (Exception, SystemExit) as err:  # the module fails: a syntax error, an exception
        raise ValueError(f"cannot import {module_name!r}: {_one_line(err)}") from None
    fn: Any = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise ValueError(f"{module_name!r} has no {attr!r}")
    if not callable(fn):
        raise ValueError(f"{module_name}:{attr} is not callable")
    return fn


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    text = text if len(text) <= 200 else text[:199] + "…"
    return text if isinstance(err, ImportError) else f"{type(err).__name__}: {text}"


class CoordinationConfig(_Model):
    """The spec's ``coordination_config`` plus the execution knobs it implies."""

    parallel_execution: bool = True
    dynamic_reallocation: bool = True
    performance_monitoring: bool = True
    cost_optimization: bool = True
    quality_validation: bool = True
    max_rounds: int = Field(3, ge=1, le=20, description="Reallocation rounds before giving up.")
    fallback: bool = Field(
        True,
        description="A request pinned to a side (strategy internal/external) that this side "
        "cannot serve is served by the other side (event PIN_OVERRIDDEN); false makes it fail.",
    )
    default_timeout_ms: float = Field(10_000, gt=0, description="Deadline of one provider call.")
    integration_strategy: IntegrationStrategy = "consensus"
    interrupt_on_conflict: bool = Field(
        False,
        description="Pause the run with interrupt() for a human decision on conflicts "
        "(needs a checkpointer; resume with Command(resume={request_id: choice})).",
    )
    conflict_interrupt_threshold: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Minimum disagreement (1 - similarity) of a conflict that pauses the run.",
    )


class CapabilityMapping(_Model):
    internal_strengths: list[str] = ["complex_reasoning", "context_awareness", "privacy_sensitive"]
    external_strengths: list[str] = [
        "specialized_domains",
        "large_scale_processing",
        "real_time_data",
    ]
    strength_bonus: float = Field(
        0.15, ge=0, le=1, description="Quality bonus of a side for each matched strength."
    )


WEIGHT_TOLERANCE = 1e-3
"""How far from 1 the four weights may sum (decimals such as 0.333 + 0.333 + 0.334 + 0)."""


class OptimizationCriteria(_Model):
    """The spec's weights: each factor's share of a provider's fitness, so they sum to 1.

    They are never normalised behind the user's back: weights that do not sum to 1 are refused
    (a partial section is completed with the defaults before the sum is taken)."""

    performance_weight: float = Field(0.4, ge=0)
    cost_weight: float = Field(0.3, ge=0)
    quality_weight: float = Field(0.2, ge=0)
    security_weight: float = Field(0.1, ge=0)

    @model_validator(mode="after")
    def _shares(self) -> OptimizationCriteria:
        if abs(self.total - 1) > WEIGHT_TOLERANCE:
            parts = " + ".join(
                f"{name.removesuffix('_weight')} {getattr(self, name):g}"
                + ("" if name in self.model_fields_set else " (default)")
                for name in type(self).model_fields
            )
            raise ValueError(
                f"the weights must sum to 1 (each is its factor's share of the fitness "
                f"score), got {self.total:g} = {parts}"
            )
        return self

    @property
    def total(self) -> float:
        return (
            self.performance_weight + self.cost_weight + self.quality_weight + self.security_weight
        )


class ValidationSampling(_Model):
    """When cross-validation has stopped telling anything new, validate a sample instead.

    A request arbitration would cross-validate only because of the bias band or the decision
    threshold (never a requested ``hybrid``, never ``critical``, never with a hard constraint
    applying) runs on the fitter side alone once both candidates' answers for its skill have
    agreed consistently. A deterministic share is still cross-validated (an audit), so a provider
    that starts to disagree is noticed; one disagreement brings back full cross-validation.
    """

    enabled: bool = Field(
        True, description="Learn when cross-validation can be sampled; false: always validate."
    )
    min_cross_validations: int = Field(
        10,
        ge=1,
        description="Agreeing cross-validations in a row (since the last disagreement) each "
        "candidate needs before its skill's requests run on one side.",
    )
    min_agreement: float = Field(
        0.95,
        ge=0,
        le=1,
        description="Minimum share of each candidate's cross-validations (all of them, "
        "not only the latest) that agreed.",
    )
    audit_share: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Share of such requests still cross-validated, chosen by a hash of the run "
        "id and request id (a resumed run decides the same); 1 validates every one.",
    )


class ArbitrationConfig(_Model):
    decision_threshold: float = Field(
        0.7,
        ge=0,
        le=1,
        description="Minimum fitness for a single-side allocation; below it, cross-validate.",
    )
    bias_ratio: float = Field(1.2, ge=1, description="The spec's 1.2 rule.")
    reallocation_frequency: Literal["adaptive", "per_round", "never"] = "adaptive"
    performance_baseline: Literal["moving_average"] = "moving_average"
    cost_tracking: bool = True
    latency_scale_ms: float = Field(
        250, gt=0, description="Latency at which the performance score is 0.5."
    )
    cost_scale: float = Field(
        0.01, gt=0, description="Cost per call at which the cost score is 0.5."
    )
    ewma_alpha: float = Field(0.2, gt=0, le=1, description="Weight of the newest observation.")
    prior_weight: float = Field(
        3, ge=0, description="Observations a provider's configured priors count for."
    )
    stale_half_life: float = Field(
        25,
        gt=0,
        description="Allocations passing a provider over after which its learned evidence has "
        "halved (its predictions drift back toward its priors, so it is tried again).",
    )
    validation_sampling: ValidationSampling = Field(
        default_factory=ValidationSampling,
        description="Single-side allocation, with audits, once the sides agree consistently.",
    )


class LLMConfig(_Model):
    """The LM per role; a role whose model is ``null`` (the default) runs deterministically.

    Model strings: ``local/smollm2`` (the bundled private model), ``local:<path.gguf>``,
    ``python:<module>:<factory>`` (a callable returning a ``dspy.BaseLM``), or any provider
    string ``dspy.LM`` accepts (``openai/gpt-4o-mini``, ...), with keys from the environment.
    """

    coordinator_model: str | None = None
    arbitrator_model: str | None = None
    synchronizer_model: str | None = None
    planner_model: str | None = None
    temperature: float = Field(0.2, ge=0, le=2)
    max_tokens: int = Field(1500, gt=0)
    timeout_ms: float = Field(
        30_000, gt=0, description="Deadline of one LM call; past it the step falls back."
    )


class ClientInfo(_Model):
    name: str
    version: str


class SessionKwargs(_Model):
    """The ``ClientSession`` arguments a configuration file can set (the ``session_kwargs`` of a
    langchain-mcp-adapters connection; callbacks cannot come from a file)."""

    read_timeout_seconds: float | None = Field(
        None, gt=0, description="Read timeout of each request of the session, in seconds."
    )
    client_info: ClientInfo | None = Field(
        None, description="The name and version the client announces to the server."
    )


def _as_strings(value: Any) -> Any:
    """``env`` and ``headers`` values written as YAML numbers or booleans, as the strings a
    process environment or an HTTP header holds (``PORT: 8080`` -> ``"8080"``)."""
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if isinstance(item, bool):
            item = "true" if item else "false"
        elif isinstance(item, int | float):
            item = str(item)
        out[key] = item
    return out


class _ServerCommon(_Model):
    """What every MCP server entry may say, whatever its transport.

    Entries are accepted as MCP clients write them (Claude Desktop, Cursor, VS Code, Cline,
    langchain-mcp-adapters); :func:`_normalize_server` maps their spellings onto these fields
    and warns of (then drops) keys no field takes. A new key is a new field here (or on the
    transport's model below): nothing else needs to learn about it.
    """

    timeout_ms: float | None = Field(None, gt=0, description="Deadline of one call to this server.")
    timeout: float | None = Field(
        None,
        gt=0,
        description="Seconds (Cline, langchain-mcp-adapters): the deadline of one call when "
        "timeout_ms is not given; for HTTP and SSE also the transport's HTTP timeout.",
    )
    startup_timeout_ms: float = Field(20_000, gt=0)
    clearance: SensitivityField = Sensitivity.public
    cost_per_call: Amount = 0.001
    enabled: bool = True
    disabled: bool | None = Field(
        None, description="Cline's spelling of enabled: false (the server is not started)."
    )
    autoApprove: list[str] = Field(
        default_factory=list,
        description="Cline's tools approved without asking. Accepted; hybridmcp asks no "
        "approval per call, so it changes nothing.",
    )
    alwaysAllow: list[str] = Field(
        default_factory=list, description="Roo Code's spelling of autoApprove (changes nothing)."
    )
    description: str = ""
    read_only: bool = Field(
        False,
        description="Every tool of this server only reads: the effect class of its tools whose "
        "annotations say nothing (otherwise 'write').",
    )
    max_concurrency: int = Field(
        8, ge=1, le=1024, description="Calls in flight on this server at once; more wait."
    )
    max_message_bytes: int = Field(
        16_000_000,
        gt=0,
        description="The longest message the server may send (a stdio line, an HTTP body, one "
        "SSE event); past it the message is refused, naming why, never read whole.",
    )
    session_kwargs: SessionKwargs | None = Field(
        None, description="ClientSession arguments (langchain-mcp-adapters)."
    )

    @model_validator(mode="after")
    def _spellings(self) -> Any:
        if self.disabled is not None:
            if "enabled" in self.model_fields_set and self.enabled == self.disabled:
                raise ValueError("'enabled' and 'disabled' contradict each other: give one")
            self.enabled = not self.disabled
        if self.timeout_ms is None and self.timeout is not None:
            self.timeout_ms = self.timeout * 1000
        return self

    roots: list[str] | None = Field(
        None,
        description="Directories (paths or file:// URIs) offered to the server as MCP roots; "
        "relative paths are taken from the configuration file's directory. None: the roots "
        "capability is not advertised.",
    )
    elicitation: ElicitationPolicy | None = Field(
        None,
        description="What to do when the server asks the user for input: decline, accept the "
        "requested schema's defaults, or ask a human (the run pauses with interrupt()). "
        "None: the elicitation capability is not advertised.",
    )
    sampling: SamplingPolicy | None = Field(
        None,
        description="What to do when the server asks for a model completion: decline, or "
        "answer with the LM of sampling_role (through privacy policy, budget and audit). "
        "None: the sampling capability is not advertised.",
    )
    sampling_role: LMRole = Field(
        "coordinator", description="The llm_config role whose model answers sampling requests."
    )
    sampling_max_tokens: int = Field(
        512,
        gt=0,
        description="The most tokens a sampling answer may have (the server may ask for fewer).",
    )
    sampling_cost: Amount = Field(
        0.0, description="What one sampling answer costs against the run's budget."
    )
    extend_deadline_on_progress: bool = Field(
        False,
        description="A progress notification from the server restarts the call's deadline "
        "(timeout_ms from the notification), up to max_call_ms and the run's deadline.",
    )
    max_call_ms: float = Field(
        300_000,
        gt=0,
        description="The longest a call may run when progress keeps extending its deadline.",
    )

    @field_validator("roots")
    @classmethod
    def _root_uris(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is None:
            return None
        base = (info.context or {}).get("base_dir")
        return [root_uri(root, base) for root in value]


def root_uri(root: str, base: str | os.PathLike[str] | None = None) -> str:
    """A root as a ``file://`` URI: an absolute path, or one relative to ``base`` (the
    configuration file's directory; else the working directory)."""
    if not isinstance(root, str) or not root.strip():
        raise ValueError(f"a root must be a non-empty path or file:// URI, got {root!r}")
    if root.startswith("file://"):
        return root
    if "://" in root:
        raise ValueError(f"a root must be a path or a file:// URI, got {root!r}")
    path = Path(root).expanduser()
    if not path.is_absolute():
        path = Path(base or Path.cwd()) / path
    return path.resolve(strict=False).as_uri()


class StdioServer(_ServerCommon):
    transport: Literal["stdio"] = "stdio"
    command: str
    args: list[str] = []
    env: dict[str, str] | None = None
    cwd: str | None = None
    encoding: str | None = Field(None, description="Of the server's stdio (default utf-8).")
    encoding_error_handler: Literal["strict", "ignore", "replace"] | None = None

    _strings = field_validator("env", mode="before")(_as_strings)


TokenEndpointAuth = Literal["client_secret_basic", "client_secret_post", "none", "private_key_jwt"]
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")


class OAuthConfig(_Model):
    """OAuth 2.1 authorization of an HTTP server (``auth:`` in its entry), built on the MCP SDK's
    OAuth providers: discovery, registration, PKCE, scopes, refresh. Tokens are kept in the
    token database beside the run database (``hybridmcp auth login`` / ``auth status``)."""

    grant: Literal["authorization_code", "client_credentials"] = Field(
        "authorization_code",
        description="authorization_code: a user authorizes once (`hybridmcp auth login`); "
        "client_credentials: machine-to-machine, with a client secret or a private-key JWT.",
    )
    client_id: str | None = Field(
        None, description="A pre-registered client id; none: the client registers itself."
    )
    client_secret: SecretStr | None = Field(None, description="The pre-registered client secret.")
    client_secret_env: str | None = Field(
        None, description="An environment variable holding the client secret instead."
    )
    token_endpoint_auth_method: TokenEndpointAuth | None = Field(
        None,
        description="How the client authenticates at the token endpoint; default: "
        "client_secret_basic with a secret, private_key_jwt with a key, else none.",
    )
    private_key_file: str | None = Field(
        None, description="PEM private key signing the client's JWT assertion (private_key_jwt)."
    )
    signing_algorithm: str = Field("RS256", description="The JWT assertion's algorithm (ES256...).")
    issuer: str | None = Field(
        None,
        description="client_credentials: the authorization server the credentials belong to; "
        "they are sent to no other.",
    )
    client_metadata_url: str | None = Field(
        None,
        description="An HTTPS URL of this client's metadata document, used as its client id "
        "where the authorization server supports it (instead of registering).",
    )
    client_name: str = "hybridmcp"
    scope: str | None = Field(
        None, description="Scopes to ask for; none: the ones the server asks for or supports."
    )
    redirect_uri: str = Field(
        "http://localhost:33418/callback",
        description="Where the browser returns with the code: a loopback URL is answered by a "
        "local listener; any other URL is pasted back by hand.",
    )
    browser: str | None = Field(
        None,
        description="Command that opens the authorization URL (appended as its last argument); "
        "default: the system browser, and the URL is printed.",
    )
    authorize_during_run: bool = Field(
        False,
        description="Let a run open the browser when the server asks for (more) authorization; "
        "false: the run stops with 'needs authentication: run hybridmcp auth login SERVER'.",
    )
    login_timeout_s: float = Field(300, gt=0, description="How long to wait for the browser.")

    @model_validator(mode="after")
    def _consistent(self) -> OAuthConfig:
        if self.client_secret is not None and self.client_secret_env is not None:
            raise ValueError("give client_secret or client_secret_env, not both")
        if self.grant == "client_credentials":
            if self.client_id is None:
                raise ValueError("client_credentials needs client_id")
            has_secret = self.client_secret is not None or self.client_secret_env is not None
            if has_secret == (self.private_key_file is not None):
                raise ValueError(
                    "client_credentials needs a client secret (client_secret or "
                    "client_secret_env) or a private_key_file, and not both"
                )
        elif self.private_key_file is not None:
            raise ValueError("private_key_file is for grant client_credentials")
        scheme, _, rest = self.redirect_uri.partition("://")
        if scheme not in ("http", "https") or not rest:
            raise ValueError(f"redirect_uri must be an http(s) URL, got {self.redirect_uri!r}")
        if self.client_metadata_url is not None and not self.client_metadata_url.startswith(
            "https://"
        ):
            raise ValueError("client_metadata_url must be an https:// URL")
        return self

    def secret(self) -> str | None:
        """The client secret, read from the environment when so configured."""
        if self.client_secret is not None:
            return self.client_secret.get_secret_value()
        if self.client_secret_env is None:
            return None
        value = os.environ.get(self.client_secret_env)
        if not value:
            raise ConfigError(
                f"auth.client_secret_env: environment variable {self.client_secret_env!r} "
                "is not set"
            )
        return value

    def loopback(self) -> tuple[str, int, str] | None:
        """``(host, port, path)`` of a loopback redirect URI (a local listener answers it)."""
        from urllib.parse import urlsplit

        parts = urlsplit(self.redirect_uri)
        if parts.scheme != "http" or parts.hostname is None:
            return None
        host = parts.hostname
        if host not in _LOOPBACK_HOSTS:
            return None
        return host, parts.port or 80, parts.path or "/"


class HttpServer(_ServerCommon):
    transport: Literal["streamable_http", "sse"] = "streamable_http"
    url: str
    headers: dict[str, str] | None = Field(
        None, description="Sent with every HTTP request to the server (authorization, ...)."
    )
    sse_read_timeout: float | None = Field(
        None, gt=0, description="Seconds to wait for the next event of a stream."
    )
    terminate_on_close: bool | None = Field(
        None, description="Streamable HTTP: end the server's session when closing (default)."
    )
    auth: OAuthConfig | None = Field(
        None, description="OAuth authorization of this server (see docs/authorization.md)."
    )

    _strings = field_validator("headers", mode="before")(_as_strings)


_SERVER_TAGS = {"stdio": "StdioServer", "streamable_http": "HttpServer", "sse": "HttpServer"}


def _server_tag(value: Any) -> str | None:
    transport = value.get("transport") if isinstance(value, dict) else None
    if isinstance(value, _ServerCommon):
        transport = getattr(value, "transport", None)
    return _SERVER_TAGS.get(transport) if isinstance(transport, str) else None


ServerConfig = Annotated[
    Annotated[StdioServer, Tag("StdioServer")] | Annotated[HttpServer, Tag("HttpServer")],
    Discriminator(
        _server_tag,
        custom_error_type="server_transport",
        custom_error_message="needs 'command' (a stdio server) or 'url' (an HTTP or SSE server)",
    ),
]

_TRANSPORT_ALIASES = {
    "stdio": "stdio",
    "http": "streamable_http",
    "streamable-http": "streamable_http",
    "streamable_http": "streamable_http",
    "streamableHttp": "streamable_http",
    "sse": "sse",
}


def _field_names(model: type[BaseModel]) -> set[str]:
    return {alias for name, f in model.model_fields.items() for alias in (name, f.alias) if alias}


def _drop_unknown(
    data: dict[str, Any], model: type[BaseModel], path: str, check: _Check | None, other: str = ""
) -> None:
    """Warn of (and drop) the keys ``model`` has no field for; ``other``: the model that would
    take a key that belongs to the other kind of server."""
    known = _field_names(model)
    for key in [k for k in data if k not in known]:
        elsewhere = other and key in _field_names(StdioServer if other == "stdio" else HttpServer)
        why = f"ignored: a key of {other} servers" if elsewhere else "unknown key, ignored"
        if check is None:
            raise ValueError(f"{path}{key_path(key)}: {why}")
        check.warnings.append(f"{path}{key_path(key)}: {why}")
        del data[key]


_VARIABLE = re.compile(r"\$\{(env:[^}]*|workspaceFolder|userHome|input:[^}]*)\}")
_EXPANDED = ("command", "args", "env", "cwd", "url", "headers", "envFile")
"""The keys whose strings may hold ``${env:NAME}``, ``${workspaceFolder}``, ``${userHome}``."""


def _expand(value: Any, path: str, check: _Check, problems: list[str]) -> Any:
    """VS Code's and Cursor's variables in a string (or the strings of a list or mapping):
    ``${env:NAME}`` (must be set), ``${workspaceFolder}`` (the configuration's directory, or
    its parent when that is ``.vscode`` or ``.cursor``), ``${userHome}``. ``${input:...}``
    cannot be prompted for: it stays as written, with a warning."""
    if isinstance(value, list):
        return [_expand(v, f"{path}.{i}", check, problems) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _expand(v, f"{path}{key_path(k)}", check, problems) for k, v in value.items()}
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("env:"):
            found = os.environ.get(name[4:])
            if found is None:
                problems.append(f"{path}: environment variable {name[4:]!r} is not set")
                return match.group(0)
            return found
        if name == "userHome":
            return str(Path.home())
        if name == "workspaceFolder":
            folder = check.base_dir or Path.cwd()
            return str(folder.parent if folder.name in (".vscode", ".cursor") else folder)
        check.warnings.append(f"{path}: {match.group(0)} cannot be prompted for; left as written")
        return match.group(0)

    return _VARIABLE.sub(substitute, value)


def _read_env_file(value: Any, path: str, check: _Check) -> dict[str, str] | str:
    """``envFile`` (VS Code, Cursor): ``NAME=value`` lines (``#`` comments, ``export``,
    quotes) read now, so a missing file is a problem of the configuration; or the problem."""
    if not isinstance(value, str):
        return f"{path}: expected a file name, got {preview(value)}"
    file = Path(value).expanduser()
    if not file.is_absolute():
        file = (check.base_dir or Path.cwd()) / file
    try:
        text = decode(read_file(file, InputLimits()))
    except OSError as err:
        return f"{path}: cannot read {str(file)!r}: {err.strerror}"
    except InputLimitError as err:
        return f"{path}: {str(file)!r}: {err}"
    found: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, item = line.removeprefix("export ").partition("=")
        item = item.strip()
        if len(item) >= 2 and item[0] == item[-1] and item[0] in "'\"":
            item = item[1:-1]
        found[name.strip()] = item
    return found


def _normalize_server(raw: Any, path: str, check: _Check | None) -> Any:
    """One server entry as MCP clients write it, in this model's terms (``None``: refused,
    the problem noted in ``check``).

    ``type`` (VS Code, Cline, Cursor), ``transportType`` (older Cline) or ``transport``
    (langchain-mcp-adapters), any spelling of the transport;
    neither: stdio when there is a ``command``, streamable HTTP when there is a ``url``."""

    def refuse(message: str) -> None:
        if check is None:
            raise ValueError(message)
        check.problems.append(message)

    if not isinstance(raw, dict):
        refuse(f"{path}: expected a mapping (a server entry), got {preview(raw)}")
        return None
    data = dict(raw)

    spellings = ("type", "transportType", "transport")  # VS Code/Cursor, older Cline, langchain
    given = {k: data.pop(k, None) if k != "transport" else data.get(k) for k in spellings}
    given = {k: v for k, v in given.items() if v is not None}
    kinds = {k: _TRANSPORT_ALIASES.get(v) if isinstance(v, str) else None for k, v in given.items()}
    for key, kind in kinds.items():
        if kind is None:
            refuse(
                f"{path}.{key}: unknown transport {preview(given[key])}; "
                "use stdio, http (streamable_http) or sse"
            )
            return None
    if len(set(kinds.values())) > 1:
        said = " and ".join(f"{k!r} {v!r}" for k, v in given.items())
        refuse(f"{path}: {said} name different transports")
        return None
    kind = next(iter(kinds.values()), None)
    if kind is None:
        kind = "stdio" if "command" in data else "streamable_http" if "url" in data else None
    if kind is None:
        refuse(f"{path}: needs 'command' (a stdio server) or 'url' (an HTTP or SSE server)")
        return None
    data["transport"] = kind
    off = data.get("disabled") is True or data.get("enabled") is False
    if off and kind == "stdio":
        data.pop("envFile", None)  # never read for a server that is not started
    if check is not None and not off:
        problems: list[str] = []
        for key in _EXPANDED:
            if key in data:
                data[key] = _expand(data[key], f"{path}.{key}", check, problems)
        if kind == "stdio" and "envFile" in data:
            read = _read_env_file(data.pop("envFile"), f"{path}.envFile", check)
            if isinstance(read, str):
                problems.append(read)
            elif "env" not in data or isinstance(data["env"], dict):
                data["env"] = read | (data.get("env") or {})  # env itself wins
        if problems:
            check.problems.extend(problems)
            return None
    model: type[BaseModel] = StdioServer if kind == "stdio" else HttpServer
    _drop_unknown(data, model, path, check, other="HTTP" if kind == "stdio" else "stdio")
    if isinstance(data.get("session_kwargs"), dict):
        data["session_kwargs"] = dict(data["session_kwargs"])
        _drop_unknown(data["session_kwargs"], SessionKwargs, f"{path}.session_kwargs", check)
    return data


class ComparatorConfig(_Model):
    """How two answers are compared in cross-validation."""

    type: Literal["exact", "numeric", "json_subset", "text_similarity", "datetime", "fields"] = (
        "exact"
    )
    tolerance: float = Field(1e-9, ge=0, description="numeric: relative; datetime: seconds.")
    threshold: float = Field(0.8, ge=0, le=1, description="text_similarity: minimum ratio.")
    fields: dict[str, ComparatorConfig] | list[str] | None = Field(
        None,
        description="json_subset: the keys to compare; fields: a comparator per key.",
    )


class InternalProviderConfig(_Model):
    side: Literal["internal"] = "internal"
    function: str = Field(description="A Python callable as 'module:function'.")
    name: str | None = None
    quality: float = Field(0.9, ge=0, le=1, description="Prior quality before anything is learned.")
    expected_latency_ms: float = Field(1.0, ge=0)
    cost_per_call: Amount = 0.0
    timeout_ms: float | None = Field(None, gt=0)
    effect: Effect | None = Field(
        None,
        description="read | idempotent | write; overrides the skill's and the tool's annotations.",
    )

    @field_validator("function")
    @classmethod
    def _module_colon_function(cls, v: str, info: ValidationInfo) -> str:
        module, _, attr = v.partition(":")
        if not module or not attr:
            raise ValueError(f"expected 'module:function', got {preview(v)}")
        check = _check_of(info)
        if check is not None:  # a whole configuration: the function must import now
            import_function(v, check.base_dir)
        return v


class ExternalProviderConfig(_Model):
    side: Literal["external"] = "external"
    server: str
    tool: str
    name: str | None = None
    arguments: dict[str, Any] | None = Field(
        None,
        description="Tool argument -> '$.path' into the canonical input, or a constant. "
        "None passes the canonical input through unchanged.",
    )
    result: str | None = Field(None, description="'$.path' into the tool's result; None: whole.")
    quality: float = Field(0.9, ge=0, le=1)
    expected_latency_ms: float = Field(25.0, ge=0)
    cost_per_call: Amount | None = Field(None, description="Default: the server's.")
    timeout_ms: float | None = Field(None, gt=0)
    effect: Effect | None = Field(
        None,
        description="read | idempotent | write; overrides the skill's and the tool's annotations.",
    )


ProviderConfig = Annotated[
    InternalProviderConfig | ExternalProviderConfig, Field(discriminator="side")
]


class SkillConfig(_Model):
    description: str = ""
    input_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object"}, alias="input_schema"
    )
    providers: list[ProviderConfig] = Field(min_length=1)
    comparator: ComparatorConfig = ComparatorConfig()
    integration: IntegrationStrategy | None = None
    tags: list[str] = Field(
        default_factory=list,
        description="Requirement tags matched against capability_mapping strengths.",
    )
    complexity: Literal["low", "medium", "high"] = "low"
    effect: Effect | None = Field(
        None, description="read | idempotent | write, for every provider that declares none."
    )


class BreakerConfig(_Model):
    """Circuit breaker per external provider (see docs/resilience.md for the defaults)."""

    enabled: bool = True
    failure_rate_threshold: float = Field(
        0.5, gt=0, le=1, description="Open when failures (or slow calls) reach this share."
    )
    window_size: int = Field(20, ge=1, description="Outcomes kept (count-based window).")
    minimum_calls: int = Field(10, ge=1, description="Outcomes needed before a rate counts.")
    consecutive_failures: int = Field(
        5, ge=1, description="Open after this many failed calls in a row (slow: as a rate)."
    )
    open_ms: float = Field(30_000, gt=0, description="First open period; doubles per re-open.")
    max_open_ms: float = Field(300_000, gt=0, description="Longest open period.")
    half_open_calls: int = Field(3, ge=1, description="Trial calls that must all succeed.")


class HedgingConfig(_Model):
    """Hedged requests: start the other side when a single-side call runs past its tail."""

    enabled: bool = True
    budget_ratio: float = Field(
        0.05, ge=0, le=1, description="Hedges earned per single-side request (5% extra load)."
    )
    budget_burst: float = Field(10, ge=0, description="Most unspent hedges kept.")
    min_observations: int = Field(
        10, ge=1, description="Calls a latency estimate needs before it triggers hedges."
    )
    min_delay_ms: float = Field(5, ge=0, description="Never hedge sooner than this.")


class DegradationConfig(_Model):
    """Degradation against the moving-average baseline (``performance_baseline``)."""

    latency_ewma_factor: float = Field(3.0, ge=1, description="Slow: above this x EWMA...")
    latency_p95_factor: float = Field(1.5, ge=1, description="...and this x the p95 estimate.")
    min_observations: int = Field(5, ge=1, description="Calls the baseline needs first.")
    min_slow_ms: float = Field(
        10.0, ge=0, description="Never call an answer faster than this slow (scheduling noise)."
    )
    recent_window: int = Field(
        32,
        ge=0,
        description="Answered latencies kept per provider: the slow threshold never falls "
        "below latency_ewma_factor x their 75th percentile, so load that slows every call is "
        "not degradation.",
    )
    error_rate_increase: float = Field(
        0.3, gt=0, le=1, description="Error rate above baseline that counts as degraded."
    )
    cut_stragglers: bool = Field(
        True,
        description="In a hybrid request, stop waiting for a side past its slow threshold "
        "once the other side answered.",
    )


class PoolConfig(_Model):
    """MCP session pool health and re-opening."""

    ping_timeout_ms: float = Field(2_000, gt=0, description="Health check (MCP ping) deadline.")
    reopen_backoff_ms: float = Field(250, ge=0, description="Wait after a failed re-open...")
    reopen_backoff_max_ms: float = Field(10_000, ge=0, description="...doubling up to this.")
    health_interval_ms: float = Field(
        30_000, ge=0, description="Ping idle sessions this often; 0 turns it off."
    )
    max_queue_wait_ms: float = Field(
        300_000,
        gt=0,
        description="How long a call may wait for a slot or a live session before it is "
        "refused with BackPressureError (never sent, never held against the server).",
    )
    server_log: str | None = Field(
        None,
        description="Append the stderr of stdio servers (their banners and logs) to this "
        "file; by default it is the coordinator's own stderr.",
    )
    cancel_notifications: bool = Field(
        False,
        description="Send notifications/cancelled for an abandoned request (a lost hedge, a "
        "cut straggler, a missed deadline). Off by default: it crashes servers built on the "
        "mcp Python SDK 1.30 now and then (see capabilities/mcp_pool.py).",
    )


class ResilienceConfig(_Model):
    breaker: BreakerConfig = BreakerConfig()
    hedging: HedgingConfig = HedgingConfig()
    degradation: DegradationConfig = DegradationConfig()
    pool: PoolConfig = PoolConfig()


PrivacyAction = Literal["route_internal", "redact", "refuse"]


class PrivacySettings(_Model):
    """Sensitivity analysis of every request and the policy for data above a provider's
    clearance (see docs/privacy-and-audit.md)."""

    enabled: bool = Field(True, description="Scan each request's arguments (Presidio, secrets).")
    detection: PrivacyConfig = Field(
        default_factory=PrivacyConfig,
        description="Thresholds: min_score, entity_levels, enabled/disabled_entities, "
        "allow_list, split_fields.",
    )
    policy: PrivacyAction = Field(
        "route_internal", description="Default for data above an external provider's clearance."
    )
    skills: dict[str, PrivacyAction] = Field(
        default_factory=dict, description="Policy per skill (wins over the server's)."
    )
    servers: dict[str, PrivacyAction] = Field(
        default_factory=dict, description="Policy per MCP server."
    )
    max_scan_bytes: int = Field(
        1_000_000, gt=0, description="Larger arguments are not scanned: treated as restricted."
    )

    def policy_table(self) -> dict[str, Any]:
        return {"default": self.policy, "skills": self.skills, "servers": self.servers}


class AuditSettings(_Model):
    """The MAC-chained audit trail of every external data flow and policy decision (see
    ``audit.py`` and the README's threat model)."""

    path: str | None = Field(None, description="JSON-lines file; None keeps records in memory.")
    fsync: bool = Field(False, description="Flush each record to disk before going on.")
    key: SecretStr | None = Field(
        None,
        description="HMAC key of the chain; else $HYBRIDMCP_AUDIT_KEY, else the key file.",
    )
    key_file: str | None = Field(
        None,
        description="Key file, made (mode 0600) at first use; default: the trail's path + '.key'.",
    )
    head_db: str | None = Field(
        None,
        description="SQLite file anchoring the trail's head; default: beside the run database "
        "(--db, $HYBRIDMCP_DB, or the default file), as <name>.audit-heads.db.",
    )
    run_db: str | None = Field(
        None, exclude=True, description="The run database (set by `hybridmcp run --db`)."
    )

    def key_path(self, trail: str) -> Path:
        """The key file of the trail at ``trail``."""
        return Path(self.key_file or f"{trail}.key").expanduser()


class ToolOutputSettings(_Model):
    """Limits on what an MCP tool may answer (its output is untrusted)."""

    max_bytes: int = Field(1_000_000, gt=0, description="Larger answers are failed attempts.")
    error_patterns: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ERROR_PATTERNS),
        description="Regexes (case-insensitive) of text answers that are errors although "
        "isError is false; [] turns the check off.",
    )

    @field_validator("error_patterns")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        for i, pattern in enumerate(value):
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"error_patterns.{i}: invalid regex {pattern!r}: {err}") from None
        return value


class HybridConfig(_Model):
    """The whole configuration. Every section has defaults that work out of the box."""

    coordination_config: CoordinationConfig = CoordinationConfig()
    capability_mapping: CapabilityMapping = CapabilityMapping()
    optimization_criteria: OptimizationCriteria = OptimizationCriteria()
    arbitration_config: ArbitrationConfig = ArbitrationConfig()
    llm_config: LLMConfig = LLMConfig()
    resilience: ResilienceConfig = ResilienceConfig()
    privacy: PrivacySettings = PrivacySettings()
    audit: AuditSettings = AuditSettings()
    tool_output: ToolOutputSettings = ToolOutputSettings()
    mcpServers: dict[str, ServerConfig] = Field(
        default_factory=dict, description="The MCP servers; VS Code's top-level key 'servers' too."
    )
    skills: dict[str, SkillConfig] = Field(default_factory=dict)
    builtin_skills: bool = Field(True, description="Register the built-in internal skills.")
    input_limits: InputLimits = Field(
        default_factory=InputLimits,
        description="Limits of task files (a configuration file is read under the defaults).",
    )
    _warnings: list[str] = PrivateAttr(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        """What loading accepted but ignored (unknown keys of server entries), one line each."""
        return self._warnings

    @model_validator(mode="before")
    @classmethod
    def _client_top_keys(cls, data: Any, info: ValidationInfo) -> Any:
        """VS Code's ``servers`` (and its ``inputs``) beside or instead of ``mcpServers``."""
        if not isinstance(data, dict) or not ({"servers", "inputs"} & data.keys()):
            return data
        check = _check_of(info)
        data = dict(data)
        if "inputs" in data:
            data.pop("inputs")
            note = "inputs: VS Code input variables are not supported; ignored"
            if check is None:
                raise ValueError(note)
            check.warnings.append(note + " (${input:...} references stay as written)")
        servers = data.pop("servers", None)
        if servers is None:
            return data
        merged = data.get("mcpServers", {})
        for key, value in (("servers", servers), ("mcpServers", merged)):
            if not isinstance(value, dict):
                raise ValueError(
                    f"{key}: expected a mapping of server entries, got {preview(value)}"
                )
        merged = dict(merged)
        for name, entry in servers.items():
            if name in merged:
                message = f"servers{key_path(name)}: also given under mcpServers"
                if check is None:
                    raise ValueError(message)
                check.problems.append(message)
                continue
            merged[name] = entry
            if check is not None:
                check.server_keys[name] = "servers"
        data["mcpServers"] = merged
        return data

    @field_validator("mcpServers", mode="before")
    @classmethod
    def _normalize_servers(cls, v: Any, info: ValidationInfo) -> Any:
        if not isinstance(v, dict):
            return v
        check = _check_of(info)
        keys = check.server_keys if check is not None else {}
        out = {}
        for name, raw in v.items():
            where = f"{keys.get(name, 'mcpServers')}{key_path(name)}"
            server = _normalize_server(raw, where, check)
            if server is not None:
                out[name] = server
        return out

    @model_validator(mode="after")
    def _sampling_has_a_model(self) -> HybridConfig:
        for name, server in self.mcpServers.items():
            role = server.sampling_role
            if server.sampling == "lm" and getattr(self.llm_config, f"{role}_model") is None:
                raise ValueError(
                    f"mcpServers.{name}.sampling: 'lm' answers with the {role} role's model, "
                    f"and llm_config.{role}_model is not set; set it (local/smollm2 is the "
                    "bundled local model), choose another sampling_role, or use 'decline'"
                )
        return self

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> HybridConfig:
        """Names that must exist; :func:`parse_config` checks them on the raw document (so they
        are reported with every other problem), this covers a bare ``model_validate``."""
        if _check_of(info) is None:
            problems = _reference_problems(self.model_dump(), set(self.mcpServers), {})
            if problems:
                raise ValueError(problems[0])
        return self


def _reference_problems(
    data: dict[str, Any], servers: set[str], server_keys: dict[str, str]
) -> list[str]:
    """Providers and privacy policies naming servers that are not configured (on the raw
    document: whatever else is wrong with it, these names can be checked)."""
    known = ", ".join(sorted(map(str, servers))) or "none"
    problems = []
    skills = data.get("skills")
    for skill_name, skill in skills.items() if isinstance(skills, dict) else []:
        providers = skill.get("providers") if isinstance(skill, dict) else None
        for i, provider in enumerate(providers if isinstance(providers, list) else []):
            if not isinstance(provider, dict) or provider.get("side") != "external":
                continue
            server = provider.get("server")
            if isinstance(server, str) and server not in servers:
                problems.append(
                    f"skills{key_path(skill_name)}.providers.{i}.server: unknown MCP server "
                    f"{preview(server)} (configured servers: {known})"
                )
    privacy = data.get("privacy")
    named = privacy.get("skills") if isinstance(privacy, dict) else None
    if isinstance(named, dict):
        skill_names = set(skills) if isinstance(skills, dict) else set()
        if data.get("builtin_skills", True) is not False:
            skill_names |= builtin_skill_names()
        unknown = sorted(
            (
                name
                for name in named
                if name not in skill_names and str(name).partition(".")[0] not in servers
            ),
            key=str,
        )
        if unknown:  # a server's 'server.tool' skills are known once it lists its tools
            problems.append(
                f"privacy.skills: unknown skill(s) {', '.join(map(repr, unknown))}; known "
                f"skills: {', '.join(sorted(map(str, skill_names)))} and each server's "
                "'server.tool'"
            )
    policies = privacy.get("servers") if isinstance(privacy, dict) else None
    unknown = sorted(set(policies) - servers, key=str) if isinstance(policies, dict) else []
    if unknown:
        problems.append(
            f"privacy.servers: unknown MCP server(s) {', '.join(map(repr, unknown))} "
            f"(configured servers: {known})"
        )
    return problems


def builtin_skill_names() -> set[str]:
    """The names of the built-in internal skills."""
    text = resources.files("hybridmcp.data").joinpath("builtin_skills.yaml").read_text("utf-8")
    return set(yaml.safe_load(text))


_UNION_TAGS = {"StdioServer", "HttpServer"}
_BRANCH_NAMES = {"dict": "a mapping", "list": "a list", "str": "a string", "float": "a number"}


_UNION_MEMBER = re.compile(
    r"(dict|list|tuple|set|str|int|float|bool|literal|nullable|union|tagged-union"
    r"|function-(after|before|plain|wrap))\[.*\]",
    re.DOTALL,
)


def _union_member(part: object) -> TypeGuard[str]:
    """A location part that names a member of a union (``dict[str,...]``, ``list[str]``), as
    pydantic writes it: not a key of the user's (a skill named ``odd.[x]`` is a key)."""
    return isinstance(part, str) and _UNION_MEMBER.fullmatch(part) is not None


def _error_lines(err: ValidationError, server_keys: dict[str, str]) -> list[str]:
    """One line per problem: union branches collapse into one line naming the key."""
    lines: list[str] = []
    branches: dict[str, list[str]] = {}
    got: dict[str, str] = {}
    for e in err.errors():
        loc: list[Any] = []
        branch = None
        value = e.get("input")
        if e["loc"] and e["loc"][-1] == "[key]":  # a mapping's key, not its value
            where = "".join(key_path(p) for p in e["loc"][:-2]).removeprefix(".")
            hint = (
                " (YAML reads an unquoted on, off, yes, no, true or false as a boolean: "
                "quote the name)"
                if isinstance(value, bool)
                else ""
            )
            lines.append(f"{where}: the key {preview(value)} is not a string{hint}")
            continue
        for i, part in enumerate(e["loc"]):
            if part in _UNION_TAGS and i == 2:
                continue  # mcpServers.<name>.<the entry's model>
            if part in ("internal", "external") and i >= 2 and e["loc"][i - 2] == "providers":
                continue  # the provider's side tag
            if _union_member(part) and branch is None:
                branch = part  # a member of a plain union: collapse below
                break
            loc.append(part)
        if loc and loc[0] == "mcpServers" and len(loc) > 1:
            loc[0] = server_keys.get(str(loc[1]), "mcpServers")
        where = "".join(key_path(p) for p in loc).removeprefix(".")
        shown = "" if isinstance(value, dict | list) else f" (got {preview(value)})"
        if branch is not None:
            kind = branch.partition("[")[0]
            if where not in branches:
                branches[where] = []
                lines.append(where)  # placeholder, filled in below
            branches[where].append(_BRANCH_NAMES.get(kind, kind))
            got[where] = shown
            continue
        message = str(e["msg"]).removeprefix("Value error, ")
        lines.append(f"{where}: {message}{shown}" if where else message)
    return [
        f"{line}: expected {' or '.join(dict.fromkeys(branches[line]))}{got[line]}"
        if line in branches
        else line
        for line in lines
    ]


def parse_config(
    data: Any, source: str = "<config>", base_dir: str | os.PathLike[str] | None = None
) -> HybridConfig:
    """Validate a whole configuration before anything is started; raise :class:`ConfigError`
    with one line per problem, every problem at once.

    Checked beyond each key's type and range: internal providers' functions import
    (``base_dir``, the configuration file's directory, is searched for their modules; default
    the working directory), providers and privacy policies name configured servers, the
    optimization weights sum to 1. Keys of server entries that nothing reads are dropped with
    a warning (:attr:`HybridConfig.warnings`)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: the configuration must be a mapping, got {type(data).__name__}"
        )
    check = _Check(base_dir=Path(base_dir).resolve() if base_dir is not None else Path.cwd())
    config: HybridConfig | None = None
    lines: list[str] = []
    try:
        config = HybridConfig.model_validate(data, context={"check": check, "base_dir": base_dir})
    except ValidationError as err:
        lines = _error_lines(err, check.server_keys)
    except ValueError as err:  # a shape no model gets to see
        lines = [str(err)]
    servers = data.get("mcpServers")
    names = set(servers) if isinstance(servers, dict) else set()
    names |= set(check.server_keys)
    lines += check.problems + _reference_problems(data, names, check.server_keys)
    if lines or config is None:
        lines = list(dict.fromkeys(lines)) or ["invalid configuration"]
        if len(lines) == 1:
            raise ConfigError(f"invalid configuration in {source}: {lines[0]}")
        raise ConfigError(
            f"invalid configuration in {source} ({len(lines)} problems):\n"
            + "\n".join(f"  {line}" for line in lines)
        )
    config._warnings = [f"{source}: {w}" for w in check.warnings]
    return config


CONFIG_ENV = "HYBRIDMCP_CONFIG"
"""The environment variable naming the configuration file when none is given (the CLI's
``--config``, the served graph, ``HybridToolNode``)."""


def load_config(path: str | os.PathLike[str] | None = None) -> HybridConfig:
    """Load a configuration file (YAML or JSON); with no path, the embedded default.

    The file is read under the default :class:`InputLimits`: bytes, depth, YAML aliases and
    string length are checked before anything is built from it. Internal providers' modules
    are looked for beside the file as well (:func:`import_function`)."""
    if path is None:
        text = resources.files("hybridmcp.data").joinpath("default.yaml").read_text("utf-8")
        return parse_config(yaml.safe_load(text), "embedded default configuration")
    p = Path(path)
    limits = InputLimits()
    try:
        text = decode(read_file(p, limits))
        data = parse_document(text, limits, as_json=p.suffix == ".json", jsonc=True)
    except OSError as err:
        raise ConfigError(f"cannot read configuration file {str(p)!r}: {err.strerror}") from None
    except InputLimitError as err:
        raise ConfigError(f"configuration file {str(p)!r}: {err}") from None
    return parse_config(data, str(p), base_dir=p.resolve().parent)

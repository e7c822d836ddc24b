"""The configuration model: the spec's YAML sections, MCP servers, and skills.

A configuration is loaded from YAML or JSON. Bad configuration fails here, at the edge, with a
message that names the offending key (``skills.time.now.providers.0.server: ...``).
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from hybridmcp.errors import ConfigError
from hybridmcp.limits import (
    InputLimitError,
    InputLimits,
    decode,
    parse_document,
    preview,
    read_file,
)
from hybridmcp.policy.effects import Effect
from hybridmcp.policy.output import DEFAULT_ERROR_PATTERNS
from hybridmcp.policy.privacy import PrivacyConfig

Side = Literal["internal", "external"]
Strategy = Literal["auto", "internal", "external", "hybrid"]
IntegrationStrategy = Literal["consensus", "weighted_average", "best_performer", "hybrid_synthesis"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


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


class OptimizationCriteria(_Model):
    performance_weight: float = Field(0.4, ge=0)
    cost_weight: float = Field(0.3, ge=0)
    quality_weight: float = Field(0.2, ge=0)
    security_weight: float = Field(0.1, ge=0)

    @model_validator(mode="after")
    def _some_weight(self) -> OptimizationCriteria:
        if self.total <= 0:
            raise ValueError("at least one weight must be positive")
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


class _ServerCommon(_Model):
    timeout_ms: float | None = Field(None, gt=0, description="Deadline of one call to this server.")
    startup_timeout_ms: float = Field(20_000, gt=0)
    clearance: Literal["public", "internal", "confidential", "restricted"] = "public"
    cost_per_call: float = Field(0.001, ge=0)
    enabled: bool = True
    description: str = ""
    read_only: bool = Field(
        False,
        description="Every tool of this server only reads: the effect class of its tools whose "
        "annotations say nothing (otherwise 'write').",
    )
    max_concurrency: int = Field(
        8, ge=1, le=1024, description="Calls in flight on this server at once; more wait."
    )


class StdioServer(_ServerCommon):
    transport: Literal["stdio"] = "stdio"
    command: str
    args: list[str] = []
    env: dict[str, str] | None = None
    cwd: str | None = None


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
    headers: dict[str, str] | None = None
    auth: OAuthConfig | None = Field(
        None, description="OAuth authorization of this server (see docs/configuration.md)."
    )


ServerConfig = StdioServer | HttpServer

_TRANSPORT_ALIASES = {
    "stdio": "stdio",
    "http": "streamable_http",
    "streamable-http": "streamable_http",
    "streamable_http": "streamable_http",
    "streamableHttp": "streamable_http",
    "sse": "sse",
}


def _normalize_server(raw: Any) -> Any:
    """Accept the shapes MCP clients already use (``type`` or ``transport``, any spelling)."""
    if not isinstance(raw, dict):
        return raw
    data = dict(raw)
    kind = data.pop("type", None) or data.get("transport")
    if kind is None:
        kind = "stdio" if "command" in data else "streamable_http" if "url" in data else None
    if kind is not None:
        if kind not in _TRANSPORT_ALIASES:
            raise ValueError(
                f"unknown transport {kind!r}; use one of stdio, streamable_http (http), sse"
            )
        data["transport"] = _TRANSPORT_ALIASES[kind]
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
    cost_per_call: float = Field(0.0, ge=0)
    timeout_ms: float | None = Field(None, gt=0)
    effect: Effect | None = Field(
        None,
        description="read | idempotent | write; overrides the skill's and the tool's annotations.",
    )

    @field_validator("function")
    @classmethod
    def _module_colon_function(cls, v: str) -> str:
        module, _, attr = v.partition(":")
        if not module or not attr:
            raise ValueError(f"expected 'module:function', got {v!r}")
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
    cost_per_call: float | None = Field(None, ge=0, description="Default: the server's.")
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
    """Circuit breaker per external provider (see README, "Resilience", for the defaults)."""

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
    clearance (see README, "Privacy, audit and cost")."""

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
    mcpServers: dict[str, ServerConfig] = Field(default_factory=dict)
    skills: dict[str, SkillConfig] = Field(default_factory=dict)
    builtin_skills: bool = Field(True, description="Register the built-in internal skills.")
    input_limits: InputLimits = Field(
        default_factory=InputLimits,
        description="Limits of task files (a configuration file is read under the defaults).",
    )

    @field_validator("mcpServers", mode="before")
    @classmethod
    def _normalize_servers(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {name: _normalize_server(raw) for name, raw in v.items()}
        return v

    @model_validator(mode="after")
    def _providers_name_known_servers(self) -> HybridConfig:
        for skill_name, skill in self.skills.items():
            for i, provider in enumerate(skill.providers):
                if isinstance(provider, ExternalProviderConfig) and (
                    provider.server not in self.mcpServers
                ):
                    known = ", ".join(sorted(self.mcpServers)) or "none"
                    raise ValueError(
                        f"skills.{skill_name}.providers.{i}.server: unknown MCP server "
                        f"{provider.server!r} (configured servers: {known})"
                    )
        unknown = sorted(set(self.privacy.servers) - set(self.mcpServers))
        if unknown:
            known = ", ".join(sorted(self.mcpServers)) or "none"
            raise ValueError(
                f"privacy.servers: unknown MCP server(s) {', '.join(map(repr, unknown))} "
                f"(configured servers: {known})"
            )
        return self


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if p not in ("StdioServer", "HttpServer"))
        value = e.get("input")
        shown = "" if isinstance(value, dict | list) else f" (got {preview(value)})"
        lines.append(f"  {loc or '<root>'}: {e['msg']}{shown}")
    return "\n".join(lines)


def parse_config(data: Any, source: str = "<config>") -> HybridConfig:
    """Validate a configuration mapping; raise :class:`ConfigError` naming each bad key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: the configuration must be a mapping, got {type(data).__name__}"
        )
    try:
        return HybridConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None
    except ValueError as err:  # raised by the server normaliser before field validation
        raise ConfigError(f"invalid configuration in {source}: {err}") from None


def load_config(path: str | os.PathLike[str] | None = None) -> HybridConfig:
    """Load a configuration file (YAML or JSON); with no path, the embedded default.

    The file is read under the default :class:`InputLimits`: bytes, depth, YAML aliases and
    string length are checked before anything is built from it."""
    if path is None:
        text = resources.files("hybridmcp.data").joinpath("default.yaml").read_text("utf-8")
        return parse_config(yaml.safe_load(text), "embedded default configuration")
    p = Path(path)
    limits = InputLimits()
    try:
        text = decode(read_file(p, limits))
        data = parse_document(text, limits, as_json=p.suffix == ".json")
    except OSError as err:
        raise ConfigError(f"cannot read configuration file {str(p)!r}: {err.strerror}") from None
    except InputLimitError as err:
        raise ConfigError(f"configuration file {str(p)!r}: {err}") from None
    return parse_config(data, str(p))

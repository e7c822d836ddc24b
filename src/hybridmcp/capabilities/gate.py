"""The one gate to the outside.

Every call that leaves the process passes :meth:`Gate.call`, a chain of small steps in a fixed
order: privacy (re-scan, redact or refuse) → reserve the price in the run's budget → admit
(circuit breaker) → send (within the deadline) and read the answer (untrusted output checks,
restore pseudonyms) → record (audit, breaker). No other code path calls an MCP tool. Each step
is a small object with a default, so a deployment tightens policy by configuration, never by a
second code path. A step that refuses raises a :class:`~hybridmcp.errors.PolicyError`
(``PrivacyRefused``, ``BudgetExhausted``, ``CircuitOpen``): the call was never sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

from mcp.types import TextContent

from hybridmcp.audit import MemoryAudit, append_written, hand_over, written
from hybridmcp.capabilities.client_features import CallScope, ElicitationRequired
from hybridmcp.capabilities.mcp_pool import SessionPool
from hybridmcp.capabilities.registry import (
    NOT_JSON,
    ParsedText,
    Provider,
    answer_to_judge,
    error_text,
    extract_result,
    json_value,
    map_arguments,
)
from hybridmcp.capabilities.timing import CallTiming
from hybridmcp.config import PrivacySettings, ServerConfig, ToolOutputSettings
from hybridmcp.errors import (
    AnswerTooLarge,
    AuditError,
    BackPressureError,
    BudgetExhausted,
    CircuitOpen,
    ClientRefused,
    CoordinatorClosed,
    DeadlineExceededError,
    PolicyError,
    PrivacyRefused,
    ProviderError,
    RequestError,
    SendNotRecorded,
    ToolError,
)
from hybridmcp.limits import lone_surrogate_in
from hybridmcp.policy import privacy as scanner
from hybridmcp.policy.blame import echoes_an_argument, says_input_is_wrong
from hybridmcp.policy.breaker import BreakerBoard, Transition
from hybridmcp.policy.cost import Budget
from hybridmcp.policy.disclosure import (
    Release,
    plain_json,
    policy_for,
    redaction_summary,
    release,
)
from hybridmcp.policy.effects import WRITE
from hybridmcp.policy.output import UNPARSED, compile_patterns, is_error_answer, output_problem
from hybridmcp.policy.privacy.engines import EnginesNotLoaded, without_loading
from hybridmcp.policy.privacy.sent import SentPieces

IDEMPOTENCY_META_KEY = "idempotency_key"
"""The key of the request's idempotency key in each ``tools/call``'s ``_meta`` (its digest,
:func:`digest_id`): a server that writes can recognise a request it has already served."""
_NOT_THE_PROVIDERS = ("request error", "not sent", "paused", "closed", "too large", "refused")
"""Outcomes never held against the provider by its circuit breaker."""
_NOT_THE_PROVIDERS_BY_TYPE: dict[type[Exception], str] = {
    RequestError: "request error",
    AnswerTooLarge: "too large",
    BackPressureError: "not sent",
    SendNotRecorded: "not sent",
    CoordinatorClosed: "closed",
}
"""The outcome of a call that ended in one of these errors (none held against the provider)."""
RUN_BUDGETS_KEPT = 1024
"""Rounds of runs whose spending the gate remembers, the least recently used forgotten first
(a round forgotten starts again from the run's checkpointed spending)."""
CLEAN_SCANS_KEPT = 1024
"""Small plain arguments the privacy step remembers as scanning clean (see :class:`_CleanScans`)."""
CLEAN_SCAN_MAX_CHARS = 1024
"""Arguments longer than this as JSON are always scanned."""
AUDIT_TEXT_CHARS = 2000
"""The most of a message (a server's error) an audit record keeps."""
AUDIT_TEXT_CONTEXT = 512
"""How far past the cut a kept message is scanned, so that a value across it is found."""
RELEASES_KEPT = 256
"""Release verdicts the privacy step remembers (see :meth:`ScanningPolicy._release`)."""


@dataclass(frozen=True)
class CallContext:
    """Who is calling, for policy and audit."""

    run_id: str
    request_id: str
    skill: str
    idempotency_key: str
    sensitivity: str = "public"
    declared_sensitivity: str = "public"
    budget: float | None = None
    """The run's budget; the gate keeps each run's spending against it."""
    round: int | None = None
    """The run's round the call belongs to: the gate keeps each round's spending apart."""
    spent: float = 0.0
    """What the run had spent before this round (its checkpointed attempts): where the
    round's spending starts, in whichever process the round runs."""


@dataclass
class PrivacyDecision:
    """What the privacy step did with the arguments."""

    action: str  # "allow" | "redact" | "refuse"
    reason: str
    arguments: dict[str, Any]
    restore: Callable[[Any], Any] = field(default=lambda value: value)
    redactions: list[dict[str, Any]] = field(default_factory=list)
    size: int | None = None
    """The JSON size of ``arguments`` in bytes, when the policy measured it."""


class PrivacyPolicy(Protocol):
    def decide(
        self, provider: Provider, arguments: dict[str, Any], ctx: CallContext
    ) -> PrivacyDecision: ...


class ScanningPolicy:
    """Defense in depth: re-scan the arguments about to be sent, whatever arbitration decided.

    Data within the provider's clearance goes as it is. Above it, the per skill/server policy
    applies: ``redact`` sends pseudonyms (the vault lives only in this call's closure and
    restores the answer), ``route_internal`` and ``refuse`` refuse the call (the run then moves
    the work to another provider or reports the error). A redaction that still scans above the
    clearance is refused: fail closed. A call whose values complete a value with what its run
    sent the same server before (:class:`~hybridmcp.policy.privacy.sent.SentPieces`) is
    judged with that value found in it.
    """

    def __init__(self, settings: PrivacySettings | None = None) -> None:
        self.settings = settings or PrivacySettings()
        self._clean = _CleanScans()
        self._releases: dict[tuple[Any, ...], Release] = {}
        self._sent = SentPieces()
        """What each run sent each server: a value cut over several calls is judged whole."""

    def _release(
        self,
        detected: scanner.Sensitivity,
        declared: scanner.Sensitivity,
        clearance: scanner.Sensitivity,
        action: str,
        oversized: bool,
        effect: str,
    ) -> Release:
        """:func:`release`, remembered: a pure function of these six (levels, the policy's
        action, a flag, the provider's effect class), whose verdict is frozen, so the same six
        get the same verdict."""
        exact = (
            type(detected) is type(declared) is type(clearance) is scanner.Sensitivity
            and type(action) is str
            and type(oversized) is bool
            and type(effect) is str
        )  # (a plain string equal to a level is not the level: never looked up)
        key = (detected, declared, clearance, action, oversized, effect)
        known = self._releases.get(key) if exact else None
        if known is None:
            known = release(
                detected=detected,
                declared=declared,
                clearance=clearance,
                action=action,
                oversized=oversized,
                effect=effect,
            )
            if exact and len(self._releases) < RELEASES_KEPT:
                self._releases[key] = known
        return known

    def scan(
        self, arguments: Any, config: scanner.PrivacyConfig | None = None
    ) -> scanner.SensitivityReport:
        """:func:`scanner.scan` through this step's memory of clean scans: a request's
        arguments scanned before the run (by analysis) leave the memory filled for the call's
        own scan here. The same report a fresh scan gives (only clean scans are kept)."""
        return self._clean.scan(arguments, _json(arguments), config or scanner.PrivacyConfig())

    def decide(
        self, provider: Provider, arguments: dict[str, Any], ctx: CallContext
    ) -> PrivacyDecision:
        cfg = self.settings
        clearance = scanner.Sensitivity.parse(provider.clearance)
        declared = scanner.Sensitivity.parse(ctx.declared_sensitivity)
        text = _json(arguments)
        size = len(text)  # ASCII (see _size)
        oversized = size > cfg.max_scan_bytes
        report = (
            self._clean.findings(arguments, text, cfg.detection)
            if cfg.enabled and not oversized
            else None
        )  # None: nothing found
        destination = str(provider.server)
        joined = (
            self._sent.completed(
                ctx.run_id, destination, arguments, ctx.idempotency_key, cfg.detection
            )
            if cfg.enabled and not oversized
            else []
        )
        alone = scanner.Sensitivity.public if report is None else report.level
        if joined:  # pieces of a value cut over this run's calls: judged as the value
            report = _with_findings(report, joined, cfg.detection)
        action = policy_for(
            ctx.skill, provider.server, default=cfg.policy, skills=cfg.skills, servers=cfg.servers
        )
        verdict = self._release(
            scanner.Sensitivity.public if report is None else report.level,
            declared,
            clearance,
            action,
            oversized and cfg.enabled,
            provider.effect,
        )
        if joined and verdict.action != "allow" and report is not None and report.level > alone:
            # said only when the pieces made it more: a call holding a whole value is said
            # to be what it is alone
            verdict = Release(
                verdict.action,
                f"{verdict.reason} (a value completed with what this run sent {destination})",
            )
        if verdict.action == "refuse":
            return PrivacyDecision(verdict.action, verdict.reason, arguments, size=size)
        if verdict.action != "redact":
            self._sent.record(ctx.run_id, destination, arguments, ctx.idempotency_key)
            return PrivacyDecision(verdict.action, verdict.reason, arguments, size=size)
        report = report or scanner.SensitivityReport()
        vault: dict[str, str] = {}
        redacted = scanner.redact(arguments, report, vault=vault).value
        residual = scanner.scan(redacted, cfg.detection).level
        if residual <= clearance and joined:
            again = self._sent.completed(
                ctx.run_id, destination, redacted, ctx.idempotency_key, cfg.detection
            )
            residual = max(
                (cfg.detection.level_for(f.entity_type) for f in again), default=residual
            )
        if residual > clearance:
            return PrivacyDecision(
                "refuse",
                f"{verdict.reason}, but the redacted arguments still scan {residual}",
                arguments,
            )
        self._sent.record(ctx.run_id, destination, redacted, ctx.idempotency_key)
        return PrivacyDecision(
            "redact",
            f"{verdict.reason}: {len(vault)} value(s) replaced by pseudonyms",
            redacted,
            restore=lambda value: scanner.restore(value, vault),
            redactions=redaction_summary(report.findings),
        )


def _with_findings(
    report: scanner.SensitivityReport | None,
    more: list[scanner.Finding],
    config: scanner.PrivacyConfig,
) -> scanner.SensitivityReport:
    """``report`` (None: nothing found) with ``more`` findings, and the level they give."""
    findings = [*(report.findings if report is not None else ()), *more]
    level = max(config.level_for(f.entity_type) for f in findings)
    return scanner.SensitivityReport(level=level, findings=findings)


class _CleanScans:
    """Small plain arguments that scanned clean, so that the same arguments (the same field
    in every call of a run, a retry, a hedge) are not walked again.

    Exactly as safe as scanning: a scan is a pure function of the value and of the detection
    settings, and both are the key here. The value is keyed by its JSON text, which for JSON's
    own types (checked by :func:`~hybridmcp.policy.disclosure.plain_json`: no tuple, no
    string-like object, no non-string key)
    determines it exactly, types and order included (``1``, ``1.0``, ``true`` and ``"1"`` all
    differ; floats by their ``repr``). Only a scan that found nothing is kept: any finding,
    and anything larger or not plain, is scanned every time.
    """

    def __init__(self) -> None:
        self._kept: OrderedDict[tuple[Any, ...], None] = OrderedDict()
        self._entities: tuple[Any, Any, frozenset[str]] | None = None
        """The last settings' ``enabled_entities`` and ``disabled_entities`` (copies), and
        the active entities they give (rebuilt only when they change)."""

    def _active_entities(self, config: scanner.PrivacyConfig) -> frozenset[str]:
        """``config.active_entities()``, rebuilt only when the entity settings change (they
        are compared by value, so a set changed in place is seen)."""
        enabled, disabled = config.enabled_entities, config.disabled_entities
        last = self._entities
        if last is not None and last[0] == enabled and last[1] == disabled:
            return last[2]
        active = config.active_entities()
        self._entities = (
            None if enabled is None else frozenset(enabled),
            frozenset(disabled),
            active,
        )
        return active

    def scan(
        self, arguments: Any, text: str, config: scanner.PrivacyConfig
    ) -> scanner.SensitivityReport:
        """What :func:`scanner.scan` reports (a new report, whether or not remembered)."""
        return self.findings(arguments, text, config) or scanner.SensitivityReport()

    def findings(
        self, arguments: Any, text: str, config: scanner.PrivacyConfig
    ) -> scanner.SensitivityReport | None:
        """None when the arguments are remembered as clean, else :func:`scanner.scan`'s
        report (remembered when it found nothing)."""
        key = None
        if len(text) <= CLEAN_SCAN_MAX_CHARS and plain_json(arguments):
            key = (
                text,
                config.min_score,
                self._active_entities(config),
                frozenset(config.allow_list),
                config.split_fields,
            )
            if key in self._kept:
                self._kept.move_to_end(key)
                return None
        report = scanner.scan(arguments, config)
        if key is not None and not report.findings:
            self._kept[key] = None
            if len(self._kept) > CLEAN_SCANS_KEPT:
                self._kept.popitem(last=False)
        return report


class Breaker(Protocol):
    """The breaker step (:class:`hybridmcp.policy.breaker.BreakerBoard` by default)."""

    def allow(self, provider_id: str, now: float) -> bool: ...
    def record(self, provider_id: str, ok: bool, now: float, *, slow: bool = False) -> None: ...
    def release(self, provider_id: str, now: float) -> None: ...
    def blocked(self, provider_id: str, now: float) -> str | None: ...
    def probing(self, provider_id: str, now: float) -> bool: ...
    def snapshot(self, now: float) -> dict[str, dict[str, Any]]: ...
    def take_transitions(self, provider_id: str | None = None) -> list[Transition]: ...


class AlwaysClosed:
    """A breaker that never trips (to turn circuit breaking off in code)."""

    def allow(self, provider_id: str, now: float) -> bool:
        return True

    def record(self, provider_id: str, ok: bool, now: float, *, slow: bool = False) -> None:
        return None

    def release(self, provider_id: str, now: float) -> None:
        return None

    def blocked(self, provider_id: str, now: float) -> str | None:
        return None

    def probing(self, provider_id: str, now: float) -> bool:
        return False

    def snapshot(self, now: float) -> dict[str, dict[str, Any]]:
        return {}

    def take_transitions(self, provider_id: str | None = None) -> list[Transition]:
        return []


class AuditSink(Protocol):
    """Where the gate's audit records go: ``append`` (a sink that may write on the event
    loop, such as one in memory), or also ``submit`` (:class:`hybridmcp.audit.AuditLog`:
    records queued for a writer thread, see :func:`hybridmcp.audit.hand_over`)."""

    def append(self, record: dict[str, Any]) -> Any: ...


def digest_id(value: str) -> str:
    """The idempotency key as a server receives it: ``sha256:`` and the first 32 hex digits of
    its SHA-256 (stable across processes, so a server still recognises a repeat; the run and
    request ids in it, labels a task's author chose, never leave the process)."""
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass
class GateResult:
    value: Any
    cost: float
    bytes_sent: int
    bytes_received: int
    privacy: str
    redactions: int = 0


_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"))
"""Built once (``json.dumps`` with these options builds an encoder per call)."""


def _json(value: Any) -> str:
    """``json.dumps(value, default=str, separators=(",", ":"))``."""
    return _ENCODER.encode(value)


def _size(value: Any) -> int:
    """The value's size as JSON, in bytes: the text is ASCII (non-ASCII is escaped), so its
    length is its size."""
    return len(_json(value))


_TEXT_PART_FRAME = _size(TextContent(type="text", text="").model_dump()) - _size("")
"""What a plain text part (no annotations, no ``_meta``, no extra fields) adds to its text's
size as JSON: ``_size(part.model_dump())`` is this plus ``_size(part.text)``."""


def _part_size(part: Any) -> int:
    """``_size(part.model_dump())``, without the dump for a plain text part."""
    if (
        type(part) is TextContent
        and part.annotations is None
        and part.meta is None
        and not part.model_extra
    ):
        return _TEXT_PART_FRAME + _size(part.text)
    return _size(part.model_dump())


class Gate:
    """The single function through which every external call passes."""

    def __init__(
        self,
        pool: SessionPool,
        *,
        privacy: PrivacyPolicy | None = None,
        budget: Budget | None = None,
        breaker: Breaker | None = None,
        audit: AuditSink | None = None,
        output: ToolOutputSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pool = pool
        self.privacy = privacy or ScanningPolicy()
        self.budget = budget or Budget()
        self.breaker: Breaker = breaker if breaker is not None else BreakerBoard()
        self.audit: AuditSink = audit or MemoryAudit()
        self.clock = clock
        self.output = output or ToolOutputSettings()
        self._error_patterns = compile_patterns(self.output.error_patterns)
        self.run_budgets: OrderedDict[tuple[str, int | None], Budget] = OrderedDict()
        self._schemas: dict[str, tuple[list[Any], int, dict[str, dict[str, Any] | None]]] = {}
        """By server: its tool list, its length and each tool's output schema by name."""

    @property
    def privacy_settings(self) -> PrivacySettings:
        """The scanning policy's settings (another policy: nothing is scanned)."""
        settings = getattr(self.privacy, "settings", None)
        return settings if isinstance(settings, PrivacySettings) else PrivacySettings(enabled=False)

    def budget_for(self, ctx: CallContext) -> Budget:
        """The run's own budget when it has one, else the gate's."""
        if ctx.budget is None:
            return self.budget
        return self.run_budget(ctx.run_id, ctx.round, ctx.budget, ctx.spent)

    def run_budget(
        self, run_id: str, round_no: int | None, limit: float, spent: float = 0.0
    ) -> Budget:
        """The spending of a run's round: from ``spent`` (what the run's checkpointed attempts
        cost before the round), plus what the round's calls are charged as they go. A round
        is kept apart from the run's earlier ones so that its starting point is the durable
        record, whichever process ran them (the last ``RUN_BUDGETS_KEPT`` rounds are kept)."""
        key = (run_id, round_no)
        budget = self.run_budgets.get(key)
        if budget is None:
            budget = self.run_budgets[key] = Budget(limit, spent)
            while len(self.run_budgets) > RUN_BUDGETS_KEPT:
                self.run_budgets.popitem(last=False)
        else:
            self.run_budgets.move_to_end(key)
        return budget

    def _output_schema(self, provider: Provider) -> dict[str, Any] | None:
        """The tool's declared ``outputSchema``, from the server's tool list (it settles how a
        FastMCP answer is wrapped). The list is indexed once per list the server gave (a
        re-opened session lists its tools anew)."""
        tools = self.pool.status(str(provider.server)).tools
        known = self._schemas.get(str(provider.server))
        if known is None or known[0] is not tools or known[1] != len(tools):
            schemas: dict[str, dict[str, Any] | None] = {}
            for tool in tools:
                schemas.setdefault(tool.name, tool.outputSchema)
            known = self._schemas[str(provider.server)] = (tools, len(tools), schemas)
        return known[2].get(str(provider.tool))

    def _check_output(
        self, provider: Provider, result: Any, size: int, schema: dict[str, Any] | None
    ) -> ParsedText | None:
        """Untrusted output: size limit and errors in disguise (see :mod:`policy.output`),
        judged on the answer as it will be read (a FastMCP-wrapped ``str`` is text). Returns
        the answer's one text part and its JSON value when it parsed it (read once, for the
        check and for the value)."""
        text, structured = answer_to_judge(result, schema)
        parsed: ParsedText | None = None
        hint = UNPARSED
        plain = structured is None and result.structuredContent is None
        if plain and size <= self.output.max_bytes:
            texts = [c for c in result.content if isinstance(c, TextContent)]
            if len(texts) == 1 and texts[0].text == text:
                parsed = (texts[0].text, json_value(texts[0].text))
                if parsed[1] is not NOT_JSON:  # strict JSON: json.loads reads it the same
                    hint = parsed[1]
        problem = output_problem(
            text,
            structured,
            size,
            max_bytes=self.output.max_bytes,
            error_patterns=self._error_patterns,
            parsed=hint,
        )
        if problem and is_error_answer(problem):  # a tool error, blamed as one
            said = text if structured is None else _json(structured)
            _raise_tool_error(provider, said, problem)
        if problem:  # too large for the coordinator: its limit, not the provider's failure
            raise AnswerTooLarge(f"{provider.id}: {problem}")
        return parsed

    async def call(
        self,
        provider: Provider,
        args: Mapping[str, Any],
        ctx: CallContext,
        *,
        timeout_s: float | None = None,
        slow_after_s: float | Callable[[CallTiming], float | None] | None = None,
        validate: Callable[[Any], None] | None = None,
        timing: CallTiming | None = None,
        queue_timeout_s: float | None = None,
        scope: CallScope | None = None,
    ) -> GateResult:
        """Make one external call. ``timeout_s`` bounds the call from the moment it is sent;
        ``queue_timeout_s`` bounds the wait for a session slot before it. ``validate`` raises
        :class:`ProviderError` for an answer of the wrong shape (counted as a failure); an
        answer later than ``slow_after_s`` after it was sent counts as slow for the circuit
        breaker (or later than what a function of the call's timing gives: the threshold at
        the call's load, ``timing.in_flight``). A caller's error (:class:`RequestError`)
        and a call never sent (:class:`BackPressureError`) are never held against the provider.
        ``scope`` gets the call's progress and answers the server's questions during it (its
        ``caller`` is set to ``ctx``, so a sampling request during the call is charged and
        audited to this run)."""
        if provider.side != "external" or not provider.server or not provider.tool:
            raise ProviderError(f"{provider.id} is not an MCP tool provider")
        call = _Call(provider, ctx, timing or CallTiming())
        if scope is not None:
            scope.caller = ctx
        # From the decision's record on, every way out records the call's end: the gate's
        # refusal, or the call's own record (in _dispatch, even if the call is cut while its
        # decision is being written).
        decision, noted = await self._privacy(call, map_arguments(provider.arguments, args))
        budget = await self._reserve(call)
        await self._admit(call, budget)
        value, sent, received = await self._dispatch(
            call,
            decision,
            budget,
            noted=noted,
            timeout_s=provider.timeout_ms / 1000 if timeout_s is None else timeout_s,
            queue_timeout_s=queue_timeout_s,
            validate=validate,
            scope=scope,
        )
        limit = slow_after_s(call.timing) if callable(slow_after_s) else slow_after_s
        slow = limit is not None and call.timing.latency_ms() / 1000 > limit
        self.breaker.record(provider.id, True, self.clock(), slow=slow)
        return GateResult(
            value, provider.cost_per_call, sent, received, decision.action, len(decision.redactions)
        )

    # -- the steps, in order ------------------------------------------------------------------

    async def _privacy(
        self, call: _Call, arguments: dict[str, Any]
    ) -> tuple[PrivacyDecision, Future[Any] | None]:
        """Re-scan the exact arguments about to be sent; record the decision; refuse or redact.
        Returns the decision and the write of its record (handed to the trail's writer, not
        yet waited for: :meth:`_dispatch` waits for it before sending)."""
        decision = self.privacy.decide(call.provider, arguments, call.ctx)
        noted = hand_over(
            self.audit,
            call.record(
                kind="policy_decision",
                stage="gate",
                action=decision.action,
                reason=decision.reason,
                redactions=decision.redactions,
            ),
        )
        if decision.action == "refuse":  # the refusal is the call's end: written, then raised
            await written(noted)
            raise PrivacyRefused(call.provider.id, decision.reason)
        return decision, noted

    async def _reserve(self, call: _Call) -> Budget:
        """Reserve the call's price in the run's budget (refunded if it is never sent)."""
        budget = self.budget_for(call.ctx)
        try:
            budget.reserve(call.provider.id, call.provider.cost_per_call, call.key)
        except PolicyError as err:
            await append_written(self.audit, call.refused("budget", str(err)))
            raise
        return budget

    async def _admit(self, call: _Call, budget: Budget) -> None:
        """The circuit breaker: an open circuit refuses the call before it is sent."""
        if not self.breaker.allow(call.provider.id, self.clock()):
            budget.refund(call.provider.cost_per_call, call.key)
            reason = f"circuit breaker for {call.provider.id} is open"
            await append_written(self.audit, call.refused("breaker", reason))
            raise CircuitOpen(reason)

    async def _dispatch(
        self,
        call: _Call,
        decision: PrivacyDecision,
        budget: Budget,
        *,
        timeout_s: float,
        queue_timeout_s: float | None,
        validate: Callable[[Any], None] | None,
        scope: CallScope | None = None,
        noted: Future[Any] | None = None,
    ) -> tuple[Any, int, int]:
        """Send within the deadline and read the answer; record the outcome whatever it is
        (cut while the decision's record is written: ``cancelled``, nothing sent). Nothing is
        sent before the decision's record is written (``noted``): a process killed after the
        call left has it in its trail. The outcome's record is written before this returns.
        Returns the value, the bytes sent and the bytes received."""
        provider, timing = call.provider, call.timing
        sent = decision.size if decision.size is not None else _size(decision.arguments)
        outcome, received = "cancelled", 0
        try:
            try:
                await written(noted)
            except AuditError as err:  # the decision is not in the trail: nothing is sent
                outcome = f"not sent: {err}"
                budget.refund(provider.cost_per_call, call.key)
                raise
            # a lone surrogate is a Python str but no UTF-8 text: the MCP client would fail
            # writing it, and the session with it
            why = lone_surrogate_in(decision.arguments)
            if why is not None:
                raise RequestError(f"{provider.id} was not called: {why}")
            result = await self.pool.call_tool(
                str(provider.server),
                str(provider.tool),
                decision.arguments,
                timeout_s,
                timing=timing,
                queue_timeout_s=queue_timeout_s,
                meta={IDEMPOTENCY_META_KEY: digest_id(call.ctx.idempotency_key)},
                scope=scope,
            )
            received = _answer_size(result)
            try:
                value = self._read(provider, result, received, decision, validate)
            except (ToolError, RequestError) as err:
                blamed = _after_server_asks(err, provider.id, scope)
                if blamed is None:
                    raise
                raise blamed from None
            outcome = "ok"
        except ElicitationRequired:
            outcome = "paused: the server asked for a human's input"
            raise
        except ClientRefused as err:
            outcome = f"refused: {err}"
            raise
        except (
            RequestError,
            AnswerTooLarge,
            BackPressureError,
            CoordinatorClosed,
            SendNotRecorded,
        ) as err:
            kind = next(o for t, o in _NOT_THE_PROVIDERS_BY_TYPE.items() if isinstance(err, t))
            outcome = f"{kind}: {err}"
            if timing.sent_at is None:
                budget.refund(provider.cost_per_call, call.key)
            raise
        except ProviderError as err:
            outcome = f"error: {err}"
            self.breaker.record(provider.id, False, self.clock())
            raise
        finally:
            timing.mark_ended()
            if outcome == "cancelled" and timing.sent_at is None:  # cut while still queued
                budget.refund(provider.cost_per_call, call.key)
            if outcome == "cancelled" or outcome.startswith(_NOT_THE_PROVIDERS):
                self.breaker.release(provider.id, self.clock())
            if ": " in outcome:  # a message (a category alone holds nothing)
                outcome = self._audit_text(outcome)
            await append_written(
                self.audit, self._call_record(call, decision, sent, received, outcome)
            )
        return value, sent, received

    def _audit_text(self, text: str) -> str:
        """``text`` as the audit trail may keep it: a server's error can quote the raw
        arguments it was sent (within its clearance), which the trail never holds; every
        finding is replaced by a pseudonym whose value is kept nowhere. On the event loop no
        detection engine is built: a text that would need one keeps only its first words.
        A server's message can be megabytes long: only its first ``AUDIT_TEXT_CHARS`` are
        kept, scanned with ``AUDIT_TEXT_CONTEXT`` more after them (so a value across the cut
        is found whole), which bounds both the record and the scan."""
        whole = len(text)
        text = text[: AUDIT_TEXT_CHARS + AUDIT_TEXT_CONTEXT]
        try:
            with without_loading():
                kept = str(scanner.redact(text, self.privacy_settings.detection).value)
        except EnginesNotLoaded:
            head = text.split(":", 1)[0][:AUDIT_TEXT_CHARS]
            return f"{head}: (the message is not kept: it could not be scanned here)"
        if len(kept) > AUDIT_TEXT_CHARS or len(text) < whole:
            kept = f"{kept[:AUDIT_TEXT_CHARS]}... (cut: {whole:,} characters in all)"
        return kept

    def _read(
        self,
        provider: Provider,
        result: Any,
        received: int,
        decision: PrivacyDecision,
        validate: Callable[[Any], None] | None,
    ) -> Any:
        """The answer as a value: tool errors raised, untrusted output checked, pseudonyms
        restored, the skill's shape validated."""
        if result.isError:
            text = error_text(result)
            detail = text[:500] or "(no message)"
            if echoes_an_argument(text, decision.arguments):  # the input it could not use
                raise _request_error(provider, detail)
            _raise_tool_error(provider, text, detail)
        schema = self._output_schema(provider)
        parsed = self._check_output(provider, result, received, schema)
        value = decision.restore(
            extract_result(provider, result, output_schema=schema, parsed=parsed)
        )
        if validate is not None:
            validate(value)
        return value

    @staticmethod
    def _call_record(
        call: _Call, decision: PrivacyDecision, sent: int, received: int, outcome: str
    ) -> dict[str, Any]:
        timing = call.timing
        return call.record(
            kind="external_call",
            server=call.provider.server,
            tool=call.provider.tool,
            redactions=decision.redactions,
            bytes_sent=sent,
            bytes_received=received,
            cost=call.provider.cost_per_call if timing.sent_at is not None else 0.0,
            outcome=outcome,
            queue_ms=round(timing.queue_ms, 3),
            latency_ms=round(timing.latency_ms(), 3),
            sends=0 if timing.sent_at is None else 1 + timing.resent,
        )

    async def release_answer(
        self, server: str, config: ServerConfig, content: dict[str, Any], ctx: CallContext | None
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """A person's answer to a server's elicitation, another external data flow: scanned
        and released under the privacy policy of the server (and of the asking call's skill)
        as a call's arguments are. Returns what the server may receive (None: decline) and
        the audit fields (``privacy``, ``reason``, ``redactions``; never a value)."""
        out = await self._outbound(content, server, config, ctx)
        fields = {"privacy": out.action, "reason": out.reason, "redactions": out.redactions}
        return out.value, fields

    async def _scan(self, value: Any, size: int | None = None) -> scanner.SensitivityReport | None:
        """:func:`scanner.scan` under the privacy settings (None when scanning is off), on the
        event loop unless a detection engine must be built first: then in a worker thread. A
        value larger than ``max_scan_bytes`` is ``restricted`` without a scan (megabytes would
        hold the event loop for seconds), as a call's arguments are; ``size``: its size, when
        the caller has measured it."""
        cfg = self.privacy_settings
        if not cfg.enabled:
            return None
        if (_size(value) if size is None else size) > cfg.max_scan_bytes:  # restricted, unscanned
            return scanner.SensitivityReport(level=scanner.Sensitivity.restricted)
        try:
            with without_loading():
                return scanner.scan(value, cfg.detection)
        except EnginesNotLoaded:
            return await asyncio.to_thread(scanner.scan, value, cfg.detection)

    async def _outbound(
        self, value: Any, server: str, config: ServerConfig, ctx: CallContext | None
    ) -> _Outbound:
        """What of ``value`` (data other than a call's arguments: a sampling answer, a
        person's answer) may go to ``server``: as it is within its clearance; above it,
        redacted where the policy says so and the redaction scans within it; else nothing."""
        cfg = self.privacy_settings
        report = await self._scan(value)
        level = report.level if report is not None else scanner.Sensitivity.public
        policy = policy_for(
            ctx.skill if ctx else "", server, default=cfg.policy,
            skills=cfg.skills, servers=cfg.servers,
        )  # fmt: skip
        clearance = scanner.Sensitivity.parse(config.clearance)
        verdict = release(
            detected=level,
            declared=scanner.Sensitivity.public,
            clearance=clearance,
            action=policy,
        )
        if verdict.action == "allow":
            return _Outbound(value, level, "allow", verdict.reason)
        if verdict.action == "redact" and report is not None:
            redacted = scanner.redact(value, report).value
            residual = await self._scan(redacted)
            if residual is None or residual.level <= clearance:
                summary = redaction_summary(report.findings)
                return _Outbound(redacted, level, "redact", verdict.reason, summary)
            reason = f"{verdict.reason}, but the redacted text still scans above the clearance"
            return _Outbound(None, level, "refuse", reason)
        return _Outbound(None, level, "refuse", verdict.reason)

    async def sample(
        self,
        server: str,
        config: ServerConfig,
        messages: list[dict[str, str]],
        complete: Callable[[], Awaitable[tuple[str, str]]],
        ctx: CallContext | None,
        *,
        timeout_s: float,
        model_clearance: str | None = None,
    ) -> tuple[str, str]:
        """A server's sampling request, an external data flow the other way round: what the
        server asks the model to read is scanned (its level audited; a model outside the
        process, cleared ``model_clearance``, never reads a prompt above it: the request is
        refused before it is asked, as the server's own data may hold what it was sent
        within its clearance), the answer is charged
        (``sampling_cost``) to the run's budget, computed within ``timeout_s``, scanned, and
        released to the server under the same privacy policy as a call's arguments (allowed
        within the server's clearance; above it redacted or refused as the policy says). A
        request of no single call in flight (``ctx`` None) is charged to the gate's own
        budget; when that has no limit and the answer has a price, it is refused: no run's
        budget could hold it.
        Every step is audited; nothing of the text itself is written."""
        base = {
            "run_id": ctx.run_id if ctx else None,
            "request_id": ctx.request_id if ctx else None,
            "skill": ctx.skill if ctx else None,
            "server": server,
            "kind": "sampling",
        }
        # scanned as the model reads it: the turns one after another, with nothing of the
        # protocol between them (a value cut across turns joins as it does for the model)
        turns = [m.get("content", "") for m in messages]
        turns_size = _size(turns)  # past max_scan_bytes: restricted, unscanned
        prompt = await self._scan(turns, turns_size)
        prompt_level = prompt.level if prompt is not None else None
        price = config.sampling_cost
        budget = self.budget_for(ctx) if ctx is not None else self.budget
        key = ctx.idempotency_key if ctx is not None else None
        outcome, answer_level, action, reason = "cancelled", None, "refuse", ""
        redactions: list[dict[str, Any]] = []
        started = time.perf_counter()
        try:
            if (
                model_clearance is not None
                and prompt_level is not None
                and prompt_level > scanner.Sensitivity.parse(model_clearance)
            ):
                outcome, price = "refused: privacy", 0.0
                reason = (
                    f"the request holds {prompt_level} data, above the clearance "
                    f"{model_clearance} of a model outside this process: not sent to it"
                )
                if turns_size > self.privacy_settings.max_scan_bytes:  # (as _scan saw it)
                    reason = (
                        f"the request is larger than privacy.max_scan_bytes "
                        f"({self.privacy_settings.max_scan_bytes:,}): counted restricted "
                        f"unscanned, not sent to a model outside this process"
                    )
                raise PrivacyRefused(f"sampling:{server}", reason)
            try:
                if ctx is None and price > 0 and budget.limit is None:
                    raise BudgetExhausted(
                        f"sampling:{server} costs {price:g} and belongs to no single call in "
                        "flight (none, or several at once): no run's budget can pay for it"
                    )
                budget.reserve(f"sampling:{server}", price, key)
            except BudgetExhausted as err:
                outcome, reason = "refused: budget", str(err)
                raise
            if model_clearance is not None:  # the server's request leaves for the model:
                # recorded before it is sent (its sampling record follows the answer)
                await append_written(
                    self.audit,
                    {
                        **base,
                        "kind": "policy_decision",
                        "stage": "sampling",
                        "action": "allow",
                        "reason": f"to a model outside this process, cleared {model_clearance}",
                        "prompt_sensitivity": None if prompt_level is None else str(prompt_level),
                        "bytes_sent": _size(messages),
                    },
                )
            async with asyncio.timeout(timeout_s):
                text, model = await complete()
            out = await self._outbound(text, server, config, ctx)
            answer_level, action, reason = out.level, out.action, out.reason
            if out.value is None:
                outcome = "refused: privacy"
                raise PrivacyRefused(f"sampling:{server}", out.reason)
            text, redactions = out.value, out.redactions
            outcome = "ok"
            return text, model
        except TimeoutError:
            outcome = f"error: no answer within {timeout_s:g} s"
            raise DeadlineExceededError(f"sampling for {server}: {outcome[7:]}") from None
        except PolicyError:
            raise
        except Exception as err:
            outcome = f"error: {type(err).__name__}"
            raise
        finally:
            if outcome != "ok" and not outcome.startswith("refused: budget"):
                budget.refund(price, key)
            await append_written(
                self.audit,
                {
                    **base,
                    "prompt_sensitivity": None if prompt_level is None else str(prompt_level),
                    "answer_sensitivity": None if answer_level is None else str(answer_level),
                    "action": action,
                    "reason": reason,
                    "redactions": redactions,
                    "bytes_read": _size(messages),
                    "cost": price if outcome == "ok" else 0.0,
                    "outcome": outcome,
                    "latency_ms": round((time.perf_counter() - started) * 1000, 3),
                },
            )

    async def consult(
        self,
        role: str,
        model: str,
        inputs: Mapping[str, Any],
        ask: Callable[[Mapping[str, Any]], Awaitable[tuple[Any, str | None]]],
        *,
        run_id: str | None = None,
        request_id: str | None = None,
    ) -> tuple[Any, str | None]:
        """A call of the coordinator's own to a model that does not run in this process (the
        planner of ``--ask``, the coordinator's, arbitrator's or synchronizer's advice): an
        external service cleared ``public``. What it is shown is scanned; above ``public`` the
        privacy policy decides as for a tool: ``redact`` shows it pseudonyms (the answer's
        text gets the raw values back), any other policy refuses, and the model is not asked.
        ``ask`` (bounded by its caller's deadline) gets the inputs to send and returns
        ``(prediction, error)``; a refusal returns ``(None, reason)``, which every caller
        already takes as "no usable answer" and falls back on. Every consultation is audited
        (``kind: model_call``), without its text. Model calls are not priced."""
        cfg = self.privacy_settings
        report = await self._scan(dict(inputs))
        level = report.level if report is not None else scanner.Sensitivity.public
        findings = report.findings if report is not None else []
        verdict = release(
            detected=level,
            declared=scanner.Sensitivity.public,
            clearance=scanner.Sensitivity.public,
            action=cfg.policy,
        )
        shown: Mapping[str, Any] | None = inputs
        vault: dict[str, str] = {}
        redactions: list[dict[str, Any]] = []
        action, reason = verdict.action, verdict.reason
        if action == "redact" and report is not None:
            redaction = scanner.redact(dict(inputs), report)
            residual = await self._scan(redaction.value)
            if residual is None or residual.level <= scanner.Sensitivity.public:
                shown, vault = redaction.value, redaction.vault
                redactions = redaction_summary(report.findings)
            else:
                action = "refuse"
                reason = f"{reason}, but the redacted text still scans above the clearance"
        if action not in ("allow", "redact"):
            shown = None
        about = {"run_id": run_id, "request_id": request_id}
        sent = _size(shown) if shown is not None else 0
        # Written before anything is sent: a process that dies while the model is asked
        # leaves this record of what went to it (its model_call record follows the answer).
        noted = hand_over(
            self.audit,
            {
                **about,
                "kind": "policy_decision",
                "stage": "model",
                "role": role,
                "model": model,
                "action": action,
                "reason": reason,
                "redactions": redactions,
                "bytes_sent": sent,
            },
        )
        prediction: Any = None
        error: str | None = None
        outcome, received, started = "cancelled", 0, time.perf_counter()
        try:
            await written(noted)
            if shown is None:
                found = sorted({f"{f.entity_type} in {f.path.strip('/')}" for f in findings})
                error = (
                    f"not sent to a model outside this process ({', '.join(found)}): {reason}"
                    if found
                    else f"not sent to a model outside this process: {reason}"
                )
                outcome = "refused: privacy"
                return None, error
            prediction, error = await ask(shown)
            if prediction is None:
                outcome = f"error: {error or 'no usable answer'}"
                return None, error
            answer = {k: getattr(prediction, k) for k in prediction.keys()}
            received = _size(answer)
            if vault:
                for name, value in scanner.restore(answer, vault).items():
                    prediction[name] = value
            outcome = "ok"
            return prediction, error
        finally:
            if ": " in outcome:
                outcome = self._audit_text(outcome)
            await append_written(
                self.audit,
                {
                    **about,
                    "kind": "model_call",
                    "role": role,
                    "model": model,
                    "prompt_sensitivity": None if report is None else str(level),
                    "action": action,
                    "reason": reason,
                    "redactions": redactions,
                    "bytes_sent": sent,
                    "bytes_received": received,
                    "outcome": outcome,
                    "latency_ms": round((time.perf_counter() - started) * 1000, 3),
                },
            )


@dataclass
class _Outbound:
    """What the privacy policy lets go to a server of data other than a call's arguments."""

    value: Any
    """What may be sent (None: nothing)."""
    level: scanner.Sensitivity
    action: str
    reason: str
    redactions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Call:
    """One call passing the gate: what every step and audit record needs."""

    provider: Provider
    ctx: CallContext
    timing: CallTiming

    @property
    def key(self) -> str:
        """What the run's budget keeps the call's charge under."""
        return self.ctx.idempotency_key

    def refused(self, policy: str, reason: str) -> dict[str, Any]:
        """The audit record of the gate refusing this call by ``policy`` (nothing was sent)."""
        return self.record(
            kind="policy_decision",
            stage="gate",
            policy=policy,
            action="refuse",
            reason=reason,
            redactions=[],
        )

    def record(self, **fields: Any) -> dict[str, Any]:
        """An audit record about this call (never an argument value)."""
        return {
            "run_id": self.ctx.run_id,
            "request_id": self.ctx.request_id,
            "skill": self.ctx.skill,
            "provider": self.provider.id,
            "side": self.provider.side,
            "idempotency_key": self.ctx.idempotency_key,
            **fields,
        }


def _answer_size(result: Any) -> int:
    received = sum(_part_size(c) for c in result.content)
    if result.structuredContent is not None:
        received += _size(result.structuredContent)
    return received


def _raise_tool_error(provider: Provider, text: str, detail: str) -> NoReturn:
    """A tool error (``isError``, or an error in disguise: ``text`` is what the tool said,
    ``detail`` what the attempt's error says of it); one whose text says the input is wrong
    is the request's, not the tool's."""
    if says_input_is_wrong(text):
        raise _request_error(provider, detail)
    raise ToolError(f"{provider.id} returned an error: {detail}")


def _after_server_asks(
    err: ToolError | RequestError, provider_id: str, scope: CallScope | None
) -> Exception | None:
    """What a tool error is when the server asked the client something during the call: after
    the client refused one of its requests (``scope.refusal``), that refusal's
    (:class:`ClientRefused`), not the server's nor the request's; after the server sent a
    request that is not MCP's (``scope.server_fault``), the server's, never the request's.
    None: the error stands as it is."""
    if scope is None:
        return None
    if scope.refusal is not None:
        return ClientRefused(
            f"{provider_id} failed after the client refused what its server asked "
            f"({scope.refusal}): {err}",
            scope.refusal,
        )
    if scope.server_fault is not None and isinstance(err, RequestError):
        return ToolError(
            f"{provider_id} failed after its server sent a request that is not "
            f"MCP's ({scope.server_fault}): {err}"
        )
    return None


def _request_error(provider: Provider, detail: str) -> RequestError:
    """A tool error that blames the request. A write's is no rejection: its tool may have
    acted before it failed (a SQL batch keeps the statements before the failing one)."""
    if provider.effect == WRITE:
        return RequestError(
            f"{provider.id} answered the write with an error naming the request (it may "
            f"still have written): {detail}",
            by_tool=True,
        )
    return RequestError(f"{provider.id} rejected the request: {detail}", by_tool=True)

"""Every coordination event code, in one place.

Events are plain dicts in state (``{"code": ..., ...}``). The codes are the attributes of
:class:`EventCode`, plain strings: not ``Enum`` members, because checkpointed state must hold
only JSON types. LangGraph's checkpoint serializer stores an ``Enum`` member as a custom type,
warns when it loads one, and refuses it in strict mode (``LANGGRAPH_STRICT_MSGPACK``), which
would make a checkpointed run unresumable.
"""

from __future__ import annotations


class EventCode:
    """What happened during a run; each event dict carries one as its ``code``."""

    # Degradation and reallocation (spec, Phase 2)
    EXTERNAL_DEGRADATION_DETECTED = "EXTERNAL_DEGRADATION_DETECTED"
    INTERNAL_DEGRADATION_DETECTED = "INTERNAL_DEGRADATION_DETECTED"
    COORDINATION_FAILURE = "COORDINATION_FAILURE"
    REALLOCATION = "REALLOCATION"
    HEDGE_STARTED = "HEDGE_STARTED"
    # Circuit breakers
    CIRCUIT_OPENED = "CIRCUIT_OPENED"
    CIRCUIT_HALF_OPEN = "CIRCUIT_HALF_OPEN"
    CIRCUIT_CLOSED = "CIRCUIT_CLOSED"
    # Integration (spec, Phase 3)
    RESULT_CONFLICT_DETECTED = "RESULT_CONFLICT_DETECTED"
    CONFLICT_UNRESOLVED = "CONFLICT_UNRESOLVED"
    TIE_BREAK = "TIE_BREAK"
    CONFLICT_RESOLVED_BY_HUMAN = "CONFLICT_RESOLVED_BY_HUMAN"
    QUALITY_BELOW_MINIMUM = "QUALITY_BELOW_MINIMUM"
    # Allocation made visible
    PIN_OVERRIDDEN = "PIN_OVERRIDDEN"
    CROSS_VALIDATION_SKIPPED = "CROSS_VALIDATION_SKIPPED"
    REQUEST_ERROR = "REQUEST_ERROR"
    # Effects and servers made visible
    WRITE_NOT_REPEATED = "WRITE_NOT_REPEATED"
    SERVER_UNAVAILABLE = "SERVER_UNAVAILABLE"
    # Policy
    BUDGET_EXHAUSTED = "BUDGET_EXHAUSTED"
    PRIVACY_DECISION = "PRIVACY_DECISION"
    # LM layer
    LM_FALLBACK = "LM_FALLBACK"
    EXPERT_ARBITRATION = "EXPERT_ARBITRATION"

    @classmethod
    def codes(cls) -> frozenset[str]:
        """Every code."""
        return frozenset(v for k, v in vars(cls).items() if k.isupper() and isinstance(v, str))

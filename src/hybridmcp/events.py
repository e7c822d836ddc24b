"""Every coordination event code, in one place.

Events are plain dicts in state (``{"code": ..., ...}``); the codes are members of
:class:`EventCode`, a ``StrEnum``, so they compare equal to (and serialize as) their names.
"""

from __future__ import annotations

from enum import StrEnum


class EventCode(StrEnum):
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

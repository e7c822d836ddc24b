"""The scan's safe result models (findings, reports, redactions) and, re-exported from
:mod:`hybridmcp.entities`, the entity types and detection config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hybridmcp.entities import (  # re-exported: the privacy package's vocabulary
    _DETECT_SECRETS_ENTITIES,
    _PRESIDIO_ENTITIES,
    _SECRET_ENTITIES,
    DEFAULT_DISABLED_ENTITIES,
    KNOWN_ENTITIES,
    PrivacyConfig,
)
from hybridmcp.sensitivity import Sensitivity

Source = Literal["presidio", "detect_secrets", "pattern"]


class Finding(BaseModel):
    """One sensitive span. Safe to store: it says where and what, never the value itself."""

    model_config = ConfigDict(frozen=True)

    path: str
    """JSON pointer (RFC 6901) of the string leaf or dict key that holds the span."""
    entity_type: str
    start: int
    end: int
    score: float
    source: Source
    in_key: bool = False
    """The span is in the dict key at ``path`` rather than in its value."""
    split_of: str | None = None
    """Set when the value was only recognisable across sibling fields (e.g. card halves):
    the pointer of their container. Each field gets its own finding for its part."""
    digest: str = ""
    """Short hash of the raw value, salted per process: equal values correlate within a run,
    yet the value cannot be recovered or confirmed from state or audit."""


class SensitivityReport(BaseModel):
    """What :func:`scan` found: the overall level and every finding."""

    level: Sensitivity = Sensitivity.public
    findings: list[Finding] = Field(default_factory=list)

    @property
    def entity_types(self) -> list[str]:
        return sorted({f.entity_type for f in self.findings})


@dataclass
class Redaction:
    """The redacted value and the vault that reverses it.

    The vault maps each pseudonym to its raw value. It must stay in this process (runtime
    context, a local variable): never in checkpointed state, audit or logs.
    """

    value: Any
    vault: dict[str, str] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.vault)


__all__ = [
    "DEFAULT_DISABLED_ENTITIES",
    "KNOWN_ENTITIES",
    "_DETECT_SECRETS_ENTITIES",
    "_PRESIDIO_ENTITIES",
    "_SECRET_ENTITIES",
    "Finding",
    "PrivacyConfig",
    "Redaction",
    "Sensitivity",
    "SensitivityReport",
    "Source",
]

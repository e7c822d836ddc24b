"""Tasks: the requests a user hands to the coordinator, validated at the edge."""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hybridmcp.errors import TaskError

Sensitivity = Literal["public", "internal", "confidential", "restricted"]


class Request(BaseModel):
    """One unit of work: a skill, its arguments, and how to route it."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    skill: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)
    strategy: Literal["auto", "internal", "external", "hybrid"] = "auto"
    critical: bool = False
    fallback: bool | None = Field(
        None,
        description="For a pinned strategy: may the other side serve it when the pinned side "
        "cannot? Default: coordination_config.fallback.",
    )
    sensitivity: Sensitivity | None = Field(
        None, description="Declared sensitivity; the privacy scan may only raise it."
    )


class Constraints(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deadline_ms: float | None = Field(None, gt=0)
    budget: float | None = Field(None, ge=0)
    min_quality: float | None = Field(None, ge=0, le=1)


class Task(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: list[Request] = Field(min_length=1)
    constraints: Constraints = Constraints()

    @model_validator(mode="after")
    def _unique_ids(self) -> Task:
        seen: set[str] = set()
        for r in self.requests:
            if r.id in seen:
                raise ValueError(f"duplicate request id {r.id!r}")
            seen.add(r.id)
        return self


def parse_task(data: Any, source: str = "<task>") -> Task:
    """Validate a task mapping (or a bare list of requests)."""
    if isinstance(data, list):
        data = {"requests": data}
    if not isinstance(data, dict):
        raise TaskError(f"{source}: a task is a mapping with 'requests', got {type(data).__name__}")
    try:
        return Task.model_validate(data)
    except ValidationError as err:
        lines = [f"invalid task in {source}:"]
        for e in err.errors():
            loc = ".".join(str(p) for p in e["loc"]) or "<root>"
            lines.append(f"  {loc}: {e['msg']}")
        raise TaskError("\n".join(lines)) from None


def load_task(path: str | None) -> Task:
    """Read a task from a JSON/YAML file, ``-`` for stdin, or None for the embedded demo."""
    if path is None:
        text = resources.files("hybridmcp.data").joinpath("demo_task.yaml").read_text("utf-8")
        return parse_task(yaml.safe_load(text), "embedded demo task")
    if path == "-":
        text, source = sys.stdin.read(), "<stdin>"
    else:
        try:
            text, source = Path(path).read_text("utf-8"), path
        except OSError as err:
            raise TaskError(f"cannot read task file {path!r}: {err.strerror}") from None
    if not text.strip():
        raise TaskError(f"{source}: the task is empty")
    try:
        data = json.loads(text) if text.lstrip()[:1] in "[{" else yaml.safe_load(text)
    except json.JSONDecodeError as err:
        raise TaskError(
            f"{source}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}"
        ) from None
    except yaml.YAMLError as err:
        raise TaskError(f"{source}: invalid YAML: {err}") from None
    return parse_task(data, source)

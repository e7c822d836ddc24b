"""Tasks: the requests a user hands to the coordinator, validated at the edge."""

from __future__ import annotations

import sys
from importlib import resources
from typing import Any, Literal

import ormsgpack
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hybridmcp.errors import TaskError
from hybridmcp.limits import (
    Amount,
    InputLimitError,
    InputLimits,
    InvalidJSON,
    decode,
    lone_surrogate_in,
    parse_document,
    preview,
    read_capped,
    read_file,
)
from hybridmcp.sensitivity import SensitivityField


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
    sensitivity: SensitivityField | None = Field(
        None, description="Declared sensitivity; the privacy scan may only raise it."
    )

    @field_validator("args")
    @classmethod
    def _sendable(cls, args: dict[str, Any]) -> dict[str, Any]:
        """Arguments no server could be sent are the request's fault, refused here: a lone
        surrogate once ended the server's session mid-call and was held against the server."""
        if why := lone_surrogate_in(args):
            raise ValueError(why)
        return args

    @field_validator("args")
    @classmethod
    def _checkpointable(cls, args: dict[str, Any]) -> dict[str, Any]:
        """A run's checkpoints hold integers of 64 bits at most (LangGraph's msgpack): a
        larger one is refused here, not met as a crash mid-run."""
        try:
            ormsgpack.packb(args, option=ormsgpack.OPT_NON_STR_KEYS)
        except (TypeError, ValueError):
            where = _large_integer(args, "args")
            if where is not None:
                raise ValueError(
                    f"{where} is an integer beyond 64 bits, which a run's checkpoints cannot "
                    "hold; send it as a string"
                ) from None
        return args


def _large_integer(value: Any, path: str) -> str | None:
    """The path of the first integer beyond 64 bits in ``value``, or None."""
    if type(value) is int and not -(2**63) <= value < 2**64:
        return path
    if isinstance(value, dict | list):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            found = _large_integer(item, f"{path}.{key}")
            if found is not None:
                return found
    return None


class Constraints(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deadline_ms: float | None = Field(None, gt=0)
    budget: Amount | None = None
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
                raise ValueError(f"duplicate request id {preview(r.id)}")
            seen.add(r.id)
        return self


def parse_task(data: Any, source: str = "<task>", limits: InputLimits | None = None) -> Task:
    """Validate a task mapping (or a bare list of requests)."""
    limits = limits or InputLimits()
    if isinstance(data, list):
        data = {"requests": data}
    if not isinstance(data, dict):
        raise TaskError(f"{source}: a task is a mapping with 'requests', got {type(data).__name__}")
    requests = data.get("requests")
    if isinstance(requests, list) and len(requests) > limits.max_requests:
        raise TaskError(
            f"{source}: {len(requests)} requests, more than {limits.max_requests} "
            "(input_limits.max_requests)"
        )
    try:
        return Task.model_validate(data)
    except ValidationError as err:
        lines = [f"invalid task in {source}:"]
        for e in err.errors():
            loc = ".".join(str(p) for p in e["loc"]) or "<root>"
            given = e.get("input")  # a scalar given is quoted, short (a mapping never is)
            got = f" (got {preview(given, 40)})" if isinstance(given, int | float | str) else ""
            lines.append(f"  {loc}: {e['msg']}{got}")
        raise TaskError("\n".join(lines)) from None


def task_from_bytes(raw: bytes, source: str = "<task>", limits: InputLimits | None = None) -> Task:
    """A task from a file's bytes (JSON or YAML): decoded, its limits checked before anything
    is built, then validated. Raises :class:`TaskError` with one line for a limit."""
    limits = limits or InputLimits()
    if len(raw) > limits.max_file_bytes:
        raise TaskError(
            f"{source}: larger than {limits.max_file_bytes} bytes (input_limits.max_file_bytes)"
        )
    try:
        text = decode(raw)
        if not text.strip():
            raise TaskError(f"{source}: the task is empty")
        data = _document(text, limits, json_only=source.lower().endswith(".json"))
    except InputLimitError as err:
        raise TaskError(f"{source}: {err}") from None
    return parse_task(data, source, limits)


def _document(text: str, limits: InputLimits, *, json_only: bool) -> Any:
    """JSON when the text opens like it; a YAML flow collection (``{requests: [...]}``) that
    is not JSON is read as the YAML it is, unless the file is named ``.json``. Text that is
    neither is reported as the JSON it looked like."""
    if text.lstrip()[:1] not in ("[", "{"):
        return parse_document(text, limits, as_json=False)
    try:
        return parse_document(text, limits, as_json=True)
    except InvalidJSON as err:  # (a limit, a key given twice: raised as they are)
        if json_only:
            raise
        try:
            return parse_document(text, limits, as_json=False)
        except InputLimitError:
            raise err from None


def load_task(path: str | None, limits: InputLimits | None = None) -> Task:
    """Read a task from a JSON/YAML file, ``-`` for stdin, or None for the embedded demo."""
    limits = limits or InputLimits()
    if path is None:
        raw = resources.files("hybridmcp.data").joinpath("demo_task.yaml").read_bytes()
        return task_from_bytes(raw, "embedded demo task", limits)
    source = "<stdin>" if path == "-" else path
    try:
        raw = read_capped(sys.stdin.buffer, limits) if path == "-" else read_file(path, limits)
    except InputLimitError as err:
        raise TaskError(f"{source}: {err}") from None
    except OSError as err:
        raise TaskError(f"cannot read task file {preview(path)}: {err.strerror}") from None
    return task_from_bytes(raw, source, limits)


_STRATEGIES = ("auto", "internal", "external", "hybrid")
_GRAPH_INPUT = "graph input"


def check_graph_input(data: Any) -> None:
    """The graph's own input (the LangGraph server's runs, a parent graph, ``graph.ainvoke``),
    which no :func:`parse_task` has checked: its shape as a whole, refused with one line
    (:class:`TaskError`) before anything runs. What is wrong with one request alone (its
    skill, its arguments, its strategy) is that request's error instead, the others run."""
    requests = data.get("requests") if isinstance(data, dict) else None
    if not isinstance(requests, list):
        got = type(data).__name__ if not isinstance(data, dict) else type(requests).__name__
        what = "'requests'" if isinstance(data, dict) and "requests" in data else "no 'requests'"
        raise TaskError(
            f"{_GRAPH_INPUT}: 'requests' must be a list of request objects "
            f"({{id, skill, args}}); got {what if what.startswith('no') else got}"
        )
    seen: dict[str, int] = {}
    for i, request in enumerate(requests):
        if not isinstance(request, dict):
            raise TaskError(
                f"{_GRAPH_INPUT}: requests[{i}] must be an object {{id, skill, args}}, "
                f"got {type(request).__name__} {preview(request, 40)}"
            )
        rid = request.get("id")
        if isinstance(rid, bool) or not isinstance(rid, str | int) or rid == "":
            raise TaskError(
                f"{_GRAPH_INPUT}: requests[{i}] needs an 'id' (a non-empty string: its result "
                f"is keyed by it), got {preview(rid, 40)}"
            )
        if str(rid) in seen:
            raise TaskError(
                f"{_GRAPH_INPUT}: duplicate request id {preview(str(rid))} (requests"
                f"[{seen[str(rid)]}] and [{i}]); results are keyed by id: give each its own"
            )
        seen[str(rid)] = i
    run_id = data.get("run_id")
    if run_id is not None and not isinstance(run_id, str):
        raise TaskError(
            f"{_GRAPH_INPUT}: 'run_id' must be a string (the run's id), got "
            f"{preview(run_id, 40)}; a thread keeps the run_id an input gave: give a string "
            "with the next input, or null to have it derived from the thread"
        )
    constraints = data.get("constraints")
    if constraints is None:
        return
    try:
        Constraints.model_validate(constraints)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(map(_loc_part, ("constraints", *first["loc"])))
        given = first.get("input")
        got = f" (got {preview(given, 40)})" if isinstance(given, int | float | str) else ""
        raise TaskError(
            f"{_GRAPH_INPUT}: {loc}: {first['msg']}{got}; a thread keeps the constraints an "
            "earlier input gave: give valid ones (or {}) with the next input"
        ) from None


def _loc_part(part: Any) -> str:
    """A key of a path in an error's one line: as it is when it is a plain name or an index,
    else quoted with its escapes (a key may hold a newline or a terminal's control bytes)."""
    text = str(part)
    return text if isinstance(part, int) or text.isidentifier() else repr(text)


def request_problem(request: dict[str, Any]) -> str | None:
    """What makes one request of the graph's input unrunnable on its own that the registry
    does not check (its skill and arguments are checked there), or None: a field of the wrong
    type or value (``critical: "no"``, an unknown ``sensitivity`` or ``strategy``), a field no
    request has (``critcal``), arguments no server could be sent. As a task file's request is
    checked (:class:`Request`), in one line."""
    strategy = request.get("strategy", "auto")
    if strategy not in _STRATEGIES:
        return f"strategy {preview(strategy, 40)} is not one of {', '.join(_STRATEGIES)}"
    try:
        Request.model_validate(request | {"id": str(request.get("id"))}, strict=True)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(map(_loc_part, first["loc"])) or "<request>"
        given = first.get("input")
        got = f" (got {preview(given, 40)})" if isinstance(given, int | float | str) else ""
        if first["type"] == "extra_forbidden":
            return f"{loc}: no request has this field (its fields: {', '.join(_FIELDS)})"
        return f"{loc}: {first['msg'].removeprefix('Value error, ')}{got}"
    return None


_FIELDS = tuple(Request.model_fields)

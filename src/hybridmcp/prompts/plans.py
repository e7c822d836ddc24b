"""Plans: where a planner's text becomes requests, checked before anything runs.

An LM's output is never trusted as executable input: :func:`parse_plan` holds every request to
the skill catalogue and each skill's input JSON schema. :func:`plan_schema` is the same
catalogue as a JSON schema, the form a planner's answer is bound to.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jsonschema

from hybridmcp.capabilities.registry import unknown_skills
from hybridmcp.capabilities.schemas import (
    SchemaUnusable,
    argument_errors,
    argument_path,
    checked_validator,
)
from hybridmcp.errors import ConfigError, TaskError

__all__ = ["MAX_PLAN_REQUESTS", "parse_plan", "plan_schema", "skill_catalogue"]

MAX_PLAN_REQUESTS = 8
"""Most requests one ``--ask`` plan may hold (the grammar's bound)."""


_SCHEMA_KEYS = ("input_schema", "inputSchema", "args_schema", "parameters", "schema")
_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)```", re.DOTALL)
_JSON_START = re.compile(r"[\[{]")
_ANY_OBJECT: dict[str, Any] = {"type": "object"}


def _entry_field(entry: Any, key: str) -> Any:
    return entry.get(key) if isinstance(entry, Mapping) else getattr(entry, key, None)


def _entry_schema(entry: Any) -> Mapping[str, Any]:
    for key in _SCHEMA_KEYS:
        schema = _entry_field(entry, key)
        if isinstance(schema, Mapping):
            return schema
    return _ANY_OBJECT


def _catalogue_entries(skills: Any) -> list[dict[str, Any]]:
    """Normalize the accepted catalogue shapes to ``[{name, description, input_schema}]``.

    Accepted: the JSON text given to the planner, a list of entries (mappings or objects such
    as MCP ``Tool`` with ``name``/``description``/``inputSchema``), or a mapping of name to
    entry.
    """
    if isinstance(skills, str):
        try:
            skills = json.loads(skills)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"skill catalogue is not valid JSON: {exc}") from exc
    if isinstance(skills, Mapping):
        skills = [{**dict(entry or {}), "name": name} for name, entry in skills.items()]
    if not isinstance(skills, Iterable):
        raise ConfigError(f"skill catalogue must be a list of skills, got {type(skills).__name__}")
    entries = []
    for entry in skills:
        name = _entry_field(entry, "name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"skill catalogue entry has no name: {entry!r:.200}")
        entries.append(
            {
                "name": name,
                "description": _entry_field(entry, "description") or "",
                "input_schema": dict(_entry_schema(entry)),
            }
        )
    return entries


def skill_catalogue(skills: Any) -> str:
    """The catalogue as the JSON text ``TaskPlannerSignature.skills`` expects.

    Built by the same normalization :func:`parse_plan` validates against, so the planner is
    shown exactly the names and schemas its answer will be checked with.
    """
    return json.dumps(_catalogue_entries(skills), ensure_ascii=False, sort_keys=True)


def _extract_requests(text: str) -> list[Any]:
    """Find the JSON list of requests in an LM's answer.

    Tolerates code fences and prose around the JSON, and a ``{"requests": [...]}`` wrapper.
    A lone request object is accepted only when no broken list came before it: an object
    that decodes after a list that did not is most likely the first element of a truncated
    plan, and running part of a plan silently would be worse than refusing it.
    """
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        broken_list = False
        for match in _JSON_START.finditer(candidate):
            try:
                value, _ = decoder.raw_decode(candidate, match.start())
            except json.JSONDecodeError:
                broken_list = broken_list or match.group() == "["
                continue
            if isinstance(value, list):
                return value
            if isinstance(value, dict):
                if isinstance(value.get("requests"), list):
                    return value["requests"]
                if "skill" in value and not broken_list:
                    return [value]
    for candidate in candidates:
        repaired = _repair_closed_list(candidate)
        if repaired is not None:
            return repaired
    raise TaskError(f"plan: no JSON list of requests found in the planner's answer: {text!r:.300}")


def _repair_closed_list(text: str) -> list[Any] | None:
    """A list with a stray brace or quote, as small models write them, repaired.

    Only a list the answer closes (its last character is ``]``) is repaired: an answer cut
    off mid-list would repair into part of a plan, which must be refused, not run.
    """
    stripped = text.strip()
    start = stripped.find("[")
    if start < 0 or not stripped.endswith("]"):
        return None
    import json_repair

    try:
        value = json_repair.loads(stripped[start:])
    except Exception:
        return None
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        return value
    return None


def _validator(schema: Mapping[str, Any]) -> Any:
    """The schema's validator (its patterns under a time limit), or None when it is not valid
    JSON Schema: a server's schema may be anything, and what cannot check arguments leaves
    them to the skill's own check and its server, as a request given directly does."""
    try:
        return checked_validator(schema)
    except Exception:  # SchemaError, or a schema of a shape no draft has
        return None


def _errors(validator: Any, args: dict[str, Any]) -> list[jsonschema.ValidationError]:
    """The plan's arguments' errors; none when the schema cannot check them (the skill's
    own check, or its server, judges them)."""
    if validator is None:
        return []
    try:
        return argument_errors(validator, args)
    except SchemaUnusable:
        return []


def _request_id(raw: Any, index: int) -> str:
    if raw is None or raw == "":
        return f"r{index + 1}"
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise TaskError(f"plan: request #{index + 1} has an id that is not a string: {raw!r}")
    return str(raw)


def parse_plan(
    text: str | Sequence[Any], skills: Any, *, max_requests: int = MAX_PLAN_REQUESTS
) -> list[dict[str, Any]]:
    """Turn a planner's ``requests`` answer into validated ``{id, skill, args}`` requests.

    At most ``max_requests`` (the bound the plan's schema gave the planner), every skill name
    in the catalogue and every ``args`` valid against that skill's input JSON schema; ids
    default to ``r1``, ``r2``, ... and must be unique. Anything else raises
    :class:`TaskError` saying which request is wrong and why, so bad LM output stops here
    instead of reaching a provider.
    """
    raw = _extract_requests(text) if isinstance(text, str) else list(text)
    if not raw:
        raise TaskError("plan: the planner returned an empty list of requests")
    if len(raw) > max_requests:
        raise TaskError(f"plan: {len(raw)} requests, more than a plan may hold ({max_requests})")
    catalogue = {entry["name"]: entry["input_schema"] for entry in _catalogue_entries(skills)}
    validators: dict[str, Any] = {}
    requests: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise TaskError(f"plan: request #{index + 1} is not an object: {item!r:.200}")
        skill = item.get("skill")
        if not isinstance(skill, str) or skill not in catalogue:
            unknown = unknown_skills([skill], catalogue)
            raise TaskError(f"plan: request #{index + 1} names {unknown}")
        args = item.get("args", {})
        if args is None:
            args = {}
        if not isinstance(args, Mapping):
            raise TaskError(
                f"plan: request #{index + 1} ({skill}) has args that are not an object: "
                f"{args!r:.200}"
            )
        request_id = _request_id(item.get("id"), index)
        if request_id in seen:
            raise TaskError(f"plan: request id {request_id!r} is used twice")
        seen.add(request_id)
        if skill not in validators:
            validators[skill] = _validator(catalogue[skill])
        error = jsonschema.exceptions.best_match(_errors(validators[skill], dict(args)))
        if error is not None:
            where = argument_path(error) or "(top level)"
            raise TaskError(
                f"plan: request {request_id!r} ({skill}) has invalid args at {where}: "
                f"{error.message}"
            )
        requests.append({"id": request_id, "skill": skill, "args": dict(args)})
    return requests


_JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})
_COUNTS = ("minItems", "maxItems", "minLength", "maxLength")
_BOUNDS = ("minimum", "maximum")
_ARG_CHARS = 300  # longest string argument a plan's grammar allows where the schema says none


def schema_types(schema: Any) -> list[str]:
    """The JSON types a schema's ``type`` names (``"string"``, ``["string", "null"]``); none
    when it names none, or names what is not a JSON type (a server's schema may say anything)."""
    kind = schema.get("type") if isinstance(schema, Mapping) else None
    kinds = [kind] if isinstance(kind, str) else kind if isinstance(kind, list) else []
    if not kinds or not all(isinstance(k, str) and k in _JSON_TYPES for k in kinds):
        return []
    return list(dict.fromkeys(kinds))


def schema_properties(schema: Any) -> tuple[dict[str, Any], list[str]]:
    """A schema's ``properties`` (those a value may have: a ``false`` one may not) and the
    names ``required`` lists, each kept only as far as it is well-formed."""
    if not isinstance(schema, Mapping):
        return {}, []
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    required = schema.get("required")
    required = required if isinstance(required, list) else []
    named = {str(k): v for k, v in properties.items() if v is not False}
    return named, list(dict.fromkeys(r for r in required if isinstance(r, str)))


def _grammar_safe(schema: Any) -> dict[str, Any]:
    """A skill's input schema narrowed to what a grammar compiles, and valid JSON Schema
    whatever the server sent: keywords a grammar cannot express (patterns, formats,
    references, combinators) and ill-formed values are dropped, strings get a length bound,
    objects no extra keys but every required name (one the schema does not describe may be
    anything). Only the form is narrowed; :func:`parse_plan` still checks the full schema."""
    if not isinstance(schema, Mapping):
        return {}  # ``true``, or what is not a schema: anything
    out: dict[str, Any] = {}
    kinds = schema_types(schema)
    if kinds:
        out["type"] = kinds[0] if len(kinds) == 1 else kinds
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        out["enum"] = schema["enum"]
    if "const" in schema:
        out["const"] = schema["const"]
    for key in _COUNTS:
        value = schema.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            out[key] = value
    for key in _BOUNDS:
        value = schema.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = value
    if isinstance(schema.get("description"), str):
        out["description"] = schema["description"]
    properties, required = schema_properties(schema)
    if isinstance(schema.get("properties"), Mapping) or required:
        out["properties"] = {k: _grammar_safe(v) for k, v in properties.items()}
        out["properties"].update({r: {} for r in required if r not in out["properties"]})
        out["additionalProperties"] = False
    if required:
        out["required"] = required
    if isinstance(schema.get("items"), Mapping):
        out["items"] = _grammar_safe(schema["items"])
    if out.get("type") == "string" and "enum" not in out and "maxLength" not in out:
        out["maxLength"] = _ARG_CHARS
    return out


def plan_schema(skills: Any, *, max_requests: int = MAX_PLAN_REQUESTS) -> dict[str, Any]:
    """The JSON schema of a plan over ``skills``: a list of ``{skill, args}``, each skill from
    the catalogue with arguments of that skill's (grammar-safe) input schema. Ids are left to
    :func:`parse_plan` (``r1``, ``r2``, ...), so a bound plan never repeats one."""
    variants = [
        {
            "type": "object",
            "properties": {
                "skill": {"type": "string", "enum": [entry["name"]]},
                "args": _grammar_safe(entry["input_schema"]) | {"type": "object"},
            },
            "required": ["skill", "args"],
            "additionalProperties": False,
        }
        for entry in _catalogue_entries(skills)
    ]
    items = variants[0] if len(variants) == 1 else {"anyOf": variants}
    return {"type": "array", "minItems": 1, "maxItems": max_requests, "items": items}

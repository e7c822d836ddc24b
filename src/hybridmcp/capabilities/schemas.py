"""Checking a request's arguments against a skill's input schema, which may come from a
server: a schema that is not valid JSON Schema, whose ``$ref`` nothing resolves, or whose
references loop without end (``{"$ref": "#"}``) cannot check anything (the arguments go to the
server, which judges them; a warning says so), and a ``pattern`` runs with a time limit, so a
server's pattern that backtracks for ever on the arguments given (``^(a+)+$`` on ``aaa…!``) is
one error, never a coordinator that hangs.

Python's ``re`` cannot be interrupted (and holds the interpreter while it runs), so patterns
are searched with the ``regex`` module's ``timeout``; its default syntax is ``re``'s.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
import regex
from referencing.exceptions import Unresolvable

log = logging.getLogger("hybridmcp.schemas")

PATTERN_TIMEOUT_S = 0.05
"""Longest search of one ``pattern`` (a sane one takes microseconds)."""


class SchemaUnusable(Exception):
    """The schema cannot check arguments (invalid, or a reference nothing resolves)."""


def _search(pattern: str, text: str) -> bool | None:
    """Whether ``pattern`` is found in ``text``; None when it could not be told in time or
    the pattern does not compile."""
    try:
        return regex.search(pattern, text, timeout=PATTERN_TIMEOUT_S) is not None
    except (TimeoutError, regex.error):
        return None


def _untold(what: str, pattern: str) -> jsonschema.ValidationError:
    return jsonschema.ValidationError(
        f"{what}: the pattern {pattern!r} could not be checked within "
        f"{PATTERN_TIMEOUT_S * 1000:g} ms"
    )


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    if not validator.is_type(instance, "string"):
        return
    found = _search(pattern, instance)
    if found is None:
        yield _untold(f"{instance[:40]!r}", pattern)
    elif not found:
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _false(instance: Any, path: str | int | None) -> jsonschema.ValidationError:
    """The error of ``instance`` where the schema is ``false``, at its place in the arguments
    (``path``, relative to the schema that descended into it): jsonschema's own leaves the
    path out, so the error named the argument holding it, or none."""
    if path is None:  # the same place as the schema around it (allOf, $ref, then, ...)
        plain = isinstance(instance, (str, int, float)) and len(repr(instance)) <= 40
        what = repr(instance) if plain else "the value"  # a property name, under propertyNames
        return jsonschema.ValidationError(f"{what} is not allowed (its schema is false)")
    what = f"item {path}" if isinstance(path, int) else repr(path)
    return jsonschema.ValidationError(f"{what} is not allowed (its schema is false)", path=(path,))


class _FalseAtItsPath:
    """A validator as a keyword that descends into a member sees it, but a ``false``
    subschema it descends into is an error at the member's path (:func:`_false`). Composition,
    not a subclass (jsonschema's validator classes are not meant to be subclassed); plain
    functions handing back generators, so a check takes no more frames per level of the
    arguments than jsonschema's own (references that loop recurse to the same limit)."""

    __slots__ = ("_validator",)

    def __init__(self, validator: Any) -> None:
        self._validator = validator

    def __getattr__(self, name: str) -> Any:
        return getattr(self._validator, name)

    def descend(
        self,
        instance: Any,
        schema: Any,
        path: str | int | None = None,
        schema_path: str | int | None = None,
        resolver: Any = None,
    ) -> Iterator[jsonschema.ValidationError]:
        if schema is not False:
            return self._validator.descend(instance, schema, path, schema_path, resolver)
        error = _false(instance, path)
        if schema_path is not None:
            error.schema_path.appendleft(schema_path)
        return iter([error])


_MEMBER_KEYWORDS = frozenset(
    {
        "properties",
        "patternProperties",
        "additionalProperties",
        "prefixItems",
        "items",
        "additionalItems",
        "unevaluatedItems",
        "unevaluatedProperties",
    }
)
"""The keywords that descend into a member of the value (a path step), in every draft: the
others (``allOf``, ``$ref``, ``then``, ``dependentSchemas``, ...) apply a subschema to the
value itself, so jsonschema's error of a ``false`` one is already at its place
(:func:`argument_errors` words it as the others)."""


def _false_at_its_path(keyword: Any) -> Any:
    def checked(
        validator: Any, value: Any, instance: Any, schema: Mapping[str, Any]
    ) -> Iterator[jsonschema.ValidationError]:
        return keyword(_FalseAtItsPath(validator), value, instance, schema) or iter(())

    return checked


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for name, value in instance.items():
            found = _search(pattern, name)
            if found is None:
                yield _untold(f"property name {name[:40]!r}", pattern)
            elif found:
                yield from validator.descend(value, subschema, path=name, schema_path=pattern)


def _required_unless_defaulted(
    validator: Any, required: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    """``required``, less the properties whose schema gives a ``default``: the server fills
    those in. Zod's JSON Schema (the TypeScript SDK's, ``@playwright/mcp``'s) lists every
    property with a default as required: ``browser_take_screenshot`` requires ``scale``,
    ``default: "css"``, and answers a call without it."""
    if not validator.is_type(instance, "object") or not isinstance(required, list):
        return  # draft 3's boolean ``required`` is checked under ``properties``
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    for name in required:
        sub = properties.get(name)
        if name not in instance and not (isinstance(sub, Mapping) and "default" in sub):
            yield jsonschema.ValidationError(f"{name!r} is a required property")


def checked_validator(
    schema: Mapping[str, Any], *, server_fills_defaults: bool = False
) -> jsonschema.protocols.Validator:
    """A validator of ``schema`` whose patterns run with a time limit, the schema checked
    first: :class:`jsonschema.SchemaError` when it is not valid JSON Schema (another error for
    a schema of a shape no draft has). ``server_fills_defaults``: a required property with a
    ``default`` may be left out (arguments, which the server completes)."""
    with warnings.catch_warnings():  # an unknown $schema: the latest draft
        warnings.simplefilter("ignore", DeprecationWarning)
        cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(dict(schema))
    keywords: dict[str, Any] = {
        **cls.VALIDATORS,
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
    }
    if server_fills_defaults:
        keywords["required"] = _required_unless_defaulted
    for name in _MEMBER_KEYWORDS & keywords.keys():
        keywords[name] = _false_at_its_path(keywords[name])
    return jsonschema.validators.extend(cls, keywords)(schema)


def argument_validator(schema: Mapping[str, Any]) -> jsonschema.protocols.Validator | None:
    """:func:`checked_validator` for a tool's arguments (a required property with a
    ``default`` may be left out), or None (and one warning) when the schema is not valid JSON
    Schema: the arguments are then left to the server."""
    try:
        return checked_validator(schema, server_fills_defaults=True)
    except Exception as err:  # SchemaError, or a schema of a shape no draft has
        log.warning("input schema not used, arguments left to the server: %s", _one_line(err))
        return None


def argument_errors(
    validator: jsonschema.protocols.Validator, args: Any
) -> list[jsonschema.ValidationError]:
    """The arguments' errors, the first by path first; :class:`SchemaUnusable` when the schema
    turns out unable to check them: a reference that does not resolve, or references that lead
    back to themselves without reading any of the arguments (``{"$ref": "#"}``, ``a`` to ``b``
    to ``a``; the check would recurse without end; so would arguments nested deeper than
    Python's recursion limit under a recursive schema)."""
    try:
        errors = [_worded(error) for error in validator.iter_errors(args)]
        return sorted(errors, key=lambda e: [str(p) for p in e.absolute_path])
    except (Unresolvable, jsonschema.SchemaError, jsonschema.exceptions.UnknownType) as err:
        raise SchemaUnusable(_one_line(err)) from None
    except RecursionError:
        raise SchemaUnusable(
            "its references loop without end, or the arguments nest deeper than can be checked"
        ) from None


def _worded(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """jsonschema's error of a ``false`` subschema applied to the value itself (under
    ``allOf``, ``$ref``, ``then``, ...: its place is right) worded as the others
    (:func:`_false`)."""
    if error.validator is None and error.schema is False:
        worded = _false(error.instance, None)
        worded.path.extend(error.path)
        return worded
    return error


def argument_path(err: jsonschema.ValidationError) -> str:
    """Where an error is in the arguments, ``a/b/0``, on one line: a name that is empty or
    holds ``/`` or a character that is not printable (a line break) is shown as its repr."""
    return "/".join(
        str(p) if not isinstance(p, str) or (p.isprintable() and p and "/" not in p) else repr(p)
        for p in err.absolute_path
    )


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:200] or type(err).__name__

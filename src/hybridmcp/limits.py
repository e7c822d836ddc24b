"""Input limits: what a task or configuration file may be before anything is built from it.

Files are read as bytes, at most ``max_file_bytes + 1`` of them; the text is decoded by its BOM
(UTF-8, UTF-16, UTF-32) or as strict UTF-8, and refused if it is not text. Nesting depth is
measured on the raw text (JSON) or on the parser's events (YAML) before a single object is
built, and a YAML alias counts as the nodes it stands for, so an alias bomb is refused from its
events, never expanded. Strings longer than ``max_string_chars`` are refused once the document
is built. Every refusal is one line that quotes at most a short prefix of the bad value.
"""

from __future__ import annotations

import codecs
import json
import math
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

PREVIEW_CHARS = 80


def _amount(value: Any) -> Any:
    """Refuse what would read as an amount but is none: ``true`` (1.0 to pydantic) and a
    number that is not finite (NaN compares false with every limit), written as text too."""
    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value  # pydantic says it is no number
    if isinstance(value, bool) or (isinstance(number, float) and not math.isfinite(number)):
        raise PydanticCustomError("amount", "Input should be a finite number, 0 or more")
    return value


Amount = Annotated[float, BeforeValidator(_amount), Field(ge=0, allow_inf_nan=False)]
"""A price or a budget: a finite number, 0 or more (``true`` is not 1, nor ``inf`` unlimited)."""

_BOMS = (  # UTF-32 first: its little-endian BOM begins with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# A JSON string, or an unterminated one to the end of the text: one linear pass whatever the
# text (a pattern that must find the closing quote rescans the rest from every quote).
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"
_NOT_JSON = ("binary", "set", "omap", "pairs")
"""YAML 1.1 types JSON has no value for: refused, never passed on as bytes, sets or tuples."""
_DIGITS_BITS = 4_000
"""Integers longer than this in bits may have more decimal digits than Python writes
(``sys.get_int_max_str_digits``, 4,300 by default): those are tried."""


class _JsonValuesLoader(_SafeLoader):
    """YAML read as JSON values: a key is the text written (``1:``, ``on:`` and ``~:`` are
    the keys "1", "on" and "~"), a key given twice in one mapping is refused (a merged ``<<``
    key may still be overridden), a date or time stays the text written, ``!!binary``,
    ``!!set``, ``!!omap`` and ``!!pairs`` are refused, and a scalar its tag cannot read
    (``!!int zz``, ``2020-13-45`` as a date, 5,000 digits) is a YAML error naming it."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[str, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping, but found {type(node).__name__}", node.start_mark
            )
        own = {id(key) for key, _ in node.value if key.tag != _MERGE}
        self.flatten_mapping(node)  # merged pairs first, the mapping's own last
        mapping: dict[str, Any] = {}
        written: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found a {kind} as a key (a key is text)",
                    key_node.start_mark,
                )
            key = str(key_node.value)
            if id(key_node) in own:
                if key in written:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found the key {preview(key)} twice",
                        key_node.start_mark,
                    )
                written.add(key)
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping

    def construct_as_text(self, node: yaml.Node) -> str:
        return str(self.construct_scalar(node))


def _refuse_tag(loader: Any, node: yaml.Node) -> Any:
    raise yaml.constructor.ConstructorError(
        None,
        None,
        f"{node.tag.replace('tag:yaml.org,2002:', '!!')} has no JSON value "
        "(a task or configuration holds text, numbers, booleans, null, lists and mappings)",
        node.start_mark,
    )


def _checked(construct: Any) -> Any:
    """A scalar constructor whose failure (a ``ValueError``, a ``KeyError``...) is a YAML error
    naming the tag and the value, never an exception of its own."""

    def constructor(loader: Any, node: yaml.Node) -> Any:
        try:
            return construct(loader, node)
        except yaml.YAMLError:
            raise
        except Exception as err:
            tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
            value = node.value if isinstance(node.value, str) else type(node).__name__
            raise yaml.constructor.ConstructorError(
                None, None, f"{tag} cannot read {preview(value)}: {_why(err)}", node.start_mark
            ) from None

    return constructor


def _why(err: Exception) -> str:
    if "integer string conversion" in str(err):  # Python's own limit on integer digits
        return f"an integer of more than {sys.get_int_max_str_digits()} digits (quote it)"
    return _one_line(str(err)) or type(err).__name__


for _tag in ("null", "bool", "int", "float"):
    _JsonValuesLoader.add_constructor(
        f"tag:yaml.org,2002:{_tag}",
        _checked(_SafeLoader.yaml_constructors[f"tag:yaml.org,2002:{_tag}"]),
    )
_JsonValuesLoader.add_constructor(
    "tag:yaml.org,2002:timestamp", _JsonValuesLoader.construct_as_text
)
for _tag in _NOT_JSON:
    _JsonValuesLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_tag)
_YamlLoader: type = _JsonValuesLoader


class InputLimits(BaseModel):
    """How big a task or configuration file may be (the README's "Input limits")."""

    model_config = ConfigDict(extra="forbid")

    max_file_bytes: int = Field(16_777_216, gt=0, description="Bytes per task or config file.")
    max_depth: int = Field(
        64,
        ge=2,
        le=200,
        description="Nesting depth of mappings and lists (a YAML alias counts "
        "as the depth of what it stands for).",
    )
    max_nodes: int = Field(
        2_000_000, gt=0, description="Values in a document, YAML aliases counted as expanded."
    )
    max_string_chars: int = Field(100_000, gt=0, description="Characters per string value.")
    max_requests: int = Field(100_000, gt=0, description="Requests per task.")


class InputLimitError(ValueError):
    """A document breaks an input limit or is not text; the message is one line."""


class InvalidJSON(InputLimitError):
    """A document read as JSON is not JSON text (its syntax; not a limit or a key given
    twice)."""


def preview(value: Any, width: int = PREVIEW_CHARS) -> str:
    """``repr`` of a value cut to ``width`` characters, saying how long the whole was."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= width:
        return repr(value)
    return f"{text[:width]!r}… ({len(text)} chars)"


def read_capped(stream: BinaryIO, limits: InputLimits) -> bytes:
    """At most ``max_file_bytes`` bytes of ``stream``; more is refused, never read whole."""
    raw = stream.read(limits.max_file_bytes + 1)
    if len(raw) > limits.max_file_bytes:
        raise InputLimitError(
            f"larger than {limits.max_file_bytes} bytes (input_limits.max_file_bytes)"
        )
    return raw


def read_file(path: str | Path, limits: InputLimits) -> bytes:
    """The bytes of the file at ``path``, capped (``OSError`` if it cannot be read)."""
    with open(path, "rb") as stream:
        return read_capped(stream, limits)


def decode(raw: bytes) -> str:
    """Text from bytes: by the BOM if there is one, else strict UTF-8; binary is refused."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                return raw[len(bom) :].decode(encoding)
            except UnicodeDecodeError as err:
                raise InputLimitError(
                    f"not valid {encoding.upper()} text at byte {err.start + len(bom)}"
                ) from None
    if b"\x00" in raw:
        raise InputLimitError(
            "contains NUL bytes: a binary file, or UTF-16/32 without a BOM (save it as UTF-8)"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputLimitError(
            f"not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start}; save it as UTF-8)"
        ) from None


# A JSON string, a comment, a comma, or a run of anything else (JSONC, as VS Code reads it).
_JSONC_TOKEN = re.compile(
    _JSON_STRING.pattern + r'|//[^\n]*|/\*.*?(?:\*/|$)|,|[^"/,]+|/', re.DOTALL
)


def strip_jsonc(text: str) -> str:
    """JSON with comments (``//``, ``/* */``) and trailing commas, as VS Code and Cursor write
    ``mcp.json``, as plain JSON: each comment and trailing comma becomes blanks (its line
    breaks kept, so an error's line and column stay the file's). Text in strings is kept."""
    if "/" not in text and "," not in text:
        return text
    parts = [m.group() for m in _JSONC_TOKEN.finditer(text)]
    out: list[str] = []
    for i, part in enumerate(parts):
        if _comment(part):
            out.append("".join(c if c == "\n" else " " for c in part))
        elif part == "," and _closes(parts, i + 1):
            out.append(" ")
        else:
            out.append(part)
    return "".join(out)


def _comment(part: str) -> bool:
    return part.startswith(("//", "/*"))


def _closes(parts: list[str], start: int) -> bool:
    """Whether the next part that is not a comment or blanks closes an array or object."""
    for i in range(start, len(parts)):
        part = parts[i]
        if _comment(part) or not part.strip():
            continue
        return part.lstrip()[0] in "]}"
    return False


def parse_document(text: str, limits: InputLimits, *, as_json: bool, jsonc: bool = False) -> Any:
    """The value of a JSON or YAML document, its limits checked before it is built. ``jsonc``:
    a JSON document may hold comments and trailing commas (:func:`strip_jsonc`)."""
    if as_json:
        _check_json_depth(text, limits)
        try:
            data = json.loads(text, object_pairs_hook=_json_object)
        except json.JSONDecodeError as err:
            if jsonc and (plain := strip_jsonc(text)) != text:  # only a file that needs it
                return parse_document(plain, limits, as_json=True)
            raise InvalidJSON(
                f"invalid JSON at line {err.lineno} column {err.colno}: {err.msg}"
            ) from None
        except ValueError as err:  # more digits than Python reads as an integer
            raise InputLimitError(f"invalid JSON: {_why(err)}") from None
    else:
        try:
            _check_yaml_events(text, limits)
            data = yaml.load(text, Loader=_YamlLoader)
        except yaml.YAMLError as err:
            raise InputLimitError(f"invalid YAML: {_one_line(str(err))}") from None
    check_strings(data, limits)
    return data


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object; a key given twice in it is refused (``json`` would keep the last)."""
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise InputLimitError(f"invalid JSON: the key {preview(twice)} is given twice in an object")
    return data


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


def _too_deep(limits: InputLimits) -> InputLimitError:
    return InputLimitError(f"nested deeper than {limits.max_depth} levels (input_limits.max_depth)")


def _check_json_depth(text: str, limits: InputLimits) -> None:
    depth = 0
    for match in _JSON_BRACKET.finditer(_JSON_STRING.sub("", text)):
        depth += 1 if match.group() in "[{" else -1
        if depth > limits.max_depth:
            raise _too_deep(limits)


def _check_yaml_events(text: str, limits: InputLimits) -> None:
    """Depth and expanded size from the parser's events: nothing is composed or expanded.

    Each open collection keeps [nodes so far, deepest level below it, anchor]; an anchored node
    remembers its size and depth, and an alias adds them where it stands."""
    anchors: dict[str, tuple[int, int]] = {}
    stack: list[list[Any]] = [[0, 0, None]]
    total = 0
    for event in _yaml_events(text):
        if isinstance(event, yaml.AliasEvent):
            if any(open_[2] == event.anchor for open_ in stack):
                raise InputLimitError(
                    f"the YAML alias *{preview(event.anchor)} is inside the node it names (a cycle)"
                )
            size, below = anchors.get(event.anchor or "", (1, 0))
            _count(stack, size, below, limits)
            total += size
        elif isinstance(event, yaml.ScalarEvent):
            _count(stack, 1, 0, limits)
            total += 1
            if event.anchor:
                anchors[event.anchor] = (1, 0)
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(stack) > limits.max_depth:
                raise _too_deep(limits)
            stack.append([1, 0, event.anchor])
            total += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            size, below, anchor = stack.pop()
            if anchor:
                anchors[anchor] = (size, below + 1)
            _count(stack, size, below + 1, limits)
        if total > limits.max_nodes:
            raise InputLimitError(
                f"more than {limits.max_nodes} values, YAML aliases expanded "
                "(input_limits.max_nodes)"
            )


def _count(stack: list[list[Any]], size: int, below: int, limits: InputLimits) -> None:
    parent = stack[-1]
    parent[0] += size
    parent[1] = max(parent[1], below)
    if len(stack) - 1 + below > limits.max_depth:
        raise _too_deep(limits)


def _yaml_events(text: str) -> Iterator[yaml.Event]:
    return yaml.parse(text, Loader=_YamlLoader)


def check_strings(data: Any, limits: InputLimits) -> None:
    """Refuse a string (key or value) longer than ``max_string_chars``, and a number JSON
    cannot write (NaN, an infinity: ``.nan``, ``NaN``, ``1e999``), naming where it is;
    ``data`` is already known to be within the depth limit, so the walk is bounded."""
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if len(value) > limits.max_string_chars:
                raise InputLimitError(
                    f"a string of {len(value)} characters, more than "
                    f"{limits.max_string_chars} (input_limits.max_string_chars): "
                    f"{preview(value)}"
                )
            if not value.isascii() and (why := _lone_surrogate(value)):
                raise InputLimitError(f"{_where(data, value)}: {why}")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise InputLimitError(
                    f"{_where(data, value)}: {value} is not a number JSON can hold "
                    "(write a finite number, or leave the key out)"
                )
        elif isinstance(value, int) and value.bit_length() > _DIGITS_BITS:
            try:  # a YAML 0x... or 0o... literal: more digits than Python writes in decimal
                str(value)
            except ValueError as err:
                raise InputLimitError(
                    f"{_where(data, value)}: {_why(err)}, a number JSON cannot write"
                ) from None
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list | tuple | set):
            pending.extend(value)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _lone_surrogate(text: str) -> str | None:
    """Why a string cannot be written as UTF-8 (sent to a server, stored, printed): a lone
    surrogate (JSON's ``"\\udc00"``), named by its code point, never quoted."""
    found = _SURROGATE.search(text)
    if found is None:
        return None
    return (
        f"a string holding a lone surrogate (U+{ord(found.group()):04X} at character "
        f"{found.start()}), which UTF-8 cannot carry: no server could be sent it"
    )


def lone_surrogate_in(data: Any) -> str | None:
    """Where and why a string (key or value) in ``data`` cannot be written as UTF-8, or None."""
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if not value.isascii() and (why := _lone_surrogate(value)):
                return f"{_where(data, value)}: {why}"
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list | tuple | set):
            pending.extend(value)
    return None


def _key(key: Any) -> str:
    """A key as a path shows it: as written, or quoted with escapes when it holds what a
    terminal cannot show (a lone surrogate, a control character)."""
    text = str(key)
    return text if text.isprintable() else repr(text)


def _where(data: Any, bad: Any) -> str:
    """The key path of a value (``requests.0.args.x``), looked for only once it is refused;
    of a key, its mapping's path and ``(a key)``."""
    pending: list[tuple[Any, str]] = [(data, "")]
    while pending:
        value, path = pending.pop()
        if value is bad or (isinstance(value, float) and value != value and bad != bad):
            return path or "<root>"
        if isinstance(value, dict):
            if any(key is bad for key in value):
                return f"{path or '<root>'} (a key)"
            pending.extend((v, f"{path}.{_key(k)}" if path else _key(k)) for k, v in value.items())
        elif isinstance(value, list | tuple):
            pending.extend((v, f"{path}.{i}" if path else str(i)) for i, v in enumerate(value))
    return repr(bad)

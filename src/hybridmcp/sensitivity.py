"""The one sensitivity scale: task declarations, provider clearances, detection levels.

``Sensitivity`` is a string enum ordered by level, so the same value is a plain string in state,
JSON and YAML (``"confidential"``) and compares by level in policy (``data <= clearance``).
Names and the numbers 0..3 both parse. A leaf module: config, task and policy all import it.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer


class Sensitivity(enum.StrEnum):
    """public < internal < confidential < restricted."""

    public = "public"
    internal = "internal"
    confidential = "confidential"
    restricted = "restricted"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    @classmethod
    def _missing_(cls, value: object) -> Sensitivity | None:
        # Names in any case ("Restricted"), and numbers (2, "2") for the level itself.
        if isinstance(value, bool):
            return None
        if isinstance(value, int) and 0 <= value < len(_ORDER):
            return _ORDER[value]
        if isinstance(value, str):
            text = value.strip().lower()
            if text.isdigit():
                return cls._missing_(int(text))
            return cls.__members__.get(text)
        return None

    @classmethod
    def parse(cls, value: str | int | Sensitivity) -> Sensitivity:
        """Parse a name or a number; raise ``ValueError`` naming the accepted values."""
        if type(value) is cls:
            return value
        if type(value) is str and value in _BY_NAME:
            return _BY_NAME[value]
        try:
            return cls(value)  # type: ignore[arg-type]  # numbers resolve through _missing_
        except ValueError:
            names = ", ".join(cls.__members__)
            raise ValueError(
                f"unknown sensitivity {str(value)[:40]!r}: use one of {names} (or 0..3)"
            ) from None

    def __lt__(self, other: object) -> bool:
        return _RANKS[self] < _rank(other)

    def __le__(self, other: object) -> bool:
        return _RANKS[self] <= _rank(other)

    def __gt__(self, other: object) -> bool:
        return _RANKS[self] > _rank(other)

    def __ge__(self, other: object) -> bool:
        return _RANKS[self] >= _rank(other)

    __hash__ = str.__hash__


_ORDER: tuple[Sensitivity, ...] = tuple(Sensitivity)
_RANKS: dict[Sensitivity, int] = {s: i for i, s in enumerate(_ORDER)}
"""Each level's rank; a plain string name finds its level here too (same hash and equality)."""
_BY_NAME: dict[str, Sensitivity] = {s.value: s for s in _ORDER}


def _rank(value: object) -> int:
    if type(value) is Sensitivity or (type(value) is str and value in _BY_NAME):
        return _RANKS[value]  # type: ignore[index]  # a name equals its member
    if isinstance(value, (str, int)):
        return Sensitivity.parse(value).rank
    raise TypeError(f"cannot compare a sensitivity with {type(value).__name__}")


def _parse_field(value: Any) -> Any:
    return Sensitivity.parse(value) if isinstance(value, (str, int)) else value


SensitivityField = Annotated[
    Sensitivity, BeforeValidator(_parse_field), PlainSerializer(str, return_type=str)
]
"""A pydantic field of the scale: accepts names and 0..3, dumps the name."""

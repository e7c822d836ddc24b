"""Does a plan answer every part of the question? Clauses of free text, and their coverage.

A small planner often plans one part of a two-part question ("what time is it in Tokyo and
what is 2+2*3" became only the Tokyo call). The rule here, pure and deliberately simple:

- the question is split into clauses at ``?``, ``;`` (and their full-width and Arabic
  forms), ``。``, line breaks and the words ``and``, ``also``, ``then``, ``plus`` (and their
  German, French, Spanish, Italian and Portuguese counterparts); a clause without a content
  word (a word of three letters or more that is not a common function word, or a token with a
  digit and the ASCII characters around it) is dropped;
- a clause is *covered* when one of its content words appears in some request's skill name or
  arguments (``tokyo`` in ``Asia/Tokyo``).

Over-splitting is harmless ("summarize: the sky is blue and grass is green" gives two clauses,
both covered by the one summary request whose text holds both); a clause is reported missing
only when no request mentions anything it says.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["clauses", "uncovered"]

# Question marks and semicolons of other scripts (full-width, Arabic), the ideographic full
# stop, and "and / also / then" in German, French, Spanish, Italian and Portuguese.
_SPLIT = re.compile(
    r"[?;\n？；؟。]|\b(?:and|also|then|plus|und|auch|dann|sowie|et|puis|aussi|también|luego"
    r"|además|poi|anche|depois|também)\b",
    re.IGNORECASE,
)
# A token with a digit holds ASCII around it only: in a script written without spaces the
# words next to a number ("2+2*3はいくつ") are not part of it.
_TOKEN = re.compile(r"[A-Za-z0-9_.+\-*/^%()]*\d[A-Za-z0-9_.+\-*/^%()]*|[^\W\d_]{3,}", re.UNICODE)
_STOP = frozenset(
    """
    the and what how who whom whose which when where why are was were is its it's this that
    these those there their them they for from with into onto about please tell give show
    find get can could would should will you your me my our out all any some one also then
    plus does did done has have had not but than too very just now of to in on at by an a
    """.split()
)


def _tokens(text: str) -> set[str]:
    found = {t.strip(".").lower() for t in _TOKEN.findall(text)}
    return {t for t in found if t and t not in _STOP}


def clauses(text: str) -> list[str]:
    """The parts of a question, each holding at least one content word."""
    parts = (p.strip(" \t,.:!") for p in _SPLIT.split(text))
    return [p for p in parts if p and _tokens(p)]


def _request_text(request: Mapping[str, Any]) -> str:
    args = json.dumps(request.get("args") or {}, ensure_ascii=False, sort_keys=True)
    skill = str(request.get("skill", "")).replace(".", " ").replace("_", " ")
    return f"{skill} {args}".lower()


def uncovered(text: str, requests: Sequence[Mapping[str, Any]]) -> list[str]:
    """The clauses of ``text`` no request mentions (empty when the plan covers them all)."""
    texts = [_request_text(r) for r in requests]
    words = [_tokens(t) for t in texts]
    missing = []
    for clause in clauses(text):
        mine = _tokens(clause)
        hit = any(
            any(token in request for token in mine) or bool(mine & theirs)
            for request, theirs in zip(texts, words, strict=True)
        )
        if not hit:
            missing.append(clause)
    return missing

"""Values cut over several calls of one run: what each destination was already sent.

A call is judged when it is made, so a value cut over several calls (``"alice.smith@exa"``
in one, ``"mple.com"`` in the next, to the same server) would leave piece by piece, each
piece clean on its own. :class:`SentPieces` keeps, per run and destination, the last pieces
sent in each argument field, and finds in the call about to be made the values that its
pieces *complete* with them. The gate then handles that call as if the value were in it
(redacted, refused, or the work routed internal), so the value never leaves whole: at most
the earlier pieces, each of which scanned clean, have left.

What is joined, exactly: for each scalar argument (a string or a number, at its JSON
pointer), the last :data:`DEPTH` distinct values sent at the same pointer to the same server
in the same run, in the order sent, then this call's value (``h1 h2 h3 c``: a value cut in
up to four pieces sent in order); and this call's value with each of them alone, before it
and after it (``h1 c``, ``c h1``, ...: a value cut in two, other pieces sent between its
halves, or its halves sent in the other order, as parallel branches do). Each is
read as the items of one list are (:func:`~.scanning.completing_findings`: neighbours
joined with nothing, runs of numbers read whole; phones by their shape, without
libphonenumber). A value found there that reaches this call's piece is a finding in it; a
value of two pieces that lies in the earlier one (a password whose keyword this call
completes) makes this call's piece a finding whole. A piece equal to the last one sent
there by the same request (a retry, a hedge: the same idempotency key) adds nothing and is
not joined again; the same value sent by another request is (a card's groups repeat).

Bounded: :data:`RUNS_KEPT` run-and-destination pairs, :data:`FIELDS_KEPT` fields each,
:data:`DEPTH` pieces per field, a long string kept as its first and last :data:`EDGE`
characters (a window reads no more of a piece). The work per call grows in proportion to its
arguments. Raw pieces are held in process memory only, like the detection cache.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Mapping
from typing import Any

from hybridmcp.policy.privacy.engines import _key_words
from hybridmcp.policy.privacy.levels import Finding, PrivacyConfig
from hybridmcp.policy.privacy.scanning import completing_findings

RUNS_KEPT = 256
"""Run-and-destination pairs remembered (the least recently used are forgotten)."""
FIELDS_KEPT = 32
"""Argument fields remembered per run and destination (the least recently sent forgotten)."""
DEPTH = 3
"""Earlier pieces joined with a call's piece: a value in up to four pieces."""
EDGE = 512
"""Characters kept of each end of a long string (what a window reads of a piece)."""


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def scalar_fields(
    value: Any, path: str = "", words: tuple[str, ...] = ()
) -> list[tuple[str, Any, tuple[str, ...]]]:
    """Each string or number in ``value`` with its JSON pointer and its field-name words."""
    out: list[tuple[str, Any, tuple[str, ...]]] = []
    stack: list[tuple[Any, str, tuple[str, ...]]] = [(value, path, words)]
    while stack:
        node, where, context = stack.pop()
        if isinstance(node, Mapping):
            for key, child in reversed(list(node.items())):
                text = key if isinstance(key, str) else str(key)
                stack.append((child, f"{where}/{_escape(text)}", _key_words(text) or context))
        elif isinstance(node, list | tuple):
            for index in range(len(node) - 1, -1, -1):
                stack.append((node[index], f"{where}/{index}", context))
        elif isinstance(node, str | int | float) and not isinstance(node, bool):
            out.append((where, node, context))
    return out


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _in_value(start: int, end: int, value: Any) -> tuple[int, int]:
    """Offsets in what :func:`_kept` kept of ``value`` as offsets in ``value`` itself (a span
    across the cut covers everything between)."""
    if not isinstance(value, str) or len(value) <= 2 * EDGE:
        return start, end
    shift = len(value) - 2 * EDGE
    return (start + shift if start >= EDGE else start), (end + shift if end > EDGE else end)


def _kept(value: Any) -> Any:
    if isinstance(value, str) and len(value) > 2 * EDGE:
        return value[:EDGE] + value[-EDGE:]
    return value


class SentPieces:
    """Per run and destination, the last pieces sent in each argument field."""

    def __init__(self) -> None:
        self._sent: OrderedDict[tuple[str, str], OrderedDict[str, deque[tuple[Any, str]]]] = (
            OrderedDict()
        )

    def completed(
        self,
        run_id: str,
        destination: str,
        arguments: Any,
        request_key: str,
        config: PrivacyConfig,
    ) -> list[Finding]:
        """Findings in ``arguments`` (paths into them) of values that their pieces complete
        with pieces this run sent ``destination`` before; empty when there are none.
        ``request_key`` names the request (its idempotency key): its own repeats are not
        joined with it."""
        fields = self._sent.get((run_id, destination))
        if not fields:
            return []
        found: dict[tuple[str, int, int, str], Finding] = {}
        for path, value, words in scalar_fields(arguments):
            earlier = fields.get(path)
            piece = _kept(value)
            if not earlier or earlier[-1] == (piece, request_key):
                continue
            before = [p for p, _ in earlier]
            in_piece, elsewhere = completing_findings(before, piece, words, config)
            for entity in sorted(elsewhere):  # a value of an earlier piece this one completes
                in_piece.append(
                    Finding(
                        path="",
                        entity_type=entity,
                        start=0,
                        end=len(_text(piece)),
                        score=1.0,
                        source="pattern",
                    )
                )  # (this piece is what makes it one: held whole)
            for f in in_piece:
                start, end = _in_value(f.start, f.end, value)
                ident = (path, start, end, f.entity_type)
                if ident not in found:
                    found[ident] = f.model_copy(
                        update={"path": path, "split_of": path, "start": start, "end": end}
                    )
        return list(found.values())

    def record(self, run_id: str, destination: str, arguments: Any, request_key: str) -> None:
        """Remember what was sent ``destination`` in this call (as sent: pseudonyms if
        redacted)."""
        key = (run_id, destination)
        fields = self._sent.get(key)
        if fields is None:
            fields = self._sent[key] = OrderedDict()
            while len(self._sent) > RUNS_KEPT:
                self._sent.popitem(last=False)
        else:
            self._sent.move_to_end(key)
        for path, value, _ in scalar_fields(arguments):
            piece = _kept(value)
            earlier = fields.get(path)
            if earlier is None:
                earlier = fields[path] = deque(maxlen=DEPTH)
                while len(fields) > FIELDS_KEPT:
                    fields.popitem(last=False)
            else:
                fields.move_to_end(path)
            if not earlier or earlier[-1] != (piece, request_key):
                earlier.append((piece, request_key))

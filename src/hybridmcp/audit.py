"""Append-only, hash-chained JSON-lines audit trail of everything that crossed the gate.

Each line is one record: the caller's fields (run_id, request_id, skill, provider, side,
kind "external_call" | "policy_decision", redactions, bytes_sent, bytes_received, cost,
outcome, ...) plus ``seq`` (1, 2, ...), ``ts`` (ISO 8601, UTC), ``prev_hash`` (the previous
line's ``hash``; 64 zeros for the first) and ``hash``: SHA-256 of the canonical JSON of the
record without ``hash`` (keys sorted, no spaces, UTF-8). Editing, removing, inserting or
reordering lines therefore breaks the chain, and :func:`verify` says where. Cutting whole
records off the end leaves a valid shorter chain; to catch that, keep the last ``(seq, hash)``
(:attr:`AuditLog.head`) somewhere else, e.g. the run's state, and pass it to :func:`verify`.

**Records must never contain raw sensitive values.** The gate passes only redaction metadata
(entity types, counts, paths, the salted digests of ``privacy.Finding``), never arguments,
vault contents or answers. This module cannot tell a secret from an id, so it trusts the
caller; an audit trail that holds the data it protects would be a leak with a checksum.

Writers may be many: asyncio tasks and threads in one process (a lock), and several processes
appending to the same file (``fcntl.flock`` on POSIX; each append re-reads the last line when the
file grew behind its back, so the chain continues across processes and restarts).
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hybridmcp.errors import AuditError

try:  # POSIX only; elsewhere processes must not share a file (documented in AuditLog).
    import fcntl
except ImportError:  # pragma: no cover - not reached on Linux/macOS
    fcntl = None  # type: ignore[assignment]

__all__ = ["GENESIS_HASH", "AuditLog", "AuditReport", "canonical_json", "record_hash", "verify"]

GENESIS_HASH = "0" * 64
_RESERVED = ("seq", "prev_hash", "hash")
_TAIL_CHUNK = 64 * 1024


def _jsonable(value: Any, where: str) -> Any:
    """Plain JSON values only, so the hash recomputed from the stored line is the same."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise AuditError(f"audit field {where} is {value!r}: JSON has no NaN or infinity")
        return value
    if isinstance(value, enum.Enum):
        return _jsonable(value.value, where)
    if isinstance(value, datetime):
        return _iso_utc(value, where)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, set | frozenset):
        return sorted(_jsonable(v, f"{where}[]") for v in value)
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):  # pydantic models: their JSON form
        return _jsonable(model_dump(mode="json"), where)
    raise AuditError(
        f"audit field {where} has type {type(value).__name__}, which is not JSON: "
        "pass str, numbers, bools, None, lists or dicts"
    )


def _iso_utc(value: datetime | str, where: str = "ts") -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise AuditError(f"audit field {where} is {value!r}, not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise AuditError(f"audit field {where} has no time zone; pass an aware (UTC) datetime")
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def canonical_json(record: Mapping[str, Any]) -> bytes:
    """The bytes that are hashed: sorted keys, no whitespace, UTF-8, no NaN."""
    return json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a record's canonical JSON, ``hash`` itself excluded."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AuditLog:
    """One audit file, appended to by any number of tasks, threads and processes.

    ``fsync=True`` makes every append durable before it returns (slower: one disk flush per
    record). ``clock`` supplies ``ts`` when a record has none (tests pass a fixed clock).
    On platforms without ``fcntl`` only one process may append to a file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: bool = False,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.clock = clock
        self._lock = threading.Lock()
        self._fd: int | None = None
        # What this instance last saw at the end of the file: size, seq, hash.
        self._size = -1
        self._seq = 0
        self._hash = GENESIS_HASH

    # -- file handling ----------------------------------------------------------------------

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        return self._fd

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
                self._size = -1

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten close must not leak the descriptor
        fd = getattr(self, "_fd", None)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def _sync_tail(self, fd: int) -> None:
        """Continue the chain from the file's last line if the file changed since we wrote."""
        size = os.fstat(fd).st_size
        if size == self._size:
            return
        if size == 0:
            self._size, self._seq, self._hash = 0, 0, GENESIS_HASH
            return
        start = max(0, size - _TAIL_CHUNK)
        tail = os.pread(fd, size - start, start)
        if not tail.endswith(b"\n"):
            raise AuditError(
                f"{self.path}: the last line is incomplete (an interrupted write); "
                "appending would bury it mid-file. Run `verify` and repair the file first."
            )
        while start > 0 and tail.count(b"\n") < 2:
            # The last line is longer than the chunk: read further back.
            start = max(0, start - _TAIL_CHUNK)
            tail = os.pread(fd, size - start, start)
        last = tail[:-1].rsplit(b"\n", 1)[-1]
        try:
            record = json.loads(last)
            seq, digest = int(record["seq"]), str(record["hash"])
        except (ValueError, KeyError, TypeError) as exc:
            raise AuditError(
                f"{self.path}: the last line is not an audit record ({exc}); "
                "run `verify` before appending"
            ) from None
        self._size, self._seq, self._hash = size, seq, digest

    # -- appending --------------------------------------------------------------------------

    @property
    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the last record this instance wrote or saw: anchor it elsewhere."""
        return self._seq, self._hash

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Write one record and return it as written (with seq, ts, prev_hash, hash)."""
        clash = [k for k in _RESERVED if k in record]
        if clash:
            raise AuditError(f"audit record may not set {', '.join(clash)}: the log assigns them")
        body = _jsonable(dict(record), "record")
        ts = body.pop("ts", None)
        ts = _iso_utc(ts if ts is not None else self.clock())
        with self._lock:
            fd = self._open()
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                self._sync_tail(fd)
                written = {"seq": self._seq + 1, "ts": ts, **body, "prev_hash": self._hash}
                written["hash"] = record_hash(written)
                line = json.dumps(written, ensure_ascii=False, allow_nan=False) + "\n"
                data = line.encode("utf-8")
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if self.fsync:
                    os.fsync(fd)
                self._seq, self._hash = written["seq"], written["hash"]
                self._size = os.fstat(fd).st_size
            finally:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
        return written

    async def append_async(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """:meth:`append` off the event loop, for callers that must not block on the disk."""
        return await asyncio.to_thread(self.append, record)


# ------------------------------------------------------------------------------------------
# Verification


@dataclass
class AuditReport:
    """Result of :func:`verify`: ``ok`` only when there is no problem at all."""

    ok: bool
    records: int
    problems: list[str] = field(default_factory=list)
    head: tuple[int, str] | None = None

    def raise_for_problems(self) -> None:
        if not self.ok:
            listed = "; ".join(self.problems[:5])
            more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
            raise AuditError(f"audit trail failed verification: {listed}{more}")


def iter_records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The records of a file, without checking them (see :func:`verify` for that)."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def verify(
    path: str | os.PathLike[str],
    *,
    expected_head: tuple[int, str] | None = None,
) -> AuditReport:
    """Check the whole chain and say, per line, what is wrong.

    Detects edited records (hash mismatch), removed, inserted or reordered ones (seq out of
    order, prev_hash not the previous line's hash) and an incomplete final line. With
    ``expected_head`` (an :attr:`AuditLog.head` kept elsewhere) it also detects records cut off
    the end, which a chain alone cannot.
    """
    target = Path(path)
    try:
        data = target.read_bytes()
    except FileNotFoundError:
        return AuditReport(ok=False, records=0, problems=[f"{target}: no such audit file"])
    problems: list[str] = []
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        problems.append(
            f"line {len(lines)}: incomplete final line ({len(lines[-1])} bytes, no newline): "
            "an interrupted or truncated write"
        )
    prev_seq, prev_hash = 0, GENESIS_HASH
    records = 0
    last: tuple[int, str] | None = None
    for number, raw in enumerate(lines, start=1):
        if number == len(lines) and not data.endswith(b"\n"):
            break  # already reported as incomplete
        if not raw.strip():
            problems.append(f"line {number}: empty line")
            continue
        try:
            record = json.loads(raw)
        except ValueError as exc:
            problems.append(f"line {number}: not valid JSON ({exc.args[0] if exc.args else exc})")
            continue
        if not isinstance(record, dict) or not all(
            k in record for k in ("seq", "hash", "prev_hash")
        ):
            problems.append(f"line {number}: not an audit record (seq, prev_hash or hash missing)")
            continue
        records += 1
        seq, stored = record["seq"], record["hash"]
        if not isinstance(seq, int) or isinstance(seq, bool):
            problems.append(f"line {number}: seq is {seq!r}, not an integer")
            seq = prev_seq + 1
        elif seq != prev_seq + 1:
            if seq > prev_seq + 1:
                what = f"{seq - prev_seq - 1} record(s) missing before it"
            else:
                what = "out of order or duplicated"
            problems.append(f"line {number}: seq {seq} follows seq {prev_seq}: {what}")
        if record["prev_hash"] != prev_hash:
            problems.append(
                f"line {number} (seq {seq}): prev_hash does not match the hash of the line before "
                "it: a record was removed, inserted or moved here"
            )
        if record_hash(record) != stored:
            problems.append(
                f"line {number} (seq {seq}): hash mismatch: the record was modified after it was "
                "written"
            )
        # Go on from what the file says, so one bad line is reported once, not for every line
        # after it.
        prev_seq, prev_hash = seq, stored
        last = (seq, stored)
    if expected_head is not None and last != tuple(expected_head):
        exp_seq, exp_hash = expected_head
        have = f"seq {last[0]}" if last else "no records"
        problems.append(
            f"end of file: expected the last record to be seq {exp_seq} "
            f"(hash {exp_hash[:12]}...), found {have}: records were cut off or replaced"
        )
    return AuditReport(ok=not problems, records=records, problems=problems, head=last)

"""Append-only, chained JSON-lines audit trail of everything that crossed the gate.

Each line is one record: the caller's fields (run_id, request_id, skill, provider, side,
kind "external_call" | "policy_decision", redactions, bytes_sent, bytes_received, cost,
outcome, ...) plus ``seq`` (1, 2, ...), ``ts`` (ISO 8601, UTC) and the chain: ``prev_mac`` (the
previous line's ``mac``; 64 zeros for the first) and ``mac``, HMAC-SHA256 under the trail's key
of the canonical JSON of the record without ``mac`` (keys sorted, no spaces, UTF-8). Editing,
removing, inserting or reordering lines breaks the chain, and :func:`verify` says where; without
the key nobody can recompute it.

Cutting whole records off the end still leaves a valid shorter chain, and a holder of the key
can rewrite the whole chain. The **head** (the last ``seq`` and ``mac``) is therefore anchored
outside the file: every append saves it in a :class:`HeadAnchor` (the run database by default,
``persistence.SqliteHeads``) while the file is locked, and :func:`verify` checks that the file
ends exactly at the anchored head. An exported head (``hybridmcp audit head``) kept elsewhere
is checked the same way, except that records written after it are allowed.

Trails written before keys (``prev_hash`` / ``hash``: plain SHA-256) are still read and verified
(:attr:`AuditReport.keyed` is False): they show edits, not truncation or a recomputed chain, and
keyed records are never appended to them.

**Records must never contain raw sensitive values.** The gate passes only redaction metadata
(entity types, counts, paths, the salted digests of ``privacy.Finding``), never arguments,
vault contents or answers. This module cannot tell a secret from an id, so it trusts the
caller; an audit trail that holds the data it protects would be a leak with a checksum.

Writers may be many: asyncio tasks and threads in one process (a lock), and several processes
appending to the same file (``fcntl.flock`` on POSIX; each append re-reads the last line when the
file grew behind its back, so the chain continues across processes and restarts).

An event loop never writes: it hands records to the log's writer thread with
:meth:`AuditLog.submit` (:func:`hand_over` for any sink), which queues them in order and returns
at once. Nothing can take a record back once handed over (the future it returns cannot be
cancelled, so a caller cancelled while it waits loses nothing); :meth:`AuditLog.flush` and
:meth:`AuditLog.close` wait until every record handed over is written, and so does the
interpreter's exit. A caller that must know a record is in the file (before it sends what the
record describes) waits for the future (:func:`written`).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import enum
import errno
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import stat
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from hybridmcp.errors import AnchorUnanswered, AuditError

logger = logging.getLogger(__name__)

try:  # POSIX only; elsewhere processes must not share a file (documented in AuditLog).
    import fcntl
except ImportError:  # pragma: no cover - not reached on Linux/macOS
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "ENV_KEY",
    "GENESIS_HASH",
    "AuditLog",
    "AuditReport",
    "Head",
    "HeadAnchor",
    "MemoryAudit",
    "append_written",
    "canonical_json",
    "hand_over",
    "load_key",
    "parse_head",
    "record_hash",
    "record_mac",
    "trail_id",
    "verify",
    "written",
]

ENV_KEY = "HYBRIDMCP_AUDIT_KEY"
GENESIS_HASH = "0" * 64
_RESERVED = ("seq", "prev_hash", "hash", "prev_mac", "mac")
_TAIL_CHUNK = 64 * 1024
LOCK_TIMEOUT_S = 60.0
"""Longest wait for another process's append to the same trail (each takes milliseconds)."""


def _flock(fd: int, exclusive: bool, path: object, timeout_s: float | None = None) -> None:
    """Lock the trail file (exclusively to append, shared to read), waiting at most
    ``timeout_s`` (:data:`LOCK_TIMEOUT_S`) for another process: then one-line
    :class:`AuditError`, never a hang (a process stopped while appending keeps the lock)."""
    if fcntl is None:  # pragma: no cover - not reached on Linux/macOS
        return
    wait = LOCK_TIMEOUT_S if timeout_s is None else timeout_s
    deadline = time.monotonic() + wait
    pause = 0.001
    while True:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        if time.monotonic() > deadline:
            raise AuditError(
                f"audit trail {path} stayed locked by another process for over {wait:.0f} s; "
                "nothing was written"
            )
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


class Head(NamedTuple):
    """The last record of a trail: its ``seq`` and its ``mac`` (``hash`` in unkeyed trails)."""

    seq: int
    mac: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.mac}"


def parse_head(text: str) -> Head:
    """``"35:<64 hex>"`` (what ``hybridmcp audit head`` prints) as a :class:`Head`."""
    seq, sep, mac = text.strip().partition(":")
    if not sep or not seq.isdigit() or len(mac) != 64 or not _is_hex(mac):
        raise AuditError(
            f"head {text!r} is not SEQ:MAC (a number, a colon and 64 hex digits), "
            "as `hybridmcp audit head FILE` prints it"
        )
    return Head(int(seq), mac.lower())


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


class HeadAnchor(Protocol):
    """Where a trail's head is kept outside the file (``persistence.SqliteHeads``)."""

    def load(self, trail: str) -> Head | None: ...

    def save(self, trail: str, head: Head) -> None: ...


def trail_id(path: str | os.PathLike[str]) -> str:
    """The name a trail's head is anchored under: its absolute, resolved path."""
    return str(Path(path).expanduser().resolve())


def load_key(
    key_file: str | os.PathLike[str], *, secret: str | None = None, create: bool = True
) -> bytes | None:
    """The trail's MAC key: ``secret`` (from the configuration), else ``$HYBRIDMCP_AUDIT_KEY``,
    else the key file, which is created (32 random bytes, hex, mode 0600) when missing and
    ``create`` is set. ``None`` when there is no key and none may be created."""
    if secret:
        return secret.encode()
    if env := os.environ.get(ENV_KEY):
        return env.encode()
    path = Path(key_file).expanduser()
    if not path.exists():
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole under a name of its own, then linked into place: a process starting
        # at the same moment sees no key or the whole key, never an empty file; if it linked
        # its key first, that one is used.
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(draft, path)
            except FileExistsError:  # another process created it first: use theirs
                pass
        finally:
            draft.unlink(missing_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise AuditError(
            f"audit key file {path} is accessible to other users (mode {mode:o}): "
            f"run `chmod 600 {path}`"
        )
    key = path.read_text(encoding="utf-8").strip()
    if not key:
        raise AuditError(f"audit key file {path} is empty: delete it to have a new key made")
    return key.encode()


def _jsonable(value: Any, where: str) -> Any:
    """Plain JSON values only, so the hash recomputed from the stored line is the same."""
    if isinstance(value, str):
        return _utf8(value)
    if value is None or isinstance(value, bool | int):
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
        return {_utf8(str(k)): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
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


def _utf8(text: str) -> str:
    """``text`` as UTF-8 can hold it: a lone surrogate (a Python ``str`` no file can hold,
    such as a server's ``"\\ud800"`` read from JSON) is written as its escape, ``\\ud800``, as
    text. Any other string is returned as it is."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _iso_utc(value: datetime | str, where: str = "ts") -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise AuditError(f"audit field {where} is {value!r}, not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise AuditError(f"audit field {where} has no time zone; pass an aware (UTC) datetime")
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _why(err: OSError) -> str:
    """An OS error as the few words that say what to do about it."""
    if err.errno == errno.ENOSPC:
        return "the disk holding it is full"
    if err.errno == errno.EFBIG:
        return "the file reached the size limit of the file system or of the process"
    if err.errno == errno.EDQUOT:
        return "the disk quota is used up"
    return err.strerror or type(err).__name__


_LINE_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}
"""Characters some readers take for the end of a line (``str.splitlines``, JavaScript before
ES2019): written escaped, so a record is one line to every reader (JSON reads them back the
same, and the MAC is of the values, not of how the line spells them)."""
_BREAKS = re.compile("[\u2028\u2029\x85]")


def _line(record: Mapping[str, Any]) -> bytes:
    """A record as its line in the file: JSON on one line, UTF-8, newline-terminated."""
    text = json.dumps(record, ensure_ascii=False, allow_nan=False)
    if _BREAKS.search(text):
        text = _BREAKS.sub(lambda m: _LINE_BREAKS[m.group()], text)
    return (text + "\n").encode("utf-8")


def canonical_json(record: Mapping[str, Any]) -> bytes:
    """The bytes that are hashed: sorted keys, no whitespace, UTF-8, no NaN."""
    return json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a record's canonical JSON, ``hash`` itself excluded (unkeyed trails)."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def record_mac(record: Mapping[str, Any], key: bytes) -> str:
    """HMAC-SHA256 (hex) under ``key`` of a record's canonical JSON, ``mac`` itself excluded."""
    body = {k: v for k, v in record.items() if k != "mac"}
    return hmac.new(key, canonical_json(body), hashlib.sha256).hexdigest()


def _chain_fields(keyed: bool) -> tuple[str, str]:
    return ("prev_mac", "mac") if keyed else ("prev_hash", "hash")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class MemoryAudit:
    """Keeps the latest audit records in memory; the default when no audit file is configured
    (bounded, so a long-lived process does not grow without end)."""

    def __init__(self, keep: int = 10_000) -> None:
        self.records: deque[dict[str, Any]] = deque(maxlen=keep)

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        self.records.append(record)
        return record


class AuditLog:
    """One audit file, appended to by any number of tasks, threads and processes.

    With ``key`` the records are chained with HMAC-SHA256 (``prev_mac`` / ``mac``); without it,
    with plain SHA-256 (``prev_hash`` / ``hash``: the old format, which cannot show a recomputed
    chain). With ``anchor`` every append checks, while the file is locked, that the file still
    ends at the anchored head, then saves the new head there: a trail cut, emptied or rewritten
    behind the writer's back is refused (:class:`AuditError`), never continued.

    ``fsync=True`` makes every append durable before it returns (slower: one disk flush per
    record). ``clock`` supplies ``ts`` when a record has none (tests pass a fixed clock).
    On platforms without ``fcntl`` only one process may append to a file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        key: bytes | None = None,
        anchor: HeadAnchor | None = None,
        fsync: bool = False,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.path = Path(path)
        self.key = key
        self.anchor = anchor
        self.fsync = fsync
        self.clock = clock
        self._prev_field, self._mac_field = _chain_fields(key is not None)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._trail = ""
        # What this instance last saw at the end of the file: size, seq, mac.
        self._size = -1
        self._seq = 0
        self._hash = GENESIS_HASH
        # The records handed over (submit), waiting for the writer thread, in order.
        self._queue: deque[tuple[dict[str, Any], concurrent.futures.Future[dict[str, Any]]]] = (
            deque()
        )
        self._queued = threading.Condition()
        self._writer: threading.Thread | None = None
        self._writing = False
        self._stopping = False

    # -- file handling ----------------------------------------------------------------------

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
            # The name its head is anchored under, resolved once for the file it has open.
            self._trail = trail_id(self.path)
        return self._fd

    def close(self) -> None:
        """Write every record handed over (:meth:`flush`), stop the writer thread, and close
        the file and the anchor. A record handed over later is still written (the file is
        opened again)."""
        self.flush()
        self._stop_writer()
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
                self._size = -1
        close_anchor = getattr(self.anchor, "close", None)  # a database connection it holds
        if close_anchor is not None:
            close_anchor()

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
        """Continue the chain from the file's last line if the file changed since we wrote,
        after checking that line against the key and the anchored head."""
        size = os.fstat(fd).st_size
        if size == self._size:
            return
        if size == 0:  # (what it saw is taken only once checked, as for a last line)
            self._check_anchor(Head(0, GENESIS_HASH))
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
            seq, digest = int(record["seq"]), str(record[self._mac_field])
        except (ValueError, KeyError, TypeError) as exc:
            kind = "keyed" if self.key is not None else "unkeyed"
            raise AuditError(
                f"{self.path}: the last line is not a {kind} audit record (no {exc}); "
                "keyed and unkeyed records never share a file: run `hybridmcp audit verify`, "
                "and start a new file for new records"
            ) from None
        if self.key is not None and not hmac.compare_digest(record_mac(record, self.key), digest):
            raise AuditError(
                f"{self.path}: the last record (seq {seq}) does not carry a valid MAC under this "
                "key (edited, or written with another key); nothing was appended. "
                "Run `hybridmcp audit verify`."
            )
        self._check_anchor(Head(seq, digest), prev=record.get(self._prev_field))
        self._size, self._seq, self._hash = size, seq, digest

    def _check_anchor(self, tail: Head, prev: object = None) -> None:
        if self.anchor is None:
            return
        anchored = self.anchor.load(self._trail)
        if anchored is None and tail.seq == 0:
            return
        if interrupted_append(anchored, tail, prev, keyed=self.key is not None):
            # The last append wrote its record (chained to the anchored head, its MAC checked
            # above: only a key holder can make one) and stopped before anchoring it: anchor it.
            assert anchored is not None
            logger.warning(
                "%s: seq %d was written but its head not anchored (an interrupted append); "
                "anchored it now",
                self.path,
                tail.seq,
            )
            self.anchor.save(self._trail, tail)
            return
        if anchored != tail:
            found = "no head" if anchored is None else f"seq {anchored.seq}"
            raise AuditError(
                f"{self.path}: the file ends at seq {tail.seq} but its anchored head is {found}: "
                "records were cut off, rewritten or appended outside the log; nothing was "
                "appended. Run `hybridmcp audit verify` and start a new file."
            )

    # -- appending --------------------------------------------------------------------------

    @property
    def head(self) -> tuple[int, str]:
        """``(seq, mac)`` of the last record this instance wrote or saw."""
        return Head(self._seq, self._hash)

    def _seal(self, written: dict[str, Any]) -> str:
        return record_mac(written, self.key) if self.key is not None else record_hash(written)

    def _prepare(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The record's fields as they will be written, with its ``ts`` (the time it is
        given, not the time it is written): a record that cannot be written is refused here,
        in the caller, as one-line :class:`AuditError`."""
        clash = [k for k in _RESERVED if k in record]
        if clash:
            raise AuditError(f"audit record may not set {', '.join(clash)}: the log assigns them")
        body = _jsonable(dict(record), "record")
        ts = body.pop("ts", None)
        return {"ts": _iso_utc(ts if ts is not None else self.clock()), **body}

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Write one record and return it as written (with seq, ts and the chain fields), in
        the calling thread (an event loop hands records to :meth:`submit` instead)."""
        return self._append(self._prepare(record))

    def _append(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            fd = self._locked()
            try:
                self._sync_tail(fd)
                written = {"seq": self._seq + 1, **body, self._prev_field: self._hash}
                written[self._mac_field] = self._seal(written)
                head = Head(written["seq"], written[self._mac_field])
                start = os.fstat(fd).st_size
                self._write(fd, _line(written))
                if self.anchor is not None:  # still under the file lock: one head per file
                    try:
                        self.anchor.save(self._trail, head)
                    except AnchorUnanswered:
                        # Anchored or not, no one can say (the anchor's server may still take
                        # the head): the record stays, so the trail ends at the anchored head
                        # or one record past it (the slack verify allows; the next append
                        # anchors it). Taken back, a head saved after all would be past the
                        # trail's end: a cut tail to verify.
                        raise
                    except Exception:
                        # Not anchored: taken back, so the file still ends at its head (records
                        # past it would fail verification); as if nothing had been written.
                        os.ftruncate(fd, start)
                        raise
                self._seq, self._hash = head
                self._size = os.fstat(fd).st_size
            finally:
                self._unlock(fd)
        return written

    # -- the writer thread ------------------------------------------------------------------

    def submit(self, record: Mapping[str, Any]) -> concurrent.futures.Future[dict[str, Any]]:
        """Hand a record to the writer thread: it is queued (records are written in the order
        they are handed over) and this returns at once, never waiting for the disk, so an
        event loop may call it. The future gives the record as written, or the
        :class:`AuditError` that kept it out of the file; it cannot be cancelled (a record
        handed over is written whatever becomes of its caller). A record that cannot be
        written at all (a field that is not JSON) is refused here."""
        body = self._prepare(record)
        future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        future.set_running_or_notify_cancel()  # running from now on: cancel() is refused
        with self._queued:
            self._queue.append((body, future))
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_queued, name=f"audit {self.path.name}", daemon=True
                )
                self._writer.start()
                _WRITERS.add(self)
            self._queued.notify_all()
        return future

    def _write_queued(self) -> None:
        """The writer thread: each record handed over, in order, until stopped with nothing
        left to write. A record that fails is the failure of its future (raised where its
        write is waited for); the records after it are still written."""
        while True:
            with self._queued:
                while not self._queue:
                    if self._stopping:
                        self._writer = None
                        self._queued.notify_all()
                        return
                    self._queued.wait()
                body, future = self._queue.popleft()
                self._writing = True
            try:
                future.set_result(self._append(body))
            except Exception as err:  # the caller waiting for the record raises it
                future.set_exception(err)
            finally:
                with self._queued:
                    self._writing = False
                    self._queued.notify_all()

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every record handed over so far is written (or failed). False when
        ``timeout_s`` passed first."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._queued:
            while self._queue or self._writing:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._queued.wait(left)
        return True

    def _stop_writer(self) -> None:
        with self._queued:
            writer = self._writer
            if writer is None:
                return
            self._stopping = True
            self._queued.notify_all()
        if writer is not threading.current_thread():
            writer.join()
        with self._queued:
            self._stopping = False

    def _locked(self) -> int:
        """The trail's descriptor, locked, for the file at :attr:`path` now: a trail deleted
        or moved away while open is refused (writing on would put the records in a file no one
        sees); another file put in its place is opened (and checked as any trail)."""
        while True:
            fd = self._open()
            _flock(fd, True, self.path)
            try:
                now = os.stat(self.path)
            except FileNotFoundError:
                self._unlock(fd)
                raise AuditError(
                    f"audit trail {self.path} is gone (deleted or moved while it was written); "
                    "nothing was appended. Find it, or run `hybridmcp audit verify` on it and "
                    "give the run a new audit file"
                ) from None
            except OSError:
                self._unlock(fd)
                raise
            held = os.fstat(fd)
            if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
                return fd
            self._unlock(fd)  # another file at the path: that one is the trail now
            os.close(fd)
            self._fd, self._size = None, -1

    @staticmethod
    def _unlock(fd: int) -> None:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _write(self, fd: int, data: bytes) -> None:
        """Write one whole line at the end of the file (locked), or nothing: a write that
        fails part way (the disk full, the file size limit, an I/O error) is cut off again,
        so the trail still ends at its last whole record, and the failure is one line."""
        start = os.fstat(fd).st_size
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
            if self.fsync:
                os.fsync(fd)
        except OSError as err:
            try:
                os.ftruncate(fd, start)
            except OSError as undo:
                raise AuditError(
                    f"audit trail {self.path}: a record could not be written ({_why(err)}) "
                    f"nor its part removed ({_why(undo)}): the trail ends in an incomplete "
                    "line; run `hybridmcp audit verify`"
                ) from None
            raise AuditError(
                f"audit trail {self.path}: a record could not be written ({_why(err)}); the "
                "trail ends at its last whole record, as before"
            ) from None

    async def append_async(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """:meth:`submit`, waiting until the record is written (cancelling the wait does not
        take the record back)."""
        return await written(self.submit(record))


_WRITERS: weakref.WeakSet[AuditLog] = weakref.WeakSet()
"""The logs with a writer thread, whose queued records the interpreter's exit writes."""
EXIT_FLUSH_S = 30.0
"""Longest wait at the interpreter's exit for each log's queued records (a trail locked by a
stopped process must not hold the exit for ever)."""


@atexit.register
def _flush_at_exit() -> None:
    for log in list(_WRITERS):
        if not log.flush(EXIT_FLUSH_S):
            logger.error("audit trail %s: records were still queued at exit", log.path)


def hand_over(sink: Any, record: dict[str, Any]) -> concurrent.futures.Future[Any] | None:
    """Give ``record`` to an audit sink without waiting for a disk: queued with the sink's
    ``submit`` (an :class:`AuditLog`: the future of its write), else appended at once (a sink
    in memory: None). Nothing happens between taking the record and queuing it that a task's
    cancellation could cut."""
    submit = getattr(sink, "submit", None)
    if submit is None:
        sink.append(record)
        return None
    future: concurrent.futures.Future[Any] = submit(record)
    return future


async def written(future: concurrent.futures.Future[Any] | None) -> Any:
    """Wait until a record handed over (:func:`hand_over`) is written; its write's error is
    raised here. Cancelling the wait leaves the record to be written all the same. Anything
    but a future (what a sink that appends at once returned) is already written."""
    if not isinstance(future, concurrent.futures.Future):
        return future
    if future.done():
        return future.result()
    waited = asyncio.wrap_future(future)
    # Read when it ends, so a failure no one waits for any longer is not logged twice.
    waited.add_done_callback(lambda done: done.cancelled() or done.exception())
    return await asyncio.shield(waited)


async def append_written(sink: Any, record: dict[str, Any]) -> Any:
    """Hand ``record`` to ``sink`` (:func:`hand_over`) and wait until it is written
    (:func:`written`): for a record that must be in the trail before the caller goes on."""
    return await written(hand_over(sink, record))


# ------------------------------------------------------------------------------------------
# Verification


@dataclass
class AuditReport:
    """Result of :func:`verify`: ``ok`` only when there is no problem at all."""

    ok: bool
    records: int
    problems: list[str] = field(default_factory=list)
    head: Head | None = None
    keyed: bool | None = None
    """True: MAC-chained records; False: an unkeyed (SHA-256) trail; None: no records."""
    anchored: Head | None = None
    """The head the anchor holds for this file, if an anchor was consulted and had one."""
    notes: list[str] = field(default_factory=list)
    """What the check could not establish (an unkeyed trail cannot show truncation)."""

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


def _read_with_anchor(target: Path, anchor: HeadAnchor | None) -> tuple[bytes, Head | None]:
    """The file's bytes and its anchored head, read together under a shared lock so that an
    append (which writes the line, then the head) is never seen half done."""
    with open(target, "rb") as handle:
        _flock(handle.fileno(), False, target)
        try:
            data = handle.read()
            anchored = anchor.load(trail_id(target)) if anchor is not None else None
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return data, anchored


def verify(
    path: str | os.PathLike[str],
    *,
    key: bytes | None = None,
    anchor: HeadAnchor | None = None,
    expected_head: tuple[int, str] | None = None,
) -> AuditReport:
    """Check the whole chain and say, per line, what is wrong.

    Detects edited records (MAC or hash mismatch), removed, inserted or reordered ones (seq out
    of order, the previous-link not the previous line's) and an incomplete final line. Keyed
    records need ``key``: without it their MACs cannot be checked, which is a problem.

    With ``anchor`` the file must end exactly at the head anchored for it: this shows records
    cut off the end, an emptied file, a chain recomputed (even with the key) and records appended
    outside the log. A keyed trail with records but no anchored head fails too (the anchor was
    lost, or the file moved: pass the exported head). ``expected_head`` (an exported head, kept
    elsewhere) must be in the file with the same MAC; records after it are allowed.
    """
    target = Path(path)
    try:
        data, anchored = _read_with_anchor(target, anchor)
    except FileNotFoundError:
        return AuditReport(ok=False, records=0, problems=[f"{target}: no such audit file"])
    except OSError as err:  # a directory, a file it may not read
        return AuditReport(ok=False, records=0, problems=[f"{target}: cannot read: {err.strerror}"])
    problems: list[str] = []
    records, keyed, by_seq = _check_chain(data, key, problems)
    last = Head(*max(by_seq.items())) if by_seq else None
    notes: list[str] = []
    if keyed is False:
        notes.append(
            "unkeyed trail (SHA-256 chain, no key): it shows edited, removed and reordered "
            "records, not records cut off the end or a recomputed chain"
        )
    before_last = by_seq.get(last.seq - 1) if last is not None else None
    if (
        anchor is not None
        and not problems
        and interrupted_append(anchored, last, before_last, keyed=keyed)
    ):
        assert last is not None
        notes.append(
            f"seq {last.seq} was written but its head not anchored (an append interrupted "
            "between the two): the next append anchors it"
        )
    elif anchor is not None:
        problems.extend(_anchor_problems(anchored, last, by_seq, keyed, exported=expected_head))
    elif keyed and expected_head is None:
        notes.append("no anchored head was consulted: records cut off the end cannot be ruled out")
    if expected_head is not None:
        problems.extend(_exported_problems(Head(*expected_head), by_seq))
    return AuditReport(
        ok=not problems,
        records=records,
        problems=problems,
        head=last,
        keyed=keyed,
        anchored=anchored,
        notes=notes,
    )


def _check_chain(
    data: bytes, key: bytes | None, problems: list[str]
) -> tuple[int, bool | None, dict[int, str]]:
    """Walk the lines; append what is wrong to ``problems``. Returns the record count, whether
    the trail is keyed, and each record's seq and mac (hash)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        problems.append(
            f"line {len(lines)}: incomplete final line ({len(lines[-1])} bytes, no newline): "
            "an interrupted or truncated write"
        )
        lines.pop()  # reported: not read as a record
    walk = _ChainWalk(key, problems)
    for number, raw in enumerate(lines, start=1):
        record = _parse_line(number, raw, problems)
        if record is not None:
            walk.check(number, record)
    return walk.records, walk.keyed, walk.by_seq


def _parse_line(number: int, raw: bytes, problems: list[str]) -> dict[str, Any] | None:
    """The line's record, or None (its problem appended) when it is not one."""
    if not raw.strip():
        problems.append(f"line {number}: empty line")
        return None
    try:
        record = json.loads(raw)
    except ValueError as exc:
        problems.append(f"line {number}: not valid JSON ({exc.args[0] if exc.args else exc})")
        return None
    keyed = isinstance(record, dict) and "mac" in record
    prev_field, mac_field = _chain_fields(keyed)
    if not isinstance(record, dict) or not all(k in record for k in ("seq", prev_field, mac_field)):
        problems.append(
            f"line {number}: not an audit record (seq, prev_mac/prev_hash or mac/hash missing)"
        )
        return None
    return record


@dataclass
class _ChainWalk:
    """The chain so far, as :func:`_check_chain` reads it line by line."""

    key: bytes | None
    problems: list[str]
    records: int = 0
    keyed: bool | None = None
    by_seq: dict[int, str] = field(default_factory=dict)
    prev_seq: int = 0
    prev_hash: str = GENESIS_HASH
    missing_key_told: bool = False

    def check(self, number: int, record: dict[str, Any]) -> None:
        this_keyed = "mac" in record
        prev_field, mac_field = _chain_fields(this_keyed)
        if self.keyed is None:
            self.keyed = this_keyed
        elif self.keyed != this_keyed:
            self.problems.append(
                f"line {number}: {'keyed' if this_keyed else 'unkeyed'} record in "
                f"{'a keyed' if self.keyed else 'an unkeyed'} trail: records of another trail "
                "were mixed in"
            )
        self.records += 1
        seq, stored = self._seq(number, record["seq"]), str(record[mac_field])
        if record[prev_field] != self.prev_hash:
            self.problems.append(
                f"line {number} (seq {seq}): {prev_field} does not match the line before it: "
                "a record was removed, inserted or moved here"
            )
        self._check_seal(number, seq, record, stored, this_keyed)
        # Go on from what the file says, so one bad line is reported once, not for every line
        # after it.
        self.prev_seq, self.prev_hash = seq, stored
        self.by_seq[seq] = stored

    def _seq(self, number: int, seq: Any) -> int:
        if not isinstance(seq, int) or isinstance(seq, bool):
            self.problems.append(f"line {number}: seq is {seq!r}, not an integer")
            return self.prev_seq + 1
        if seq != self.prev_seq + 1:
            if seq > self.prev_seq + 1:
                what = f"{seq - self.prev_seq - 1} record(s) missing before it"
            else:
                what = "out of order or duplicated"
            self.problems.append(f"line {number}: seq {seq} follows seq {self.prev_seq}: {what}")
        return seq

    def _check_seal(
        self, number: int, seq: int, record: dict[str, Any], stored: str, keyed: bool
    ) -> None:
        """The record's hash (unkeyed) or MAC (keyed) against what it carries."""
        if not keyed:
            if record_hash(record) != stored:
                self.problems.append(
                    f"line {number} (seq {seq}): hash mismatch: the record was modified after "
                    "it was written"
                )
        elif self.key is None:
            if not self.missing_key_told:
                self.problems.append(
                    f"line {number}: keyed records but no key to check their MACs: set "
                    f"${ENV_KEY}, pass --key-file, or keep the key file beside the trail"
                )
                self.missing_key_told = True
        elif not hmac.compare_digest(record_mac(record, self.key), stored):
            self.problems.append(
                f"line {number} (seq {seq}): MAC mismatch: the record was modified after it was "
                "written, or forged without the key (or the key is not this trail's)"
            )


def interrupted_append(
    anchored: Head | None, last: Head | None, prev: object, *, keyed: bool | None
) -> bool:
    """Is the file exactly one keyed record past its anchored head, chained to it? That is what
    an append leaves when it stops between writing its record and anchoring it (appends hold
    the file lock, so at most one): a crash, not a cut or a rewrite."""
    return bool(
        keyed
        and anchored is not None
        and last is not None
        and last.seq == anchored.seq + 1
        and isinstance(prev, str)
        and hmac.compare_digest(prev, anchored.mac)
    )


NO_HEAD = "end of file: no head is anchored for this file"
"""How ``verify`` starts the problem of a keyed trail whose head it found nowhere."""


def _anchor_problems(
    anchored: Head | None,
    last: Head | None,
    by_seq: dict[int, str],
    keyed: bool | None,
    *,
    exported: tuple[int, str] | None,
) -> list[str]:
    if anchored is None:
        if keyed and exported is None:
            seq = last.seq if last else 0
            return [
                f"{NO_HEAD} (last seq {seq}): the anchor "
                "was lost or the file moved, so records cut off the end cannot be ruled out; "
                "verify against an exported head with --head SEQ:MAC"
            ]
        return []
    if last == anchored:
        return []
    have = f"seq {last.seq}" if last else "no records"
    if by_seq.get(anchored.seq) == anchored.mac and last is not None and last.seq > anchored.seq:
        return [
            f"end of file: {last.seq - anchored.seq} record(s) after the anchored head (seq "
            f"{anchored.seq}): appended outside the log, by a holder of the key, or by a write "
            "interrupted before its head was anchored"
        ]
    if anchored.seq in by_seq:
        return [
            f"seq {anchored.seq}: its MAC is not the anchored one ({anchored.mac[:12]}...): "
            "the chain was rewritten"
        ]
    return [
        f"end of file: the anchored head is seq {anchored.seq} ({anchored.mac[:12]}...), the "
        f"file has {have}: records were cut off the end or the file was emptied or replaced"
    ]


def _exported_problems(expected: Head, by_seq: dict[int, str]) -> list[str]:
    found = by_seq.get(expected.seq)
    if found is None:
        last = max(by_seq, default=0)
        return [
            f"end of file: expected the trail to reach seq {expected.seq} "
            f"({expected.mac[:12]}...), it ends at seq {last}: records were cut off or replaced"
        ]
    if found != expected.mac:
        return [
            f"seq {expected.seq}: its MAC is not the exported head's ({expected.mac[:12]}...): "
            "the chain was rewritten"
        ]
    return []

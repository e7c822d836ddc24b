"""The hash-chained audit trail: writing, continuing, tampering, concurrency."""

from __future__ import annotations

import asyncio
import itertools
import json
import multiprocessing
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from hybridmcp.audit import GENESIS_HASH, AuditLog, iter_records, record_hash, verify
from hybridmcp.errors import AuditError


def _call(i: int, **extra: object) -> dict[str, object]:
    return {
        "run_id": "run-1",
        "request_id": f"req-{i}",
        "skill": "time.now",
        "provider": "mcp-server-time",
        "side": "external",
        "kind": "external_call",
        "redactions": {"EMAIL_ADDRESS": 1},
        "bytes_sent": 120 + i,
        "bytes_received": 300,
        "cost": 0.001,
        "outcome": "ok",
        **extra,
    }


def _fixed_clock() -> datetime:
    return datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def _write(path: Path, n: int = 5) -> list[dict[str, object]]:
    with AuditLog(path, clock=_fixed_clock) as log:
        return [log.append(_call(i)) for i in range(n)]


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


# -- writing ---------------------------------------------------------------------------------


def test_append_builds_a_chain_that_verifies(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "trail.jsonl"
    written = _write(path)
    assert [r["seq"] for r in written] == [1, 2, 3, 4, 5]
    assert written[0]["prev_hash"] == GENESIS_HASH
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(written))
    assert written[0]["ts"] == "2025-01-02T03:04:05.000000Z"
    assert written[2]["skill"] == "time.now" and written[2]["bytes_sent"] == 122
    assert list(iter_records(path)) == written
    assert all(record_hash(r) == r["hash"] for r in written)
    report = verify(path)
    assert report.ok and report.records == 5 and report.problems == []
    assert report.head == (5, written[-1]["hash"])
    report.raise_for_problems()


def test_ts_may_be_passed_and_is_normalised_to_utc(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "a.jsonl") as log:
        paris = timezone(timedelta(hours=2))
        rec = log.append({"kind": "policy_decision", "ts": datetime(2025, 6, 1, 14, tzinfo=paris)})
        assert rec["ts"] == "2025-06-01T12:00:00.000000Z"
        rec = log.append({"kind": "policy_decision", "ts": "2025-06-01T14:00:00+02:00"})
        assert rec["ts"] == "2025-06-01T12:00:00.000000Z"
        with pytest.raises(AuditError, match="time zone"):
            log.append({"kind": "policy_decision", "ts": datetime(2025, 6, 1)})
    assert verify(tmp_path / "a.jsonl").ok


def test_records_must_be_plain_json_and_not_set_chain_fields(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "a.jsonl") as log:
        with pytest.raises(AuditError, match="may not set seq"):
            log.append({"seq": 9})
        with pytest.raises(AuditError, match="not JSON"):
            log.append({"kind": "external_call", "obj": object()})
        with pytest.raises(AuditError, match="NaN"):
            log.append({"kind": "external_call", "cost": float("nan")})
        # Sets and tuples become lists; the stored line re-hashes to the same value.
        log.append({"kind": "external_call", "tags": {"b", "a"}, "pair": (1, 2)})
    (rec,) = iter_records(tmp_path / "a.jsonl")
    assert rec["tags"] == ["a", "b"] and rec["pair"] == [1, 2]
    assert verify(tmp_path / "a.jsonl").ok


def test_reopening_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    first = _write(path, 3)
    with AuditLog(path) as log:
        nxt = log.append(_call(3))
    assert nxt["seq"] == 4 and nxt["prev_hash"] == first[-1]["hash"]
    assert verify(path).ok


def test_a_last_line_longer_than_the_read_chunk_is_found(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with AuditLog(path) as log:
        log.append({"kind": "policy_decision", "note": "x" * 200_000})
    with AuditLog(path) as log:
        assert log.append({"kind": "policy_decision"})["seq"] == 2
    assert verify(path).ok


def test_unicode_is_kept_and_hashed_consistently(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with AuditLog(path) as log:
        log.append({"kind": "policy_decision", "reason": "Zürich → 東京"})
    assert "Zürich → 東京" in path.read_text(encoding="utf-8")
    assert verify(path).ok


# -- tampering -------------------------------------------------------------------------------


def test_edited_field_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write(path)
    lines = _lines(path)
    record = json.loads(lines[2])
    record["cost"] = 0.0
    lines[2] = json.dumps(record) + "\n"
    path.write_text("".join(lines), encoding="utf-8")
    report = verify(path)
    assert not report.ok and report.records == 5
    assert report.problems == [
        "line 3 (seq 3): hash mismatch: the record was modified after it was written"
    ]
    with pytest.raises(AuditError, match="line 3"):
        report.raise_for_problems()


def test_deleted_line_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write(path)
    lines = _lines(path)
    del lines[1]
    path.write_text("".join(lines), encoding="utf-8")
    report = verify(path)
    assert not report.ok
    assert "line 2: seq 3 follows seq 1: 1 record(s) missing before it" in report.problems
    assert any(p.startswith("line 2 (seq 3): prev_hash does not match") for p in report.problems)
    assert len(report.problems) == 2  # reported once, not for every later line


def test_swapped_lines_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write(path)
    lines = _lines(path)
    lines[1], lines[2] = lines[2], lines[1]
    path.write_text("".join(lines), encoding="utf-8")
    problems = verify(path).problems
    assert "line 2: seq 3 follows seq 1: 1 record(s) missing before it" in problems
    assert "line 3: seq 2 follows seq 3: out of order or duplicated" in problems
    assert any("line 4 (seq 4): prev_hash" in p for p in problems)


def test_inserted_forged_line_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    written = _write(path, 3)
    forged = {**written[1], "seq": 3, "prev_hash": written[1]["hash"], "outcome": "forged"}
    forged["hash"] = record_hash(forged)  # a self-consistent record...
    lines = _lines(path)
    lines.insert(2, json.dumps(forged) + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    problems = verify(path).problems
    # ...but the real third record no longer follows it.
    assert "line 4: seq 3 follows seq 3: out of order or duplicated" in problems
    assert any(p.startswith("line 4 (seq 3): prev_hash does not match") for p in problems)


def test_truncated_final_line_is_detected_and_blocks_appends(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write(path)
    data = path.read_bytes()
    path.write_bytes(data[:-40])
    report = verify(path)
    assert not report.ok and report.records == 4
    assert len(report.problems) == 1
    assert report.problems[0].startswith("line 5: incomplete final line")
    with AuditLog(path) as log, pytest.raises(AuditError, match="incomplete"):
        log.append(_call(9))


def test_garbage_line_and_records_cut_off_the_end(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    written = _write(path)
    head = (written[-1]["seq"], written[-1]["hash"])
    assert verify(path, expected_head=head).ok
    lines = _lines(path)
    path.write_text("".join(lines[:3]), encoding="utf-8")
    cut = verify(path, expected_head=head)
    assert not cut.ok
    assert cut.problems[0].startswith("end of file: expected the trail to reach seq 5")
    path.write_text("".join([*lines[:2], "{not json\n", *lines[2:]]), encoding="utf-8")
    assert any(p.startswith("line 3: not valid JSON") for p in verify(path).problems)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    report = verify(tmp_path / "nope.jsonl")
    assert not report.ok and "no such audit file" in report.problems[0]


# -- concurrency -----------------------------------------------------------------------------


async def test_concurrent_asyncio_appends_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with AuditLog(path) as log:
        results = await asyncio.gather(*(log.append_async(_call(i)) for i in range(60)))
    assert sorted(r["seq"] for r in results) == list(range(1, 61))
    assert verify(path).ok


def test_threads_with_separate_instances_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"

    def work(k: int) -> None:
        with AuditLog(path) as log:
            for i in range(40):
                log.append(_call(i, writer=k))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = verify(path)
    assert report.ok and report.records == 160


def _process_writer(path: str, writer: int, n: int, start: object = None) -> None:
    log = AuditLog(path)
    if start is not None:
        start.wait()  # type: ignore[attr-defined]
    for i in range(n):
        log.append(_call(i, writer=writer))
    log.close()


@pytest.mark.skipif(sys.platform == "win32", reason="fcntl.flock is POSIX")
def test_two_processes_appending_keep_a_valid_chain(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(2)
    procs = [ctx.Process(target=_process_writer, args=(str(path), k, 150, start)) for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    report = verify(path)
    assert report.ok, report.problems[:5]
    assert report.records == 300
    writers = [r["writer"] for r in iter_records(path)]
    assert writers.count(0) == writers.count(1) == 150


# -- a sink that fails, and what a record may hold ----------------------------------------------

_CUT_WRITES = """
import json, resource, sys
from pathlib import Path
from hybridmcp.audit import AuditLog, verify
from hybridmcp.errors import AuditError

path, key = Path(sys.argv[1]), b"k" * 32
record = {"kind": "external_call", "outcome": "ok", "note": "x" * 40}
errors = []
for cut in range(0, 400, 7):
    path.unlink(missing_ok=True)
    log = AuditLog(path, key=key)
    log.append(record)
    size = path.stat().st_size
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + cut, resource.RLIM_INFINITY))
    try:
        log.append(record)
        wrote = True
    except AuditError as err:
        wrote = False
        errors.append(str(err))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
    log.append(record)  # room again: the trail goes on
    log.close()
    report = verify(path, key=key)
    seqs = [json.loads(line)["seq"] for line in path.read_text().splitlines()]
    print(json.dumps({"cut": cut, "wrote": wrote, "ok": report.ok,
                      "problems": report.problems, "seqs": seqs}))
print(json.dumps({"errors": errors}))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_write_cut_by_the_file_size_limit_leaves_the_trail_whole(tmp_path: Path) -> None:
    """A record the file system takes only part of (the size limit, a full disk) is removed
    again: the trail still verifies and goes on; the failure is one line. (A process that
    hits the limit is not killed: Python ignores SIGXFSZ.)"""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", _CUT_WRITES, str(tmp_path / "trail.jsonl")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    *cases, last = [json.loads(line) for line in done.stdout.splitlines()]
    assert any(not c["wrote"] for c in cases) and any(c["wrote"] for c in cases)
    for case in cases:
        assert case["ok"], case
        assert case["seqs"] == ([1, 2, 3] if case["wrote"] else [1, 2]), case
    for error in last["errors"]:
        assert "\n" not in error and "size limit" in error, error
        assert "ends at its last whole record" in error, error


def _text() -> object:
    from hypothesis import strategies as st

    line_breaks = st.sampled_from(["\n", "\r", "\u2028", "\u2029", "\x85", "\x0b", "\x1c", "\x00"])
    surrogates = st.integers(0xD800, 0xDFFF).map(chr)
    pieces = st.one_of(st.text(max_size=20), line_breaks, surrogates, st.just("\x1b[2J"))
    return st.lists(pieces, max_size=8).map("".join)


@pytest.mark.parametrize("keyed", [False, True])
def test_any_text_in_any_field_is_one_line_that_verifies(tmp_path: Path, keyed: bool) -> None:
    """Hostile text in a record (a server's error message, a run's label: line breaks of every
    kind, control characters, lone surrogates no UTF-8 file can hold) is written: one line
    to every reader, which verifies, its values read back as written (a lone surrogate as
    its escape)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    key = b"k" * 32 if keyed else None

    @settings(
        max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(st.lists(st.tuples(_text(), _text()), min_size=1, max_size=4))
    def check(fields: list[tuple[str, str]]) -> None:
        path = tmp_path / "hostile.jsonl"
        path.unlink(missing_ok=True)
        record = {"kind": "external_call", "outcome": fields[0][1], "labels": dict(fields)}
        with AuditLog(path, key=key) as log:
            for _ in range(2):
                log.append(record)
        text = path.read_bytes().decode("utf-8")  # UTF-8 throughout
        assert len(text.splitlines()) == 2 == text.count("\n")
        report = verify(path, key=key)
        assert report.ok and report.records == 2, report.problems
        first = next(iter_records(path))

        def written(value: str) -> str:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")

        assert first["outcome"] == written(fields[0][1])
        assert first["labels"] == {written(k): written(v) for k, v in dict(fields).items()}

    check()

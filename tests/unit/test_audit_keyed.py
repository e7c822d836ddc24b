"""The keyed audit trail: MAC chain, key file, the head anchored in the run database, and what
each shows: a cut tail, an emptied file, a chain recomputed with or without the key."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import sys
from pathlib import Path

import pytest

from hybridmcp.audit import (
    ENV_KEY,
    AuditLog,
    Head,
    load_key,
    parse_head,
    record_hash,
    record_mac,
    trail_id,
    verify,
)
from hybridmcp.config import parse_config
from hybridmcp.errors import AuditError
from hybridmcp.persistence import SqliteHeads, head_anchor
from hybridmcp.runtime import open_audit

KEY = b"k" * 32


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_KEY, raising=False)


def _write(path: Path, anchor: SqliteHeads, n: int = 5, key: bytes = KEY) -> list[dict]:
    with AuditLog(path, key=key, anchor=anchor) as log:
        return [log.append({"kind": "external_call", "i": i}) for i in range(n)]


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def _recompute(lines: list[str], key: bytes | None, change: dict) -> str:
    """Rewrite the chain from scratch after applying ``change`` to record 2: what a forger
    does. With ``key`` None they can only recompute plain hashes."""
    out, prev = [], "0" * 64
    for n, line in enumerate(lines, 1):
        record = json.loads(line)
        if n == 2:
            record.update(change)
        record["prev_mac"] = prev
        record.pop("mac")
        record["mac"] = record_mac(record, key) if key else record_hash(record)
        prev = record["mac"]
        out.append(json.dumps(record) + "\n")
    return "".join(out)


@pytest.fixture
def heads(tmp_path: Path) -> SqliteHeads:
    return SqliteHeads(tmp_path / "runs.db")


def test_keyed_records_verify_with_the_key_and_the_anchor(tmp_path: Path, heads: SqliteHeads):
    path = tmp_path / "a.jsonl"
    written = _write(path, heads)
    assert all("mac" in r and "hash" not in r for r in written)
    assert written[1]["prev_mac"] == written[0]["mac"]
    assert heads.load(trail_id(path)) == Head(5, written[-1]["mac"])
    report = verify(path, key=KEY, anchor=heads)
    assert report.ok and report.keyed and report.records == 5 and not report.notes
    assert report.head == report.anchored == Head(5, written[-1]["mac"])
    wrong = verify(path, key=b"other", anchor=heads)
    assert not wrong.ok and "MAC mismatch" in wrong.problems[0]
    nokey = verify(path, anchor=heads)
    assert not nokey.ok and "no key to check their MACs" in nokey.problems[0]


def test_a_cut_tail_and_an_emptied_file_fail_against_the_anchor(tmp_path: Path, heads: SqliteHeads):
    path = tmp_path / "a.jsonl"
    _write(path, heads)
    lines = _lines(path)
    path.write_text("".join(lines[:3]))
    cut = verify(path, key=KEY, anchor=heads)
    assert not cut.ok
    assert (
        cut.problems
        == [
            "end of file: the anchored head is seq 5 ("
            + heads.load(trail_id(path)).mac[:12]  # type: ignore[union-attr]
            + "...), the file has seq 3: records were cut off the end or the file was emptied or "
            "replaced"
        ]
    )
    assert verify(path, key=KEY).ok  # the chain alone cannot show it
    path.write_text("")
    emptied = verify(path, key=KEY, anchor=heads)
    assert not emptied.ok and "the file has no records" in emptied.problems[0]


def test_a_recomputed_chain_fails_with_or_without_the_key(tmp_path: Path, heads: SqliteHeads):
    path = tmp_path / "a.jsonl"
    _write(path, heads)
    lines = _lines(path)
    path.write_text(_recompute(lines, None, {"i": 99}))  # no key: plain hashes in mac fields
    report = verify(path, key=KEY, anchor=heads)
    assert "line 1 (seq 1): MAC mismatch" in report.problems[0]
    path.write_text(_recompute(lines, KEY, {"i": 99}))  # a key holder: every MAC valid ...
    assert verify(path, key=KEY).ok
    report = verify(path, key=KEY, anchor=heads)  # ... but the head is not the anchored one
    assert report.problems == [
        "seq 5: its MAC is not the anchored one ("
        + json.loads(lines[-1])["mac"][:12]
        + "...): the chain was rewritten"
    ]


def test_records_appended_outside_the_log_fail(tmp_path: Path, heads: SqliteHeads):
    path = tmp_path / "a.jsonl"
    _write(path, heads, n=2)
    with AuditLog(path, key=KEY) as rogue:  # a key holder who does not update the anchor
        rogue.append({"kind": "external_call", "i": "forged"})
        rogue.append({"kind": "external_call", "i": "forged again"})
    report = verify(path, key=KEY, anchor=heads)
    assert report.problems[0].startswith("end of file: 2 record(s) after the anchored head")
    with pytest.raises(AuditError, match="anchored head is seq 2"):
        _write(path, heads, n=1)


def test_an_append_interrupted_before_anchoring_is_anchored_by_the_next(
    tmp_path: Path, heads: SqliteHeads, caplog: pytest.LogCaptureFixture
):
    """A crash between writing a record and anchoring it leaves one chained, MAC-valid record
    past the head (appends hold the file lock: never more). Verify says so without failing, and
    the next append anchors it and goes on: a crash does not make the trail unusable."""
    path = tmp_path / "a.jsonl"
    _write(path, heads, n=3)
    with AuditLog(path, key=KEY) as crashed:  # wrote its record; died before the anchor
        crashed.append({"kind": "external_call", "i": "interrupted"})
    report = verify(path, key=KEY, anchor=heads)
    assert report.ok, report.problems
    assert any("seq 4 was written but its head not anchored" in n for n in report.notes)
    with caplog.at_level("WARNING", logger="hybridmcp.audit"):
        _write(path, heads, n=1)
    assert "anchored it now" in caplog.text
    assert heads.load(trail_id(path)) == verify(path, key=KEY, anchor=heads).head
    assert verify(path, key=KEY, anchor=heads).records == 5


def test_one_record_past_the_head_under_another_key_is_not_taken_for_a_crash(
    tmp_path: Path, heads: SqliteHeads
):
    path = tmp_path / "a.jsonl"
    last = _write(path, heads, n=2)[-1]
    forged = {"seq": 3, "ts": last["ts"], "kind": "external_call", "prev_mac": last["mac"]}
    forged["mac"] = record_mac(forged, b"x" * 32)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(forged) + "\n")
    assert not verify(path, key=KEY, anchor=heads).ok
    with pytest.raises(AuditError, match="valid MAC"):
        _write(path, heads, n=1)


def test_an_exported_head_allows_later_records_but_not_a_cut(tmp_path: Path, heads: SqliteHeads):
    path = tmp_path / "a.jsonl"
    written = _write(path, heads, n=3)
    exported = parse_head(str(Head(3, written[-1]["mac"])))
    _write(path, heads, n=2)
    assert verify(path, key=KEY, anchor=heads, expected_head=exported).ok
    path.write_text("".join(_lines(path)[:2]))
    report = verify(path, key=KEY, expected_head=exported)
    assert report.problems[0].startswith("end of file: expected the trail to reach seq 3")
    with pytest.raises(AuditError, match="not SEQ:MAC"):
        parse_head("3:xyz")


def test_a_moved_trail_has_no_anchor_and_fails_unless_given_its_head(
    tmp_path: Path, heads: SqliteHeads
):
    path = tmp_path / "a.jsonl"
    written = _write(path, heads, n=2)
    moved = path.rename(tmp_path / "b.jsonl")
    report = verify(moved, key=KEY, anchor=heads)
    assert "no head is anchored for this file" in report.problems[0]
    head = (2, written[-1]["mac"])
    assert verify(moved, key=KEY, anchor=heads, expected_head=head).ok


def test_unkeyed_trails_are_still_read_and_say_what_they_cannot_show(tmp_path: Path):
    path = tmp_path / "old.jsonl"
    with AuditLog(path) as log:
        log.append({"kind": "external_call"})
    report = verify(path, key=KEY, anchor=SqliteHeads(tmp_path / "runs.db"))
    assert report.ok and report.keyed is False
    assert not report.problems and "not records cut off the end" in report.notes[0]
    with AuditLog(path, key=KEY) as log, pytest.raises(AuditError, match="not a keyed"):
        log.append({"kind": "external_call"})


def test_the_writer_refuses_to_continue_a_cut_or_rewritten_trail(
    tmp_path: Path, heads: SqliteHeads
):
    path = tmp_path / "a.jsonl"
    _write(path, heads)
    lines = _lines(path)
    path.write_text("".join(lines[:3]))
    with AuditLog(path, key=KEY, anchor=heads) as log, pytest.raises(AuditError, match="cut off"):
        log.append({"kind": "external_call"})
    assert _lines(path) == lines[:3]  # nothing written
    path.write_text("")
    with AuditLog(path, key=KEY, anchor=heads) as log, pytest.raises(AuditError, match="seq 0"):
        log.append({"kind": "external_call"})
    edited = json.loads(lines[-1]) | {"i": "edited"}
    path.write_text("".join([*lines[:-1], json.dumps(edited) + "\n"]))
    with AuditLog(path, key=KEY, anchor=heads) as log, pytest.raises(AuditError, match="MAC"):
        log.append({"kind": "external_call"})


@pytest.mark.parametrize("how", ["emptied", "cut", "deleted", "replaced"])
def test_a_refused_trail_stays_refused_on_every_later_append(
    tmp_path: Path, heads: SqliteHeads, how: str
):
    """A writer that found its trail cut, emptied, deleted or replaced (another file moved
    to its name) while it had it open refuses every later append too, not only the first:
    nothing goes to a file no one sees, and its anchored head is never overwritten with a new
    chain."""
    path = tmp_path / "a.jsonl"
    _write(path, heads)
    anchored = heads.load(trail_id(path))
    with AuditLog(path, key=KEY, anchor=heads) as log:
        log.append({"kind": "external_call"})  # open, at the end of the trail
        if how == "emptied":
            path.write_text("")
        elif how == "cut":
            path.write_text("".join(_lines(path)[:2]))
        elif how == "deleted":
            path.unlink()
        else:
            (tmp_path / "new.jsonl").write_text("")
            os.replace(tmp_path / "new.jsonl", path)
        for _ in range(3):
            with pytest.raises(AuditError, match="anchored head|is gone"):
                log.append({"kind": "external_call"})
    assert anchored is not None and heads.load(trail_id(path)).seq == anchored.seq + 1
    assert not verify(path, key=KEY, anchor=heads).ok
    assert path.exists() == (how != "deleted")


def test_key_file_is_made_once_with_mode_0600_and_must_stay_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    key_file = tmp_path / "keys" / "a.jsonl.key"
    assert load_key(key_file, create=False) is None
    key = load_key(key_file)
    assert key is not None and len(key) == 64
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_key(key_file) == key
    assert load_key(key_file, secret="from-config") == b"from-config"
    monkeypatch.setenv(ENV_KEY, "from-env")
    assert load_key(key_file) == b"from-env"
    monkeypatch.delenv(ENV_KEY)
    os.chmod(key_file, 0o644)
    with pytest.raises(AuditError, match="chmod 600"):
        load_key(key_file)


def _config(path: Path, db: Path) -> object:
    return parse_config({"audit": {"path": str(path), "head_db": str(db)}})


def test_open_audit_writes_keyed_records_and_refuses_a_trail_that_does_not_verify(
    tmp_path: Path,
):
    path, db = tmp_path / "audit.jsonl", tmp_path / "runs.db"
    log = open_audit(_config(path, db))  # type: ignore[arg-type]
    assert isinstance(log, AuditLog)
    for i in range(3):
        log.append({"kind": "external_call", "i": i})
    log.close()
    assert stat.S_IMODE((tmp_path / "audit.jsonl.key").stat().st_mode) == 0o600
    open_audit(_config(path, db)).close()  # type: ignore[arg-type, union-attr]
    lines = _lines(path)
    path.write_text("".join(lines[:2]))
    with pytest.raises(AuditError, match="does not verify, so nothing will be appended"):
        open_audit(_config(path, db))  # type: ignore[arg-type]
    assert _lines(path) == lines[:2]
    old = tmp_path / "old.jsonl"
    with AuditLog(old) as unkeyed:
        unkeyed.append({"kind": "external_call"})
    with pytest.raises(AuditError, match="unkeyed trail"):
        open_audit(_config(old, db))  # type: ignore[arg-type]


def test_open_audit_refuses_a_trail_deleted_or_moved_since_its_head_was_anchored(
    tmp_path: Path,
):
    """A run does not start a new trail at the name of one that was written and is gone:
    refused at open, in one line, before any server starts (not at the first external call,
    as a failure of that call's server), and nothing is written there."""
    path, db = tmp_path / "audit.jsonl", tmp_path / "runs.db"
    log = open_audit(_config(path, db))  # type: ignore[arg-type]
    log.append({"kind": "external_call"})
    log.close()
    path.rename(tmp_path / "moved.jsonl")
    with pytest.raises(AuditError, match="is missing, but a trail of seq 1 was written") as err:
        open_audit(_config(path, db))  # type: ignore[arg-type]
    assert "\n" not in str(err.value) and not path.exists()
    fresh = tmp_path / "fresh.jsonl"  # a name no trail had: a new trail
    open_audit(_config(fresh, db)).close()  # type: ignore[union-attr]


def _keyed_writer(path: str, db: str, writer: int, n: int, start: object) -> None:
    log = AuditLog(path, key=KEY, anchor=SqliteHeads(db))
    start.wait()  # type: ignore[attr-defined]
    for i in range(n):
        log.append({"kind": "external_call", "writer": writer, "i": i})
    log.close()


@pytest.mark.skipif(sys.platform == "win32", reason="fcntl.flock is POSIX")
def test_two_processes_keep_one_chain_and_one_anchored_head(tmp_path: Path):
    path, db = tmp_path / "shared.jsonl", tmp_path / "runs.db"
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(2)
    procs = [
        ctx.Process(target=_keyed_writer, args=(str(path), str(db), k, 60, start)) for k in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    report = verify(path, key=KEY, anchor=SqliteHeads(db))
    assert report.ok, report.problems[:5]
    assert report.records == 120 and report.anchored == report.head


def test_heads_are_anchored_beside_the_run_database_and_nowhere_for_memory(tmp_path: Path):
    anchor = head_anchor(str(tmp_path / "runs.db"))
    assert anchor is not None and anchor.db == str(tmp_path / "runs.audit-heads.db")
    assert head_anchor(None, str(tmp_path / "h.db")).db == str(tmp_path / "h.db")  # type: ignore[union-attr]
    assert head_anchor(":memory:") is None
    path = tmp_path / "a.jsonl"
    with AuditLog(path, key=KEY) as log:
        log.append({"kind": "external_call"})
    report = verify(path, key=KEY)
    assert report.ok and "cut off the end cannot be ruled out" in report.notes[0]

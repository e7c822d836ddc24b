"""A damaged or foreign run database through the real command line: `run` and `stats` exit 2
with one line, no traceback, and the file byte for byte as it was; an older hybridmcp's file
(LangGraph's tables, no application id) is adopted."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import struct
import subprocess
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from hybridmcp.persistence import APPLICATION_ID, SCHEMA_VERSION
from tests.integration.test_durable import cli as durable_cli
from tests.integration.test_durable import cli_env

TASK = '[{"id": "a", "skill": "math.calculate", "args": {"expression": "2*3"}}]'
EXTERNAL_TASK = (
    '[{"id": "a", "skill": "time.now", "args": {"timezone": "UTC"}, "strategy": "external"}]'
)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return durable_cli(*args, cwd=cwd, timeout=120)


def make_db(db: Path) -> None:
    """A database made by a run (``stats`` reads one, and makes none)."""
    task = db.parent / "made.json"
    task.write_text(TASK)
    proc = cli("run", str(task), "--db", str(db), cwd=db.parent)
    assert proc.returncode == 0, proc.stderr
    task.unlink()


def sql(db: Path, *statements: str) -> None:
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        for statement in statements:
            conn.execute(statement)


def hybridmcp_db(db: Path) -> None:
    """A database as hybridmcp makes it (its tables, its id), with free pages in it."""
    make_db(db)
    sql(
        db,
        "CREATE TABLE scratch (x)",
        "INSERT INTO scratch SELECT randomblob(1000) FROM (WITH RECURSIVE n(i) AS "
        "(SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) SELECT i FROM n)",
        "DROP TABLE scratch",
    )


def damaged_free_list(db: Path) -> None:
    hybridmcp_db(db)
    data = bytearray(db.read_bytes())
    page_size = struct.unpack(">H", data[16:18])[0]
    trunk = struct.unpack(">I", data[32:36])[0]  # the first free-list trunk page
    assert trunk, "no free list to damage"
    offset = (trunk - 1) * page_size
    data[offset : offset + 4] = struct.pack(">I", 999_999)  # its next trunk: past the file
    db.write_bytes(bytes(data))


def foreign_tables(db: Path) -> None:
    sql(db, "CREATE TABLE contacts (name TEXT)", "INSERT INTO contacts VALUES ('Ada')")


def foreign_application_id(db: Path) -> None:
    sql(db, "PRAGMA application_id = 1234", "CREATE TABLE checkpoints (x)")


def borrowed_table_names(db: Path) -> None:
    sql(
        db,
        "CREATE TABLE checkpoints (owner TEXT, due TEXT)",
        "INSERT INTO checkpoints VALUES ('a', 'b')",
    )


def not_sqlite(db: Path) -> None:
    db.write_bytes(b"these are someone's notes, not a database\n" * 100)


def newer_hybridmcp(db: Path) -> None:
    hybridmcp_db(db)
    sql(db, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")


BAD: dict[str, tuple[Callable[[Path], None], str]] = {
    "damaged free list": (damaged_free_list, "is damaged (PRAGMA quick_check"),
    "foreign tables": (foreign_tables, "another application (tables: contacts)"),
    "borrowed table names": (borrowed_table_names, "another application (table checkpoints"),
    "foreign application id": (foreign_application_id, "another application (SQLite"),
    "not sqlite": (not_sqlite, "not a usable SQLite database"),
    "newer hybridmcp": (newer_hybridmcp, "newer hybridmcp"),
}


@pytest.mark.parametrize("command", ["run", "stats"])
@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_database_is_refused_untouched(name, command, tmp_path):
    make, reason = BAD[name]
    db = tmp_path / "runs.db"
    make(db)
    before = db.read_bytes()
    task = tmp_path / "task.json"
    task.write_text(TASK)
    files = sorted(p.name for p in tmp_path.iterdir())  # (a hybridmcp file has its .lock)
    args = ["run", str(task)] if command == "run" else ["stats"]
    proc = cli(*args, "--db", str(db), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines[:5]
    assert reason in lines[0]
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == files  # nothing new beside it


def test_an_older_hybridmcp_database_is_adopted(tmp_path):
    db = tmp_path / "runs.db"
    hybridmcp_db(db)
    sql(db, "PRAGMA application_id = 0", "PRAGMA user_version = 0")  # as made before the id
    task = tmp_path / "task.json"
    task.write_text(TASK)
    proc = cli("run", str(task), "--db", str(db), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    proc = cli("stats", "--db", str(db), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "math.calculate" in proc.stdout  # what the run learned is there


def test_a_new_database_carries_the_application_id(tmp_path):
    (tmp_path / "new").mkdir()
    db = tmp_path / "new" / "runs.db"
    make_db(db)
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


@pytest.mark.parametrize("name", ["not sqlite", "foreign tables", "foreign application id"])
def test_a_bad_audit_head_file_is_refused_untouched(name, tmp_path):
    """The audit heads beside the run database are checked like it: one line, exit 2."""
    make, reason = BAD[name]
    db = tmp_path / "runs.db"
    heads = tmp_path / "runs.audit-heads.db"
    make(heads)
    before = heads.read_bytes()
    task = tmp_path / "task.json"
    task.write_text(EXTERNAL_TASK)
    audit = str(tmp_path / "audit.jsonl")
    proc = cli("run", str(task), "--db", str(db), "--audit", audit, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines[:5]
    assert reason in lines[0] and "audit-heads" in lines[0]
    assert heads.read_bytes() == before


def test_the_audit_head_file_carries_the_application_id(tmp_path):
    db = tmp_path / "runs.db"
    task = tmp_path / "task.json"
    task.write_text(EXTERNAL_TASK)
    audit = str(tmp_path / "audit.jsonl")
    proc = cli("run", str(task), "--db", str(db), "--audit", audit, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with closing(sqlite3.connect(tmp_path / "runs.audit-heads.db")) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    again = cli("run", str(task), "--db", str(db), "--audit", audit, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert cli("audit", "verify", audit, "--db", str(db), cwd=tmp_path).returncode == 0


def test_an_audit_path_that_is_a_directory_is_refused(tmp_path):
    """``--audit`` naming a directory: one line naming ``audit.path``, exit 2, nothing made
    inside it and no run started."""
    trail = tmp_path / "trail"
    trail.mkdir()
    task = tmp_path / "task.json"
    task.write_text(EXTERNAL_TASK)
    db = tmp_path / "runs.db"
    proc = cli("run", str(task), "--db", str(db), "--audit", str(trail), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines[:5]
    assert "audit.path" in lines[0] and "directory" in lines[0] and "report" not in lines[0]
    assert list(trail.iterdir()) == []


@pytest.mark.parametrize(
    "args",
    [
        ["audit", "verify", "{dir}"],
        ["audit", "head", "{dir}"],
        ["audit", "verify", "{file}", "--key-file", "{dir}"],
        ["run", "{task}", "--audit", "{file}/audit.jsonl"],
    ],
)
def test_an_audit_path_that_is_a_directory_or_under_a_file_is_one_line(args, tmp_path):
    """Paths that cannot be the trail (a directory, a key that is a directory, a directory
    that is a file): one line naming the path, no traceback."""
    directory = tmp_path / "trail"
    directory.mkdir()
    plain = tmp_path / "plain.txt"
    plain.write_text("not a directory\n")
    task = tmp_path / "task.json"
    task.write_text(TASK)
    given = [a.format(dir=directory, file=plain, task=task) for a in args]
    proc = cli(*given, "--db", str(tmp_path / "runs.db"), cwd=tmp_path)
    assert proc.returncode in (1, 2), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "│" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines[:5]
    assert str(directory) in lines[0] or str(plain) in lines[0]


async def test_a_file_locked_past_the_timeout_is_waited_for_once_not_per_write(
    tmp_path, monkeypatch
):
    """A run's writes after one that waited the whole busy timeout in vain (its pending
    writes, the clean-up of a run without a thread) try the lock without waiting again: a
    failed run used to wait the timeout three times over (3 minutes). Once the other process
    lets go, writes go through at once, and the busy timeout is the configured one again."""
    from hybridmcp import persistence
    from hybridmcp.persistence import open_persistence
    from tests.integration.test_sqlite_processes import hold_write_lock, release_lock

    monkeypatch.setattr(persistence, "BUSY_TIMEOUT_S", 1.0)
    db = str(tmp_path / "runs.db")
    async with open_persistence(db) as (saver, _store):
        seen: list[str] = []
        await saver.conn.set_trace_callback(seen.append)
        holder = hold_write_lock(db)
        try:
            for _ in range(3):
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    await saver.adelete_thread("t")
        finally:
            release_lock(holder)
        hurried = [s for s in seen if s.startswith("PRAGMA busy_timeout")]
        assert hurried == ["PRAGMA busy_timeout = 0", "PRAGMA busy_timeout = 1000"] * 2, seen
        await saver.adelete_thread("t")  # the lock is free: at once, whatever the hurry
        async with saver.conn.execute("PRAGMA busy_timeout") as cursor:
            assert (await cursor.fetchone())[0] == 1000


def fill(disk: Path, leave_kib: int) -> Path:
    """Fill the disk but ``leave_kib`` KiB; the filler file, to remove to free it again."""
    filler = disk / "filler"
    free = shutil.disk_usage(disk).free
    with filler.open("wb") as out:
        out.truncate(0)
        out.write(b"\0" * max(0, free - leave_kib * 1024))
    return filler


def intact(db: Path, threads: set[str]) -> None:
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        kept = {row[0] for row in conn.execute("SELECT DISTINCT thread_id FROM checkpoints")}
    assert threads <= kept, kept


@pytest.mark.parametrize("command", ["run", "stats"])
def test_a_full_disk_at_open_is_named_and_the_database_kept(command, small_disk, tmp_path):
    """SQLite says only "disk I/O error" when a WAL file cannot even be read for want of
    room (its index needs 32 KiB), which reads as a damaged file: the line says the disk is
    full, and once there is room the file is as it was."""
    db = small_disk / "runs.db"
    task = tmp_path / "task.json"
    task.write_text(TASK)
    made = cli("run", str(task), "--db", str(db), "--thread", "kept", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    filler = fill(small_disk, leave_kib=0)
    args = ["run", str(task)] if command == "run" else ["stats"]
    proc = cli(*args, "--db", str(db), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "the disk holding it is full" in line and "not a usable" not in line, line
    filler.unlink()
    intact(db, {"kept"})


@pytest.mark.parametrize("leave_kib", [40, 160, 640])
def test_a_disk_that_fills_during_a_run_ends_it_in_one_line_and_keeps_the_rest(
    leave_kib, small_disk, tmp_path
):
    db = small_disk / "runs.db"
    task = tmp_path / "task.json"
    task.write_text(TASK)
    assert cli("run", str(task), "--db", str(db), "--thread", "kept", cwd=tmp_path).returncode == 0
    big = tmp_path / "big.json"
    requests = [
        {"id": f"r{i}", "skill": "text.stats", "args": {"text": "word " * 200}} for i in range(200)
    ]
    big.write_text(json.dumps(requests))
    filler = fill(small_disk, leave_kib)
    proc = cli("run", str(big), "--db", str(db), "--thread", "big", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "full" in line, line
    filler.unlink()
    intact(db, {"kept"})
    again = cli("run", str(task), "--db", str(db), "--thread", "after", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]


WIPE = '''
import os, shutil


def wipe(how: str) -> dict:
    """Deletes the run database under the run, or puts a copy in its place."""
    db = os.environ["WIPED_DB"]
    if how == "replaced":
        shutil.copy(db, db + ".copy")
        shutil.copy(db, db + ".put")  # what was put in its place, to compare with
        os.replace(db + ".copy", db)
    else:
        os.remove(db)
    for sidecar in (db + "-wal", db + "-shm"):
        if how == "deleted" and os.path.exists(sidecar):
            os.remove(sidecar)
    return {"done": how}
'''


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_database_deleted_or_replaced_mid_run_is_one_line_not_a_silent_loss(how, tmp_path):
    """SQLite goes on writing to a file deleted under it: the run used to end `ok`, its
    checkpoints and what it learned gone with the file. Now its next write says so, exit 2,
    and a file put in its place is left as it was put."""
    (tmp_path / "wipemod.py").write_text(WIPE)
    schema = {"type": "object", "properties": {"how": {"type": "string"}}}
    skill = {
        "input_schema": schema,
        "providers": [{"side": "internal", "function": "wipemod:wipe"}],
    }
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"mcpServers": {}, "skills": {"wipe": skill}}))
    task = tmp_path / "t.json"
    task.write_text(json.dumps([{"id": "w", "skill": "wipe", "args": {"how": how}}]))
    db = tmp_path / "runs.db"
    make_db(db)
    path = cli_env()["PYTHONPATH"] + os.pathsep + str(tmp_path)  # (wipemod)
    proc = durable_cli(
        "run", str(task), "--config", str(config), "--db", str(db), "--thread", "t",
        cwd=tmp_path, timeout=120, env=cli_env(WIPED_DB=str(db), PYTHONPATH=path),
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert (
        f"the file was {how if how == 'deleted' else 'replaced by another file'} while in use"
        in line
    )
    if how == "replaced":
        assert db.read_bytes() == (tmp_path / "runs.db.put").read_bytes()
        intact(db, set())
    else:
        assert not db.exists()


@pytest.mark.parametrize("command", ["run", "stats"])
def test_a_database_on_a_read_only_file_system_is_one_line_naming_it(command, small_disk, tmp_path):
    """The file can be read, but SQLite cannot put its write-ahead log beside it: one line
    saying so (it used to be "cannot run: [Errno 30] ..." from removing a sidecar, or "not a
    usable SQLite database"), exit 2, and the file as it was."""
    db = small_disk / "runs.db"
    task = tmp_path / "task.json"
    task.write_text(TASK)
    assert cli("run", str(task), "--db", str(db), "--thread", "kept", cwd=tmp_path).returncode == 0
    before = db.read_bytes()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        args = ["run", str(task)] if command == "run" else ["stats"]
        proc = cli(*args, "--db", str(db), cwd=tmp_path)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "its directory cannot be written to" in line and str(db) in line, line
    assert db.read_bytes() == before
    intact(db, {"kept"})

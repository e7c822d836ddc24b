"""The report and the command line on runs and uses they were not shaped around: a database
named wrong, a run interrupted midway, output read by a pipe that closes early, text from a
server that holds terminal control sequences."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_durable import cli, cli_env

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("made", ["missing", "empty"])
def test_a_report_from_a_database_that_holds_nothing_makes_none(made: str, tmp_path: Path):
    """A ``--db`` that names no database (a typo) is one error line, exit 2, and no database,
    lock file or report is left behind (looking makes nothing)."""
    db = tmp_path / "typo.db"
    if made == "empty":
        db.touch()
    out = tmp_path / "r.html"
    proc = cli("report", "--thread", "t", "--db", str(db), "-o", str(out), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    said = " ".join(proc.stderr.split())
    assert ("does not exist" if made == "missing" else "is empty") in said
    assert "typo.db" in said
    expected = ["typo.db"] if made == "empty" else []
    assert sorted(p.name for p in tmp_path.iterdir()) == expected
    if made == "empty":
        assert db.stat().st_size == 0


PARTIAL = {  # one answered, one the request's own error: exit 3
    "requests": [
        {"id": "ok", "skill": "math.calculate", "args": {"expression": "6 * 7"}},
        {"id": "bad", "skill": "json.query", "args": {"data": {"a": 1}, "path": "$.[/zz]"}},
    ]
}


def closed_reader(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI writing to a pipe no one reads any more (``| head`` that has its lines,
    ``| true``): the read end is closed before the command writes."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "hybridmcp.cli", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            env=cli_env(),
            cwd=cwd,
        )
    finally:
        os.close(write)


@pytest.mark.parametrize("output", ["--json", "--table", "summary"])
def test_a_reader_that_stops_reading_leaves_the_runs_exit_code(output: str, tmp_path: Path):
    """``hybridmcp run … | head``: the run's exit code is still the run's (3, partial here),
    not 1 (a failed run) as Rich and click make it, and nothing is said on stderr."""
    task = tmp_path / "task.json"
    many = [  # above the summary's threshold, for the summary
        {"id": f"n{i}", "skill": "math.calculate", "args": {"expression": f"{i} + 1"}}
        for i in range(60 if output == "summary" else 0)
    ]
    task.write_text(json.dumps({"requests": PARTIAL["requests"] + many}))
    args = ["run", str(task), "--db", ":memory:"] + ([output] if output != "summary" else [])
    proc = closed_reader(*args, cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr and "Broken pipe" not in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "command", [["stats"], ["stats", "--json"], ["tools"], ["tools", "--json"]]
)
def test_a_listing_read_by_a_closed_pipe_exits_0(command: list[str], tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    first = cli("run", "--db", str(db), "--json", str(_task(tmp_path)), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    proc = closed_reader(*command, *(["--db", str(db)] if "stats" in command else []), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


def _task(tmp_path: Path) -> Path:
    task = tmp_path / "ok.json"
    task.write_text(json.dumps({"requests": PARTIAL["requests"][:1]}))
    return task


def test_the_report_of_a_run_interrupted_midway_says_so_and_shows_its_ended_calls(tmp_path):
    """Ctrl-C while one call hangs and three have ended: the report says the run did not
    finish and how to resume it (not a status ``unknown``), draws the three ended calls (held
    in the checkpoint's pending writes), and shows no ``null`` or ``None`` for what is not
    settled yet."""
    from tests.integration.test_durable import FAST, SLOW, fault_server_setup
    from tests.integration.test_interrupted_run import _interrupted

    faults, record, config, task = fault_server_setup(tmp_path)
    db = tmp_path / "runs.db"
    faults.write_text(json.dumps({SLOW[1]: {"latency_ms": 600_000}}))
    args = ["run", str(task), "--config", str(config), "--db", str(db), "--json"]
    _interrupted(args, record, db, "job-1")
    out = tmp_path / "r.html"
    proc = cli("report", "--thread", "job-1", "--db", str(db), "-o", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    assert 'id="unfinished-note"' in html and "--thread</code> resumes it" in html
    assert 'id="run-status">unfinished<' in html
    drawn = re.findall(r'<g class="bar bar-(\w+) side-external" data-request="(\w+)"', html)
    assert {rid for _kind, rid in drawn} >= set(FAST), drawn
    assert ">None<" not in html and ">null<" not in html and "rounds None" not in html


def test_a_right_to_left_override_in_an_id_cannot_reorder_the_page_around_it(tmp_path: Path):
    """A request id or a provider holding U+202E (right-to-left override): wherever the page
    writes it beside other text (a lane's label, a bar's tooltip, the request's heading the
    page's script writes) it is an isolate, so the status after it reads as it is; in HTML
    cells, ``code`` isolates it."""
    from hybridmcp.report import write_report
    from tests.integration.test_report import dump_dom

    rid, provider = "\u202eevil", "mcp:\u202ex/t"
    attempt = {
        "request_id": rid, "skill": "s", "provider": provider, "side": "external", "round": 1,
        "ok": True, "started_at": 1.0, "latency_ms": 3.0, "queue_ms": 0.0,
    }  # fmt: skip
    state = {
        "requests": [{"id": rid, "skill": "s", "args": {}}],
        "attempts": [attempt],
        "results": {rid: {"id": rid, "status": "ok", "value": 1, "agreement": None}},
        "started_at": 1.0,
        "status": "ok",
    }
    page = write_report(tmp_path / "r.html", state)
    html = page.read_text()
    iso = "\u2068{}\u2069"
    assert f"{iso.format(rid)} · {iso.format(provider)}</text>" in html  # the lane's label
    assert f"<title>{iso.format(rid)} · {iso.format(provider)} · round 1" in html
    assert "unicode-bidi: isolate" in html
    dom = dump_dom(page)
    [heading] = dom.inside("detail", "h3")
    assert heading["text"] == f"{iso.format(rid)} (s): ok", heading


TYPED = ["__proto__", "constructor", "toString", "plain", "valueOf", "hasOwnProperty", "skill"]
"""What a user types into the page's lookup: ids of the run's requests that are also names
JavaScript objects have, a plain one, and names that are no request's id."""


def test_any_id_typed_into_the_lookup_shows_its_own_request_or_nothing(tmp_path: Path) -> None:
    """Request ids named ``__proto__``, ``constructor`` and ``toString``: each typed into the
    lookup shows its own request; a name that is no request's id (``valueOf``,
    ``hasOwnProperty``, a field of a record) leaves the panel as it was, in headless Chromium.
    The test types them as a user would: it sets the field and fires its ``change`` event."""
    from hybridmcp.report import write_report
    from tests.integration.test_report import dump_dom

    ids = ["__proto__", "constructor", "toString", "plain"]
    state = {
        "requests": [{"id": rid, "skill": f"s-{n}", "args": {}} for n, rid in enumerate(ids)],
        "attempts": [
            {"request_id": rid, "skill": f"s-{n}", "provider": "mcp:x/t", "side": "external"}
            | {"round": 1, "ok": True, "started_at": 1.0 + n, "latency_ms": 3.0, "queue_ms": 0.0}
            for n, rid in enumerate(ids)
        ],
        "results": {
            rid: {"id": rid, "status": "ok", "value": n, "agreement": None}
            for n, rid in enumerate(ids)
        },
        "started_at": 1.0,
        "status": "ok",
    }
    page = write_report(tmp_path / "r.html", state)
    typing = f"""<script>
    (function () {{
      var lookup = document.getElementById("lookup"), d = document.getElementById("detail");
      var seen = {json.dumps(TYPED)}.map(function (id) {{
        lookup.value = id;
        lookup.dispatchEvent(new Event("change"));
        var h = d.querySelector("h3");
        return [id, d.dataset.request || null, h ? h.textContent : null];
      }});
      var out = document.createElement("pre");
      out.id = "typed"; out.textContent = JSON.stringify(seen);
      document.body.appendChild(out);
    }})();
    </script></body>"""
    typed = tmp_path / "typed.html"
    typed.write_text(page.read_text().replace("</body>", typing))
    [out] = dump_dom(typed).find(id="typed")
    seen = {rid: (shown, heading) for rid, shown, heading in json.loads(out["text"])}
    for n, rid in enumerate(ids):  # each its own request
        assert seen[rid] == (rid, f"\u2068{rid}\u2069 (s-{n}): ok"), seen
    for name in ("valueOf", "hasOwnProperty", "skill"):  # no request: the last one stays
        assert seen[name] == seen["plain"], seen


@pytest.mark.parametrize(
    "target", ["db", "db-wal", "task", "config", "audit", "audit key", "log file"]
)
def test_a_report_named_as_a_file_the_run_keeps_is_refused_before_it_runs(target, tmp_path):
    """``--report`` naming the run database (or a file beside it), the task, the
    configuration, the audit trail or the ``--log-file`` would overwrite it with HTML: the
    checkpoints and what was learned, the trail's evidence, the user's own task, the log gone.
    One error line, exit 2, every file as it was."""
    db, task, config, audit, log = (
        tmp_path / n for n in ("r.db", "t.json", "c.json", "a.jsonl", "run.log")
    )
    task.write_text(json.dumps({"requests": PARTIAL["requests"][:1]}))
    config.write_text(json.dumps({"mcpServers": {}}))
    base = ["run", str(task), "--db", str(db), "--config", str(config), "--audit", str(audit)]
    base += ["--log-file", str(log)]
    first = cli(*base, "--json", "--thread", "t", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    audit.touch()  # (no external call: the trail may not have been made)
    log.write_text("the log of the first run\n")
    named = {"db": db, "db-wal": Path(f"{db}-wal"), "task": task, "config": config,
             "audit": audit, "audit key": Path(f"{audit}.key"),
             "log file": log}[target]  # fmt: skip
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    proc = cli(*base, "--thread", "t2", "--report", str(named), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: --report") and "would overwrite it" in line, line
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before


APPENDS = {
    "--log-file": "the log would be appended to it",
    "--server-log": "the servers' stderr would be appended to it",
    "--audit": "the audit trail would be appended to it",
}


@pytest.mark.parametrize("option", list(APPENDS))
@pytest.mark.parametrize("target", ["db", "task", "config"])
def test_a_log_or_trail_named_as_a_file_the_run_keeps_is_refused_before_it_runs(
    option: str, target: str, tmp_path: Path
) -> None:
    """A log (``--log-file``, ``--server-log``) or the audit trail appends to its file: named
    as the run database, the task or the configuration, it would write lines into it. One
    error line, exit 2, every file as it was."""
    harm = APPENDS[option]
    db, task, config, audit, log, servers = (
        tmp_path / n for n in ("r.db", "t.json", "c.json", "a.jsonl", "run.log", "servers.log")
    )
    task.write_text(json.dumps({"requests": PARTIAL["requests"][:1]}))
    config.write_text(json.dumps({"mcpServers": {}}))
    assert cli("run", str(task), "--db", str(db), "--thread", "t", cwd=tmp_path).returncode == 0
    log.write_text("the log of the first run\n")
    named = {"db": db, "task": task, "config": config, "log file": log}[target]
    given = {"--log-file": log, "--server-log": servers, "--audit": audit} | {option: named}
    args = [x for o, path in given.items() for x in (o, str(path))]
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    proc = cli(
        "run", str(task), "--db", str(db), "--config", str(config), *args, "--thread", "t2",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"error: {option} ") and harm in line, line
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert {n: b for n, b in after.items() if n in before} == before
    assert set(after) - set(before) <= {"servers.log", "a.jsonl"}  # opened, nothing written


def test_the_two_logs_may_share_one_file(tmp_path: Path) -> None:
    task = _task(tmp_path)
    log = tmp_path / "all.log"
    proc = cli(
        "run", str(task), "--db", ":memory:", "--log-file", str(log), "--server-log", str(log),
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_a_report_written_over_its_own_run_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    task = tmp_path / "t.json"
    task.write_text(json.dumps({"requests": PARTIAL["requests"][:1]}))
    assert cli("run", str(task), "--db", str(db), "--thread", "t", cwd=tmp_path).returncode == 0
    before = db.read_bytes()
    proc = cli("report", "--thread", "t", "--db", str(db), "-o", str(db), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "is the run database" in proc.stderr and db.read_bytes() == before
    again = cli("report", "--thread", "t", "--db", str(db), "-o", "r.html", cwd=tmp_path)
    assert again.returncode == 0, again.stderr  # the database still holds the run


def _older(db: Path, what: str) -> None:
    """Make ``db`` as an older hybridmcp left it: from before the application id (no id, no
    version), and for ``"store"`` also with LangGraph's store from before its TTL migrations
    (no ``expires_at``, ``ttl_minutes``), which the store's reads now select."""
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("PRAGMA application_id = 0")
        conn.execute("PRAGMA user_version = 0")
        if what == "store":
            conn.execute("DROP INDEX IF EXISTS idx_store_expires_at")
            conn.execute("ALTER TABLE store DROP COLUMN ttl_minutes")
            conn.execute("ALTER TABLE store DROP COLUMN expires_at")
            conn.execute("DELETE FROM store_migrations WHERE v >= 2")


def _files(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}


@pytest.mark.parametrize("made_by", ["this version", "an older version", "an older store"])
def test_a_report_only_reads_the_run_database(made_by: str, tmp_path: Path) -> None:
    """``report`` reads the database and changes nothing in it or beside it: not stamped,
    not migrated, no lock file (every byte and modification time as they were). A database
    whose tables cannot be read without migrating them is refused in one line, as it was."""
    runs = tmp_path / "runs"
    runs.mkdir()
    db = runs / "r.db"
    task = _task(tmp_path)
    assert cli("run", str(task), "--db", str(db), "--thread", "t", cwd=tmp_path).returncode == 0
    if made_by != "this version":
        _older(db, "store" if made_by == "an older store" else "id")
    for p in runs.iterdir():  # an hour ago: a write now would show
        os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns - 3_600 * 10**9))
    before = _files(runs)
    out = tmp_path / "r.html"
    proc = cli("report", "--thread", "t", "--db", str(db), "-o", str(out), cwd=tmp_path)
    assert _files(runs) == before
    if made_by == "an older store":
        assert proc.returncode == 2, proc.stderr
        (line,) = proc.stderr.strip().splitlines()
        assert "cannot be read without migrating it" in line and "expires_at" in line, line
        assert "it was not changed" in line and not out.exists()
    else:
        assert proc.returncode == 0, proc.stderr
        assert 'data-request="ok"' in out.read_text()


@pytest.fixture
def full_disk(small_disk: Path) -> Path:
    """The 2 MiB file system of ``small_disk`` with an earlier report, 8 KiB of it left free."""
    from tests.integration.test_hostile_storage import fill

    (small_disk / "r.html").write_text("<html>the earlier report</html>")
    fill(small_disk, leave_kib=8)
    return small_disk


def test_a_report_that_does_not_fit_on_the_disk_leaves_the_one_there(full_disk, tmp_path):
    """``report -o`` over an earlier report on a disk with no room left: one error line,
    exit 2, and the earlier report still whole (not cut to what fitted, nor emptied)."""
    db = tmp_path / "r.db"
    task = tmp_path / "t.json"
    many = [
        {"id": f"n{i}", "skill": "math.calculate", "args": {"expression": f"{i} + 1"}}
        for i in range(40)
    ]
    task.write_text(json.dumps({"requests": many}))
    assert cli("run", str(task), "--db", str(db), "--thread", "t", cwd=tmp_path).returncode == 0
    out = full_disk / "r.html"
    proc = cli("report", "--thread", "t", "--db", str(db), "-o", str(out), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: cannot write the report") and "No space" in line, line
    assert out.read_text() == "<html>the earlier report</html>"
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler", "r.html"]

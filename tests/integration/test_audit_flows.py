"""The audit trail against what really reached the servers: real MCP servers in subprocesses
(the fault server, recording every call it receives; the hostile server), the CLI and the
Python API. Every call a server received has a record written before it was sent (its gate
decision) and, once it ended, its ``external_call`` record, one for one; a run killed mid-call
or resumed leaves a trail that verifies with no call unrecorded; a trail that cannot be
written stops the run in one line before anything more is sent; hostile text from a server
stays one line that verifies."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from hybridmcp import Coordinator, parse_config, parse_task
from hybridmcp.audit import iter_records
from hybridmcp.testing.harness import HttpFaultServer, faultserver_stdio
from hybridmcp.testing.hostile_server import ODD_ERROR
from tests.integration.test_durable import cli_env, recorded, wait_for

pytestmark = pytest.mark.integration

HOSTILE = [sys.executable, "-m", "hybridmcp.testing.hostile_server"]
EXT = {"side": "external", "server": "f"}


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hybridmcp.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(),
        check=False,
    )


def records(trail: Path, kind: str | None = None) -> list[dict[str, Any]]:
    return [r for r in iter_records(trail) if kind is None or r["kind"] == kind]


def sends(trail: Path) -> collections.Counter[str]:
    """Per request: the gate decisions that let a call go (each written before its call was
    queued to be sent), less the calls the budget or breaker then refused."""
    counts: collections.Counter[str] = collections.Counter()
    for r in records(trail, "policy_decision"):
        if r.get("stage") != "gate":
            continue
        if r.get("policy") in ("budget", "breaker"):
            counts[r["request_id"]] -= 1
        elif r["action"] in ("allow", "redact"):
            counts[r["request_id"]] += 1
    return counts


def ended(trail: Path) -> collections.Counter[str]:
    """Per request: how many times the calls whose ``external_call`` record was written
    reached the server (their ``sends``)."""
    counts: collections.Counter[str] = collections.Counter()
    for r in records(trail, "external_call"):
        counts[r["request_id"]] += r["sends"]
    return counts


def calls(trail: Path) -> collections.Counter[str]:
    """Per request: the ``external_call`` records, sent or not."""
    return collections.Counter(r["request_id"] for r in records(trail, "external_call"))


def received(record: Path, by: str) -> collections.Counter[str]:
    """Per request (the argument ``by`` names it): the calls the server received."""
    return collections.Counter(
        str(c["arguments"][by]) for c in recorded(record) if c["tool"] != "fault_control"
    )


def verified(trail: Path, db: Path) -> str:
    done = cli("audit", "verify", str(trail), "--db", str(db))
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


# -- hostile text ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["odd_error", "odd_tool_error"])
async def test_a_servers_hostile_error_text_is_recorded_on_one_line_that_verifies(
    mode, tmp_path
) -> None:
    """A server's error of 250,000 characters holding line breaks of every kind, NUL and
    terminal escapes: the call's record is one line to every reader, and the trail verifies;
    the record keeps the message's first 2,000 characters (it kept it whole, after scanning
    it all on the event loop: seconds for a message of a megabyte, and a server may send 16)."""
    from hybridmcp.policy import privacy

    privacy.scan({"to": "someone@example.com"})  # the detection engines built, as in a run
    trail, db = tmp_path / "audit.jsonl", tmp_path / "runs.db"
    server = {
        "command": HOSTILE[0],
        "args": [*HOSTILE[1:], mode],
        "env": {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(sys.path)},
        "timeout_ms": 5000,
    }
    config = parse_config(
        {
            "mcpServers": {"h": server},
            "skills": {"t.echo": {"providers": [{**EXT, "server": "h", "tool": "echo"}]}},
            "audit": {"path": str(trail), "run_db": str(db)},
        }
    )
    task = parse_task([{"id": "odd", "skill": "t.echo", "args": {"text": "hostile"}}])
    async with asyncio.timeout(60), Coordinator.open(config) as co:
        out = await co.run(task)
    (result,) = out["results"].values()
    assert result["status"] == "error"
    assert "UnicodeEncodeError" not in result["error"], result["error"][:300]
    (call,) = records(trail, "external_call")
    assert call["outcome"].startswith("error:") and "bad" in call["outcome"]
    raw = trail.read_bytes()
    text = raw.decode("utf-8")
    assert len(text.splitlines()) == text.count("\n") == len(records(trail))
    assert "\x1b" not in text and "\x00" not in text
    assert len(ODD_ERROR) > 200_000
    assert len(call["outcome"]) < 2200  # (a tool error's text is cut at 500 already)
    assert mode == "odd_tool_error" or call["outcome"].endswith(" characters in all)")
    verified(trail, db)


# -- a trail that cannot be written -----------------------------------------------------------


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with filler.open("wb") as out:
        out.write(b"\0" * shutil.disk_usage(disk).free)
    return filler


def _echo_setup(tmp_path: Path, trail: Path, faults: dict[str, Any], n: int) -> tuple[Path, Path]:
    record = tmp_path / "calls.jsonl"
    config, task = tmp_path / "config.json", tmp_path / "task.json"
    server = faultserver_stdio(faults, record=record, max_concurrency=1, timeout_ms=60_000)
    config.write_text(
        json.dumps(
            {
                "mcpServers": {"f": server},
                "skills": {"t.echo": {"providers": [{**EXT, "tool": "echo"}]}},
                "audit": {"path": str(trail)},
            }
        )
    )
    requests = [{"id": f"e{i}", "skill": "t.echo", "args": {"text": f"e{i}"}} for i in range(n)]
    task.write_text(json.dumps({"requests": requests}))
    return config, task


def test_a_trail_whose_disk_fills_mid_run_stops_the_run_in_one_line_nothing_unrecorded(
    small_disk, tmp_path
) -> None:
    """The trail's disk fills while calls are in flight and queued: the run stops at the first
    record it cannot write (exit 2, one line saying why and how to resume; it used to go on,
    each call's answer replaced by the audit error, blamed on the server as a degradation),
    sends nothing more, and every call the server received has the record written before it
    was sent. Once there is room, the same command resumes the run, and the trail verifies."""
    trail, db = small_disk / "audit.jsonl", tmp_path / "runs.db"
    config, task = _echo_setup(tmp_path, trail, {"echo": {"latency_ms": 400}}, 6)
    args = ["run", str(task), "-c", str(config), "--db", str(db), "--thread", "t1", "--json"]
    run = subprocess.Popen(
        [sys.executable, "-m", "hybridmcp.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    try:
        wait_for(lambda: len(recorded(tmp_path / "calls.jsonl")) >= 1, 60, "the first call")
        filler = fill(small_disk)
        _out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 2, err[-2000:]
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert "the disk holding it is full" in line and "the run stopped" in line, line
    assert "thread 't1'" in line, line
    got = received(tmp_path / "calls.jsonl", "text")
    assert sum(got.values()) < 6  # it stopped: not every call went
    sent = sends(trail)
    for rid, n in got.items():
        assert sent[rid] >= n, (rid, got, sent)  # recorded before it was sent
    filler.unlink()
    verified(trail, db)
    again = cli(*args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert {r["status"] for r in json.loads(again.stdout)["results"]} == {"ok"}
    verified(trail, db)
    got = received(tmp_path / "calls.jsonl", "text")
    sent, done = sends(trail), ended(trail)
    assert set(got) == {f"e{i}" for i in range(6)}
    for rid, n in got.items():
        assert sent[rid] >= n >= done[rid] >= 1, (rid, got, sent, done)


# -- one for one ------------------------------------------------------------------------------


def _ts(record: dict[str, Any]) -> float:
    return datetime.fromisoformat(record["ts"].replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("transport", ["stdio", "streamable_http"])
async def test_every_call_the_server_received_has_its_records_one_for_one(
    tmp_path, transport
) -> None:
    """Calls that fail, are cut at their deadline, are cut by the run's deadline while queued
    or in flight: per request, the ``external_call`` records say how many times each call
    reached the server (``sends``), one for one with what the server received (a call cut
    while queued, 0; its record said nothing of it: cost and latency 0), and every decision
    that let a call go (written before it reached the server) has its call's record."""
    record = tmp_path / "calls.jsonl"
    faults = {"calculate": {"fail_first": 3}, "sleep": {"hang": True}}
    limits = {"timeout_ms": 1000, "max_concurrency": 2}
    if transport == "stdio":
        await _one_for_one(tmp_path, faultserver_stdio(faults, record=record, **limits))
        return
    async with HttpFaultServer(faults, record=record) as http:
        await _one_for_one(tmp_path, http.server_config(**limits))


async def _one_for_one(tmp_path: Path, server: dict[str, Any]) -> None:
    trail, db = tmp_path / "audit.jsonl", tmp_path / "runs.db"
    record = tmp_path / "calls.jsonl"
    config = parse_config(
        {
            "mcpServers": {"f": server},
            "skills": {
                "t.calc": {"providers": [{**EXT, "tool": "calculate"}]},
                "t.sleep": {"providers": [{**EXT, "tool": "sleep"}]},
                "t.echo": {"providers": [{**EXT, "tool": "echo"}]},
            },
            "audit": {"path": str(trail), "run_db": str(db)},
        }
    )
    calcs = [{"id": f"c{i}", "skill": "t.calc", "args": {"expression": f"{i}+1"}} for i in range(4)]
    slow = [{"id": f"s{i}", "skill": "t.sleep", "args": {"ms": 10 + i}} for i in range(3)]
    echoes = [{"id": f"e{i}", "skill": "t.echo", "args": {"text": f"e{i}"}} for i in range(4)]
    async with asyncio.timeout(120), Coordinator.open(config) as co:
        await co.run(parse_task({"requests": [*calcs, *slow, *echoes]}))
        cut = parse_task(
            {"requests": [*slow, *echoes], "constraints": {"deadline_ms": 300}}
        )  # the run's deadline cuts calls in flight and queued
        await co.run(cut)
    by_args = {"calculate": "expression", "sleep": "ms", "echo": "text"}
    names = {
        str(c["args"][by_args[tool]]): c["id"]
        for tool, group in (("calculate", calcs), ("sleep", slow), ("echo", echoes))
        for c in group
    }
    server: collections.Counter[str] = collections.Counter()
    first_seen: dict[str, float] = {}
    for call in recorded(record):
        rid = names[str(call["arguments"][by_args[call["tool"]]])]
        server[rid] += 1
        first_seen.setdefault(rid, call["ts"])
    sent, done = sends(trail), ended(trail)
    assert sum(server.values()) >= 11
    assert +done == +server, (done, server)  # what reached the server, one for one
    assert sent == calls(trail)  # each call let go has its record: sent, or cut queued
    assert any(r["sends"] == 0 for r in records(trail, "external_call"))  # some were
    decided: dict[str, float] = {}
    for r in records(trail, "policy_decision"):
        if r.get("stage") == "gate":
            decided.setdefault(r["request_id"], _ts(r))
    for rid, ts in first_seen.items():
        assert decided[rid] <= ts, rid  # the record was written before the call arrived
    verified(trail, db)


async def test_a_call_the_circuit_breaker_refuses_at_the_gate_has_its_record(tmp_path) -> None:
    """The breaker opens between arbitration and the gate: the call is not sent, and the
    trail says why (it had only the privacy decision allowing it, which is what a call cut
    by a crash leaves)."""
    from hybridmcp.capabilities.gate import CallContext
    from hybridmcp.errors import CircuitOpen

    trail, db = tmp_path / "audit.jsonl", tmp_path / "runs.db"
    record = tmp_path / "calls.jsonl"
    config = parse_config(
        {
            "mcpServers": {"f": faultserver_stdio(record=record)},
            "skills": {"t.echo": {"providers": [{**EXT, "tool": "echo"}]}},
            "resilience": {"breaker": {"consecutive_failures": 1}},
            "audit": {"path": str(trail), "run_db": str(db)},
        }
    )
    async with asyncio.timeout(60), Coordinator.open(config) as co:
        gate = co.resources.gate
        provider = co.resources.registry.provider("mcp:f/echo")
        gate.breaker.record(provider.id, False, gate.clock())  # opens it
        ctx = CallContext("run-b", "r1", "t.echo", "run-b:r1")
        with pytest.raises(CircuitOpen):
            await gate.call(provider, {"text": "x"}, ctx)
    assert recorded(record) == []
    (decision, refusal) = records(trail)
    assert decision["action"] == "allow" and decision["request_id"] == "r1"
    assert refusal["policy"] == "breaker" and refusal["action"] == "refuse"
    assert sends(trail)["r1"] == 0
    verified(trail, db)


# -- a process killed mid-call, then resumed ---------------------------------------------------


def test_a_run_killed_mid_call_leaves_every_call_recorded_and_its_resumption_too(
    tmp_path,
) -> None:
    """SIGKILL while calls are in flight: every call the server received has the record
    written before it was sent; the trail verifies (a record written but its head not
    anchored is the one-record slack). The same command resumes the thread: the calls cut
    are sent again, each with its own records, nothing duplicated or missing, and the trail
    verifies."""
    trail, db = tmp_path / "audit.jsonl", tmp_path / "runs.db"
    faults = {"echo": {"latency_ms": 600_000}}
    config, task = _echo_setup(tmp_path, trail, faults, 4)
    args = ["run", str(task), "-c", str(config), "--db", str(db), "--thread", "k", "--json"]
    run = subprocess.Popen(
        [sys.executable, "-m", "hybridmcp.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=cli_env(),
    )
    try:
        wait_for(lambda: len(recorded(tmp_path / "calls.jsonl")) >= 1, 60, "a call in flight")
        time.sleep(0.3)
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
    cut = received(tmp_path / "calls.jsonl", "text")  # in flight when killed
    let_go = sends(trail)  # in flight or queued
    assert cut and not calls(trail)
    for rid, n in cut.items():
        assert let_go[rid] >= n, (rid, cut, let_go)
    verified(trail, db)
    _echo_setup(tmp_path, trail, {}, 4)  # the server answers at once now
    again = cli(*args)
    assert again.returncode == 0, again.stderr[-2000:]
    verified(trail, db)
    got, done = received(tmp_path / "calls.jsonl", "text"), ended(trail)
    assert set(got) == {f"e{i}" for i in range(4)}
    assert got == done + cut  # the resumed run's calls one for one, and those cut by the kill
    assert sends(trail) == calls(trail) + let_go  # every decision has its call's record, but
    # the killed run's: the records of a crash


# -- a request sent again after the server forgot its session ---------------------------------


ECHO_A, ECHO_B = {"text": "a"}, {"text": "b"}


class LoggedHttpServer:
    """The fault server over streamable HTTP on a port of its own, its HTTP access log (every
    request it received, with the status it answered) in a file; started again at will."""

    def __init__(self, tmp_path: Path) -> None:
        from hybridmcp.testing.harness import faultserver_args, free_port

        self.port = free_port()
        self.log = tmp_path / "access.log"
        self.record = tmp_path / "calls.jsonl"
        self.args = [*faultserver_args(record=self.record), "--transport", "streamable-http"]
        self.args += ["--port", str(self.port), "--log-level", "INFO"]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import socket

        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, *self.args], stdout=out, stderr=out)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("the fault server did not listen")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def posts(self, status: int) -> int:
        return sum(
            f'"POST /mcp HTTP/1.1" {status}' in line for line in self.log.read_text().splitlines()
        )


async def test_a_request_sent_again_after_http_404_is_recorded_as_sent_twice(tmp_path) -> None:
    """A streamable HTTP server restarted between calls answers the old session's request
    with 404 before acting on it; the pool sends it again on a new session. Both requests
    carried the arguments to the server: the call's record says ``sends: 2`` (it said
    nothing of the first), and the server's log shows both."""
    trail, db = tmp_path / "audit.jsonl", tmp_path / "runs.db"
    server = LoggedHttpServer(tmp_path)
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/mcp"
        config = parse_config(
            {
                "mcpServers": {"f": {"transport": "streamable_http", "url": url}},
                "skills": {"t.echo": {"providers": [{**EXT, "tool": "echo"}]}},
                "audit": {"path": str(trail), "run_db": str(db)},
            }
        )
        async with asyncio.timeout(120), Coordinator.open(config) as co:
            first = await co.run(parse_task([{"id": "a", "skill": "t.echo", "args": ECHO_A}]))
            server.stop()
            before = server.posts(404)
            server.start()
            again = await co.run(parse_task([{"id": "b", "skill": "t.echo", "args": ECHO_B}]))
    finally:
        server.stop()
    assert first["status"] == again["status"] == "ok", again["results"]
    assert server.posts(404) == before + 1  # the old session's request, refused
    assert received(server.record, "text") == {"a": 1, "b": 1}  # acted on once
    by_request = {r["request_id"]: r for r in records(trail, "external_call")}
    assert by_request["a"]["sends"] == 1 and by_request["b"]["sends"] == 2
    verified(trail, db)


# -- a model outside the process -------------------------------------------------------------


def test_a_run_killed_while_a_remote_model_is_asked_has_the_record_of_what_it_was_shown(
    tmp_path, start_model
) -> None:
    """The planner's model (outside the process) has the task when the process is killed: the
    trail already holds the decision that sent it (``policy_decision``, ``stage: model``: the
    role, the model, the bytes shown), written before the request left; the model's
    ``model_call`` record comes only after its answer (it was the only record, so a kill left
    nothing), and the trail verifies."""
    from tests.helpers import MODEL_URL_ENV

    plan = {"requests": [], "rationale": "nothing to do"}
    model = start_model([{"__sleep__": 60, **plan}])
    trail, db = tmp_path / "audit.jsonl", tmp_path / "runs.db"
    config = tmp_path / "config.yaml"
    config.write_text(
        "llm_config: {planner_model: 'python:tests.helpers:served_model_lm'}\n"
        f"audit: {{path: '{trail}'}}\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = cli_env(**{MODEL_URL_ENV: model.url, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    env["PYTHONPATH"] = os.pathsep.join([str(root / "src"), str(root)])
    ask = ["run", "--ask", "count the words in: a b c", "-c", str(config), "--db", str(db)]
    run = subprocess.Popen(
        [sys.executable, "-m", "hybridmcp.cli", *ask, "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=tmp_path,
    )
    try:
        wait_for(lambda: len(model.bodies()) >= 1, 90, "the model asked")
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
    (shown,) = model.bodies()
    (decision,) = records(trail)
    assert decision["kind"] == "policy_decision" and decision["stage"] == "model"
    assert decision["role"] == "planner" and decision["action"] == "allow"
    assert decision["model"] and 0 < decision["bytes_sent"] < len(shown)
    verified(trail, db)


# -- the client's answers to a server ------------------------------------------------------------


def test_the_roots_a_server_is_answered_are_recorded_one_for_one(tmp_path) -> None:
    """``mcp-server-filesystem`` asks the client for its roots (local paths, which leave the
    process): each answer it received has its ``kind: roots`` record, written before it was
    sent, with how many roots and their size, never the paths (it had none)."""
    from tests.integration.test_mcp_client import NODE, filesystem_entry

    entry = filesystem_entry()
    assert entry is not None, "needs MCP_EVERYTHING_DIR (npm servers)"
    data = tmp_path / "private-name"
    data.mkdir()
    trail, db, server_log = tmp_path / "audit.jsonl", tmp_path / "runs.db", tmp_path / "srv.log"
    fs = {"command": NODE, "args": [entry], "roots": [str(data)]}
    allowed = {**EXT, "server": "fs", "tool": "list_allowed_directories"}
    skills = {"fs.allowed": {"providers": [allowed]}}
    config, task = tmp_path / "config.json", tmp_path / "task.json"
    config.write_text(json.dumps({"mcpServers": {"fs": fs}, "skills": skills}))
    task.write_text(json.dumps([{"id": "a", "skill": "fs.allowed", "args": {}}]))
    done = cli(
        "run", str(task), "-c", str(config), "--db", str(db), "--audit", str(trail),
        "--server-log", str(server_log), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    answered = server_log.read_text().count("Updated allowed directories from MCP roots: 1")
    roots = records(trail, "roots")
    assert answered >= 1 and len(roots) == answered, (answered, roots)
    assert all(r["server"] == "fs" and r["roots"] == 1 and r["bytes_sent"] > 0 for r in roots)
    assert "private-name" not in trail.read_text()
    verified(trail, db)


# -- two processes, one trail -------------------------------------------------------------------


def test_two_runs_in_two_processes_write_one_trail_that_verifies(tmp_path) -> None:
    """Two CLI runs at once append to the same trail (each its own fault server): no line torn
    or interleaved, one chain that verifies against one anchored head, and each run's records
    one for one with what its server received."""
    trail, db = tmp_path / "audit.jsonl", tmp_path / "runs.db"
    procs = []
    for n in (1, 2):
        folder = tmp_path / f"p{n}"
        folder.mkdir()
        config, task = _echo_setup(folder, trail, {"echo": {"jitter_ms": 30}}, 12)
        args = ["run", str(task), "-c", str(config), "--db", str(db), "--thread", f"t{n}"]
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "hybridmcp.cli", *args, "--json"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=cli_env(),
            )
        )
    outs = [p.communicate(timeout=180) for p in procs]
    for proc, (_out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err[-2000:]
    text = trail.read_text()
    assert all(line.startswith('{"seq": ') and line.endswith("}") for line in text.splitlines())
    verified(trail, db)
    assert {r["run_id"] for r in records(trail)} == {"t1", "t2"}
    for n in (1, 2):
        got = received(tmp_path / f"p{n}" / "calls.jsonl", "text")
        mine = [r for r in records(trail, "external_call") if r["run_id"] == f"t{n}"]
        assert sum(r["sends"] for r in mine) == sum(got.values()) == 12


# -- a head that cannot be anchored -----------------------------------------------------------


def test_a_record_whose_head_cannot_be_anchored_is_taken_back(small_disk, tmp_path) -> None:
    """The heads database's disk is full: each append that cannot anchor its head fails in
    one line and takes its record back, so the trail still ends at its anchored head and
    verifies (records written without their heads, two or more, made a trail that failed
    verification for good, every later run refusing it). Once there is room, appends go on."""
    from hybridmcp.audit import AuditLog, verify
    from hybridmcp.errors import AuditError
    from hybridmcp.persistence import SqliteHeads

    trail, key = tmp_path / "audit.jsonl", b"k" * 32
    heads = SqliteHeads(small_disk / "heads.db")
    with AuditLog(trail, key=key, anchor=heads) as log:
        for i in range(3):
            log.append({"kind": "external_call", "i": i})
        filler = fill(small_disk)
        for _ in range(3):
            try:  # SQLite may still find room in pages it has: fill until it does not
                log.append({"kind": "external_call", "big": "x" * 50_000})
            except AuditError as err:
                assert "\n" not in str(err)
                break
        else:
            pytest.fail("the heads database never ran out of room")
        with pytest.raises(AuditError):
            log.append({"kind": "external_call", "big": "x" * 50_000})
        report = verify(trail, key=key, anchor=heads)
        assert report.ok and not report.notes, (report.problems, report.notes)
        filler.unlink()
        log.append({"kind": "external_call", "after": True})
    report = verify(trail, key=key, anchor=heads)
    assert report.ok and report.head == report.anchored, report.problems
    heads.close()

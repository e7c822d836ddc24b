"""Hostile task and configuration files through the real command line: exit 2, one short line
on stderr, no traceback, and nothing run (the run database is never even created)."""

from __future__ import annotations

import codecs
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.test_durable import cli as durable_cli
from tests.integration.test_durable import cli_env

TASK = 'requests:\n- {id: a, skill: math.calculate, args: {expression: "1+1"}}\n'


def alias_bomb(levels: int = 9) -> str:
    """The YAML "billion laughs": 9**10 strings once expanded, a few hundred bytes on disk."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    lines.append(f"requests:\n- id: a\n  skill: json.query\n  args: {{data: *a{levels}}}")
    return "\n".join(lines) + "\n"


HOSTILE_TASKS: dict[str, tuple[bytes, str]] = {
    "binary": (bytes(range(256)) * 8, "NUL bytes"),
    "latin-1": ('requests: [{id: "é", skill: x}]'.encode("latin-1"), "not UTF-8"),
    "utf-16 without BOM": (TASK.encode("utf-16-le"), "NUL bytes"),
    "bad utf-16": (codecs.BOM_UTF16_LE + b"\x00\xd8a\x00", "not valid UTF-16"),
    "deep json": (b'{"requests": [' + b"[" * 10_000 + b"]" * 10_000 + b"]}", "max_depth"),
    "deep yaml": (
        b"requests:\n- id: a\n  skill: x\n  args: {a: " + b"[" * 500 + b"]" * 500 + b"}\n",
        "max_depth",
    ),
    "alias bomb": (alias_bomb().encode(), "max_nodes"),
    "alias cycle": (b"requests: &r\n- id: a\n  skill: x\n  args: {a: *r}\n", "cycle"),
    "huge string": (
        b'requests:\n- id: a\n  skill: time.now\n  args: {timezone: "' + b"x" * 200_000 + b'"}\n',
        "max_string_chars",
    ),
    "huge file": (b"# " + b"x" * 17_000_000 + b"\n" + TASK.encode(), "max_file_bytes"),
    "huge integer": (TASK.replace('"1+1"', "1" * 5_000).encode(), "more than 4300 digits"),
    "unreadable tag": (TASK.replace('"1+1"', "!!int zz").encode(), "!!int cannot read"),
    "key given twice": (TASK.replace("id: a,", "id: a, id: b,").encode(), "'id' twice"),
    "NaN in JSON": (
        b'{"requests": [{"id": "a", "skill": "math.calculate", "args": {"x": NaN}}]}',
        "requests.0.args.x: nan",
    ),
    "escaped quotes": (b'["' + b'\\"' * 400_000, "invalid JSON"),
    # valid JSON text that no UTF-8 file, store or server can hold: a lone surrogate
    "lone surrogate": (
        b'{"requests": [{"id": "a", "skill": "text.stats", "args": {"text": "x\\udc00"}}]}',
        "requests.0.args.text: a string holding a lone surrogate (U+DC00",
    ),
    "lone surrogate key": (
        b'{"requests": [{"id": "a", "skill": "json.query", "args": {"data": {"\\ud800": 1}}}]}',
        "requests.0.args.data (a key): a string holding a lone surrogate (U+D800",
    ),
}


def refused(proc: subprocess.CompletedProcess[str], reason: str) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines[:5]
    assert reason in lines[0]
    assert len(lines[0]) < 400  # a bad value is quoted by a short prefix, never whole


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return durable_cli(*args, cwd=cwd, timeout=60)


@pytest.mark.parametrize("name", sorted(HOSTILE_TASKS))
def test_a_hostile_task_file_is_refused_before_anything_runs(name, tmp_path):
    content, reason = HOSTILE_TASKS[name]
    task = tmp_path / "task.yaml"
    task.write_bytes(content)
    db = tmp_path / "runs.db"
    started = time.monotonic()
    proc = cli("run", str(task), "--db", str(db), cwd=tmp_path)
    assert time.monotonic() - started < 20
    refused(proc, reason)
    assert not db.exists()  # nothing opened, nothing run, nothing learned


def test_a_utf16_task_with_a_bom_is_decoded(tmp_path):
    task = tmp_path / "task.yaml"
    task.write_bytes(codecs.BOM_UTF16_LE + TASK.encode("utf-16-le"))
    proc = cli("run", str(task), "--db", ":memory:", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert '"value": 2' in proc.stdout


def test_a_hostile_task_on_stdin_is_refused(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "hybridmcp.cli", "run", "-", "--db", ":memory:"],
        input=alias_bomb().encode(),
        capture_output=True,
        timeout=60,
        env=cli_env(),
        cwd=tmp_path,
    )
    refused(
        subprocess.CompletedProcess(proc.args, proc.returncode, "", proc.stderr.decode()),
        "<stdin>: more than",
    )


@pytest.mark.parametrize(
    "name",
    ["binary", "latin-1", "deep json", "alias bomb", "huge string", "huge file", "lone surrogate"],
)
def test_a_hostile_config_file_is_refused(name, tmp_path):
    content, reason = HOSTILE_TASKS[name]
    json_text = name in ("deep json", "lone surrogate")  # (YAML has no lone surrogate)
    config = tmp_path / ("config.json" if json_text else "config.yaml")
    config.write_bytes(content)
    db = tmp_path / "runs.db"
    refused(cli("run", "--config", str(config), "--db", str(db), cwd=tmp_path), reason)
    assert not db.exists()


def test_task_limits_are_configurable(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("input_limits: {max_string_chars: 20}\n")
    task = tmp_path / "task.yaml"
    task.write_text(TASK.replace("1+1", "1+" * 20 + "1"))
    proc = cli("run", str(task), "-c", str(config), "--db", ":memory:", cwd=tmp_path)
    refused(proc, "a string of 41 characters, more than 20 (input_limits.max_string_chars)")


@pytest.mark.parametrize("deadline", ["1e-300", "0.001"])
def test_an_impossible_deadline_fails_without_learning_or_blame(deadline, tmp_path):
    """The caller's own deadline cannot be met before any call is made: every request fails
    with that reason, no side is said to degrade, and no statistic changes (the real
    mcp-server-time is the external side of time.now)."""
    task = tmp_path / "task.yaml"
    task.write_text(
        "requests:\n"
        "- {id: a, skill: time.now, args: {timezone: UTC}, strategy: hybrid}\n"
        "- {id: b, skill: text.stats, args: {text: a b c}}\n"
        f"constraints: {{deadline_ms: {deadline}}}\n"
    )
    db = tmp_path / "runs.db"
    proc = cli("run", str(task), "--db", str(db), "--json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    out = json.loads(proc.stdout)
    assert {r["status"] for r in out["results"]} == {"error"}
    assert all("before any call was sent" in r["error"] for r in out["results"])
    codes = {e["code"] for e in out["events"]}
    assert not codes & {
        "INTERNAL_DEGRADATION_DETECTED",
        "EXTERNAL_DEGRADATION_DETECTED",
        "COORDINATION_FAILURE",
        "CIRCUIT_OPENED",
    }, codes
    stats = cli("stats", "--db", str(db), "--json", cwd=tmp_path)
    assert stats.returncode == 0, stats.stderr
    rows = json.loads(stats.stdout)
    assert rows, "the run's providers are listed"
    for row in rows:
        assert (row["calls"], row["failures"], row["censored"]) == (0, 0, 0), row


@pytest.mark.parametrize("thread", ["", "   "])
def test_an_empty_thread_id_is_refused_not_a_run_no_one_can_resume(thread, tmp_path):
    task = tmp_path / "task.yaml"
    task.write_text(TASK)
    db = tmp_path / "runs.db"
    proc = cli("run", str(task), "--db", str(db), "--thread", thread, cwd=tmp_path)
    refused(proc, "--thread")
    assert not db.exists()


STUCK = '''
import time


def stuck(x: float) -> dict:
    """An internal function that never returns in any useful time."""
    time.sleep(600)
    return {"value": x}
'''


def test_an_internal_function_past_its_deadline_never_holds_the_command(tmp_path: Path) -> None:
    """A plain function runs in a worker thread, which cannot be stopped: past its deadline the
    run goes on without it, and the command prints the result and exits; the thread is not
    waited for (it used to hold the output until the function returned)."""
    (tmp_path / "stuckmod.py").write_text(STUCK)
    schema = {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}
    skill = {
        "input_schema": schema,
        "providers": [{"side": "internal", "function": "stuckmod:stuck", "timeout_ms": 300}],
    }
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"mcpServers": {}, "skills": {"stuck": skill}}))
    task = tmp_path / "t.json"
    task.write_text(json.dumps({"requests": [{"id": "a", "skill": "stuck", "args": {"x": 1}}]}))
    # a hang is the subprocess' timeout (60 s), far below the function's 600 s
    proc = durable_cli(
        "run", str(task), "--config", str(config), "--json", "--db", ":memory:", timeout=60
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    (result,) = json.loads(proc.stdout)["results"]
    assert "deadline exceeded after 300 ms" in result["error"]


def test_a_lone_surrogate_for_a_server_is_refused_not_held_against_it(tmp_path):
    """It once reached the real mcp-server-time, ended its session mid-call (the SDK could
    not write it as UTF-8), and was recorded as the server's failure: now the task is refused
    before anything runs, and nothing is learned of the server."""
    task = tmp_path / "task.json"
    task.write_bytes(
        b'{"requests": [{"id": "a", "skill": "time.now", "strategy": "external",'
        b' "args": {"timezone": "U\\udc00TC"}}]}'
    )
    db = tmp_path / "runs.db"
    refused(cli("run", str(task), "--db", str(db), cwd=tmp_path), "lone surrogate")
    assert not db.exists()

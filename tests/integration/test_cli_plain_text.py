"""What the command line prints of a task, a server's answer, a name or a path is shown as the
text it is: square brackets are never read as console markup (a value such as ``[/b]`` used to
end the run in a traceback, and ``[link=...]`` could hide text), and Unicode is shown as itself,
not as ``\\uXXXX`` escapes."""

from __future__ import annotations

import json
import sys

import pytest
import yaml

from tests.integration.test_durable import cli, cli_env

ODD = "[/b]x[bold]"
VALUE = "[/oops] [bold]big[/bold] [link=http://x]l[/link] 日本"
SKILL = "odd.[/s]"
WIDE = cli_env(COLUMNS="300")


def _config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "mcpServers": {},
                "skills": {
                    SKILL: {
                        "input_schema": {
                            "type": "object",
                            "properties": {"text": {"type": "string"}},
                            "required": ["text"],
                        },
                        "providers": [
                            {
                                "side": "internal",
                                "function": "hybridmcp.capabilities.builtin:text_stats",
                            }
                        ],
                    }
                },
            }
        )
    )
    return path


def _task(tmp_path, n: int = 1):
    requests = [
        {"id": ODD, "skill": "json.query", "args": {"data": {"a": VALUE}, "path": "$.a"}},
        {"id": "[/e]", "skill": "json.query", "args": {"data": {"a": 1}, "path": "$.[/zz]"}},
    ]
    requests += [
        {"id": f"[/n{i}]", "skill": SKILL, "args": {"text": f"[/t] {i}"}} for i in range(n)
    ]
    path = tmp_path / "task.json"
    path.write_text(json.dumps({"requests": requests}))
    return path


def _clean(proc, *shown: str) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode in (0, 3), proc.stderr[-3000:]
    flat = " ".join(proc.stdout.split())
    for text in shown:
        assert text in proc.stdout or text in flat, (text, proc.stdout[-3000:])


@pytest.mark.integration
def test_the_table_shows_ids_values_and_errors_as_text(tmp_path):
    config = _config(tmp_path)
    db = str(tmp_path / "r.db")
    proc = cli("run", str(_task(tmp_path)), "--config", str(config), "--db", db, env=WIDE)
    _clean(proc, ODD, VALUE.replace('"', '\\"'), "[/e]", "[/n0]", "[/zz]")
    assert "\\u65e5" not in proc.stdout


@pytest.mark.integration
@pytest.mark.parametrize("columns", [80, 100])
def test_a_narrow_terminal_keeps_the_values_readable(tmp_path, columns):
    """Below 120 columns (an 80-column terminal; a pipe, which Rich reads as 80) the
    allocation, attempts, agreement and confidence share one column: the value keeps
    a third of the width or more, its words whole, instead of a column of a few letters."""
    task = tmp_path / "task.json"
    text = "the quick brown fox jumps over the lazy dog near the riverbank"
    task.write_text(
        json.dumps({"requests": [{"id": "words", "skill": "text.stats", "args": {"text": text}}]})
    )
    proc = cli("run", str(task), "--db", str(tmp_path / "r.db"), env=cli_env(COLUMNS=str(columns)))
    _clean(proc, "internal → internal", "agree -, conf", '"words": 12')
    lines = proc.stdout.splitlines()
    table = [line for line in lines if line[:1] in "┏┃┡│├└"]
    assert table and max(len(line) for line in table) <= columns
    header = next(line for line in lines if "value" in line)
    assert len(header.split("┃")[-2]) >= columns // 3, header


@pytest.mark.integration
def test_a_wide_terminal_gives_each_field_its_column(tmp_path):
    task = tmp_path / "task.json"
    task.write_text(
        json.dumps({"requests": [{"id": "w", "skill": "text.stats", "args": {"text": "a b"}}]})
    )
    proc = cli("run", str(task), "--db", str(tmp_path / "r.db"), env=cli_env(COLUMNS="160"))
    header = next(line for line in proc.stdout.splitlines() if "value" in line)
    assert [c.strip() for c in header.strip("┃").split("┃")] == [
        "request",
        "allocation",
        "served by",
        "attempts",
        "agree",
        "conf",
        "value",
    ]


@pytest.mark.integration
def test_the_summary_of_a_big_run_shows_names_as_text(tmp_path):
    config = _config(tmp_path)
    proc = cli(
        "run", str(_task(tmp_path, 60)), "--config", str(config), "--db", str(tmp_path / "r.db")
    )
    _clean(proc, SKILL, "[/e]")


@pytest.mark.integration
def test_thread_notes_stats_and_tools_show_names_as_text(tmp_path):
    config = _config(tmp_path)
    db = str(tmp_path / "r.db")
    args = ("run", str(_task(tmp_path)), "--config", str(config), "--db", db, "--thread", "[/t]")
    _clean(cli(*args))
    again = cli(*args)
    _clean(again)
    assert "thread '[/t]' had finished" in again.stderr
    _clean(cli("stats", "--db", db), SKILL)
    _clean(cli("tools", "--config", str(config)), SKILL)


BANNER_SERVER = """
import sys
sys.stderr.write("BANNER: starting up\\n"); sys.stderr.flush()
from mcp.server.fastmcp import FastMCP
mcp = FastMCP("b")

@mcp.tool()
def ping() -> str:
    return "pong"

mcp.run()
"""


@pytest.mark.integration
@pytest.mark.parametrize("command", ["servers", "tools", "run"])
def test_a_stdio_servers_banner_goes_to_the_server_log_for_every_command(command, tmp_path):
    config = tmp_path / "c.json"
    server = {"command": sys.executable, "args": ["-c", BANNER_SERVER]}
    config.write_text(json.dumps({"mcpServers": {"b": server}}))
    task = tmp_path / "t.yaml"
    task.write_text("requests: [{id: a, skill: b.ping, args: {}}]\n")
    env = cli_env(XDG_DATA_HOME=str(tmp_path / "data"))
    args = [command, "--config", str(config)] + ([str(task)] if command == "run" else [])
    proc = cli(*args, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "b" in proc.stdout and "BANNER" not in proc.stdout + proc.stderr
    assert "BANNER: starting up" in (tmp_path / "data" / "hybridmcp" / "servers.log").read_text()


@pytest.mark.integration
def test_a_run_paused_for_a_conflict_review_prints_no_empty_metrics(tmp_path):
    """Paused in review, the table shows the conflicting request; the totals say what is known
    (no ``None/None answered`` of metrics that are computed once the run ends)."""
    from hybridmcp.testing.harness import faultserver_stdio

    config = tmp_path / "c.json"
    faulty = faultserver_stdio({"get_current_time": {"wrong_answer": True}})
    config.write_text(
        json.dumps(
            {
                "coordination_config": {"interrupt_on_conflict": True},
                "mcpServers": {"faulty": faulty},
                "skills": {
                    "time.now": {
                        "providers": [
                            {"side": "external", "server": "faulty", "tool": "get_current_time"}
                        ]
                    }
                },
            }
        )
    )
    task = tmp_path / "t.yaml"
    task.write_text("requests: [{id: c, skill: time.now, args: {timezone: UTC}, critical: true}]\n")
    db = str(tmp_path / "r.db")
    proc = cli("run", str(task), "--config", str(config), "--db", db, "--thread", "r", env=WIDE)
    assert proc.returncode == 5, proc.stderr[-2000:]
    assert "hybridmcp run: paused" in proc.stdout and "CONFLICT" in proc.stdout
    assert "None" not in proc.stdout, proc.stdout
    assert "paused conflict_review" in proc.stderr

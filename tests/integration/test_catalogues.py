"""Tool catalogues of shapes the client was not written around (``tests/catalog_server.py``,
a real server process per test): listings over several pages, pages that loop or fail, 1,500
tools, none, odd names, odd capabilities and protocol versions, input schemas of every kind,
a tool list that changes mid-session. Through the real command line and the Python API: what
can be listed and called is, what cannot is one line naming why, never a traceback."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hybridmcp import Coordinator
from hybridmcp.config import parse_config
from hybridmcp.errors import TaskError
from hybridmcp.task import parse_task
from tests.catalog_server import LONG_NAME, NAMES, PAGES
from tests.integration.test_durable import cli as durable_cli

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return durable_cli(*args, cwd=cwd, timeout=90)


def _server(mode: str) -> dict[str, Any]:
    return {
        "command": sys.executable,
        "args": ["-m", "tests.catalog_server", mode],
        "cwd": str(ROOT),
        "env": {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(sys.path)},
        "timeout_ms": 5000,
        "startup_timeout_ms": 8000,
    }


def _config(tmp_path: Path, mode: str) -> Path:
    path = tmp_path / f"{mode}.json"
    path.write_text(json.dumps({"mcpServers": {"c": _server(mode)}}))
    return path


def _tools(tmp_path: Path, mode: str) -> tuple[list[str], str]:
    proc = cli("tools", "--json", "--config", str(_config(tmp_path, mode)), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    skills = [r["skill"] for r in json.loads(proc.stdout) if r["skill"].startswith("c.")]
    return skills, proc.stderr


def _run(
    tmp_path: Path, mode: str, requests: list[dict[str, Any]]
) -> subprocess.CompletedProcess[str]:
    task = tmp_path / "task.json"
    task.write_text(json.dumps({"requests": requests}))
    config = _config(tmp_path, mode)
    proc = cli(
        "run", str(task), "--config", str(config), "--json", "--db", ":memory:", cwd=tmp_path
    )
    assert "Traceback" not in proc.stderr and "│" not in proc.stderr, proc.stderr[-3000:]
    return proc


def _values(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {r["id"]: r["value"] for r in json.loads(proc.stdout)["results"]}


def test_every_page_of_a_paginated_listing_is_listed_and_callable(tmp_path) -> None:
    skills, _ = _tools(tmp_path, "pages")
    assert skills == [f"c.{name}" for page in PAGES for name in page]
    last = PAGES[-1][-1]
    values = _values(_run(tmp_path, "pages", [{"id": "x", "skill": f"c.{last}", "args": {}}]))
    assert values == {"x": {"tool": last}}


@pytest.mark.parametrize(
    ("mode", "said"),
    [
        ("loop", "tools/list page 2 gave the cursor 'again' of an earlier page: the pages loop"),
        ("page_fails", "tools/list page 2 (cursor 'next') failed: McpError: the second page"),
    ],
)
def test_a_listing_that_cannot_be_read_whole_is_a_server_down_in_one_line(
    mode, said, tmp_path
) -> None:
    skills, stderr = _tools(tmp_path, mode)
    assert skills == []
    (warning,) = [line for line in stderr.splitlines() if "MCP server 'c'" in line]
    assert warning.startswith("warning: MCP server 'c' is down: ") and said in warning
    proc = _run(tmp_path, mode, [{"id": "x", "skill": "c.echo", "args": {}}])
    assert proc.returncode == 2
    assert f"skill 'c.echo': MCP server 'c' is down (ListingError: {said}" in proc.stderr


def test_a_catalogue_of_1500_tools_is_listed_and_its_last_tool_called(tmp_path) -> None:
    skills, _ = _tools(tmp_path, "many")
    assert len(skills) == 1500
    proc = _run(tmp_path, "many", [{"id": "x", "skill": "c.t1499", "args": {"text": "hi"}}])
    assert _values(proc) == {"x": {"tool": "t1499", "text": "hi"}}


@pytest.mark.parametrize("mode", ["no_caps", "v2024", "v2025", "instructions"])
def test_odd_capabilities_versions_and_instructions_still_list_and_call(mode, tmp_path) -> None:
    assert _tools(tmp_path, mode)[0] == ["c.echo"]
    proc = _run(tmp_path, mode, [{"id": "x", "skill": "c.echo", "args": {"text": mode}}])
    assert _values(proc) == {"x": {"tool": "echo", "text": mode}}


def test_an_empty_catalogue_is_a_server_up_with_no_tools(tmp_path) -> None:
    assert _tools(tmp_path, "empty") == ([], "")
    proc = _run(tmp_path, "empty", [{"id": "x", "skill": "c.echo", "args": {}}])
    assert proc.returncode == 2 and "unknown skill 'c.echo'" in proc.stderr


def test_tools_named_with_dots_slashes_unicode_and_200_characters_are_called(tmp_path) -> None:
    skills, _ = _tools(tmp_path, "names")
    assert sorted(skills) == sorted(f"c.{name}" for name in NAMES)
    requests = [{"id": f"r{n}", "skill": f"c.{name}", "args": {}} for n, name in enumerate(NAMES)]
    values = _values(_run(tmp_path, "names", requests))
    assert [values[f"r{n}"] for n in range(len(NAMES))] == [{"tool": name} for name in NAMES]
    assert LONG_NAME in NAMES


SCHEMA_CALLS = [
    # (skill, args, None when called as given, else what the one-line error says)
    ("tree", {"root": {"value": 1, "children": [{"value": 2}]}}, None),
    (
        "tree",
        {"root": {"value": 1, "children": [{"value": "x"}]}},
        "argument root/children/0/value",
    ),
    ("cyclic", {"x": 1}, None),  # references that loop: left to the server
    ("self_ref", {"x": 1}, None),
    ("choice", {"target": {"id": 3}, "mode": None, "limits": 5}, None),
    ("choice", {"target": {"id": 3}, "limits": 50}, "argument limits: 50 is greater than"),
    ("choice", {"target": {"id": 3}, "other": 1}, "Additional properties are not allowed"),
    ("nullable", {"when": None, "kind": None, "extra": {"a": 1.5}}, None),
    ("nullable", {"kind": "two"}, "argument kind: 'two' is not one of [1, 'one', None, True"),
    ("modern", {"pair": ["a", 1], "tag": "x"}, None),
    ("modern", {"pair": ["a", 1]}, "'tag' is a dependency of 'pair'"),
    ("no_props", {}, None),
    ("bare_props", {"a": 1, "c": [2]}, None),
    ("bare_props", {"b": 1}, "argument b: 'b' is not allowed (its schema is false)"),
    ("not_schema", {"text": "a"}, None),  # not JSON Schema: left to the server
    ("odd_required", {"a": 1}, None),
]


@pytest.mark.parametrize(("tool", "args", "said"), SCHEMA_CALLS)
def test_input_schemas_of_every_kind_check_what_they_can_and_nothing_else(
    tool, args, said, tmp_path
) -> None:
    proc = _run(tmp_path, "schemas", [{"id": "x", "skill": f"c.{tool}", "args": args}])
    if said is None:
        assert _values(proc) == {"x": {"tool": tool, **args}}
    else:
        assert proc.returncode == 2
        (line,) = [x for x in proc.stderr.splitlines() if "request 'x'" in x]
        assert f"request 'x': skill 'c.{tool}': " in line and said in line


def test_a_tool_list_that_changes_mid_session_is_taken_for_the_next_request(tmp_path) -> None:
    """After ``shift``, the server drops ``gone`` and wants ``count`` of ``echo`` as an
    integer: the next request is checked against what it lists now."""

    async def scenario() -> None:
        config = parse_config({"mcpServers": {"c": _server("changes")}})
        async with Coordinator.open(config) as co:
            assert (await co.run(parse_task([{"id": "s", "skill": "c.shift"}])))["status"] == "ok"
            for _ in range(100):  # the notification is handled apart from the call
                if co.resources.registry.get("c.gone").unlisted:
                    break
                await asyncio.sleep(0.05)
            with pytest.raises(TaskError, match="MCP server 'c' no longer lists the tool 'gone'"):
                await co.run(parse_task([{"id": "g", "skill": "c.gone"}]))
            with pytest.raises(TaskError, match="argument count: '3' is not of type 'integer'"):
                await co.run(parse_task([{"id": "e", "skill": "c.echo", "args": {"count": "3"}}]))
            out = await co.run(parse_task([{"id": "e", "skill": "c.echo", "args": {"count": 3}}]))
            assert out["results"]["e"]["value"] == {"tool": "echo", "count": 3}

    asyncio.run(scenario())


def test_a_plan_of_tools_whose_schemas_are_odd_or_not_json_schema_runs(tmp_path) -> None:
    """``--ask`` over the ``schemas`` server: the plan's form is built from every schema, and a
    tool whose schema is not JSON Schema is planned and called as a direct request is."""
    from tests.helpers import PLANNER_ANSWER_ENV
    from tests.integration.test_durable import cli_env

    requests = [
        {"id": "n", "skill": "c.not_schema", "args": {"text": "a"}},
        {"id": "b", "skill": "c.bare_props", "args": {"a": 1}},
        {"id": "t", "skill": "c.tree", "args": {"root": {"value": 1}}},
    ]
    answer = {"requests": json.dumps(requests), "rationale": "one call per question"}
    config = tmp_path / "ask.json"
    config.write_text(
        json.dumps(
            {
                "mcpServers": {"c": _server("schemas")},
                "llm_config": {"planner_model": "python:tests.helpers:scripted_planner_lm"},
            }
        )
    )
    env = cli_env(
        **{PLANNER_ANSWER_ENV: json.dumps(answer), "PYTHONPATH": os.pathsep.join(sys.path)}
    )
    proc = durable_cli(
        "run", "--ask", "call them", "--config", str(config), "--json", "--db", ":memory:",
        env=env, cwd=tmp_path, timeout=90,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr
    assert _values(proc) == {
        "n": {"tool": "not_schema", "text": "a"},
        "b": {"tool": "bare_props", "a": 1},
        "t": {"tool": "tree", "root": {"value": 1}},
    }


def test_two_servers_whose_tools_spell_one_name_are_named_in_a_warning(tmp_path) -> None:
    """``c`` lists ``dot.ted``, ``c.dot`` lists ``ted``: both are ``c.dot.ted``. The first
    server's is called by that name, a warning names the other, which a configured skill
    reaches."""
    config = tmp_path / "two.json"
    servers = {"c": _server("one:dot.ted"), "c.dot": _server("one:ted")}
    skill = {"providers": [{"side": "external", "server": "c.dot", "tool": "ted"}]}
    config.write_text(json.dumps({"mcpServers": servers, "skills": {"other.ted": skill}}))
    proc = cli("tools", "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if "c.dot.ted" in x]
    assert "c/dot.ted is called by that name, c.dot/ted is not" in line
    task = tmp_path / "task.json"
    requests = [{"id": "a", "skill": "c.dot.ted"}, {"id": "b", "skill": "other.ted"}]
    task.write_text(json.dumps({"requests": requests}))
    args = ("run", str(task), "--config", str(config), "--json", "--db", ":memory:")
    assert _values(cli(*args, cwd=tmp_path)) == {"a": {"tool": "dot.ted"}, "b": {"tool": "ted"}}


@pytest.mark.parametrize(
    ("tool", "said"),
    [
        ("typed_ok", None),
        ("typed_bad", "Invalid structured content returned by tool typed_bad: 'one' is not of"),
        ("typed_cyclic", "could not be checked against the tool's outputSchema (its references"),
        ("typed_invalid", None),  # not JSON Schema: the answer is taken unchecked
    ],
)
def test_structured_content_is_held_to_its_output_schema_in_one_line(tool, said, tmp_path) -> None:
    proc = _run(tmp_path, "schemas", [{"id": "x", "skill": f"c.{tool}", "args": {}}])
    if said is None:
        assert _values(proc) == {"x": {"n": 1}}
        return
    (result,) = json.loads(proc.stdout)["results"]
    assert result["status"] == "error" and said in result["error"]
    assert "\n" not in result["error"]


def test_entries_that_are_not_mcp_tools_are_left_out_and_named_the_rest_kept(tmp_path) -> None:
    skills, stderr = _tools(tmp_path, "bad_tool")
    assert skills == ["c.after", "c.echo"]
    left_out = [line for line in stderr.splitlines() if "left out" in line]
    assert [line.split("tools/list ", 1)[1].split(":", 1)[0] for line in left_out] == [
        "entry 2 (name 'no_schema')",
        "entry 3 (name 5)",
        "entry 4 (name 'listed')",
    ]
    assert "inputSchema: Field required" in left_out[0]
    requests = [{"id": "a", "skill": "c.after", "args": {"text": "x"}}]
    assert _values(_run(tmp_path, "bad_tool", requests)) == {"a": {"tool": "after", "text": "x"}}


def test_a_flood_of_tool_list_changes_lists_the_tools_a_few_times_not_once_each() -> None:
    """2,000 ``list_changed`` notifications in a row: one listing runs at a time, and those
    that come meanwhile are one more after it (each listing also rebuilds the registry)."""

    async def scenario() -> None:
        config = parse_config({"mcpServers": {"c": _server("churn")}})
        async with Coordinator.open(config) as co:
            await co.run(parse_task([{"id": "a", "skill": "c.echo", "args": {"text": "x"}}]))
            for _ in range(100):
                if not any(t.get_name().startswith("mcp-relist") for t in asyncio.all_tasks()):
                    break
                await asyncio.sleep(0.05)
            out = await co.run(parse_task([{"id": "b", "skill": "c.echo", "args": {}}]))
            assert out["results"]["b"]["value"]["lists"] <= 4  # at start-up, then a few

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_server_of_prompts_only_is_up_with_no_tools(tmp_path) -> None:
    """It announces no ``tools`` capability and has no ``tools/list``: up, not down."""
    config = _config(tmp_path, "no_tools")
    proc = cli("servers", "--json", "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    (record,) = json.loads(proc.stdout)
    assert (record["state"], record["tools"]) == ("up", 0)
    assert _tools(tmp_path, "no_tools") == ([], "")


def test_an_output_schema_that_is_not_json_schema_is_named_once_and_answers_are_kept(
    tmp_path,
) -> None:
    proc = _run(tmp_path, "schemas", [{"id": "x", "skill": "c.typed_invalid", "args": {}}])
    assert _values(proc) == {"x": {"n": 1}}
    (line,) = [x for x in proc.stderr.splitlines() if "outputSchema" in x]
    assert "answers not checked against it: tool 'typed_invalid': 12 is not valid" in line

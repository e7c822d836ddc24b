"""hybridmcp as an MCP client, against real servers: identity and capabilities, roots
(``@modelcontextprotocol/server-filesystem``), log messages and garbage on stdout, progress
(server-everything's long-running operation), elicitation and sampling (server-everything's
tools, and ``tests/chatty_server.py``)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from langgraph.checkpoint.memory import InMemorySaver

from hybridmcp import Coordinator, parse_config, parse_task
from hybridmcp.capabilities.client_features import CallScope
from hybridmcp.capabilities.mcp_pool import SessionPool
from hybridmcp.errors import DeadlineExceededError
from tests.helpers import FIXED_LM_ENV
from tests.integration.test_durable import cli_env
from tests.integration.test_resilience import everything_entry, requires_everything

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CHATTY = str(ROOT / "tests" / "chatty_server.py")
NODE = shutil.which("node") or "node"


def cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The real CLI on this checkout's source, with no terminal on stdin (a paused run never
    waits for a person)."""
    return subprocess.run(
        [sys.executable, "-m", "hybridmcp.cli", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        env=env or cli_env(),
        cwd=cwd,
    )


def chatty(**extra: Any) -> dict[str, Any]:
    return {"command": sys.executable, "args": [CHATTY], **extra}


def everything(**extra: Any) -> dict[str, Any]:
    entry = everything_entry()
    return {"command": NODE, "args": [entry, "stdio"], "env": {"PATH": os.environ["PATH"]}} | extra


def filesystem_entry() -> str | None:
    prefix = os.environ.get("MCP_EVERYTHING_DIR")
    if not prefix:
        return None
    entry = Path(prefix, "node_modules/@modelcontextprotocol/server-filesystem/dist/index.js")
    return str(entry) if entry.exists() else None


requires_filesystem = pytest.mark.skipif(
    shutil.which("node") is None or filesystem_entry() is None,
    reason="needs node and @modelcontextprotocol/server-filesystem "
    "(npm install --prefix DIR ... with MCP_EVERYTHING_DIR=DIR)",
)


async def call(server: dict[str, Any], tool: str, args: dict[str, Any], **kw: Any) -> Any:
    """One call on a fresh pool holding the one server ``s``."""
    config = parse_config({"mcpServers": {"s": server}})
    async with asyncio.timeout(60), SessionPool(config.mcpServers) as pool:
        assert pool.is_up("s"), pool.status("s").error
        return await pool.call_tool("s", tool, args, kw.pop("timeout_s", 20), **kw)


def text(result: Any) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


def skill(server: str, tool: str, **extra: Any) -> dict[str, Any]:
    return {"providers": [{"side": "external", "server": server, "tool": tool, **extra}]}


# -- identity and capabilities ---------------------------------------------------------------


async def test_initialize_names_hybridmcp_and_advertises_only_what_is_configured() -> None:
    bare = json.loads(text(await call(chatty(), "whoami", {})))
    assert bare["clientInfo"]["name"] == "hybridmcp"
    assert bare["clientInfo"]["version"] == metadata.version("hybridmcp")
    assert not {"roots", "sampling", "elicitation"} & set(bare["capabilities"])

    full = chatty(roots=["/tmp"], elicitation="decline", sampling="decline")
    told = json.loads(text(await call(full, "whoami", {})))
    assert {"roots", "sampling", "elicitation"} <= set(told["capabilities"])


# -- logging -----------------------------------------------------------------------------------


async def test_server_log_messages_go_to_the_logger(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await call(chatty(), "shout", {"level": "warning", "message": "disk almost full"})
    [record] = [r for r in caplog.records if r.name == "hybridmcp.server.s"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "s/chatty: disk almost full"


def _write(tmp_path: Path, name: str, data: Any) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_garbage_on_stdout_is_logged_never_a_traceback_on_stderr(tmp_path: Path) -> None:
    config = _write(
        tmp_path,
        "config.yaml",
        {
            "mcpServers": {"chatty": chatty()},
            "skills": {"noisy.garbage": skill("chatty", "garbage")},
            "builtin_skills": False,
        },
    )
    task = _write(
        tmp_path, "task.yaml", {"requests": [{"id": "g", "skill": "noisy.garbage", "args": {}}]}
    )
    log_file = tmp_path / "hybridmcp.log"
    quiet = cli("run", task, "--config", config, "--json", "--log-file", str(log_file))
    assert quiet.returncode == 0, quiet.stderr
    assert json.loads(quiet.stdout)["results"][0]["value"] == "wrote garbage"
    assert "Traceback" not in quiet.stderr and "JSON-RPC" not in quiet.stderr
    logged = log_file.read_text()
    assert "'chatty' sent something that is not a JSON-RPC message" in logged
    assert "Traceback" in logged  # the SDK's own report, kept whole in the file

    verbose = cli("run", task, "--config", config, "--json", "--verbose")
    assert verbose.returncode == 0, verbose.stderr
    assert "Traceback" not in verbose.stderr
    lines = [ln for ln in verbose.stderr.splitlines() if "not a JSON-RPC message" in ln]
    assert len(lines) == 3  # one line per garbage line


# -- roots -------------------------------------------------------------------------------------


@requires_filesystem
def test_server_filesystem_serves_the_configured_roots(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello.txt").write_text("hi")
    entry = filesystem_entry()
    skills = {
        "fs.allowed": skill("fs", "list_allowed_directories"),
        "fs.list": skill("fs", "list_directory"),
    }
    task = _write(
        tmp_path,
        "task.yaml",
        {
            "requests": [
                {"id": "allowed", "skill": "fs.allowed", "args": {}},
                {"id": "list", "skill": "fs.list", "args": {"path": str(data)}},
            ]
        },
    )
    # Roots relative to the configuration file; the CLI runs from another directory.
    with_roots = {"command": NODE, "args": [entry], "roots": ["data"]}
    config = _write(tmp_path, "roots.yaml", {"mcpServers": {"fs": with_roots}, "skills": skills})
    server_log = tmp_path / "servers.log"  # where the servers' own stderr goes
    proc = cli("run", task, "--config", config, "--json", "--server-log", str(server_log), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "Updated allowed directories from MCP roots: 1" in server_log.read_text()
    assert "Client does not support MCP Roots" not in server_log.read_text()
    results = {r["id"]: r for r in json.loads(proc.stdout)["results"]}
    assert str(data.resolve()) in str(results["allowed"]["value"])
    assert "hello.txt" in str(results["list"]["value"])

    # The same server without roots falls back to its arguments, and says so.
    from_args = {"command": NODE, "args": [entry, str(data)]}
    config = _write(tmp_path, "args.yaml", {"mcpServers": {"fs": from_args}, "skills": skills})
    proc = cli("run", task, "--config", config, "--json", "--server-log", str(server_log), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "Client does not support MCP Roots" in server_log.read_text()


# -- progress ----------------------------------------------------------------------------------


@requires_everything
async def test_progress_notifications_become_progress_events() -> None:
    config = parse_config(
        {
            "mcpServers": {"ev": everything()},
            "skills": {"ops.long": skill("ev", "trigger-long-running-operation")},
        }
    )
    task = parse_task(
        {"requests": [{"id": "op", "skill": "ops.long", "args": {"duration": 1, "steps": 4}}]}
    )
    async with asyncio.timeout(60), Coordinator.open(config) as co:
        events = [e async for e in co.stream(task)]
    progress = [e for e in events if e["type"] == "progress"]
    assert [(e["progress"], e["total"]) for e in progress] == [(i, 4) for i in range(1, 5)]
    assert {e["request_id"] for e in progress} == {"op"}
    assert progress[0]["provider"] == "mcp:ev/trigger-long-running-operation"
    [result] = [e for e in events if e["type"] == "result"]
    [attempt] = result["output"]["results"]["op"]["attempts"]
    assert attempt["progress_notifications"] == 4


@requires_everything
async def test_progress_extends_a_calls_deadline_where_configured() -> None:
    args = {"duration": 2, "steps": 8}  # a notification every 0.25 s, done after 2 s
    with pytest.raises(DeadlineExceededError, match="within 700 ms"):
        await call(everything(), "trigger-long-running-operation", args, timeout_s=0.7)

    scope = CallScope()
    extended = everything(extend_deadline_on_progress=True)
    done = await call(extended, "trigger-long-running-operation", args, timeout_s=0.7, scope=scope)
    assert "completed" in text(done) and scope.notifications == 8

    bounded = everything(extend_deadline_on_progress=True, max_call_ms=1200)
    with pytest.raises(DeadlineExceededError, match="of its last progress"):
        await call(bounded, "trigger-long-running-operation", args, timeout_s=0.7)


# -- elicitation -------------------------------------------------------------------------------


@requires_everything
async def test_elicitation_decline_and_defaults() -> None:
    declined = await call(everything(elicitation="decline"), "trigger-elicitation-request", {})
    assert "declined" in text(declined)
    # server-everything requires a name with no default: there is nothing to accept
    required = await call(everything(elicitation="defaults"), "trigger-elicitation-request", {})
    assert '"action": "decline"' in text(required)
    defaults = json.loads(text(await call(chatty(elicitation="defaults"), "ask_city", {})))
    assert defaults == {"action": "accept", "content": {"city": "Lisbon", "count": 3}}


@requires_everything
async def test_elicitation_ask_pauses_the_run_and_resumes_with_the_answer() -> None:
    config = parse_config(
        {
            "mcpServers": {"ev": everything(elicitation="ask")},
            "skills": {"form.fill": skill("ev", "trigger-elicitation-request")},
            "builtin_skills": False,
        }
    )
    task = parse_task({"requests": [{"id": "form", "skill": "form.fill", "args": {}}]})
    async with asyncio.timeout(90), Coordinator.open(config, checkpointer=InMemorySaver()) as co:
        paused = await co.run(task, thread_id="ask-1")
        [question] = paused["__interrupt__"]
        assert question.value["type"] == "elicitation"
        assert question.value["request_id"] == "form"
        assert question.value["message"] == "Please provide inputs for the following fields:"
        assert question.value["requested_schema"]["required"] == ["name"]
        out = await co.resume({"name": "Ada Lovelace", "check": True}, thread_id="ask-1")
        audited = [r for r in co.resources.gate.audit.records if r["kind"] == "elicitation"]
    assert [(r["action"], r["paused"]) for r in audited] == [("cancel", True), ("accept", False)]
    assert "name" in audited[1]["fields"] and audited[1]["request_id"] == "form"
    assert "Ada" not in json.dumps(audited)  # field names, never the values
    assert "__interrupt__" not in out and out["status"] == "ok"
    answer = "\n".join(out["results"]["form"]["value"])  # the tool's text contents
    assert "Name: Ada Lovelace" in answer and "Agreed to terms: true" in answer
    assert "Favorite Integer: 42" in answer  # the schema's defaults fill what was not given


async def test_elicitation_ask_through_the_cli_with_two_questions(tmp_path: Path) -> None:
    config = _write(
        tmp_path,
        "config.yaml",
        {
            "mcpServers": {"chatty": chatty(elicitation="ask")},
            "skills": {"me.name": skill("chatty", "ask_name")},
            "builtin_skills": False,
        },
    )
    task = _write(
        tmp_path, "task.yaml", {"requests": [{"id": "me", "skill": "me.name", "args": {}}]}
    )
    env = cli_env(HYBRIDMCP_DB=str(tmp_path / "runs.db"))
    first = cli("run", task, "--config", config, "--thread", "t1", "--json", env=env)
    assert first.returncode == 5, first.stderr
    [asked] = json.loads(first.stdout)["questions"]
    assert asked["message"] == "What is your name?"
    bad = cli("run", task, "--config", config, "--thread", "t1", "--answer", "{bad", env=env)
    assert bad.returncode == 2 and "--answer: not valid JSON" in bad.stderr
    for wrong, says in (  # refused before anything runs: the question stays pending
        ('{"nmae": "Ada"}', "nmae: not a field of the question (its fields: name)"),
        ('{"name": 7}', "name: 7 is not of type 'string'"),
    ):
        refused = cli(
            "run", task, "--config", config, "--thread", "t1", "--answer", wrong, env=env
        )  # fmt: skip
        assert refused.returncode == 2, refused.stderr
        assert says in " ".join(refused.stderr.split()), refused.stderr

    second = cli(
        "run", task, "--config", config, "--thread", "t1", "--json",
        "--answer", '{"name": "Ada"}', env=env,
    )  # fmt: skip
    assert second.returncode == 5, second.stderr
    [asked] = json.loads(second.stdout)["questions"]
    assert asked["message"] == "And your favourite colour?"

    third = cli(
        "run", task, "--config", config, "--thread", "t1", "--json", "--answer", "decline", env=env
    )
    assert third.returncode == 0, third.stderr
    value = json.loads(third.stdout)["results"][0]["value"]
    assert value["name"] == {"action": "accept", "content": {"name": "Ada"}}
    assert value["colour"] == {"action": "decline", "content": None}


async def test_a_paused_run_prints_its_question_not_an_empty_table(tmp_path: Path) -> None:
    config = _write(
        tmp_path,
        "config.yaml",
        {"mcpServers": {"chatty": chatty(elicitation="ask")}, "builtin_skills": False},
    )
    task = _write(
        tmp_path, "task.yaml", {"requests": [{"id": "me", "skill": "chatty.ask_name", "args": {}}]}
    )
    env = cli_env(HYBRIDMCP_DB=str(tmp_path / "runs.db"))
    proc = cli("run", task, "--config", config, "--thread", "t1", env=env)
    assert proc.returncode == 5, proc.stderr
    assert proc.stdout.strip() == "hybridmcp run: paused", proc.stdout
    assert "None" not in proc.stdout + proc.stderr
    assert "What is your name? (fields: name)" in proc.stderr
    assert "resume: hybridmcp run TASK --thread t1 --answer JSON" in proc.stderr


# -- sampling ----------------------------------------------------------------------------------


def _sampling_config(model: str = "local/smollm2", **server: Any) -> Any:
    return parse_config(
        {
            "mcpServers": {"ev": everything(sampling="lm", sampling_role="planner", **server)},
            "skills": {"llm.sample": skill("ev", "trigger-sampling-request", timeout_ms=150_000)},
            "builtin_skills": False,
            "llm_config": {"planner_model": model, "timeout_ms": 120_000},
        }
    )


SAMPLE = {"requests": [{"id": "s", "skill": "llm.sample", "args": {"prompt": "Say hello."}}]}


@requires_everything
async def test_sampling_answers_with_the_local_model_and_is_audited() -> None:
    pytest.importorskip("llama_cpp", reason="the local model needs hybridmcp[local]")
    config = _sampling_config(sampling_max_tokens=16, sampling_cost=0.5)
    async with asyncio.timeout(120), Coordinator.open(config) as co:
        out = await co.run(parse_task(SAMPLE))
        records = list(co.resources.gate.audit.records)
    assert out["status"] == "ok", out["results"]["s"]["error"]
    answer = out["results"]["s"]["value"]
    assert "LLM sampling result" in answer and '"model": "local/smollm2"' in answer
    [sampled] = [r for r in records if r["kind"] == "sampling"]
    assert sampled["outcome"] == "ok" and sampled["server"] == "ev"
    assert sampled["request_id"] == "s" and sampled["cost"] == 0.5
    assert sampled["action"] == "allow"


@requires_everything
async def test_sampling_answers_pass_the_privacy_policy_and_budget(monkeypatch) -> None:
    monkeypatch.setenv(FIXED_LM_ENV, "Write to alice.jones@example.com today")
    leaky = "python:tests.helpers:fixed_answer_lm"
    for policy, expect in (("refuse", "sampling refused"), ("redact", "<EMAIL")):
        config = _sampling_config(model=leaky).model_copy(deep=True)
        config.privacy.servers["ev"] = policy  # type: ignore[index]
        async with asyncio.timeout(60), Coordinator.open(config) as co:
            out = await co.run(parse_task(SAMPLE))
            records = [r for r in co.resources.gate.audit.records if r["kind"] == "sampling"]
        result = out["results"]["s"]
        assert expect in str(result["value"] or result["error"])
        assert "alice.jones@example.com" not in json.dumps(out, default=str)
        assert records[0]["answer_sensitivity"] != "public"
        assert records[0]["action"] == policy
        assert "alice" not in json.dumps(records)

    costly = _sampling_config(model=leaky, sampling_cost=2.0)
    task = parse_task({**SAMPLE, "constraints": {"budget": 1.0}})
    async with asyncio.timeout(60), Coordinator.open(costly) as co:
        out = await co.run(task)
        [record] = [r for r in co.resources.gate.audit.records if r["kind"] == "sampling"]
    assert "budget exhausted" in str(out["results"]["s"]["error"])
    assert record["outcome"] == "refused: budget"


@requires_everything
async def test_sampling_answers_are_in_the_runs_cost(monkeypatch) -> None:
    """A sampling answer the server was given during a call is spent from the run's budget and
    shows in the run's cost: what the report says was spent is what the budget paid."""
    monkeypatch.setenv(FIXED_LM_ENV, "Hello there.")
    config = _sampling_config(model="python:tests.helpers:fixed_answer_lm", sampling_cost=0.25)
    config.mcpServers["ev"].cost_per_call = 0.1
    task = parse_task({**SAMPLE, "constraints": {"budget": 1.0}})
    async with asyncio.timeout(60), Coordinator.open(config) as co:
        out = await co.run(task)
        [record] = [r for r in co.resources.gate.audit.records if r["kind"] == "sampling"]
    assert out["status"] == "ok", out["results"]["s"]["error"]
    assert record["outcome"] == "ok" and record["cost"] == 0.25
    [attempt] = out["results"]["s"]["attempts"]
    assert attempt["cost"] == 0.1
    assert attempt["sampling"] == {"server": "ev", "answers": 1, "cost": 0.25}
    cost = out["cost"]
    assert cost["by_provider"]["sampling:ev"] == {"side": "external", "calls": 1, "cost": 0.25}
    assert cost["spent"] == pytest.approx(0.35) and cost["budget_remaining"] == pytest.approx(0.65)


@requires_everything
async def test_sampling_declined_by_policy() -> None:
    result = await call(everything(sampling="decline"), "trigger-sampling-request", {"prompt": "x"})
    assert result.isError and "sampling declined by policy" in text(result)


def test_elicitation_ask_prompts_on_a_terminal(tmp_path: Path) -> None:
    """With a terminal on stdin (a pseudo-terminal here), the run asks a person and goes on."""
    import pty

    config = _write(
        tmp_path,
        "config.yaml",
        {
            "mcpServers": {"chatty": chatty(elicitation="ask")},
            "skills": {"place.city": skill("chatty", "ask_city")},
            "builtin_skills": False,
        },
    )
    task = _write(
        tmp_path, "task.yaml", {"requests": [{"id": "c", "skill": "place.city", "args": {}}]}
    )
    master, terminal = pty.openpty()
    os.write(master, b"accept\nPorto\n\n")  # accept; city Porto; count: its default
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "hybridmcp.cli", "run", task, "--config", config, "--json"],
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=120,
            env=cli_env(HYBRIDMCP_DB=str(tmp_path / "runs.db")),
        )
    finally:
        os.close(terminal)
        os.close(master)
    assert proc.returncode == 0, proc.stderr
    assert "chatty asks: Which city, and how many?" in proc.stderr
    value = json.loads(proc.stdout)["results"][0]["value"]
    assert value == {"action": "accept", "content": {"city": "Porto", "count": 3}}

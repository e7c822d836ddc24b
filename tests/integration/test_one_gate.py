"""Invariant 2, checked two ways: no code in ``src/`` can call an MCP tool except through
``Gate.call``, and at run time every call that reaches the session pool came through it."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hybridmcp.capabilities.gate import Gate
from hybridmcp.config import parse_config
from hybridmcp.coordinator import Coordinator
from hybridmcp.task import parse_task
from hybridmcp.testing.harness import faultserver_stdio

pytestmark = pytest.mark.integration

SRC = Path(__file__).resolve().parents[2] / "src" / "hybridmcp"

# Where an MCP tool may be called, and why.
ALLOWED_CALL_TOOL = {
    ("capabilities/gate.py", "Gate._dispatch"),  # the gate's send step: pool.call_tool
    ("capabilities/mcp_pool.py", "_ServerSession.call"),  # deadline and re-open around _send
    ("capabilities/mcp_pool.py", "_ServerSession._send"),  # the one session.call_tool
    # tools/list, page by page (send_request with a cursor): it sends no request's data
    ("capabilities/mcp_pool.py", "list_all_tools"),
    ("testing/faultserver/server.py", "FaultMCP.call_tool"),  # the server side (super().call_tool)
    ("testing/faultserver/server.py", "FaultMCP._partial"),  # the server side: half an answer
}
POOL_INTERNALS = {"_sessions", "_ServerSession"}  # how SessionPool.call_tool reaches a session
# Client machinery that can reach an MCP server: only the session pool may touch it.
CLIENT_NAMES = {
    "ClientSession",
    "MultiServerMCPClient",
    "load_mcp_tools",
    "stdio_client",
    "streamablehttp_client",
    "streamable_http_client",
    "sse_client",
    "websocket_client",
}
CLIENT_MODULES = ("mcp.client", "langchain_mcp_adapters")
AUTH_MODULES = ("mcp.client.auth",)
"""The SDK's OAuth providers (an ``httpx.Auth`` the pool's connection carries): they talk to an
authorization server, never call a tool, so oauth.py may build them."""
POOL_MODULES = ("capabilities/mcp_pool.py", "capabilities/stdio.py")
"""The session pool, and the stdio transport it opens its sessions on (bytes to messages and
back: it calls no tool, and only the pool uses it)."""


def _functions(tree: ast.AST) -> Iterator[tuple[str, ast.AST]]:
    """Every node with the qualified name of the function it is in."""

    def walk(node: ast.AST, scope: list[str]) -> Iterator[tuple[str, ast.AST]]:
        for child in ast.iter_child_nodes(node):
            named = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            inner = [*scope, child.name] if named else scope  # type: ignore[attr-defined]
            yield ".".join(inner), child
            yield from walk(child, inner)

    yield from walk(tree, [])


def _source_nodes(root: Path) -> Iterator[tuple[str, str, ast.AST]]:
    """Every node of the sources under ``root``: (file, function it is in, node)."""
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for scope, node in _functions(ast.parse(path.read_text(), str(path))):
            yield rel, scope, node


def scan_source(root: Path) -> tuple[list[str], set[tuple[str, str]]]:
    """Violations, and every (file, function) that calls ``.call_tool`` / ``._send``."""
    problems: list[str] = []
    callers: set[tuple[str, str]] = set()
    for rel, scope, node in _source_nodes(root):
        where = f"{rel}:{getattr(node, 'lineno', '?')} in {scope or '<module>'}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("call_tool", "_send", "send_request"):
                callers.add((rel, scope))
                if (rel, scope) not in ALLOWED_CALL_TOOL:
                    problems.append(f"{where}: calls .{node.func.attr}() outside the gate")
        if rel in POOL_MODULES:
            continue
        if isinstance(node, ast.Name | ast.Attribute):
            name = node.id if isinstance(node, ast.Name) else node.attr
            if name in CLIENT_NAMES:
                problems.append(f"{where}: uses the MCP client {name} outside the pool")
            if name in POOL_INTERNALS:
                problems.append(f"{where}: reaches into the pool's sessions ({name})")
        if isinstance(node, ast.ImportFrom | ast.Import):
            modules = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
            )
            if any(
                m.startswith(CLIENT_MODULES)
                and not (rel == "oauth.py" and m.startswith(AUTH_MODULES))
                for m in modules
            ):
                problems.append(f"{where}: imports MCP client code ({modules[0]})")
            if isinstance(node, ast.ImportFrom):
                clash = CLIENT_NAMES & {a.name for a in node.names}
                if clash:
                    problems.append(f"{where}: imports {sorted(clash)}")
    return problems, callers


def test_no_code_path_calls_an_mcp_tool_around_the_gate() -> None:
    problems, callers = scan_source(SRC)
    assert not problems, "\n".join(problems)
    # The scan really sees the legitimate calls (it would see an illegitimate one too).
    assert ("capabilities/gate.py", "Gate._dispatch") in callers
    assert ("capabilities/mcp_pool.py", "_ServerSession._send") in callers


def test_the_scan_catches_a_bypass(tmp_path: Path) -> None:
    (tmp_path / "nodes").mkdir()
    (tmp_path / "nodes" / "sneaky.py").write_text(
        "from mcp import ClientSession\n"
        "async def fetch(res):\n"
        "    return await res.pool.call_tool('s', 't', {}, 1.0)\n"
    )
    problems, _ = scan_source(tmp_path)
    assert any("calls .call_tool() outside the gate" in p for p in problems)
    assert any("imports ['ClientSession']" in p for p in problems)


def _through_gate() -> bool:
    return any(
        f.function == "call" and f.frame.f_locals.get("self").__class__ is Gate
        for f in inspect.stack(0)
    )


async def test_every_pool_call_at_run_time_comes_through_the_gate(tmp_path: Path) -> None:
    """Hybrid requests, a reallocation after injected failures and a redacted call: every
    ``SessionPool.call_tool`` made during the run has ``Gate.call`` on its stack."""
    ext = {"side": "external", "server": "faulty", "timeout_ms": 5000}
    cfg = parse_config(
        {
            "mcpServers": {"faulty": faultserver_stdio({"calculate": {"fail_first": 2}})},
            "skills": {
                "math.calculate": {"providers": [{**ext, "tool": "calculate"}]},
                "note.echo": {"providers": [{**ext, "tool": "echo"}]},
            },
            "privacy": {"policy": "redact"},
        }
    )
    seen: list[tuple[str, bool]] = []
    async with Coordinator.open(cfg) as co:
        pool = co.resources.pool
        real = pool.call_tool

        async def observed(  # type: ignore[no-untyped-def]
            server: str, tool: str, arguments: dict[str, Any], timeout_s: float, **kw: Any
        ):
            seen.append((tool, _through_gate()))
            return await real(server, tool, arguments, timeout_s, **kw)

        pool.call_tool = observed  # type: ignore[method-assign]
        out = await co.run(
            parse_task(
                [
                    {
                        "id": "a",
                        "skill": "math.calculate",
                        "args": {"expression": "6*7"},
                        "strategy": "hybrid",
                    },
                    {
                        "id": "b",
                        "skill": "math.calculate",
                        "args": {"expression": "1+1"},
                        "strategy": "external",
                    },
                    {"id": "c", "skill": "note.echo", "args": {"text": "mail ines.novak@post.fr"}},
                ]
            )
        )
        await observed("faulty", "echo", {"text": "direct"}, 5)  # the check can fail
    assert out["status"] == "ok", out["results"]
    assert [t for t, via in seen if not via] == ["echo"]  # only the direct call above
    assert sorted(t for t, via in seen if via) == ["calculate", "calculate", "echo"]
    assert any(e["code"] == "REALLOCATION" for e in out["events"])  # the failures moved work


# Where a model may be called, and why: the coordinator's own models through ``ask_lm`` (a
# model outside the process passes ``Gate.consult`` there), a server's sampling request
# through ``Gate.sample``, and the machinery of the two.
ALLOWED_MODEL_CALLS = {
    ("prompts/asking.py", "ask_lm.asked"),  # the one signature run, given what the gate let out
    ("capabilities/client_features.py", "make_sampler.sample.complete"),  # run by Gate.sample
    ("prompts/running.py", "arun_signature"),  # the dspy module's own call
    ("prompts/structured.py", "StructuredAdapter.acall"),  # the adapter's super() call
}
MODEL_ENTRY_POINTS = {"arun_signature", "run_signature", "acall", "forward", "aforward"}


def scan_model_calls(root: Path) -> tuple[list[str], set[tuple[str, str]]]:
    """Calls of a model (a signature run, an LM's ``acall``) outside the allowed places."""
    problems: list[str] = []
    callers: set[tuple[str, str]] = set()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(), str(path))
        for scope, node in _functions(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name in MODEL_ENTRY_POINTS:
                callers.add((rel, scope))
                if (rel, scope) not in ALLOWED_MODEL_CALLS:
                    problems.append(
                        f"{rel}:{node.lineno} in {scope}: calls {name}() around the gate"
                    )
    return problems, callers


def test_no_code_path_calls_a_model_around_the_gate() -> None:
    problems, callers = scan_model_calls(SRC)
    assert not problems, "\n".join(problems)
    assert ("prompts/asking.py", "ask_lm.asked") in callers


def test_the_model_scan_catches_a_bypass(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "sneaky.py").write_text(
        "from hybridmcp.prompts.running import arun_signature\n"
        "async def advise(lm, sig, text):\n"
        "    return await arun_signature(sig, lm, task=text)\n"
    )
    problems, _ = scan_model_calls(tmp_path)
    assert any("calls arun_signature() around the gate" in p for p in problems)

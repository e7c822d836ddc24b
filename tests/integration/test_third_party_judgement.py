"""Judgement on third-party MCP servers nobody shaped the code around, each cross-validated
against an internal function as a user would configure it:

- ``mcp-server-calculator`` (PyPI, built on FastMCP): ``calculate`` is declared ``-> str`` and
  answers ``str(result)``, sent as structured content ``{"result": "5.0"}`` with an output
  schema; its internal twin returns the Python number;
- ``mcp-server-fetch`` (PyPI): pages of a local HTTP server this test starts; a page that is
  not there is the request's error, never the server's;
- ``@modelcontextprotocol/server-sequential-thinking`` (npm, TypeScript SDK): structured content
  beside its JSON text, and invalid arguments reported as a tool error, not as JSON-RPC;
- ``mcp-server-git`` (PyPI): a repository the test creates; a revision that does not exist.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from langgraph.store.memory import InMemoryStore

from hybridmcp import Coordinator, parse_task
from hybridmcp.config import parse_config
from hybridmcp.errors import TaskError
from hybridmcp.stats_store import all_stats
from tests.judgement_helpers import arithmetic

pytestmark = pytest.mark.integration
HYBRIDMCP = str(Path(sys.executable).with_name("hybridmcp"))
CALC = "mcp:calc/calculate"


def events(out: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [e for e in out["events"] if e["code"] == code]


def calculator_skill(*internal: str) -> dict[str, Any]:
    """``math.eval``: the given internal functions and ``mcp-server-calculator``'s tool. Its
    tool has no annotations (so it would be a write): the user declares it a read."""
    return {
        "description": "The number an arithmetic expression comes to.",
        "effect": "read",
        "input_schema": {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
        },
        "providers": [
            *({"side": "internal", "function": f"tests.judgement_helpers:{fn}"} for fn in internal),
            {"side": "external", "server": "calc", "tool": "calculate"},
        ],
    }


def calculator_config(*internal: str) -> dict[str, Any]:
    return {
        "mcpServers": {
            # a local process, cleared for anything: the privacy scan takes some numbers for
            # what they are not (``51.10546875`` reads as a phone number)
            "calc": {
                "command": "mcp-server-calculator",
                "timeout_ms": 10_000,
                "clearance": "restricted",
            }
        },
        "skills": {"math.eval": calculator_skill(*internal)},
    }


def evaluate(expressions: list[str], **extra: Any) -> Any:
    return parse_task(
        [{"id": e, "skill": "math.eval", "args": {"expression": e}, **extra} for e in expressions]
    )


# -- mcp-server-calculator: a number sent as its text is that number -----------------------


EXPRESSIONS = ["2+3", "10/2", "0.1+0.2", "2**0.5", "1/3", "-7*6", "2**70", "1e3/8"]


async def test_a_fastmcp_str_answer_agrees_with_the_number_its_twin_returns() -> None:
    """``"5.0"`` from the calculator and ``5.0`` from the internal twin are one answer: every
    critical request is cross-validated and agrees (it was unresolved, exit 4, on all of them);
    the metrics count each one cross-validated and none in conflict."""
    async with (
        asyncio.timeout(60),
        Coordinator.open(parse_config(calculator_config("arithmetic"))) as co,
    ):
        out = await co.run(evaluate(EXPRESSIONS, critical=True))
    assert out["status"] == "ok", out["events"]
    for expression, result in out["results"].items():
        assert result["status"] == "ok" and result["agreement"] is True, result
        assert [a["ok"] for a in result["attempts"]] == [True, True], result["attempts"]
        assert float(result["value"]) == arithmetic(expression)
    assert out["conflicts"] == [] and not events(out, "CONFLICT_UNRESOLVED")
    assert out["quality"]["cross_validated"] == len(EXPRESSIONS)
    assert out["quality"]["unresolved"] == 0


async def test_a_wrong_answer_is_still_a_conflict() -> None:
    """The twin that rounds to two places disagrees wherever rounding matters, and is
    recorded as a conflict, unresolved on a critical request; where it does not, it agrees."""
    async with (
        asyncio.timeout(60),
        Coordinator.open(parse_config(calculator_config("arithmetic_rounded"))) as co,
    ):
        out = await co.run(evaluate(["1/3", "2**0.5", "10/4", "2+3"], critical=True))
    results = out["results"]
    for wrong in ("1/3", "2**0.5"):
        assert results[wrong]["status"] == "unresolved", results[wrong]
        assert results[wrong]["values"] == {
            "internal:math.eval": round(arithmetic(wrong), 2),
            CALC: str(arithmetic(wrong)),
        }
    for right in ("10/4", "2+3"):
        assert results[right]["agreement"] is True, results[right]
    assert {c["request_id"] for c in out["conflicts"]} == {"1/3", "2**0.5"}
    assert out["quality"]["unresolved"] == 2 and out["quality"]["cross_validated"] == 4


async def test_after_learning_the_fast_rounding_side_never_wins() -> None:
    """Critical requests with a third provider (an exact internal twin) show the fast rounding
    side wrong; afterwards, with only the rounding side and the calculator, the calculator wins
    every conflict on evidence, though the internal side is far faster and cheaper."""
    store = InMemoryStore()
    learn = ["1/3", "2/3", "2**0.5", "1/7"]
    async with asyncio.timeout(120):
        cfg = parse_config(calculator_config("arithmetic_rounded", "arithmetic"))
        async with Coordinator.open(cfg, store=store) as co:
            for expression in learn:
                out = await co.run(evaluate([expression], critical=True))
                result = out["results"][expression]
                assert result["status"] == "ok", result
                assert float(result["value"]) == arithmetic(expression), result
        cfg = parse_config(calculator_config("arithmetic_rounded"))
        async with Coordinator.open(cfg, store=store) as co:
            out = await co.run(evaluate(["1/9", "5/7"], strategy="hybrid"))
    for expression, result in out["results"].items():
        assert result["status"] == "ok", result
        assert result["served_by"]["provider"] == CALC, result
        assert float(result["value"]) == arithmetic(expression)
    assert {c["resolution_strategy"] for c in out["conflicts"]} == {"EVIDENCE_OF_CORRECTNESS"}
    learned = {s.provider: s for s in await all_stats(store)}
    assert learned[CALC].successes == learned[CALC].calls == len(learn) + 2


async def test_hundreds_of_cross_validations_on_one_calculator_blame_it_for_nothing() -> None:
    """300 hybrid requests at once on the single stdio calculator: most wait for one of its 8
    session slots (the coordinator's queue, not the server's time). Every one agrees, none
    fails, no circuit opens, and the server's learned success is every call it got."""
    store = InMemoryStore()
    expressions = [f"{i}*3/7" for i in range(300)]
    cfg = parse_config(calculator_config("arithmetic"))
    async with asyncio.timeout(120), Coordinator.open(cfg, store=store) as co:
        out = await co.run(evaluate(expressions, strategy="hybrid"))
    assert out["status"] == "ok"
    assert all(r["agreement"] is True for r in out["results"].values())
    assert out["quality"]["cross_validated"] == 300 and out["conflicts"] == []
    assert out["metrics"]["failed_calls"] == {"internal": 0, "external": 0}
    assert not events(out, "CIRCUIT_OPENED")
    learned = {s.provider: s for s in await all_stats(store)}[CALC]
    assert learned.calls == learned.successes == 300


def test_generated_expressions_agree_through_the_real_calculator() -> None:
    """Hypothesis over sums, products and quotients of integers and floats, each sent to the
    real calculator and to the internal twin: every one agrees, whatever text the server
    makes of the number (``1e+16``, ``-0.0``, ``5.0``)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    floats = st.floats(min_value=-1e12, max_value=1e12).filter(lambda x: abs(x) > 1e-3)
    numbers = st.integers(-(10**6), 10**6) | floats
    expressions = st.builds(
        lambda a, op, b: f"{a!r}{op}({b!r})", numbers, st.sampled_from("+-*/"), numbers
    ).filter(lambda e: "/(0" not in e and "/(-0" not in e)
    cfg = parse_config(calculator_config("arithmetic"))
    with asyncio.Runner() as runner:
        co_cm = Coordinator.open(cfg)
        co = runner.run(co_cm.__aenter__())
        try:

            @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
            @given(st.lists(expressions, min_size=1, max_size=6, unique=True))
            def check(batch: list[str]) -> None:
                out = runner.run(co.run(evaluate(batch, critical=True)))
                for expression, result in out["results"].items():
                    assert result["agreement"] is True, (expression, out["events"])
                assert out["conflicts"] == []

            check()
        finally:
            runner.run(co_cm.__aexit__(None, None, None))


def hybridmcp(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [HYBRIDMCP, "run", "--json", "--db", ":memory:", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_the_cli_cross_validates_the_calculator(tmp_path: Path) -> None:
    """Through ``hybridmcp run`` (checkpointed): a number as text agrees with the number, and
    an integer beyond 64 bits (``2**70``), which a checkpoint cannot hold, is its decimal text
    on both sides and agrees (the run crashed with a traceback at its first checkpoint)."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(calculator_config("arithmetic")))
    task = tmp_path / "task.json"
    requests = [
        {"id": e, "skill": "math.eval", "args": {"expression": e}, "critical": True}
        for e in ("0.1+0.2", "10/2", "2**70")
    ]
    task.write_text(json.dumps({"requests": requests}))
    proc = hybridmcp("-c", str(config), str(task))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["status"] == "ok"
    assert [(r["agreement"], float(r["value"])) for r in data["results"]] == [
        (True, 0.1 + 0.2),
        (True, 5.0),
        (True, 2.0**70),
    ]
    assert data["results"][2]["value"] == str(2**70)


def test_the_built_in_calculator_past_64_bits_and_an_argument_past_them(tmp_path: Path) -> None:
    task = tmp_path / "task.json"
    task.write_text(
        json.dumps([{"id": "a", "skill": "math.calculate", "args": {"expression": "3**50"}}])
    )
    proc = hybridmcp(str(task))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["results"][0]["value"] == {"value": str(3**50)}
    big = {"data": {"id": 3**50}, "path": "$.id"}
    task.write_text(json.dumps([{"id": "a", "skill": "json.query", "args": big}]))
    proc = hybridmcp(str(task))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "args.data.id is an integer beyond 64 bits" in proc.stderr


# -- mcp-server-fetch: a page that is not there is the request's ----------------------------


@contextmanager
def local_site(root: Path) -> Iterator[str]:
    """An HTTP server of ``root`` on a free port, in a thread; ``/busy`` answers 503."""

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self) -> None:
            if self.path.startswith("/busy"):
                self.send_error(503, "Service Unavailable")
            else:
                super().do_GET()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


FETCH = "mcp:fetch/fetch"


def fetch_config() -> Any:
    args = ["--allow-private-ips", "--ignore-robots-txt"]
    return parse_config({"mcpServers": {"fetch": {"command": "mcp-server-fetch", "args": args}}})


def fetches(site: str, paths: list[str], **args: Any) -> Any:
    return parse_task(
        [{"id": p, "skill": "fetch.fetch", "args": {"url": f"{site}/{p}", **args}} for p in paths]
    )


async def test_pages_that_are_not_there_are_the_requests_not_the_fetch_servers(
    tmp_path: Path,
) -> None:
    """Eight pages that are not there (``status code 404``) fail as the requests' errors: no
    degradation, no circuit opened (five of them used to open it, and the next page that was
    there was refused for 30 s), nothing learned against the server. The next page is served,
    and a truncated one (``<error>Content truncated...</error>`` at its end) is an answer."""
    (tmp_path / "note.txt").write_text("hello, fetch\n" * 3)
    store = InMemoryStore()
    missing = [f"missing-{i}.json" for i in range(8)]
    with local_site(tmp_path) as site:
        async with asyncio.timeout(90), Coordinator.open(fetch_config(), store=store) as co:
            first = await co.run(fetches(site, missing))
            second = await co.run(fetches(site, ["note.txt"]))
            third = await co.run(fetches(site, ["note.txt"], max_length=5))
    for path in missing:
        result = first["results"][path]
        assert result["status"] == "error", result
        assert "status code 404" in result["error"], result
        assert [a["error_kind"] for a in result["attempts"]] == ["request"], result["attempts"]
    assert not events(first, "CIRCUIT_OPENED")
    assert not events(first, "EXTERNAL_DEGRADATION_DETECTED")
    page = second["results"]["note.txt"]
    assert page["status"] == "ok" and "hello, fetch" in page["value"], page
    assert second["metrics"]["circuits"][FETCH]["trips"] == 0
    cut = third["results"]["note.txt"]
    assert cut["status"] == "ok" and "Content truncated" in cut["value"], cut
    learned = {s.provider: s for s in await all_stats(store)}[FETCH]
    assert learned.calls == learned.successes == 2


async def test_answers_over_the_coordinators_size_limit_are_not_held_against_the_server(
    tmp_path: Path,
) -> None:
    """Six requests for a 1.2 MB page with a ``max_length`` that lets it all through: each
    answer is over ``tool_output.max_bytes`` (1 MB), a limit of the coordinator's own, so the
    attempt fails and says so, but the healthy server is neither degraded nor broken (five
    such answers opened its circuit), nor learned against; the page asked for in parts is
    served."""
    (tmp_path / "big.txt").write_text(("lorem ipsum dolor sit amet " * 5 + "\n") * 9000)
    store = InMemoryStore()
    with local_site(tmp_path) as site:
        async with asyncio.timeout(90), Coordinator.open(fetch_config(), store=store) as co:
            whole = [await co.run(fetches(site, ["big.txt"], max_length=999_999)) for _ in range(6)]
            part = await co.run(fetches(site, ["big.txt"], max_length=50_000))
    for out in whole:
        result = out["results"]["big.txt"]
        assert result["status"] == "error", result
        assert "exceeds the 1000000-byte limit" in result["error"], result
        assert not events(out, "EXTERNAL_DEGRADATION_DETECTED")
        assert not events(out, "CIRCUIT_OPENED")
    served = part["results"]["big.txt"]
    assert served["status"] == "ok" and "lorem ipsum" in served["value"], served
    learned = {s.provider: s for s in await all_stats(store)}[FETCH]
    assert learned.calls == learned.successes == 1


async def test_a_page_the_site_fails_to_serve_is_the_providers(tmp_path: Path) -> None:
    """A 503 from the site is the external side failing (its error names the status), not
    the request: the attempt is the provider's and its degradation is reported."""
    with local_site(tmp_path) as site:
        async with asyncio.timeout(60), Coordinator.open(fetch_config()) as co:
            out = await co.run(fetches(site, ["busy"]))
    result = out["results"]["busy"]
    assert "status code 503" in result["error"], result
    assert [a["error_kind"] for a in result["attempts"]] == ["provider"]
    assert events(out, "EXTERNAL_DEGRADATION_DETECTED")


# -- @modelcontextprotocol/server-sequential-thinking (TypeScript) --------------------------


def sequential_thinking_entry() -> str | None:
    prefix = os.environ.get("MCP_EVERYTHING_DIR")
    if not prefix:
        return None
    entry = Path(
        prefix, "node_modules/@modelcontextprotocol/server-sequential-thinking/dist/index.js"
    )
    return str(entry) if entry.exists() else None


requires_sequential_thinking = pytest.mark.skipif(
    shutil.which("node") is None or sequential_thinking_entry() is None,
    reason="needs node and @modelcontextprotocol/server-sequential-thinking "
    "(npm install --prefix DIR ... with MCP_EVERYTHING_DIR=DIR)",
)
THINK = "mcp:thinking/sequentialthinking"


def thinking_config() -> Any:
    node = shutil.which("node") or "node"
    return parse_config(
        {
            "mcpServers": {
                "thinking": {
                    "command": node,
                    "args": [str(sequential_thinking_entry())],
                    "env": {"PATH": os.environ["PATH"], "DISABLE_THOUGHT_LOGGING": "true"},
                    "timeout_ms": 10_000,
                }
            },
            "skills": {
                "think.step": {
                    "comparator": {
                        "type": "json_subset",
                        "fields": ["thoughtNumber", "totalThoughts", "nextThoughtNeeded"],
                    },
                    "providers": [
                        {"side": "internal", "function": "tests.judgement_helpers:thought_step"},
                        {"side": "external", "server": "thinking", "tool": "sequentialthinking"},
                    ],
                }
            },
        }
    )


def step(rid: str, number: Any, total: Any, more: bool = True) -> dict[str, Any]:
    args = {
        "thought": f"step {number} ✓ — ünïcode",
        "nextThoughtNeeded": more,
        "thoughtNumber": number,
        "totalThoughts": total,
    }
    return {"id": rid, "skill": "think.step", "args": args, "critical": True}


@requires_sequential_thinking
async def test_a_typescript_servers_structured_answer_agrees_with_a_twin_in_another_shape() -> None:
    """The server sends structured content beside its JSON text (2-space indented), with an
    output schema; the twin sends floats, other key order, numbers it was given as text. They
    agree on the compared fields, whatever the server's own session state. Invalid steps
    (``thoughtNumber`` 0 or ``"abc"``), which the TypeScript SDK reports as a tool error
    (``MCP error -32602: Input validation error``, ``isError``) rather than as JSON-RPC, are
    the requests' errors: not the server's, nothing reallocated or learned against it."""
    store = InMemoryStore()
    task = parse_task([step("one", 1, 3), step("two", "2", "3"), step("three", 3.0, 3, more=False)])
    bad = parse_task([step("zero", 0, 3), step("word", "abc", 3)])
    async with asyncio.timeout(60), Coordinator.open(thinking_config(), store=store) as co:
        out = await co.run(task)
        wrong = await co.run(bad)
    for rid in ("one", "two", "three"):
        result = out["results"][rid]
        assert result["status"] == "ok" and result["agreement"] is True, result
        assert [a["ok"] for a in result["attempts"]] == [True, True]
    assert out["conflicts"] == [] and out["quality"]["cross_validated"] == 3
    for rid in ("zero", "word"):
        kinds = {a["provider"]: a.get("error_kind") for a in wrong["results"][rid]["attempts"]}
        assert kinds[THINK] == "request", wrong["results"][rid]["attempts"]
    # the twin takes step 0, which the server refuses: served by the twin, the server's
    # rejection is no degradation (it was reported as one), the skipped cross-validation said
    zero = wrong["results"]["zero"]
    assert zero["status"] == "ok" and zero["served_by"]["side"] == "internal", zero
    assert [e["request_id"] for e in events(wrong, "CROSS_VALIDATION_SKIPPED")] == ["zero"]
    word = wrong["results"]["word"]  # both sides reject "abc"
    assert word["status"] == "error" and "Input validation error" in word["error"], word
    assert [e["request_id"] for e in events(wrong, "REQUEST_ERROR")] == ["word"]
    assert not events(wrong, "EXTERNAL_DEGRADATION_DETECTED")
    learned = {s.provider: s for s in await all_stats(store)}[THINK]
    assert learned.calls == learned.successes == 3


async def test_a_failed_call_that_was_sent_is_paid_in_the_cost_report() -> None:
    """The calculator at 0.5 a call, a budget of 1.0: a call the server fails (an unknown
    name) and one it answers both reached it and both are paid, as the gate's budget keeps
    them; the run's cost said 0.5 spent and 0.5 remaining (the failed call cost 0), and so
    contradicted the gate, which refuses the third call."""
    cfg = calculator_config("arithmetic")
    cfg["mcpServers"]["calc"]["cost_per_call"] = 0.5
    pinned = {"strategy": "external", "fallback": False}
    task = parse_task(
        {
            "requests": [
                {"id": "bad", "skill": "math.eval", "args": {"expression": "foo(1)"}, **pinned},
                {"id": "good", "skill": "math.eval", "args": {"expression": "1+1"}, **pinned},
            ],
            "constraints": {"budget": 1.0},
        }
    )
    async with asyncio.timeout(60), Coordinator.open(parse_config(cfg)) as co:
        out = await co.run(task)
        after = await co.run(parse_task({**task.model_dump(), "constraints": {"budget": 0.4}}))
    bad, good = out["results"]["bad"], out["results"]["good"]
    assert bad["status"] == "error" and good["status"] == "ok", (bad, good)
    assert [a["cost"] for a in bad["attempts"] + good["attempts"]] == [0.5, 0.5]
    assert out["cost"]["spent"] == 1.0 and out["cost"]["budget_remaining"] == 0.0
    assert out["cost"]["by_provider"][CALC] == {"side": "external", "calls": 2, "cost": 1.0}
    # never sent (the budget cannot pay): no cost
    assert all(a["cost"] == 0.0 for r in after["results"].values() for a in r["attempts"])
    assert after["cost"]["spent"] == 0.0


# -- mcp-server-git: a revision that is not there is the request's ----------------------------


def git_repo(path: Path) -> Path:
    """A repository with two commits, one message in other scripts."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True)

    path.mkdir()
    git("init", "-q")
    (path / "a.txt").write_text("one\n")
    git("add", "a.txt")
    git("commit", "-qm", "first")
    (path / "a.txt").write_text("one\ntwo\n")
    git("commit", "-qam", "second: ünïcode ✓ 日本")
    return path


async def test_revisions_that_do_not_exist_are_the_requests_not_the_git_servers(
    tmp_path: Path,
) -> None:
    """Six ``git_show`` of revisions and branches that are not there (``Ref 'v9' did not
    resolve to an object``) are the requests' errors: no circuit opened on the healthy git
    server (five opened it), nothing learned against it; ``HEAD`` is then shown."""
    repo = str(git_repo(tmp_path / "repo"))
    cfg = parse_config(
        {"mcpServers": {"git": {"command": "mcp-server-git", "args": ["--repository", repo]}}}
    )
    store = InMemoryStore()
    revisions = ["v9", "nope", "main~7", "deadbeef", "feature/x", "HEAD~5"]
    bad = [
        {"id": r, "skill": "git.git_show", "args": {"repo_path": repo, "revision": r}}
        for r in revisions
    ]
    head = [
        {"id": "head", "skill": "git.git_show", "args": {"repo_path": repo, "revision": "HEAD"}}
    ]
    async with asyncio.timeout(60), Coordinator.open(cfg, store=store) as co:
        first = await co.run(parse_task(bad))
        second = await co.run(parse_task(head))
    for revision in revisions:
        result = first["results"][revision]
        assert result["status"] == "error", result
        assert [a["error_kind"] for a in result["attempts"]] == ["request"], result["attempts"]
    assert not events(first, "CIRCUIT_OPENED")
    assert not events(first, "EXTERNAL_DEGRADATION_DETECTED")
    shown = second["results"]["head"]
    assert shown["status"] == "ok" and "second: ünïcode ✓ 日本" in shown["value"], shown
    learned = {s.provider: s for s in await all_stats(store)}["mcp:git/git_show"]
    assert learned.calls == learned.successes == 1


def git_subjects(repo: Path) -> list[str]:
    log = subprocess.run(
        ["git", "log", "--format=%s"], cwd=repo, capture_output=True, text=True, check=True
    )
    return log.stdout.splitlines()


async def test_git_on_a_directory_that_is_no_repository_is_the_requests_error(
    tmp_path: Path,
) -> None:
    """``mcp-server-git`` started without ``--repository`` takes any ``repo_path``; asked
    about a directory that is no repository, or a path that is not there, it answers with
    GitPython's exception, whose whole text is the path it was given (``/tmp/x``). That is
    the request's error: its input named nothing the tool could use; the server is not
    degraded, no circuit opens (five such calls would), nothing is learned against it; the
    repository is then read, and a commit made in it, once."""
    repo = git_repo(tmp_path / "repo")
    plain = tmp_path / "plain"
    plain.mkdir()
    cfg = parse_config({"mcpServers": {"git": {"command": "mcp-server-git"}}})
    store = InMemoryStore()
    wrong = [str(plain), str(tmp_path / "missing"), str(plain / "sub")]
    bad = [
        {"id": f"{tool}-{i}", "skill": f"git.{tool}", "args": {"repo_path": path}}
        for i, path in enumerate(wrong)
        for tool in ("git_status", "git_log")
    ]
    (repo / "b.txt").write_text("new\n")
    good = [
        {"id": "status", "skill": "git.git_status", "args": {"repo_path": str(repo)}},
        {"id": "add", "skill": "git.git_add", "args": {"repo_path": str(repo), "files": ["b.txt"]}},
    ]
    commit = {"repo_path": str(repo), "message": "third"}
    async with asyncio.timeout(60), Coordinator.open(cfg, store=store) as co:
        first = await co.run(parse_task(bad))
        second = await co.run(parse_task(good))
        third = await co.run(parse_task([{"id": "c", "skill": "git.git_commit", "args": commit}]))
    for request in bad:
        result = first["results"][request["id"]]
        assert result["status"] == "error", result
        assert request["args"]["repo_path"] in result["error"], result
        assert [a["error_kind"] for a in result["attempts"]] == ["request"], result["attempts"]
    assert not events(first, "CIRCUIT_OPENED")
    assert not events(first, "EXTERNAL_DEGRADATION_DETECTED")
    assert "b.txt" in second["results"]["status"]["value"], second["results"]["status"]
    assert third["results"]["c"]["status"] == "ok", third["results"]["c"]
    assert git_subjects(repo) == ["third", "second: ünïcode ✓ 日本", "first"]  # made once
    learned = {s.provider: s for s in await all_stats(store)}
    assert learned["mcp:git/git_status"].calls == learned["mcp:git/git_status"].successes == 1
    assert learned["mcp:git/git_log"].calls == 0


# -- a tool error told only in structured content --------------------------------------------


async def test_a_tool_error_told_in_structured_content_is_read_and_blamed_by_what_it_says() -> None:
    """``isError`` with ``{"error": ...}`` as structured content and no text part: the error
    says what the server said (it read ``(no message)``) and is blamed by it, an invalid input
    the request's, an unreachable upstream the server's."""
    from tests.integration.test_answer_shapes import shapes_stdio

    cfg = parse_config({"mcpServers": {"shapes": shapes_stdio()}})
    task = parse_task(
        [
            {"id": kind, "skill": "shapes.structured_error", "args": {"kind": kind}}
            for kind in ("input", "server")
        ]
    )
    async with asyncio.timeout(60), Coordinator.open(cfg) as co:
        out = await co.run(task)
    said = out["results"]["input"]
    assert "Invalid timezone: Mars/Base" in said["error"], said
    assert [a["error_kind"] for a in said["attempts"]] == ["request"]
    server = out["results"]["server"]
    assert "the upstream store is unreachable" in server["error"], server
    assert [a["error_kind"] for a in server["attempts"]] == ["provider"]


# -- mcp-hashlib: a standalone FastMCP (4.x) server on the mcp 2.x SDK ------------------------


def hashlib_command() -> str | None:
    """``mcp-hashlib`` from its own virtual environment (``$HYBRIDMCP_PY_SERVERS``): it is
    built on the standalone ``fastmcp`` and the mcp 2.x SDK, which hybridmcp's own environment
    (mcp 1.x) cannot hold beside itself."""
    prefix = os.environ.get("HYBRIDMCP_PY_SERVERS")
    found = Path(prefix, "bin", "mcp-hashlib") if prefix else None
    return str(found) if found is not None and found.exists() else None


requires_hashlib = pytest.mark.skipif(
    hashlib_command() is None,
    reason="needs mcp-hashlib in a virtual environment of its own: python -m venv DIR && "
    "DIR/bin/pip install mcp-hashlib, with HYBRIDMCP_PY_SERVERS=DIR",
)


def hashlib_config() -> Any:
    def skill(tool: str, function: str) -> dict[str, Any]:
        return {
            "effect": "read",  # the server's tools carry no annotations
            "providers": [
                {"side": "internal", "function": f"tests.judgement_helpers:{function}"},
                {"side": "external", "server": "hash", "tool": tool},
            ],
        }

    return parse_config(
        {
            "mcpServers": {
                "hash": {
                    "command": hashlib_command(),
                    "timeout_ms": 10_000,
                    "clearance": "restricted",
                }
            },
            "skills": {
                "hash.sha256": skill("hash_sha256", "sha256_hex"),
                "hash.blake2b": skill("hash_blake2b", "blake2b_hex"),
            },
        }
    )


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


@requires_hashlib
def test_a_fastmcp_4_server_agrees_with_its_twin_on_generated_texts() -> None:
    """Hypothesis over texts (any Unicode, lone surrogates included), each hashed by the
    server (a ``-> str`` tool: ``{"result": "<hex>"}`` under the ``x-fastmcp-wrap-result``
    schema marker) and by the internal twin, critical: a text both can hash agrees. One
    neither can (a lone surrogate is no UTF-8) is refused with the task (exit 2 in the CLI);
    given as graph input, as the LangGraph server's API takes it, it is the request's error,
    found when the input is read (as a task file's), and is never sent (the MCP client
    failed writing it, broke the session, and it counted against the server until its
    circuit opened). Then a digest size both refuse
    (``must be between 1 and 64``) is the request's too; nothing was held against the server."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from hybridmcp.runtime import Context

    store = InMemoryStore()
    with asyncio.Runner() as runner:
        co_cm = Coordinator.open(hashlib_config(), store=store)
        co = runner.run(co_cm.__aenter__())
        try:
            any_text = st.text(st.characters(exclude_categories=()), max_size=40)  # with Cs
            lone = st.sampled_from(["\ud800", "a\udfffb"])  # surrogates, for sure

            @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
            @given(st.lists(any_text | lone, min_size=1, max_size=5, unique=True))
            def check(texts: list[str]) -> None:
                requests = [
                    {"id": f"t{i}", "skill": "hash.sha256", "args": {"data": t}, "critical": True}
                    for i, t in enumerate(texts)
                ]
                if any(_has_lone_surrogate(t) for t in texts):
                    with pytest.raises(TaskError, match="lone surrogate"):
                        parse_task(requests)
                    out = runner.run(  # the graph's own input: the server API's path
                        co.graph.ainvoke(
                            {"requests": requests},
                            co.run_config(),
                            context=Context(resources=co.resources),
                        )
                    )
                else:
                    out = runner.run(co.run(parse_task(requests)))
                for i, text in enumerate(texts):
                    result = out["results"][f"t{i}"]
                    if _has_lone_surrogate(text):  # the request's error, found before a call
                        assert result["status"] == "error", result
                        assert "lone surrogate" in str(result["error"]), result
                        assert not any(a["sent"] for a in result["attempts"]), result
                        continue
                    assert result["agreement"] is True, (text, result["attempts"], out["events"])
                assert not events(out, "EXTERNAL_DEGRADATION_DETECTED")

            check()
            args = {"data": "x", "digest_size": 100}
            out = runner.run(
                co.run(parse_task([{"id": "big", "skill": "hash.blake2b", "args": args}]))
            )
        finally:
            runner.run(co_cm.__aexit__(None, None, None))
        stats = runner.run(all_stats(store))
    result = out["results"]["big"]
    assert result["status"] == "error" and "must be between 1 and 64" in result["error"], result
    assert events(out, "REQUEST_ERROR") and not events(out, "EXTERNAL_DEGRADATION_DETECTED")
    learned = {s.provider: s for s in stats}["mcp:hash/hash_sha256"]
    assert learned.successes == learned.calls > 0


async def test_calls_the_run_deadline_left_queued_or_cut_say_nothing_of_their_provider() -> None:
    """300 hybrid requests under a 60 ms run deadline: most of the calculator's calls are still
    queued for its 8 session slots when the deadline comes, those in flight are cut, and so
    are internal calls still running. None of that is a provider's doing: no degradation is
    reported of a call never sent or cut by the deadline (each was ``*_DEGRADATION_DETECTED``,
    ``detected_by: error``), and nothing of it is learned as a failure."""
    store = InMemoryStore()
    cfg = parse_config(calculator_config("arithmetic"))
    requests = [
        {
            "id": f"r{i}",
            "skill": "math.eval",
            "args": {"expression": f"{i}+1"},
            "strategy": "hybrid",
        }
        for i in range(300)
    ]
    async with asyncio.timeout(120), Coordinator.open(cfg, store=store) as co:
        await co.run(evaluate(["1+1"], strategy="external"))  # the session is up
        out = await co.run(parse_task({"requests": requests, "constraints": {"deadline_ms": 60}}))
    attempts = {(r["id"], a["provider"]): a for r in out["results"].values() for a in r["attempts"]}
    cut = [a for a in attempts.values() if a.get("error_kind") == "queued" or a.get("censored")]
    assert cut  # the case at hand: calls the deadline left queued or cut
    for event in out["events"]:
        if event["code"].endswith("_DEGRADATION_DETECTED"):
            a = attempts[event["request_id"], event["degradation_metrics"]["provider"]]
            assert a["sent"] and not a.get("censored"), (event, a)
    for learned in await all_stats(store):
        assert learned.failures == 0, learned

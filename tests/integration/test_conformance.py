"""The official MCP conformance suite's client scenarios, run against hybridmcp.

``@modelcontextprotocol/conformance`` starts each scenario's test server (and authorization
server) and runs ``tests/conformance/client.py``, which drives hybridmcp's command line only:
``auth login`` and ``run`` on a generated configuration. A scenario passes when every check the
suite makes of the client passes. The expected outcome of each scenario is recorded in
``tests/conformance/expected.yaml``; a regression, or a listed failure that now passes, fails
this test.

Needs Node 22+ and the suite: ``npm install --prefix DIR node@22
@modelcontextprotocol/conformance@0.1.16`` with ``MCP_CONFORMANCE_DIR=DIR`` (``.ci/run`` does).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "tests" / "conformance" / "client.py"
EXPECTED = yaml.safe_load((ROOT / "tests" / "conformance" / "expected.yaml").read_text())
SCENARIOS = [*EXPECTED["pass"], *EXPECTED["fail"]]
SUITE_DIR = os.environ.get("MCP_CONFORMANCE_DIR")
CONCURRENCY = 2  # each scenario runs two or three Python processes: the machine has 2 cores

pytestmark = pytest.mark.skipif(
    not SUITE_DIR or not (Path(SUITE_DIR) / "node_modules" / ".bin" / "conformance").exists(),
    reason="needs MCP_CONFORMANCE_DIR (npm install --prefix DIR node@22 "
    "@modelcontextprotocol/conformance@0.1.16)",
)


def run_scenario(scenario: str, out: Path, mode: str = "") -> dict[str, Any]:
    """One scenario through the suite's runner; its checks and the client's output."""
    assert SUITE_DIR is not None
    bin_dir = Path(SUITE_DIR) / "node_modules" / ".bin"
    env = dict(os.environ, HYBRIDMCP_CONFORMANCE_MODE=mode)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"  # node 22 first
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    where = out / scenario.replace("/", "_")
    started = time.monotonic()
    try:
        done = subprocess.run(
            [
                str(bin_dir / "conformance"),
                "client",
                "--command",
                f"{sys.executable} {CLIENT}",
                "--scenario",
                scenario,
                "--timeout",
                "240000",
                "-o",
                str(where),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        log, status = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as err:
        log, status = f"the suite did not finish in time: {err}", -1
    checks: list[dict[str, Any]] = []
    client_stderr = client_stdout = ""
    for found in where.rglob("checks.json"):
        checks = json.loads(found.read_text())
        stderr, stdout = found.with_name("stderr.txt"), found.with_name("stdout.txt")
        client_stderr = stderr.read_text() if stderr.exists() else ""
        client_stdout = stdout.read_text() if stdout.exists() else ""
    failed = [c for c in checks if c.get("status") == "FAILURE"]
    return {
        "passed": status == 0 and not failed,
        "seconds": time.monotonic() - started,
        "failed_checks": [f"{c['id']}: {c.get('description')}" for c in failed],
        "log": log[-3000:],
        "client_stderr": client_stderr[-3000:],
        "client_stdout": client_stdout,
    }


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("conformance")
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        results = dict(
            zip(SCENARIOS, pool.map(lambda s: run_scenario(s, out), SCENARIOS), strict=True)
        )
    table = "\n".join(
        f"{name:45} {'pass' if r['passed'] else 'FAIL'} {r['seconds']:5.1f} s"
        for name, r in results.items()
    )
    print(f"\nMCP conformance ({EXPECTED['version']}), client scenarios:\n{table}")
    return results


def test_every_client_scenario_is_listed() -> None:
    """The expected list names every client scenario the suite has (a new one is noticed)."""
    assert SUITE_DIR is not None
    bin_dir = Path(SUITE_DIR) / "node_modules" / ".bin"
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    listed = subprocess.run(
        [str(bin_dir / "conformance"), "list"], env=env, capture_output=True, text=True, timeout=60
    ).stdout
    client_part = listed.split("Client scenarios", 1)[1]
    names = {
        line.strip()[2:].split(" [")[0]
        for line in client_part.splitlines()
        if line.strip().startswith("- ")
    }
    assert names == set(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario(scenario: str, outcomes: dict[str, dict[str, Any]]) -> None:
    result = outcomes[scenario]
    if scenario in EXPECTED["pass"]:
        assert result["passed"], (
            f"{scenario} regressed: {result['failed_checks']}\n"
            f"client stderr:\n{result['client_stderr']}\nsuite:\n{result['log']}"
        )
    else:
        assert not result["passed"], (
            f"{scenario} now passes: move it to `pass` in tests/conformance/expected.yaml "
            "and update docs/conformance.md"
        )


@pytest.mark.parametrize(
    ("mode", "told"),
    [
        ("no-login", "MCP server 'conf' needs authentication: run `hybridmcp auth login conf`"),
        (
            "no-auth-block",
            "MCP server 'conf' needs authentication (HTTP 401): give its entry an `auth:` block",
        ),
    ],
)
def test_a_server_that_needs_authentication_says_which_command_to_run(
    mode: str, told: str, tmp_path: Path
) -> None:
    """A run against an OAuth-protected server without a login (or without an ``auth:``
    block) stops at once with one line naming the command, never 'unknown skill'."""
    result = run_scenario("auth/metadata-default", tmp_path, mode)
    stderr = " ".join(result["client_stderr"].split())
    assert not result["passed"]
    assert f"warning: {told}" in stderr
    assert f"skill 'conf.test-tool': {told}" in stderr
    assert "(exit 2 after" in stderr
    assert "Traceback" not in stderr and "unknown skill" not in stderr


def test_a_call_that_needs_more_scope_says_so_when_a_run_may_not_ask(tmp_path: Path) -> None:
    """Logged in, but a call asks for more scope (403 insufficient_scope) and the run may not
    open the browser: the call fails naming the scope and the command, not as a crash."""
    result = run_scenario("auth/scope-step-up", tmp_path, "no-step-up")
    assert not result["passed"]
    stderr = result["client_stderr"]
    assert "$ hybridmcp auth login conf" in stderr and "(exit 0 after" in stderr
    out = json.loads(result["client_stdout"].strip().splitlines()[-1])
    [call] = out["results"]
    assert call["status"] == "error"
    assert call["error"].endswith(
        "MCP server 'conf' needs authentication (for scope 'mcp:basic mcp:write'): "
        "run `hybridmcp auth login conf`"
    )

"""``@playwright/mcp`` (npm), Microsoft's browser automation server, driving the machine's
headless Chromium on pages a local HTTP server of this test serves. Nobody shaped the code
around it: its input schemas come from zod (every property with a default listed as required),
a screenshot answers text and a PNG image, its tools annotate themselves (``browser_click``
``destructiveHint``, ``browser_snapshot`` ``readOnlyHint``), and each call acts on one live
browser page, so a click made twice is a second press of the button.

The presses are counted where they land: the POST requests the page's buttons send to the
test's HTTP server.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hybridmcp import Coordinator, parse_task
from hybridmcp.config import parse_config
from hybridmcp.testing.harness import child_processes

pytestmark = pytest.mark.integration
OUTER_S = 180
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def playwright_entry() -> str | None:
    prefix = os.environ.get("MCP_EVERYTHING_DIR")
    entry = Path(prefix or "/nonexistent", "node_modules/@playwright/mcp/cli.js")
    return str(entry) if entry.exists() else None


requires_playwright = pytest.mark.skipif(
    shutil.which("node") is None or playwright_entry() is None or CHROMIUM is None,
    reason="needs node, chromium and @playwright/mcp (npm install --prefix DIR @playwright/mcp "
    "with MCP_EVERYTHING_DIR=DIR; .ci/run does)",
)

PAGE = b"""<!doctype html><html><head><title>Counter</title></head><body>
<h1>Counter</h1>
<button onclick="fetch('/press', {method: 'POST'})">Press</button>
<button onclick="fetch('/slow-press', {method: 'POST'})">Slow press</button>
</body></html>"""
SLOW_S = 5.0


class Site:
    """The pages, served from a thread; every request recorded as ``(method, path)``."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, str]] = []
        self.slow_answered = threading.Event()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.hits.append(("GET", self.path))
                if self.path == "/visit":  # a page that takes its time
                    time.sleep(SLOW_S)
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(PAGE)

            def do_POST(self) -> None:
                site.hits.append(("POST", self.path))
                if self.path == "/slow-press":
                    time.sleep(SLOW_S)
                self.send_response(204)
                self.end_headers()
                if self.path == "/slow-press":
                    site.slow_answered.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"

    def presses(self, path: str = "/press") -> int:
        return self.hits.count(("POST", path))


@pytest.fixture
def site() -> Iterator[Site]:
    site = Site()
    thread = threading.Thread(target=site.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        site.server.shutdown()
        site.server.server_close()


def browser(tmp_path: Path, name: str, **server: Any) -> dict[str, Any]:
    """A ``@playwright/mcp`` server with a headless Chromium of its own (no sandbox: tests
    run as root), writing its files under ``tmp_path``."""
    home = tmp_path / name
    home.mkdir()
    entry = playwright_entry()
    assert entry is not None and CHROMIUM is not None
    return {
        "command": shutil.which("node") or "node",
        "args": [
            entry,
            "--headless",
            "--no-sandbox",
            "--isolated",
            "--executable-path",
            CHROMIUM,
            "--output-dir",
            str(home),
        ],
        "cwd": str(home),
        "env": {"PATH": os.environ["PATH"], "HOME": str(home)},
        "timeout_ms": 60_000,
        "startup_timeout_ms": 60_000,
        # a local process on the test's own pages: cleared for anything they hold
        "clearance": "restricted",
        **server,
    }


def ref_of(snapshot: str, button: str) -> str:
    """The snapshot's reference of a button, as an agent reads it."""
    found = re.search(rf'button "{re.escape(button)}" \[ref=(\w+)\]', snapshot)
    assert found, snapshot
    return found.group(1)


async def run(co: Coordinator, *requests: dict[str, Any]) -> dict[str, Any]:
    return await co.run(parse_task(list(requests)))


def ok_value(out: dict[str, Any], rid: str) -> Any:
    result = out["results"][rid]
    assert result["status"] == "ok", result
    return result["value"]


@requires_playwright
async def test_a_page_is_read_and_photographed_with_the_servers_defaults(tmp_path, site):
    """Navigate, read the page's snapshot, and take a screenshot with no arguments: its schema
    lists ``scale`` as required though it gives it a default (zod's JSON Schema), and the
    server answers without it; the call was refused as an invalid task before it was sent.
    The answer keeps its text and its PNG image whole. A navigation to an address Chromium
    refuses is the request's error."""
    cfg = parse_config({"mcpServers": {"web": browser(tmp_path, "web")}})
    async with asyncio.timeout(OUTER_S), Coordinator.open(cfg) as co:
        effects = {
            tool: co.resources.registry.get(f"web.{tool}").effect
            for tool in ("browser_click", "browser_navigate", "browser_snapshot")
        }
        await run(co, {"id": "go", "skill": "web.browser_navigate", "args": {"url": site.url}})
        snapshot = ok_value(
            await run(co, {"id": "look", "skill": "web.browser_snapshot", "args": {}}), "look"
        )
        shot = await run(co, {"id": "shot", "skill": "web.browser_take_screenshot", "args": {}})
        port_1 = {"url": "http://127.0.0.1:1/"}  # a port Chromium refuses to open
        wrong = await run(co, {"id": "wrong", "skill": "web.browser_navigate", "args": port_1})
    assert effects == {
        "browser_click": "write",
        "browser_navigate": "write",
        "browser_snapshot": "read",
    }
    assert 'heading "Counter"' in snapshot and ref_of(snapshot, "Press")
    text, image = ok_value(shot, "shot")
    assert "Screenshot" in text
    assert image["type"] == "image" and image["mime_type"] == "image/png", image.keys()
    assert base64.b64decode(image["data"]).startswith(b"\x89PNG\r\n\x1a\n")
    assert site.presses() == 0
    # the address is the request's fault (net::ERR_UNSAFE_PORT), not the browser's: it was
    # reported degraded and learned as a failure. A navigation is a write, so its error
    # answer leaves its outcome unknown (the tool ran: it may have acted before failing)
    result = wrong["results"]["wrong"]
    assert result["status"] == "error", result
    assert result["error"].startswith("outcome_unknown") and "ERR_UNSAFE_PORT" in result["error"]
    assert "error naming the request (it may still have written)" in result["error"]
    (attempt,) = result["attempts"]
    assert attempt["error_kind"] == "request"
    codes = [e["code"] for e in wrong["events"]]
    assert "REQUEST_ERROR" in codes and "WRITE_NOT_REPEATED" in codes, codes
    assert "EXTERNAL_DEGRADATION_DETECTED" not in codes, codes


@requires_playwright
async def test_a_wait_that_runs_out_in_the_tools_own_time_is_the_requests_error(tmp_path, site):
    """``browser_wait_for`` a text the page never shows: the tool answers, after its own 5 s,
    that the wait timed out. That is the request's error (the condition it named did not
    come), not the browser's degradation: no ``EXTERNAL_DEGRADATION_DETECTED``, nothing held
    against the server by its circuit breaker, and the next wait on it answers."""
    cfg = parse_config({"mcpServers": {"web": browser(tmp_path, "web")}})
    async with asyncio.timeout(OUTER_S), Coordinator.open(cfg) as co:
        await run(co, {"id": "go", "skill": "web.browser_navigate", "args": {"url": site.url}})
        never = {"text": "Never on this page"}
        out = await run(co, {"id": "wait", "skill": "web.browser_wait_for", "args": never})
        breaker = co.resources.gate.breaker.snapshot(co.resources.clock())
        seen = await run(co, {"id": "seen", "skill": "web.browser_wait_for",
                              "args": {"text": "Counter"}})  # fmt: skip
    result = out["results"]["wait"]
    assert result["status"] == "error" and "request error" in result["error"], result
    assert "waiting for" in result["error"]  # the tool's own words: what it waited for
    (attempt,) = result["attempts"]
    assert attempt["error_kind"] == "request"
    codes = [e["code"] for e in out["events"]]
    assert "REQUEST_ERROR" in codes and "EXTERNAL_DEGRADATION_DETECTED" not in codes, codes
    waits = breaker.get("mcp:web/browser_wait_for", {})
    assert not waits.get("failure_rate") and waits.get("state", "closed") == "closed", waits
    assert seen["results"]["seen"]["status"] == "ok"


def press_config(tmp_path: Path, **resilience: Any) -> Any:
    """Two browsers, and ``ui.press``: a click on either. For a read, the second browser is
    where a failed or slow call would move, or a hedge would start. ``ui.press_briefly`` is
    the same click given 1.5 s to answer."""
    clicks = [
        {"side": "external", "server": web, "tool": "browser_click"} for web in ("web", "web2")
    ]
    return parse_config(
        {
            "mcpServers": {
                "web": browser(tmp_path, "web"),
                "web2": browser(tmp_path, "web2"),
            },
            "skills": {
                "ui.press": {"description": "Press a button.", "providers": clicks},
                "ui.press_briefly": {
                    "description": "Press a button, briefly.",
                    "providers": [c | {"timeout_ms": 1_500} for c in clicks],
                },
            },
            "resilience": resilience,
        }
    )


@requires_playwright
async def test_a_click_is_made_once_whether_critical_hedged_or_cut_by_its_deadline(tmp_path, site):
    """``browser_click`` says it is destructive: a write. Critical, hybrid, with hedging at
    its most eager, and when the press it makes outlasts the call's deadline with another
    browser to move to, each click presses its button once, as the page's server counts."""
    cfg = press_config(
        tmp_path,
        hedging={"min_observations": 1, "budget_ratio": 1.0, "budget_burst": 100},
        degradation={"min_observations": 1},
    )
    async with asyncio.timeout(OUTER_S), Coordinator.open(cfg) as co:
        for web in ("web", "web2"):
            go = {"id": web, "skill": f"{web}.browser_navigate", "args": {"url": site.url}}
            ok_value(await run(co, go), web)
        look = {"id": "look", "skill": "web.browser_snapshot", "args": {}}
        snapshot = ok_value(await run(co, look), "look")
        press = {"element": "Press button", "target": ref_of(snapshot, "Press")}
        outs = []
        for i, extra in enumerate([{}, {"critical": True}, {"strategy": "hybrid"}, {}, {}]):
            outs.append(await run(co, {"id": f"p{i}", "skill": "ui.press", "args": press, **extra}))
        slow = {"element": "Slow press button", "target": ref_of(snapshot, "Slow press")}
        cut = await run(co, {"id": "slow", "skill": "ui.press_briefly", "args": slow})
        # the run ended at the click's deadline; the page's server answers its press later
        assert await asyncio.to_thread(site.slow_answered.wait, SLOW_S + 30)
    for i, out in enumerate(outs):
        result = out["results"][f"p{i}"]
        assert result["status"] == "ok", result
        assert len(result["attempts"]) == 1, result["attempts"]
        assert not [e for e in out["events"] if e["code"] == "HEDGE_STARTED"]
    skipped = [e["reason"] for e in outs[1]["events"] if e["code"] == "CROSS_VALIDATION_SKIPPED"]
    assert skipped == ["write effect"]
    assert site.presses() == len(outs)
    result = cut["results"]["slow"]
    assert result["status"] == "error" and result["error"].startswith("outcome_unknown"), (
        json.dumps(result["attempts"]),
        site.hits,
    )
    assert len(result["attempts"]) == 1 and result["attempts"][0]["sent"] is True, result
    assert [e["outcome"] for e in cut["events"] if e["code"] == "WRITE_NOT_REPEATED"] == ["unknown"]
    assert site.presses("/slow-press") == 1


@requires_playwright
def test_a_navigation_in_flight_when_the_run_is_killed_is_not_made_again_on_resume(tmp_path, site):
    """``browser_navigate`` is a write too: the CLI (``run --thread --db``) is SIGKILLed while
    a slow page loads, and run again on the thread. The resumed run starts a new browser; it
    does not load the page again (the page's server counts one visit): the navigation's
    outcome is unknown. The snapshot beside it, a read, is made again."""
    from tests.integration.test_durable import alive, cli, cli_env, wait_for

    config, task = tmp_path / "c.json", tmp_path / "t.json"
    config.write_text(json.dumps({"mcpServers": {"web": browser(tmp_path, "web")}}))
    visit = {"id": "go", "skill": "web.browser_navigate", "args": {"url": f"{site.url}visit"}}
    look = {"id": "look", "skill": "web.browser_snapshot", "args": {}}
    task.write_text(json.dumps({"requests": [visit, look]}))
    args = ["run", str(task), "--config", str(config), "--db", str(tmp_path / "runs.db")]
    args += ["--json", "--thread", "t-1"]
    first = subprocess.Popen(
        [sys.executable, "-m", "hybridmcp.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )
    try:
        wait_for(lambda: ("GET", "/visit") in site.hits or first.poll() is not None, 120, "visit")
        assert first.poll() is None, first.communicate()
        servers = child_processes(first.pid)
        first.kill()
        first.wait(timeout=10)
        wait_for(lambda: not any(alive(p) for p in servers), 30, "the server to exit")
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()
    done = cli(*args, timeout=180)
    assert done.returncode in (1, 3), done.stderr  # failed or partial: the visit is unknown
    results = {r["id"]: r for r in json.loads(done.stdout)["results"]}
    assert results["go"]["status"] == "error", results["go"]
    assert results["go"]["error"].startswith("outcome_unknown"), results["go"]
    assert results["look"]["status"] == "ok", results["look"]
    assert site.hits.count(("GET", "/visit")) == 1, site.hits

"""The HTML report, rendered in a real browser (headless Chromium), and the CLI for big runs.

Runs go through the ``hybridmcp`` command, against real MCP servers (the project's fault server
over stdio): a *wrong* twin of ``math.calculate`` (so critical requests conflict), a *flaky*
server whose ``word_count`` turns slow after a warm-up run (so requests are hedged and the
losers cancelled) and whose ``get_current_time`` fails its first calls (so work is reallocated
and a circuit opens). The browser loads each report from a file (nothing else is reachable),
runs its script, and the test reads the DOM Chromium dumps and the screenshot it takes.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from hybridmcp.report.source import from_database
from hybridmcp.testing.harness import faultserver_stdio

pytestmark = pytest.mark.integration

HYBRIDMCP = str(Path(sys.executable).parent / "hybridmcp")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SMALL_CONFLICTS = 3
BIG = 2000


def config(word_count_ms: float) -> dict[str, Any]:
    return {
        "resilience": {
            "breaker": {"consecutive_failures": 2, "minimum_calls": 2},
            "hedging": {"min_observations": 1, "budget_ratio": 1.0},
        },
        "mcpServers": {
            "wrong": faultserver_stdio({"calculate": {"wrong_answer": True}}),
            "flaky": faultserver_stdio(
                {
                    "word_count": {"latency_ms": word_count_ms},
                    "get_current_time": {"fail_first": 3},
                }
            ),
        },
        "skills": {
            "math.calculate": {
                "providers": [{"side": "external", "server": "wrong", "tool": "calculate"}]
            },
            "text.stats": {
                "providers": [
                    {
                        "side": "external",
                        "server": "flaky",
                        "tool": "word_count",
                        "timeout_ms": 10_000,
                        "cost_per_call": 0,
                    }
                ]
            },
            "time.now": {
                "providers": [{"side": "external", "server": "flaky", "tool": "get_current_time"}]
            },
        },
    }


def stats(i: int) -> dict[str, Any]:
    text = f"Request {i} counts these words. Then a second sentence."
    return {
        "id": f"stats-ext-{i}",
        "skill": "text.stats",
        "args": {"text": text},
        "strategy": "external",
    }


def task(n: int) -> dict[str, Any]:
    """Conflicts, hedges, failures first; then cheap internal work up to ``n`` requests."""
    requests: list[dict[str, Any]] = []
    for i in range(SMALL_CONFLICTS):
        requests.append(
            {
                "id": f"calc-critical-{i}",
                "skill": "math.calculate",
                "args": {"expression": f"{i} * 7 + 1"},
                "critical": True,
            }
        )
    requests += [stats(i) for i in range(2)]
    for i in range(3):
        requests.append(
            {
                "id": f"now-ext-{i}",
                "skill": "time.now",
                "args": {"timezone": "UTC"},
                "strategy": "external",
            }
        )
    i = 0
    while len(requests) < n:
        if i % 3 == 0:
            expression = f"({i} + 3) ** 2 / 7"
            requests.append(
                {
                    "id": f"calc-{i}",
                    "skill": "math.calculate",
                    "args": {"expression": expression},
                    "strategy": "internal",
                }
            )
        elif i % 3 == 1:
            requests.append(
                {
                    "id": f"json-{i}",
                    "skill": "json.query",
                    "args": {"data": {"a": [i, i + 1]}, "path": "$.a[1]"},
                }
            )
        else:
            requests.append(
                {
                    "id": f"stats-{i}",
                    "skill": "text.stats",
                    "args": {"text": f"Number {i} is here. And again."},
                    "strategy": "internal",
                }
            )
        i += 1
    return {"requests": requests}


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "COLUMNS": "120"}


def cli(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HYBRIDMCP, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env(),
        check=False,
    )


@dataclass
class Runs:
    folder: Path
    db: Path
    small: subprocess.CompletedProcess[str]
    big: subprocess.CompletedProcess[str]
    small_state: dict[str, Any]
    big_state: dict[str, Any]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    folder = tmp_path_factory.mktemp("report")
    db = folder / "runs.db"
    (folder / "warm.json").write_text(json.dumps(config(word_count_ms=2)))
    (folder / "slow.json").write_text(json.dumps(config(word_count_ms=1500)))
    (folder / "warm-task.json").write_text(json.dumps({"requests": [stats(i) for i in range(3)]}))
    (folder / "small.json").write_text(json.dumps(task(14)))
    (folder / "big.json").write_text(json.dumps(task(BIG)))
    common = ["--db", str(db), "--server-log", str(folder / "servers.log")]
    warm = cli("run", "warm-task.json", "-c", "warm.json", *common, cwd=folder)
    assert warm.returncode == 0, warm.stderr  # the flaky server's word_count is learned fast
    small = cli(
        "run",
        "small.json",
        "-c",
        "slow.json",
        "--thread",
        "small",
        "--report",
        "small.html",
        *common,
        cwd=folder,
    )
    big = cli(
        "run",
        "big.json",
        "-c",
        "slow.json",
        "--thread",
        "big",
        "--report",
        "big.html",
        *common,
        cwd=folder,
    )
    small_state, _ = asyncio.run(from_database(str(db), "small"))
    big_state, _ = asyncio.run(from_database(str(db), "big"))
    return Runs(folder, db, small, big, small_state, big_state)


# -- reading what the browser shows -----------------------------------------------------------


class Dom(HTMLParser):
    """The elements of a dumped DOM: tag, attributes and the text inside, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[dict[str, Any]] = []
        self.stack: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = {"tag": tag, "attrs": dict(attrs), "text": "", "parents": list(self.stack)}
        self.elements.append(element)
        if tag not in ("br", "img", "input", "meta", "link", "rect", "line", "option"):
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        if all(e["tag"] != tag for e in self.stack):
            return
        while self.stack:
            if self.stack.pop()["tag"] == tag:
                break

    def handle_data(self, data: str) -> None:
        for element in self.stack:
            element["text"] += data

    def find(self, tag: str | None = None, **attrs: str) -> list[dict[str, Any]]:
        def matches(e: dict[str, Any]) -> bool:
            if tag is not None and e["tag"] != tag:
                return False
            for key, value in attrs.items():
                name = key.replace("_", "-").rstrip("-")
                got = e["attrs"].get("class" if name == "class" else name)
                if got is None:
                    return False
                if name == "class" and value not in got.split():
                    return False
                if name != "class" and got != value:
                    return False
            return True

        return [e for e in self.elements if matches(e)]

    def inside(self, element_id: str, tag: str | None = None, **attrs: str) -> list[dict[str, Any]]:
        return [
            e
            for e in self.find(tag, **attrs)
            if any(p["attrs"].get("id") == element_id for p in e["parents"])
        ]


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM, "chromium is not installed (.ci/run installs it: apt-get install chromium)"
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-extensions",
            "--virtual-time-budget=5000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def dump_dom(page: Path) -> Dom:
    proc = chromium("--dump-dom", page.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = Dom()
    dom.feed(proc.stdout)
    return dom


def screenshot(page: Path, png: Path, size: str = "1400,1800") -> tuple[int, int]:
    proc = chromium(f"--screenshot={png}", f"--window-size={size}", page.as_uri())
    assert proc.returncode == 0 and png.exists(), proc.stderr[-2000:]
    header = png.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


@pytest.fixture(scope="module")
def small_dom(runs: Runs) -> Dom:
    return dump_dom(runs.folder / "small.html")


@pytest.fixture(scope="module")
def big_dom(runs: Runs) -> Dom:
    return dump_dom(runs.folder / "big.html")


def conflicting(state: dict[str, Any]) -> set[str]:
    return {str(c["request_id"]) for c in state.get("conflicts", [])}


# -- the small run ----------------------------------------------------------------------------


def test_small_run_ran_with_conflicts_hedges_and_reallocations(runs: Runs) -> None:
    assert runs.small.returncode in (0, 3, 4), runs.small.stderr  # ok, partial or unresolved
    state = runs.small_state
    assert conflicting(state) == {f"calc-critical-{i}" for i in range(SMALL_CONFLICTS)}
    attempts = state["attempts"]
    assert any(a.get("hedge") == "hedge" for a in attempts), "no request was hedged"
    assert any(a.get("cancelled") for a in attempts), "no loser was cancelled"
    assert any(a["round"] > 1 for a in attempts), "nothing was reallocated"
    assert "report: small.html" in runs.small.stderr


def test_small_report_draws_one_bar_per_attempt_by_side_and_kind(runs: Runs, small_dom: Dom):
    attempts = runs.small_state["attempts"]
    bars = small_dom.inside("timeline", "g", class_="bar")
    assert len(bars) == len(attempts)
    by = lambda key, value: [a for a in attempts if a.get(key) == value]  # noqa: E731
    for side in ("internal", "external"):
        drawn = [b for b in bars if b["attrs"]["data-side"] == side]
        assert len(drawn) == len(by("side", side))
    kinds = [b["attrs"]["data-kind"] for b in bars]
    assert kinds.count("hedge") == len(by("hedge", "hedge"))
    assert kinds.count("cancelled") == sum(1 for a in attempts if a.get("cancelled"))
    assert kinds.count("reallocated") == sum(1 for a in attempts if a["round"] > 1 and a["ok"])
    assert kinds.count("failed") >= 1
    # the browser ran the page's script: it counted the bars and filled the detail panel
    (body,) = small_dom.find("body")
    assert body["attrs"].get("data-ready") == str(len(attempts))
    (detail,) = small_dom.find(id="detail")
    assert detail["attrs"].get("data-request") in conflicting(runs.small_state)
    assert "Scores" in detail["text"] and "Values compared" in detail["text"]


def test_small_report_has_the_legend_and_marks_each_conflict(runs: Runs, small_dom: Dom) -> None:
    legend = {e["attrs"]["data-key"] for e in small_dom.inside("legend", "li")}
    assert legend == {
        "internal",
        "external",
        "queue",
        "failed",
        "cancelled",
        "hedge",
        "reallocated",
        "conflict",
        "circuit",
    }
    markers = small_dom.inside("timeline", class_="conflict-marker")
    assert {m["attrs"]["data-request"] for m in markers} == conflicting(runs.small_state)
    rows = small_dom.find("tr", class_="conflict-row")
    assert {r["attrs"]["data-request"] for r in rows} == conflicting(runs.small_state)
    for row in rows:  # both values and both confidences
        conflict = next(
            c
            for c in runs.small_state["conflicts"]
            if c["request_id"] == row["attrs"]["data-request"]
        )
        for value in conflict["values"].values():
            assert json.dumps(value) in row["text"]
        assert "internal" in row["text"] and "external" in row["text"]


def test_small_report_shows_circuits_events_and_the_cost_summary(runs: Runs, small_dom: Dom):
    state = runs.small_state
    opened = [e for e in state["events"] if e["code"] == "CIRCUIT_OPENED"]
    assert opened, "the failing provider's circuit did not open"
    assert len(small_dom.inside("timeline", "g", class_="circuit-mark")) == sum(
        1 for e in state["events"] if str(e["code"]).startswith("CIRCUIT_")
    )
    (transitions,) = small_dom.find(id="circuit-transitions")
    assert opened[0]["provider"] in transitions["text"]
    (counts,) = small_dom.find(id="event-counts")
    for code in {str(e["code"]) for e in state["events"]}:
        assert code in counts["text"]
    (cost,) = small_dom.find(id="cost")
    assert "always-external" in cost["text"]
    assert f"{state['cost']['cost_optimization']['always_external']:.4g}" in cost["text"]
    (status,) = small_dom.find(id="run-status")
    assert status["text"] == state["status"]
    providers = small_dom.find(id="providers")[0]["text"]
    assert "mcp:flaky/word_count" in providers and "learned" in providers


def test_small_report_is_self_contained(runs: Runs) -> None:
    html = (runs.folder / "small.html").read_text()
    for remote in ("http://", "https://", "//cdn", "<link ", "src="):
        assert remote not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_report_from_the_checkpointed_thread_matches_the_runs_own(runs: Runs, tmp_path: Path):
    out = tmp_path / "again.html"
    proc = cli("report", "--thread", "small", "--db", str(runs.db), "-o", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    dom = dump_dom(out)
    assert len(dom.inside("timeline", "g", class_="bar")) == len(runs.small_state["attempts"])


def test_report_of_an_unknown_thread_is_one_error_line(runs: Runs, tmp_path: Path) -> None:
    out = tmp_path / "none.html"
    proc = cli("report", "--thread", "nope", "--db", str(runs.db), "-o", str(out), cwd=tmp_path)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nope" in errors[0]
    assert not out.exists()


def test_screenshots_of_both_reports(runs: Runs) -> None:
    for name in ("small", "big"):
        width, height = screenshot(runs.folder / f"{name}.html", runs.folder / f"{name}.png")
        assert (width, height) == (1400, 1800)
        assert (runs.folder / f"{name}.png").stat().st_size > 30_000  # drawn, not blank


# -- the 2,000-request run --------------------------------------------------------------------


def test_big_run_prints_a_summary_not_a_table(runs: Runs) -> None:
    out = runs.big.stdout
    assert runs.big.returncode in (0, 3, 4), runs.big.stderr[-2000:]
    assert f"— {BIG} requests" in out and "by skill" in out
    failed = {rid for rid, r in runs.big_state["results"].items() if r["status"] != "ok"}
    if failed:  # each listed with its error (the first 20), the rest counted
        assert f"failures ({len(failed)})" in out
        lines = out.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("failures ("))
        block = [line for line in lines[start + 1 : start + 21] if line.startswith("  ")]
        listed = {line.split()[0] for line in block if not line.startswith("  …")}
        assert listed and listed <= failed
    assert "always-external would have cost" in out and "quality:" in out
    assert len(out.splitlines()) < 80
    assert "calc-1998" not in out and "json-1000" not in out  # no row per request


def test_big_report_samples_the_timeline_and_says_so(runs: Runs, big_dom: Dom) -> None:
    state = runs.big_state
    (body,) = big_dom.find("body")
    assert body["attrs"]["data-requests"] == str(BIG)
    assert big_dom.find(id="sample-note")
    lanes = big_dom.inside("timeline", "g", class_="lane")
    shown = {lane["attrs"]["data-request"] for lane in lanes}
    assert len(shown) == 120
    assert conflicting(state) <= shown  # the notable requests are drawn first
    bars = big_dom.inside("timeline", "g", class_="bar")
    assert len(bars) == sum(1 for a in state["attempts"] if a["request_id"] in shown)
    assert body["attrs"].get("data-ready") == str(len(bars))
    # aggregated lanes cover every provider; the histogram and the per-skill table are there
    flight = {e["attrs"]["data-provider"] for e in big_dom.find("g", class_="flight-lane")}
    assert flight == {a["provider"] for a in state["attempts"]}
    assert big_dom.inside("histogram", "g", class_="hist-bin")
    skills = big_dom.find(id="by-skill")[0]["text"]
    for skill in ("math.calculate", "json.query", "text.stats", "time.now"):
        assert skill in skills
    # every request can be looked up: its record is in the page
    (records,) = big_dom.find("script", id="records")
    assert len(json.loads(records["text"])["records"]) == BIG


def test_big_report_file_stays_small(runs: Runs) -> None:
    size = (runs.folder / "big.html").stat().st_size
    assert size < 1_600_000, size  # about 500 bytes a request, half of it the lookup records


# -- the command line -------------------------------------------------------------------------


def test_version_quiet_and_table(runs: Runs, tmp_path: Path) -> None:
    version = cli("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("hybridmcp ")
    quiet = cli("run", "--db", ":memory:", "--quiet", cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stdout == ""
    (tmp_path / "t.json").write_text(json.dumps(task(60)))
    (tmp_path / "c.json").write_text(json.dumps(config(word_count_ms=2)))
    table = cli("run", "t.json", "-c", "c.json", "--db", ":memory:", "--table", cwd=tmp_path)
    assert "calc-51" in table.stdout and "by skill" not in table.stdout


@pytest.mark.parametrize("where", ["a directory", "/proc/report.html"])
def test_an_unwritable_report_is_refused_before_the_run(tmp_path: Path, where: str) -> None:
    """A directory, or a file its directory cannot hold (``/proc`` takes no new file, even from
    root, whom permission bits do not stop): refused before the run, not after it."""
    (tmp_path / "t.json").write_text(json.dumps({"requests": [stats(0)]}))
    (tmp_path / "c.json").write_text(json.dumps(config(word_count_ms=2)))
    log = tmp_path / "servers.log"
    proc = cli(
        "run",
        "t.json",
        "-c",
        "c.json",
        "--db",
        ":memory:",
        "--server-log",
        str(log),
        "--report",
        str(tmp_path) if where == "a directory" else where,
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert "cannot be written" in proc.stderr
    assert proc.stderr.count("error:") == 1 and "--report" in proc.stderr
    assert not log.exists() or log.stat().st_size == 0  # no server was started


def test_stdio_servers_stderr_goes_to_the_log_file_named_on_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that writes to its stderr: the run's own output stays clean. Its environment's
    ``${VAR}`` references are expanded as on the default path."""
    server = tmp_path / "noisy.py"
    server.write_text(
        "import os, sys\n"
        "print('NOISY BANNER', os.environ.get('MARK'), file=sys.stderr, flush=True)\n"
        "from hybridmcp.testing.faultserver import main\n"
        "main()\n"
    )
    monkeypatch.setenv("HYBRIDMCP_TEST_MARK", "from-the-environment")
    cfg = config(word_count_ms=2)
    cfg["mcpServers"]["flaky"]["args"] = [str(server)]
    cfg["mcpServers"]["flaky"]["env"]["MARK"] = "${HYBRIDMCP_TEST_MARK}"
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    (tmp_path / "t.json").write_text(json.dumps({"requests": [stats(0)]}))
    log = tmp_path / "logs" / "servers.log"
    proc = cli(
        "run", "t.json", "-c", "c.json", "--db", ":memory:", "--server-log", str(log), cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "NOISY BANNER from-the-environment" in log.read_text()
    assert "NOISY BANNER" not in proc.stdout + proc.stderr
    assert f"servers' stderr: {log}" in proc.stderr


@pytest.fixture(scope="module", autouse=True)
def _browser_present() -> Iterator[None]:
    assert CHROMIUM, "chromium is not installed (.ci/run installs it: apt-get install chromium)"
    yield


async def test_report_of_a_run_served_by_the_langgraph_server(tmp_path: Path) -> None:
    """A run made on ``langgraph dev``: its thread's state and the server's learned statistics
    make the report (``--url``), drawn in the browser like a local one."""
    from langgraph_sdk import get_client

    from tests.integration.test_server import REQUESTS, serve

    with serve(tmp_path / "server.log") as url:
        client = get_client(url=url)
        async with asyncio.timeout(120):
            thread = (await client.threads.create())["thread_id"]
            out = await client.runs.wait(thread, "hybridmcp", input={"requests": REQUESTS})
            assert out["status"] == "ok"
            values = (await client.threads.get_state(thread))["values"]
        page = tmp_path / "served.html"
        proc = await asyncio.to_thread(
            cli, "report", "--thread", thread, "--url", url, "-o", str(page), cwd=tmp_path
        )
        assert proc.returncode == 0, proc.stderr
        missing = await asyncio.to_thread(
            cli, "report", "--thread", "no-such-thread", "--url", url, "-o", "x.html", cwd=tmp_path
        )
    assert missing.returncode == 2 and "no-such-thread" in missing.stderr
    dom = dump_dom(page)
    assert len(dom.inside("timeline", "g", class_="bar")) == len(values["attempts"])
    providers = dom.find(id="providers")[0]["text"]
    assert "mcp:time/get_current_time" in providers


def test_live_progress_on_a_terminal_counts_done_failed_in_flight(tmp_path: Path) -> None:
    """On a terminal (a pseudo-terminal here), stderr shows the live line while calls run."""
    import pty
    import select
    import time

    (tmp_path / "c.json").write_text(json.dumps(config(word_count_ms=2)))
    (tmp_path / "t.json").write_text(json.dumps(task(60)))
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [
            HYBRIDMCP,
            "run",
            "t.json",
            "-c",
            "c.json",
            "--db",
            ":memory:",
            "--server-log",
            str(tmp_path / "servers.log"),
        ],
        cwd=tmp_path,
        env=env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal,
        text=True,
    )
    os.close(terminal)
    seen = b""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the run ended: the terminal closed
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(controller)
    stdout, _ = proc.communicate(timeout=60)
    shown = seen.decode(errors="replace")
    assert "failed" in shown and "in flight" in shown and "ETA" in shown
    assert "now-ext-0: mcp:flaky/get_current_time failed" in shown  # failures printed above
    assert "— 60 requests" in stdout  # the summary, on stdout

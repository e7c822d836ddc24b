"""The judgement at the core, pure: who is blamed, what is learned, who wins a conflict."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridmcp.config import ComparatorConfig, DegradationConfig, HedgingConfig
from hybridmcp.policy.blame import (
    echoes_an_argument,
    learnable,
    request_faults,
    says_input_is_wrong,
)
from hybridmcp.policy.hedging import HealthWatch, HedgeBudget
from hybridmcp.policy.integration import (
    MAJORITY,
    UNRESOLVED,
    Answer,
    EvidenceRule,
    integrate,
    run_status,
)
from hybridmcp.policy.learning import (
    ProviderStats,
    observe_call,
    observe_censored,
    observe_verdict,
    predict,
    trust,
)

EXACT = ComparatorConfig(type="exact")


def attempt(rid: str, provider: str, ok: bool, **extra: Any) -> dict[str, Any]:
    return {"request_id": rid, "provider": provider, "ok": ok, "latency_ms": 5.0} | extra


# -- blame ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Invalid timezone: No time zone found with key Mars/Base",
        "ENOENT: no such file or directory, open '/nope'",
        "Error: Access denied - path outside allowed directories",
        "division by zero in '1/0'",
        "1 validation error for call[get]: url field is required",
        "EISDIR: illegal operation on a directory, read",  # server-filesystem
        "[Errno 21] Is a directory: '/srv/data'",
        "Error: Destination already exists: /tmp/a.txt",
        # mcp-server-sqlite, as plain text: the caller's SQL
        "Database error: no such table: users",
        'Database error: near "SELEC": syntax error',
        "Error: Only SELECT queries are allowed for read_query",
        # FastMCP's own wrapping of an argument that fails validation
        "Error executing tool add: 1 validation error for addArguments\nb\n  Field required",
        # the TypeScript SDK's, as a tool error
        "MCP error -32602: Input validation error: Invalid arguments for tool get-sum",
        # an HTTP client error a tool passes on: mcp-server-fetch, of a page that is not there
        "Failed to fetch http://localhost:8000/missing.json - status code 404",
        "Request failed with status code 400",
        "HTTP 422: the query parameter 'q' is empty",
        "GitHub API error: status_code=410 (gone)",
        # mcp-server-git: a revision, a branch, a path that names nothing
        "Ref 'nope' did not resolve to an object",
        "Cmd('git') failed due to: exit code(128)\n  cmdline: git add -- x.txt\n  stderr: "
        "'fatal: pathspec 'x.txt' did not match any files'",
        "fatal: ambiguous argument 'nope': unknown revision or path not in the working tree.",
        # @playwright/mcp: Chromium refusing the address a navigation was given
        "### Error\nError: browserBackend.callTool: net::ERR_UNSAFE_PORT at http://127.0.0.1:1/",
        "Error: page.goto: net::ERR_INVALID_URL at http://[::1",
        "Error: page.goto: net::ERR_UNKNOWN_URL_SCHEME at gopher://x",
        # a wait the request asked for that ran out in the tool's own time: @playwright/mcp,
        # Playwright's other waits, Puppeteer, Selenium, chrome-devtools-mcp's wording
        "### Error\nTimeoutError: Timeout 5000ms exceeded.\nCall log:\n\x1b[2m  - waiting for "
        "getByText('Never there').first() to be visible\x1b[22m\n",
        'page.waitForURL: Timeout 3000ms exceeded.\n=== logs ===\nwaiting for navigation to "**/x"',
        "Error: Waiting for selector `.result` failed: Waiting failed: 30000ms exceeded",
        "TimeoutException: Message: timeout waiting for element #submit to be clickable",
        "Timed out waiting for text 'Done' after 5000 ms",
    ],
)
def test_errors_that_blame_the_input(text: str) -> None:
    assert says_input_is_wrong(text)


@pytest.mark.parametrize(
    "text",
    [
        "injected failure in calculate (fail_rate 0.3)",
        "Internal server error",
        "upstream 503",
        # the server's own failures, though they say "invalid", "not found" or "validation"
        "Error executing tool r_bytes: Error serializing to JSON: invalid utf-8 sequence of 1 "
        "bytes from index 1",
        "Output validation error: 'x' is not of type 'integer'",
        "Error executing tool count: 1 validation error for countOutput\nresult\n  Input should "
        "be a valid integer, unable to parse string as an integer",
        "Output validation error: outputSchema defined but no structured output returned",
        "MCP error -32602: Tool lookup_weather not found",
        "Unknown tool: lookup_weather",
        "Internal error: invalid state in worker pool",
        "Invalid response from upstream: 502 Bad Gateway",
        "Invalid API key provided",
        "Error: Resource not found on upstream server (HTTP 404)",
        "Object of type datetime is not JSON serializable",
        "Error: database is locked",
        "Service temporarily unavailable: no such table cache, try again later",
        # HTTP statuses of the server's own failure, limits or credentials
        "Failed to fetch http://localhost:8000/data.json - status code 503",
        "HTTP/1.1 500 while reading the invalid row",
        "Request failed with status code 429",
        "status code 401: invalid token",
        "Failed to fetch http://localhost:8000/x: ConnectError('All connection attempts failed')",
        # the browser's own network, or the site's state, not the address given
        "Error: browserBackend.callTool: net::ERR_NAME_NOT_RESOLVED at https://example.test/",
        "Error: page.goto: net::ERR_CONNECTION_REFUSED at http://127.0.0.1:9/",
        # a timeout that waited for nothing the request named, or for the server's own
        # resources or what is behind it
        "Failed to fetch http://localhost:8000/x: ReadTimeout('timed out')",
        "AxiosError: timeout of 5000ms exceeded",
        "Timeout waiting for connection from pool",
        "upstream timed out (110: Connection timed out) while waiting for response",
        "Error: timed out waiting for the lock on table runs",
        "TimeoutError: Timeout 30000ms exceeded while waiting for a reply from the backend",
    ],
)
def test_errors_that_do_not(text: str) -> None:
    assert not says_input_is_wrong(text)


@pytest.mark.parametrize(
    ("text", "arguments"),
    [
        ("/tmp/plain", {"repo_path": "/tmp/plain"}),  # GitPython's exceptions: the path
        ("  /tmp/plain\n", {"repo_path": "/tmp/plain"}),
        ("'colour'", {"options": {"key": "colour"}}),  # a KeyError, nested
        ("Error executing tool lookup: 'colour'", {"keys": ["size", "colour"]}),  # FastMCP
        ('"feature/x"', {"branch": "feature/x"}),
    ],
)
def test_an_error_that_is_only_an_argument_echoed_is_the_requests(
    text: str, arguments: dict[str, Any]
) -> None:
    assert echoes_an_argument(text, arguments)


@pytest.mark.parametrize(
    ("text", "arguments"),
    [
        ("/tmp/plain: permission denied", {"repo_path": "/tmp/plain"}),  # says more
        ("x", {"key": "x"}),  # too short to tell
        ("", {"key": ""}),
        ("upstream", {"source": "upstream"}),  # names the server's own failure
        ("/tmp/other", {"repo_path": "/tmp/plain"}),
        ("42", {"n": 42}),  # numbers are no text a tool echoes
    ],
)
def test_errors_that_do_not_only_echo_an_argument(text: str, arguments: dict[str, Any]) -> None:
    assert not echoes_an_argument(text, arguments)


def test_the_same_input_failing_on_two_providers_is_the_requests_fault() -> None:
    attempts = [
        attempt("a", "p1", False, error_kind="provider", tool_error=True),
        attempt("a", "p2", False, error_kind="provider", tool_error=True),
        attempt("b", "p1", False, error_kind="provider", tool_error=True),
        attempt("b", "p2", True),
        attempt("c", "p1", False, error_kind="timeout"),
        attempt("c", "p2", False, error_kind="timeout"),
        attempt("d", "p1", False, error_kind="request"),
    ]
    assert request_faults(attempts) == {"a", "d"}

    locked = "mcp:db/q returned an error: 'Database error: database is locked'"
    tool_failed = {"error_kind": "provider", "tool_error": True}
    both_locked = [
        attempt("e", "p1", False, error=locked, **tool_failed),
        attempt("e", "p2", False, error="database is locked", **tool_failed),
    ]
    assert request_faults(both_locked) == set()  # the servers' own state, twice


def test_what_enters_the_statistics() -> None:
    faults = {"bad"}
    assert learnable(attempt("x", "p", True), faults) == "outcome"
    assert learnable(attempt("x", "p", False, error_kind="timeout"), faults) == "outcome"
    assert learnable(attempt("x", "p", False, censored="hedge lost"), faults) == "censored"
    assert learnable(attempt("x", "p", False, sent=False, error_kind="queued"), faults) is None
    assert learnable(attempt("x", "p", False, circuit_open=True), faults) is None
    assert learnable(attempt("bad", "p", False, error_kind="request"), faults) is None


# -- learning ------------------------------------------------------------------------------


def test_censored_calls_never_lower_success_however_many() -> None:
    s = ProviderStats("p", "k")
    for n in range(20):
        s = observe_call(s, ok=True, latency_ms=10.0, cost=0.0, now=float(n))
    for n in range(500):
        s = observe_censored(s, latency_ms=4.0, now=100.0 + n)
    assert s.success_rate == pytest.approx(1.0) and s.calls == 20 and s.censored == 500
    assert s.ewma_latency_ms == pytest.approx(10.0)  # a bound under the mean tells nothing


def test_a_censored_bound_above_the_mean_raises_the_latency_estimate() -> None:
    s = observe_call(ProviderStats("p", "k"), ok=True, latency_ms=10.0, cost=0.0, now=0.0)
    s2 = observe_censored(s, latency_ms=1000.0, now=1.0)
    assert s2.ewma_latency_ms is not None and s2.ewma_latency_ms > 10.0
    assert s2.success_rate == s.success_rate and s2.calls == s.calls


def test_trust_is_evidence_of_correctness() -> None:
    assert trust(0, 0) == 0.5
    assert trust(8, 0) > 0.85 and trust(0, 8) < 0.15
    s = ProviderStats("p", "k")
    for _ in range(3):
        s = observe_verdict(s, confirmed=False, now=0.0)
    assert s.refutations == 3 and s.trust == pytest.approx(0.2)


def test_a_refuted_provider_loses_predicted_quality() -> None:
    s = observe_call(ProviderStats("p", "k"), ok=True, latency_ms=1.0, cost=0.0, now=0.0)
    base = predict(s, prior_latency_ms=1, prior_quality=0.9, prior_cost=0)
    for _ in range(4):
        s = observe_verdict(s, confirmed=False, now=0.0)
    worse = predict(s, prior_latency_ms=1, prior_quality=0.9, prior_cost=0)
    assert worse.quality < base.quality and worse.refutations == 4


# -- conflicts -----------------------------------------------------------------------------


def ans(provider: str, value: Any, confidence: float = 0.9, **kw: Any) -> Answer:
    side = "internal" if provider.startswith("internal") else "external"
    return Answer(provider, side, value, confidence, kw.pop("latency_ms", 1.0), **kw)


def test_a_critical_conflict_without_evidence_is_unresolved() -> None:
    r = integrate("r", [ans("internal:a", 1), ans("mcp:b", 2)], EXACT, critical=True)
    assert r.status == UNRESOLVED and r.value is None and r.verdicts == {}
    assert r.conflict is not None and r.conflict["resolution"] == UNRESOLVED


def test_speed_never_decides_a_conflict() -> None:
    fast_wrong = ans("mcp:b", 2, latency_ms=0.1)
    slow_right = ans("internal:a", 1, latency_ms=900.0, trust=0.9, confirmations=8)
    r = integrate("r", [fast_wrong, slow_right], EXACT, critical=True)
    assert r.value == 1 and r.resolution == "evidence"
    assert r.verdicts == {}  # evidence that decides is not new evidence


def test_a_third_provider_breaks_the_tie_and_yields_verdicts() -> None:
    answers = [ans("internal:a", 1), ans("mcp:b", 2), ans("mcp:c", 1)]
    r = integrate("r", answers, EXACT, critical=True)
    assert r.value == 1 and r.resolution == MAJORITY
    assert r.verdicts == {"internal:a": True, "mcp:b": False, "mcp:c": True}


def test_weak_evidence_does_not_decide() -> None:
    rule = EvidenceRule(min_confirmations=3, margin=0.25)
    few = ans("internal:a", 1, trust=0.75, confirmations=2)
    r = integrate("r", [few, ans("mcp:b", 2)], EXACT, critical=True, rule=rule)
    assert r.status == UNRESOLVED


def test_agreement_confirms_every_source() -> None:
    r = integrate("r", [ans("internal:a", 1), ans("mcp:b", 1)], EXACT)
    assert r.agreement is True and r.verdicts == {"internal:a": True, "mcp:b": True}


@given(
    st.permutations(["internal:a", "mcp:b", "mcp:c", "mcp:d", "mcp:e"]),
    st.lists(st.integers(0, 2), min_size=5, max_size=5),
)
def test_the_winner_does_not_depend_on_the_order_answers_arrive(order, values) -> None:
    answers = [ans(p, values[i]) for i, p in enumerate(sorted(order))]
    shuffled = [next(a for a in answers if a.provider == p) for p in order]
    a = integrate("r", answers, EXACT, critical=True)
    b = integrate("r", shuffled, EXACT, critical=True)
    assert (a.status, a.value, a.verdicts) == (b.status, b.value, b.verdicts)


def test_run_status() -> None:
    def r(status: str) -> dict[str, Any]:
        return {"status": status}

    assert run_status({"a": r("ok")}) == "ok"
    assert run_status({"a": r("ok"), "b": r("unresolved")}) == "unresolved"
    assert run_status({"a": r("unresolved"), "b": r("error")}) == "partial"
    assert run_status({"a": r("error")}) == "failed"


# -- live health -----------------------------------------------------------------------------


def watch() -> HealthWatch:
    return HealthWatch(HedgeBudget.from_config(HedgingConfig()), DegradationConfig())


def test_load_that_slows_every_call_is_not_degradation() -> None:
    w = watch()
    planned = 6.0  # learned when the machine was idle
    for _ in range(40):  # under load every healthy call takes ~8 ms
        w.remember(
            "p",
            latency_ms=8.0,
            ok=True,
            threshold_ms=w.threshold("p", planned) or 0,
            planned_ms=planned,
        )
    threshold = w.threshold("p", planned)
    assert threshold is not None and threshold >= 12.0  # 1.5 x the recent p95
    assert not w.remember("p", latency_ms=9.0, ok=True, threshold_ms=threshold, planned_ms=planned)
    assert w.remember("p", latency_ms=200.0, ok=True, threshold_ms=threshold, planned_ms=planned)
    assert "p" in w.suspect


def test_the_threshold_has_a_floor() -> None:
    assert watch().threshold("p", 0.2) == DegradationConfig().min_slow_ms


def test_an_answer_over_the_coordinators_size_limit_is_not_learned_nor_the_requests() -> None:
    """The provider answered, more than ``tool_output.max_bytes``: the limit is the
    coordinator's, so nothing is learned of it and the request is free to move elsewhere."""
    big = attempt("a", "p1", False, error_kind="too_large")
    assert learnable(big, request_faults([big])) is None
    assert request_faults([big, attempt("a", "p2", False, error_kind="too_large")]) == set()

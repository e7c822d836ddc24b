"""What a server asks hybridmcp during (and after) a call, in shapes and at times no one
shaped the client around: a real server process (``tests/asking_server.py``) sends sampling,
elicitation and roots requests with the params a test gives, floods of them, and requests
after the call that caused them ended.

Each flow must keep the gate's rules: every answer is audited, a budget holds, every request
gets an answer (a clear JSON-RPC error when it cannot be served), and the call's outcome is
blamed on whoever caused it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from hybridmcp import Coordinator, parse_config, parse_task
from tests.helpers import FIXED_LM_ENV

pytestmark = pytest.mark.integration

ASKING = str(Path(__file__).resolve().parents[1] / "asking_server.py")
TOOLS = ("ask", "flood", "ask_later", "later", "ask_or_fail", "progress")
EMAIL = "alice.jones@example.com"


def config(**server: Any) -> Any:
    entry = {
        "command": sys.executable,
        "args": [ASKING],
        "sampling": "lm",
        "sampling_role": "planner",
        **server,
    }
    return parse_config(
        {
            "mcpServers": {"a": entry},
            "skills": {
                t: {"providers": [{"side": "external", "server": "a", "tool": t}]} for t in TOOLS
            },
            "builtin_skills": False,
            "llm_config": {
                "planner_model": "python:tests.helpers:fixed_answer_lm",
                "timeout_ms": 5_000,
            },
        }
    )


def sampling(text: str = "hi", max_tokens: int = 5) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": {"type": "text", "text": text}}],
        "maxTokens": max_tokens,
    }


async def run_one(co: Coordinator, skill: str, args: dict[str, Any], **task: Any) -> Any:
    out = await co.run(
        parse_task({"requests": [{"id": "r", "skill": skill, "args": args}], **task})
    )
    return out, out["results"]["r"]


def records(co: Coordinator, kind: str) -> list[dict[str, Any]]:
    return [r for r in co.resources.gate.audit.records if r["kind"] == kind]


# -- blame --------------------------------------------------------------------------------------


@pytest.mark.parametrize("why", ["privacy", "budget", "declined"])
async def test_a_call_failing_after_the_client_refused_its_server_is_not_the_servers_fault(
    monkeypatch, why
) -> None:
    """The server asks for a sampling answer, hybridmcp refuses (the answer is private, the
    run's budget cannot pay, sampling is declined), and the server's tool fails for it: the
    failure is the client's own refusal, never held against the server (no circuit breaker
    failure, nothing learned of it) nor against the request."""
    monkeypatch.setenv(FIXED_LM_ENV, f"Write to {EMAIL}" if why == "privacy" else "Hello.")
    server: dict[str, Any] = {"privacy": "refuse"} if why == "privacy" else {}
    if why == "budget":
        server["sampling_cost"] = 5.0
    if why == "declined":
        server["sampling"] = "decline"
    cfg = config(**{k: v for k, v in server.items() if k != "privacy"})
    if why == "privacy":
        cfg.privacy.servers["a"] = "refuse"  # type: ignore[index]
    task = {"constraints": {"budget": 1.0}} if why == "budget" else {}
    async with asyncio.timeout(60), Coordinator.open(cfg) as co:
        out, result = await run_one(
            co, "ask_or_fail", {"method": "sampling/createMessage", "params": sampling()}, **task
        )
        breaker = co.resources.gate.breaker.breaker("mcp:a/ask_or_fail")
        [call] = records(co, "external_call")
    [attempt] = result["attempts"]
    assert result["status"] == "error" and not attempt["ok"], result
    assert attempt["error_kind"] == "refused", attempt
    assert "the client refused" in attempt["error"] and "refused" in attempt["error"]
    assert not attempt.get("tool_error"), attempt
    assert attempt["client_refused"].startswith("sampling "), attempt
    assert call["outcome"].startswith("refused: "), call
    assert breaker.consecutive_bad == 0 and not any(failed for failed, _ in breaker.window)
    assert EMAIL not in json.dumps(out, default=str)


# -- budget: requests no single call can pay for -------------------------------------------------


async def test_a_priced_sampling_request_after_the_call_ended_is_refused_and_audited(
    monkeypatch,
) -> None:
    """A server asks for a sampling answer after its call ended: no run can pay for it, so a
    priced answer is refused (the gate's own budget has no limit), and the refusal is
    audited without a run; a free one is answered as before."""
    monkeypatch.setenv(FIXED_LM_ENV, "Hello.")
    for cost, expect in ((0.01, "refused"), (0.0, "result")):
        async with asyncio.timeout(60), Coordinator.open(config(sampling_cost=cost)) as co:
            args = {"method": "sampling/createMessage", "params": sampling(), "delay_s": 0.1}
            await run_one(co, "ask_later", args, constraints={"budget": 1.0})
            for _ in range(100):
                _, result = await run_one(co, "later", {}, constraints={"budget": 1.0})
                if result["value"]:
                    break
                await asyncio.sleep(0.05)
            [late] = result["value"]
            [record] = records(co, "sampling")
        assert expect in late, late
        assert record["run_id"] is None and record["request_id"] is None, record
        if cost:
            assert late["refused"]["message"].startswith("sampling refused: "), late
            assert "no single call" in late["refused"]["message"]
            assert record["outcome"] == "refused: budget" and record["cost"] == 0.0, record
        else:
            assert record["outcome"] == "ok", record


async def test_priced_sampling_with_several_calls_in_flight_is_refused_not_charged_to_no_one(
    monkeypatch,
) -> None:
    """Two calls on one session each ask for a sampling answer while others are in flight: the
    protocol does not say which call a request belongs to, so a priced answer is refused
    rather than paid out of no run's budget; each run's cost stays what its calls cost."""
    monkeypatch.setenv(FIXED_LM_ENV, "Hello.")
    args = {"method": "sampling/createMessage", "params": sampling(), "delay_s": 0.5}
    long = {"method": "ping", "delay_s": 2.0}  # in flight while the two others ask
    task = {
        "requests": [{"id": f"r{n}", "skill": "ask", "args": args} for n in range(2)]
        + [{"id": "long", "skill": "ask", "args": long}],
        "constraints": {"budget": 1.0},
    }
    async with asyncio.timeout(60), Coordinator.open(config(sampling_cost=0.2)) as co:
        out = await co.run(parse_task(task))
        sampled = records(co, "sampling")
    answers = [out["results"][f"r{n}"]["value"] for n in range(2)]
    assert all("no single call" in a["refused"]["message"] for a in answers), answers
    assert len(sampled) == 2 and all(r["outcome"] == "refused: budget" for r in sampled)
    assert all(r["run_id"] is None for r in sampled)
    assert "sampling:a" not in out["cost"]["by_provider"]


# -- privacy: what a model outside the process reads --------------------------------------------


async def test_a_card_cut_across_sampling_messages_never_reaches_a_model_outside(
    monkeypatch,
) -> None:
    """A server (cleared to hold a card) asks for a sampling answer with the card cut across
    two messages: the model outside the process reads the turns one after another, so it
    would read the card whole; the request is refused before it is asked."""
    monkeypatch.setenv(FIXED_LM_ENV, "Hello.")
    turns = ["the card is 4111 1111", "1111 1111, charge it"]
    params = {
        "messages": [{"role": "user", "content": {"type": "text", "text": t}} for t in turns],
        "maxTokens": 5,
    }
    async with asyncio.timeout(60), Coordinator.open(config(clearance="restricted")) as co:
        _, result = await run_one(co, "ask", {"method": "sampling/createMessage", "params": params})
        [record] = records(co, "sampling")
        sent = [r for r in records(co, "policy_decision") if r.get("stage") == "sampling"]
    assert "refused" in result["value"], result
    assert record["outcome"] == "refused: privacy" and record["prompt_sensitivity"] == "restricted"
    assert not sent  # nothing was recorded as sent to the model


# -- hostile questions ---------------------------------------------------------------------------

NOT_A_SCHEMA = [
    {"type": "object", "properties": {"city": {"type": "nonsense", "default": "Lisbon"}}},
    {"type": "object", "properties": "city"},
    {"type": "object", "properties": {"n": {"type": "integer", "default": "three"}}},
]


@pytest.mark.parametrize("policy", ["defaults", "ask"])
@pytest.mark.parametrize("schema", NOT_A_SCHEMA)
async def test_a_question_whose_schema_is_not_valid_gets_a_clear_error(
    policy, schema, caplog
) -> None:
    """A server asks for input with a requested schema that is not valid JSON Schema (or
    whose own defaults do not fit it): it gets a JSON-RPC error saying so and one warning
    line is logged; nothing is accepted, and no run pauses on a question no answer can fit."""
    params = {"message": "Which city?", "requestedSchema": schema}
    async with asyncio.timeout(60), Coordinator.open(config(elicitation=policy)) as co:
        out, result = await run_one(co, "ask", {"method": "elicitation/create", "params": params})
        [record] = records(co, "elicitation")
    assert "__interrupt__" not in out
    refused = result["value"]["refused"]
    assert refused["code"] == -32602, refused
    assert refused["message"].startswith("invalid requestedSchema: "), refused
    assert record["action"] == "error" and record["fields"] == [], record
    [warning] = [r for r in caplog.records if "requestedSchema" in r.getMessage()]
    assert warning.levelname == "WARNING" and "\n" not in warning.getMessage()
    assert "'a'" in warning.getMessage()


MALFORMED = [
    ("sampling/createMessage", {"messages": "hello", "maxTokens": "many"}),
    ("sampling/createMessage", {"messages": [], "maxTokens": 5}),
    (
        "sampling/createMessage",
        {
            "messages": [
                {"role": "user", "content": {"type": "resource", "resource": {"uri": "x:/"}}}
            ],
            "maxTokens": 5,
        },
    ),
    ("elicitation/create", {"message": "x", "requestedSchema": "city"}),
    ("roots/list", {"_meta": "not an object"}),
]


@pytest.mark.parametrize(("method", "params"), MALFORMED)
async def test_a_request_whose_params_are_not_mcps_gets_an_error_a_line_and_a_record(
    method, params, caplog
) -> None:
    """Params of the wrong types, no messages, a content type sampling does not have: the
    server gets -32602, one warning line names the server and what was wrong, the request is
    audited (refused), and the call goes on."""
    async with asyncio.timeout(60), Coordinator.open(config(elicitation="defaults")) as co:
        _, result = await run_one(co, "ask", {"method": method, "params": params})
        [record] = records(co, "server_request")
    assert result["value"]["refused"]["code"] == -32602, result
    assert record["server"] == "a" and record["method"] == method, record
    assert record["outcome"] == "refused: invalid params" and record["run_id"], record
    ours = [r for r in caplog.records if r.name == "hybridmcp.client" and r.levelname == "WARNING"]
    assert len(ours) == 1, [r.getMessage() for r in ours]
    said = ours[0].getMessage()
    assert "'a'" in said and method in said and "\n" not in said
    assert all("\n" not in r.getMessage() for r in caplog.records), [
        r.getMessage() for r in caplog.records if "\n" in r.getMessage()
    ]


async def test_a_call_failing_after_its_server_sent_a_malformed_request_is_the_servers() -> None:
    """The server sends a sampling request that is not MCP's, is told so, and fails its
    tool with the client's "invalid" in its message: the server's fault, not the request's."""
    params = {"messages": "hello", "maxTokens": "many"}
    async with asyncio.timeout(60), Coordinator.open(config()) as co:
        _, result = await run_one(
            co, "ask_or_fail", {"method": "sampling/createMessage", "params": params}
        )
    [attempt] = result["attempts"]
    assert attempt["error_kind"] == "provider", attempt
    assert "sent a request that is not MCP's" in attempt["error"], attempt


async def test_a_progress_message_of_megabytes_is_kept_bounded() -> None:
    """A server's progress message is the server's text in the run's progress events (and
    its state): a message of megabytes is kept cut, with its length said."""
    task = parse_task(
        {
            "requests": [
                {"id": "r", "skill": "progress", "args": {"n": 3, "message_chars": 2_000_000}}
            ]
        }
    )
    async with asyncio.timeout(60), Coordinator.open(config()) as co:
        events = [e async for e in co.stream(task)]
    assert events[-1]["output"]["results"]["r"]["status"] == "ok"
    said = [e for e in events if e["type"] == "progress"]
    assert len(said) == 3, said
    for event in said:
        message = event["message"]
        assert len(message) < 1_000 and message.startswith("step "), message[:100]
        assert "2,000,007 characters in all" in message, message[-80:]


async def test_calls_failing_after_a_refusal_no_single_call_owns_are_not_the_servers(
    monkeypatch,
) -> None:
    """With several calls in flight, hybridmcp refuses a priced sampling request (no run can
    pay for it) and the calls' tools fail for it: any of them may be the one that asked, so
    none of their failures is held against the server."""
    monkeypatch.setenv(FIXED_LM_ENV, "Hello.")
    args = {"method": "sampling/createMessage", "params": sampling(), "delay_s": 0.5}
    task = {
        "requests": [{"id": f"r{n}", "skill": "ask_or_fail", "args": args} for n in range(2)]
        + [{"id": "long", "skill": "ask", "args": {"method": "ping", "delay_s": 2.0}}],
        "constraints": {"budget": 1.0},
    }
    async with asyncio.timeout(60), Coordinator.open(config(sampling_cost=0.2)) as co:
        out = await co.run(parse_task(task))
    for n in range(2):
        [attempt] = out["results"][f"r{n}"]["attempts"]
        assert attempt["error_kind"] == "refused", attempt
        assert "no single call" in attempt["client_refused"], attempt

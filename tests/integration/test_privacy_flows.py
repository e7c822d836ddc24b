"""Data flows to external servers other than a call's arguments, against real servers in
subprocesses: a person's answer to a server's elicitation, what the audit trail keeps of a
server's error, and what the synchronizer's model is shown of the answers.

Each flow must keep the rule of the arguments: data above a server's clearance reaches it
only redacted (where the policy allows), and no raw value is written to the audit trail.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from hybridmcp import Coordinator, parse_config, parse_task
from hybridmcp.capabilities.gate import digest_id
from hybridmcp.testing.harness import faultserver_stdio
from tests.integration.test_mcp_client import everything, skill
from tests.integration.test_resilience import requires_everything
from tests.privacy_cases import without_digests

pytestmark = pytest.mark.integration

EMAIL = "alice.jones@example.com"
CARD = "4111 1111 1111 1111"


def _elicitation_config(policy: str, clearance: str = "public") -> Any:
    return parse_config(
        {
            "mcpServers": {"ev": everything(elicitation="ask", clearance=clearance)},
            "skills": {"form.fill": skill("ev", "trigger-elicitation-request")},
            "builtin_skills": False,
            "privacy": {"policy": policy},
        }
    )


async def _answer_elicitation(policy: str, answer: dict[str, Any], clearance: str = "public"):
    """Run server-everything's elicitation tool, answer its question with ``answer``; the
    run's output and the elicitation audit records."""
    task = parse_task({"requests": [{"id": "form", "skill": "form.fill", "args": {}}]})
    config = _elicitation_config(policy, clearance)
    async with asyncio.timeout(90), Coordinator.open(config, checkpointer=InMemorySaver()) as co:
        paused = await co.run(task, thread_id=f"ask-{policy}-{clearance}")
        assert paused["__interrupt__"], paused
        out = await co.resume(answer, thread_id=f"ask-{policy}-{clearance}")
        audited = [r for r in co.resources.gate.audit.records if r["kind"] == "elicitation"]
    return out, audited


@requires_everything
@pytest.mark.parametrize("policy", ["redact", "refuse", "route_internal"])
async def test_an_elicitation_answer_above_the_clearance_is_redacted_or_declined(policy) -> None:
    """The server echoes what it was answered: a person's email and card number reach it only
    as pseudonyms (redact) or not at all (the answer is declined)."""
    answer = {"name": f"{EMAIL} card {CARD}", "check": True}
    out, audited = await _answer_elicitation(policy, answer)
    echoed = json.dumps(out["results"]["form"], default=str)
    assert EMAIL not in echoed and "4111" not in without_digests(echoed), echoed
    last = audited[-1]
    assert EMAIL not in json.dumps(audited) and "4111" not in without_digests(json.dumps(audited))
    if policy == "redact":
        assert "<EMAIL_1>" in echoed and last["action"] == "accept"
        assert last["privacy"] == "redact" and last["redactions"]
    else:
        assert last["action"] == "decline" and last["privacy"] == "refuse"
        assert "declined" in echoed.lower()


@requires_everything
async def test_an_elicitation_answer_within_the_clearance_goes_as_given() -> None:
    answer = {"name": EMAIL, "check": True}
    out, audited = await _answer_elicitation("refuse", answer, clearance="restricted")
    assert EMAIL in json.dumps(out["results"]["form"], default=str)
    assert audited[-1]["action"] == "accept" and audited[-1]["privacy"] == "allow"
    assert EMAIL not in json.dumps(audited)


# -- the audit trail keeps no raw value of a server's error ----------------------------------


async def test_a_servers_error_quoting_the_arguments_is_audited_without_the_raw_values(
    tmp_path,
) -> None:
    """A server cleared ``restricted`` receives the raw value (policy allows it) and quotes
    it in its error; the run reports the error, the audit trail keeps it redacted."""
    config = parse_config(
        {
            "mcpServers": {"fs": faultserver_stdio(clearance="restricted")},
            "skills": {"clock.now": skill("fs", "get_current_time", timeout_ms=20_000)},
            "builtin_skills": False,
            "audit": {"path": str(tmp_path / "audit.jsonl")},
        }
    )
    zone = f"{EMAIL} {CARD}"
    task = parse_task({"requests": [{"id": "t", "skill": "clock.now", "args": {"timezone": zone}}]})
    async with asyncio.timeout(60), Coordinator.open(config) as co:
        out = await co.run(task)
    result = out["results"]["t"]
    assert result["status"] == "error" and EMAIL in str(result["error"])  # the user sees it
    trail = (tmp_path / "audit.jsonl").read_text()
    [call] = [json.loads(line) for line in trail.splitlines() if '"external_call"' in line]
    assert "rejected the request" in call["outcome"] and "<EMAIL_1>" in call["outcome"], call
    assert EMAIL not in trail and "4111" not in without_digests(trail)  # (a MAC may hold 4111)


# -- the synchronizer's model is an external service unless it runs here ----------------------


def owned_time(timezone: str) -> dict[str, Any]:
    """An internal clock that also says whose account asked (a value from private data)."""
    return {"timezone": timezone, "datetime": "2001-01-01T00:00:00", "owner": EMAIL}


async def test_private_answers_never_reach_a_non_local_synchronizer_model() -> None:
    """The request's arguments are public, but the internal side's answer carries an email:
    a model that does not run in this process is not shown the answers."""
    from tests.conftest import time_server_config
    from tests.integration.test_lm_wiring import (
        CLOCK_COMPARATOR,
        SYNCHRONIZER,
        clock,
        earned,
        prompts,
        run,
        scripted,
    )

    def config(function: str) -> Any:
        return time_server_config(
            skills={
                "clock.now": {
                    "comparator": CLOCK_COMPARATOR,
                    "providers": [
                        {"side": "internal", "function": function},
                        {"side": "external", "server": "time", "tool": "get_current_time"},
                    ],
                }
            }
        )

    verdict = {"internal_results": {"synchronized_results": "external", **SYNCHRONIZER}}
    control = scripted(verdict)  # a public answer is shown (so the test can see a leak)
    await run(
        config("tests.helpers:wrong_time"), [clock("pub")], {"synchronizer": control},
        (earned("synchronizer", "clock.now"),),
    )  # fmt: skip
    assert len(control.history) == 1

    lm = scripted(verdict)
    out = await run(
        config(f"{__name__}:owned_time"), [clock("owned")], {"synchronizer": lm},
        (earned("synchronizer", "clock.now"),),
    )  # fmt: skip
    assert EMAIL not in prompts(lm) and lm.history == []
    [conflict] = out["conflicts"]
    assert "not sent" in conflict["expert_arbitration"]["withheld"]


# -- a server's sampling request is read by the model of its role ----------------------------

SHOWN_TO_MODEL: list[str] = []
"""What :func:`recording_lm` was asked (this test process's coordinator calls it in-process)."""


def recording_lm(**_options: Any) -> Any:
    """A model outside the process (as far as hybridmcp knows): it records what it is shown."""
    import dspy

    class RecordingLM(dspy.BaseLM):
        def __init__(self) -> None:
            super().__init__(model="test/remote-recorder")

        def __call__(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
            SHOWN_TO_MODEL.append(repr((prompt, messages)))
            return ["noted"]

        async def acall(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
            return self(prompt, messages, **kwargs)

    return RecordingLM()


@requires_everything
async def test_a_sampling_prompt_above_public_never_reaches_a_non_local_model() -> None:
    """A server cleared ``restricted`` receives an email (policy allows it) and puts it in
    its sampling request: the model answering it runs outside the process, so the request is
    refused rather than the email sent to it; a public prompt is answered (the control)."""
    config = parse_config(
        {
            "mcpServers": {
                "ev": everything(
                    sampling="lm",
                    sampling_role="planner",
                    clearance="restricted",
                    max_concurrency=1,  # each sampling request is attributed to its call
                )
            },
            "skills": {"llm.sample": skill("ev", "trigger-sampling-request", timeout_ms=30_000)},
            "builtin_skills": False,
            "llm_config": {"planner_model": f"python:{__name__}:recording_lm"},
        }
    )
    task = parse_task(
        {
            "requests": [
                {"id": "pub", "skill": "llm.sample", "args": {"prompt": "Say hello."}},
                {"id": "mail", "skill": "llm.sample", "args": {"prompt": f"Write to {EMAIL}"}},
            ]
        }
    )
    SHOWN_TO_MODEL.clear()
    async with asyncio.timeout(60), Coordinator.open(config) as co:
        out = await co.run(task)
        trail = list(co.resources.gate.audit.records)
        records = [r for r in trail if r["kind"] == "sampling"]
    assert EMAIL not in json.dumps(SHOWN_TO_MODEL)
    # what left for the model was recorded before it left; what did not leave, not so
    shown = [(r["kind"], r.get("stage"), r["request_id"]) for r in trail]
    assert shown.index(("policy_decision", "sampling", "pub")) < shown.index(
        ("sampling", None, "pub")
    )
    assert ("policy_decision", "sampling", "mail") not in shown
    assert any("Say hello." in shown for shown in SHOWN_TO_MODEL)  # the control
    by_request = {r["request_id"]: r for r in records}
    assert by_request["pub"]["outcome"] == "ok"
    assert by_request["mail"]["outcome"] == "refused: privacy", by_request["mail"]
    assert "sampling refused" in json.dumps(out["results"]["mail"], default=str)


# -- ids are data too: a request id travels in each call's _meta ------------------------------


async def test_request_ids_never_reach_the_server_only_a_stable_digest_of_the_key(
    tmp_path,
) -> None:
    """The journal server writes the idempotency key each call carries in ``_meta``: the digest
    of ``<run>:<request>:<provider>:<round>``, for every id (an id is a label its author chose:
    ``order for alice@example.com``), stable, so the server still recognises a repeat; the
    local audit trail keeps the ids as given, to correlate, and the key whole."""
    import sys

    journal = tmp_path / "journal.jsonl"
    config = parse_config(
        {
            "mcpServers": {
                "journal": {
                    "command": sys.executable,
                    "args": ["-m", "hybridmcp.testing.journal_server", "--journal", str(journal)],
                    "env": {"PYTHONPATH": ":".join(sys.path)},
                }
            },
            "skills": {"journal.add": skill("journal", "append", timeout_ms=20_000)},
            "builtin_skills": False,
            "audit": {"path": str(tmp_path / "audit.jsonl")},
        }
    )
    task = parse_task(
        {
            "requests": [
                {"id": "plain-1", "skill": "journal.add", "args": {"entry": "a"}},
                {"id": f"order for {EMAIL}", "skill": "journal.add", "args": {"entry": "b"}},
            ]
        }
    )
    async with asyncio.timeout(60), Coordinator.open(config) as co:
        out = await co.run(task, thread_id="t-ids")
    assert all(r["status"] == "ok" for r in out["results"].values()), out["results"]
    keys = {json.loads(line)["entry"]: json.loads(line)["key"] for line in journal.open()}
    assert EMAIL not in journal.read_text() and "plain-1" not in journal.read_text()
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    calls = {r["request_id"]: r for r in records if r.get("kind") == "external_call"}
    for entry, rid in (("a", "plain-1"), ("b", f"order for {EMAIL}")):
        assert keys[entry] == digest_id(calls[rid]["idempotency_key"]), (keys, calls)
        assert json.loads(calls[rid]["idempotency_key"])[:2] == ["t-ids", rid]

"""The fault server's answer modes (``--answers both|text|structured``), through a real MCP
client session held in memory: no process, the same protocol path as over stdio."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp.shared.memory import create_connected_server_and_client_session

from hybridmcp.testing.faultserver import (
    ANSWER_MODES,
    FAULTABLE_TOOLS,
    FaultPlan,
    FaultState,
    _parse_args,
    build_server,
)


async def call(answers: str, faults: dict[str, Any] | None = None, tool: str = "calculate"):
    """(the tool's declared output schema, the result of one call or the client's error)."""
    state = FaultState(FaultPlan.from_config(faults, known_tools=FAULTABLE_TOOLS), seed=1)
    server = build_server(state, answers=answers)  # type: ignore[arg-type]
    args = {"expression": "6*7"} if tool == "calculate" else {}
    async with create_connected_server_and_client_session(server._mcp_server) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        try:
            result: Any = await client.call_tool(tool, args)
        except RuntimeError as err:  # the client's own check of the answer
            result = err
    return listed[tool].outputSchema, result


def text_of(result: Any) -> str:
    (content,) = result.content
    assert content.type == "text"
    return content.text


def test_answers_default_is_both():
    assert _parse_args([]).answers == "both"
    assert _parse_args(["--answers", "text"]).answers == "text"
    with pytest.raises(SystemExit):
        _parse_args(["--answers", "xml"])


async def test_both_is_text_plus_structured_without_a_schema():
    schema, result = await call("both")
    assert schema is None
    assert json.loads(text_of(result)) == result.structuredContent == {"value": 42}


async def test_text_is_text_only():
    schema, result = await call("text")
    assert schema is None and result.structuredContent is None
    assert json.loads(text_of(result)) == {"value": 42}


async def test_structured_is_fastmcp_structured_output_with_a_schema():
    schema, result = await call("structured")
    assert schema is not None and schema["type"] == "object"
    assert result.structuredContent == {"value": 42}
    assert json.loads(text_of(result)) == {"value": 42}


@pytest.mark.parametrize("answers", ANSWER_MODES)
async def test_every_mode_applies_faults(answers):
    _, wrong = await call(answers, {"calculate": {"wrong_answer": True}})
    assert json.loads(text_of(wrong)) == {"value": 43}
    assert wrong.structuredContent == (None if answers == "text" else {"value": 43})
    _, failed = await call(answers, {"calculate": {"fail_rate": 1.0}})
    assert failed.isError and "injected failure" in text_of(failed)
    _, control = await call(answers, tool="fault_control")
    assert json.loads(text_of(control))["seed"] == 1


async def test_structured_mode_malformed_answer_fails_the_clients_schema_check():
    # The answer is sent as it is; the MCP client refuses a result without structured content
    # from a tool that declared an output schema.
    _, refused = await call("structured", {"calculate": {"malformed": "invalid_json"}})
    assert isinstance(refused, RuntimeError)
    assert "has an output schema but did not return structured content" in str(refused)
    _, both = await call("both", {"calculate": {"malformed": "invalid_json"}})
    assert both.structuredContent is None and not both.isError

"""The client features' pure decisions: defaults of a requested schema, a human's answer, log
levels, sampling messages, roots from configuration."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp.types import CreateMessageRequestParams, ImageContent, SamplingMessage, TextContent

from hybridmcp.capabilities.client_features import (
    client_info,
    human_answer,
    log_level,
    sampling_messages,
    schema_defaults,
    schema_problem,
)
from hybridmcp.config import load_config, parse_config, root_uri
from hybridmcp.errors import ConfigError

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "count": {"type": "integer", "minimum": 1, "default": 3},
        "city": {"type": "string", "default": "Lisbon"},
    },
    "required": ["name"],
}

values = st.one_of(st.integers(), st.text(max_size=5), st.booleans(), st.none())


def test_defaults_answer_only_when_every_required_field_has_one() -> None:
    assert schema_defaults(SCHEMA) is None
    optional = {**SCHEMA, "required": []}
    assert schema_defaults(optional) == {"count": 3, "city": "Lisbon"}
    assert schema_defaults({"type": "object"}) == {}


@given(st.dictionaries(st.text(min_size=1, max_size=6), values, max_size=6), st.data())
def test_defaults_are_exactly_the_declared_defaults(defaults: dict[str, Any], data) -> None:
    names = list(defaults)
    required = data.draw(st.lists(st.sampled_from(names), unique=True)) if names else []
    extra = data.draw(st.lists(st.text(min_size=1, max_size=6), max_size=2))
    schema = {
        "properties": {
            **{n: {"type": "string"} for n in extra if n not in defaults},
            **{n: {"default": v} for n, v in defaults.items()},
        },
        "required": required + [n for n in extra if n not in defaults][:1],
    }
    got = schema_defaults(schema)
    if any(n not in defaults for n in schema["required"]):
        assert got is None
    else:
        assert got == defaults


def test_a_human_answer_is_checked_against_the_schema_and_completed_by_defaults() -> None:
    result = human_answer({"name": "Ada"}, SCHEMA)
    assert result.action == "accept"
    assert result.content == {"name": "Ada", "count": 3, "city": "Lisbon"}
    assert human_answer({"action": "accept", "content": {"name": "Bo"}}, SCHEMA).content == {
        "name": "Bo",
        "count": 3,
        "city": "Lisbon",
    }
    assert human_answer("decline", SCHEMA).action == "decline"
    assert human_answer({"action": "cancel"}, SCHEMA).action == "cancel"
    with pytest.raises(ValueError, match="count"):
        human_answer({"name": "Ada", "count": 0}, SCHEMA)
    with pytest.raises(ValueError, match="'name' is a required property"):
        human_answer({"city": "Porto"}, SCHEMA)
    with pytest.raises(ValueError, match="got int"):
        human_answer(7, SCHEMA)
    with pytest.raises(ValueError, match="requested schema is not valid"):
        human_answer({"a": 1}, {"type": "object", "properties": {"a": {"type": 5}}})


@given(st.one_of(values, st.lists(values, max_size=3)))
def test_any_answer_is_a_result_or_one_clear_error(answer: Any) -> None:
    try:
        result = human_answer(answer, SCHEMA)
    except ValueError as err:
        assert str(err) and "\n" not in str(err)
    else:
        assert result.action in ("accept", "decline", "cancel")


def test_log_levels_map_syslog_levels_and_unknown_ones_warn() -> None:
    assert log_level("debug") == logging.DEBUG
    assert log_level("notice") == logging.INFO
    assert log_level("emergency") == logging.CRITICAL
    assert log_level("loud") == logging.WARNING


def test_sampling_messages_keep_text_and_name_what_is_not_text() -> None:
    params = CreateMessageRequestParams(
        messages=[
            SamplingMessage(role="user", content=TextContent(type="text", text="hello")),
            SamplingMessage(
                role="user", content=ImageContent(type="image", data="AA==", mimeType="image/png")
            ),
        ],
        systemPrompt="be brief",
        maxTokens=5,
    )
    assert sampling_messages(params) == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
        {"role": "user", "content": "[image omitted]"},
    ]


def test_client_info_names_hybridmcp() -> None:
    info = client_info()
    assert info.name == "hybridmcp" and info.version


def test_roots_are_file_uris_relative_to_the_config_file(tmp_path: Path) -> None:
    assert root_uri("/srv/data") == "file:///srv/data"
    assert root_uri("file:///x/y") == "file:///x/y"
    assert root_uri("data", tmp_path) == (tmp_path / "data").resolve().as_uri()
    config = tmp_path / "c.yaml"
    config.write_text("mcpServers:\n  fs: {command: x, roots: [data, /abs]}\n")
    assert load_config(config).mcpServers["fs"].roots == [
        (tmp_path / "data").resolve().as_uri(),
        "file:///abs",
    ]
    with pytest.raises(ConfigError, match=r"mcpServers\.fs\.roots.*file:// URI"):
        parse_config({"mcpServers": {"fs": {"command": "x", "roots": ["https://a/b"]}}})
    with pytest.raises(ConfigError, match=r"mcpServers\.fs\.sampling: .*llm_config\.planner_model"):
        parse_config(
            {"mcpServers": {"fs": {"command": "x", "sampling": "lm", "sampling_role": "planner"}}}
        )
    with pytest.raises(ConfigError, match=r"mcpServers\.fs\.elicitation"):
        parse_config({"mcpServers": {"fs": {"command": "x", "elicitation": "always"}}})


QUESTION = {
    "type": "elicitation",
    "server": "s",
    "message": "Who?",
    "requested_schema": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "title": "Name"},
            "count": {"type": "integer", "default": 3},
            "ok": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name"],
    },
}


def scripted(*replies: str) -> Any:
    """``ask(label, default)`` answering from a script (an empty reply takes the default)."""
    queue = list(replies)

    def ask(label: str, default: str | None) -> str:
        reply = queue.pop(0)
        return reply or (default or "")

    return ask


def test_a_terminal_answer_is_asked_field_by_field_and_typed() -> None:
    from hybridmcp.cli import answer_question

    answer = answer_question(QUESTION, scripted("", "Ada", "x", "", "yes", "a, b"))
    assert answer == {"name": "Ada", "count": 3, "ok": True, "tags": ["a", "b"]}
    assert answer_question(QUESTION, scripted("decline")) == "decline"
    assert answer_question({"type": "conflict_review"}, scripted("external")) == "external"
    assert answer_question({"type": "conflict_review"}, scripted('{"now": 1}')) == {"now": 1}


schemas = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=4)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(
    st.fixed_dictionaries(
        {}, optional={"properties": schemas, "required": schemas, "type": schemas}
    ),
    st.one_of(schemas, st.dictionaries(st.text(max_size=4), schemas, max_size=3)),
)
def test_any_schema_a_server_sends_gives_an_answer_or_one_clear_error(
    schema: dict[str, Any], answer: Any
) -> None:
    defaults = schema_defaults(schema)
    assert defaults is None or isinstance(defaults, dict)
    try:
        result = human_answer(answer, schema)
    except ValueError as err:
        assert str(err)
    else:
        assert result.action in ("accept", "decline", "cancel")


async def test_a_persons_answer_is_released_by_the_privacy_policy_and_audited_without_values() -> (
    None
):
    """What a person answers goes to the server as the server's clearance and policy allow;
    the audit names the schema's fields and the decision, never a value (nor a field name the
    person added)."""
    from mcp.types import ElicitRequestFormParams

    from hybridmcp.capabilities.client_features import CallScope, ClientHooks, ServerFeatures
    from hybridmcp.capabilities.gate import Gate, ScanningPolicy
    from hybridmcp.capabilities.mcp_pool import SessionPool
    from hybridmcp.config import parse_config

    schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    params = ElicitRequestFormParams(message="Who?", requestedSchema=schema)
    answer = {"name": "Ada, alice.jones@example.com", "alice.jones@example.com": "x"}
    redacted = {"name": "Ada, <EMAIL_1>", "<EMAIL_1>": "x"}
    for clearance, policy, action, sent, decision in (
        ("restricted", "refuse", "accept", answer, "allow"),
        ("public", "redact", "accept", redacted, "redact"),
        ("public", "refuse", "decline", None, "refuse"),
        ("public", "route_internal", "decline", None, "refuse"),
    ):
        server = {"command": "true", "elicitation": "ask", "clearance": clearance}
        config = parse_config({"mcpServers": {"s": server}, "privacy": {"policy": policy}})
        gate = Gate(SessionPool({}), privacy=ScanningPolicy(config.privacy))
        records: list[dict[str, Any]] = []
        features = ServerFeatures(
            "s",
            config.mcpServers["s"],
            lambda: CallScope(answers=[answer]),
            ClientHooks(record=records.append, release=gate.release_answer),
        )
        result = await features.elicit(None, params)  # type: ignore[arg-type]
        assert (result.action, result.content) == (action, sent), (clearance, policy, result)
        [record] = records
        assert "alice" not in json.dumps(record) and record["privacy"] == decision, record
        assert record["fields"] == (["name", "~k1"] if sent else [])
    # without a policy to release it, a person's answer is not sent (fail closed)
    records = []
    bare = ServerFeatures(
        "s",
        config.mcpServers["s"],
        lambda: CallScope(answers=[answer]),
        ClientHooks(records.append),
    )
    assert (await bare.elicit(None, params)).action == "decline"  # type: ignore[arg-type, union-attr]


_FRESH_PROCESS = """
import asyncio, json, sys
from hybridmcp.capabilities.gate import Gate, ScanningPolicy
from hybridmcp.capabilities.mcp_pool import SessionPool
from hybridmcp.config import parse_config

config = parse_config({"mcpServers": {"s": {"command": "true"}}, "privacy": {"policy": "redact"}})
gate = Gate(SessionPool({}), privacy=ScanningPolicy(config.privacy))
loaded = lambda: sorted(m for m in sys.modules if m.startswith("presidio"))
kept = gate._audit_text("error: no zone 4111 1111 1111 1111 for alice.jones@example.com")
before = loaded()

async def answer():
    return await gate.release_answer(
        "s", config.mcpServers["s"], {"phone": "call +1 415 867 5309"}, None
    )

sent, fields = asyncio.run(answer())
print(json.dumps([kept, before, sent, fields["privacy"], bool(loaded())]))
"""


def test_no_detection_engine_is_built_on_the_event_loop_for_what_a_server_is_answered() -> None:
    """In a fresh process (no engine built yet): a failed call's outcome that would need one
    is kept without its message (never its raw values), and a person's answer is scanned in
    a worker thread (the engine is built there) and released redacted."""
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).resolve().parents[2] / "src"
    proc = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(src), "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": ""},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    kept, before, sent, decision, loaded = json.loads(proc.stdout.splitlines()[-1])
    assert kept.startswith("error: ") and "4111" not in kept and "alice" not in kept
    assert before == []  # the audit text built nothing
    assert sent == {"phone": "call <PHONE_1>"} and decision == "redact" and loaded


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 3000),
    st.integers(1, 300),
    st.sampled_from(["defaults", "ask"]),
)
def test_an_elicitation_record_is_bounded_whatever_the_schema_asks(
    count: int, name_length: int, policy: str
) -> None:
    """A server's schema may ask for thousands of fields with long names, all with defaults:
    the audit record lists the first 64 names, each cut to 64 characters, and how many there
    were (it listed them all: a record of megabytes)."""
    from mcp.types import ElicitRequestFormParams

    from hybridmcp.capabilities.client_features import (
        FIELD_NAME_CHARS,
        FIELDS_KEPT,
        CallScope,
        ClientHooks,
        ServerFeatures,
    )
    from hybridmcp.config import parse_config

    server = parse_config({"mcpServers": {"s": {"command": "x", "elicitation": policy}}})
    records: list[dict[str, object]] = []

    async def allow(_server, _config, content, _caller):  # type: ignore[no-untyped-def]
        return content, {"privacy": "allow", "reason": "within clearance", "redactions": []}

    hooks = ClientHooks(record=records.append, release=allow)
    names = [f"f{i:05d}" + "n" * name_length for i in range(count)]
    props = {n: {"type": "string", "default": "v"} for n in names}
    scope = CallScope(answers=[{}])  # a person accepting every default
    features = ServerFeatures("s", server.mcpServers["s"], lambda: scope, hooks)
    params = ElicitRequestFormParams(
        message="m", requestedSchema={"type": "object", "properties": props}
    )
    result = asyncio.run(features.elicit(None, params))  # type: ignore[arg-type]
    assert result.action == "accept"
    (record,) = records
    assert len(json.dumps(record)) < 8_000
    fields = record["fields"]
    assert isinstance(fields, list) and len(fields) == min(count, FIELDS_KEPT)
    assert all(len(f) <= FIELD_NAME_CHARS + 3 for f in fields)
    assert record.get("field_count", len(fields)) == count


@pytest.mark.parametrize(
    ("schema", "said"),
    [
        ({"type": "object", "properties": {"a": {"type": "nonsense"}}}, "is not valid"),
        ({"type": "object", "properties": "a"}, "is not of type 'object'"),
        ({"type": "object", "properties": {"n": {"type": "integer", "default": "x"}}}, "n"),
        ({"type": "object", "properties": {"s": {"type": "string", "pattern": "("}}}, "regex"),
    ],
)
def test_a_schema_no_answer_can_fit_is_named_in_one_line(schema, said) -> None:
    problem = schema_problem(schema)
    assert problem is not None and said in problem and "\n" not in problem


@settings(max_examples=50, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.sampled_from(
            [
                {"type": "string", "default": "Lisbon"},
                {"type": "integer", "minimum": 0, "default": 3},
                {"type": "boolean"},
                {"type": "string", "enum": ["a", "b"], "default": "a"},
            ]
        ),
        max_size=5,
    )
)
def test_a_valid_flat_schema_with_fitting_defaults_has_no_problem(properties) -> None:
    assert schema_problem({"type": "object", "properties": properties}) is None


def test_a_required_field_without_a_default_is_no_problem() -> None:
    """A person fills it (``defaults`` declines such a question; ``ask`` asks it)."""
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    assert schema_problem(schema) is None
    assert schema_problem({**schema, "required": "name"}) is not None  # not a list: invalid

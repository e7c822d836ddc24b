"""Fuzzing what comes from outside: skill arguments, arithmetic, MCP answers and configuration
files (Hypothesis). Every case ends within a time bound with a value that can be written as
JSON or with the one error type its boundary promises; never another exception."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp.types import (
    BlobResourceContents,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
)

from hybridmcp.capabilities.builtin import calculate
from hybridmcp.capabilities.registry import (
    Provider,
    Registry,
    answer_to_judge,
    build_registry,
    extract_result,
    resolve_function,
)
from hybridmcp.config import load_config, parse_config
from hybridmcp.errors import ConfigError, ProviderError, RequestError, TaskError

TIME_BOUND_S = 2.0
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=60)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def bounded(fn: Callable[[], Any]) -> Any:
    started = time.monotonic()
    try:
        return fn()
    finally:
        assert time.monotonic() - started < TIME_BOUND_S


def writable(value: Any) -> None:
    json.dumps(value, allow_nan=False)


# -- skill arguments --------------------------------------------------------------------------


REGISTRY: Registry = build_registry(load_config(None), {})
INTERNAL: list[Provider] = sorted(
    (p for s in REGISTRY.skills.values() for p in s.providers_on("internal") if p.function),
    key=lambda p: p.id,
)


def _args_for(skill: str) -> st.SearchStrategy[dict[str, Any]]:
    """Random arguments, and arguments with the skill's own keys holding random values."""
    keys = list(REGISTRY.get(skill).input_schema.get("properties", {}))
    own = st.fixed_dictionaries({k: json_values for k in keys}) if keys else st.just({})
    return own | st.dictionaries(st.sampled_from([*keys, "x"]), json_values, max_size=4)


@pytest.mark.parametrize("provider", INTERNAL, ids=lambda p: p.id)
@FUZZ
@given(data=st.data())
def test_built_in_skills_under_random_arguments(provider: Provider, data: st.DataObject) -> None:
    skill = REGISTRY.get(provider.skill)
    args = data.draw(_args_for(provider.skill))

    def run() -> Any:
        skill.validate_args(args)
        return resolve_function(provider.function or "")(**args)

    try:
        writable(bounded(run))
    except (TaskError, RequestError, ProviderError):
        pass


arithmetic = st.recursive(
    st.integers(min_value=-(10**6), max_value=10**6).map(str)
    | st.floats(allow_nan=False, allow_infinity=False).map(repr)
    | st.sampled_from(["pi", "e", "9999", "1e308"]),
    lambda inner: (
        st.tuples(
            inner, st.sampled_from("+-*/%").map(str) | st.just("//") | st.just("**"), inner
        ).map(lambda t: f"({t[0]}{t[1]}{t[2]})")
        | st.tuples(st.sampled_from(["sqrt", "abs", "round", "-"]), inner).map(
            lambda t: f"{t[0]}({t[1]})"
        )
    ),
    max_leaves=12,
)


@FUZZ
@given(arithmetic)
def test_arithmetic_ends_with_a_finite_value_or_a_request_error(expression: str) -> None:
    try:
        result = bounded(lambda: calculate(expression))
    except RequestError:
        return
    writable(result)


@pytest.mark.parametrize(
    "expression",
    ["(9**9999)**9999", "10**3000*10**3000", "(-8)**(1/3)", "1e308*10", "((2**9000)**2)**2"],
)
def test_results_too_big_or_not_real_are_refused_at_once(expression: str) -> None:
    with pytest.raises(RequestError, match="result"):
        bounded(lambda: calculate(expression))


# -- MCP answers --------------------------------------------------------------------------------


blobs = st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode())
content_parts = st.one_of(
    st.builds(
        TextContent, type=st.just("text"), text=st.text(max_size=80) | json_values.map(json.dumps)
    ),
    st.builds(
        ImageContent,
        type=st.just("image"),
        data=blobs,
        mimeType=st.sampled_from(["image/png", "x/y"]),
    ),
    st.builds(
        ResourceLink,
        type=st.just("resource_link"),
        uri=st.just("file:///tmp/a"),
        name=st.text(max_size=10),
    ),
    st.builds(
        EmbeddedResource,
        type=st.just("resource"),
        resource=st.one_of(
            st.builds(TextResourceContents, uri=st.just("mem://a"), text=st.text(max_size=40)),
            st.builds(BlobResourceContents, uri=st.just("mem://b"), blob=blobs),
        ),
    ),
)
answers = st.builds(
    CallToolResult,
    content=st.lists(content_parts, max_size=4),
    structuredContent=st.none()
    | st.dictionaries(st.text(max_size=8), json_values, max_size=4)
    | st.fixed_dictionaries({"result": json_values | json_values.map(json.dumps)}),
    isError=st.booleans(),
)
schemas = st.none() | st.just({"type": "object", "x-fastmcp-wrap-result": True}) | st.just({})
PROVIDERS = [p for s in REGISTRY.skills.values() for p in s.providers if p.side == "external"] or [
    None
]


def _provider(result_path: str | None) -> Provider:
    return Provider(
        id="mcp:fuzz/tool",
        skill="fuzz.tool",
        side="external",
        quality=0.9,
        expected_latency_ms=10.0,
        cost_per_call=0.0,
        clearance="public",  # type: ignore[arg-type]
        timeout_ms=1_000.0,
        server="fuzz",
        tool="tool",
        result_path=result_path,
    )


@FUZZ
@given(answers, schemas, st.sampled_from([None, "$", "$.result", "$[0]", "$.a[*]", "$..x"]))
def test_any_answer_reads_as_a_value_or_a_provider_error(
    result: CallToolResult, schema: dict[str, Any] | None, path: str | None
) -> None:
    text, structured = bounded(lambda: answer_to_judge(result, schema))
    assert isinstance(text, str)
    writable(structured)
    try:
        value = bounded(lambda: extract_result(_provider(path), result, output_schema=schema))
    except ProviderError:
        return
    writable(value)


# -- configuration files -----------------------------------------------------------------------


def _config_outcome(path: Path) -> None:
    try:
        bounded(lambda: load_config(path))
    except ConfigError as err:
        assert "\n" not in str(err).strip() or len(str(err)) < 4_000
        assert len(str(err)) < 20_000


@FUZZ
@given(st.binary(max_size=3_000), st.sampled_from(["c.yaml", "c.json"]))
def test_random_config_bytes(
    tmp_path_factory: pytest.TempPathFactory, raw: bytes, name: str
) -> None:
    path = tmp_path_factory.mktemp("cfg") / name
    path.write_bytes(raw)
    _config_outcome(path)


CONFIG_KEYS = [
    "mcpServers",
    "servers",
    "skills",
    "coordination_config",
    "privacy",
    "optimization_criteria",
    "arbitration",
    "resilience",
    "input_limits",
    "pool",
    "lm",
]
SERVER_KEYS = ["command", "args", "env", "url", "transport", "type", "timeout_ms", "clearance"]


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(CONFIG_KEYS),
        json_values
        | st.dictionaries(
            st.text(max_size=6),
            st.dictionaries(st.sampled_from(SERVER_KEYS), json_values, max_size=4) | json_values,
            max_size=3,
        ),
        max_size=4,
    )
)
def test_random_config_structures_are_a_config_or_a_config_error(data: dict[str, Any]) -> None:
    try:
        bounded(lambda: parse_config(data, "fuzz"))
    except ConfigError:
        pass

import io

import pytest
from mcp.types import CallToolResult, TextContent, Tool

from hybridmcp.capabilities.registry import build_registry, extract_result, map_arguments
from hybridmcp.config import HybridConfig, parse_config
from hybridmcp.errors import ConfigError, ProviderError, TaskError
from hybridmcp.task import load_task, parse_task


def test_demo_task_loads():
    task = load_task(None)
    assert len(task.requests) >= 5


def test_bad_json_is_reported_with_position(tmp_path):
    p = tmp_path / "t.json"
    p.write_text('{"requests": [{"id": "a", }]}')
    with pytest.raises(TaskError, match="invalid JSON at line 1"):
        load_task(str(p))


def test_task_from_stdin(monkeypatch):
    stdin = io.TextIOWrapper(io.BytesIO(b'[{"id": "a", "skill": "math.calculate"}]'))
    monkeypatch.setattr("sys.stdin", stdin)  # read as bytes (sys.stdin.buffer), like a real one
    assert load_task("-").requests[0].skill == "math.calculate"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"requests": []}, "requests"),
        (
            {"requests": [{"id": "a", "skill": "x", "strategy": "fastest"}]},
            r"requests.0.strategy: .* \(got 'fastest'\)",
        ),
        ({"requests": [{"id": 1, "skill": "x"}]}, r"requests.0.id: .*string \(got 1\)$"),
        ({"requests": [{"id": "a", "skill": "x"}, {"id": "a", "skill": "y"}]}, "duplicate"),
        ({"requests": [{"id": "a", "skill": "x", "colour": 1}]}, "requests.0.colour"),
        (
            {"requests": [{"id": "a", "skill": "x"}], "constraints": {"deadline_ms": -1}},
            r"constraints.deadline_ms: .* \(got -1\)",
        ),
    ],
)
def test_bad_tasks_name_the_problem(data, message):
    with pytest.raises(TaskError, match=message):
        parse_task(data)


def registry(tools=None):
    cfg = parse_config(
        {
            "mcpServers": {"s": {"command": "true"}},
            "skills": {
                "time.now": {
                    "providers": [{"side": "external", "server": "s", "tool": "get_current_time"}]
                }
            },
        }
    )
    return build_registry(cfg, tools or {})


def test_configured_skill_extends_the_builtin():
    skill = registry().get("time.now")
    assert [p.side for p in skill.providers] == ["internal", "external"]
    assert skill.input_schema["required"] == ["timezone"]
    assert skill.comparator.type == "fields"


def test_every_discovered_tool_is_a_server_dot_tool_skill():
    tool = Tool(
        name="echo",
        description="Echo",
        inputSchema={
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
    )
    reg = registry({"s": [tool]})
    skill = reg.get("s.echo")
    assert [p.side for p in skill.providers] == ["external"]
    with pytest.raises(TaskError, match="argument <arguments>: 'text' is a required"):
        skill.validate_args({})


def test_unknown_skill_lists_known_ones():
    with pytest.raises(TaskError, match="unknown skill 'nope'.*math.calculate"):
        registry().get("nope")


def test_args_are_validated_against_the_schema():
    with pytest.raises(TaskError, match="argument timezone: 5 is not of type 'string'"):
        registry().get("time.now").validate_args({"timezone": 5})


def test_internal_function_is_resolved_at_load():
    raw = {
        "skills": {
            "x": {
                "providers": [
                    {"side": "internal", "function": "hybridmcp.capabilities.builtin:nope"}
                ]
            }
        }
    }
    with pytest.raises(ConfigError, match=r"skills.x.providers.0.function: .* has no 'nope'"):
        parse_config(raw)
    # a configuration built without parse_config is still checked before anything runs
    with pytest.raises(ConfigError, match="has no 'nope'"):
        build_registry(HybridConfig.model_validate(raw), {})


def test_argument_mapping():
    mapping = {"tz": "$.timezone", "fmt": "iso", "opt": "$.missing", "nested": {"a": "$.n[0]"}}
    assert map_arguments(mapping, {"timezone": "UTC", "n": [7]}) == {
        "tz": "UTC",
        "fmt": "iso",
        "nested": {"a": 7},
    }
    assert map_arguments(None, {"x": 1}) == {"x": 1}


def test_result_extraction():
    p = registry().get("time.now").providers[1]
    ok = CallToolResult(content=[TextContent(type="text", text='{"datetime": "x"}')])
    assert extract_result(p, ok) == {"datetime": "x"}
    err = CallToolResult(content=[TextContent(type="text", text="Invalid timezone")], isError=True)
    with pytest.raises(ProviderError, match="returned an error: Invalid timezone"):
        extract_result(p, err)
    plain = CallToolResult(content=[TextContent(type="text", text="not json")])
    assert extract_result(p, plain) == "not json"


_THREADS: list[str] = []


def _text_stats_spy(text: str) -> dict:
    """``text.stats`` that notes the thread it runs on."""
    import threading

    from hybridmcp.capabilities import builtin

    _THREADS.append(threading.current_thread().name)
    return builtin.text_stats(text)


def _declare_spy() -> None:
    from hybridmcp.capabilities import builtin

    _text_stats_spy.inline_when = builtin.text_stats.inline_when  # type: ignore[attr-defined]


async def test_a_cheap_builtin_runs_on_the_loop_and_a_long_input_in_a_thread():
    """``text.stats`` of a short text runs inline (no worker thread); of a text past the inline
    size, in a worker thread, so a long call never holds the event loop."""
    import threading

    from hybridmcp.capabilities import builtin
    from hybridmcp.capabilities.registry import Provider, invoke_internal

    _declare_spy()
    _THREADS.clear()
    provider = Provider(
        "p", "text.stats", "internal", 1.0, 1.0, 0.0, "restricted", 1000.0,
        function="tests.unit.test_task_and_registry:_text_stats_spy",
    )  # fmt: skip
    words = builtin.INLINE_TEXT_CHARS // 5 + 10
    short = await invoke_internal(provider, {"text": "One two. Three."})
    long = await invoke_internal(provider, {"text": "word " * words})
    assert short["words"] == 3 and long["words"] == words
    assert _THREADS[0] == threading.main_thread().name
    assert _THREADS[1] != threading.main_thread().name
    assert not builtin.calculate.inline_when(expression="2**64**2")
    assert builtin.calculate.inline_when(expression="1 + 2 * 3")


def test_a_tool_of_a_disabled_server_says_the_server_is_disabled():
    """Not "unknown skill": the server is configured, and switched off."""
    cfg = parse_config({"mcpServers": {"off": {"command": "nope", "disabled": True}}})
    with pytest.raises(TaskError) as err:
        build_registry(cfg, {}).get("off.read_file")
    assert str(err.value) == (
        "skill 'off.read_file': MCP server 'off' is disabled in the configuration, "
        "so its tools cannot be called"
    )
    with pytest.raises(TaskError, match="unknown skill 'offline.x'"):
        build_registry(cfg, {}).get("offline.x")


def test_every_internal_provider_of_a_skill_is_a_provider_of_its_own():
    """Two internal functions on one skill (or one added to a built-in) each get an id of their
    own: sharing ``internal:<skill>`` made the second one silently vanish (never called, never
    a third opinion, its statistics merged with the first's)."""
    cfg = parse_config(
        {
            "skills": {
                "math.eval": {
                    "providers": [
                        {
                            "side": "internal",
                            "function": "tests.judgement_helpers:arithmetic_rounded",
                        },
                        {"side": "internal", "function": "tests.judgement_helpers:arithmetic"},
                        {"side": "internal", "function": "tests.judgement_helpers:arithmetic"},
                    ]
                },
                "time.now": {
                    "providers": [{"side": "internal", "function": "tests.helpers:wrong_time"}]
                },
            }
        }
    )
    registry = build_registry(cfg, {})
    ids = [p.id for p in registry.get("math.eval").providers]
    assert ids == ["internal:math.eval", "internal:math.eval#tests.judgement_helpers:arithmetic"]
    assert [registry.provider(i).function for i in ids] == [
        "tests.judgement_helpers:arithmetic_rounded",
        "tests.judgement_helpers:arithmetic",
    ]
    now = [p.id for p in registry.get("time.now").providers]
    assert now == ["internal:time.now", "internal:time.now#tests.helpers:wrong_time"]

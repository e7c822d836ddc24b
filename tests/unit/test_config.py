import json
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp.types import Implementation

from hybridmcp.capabilities.mcp_pool import SessionPool, to_connection
from hybridmcp.config import (
    HttpServer,
    StdioServer,
    _field_names,
    import_function,
    key_path,
    load_config,
    parse_config,
)
from hybridmcp.errors import ConfigError


def test_defaults_follow_the_spec():
    cfg = parse_config({})
    w = cfg.optimization_criteria
    assert (w.performance_weight, w.cost_weight, w.quality_weight, w.security_weight) == (
        0.4,
        0.3,
        0.2,
        0.1,
    )
    assert cfg.arbitration_config.decision_threshold == 0.7
    assert cfg.arbitration_config.performance_baseline == "moving_average"
    assert cfg.llm_config.temperature == 0.2 and cfg.llm_config.max_tokens == 1500


def test_embedded_default_loads_and_names_the_time_server():
    cfg = load_config()
    assert isinstance(cfg.mcpServers["time"], StdioServer)
    assert cfg.mcpServers["time"].command == "mcp-server-time"


def test_unknown_key_is_named():
    with pytest.raises(ConfigError) as err:
        parse_config({"arbitration_config": {"decision_treshold": 0.5}})
    assert "arbitration_config.decision_treshold" in str(err.value)


def test_bad_value_is_named_with_the_value():
    with pytest.raises(ConfigError) as err:
        parse_config({"optimization_criteria": {"cost_weight": -1}})
    assert "optimization_criteria.cost_weight" in str(err.value)
    assert "-1" in str(err.value)


def test_provider_naming_an_unknown_server_fails_at_load():
    with pytest.raises(ConfigError, match=r"skills.x.providers.0.server.*'nope'"):
        parse_config(
            {"skills": {"x": {"providers": [{"side": "external", "server": "nope", "tool": "t"}]}}}
        )


def test_internal_provider_needs_module_colon_function():
    with pytest.raises(ConfigError, match="module:function"):
        parse_config(
            {"skills": {"x": {"providers": [{"side": "internal", "function": "os.path"}]}}}
        )


@pytest.mark.parametrize(
    ("raw", "transport"),
    [
        ({"command": "uvx", "args": ["mcp-server-time"]}, "stdio"),
        ({"type": "stdio", "command": "x"}, "stdio"),
        ({"url": "http://127.0.0.1:9/mcp"}, "streamable_http"),
        ({"type": "http", "url": "http://127.0.0.1:9/mcp"}, "streamable_http"),
        ({"transport": "sse", "url": "http://127.0.0.1:9/sse"}, "sse"),
    ],
)
def test_mcp_servers_accept_the_client_formats(raw, transport):
    server = parse_config({"mcpServers": {"s": raw}}).mcpServers["s"]
    assert server.transport == transport
    assert isinstance(server, StdioServer if transport == "stdio" else HttpServer)


def test_unknown_transport_is_rejected():
    with pytest.raises(ConfigError, match="unknown transport 'carrier-pigeon'"):
        parse_config({"mcpServers": {"s": {"type": "carrier-pigeon", "url": "x"}}})


def test_json_and_yaml_files(tmp_path):
    j = tmp_path / "c.json"
    j.write_text(json.dumps({"coordination_config": {"max_rounds": 5}}))
    assert load_config(j).coordination_config.max_rounds == 5
    y = tmp_path / "c.yaml"
    y.write_text("coordination_config:\n  max_rounds: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(y)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


# -- server entries as MCP clients write them ---------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "transport"),
    [
        ({"type": "streamableHttp", "url": "http://127.0.0.1:9/mcp"}, "streamable_http"),
        ({"transportType": "sse", "url": "http://127.0.0.1:9/sse"}, "sse"),
        ({"transport": "streamable-http", "url": "http://127.0.0.1:9/mcp"}, "streamable_http"),
        ({"type": "stdio", "transport": "stdio", "command": "x"}, "stdio"),
    ],
)
def test_every_spelling_of_the_transport(raw, transport):
    assert parse_config({"mcpServers": {"s": raw}}).mcpServers["s"].transport == transport


def test_cline_entry_disabled_auto_approve_timeout():
    cfg = parse_config(
        {
            "mcpServers": {
                "on": {"command": "x", "disabled": False, "autoApprove": ["t"], "timeout": 30},
                "off": {"command": "x", "disabled": True, "alwaysAllow": ["t"]},
            }
        }
    )
    on, off = cfg.mcpServers["on"], cfg.mcpServers["off"]
    assert on.enabled and not off.enabled
    assert on.timeout_ms == 30_000  # Cline's timeout is in seconds
    assert on.autoApprove == ["t"] and off.alwaysAllow == ["t"]
    assert cfg.warnings == []
    assert set(SessionPool(cfg.mcpServers).statuses()) == {"on"}  # never started


def test_timeout_ms_wins_over_timeout():
    server = parse_config({"mcpServers": {"s": {"url": "u", "timeout": 5, "timeout_ms": 700}}})
    assert server.mcpServers["s"].timeout_ms == 700


def test_enabled_and_disabled_that_contradict_are_one_line():
    with pytest.raises(ConfigError) as err:
        parse_config({"mcpServers": {"s": {"command": "x", "enabled": True, "disabled": True}}})
    assert str(err.value) == (
        "invalid configuration in <config>: mcpServers.s: "
        "'enabled' and 'disabled' contradict each other: give one"
    )


def test_connection_carries_headers_timeouts_and_session_kwargs():
    cfg = parse_config(
        {
            "mcpServers": {
                "h": {
                    "transport": "streamable_http",
                    "url": "http://127.0.0.1:9/mcp",
                    "headers": {"Authorization": "Bearer t", "X-Port": 8080},
                    "timeout": 10,
                    "sse_read_timeout": 60,
                    "terminate_on_close": False,
                    "session_kwargs": {
                        "read_timeout_seconds": 30,
                        "client_info": {"name": "me", "version": "1"},
                    },
                },
                "e": {"transport": "sse", "url": "http://127.0.0.1:9/sse"},
                "s": {"command": "x", "env": {"DEBUG": True}, "encoding": "latin-1"},
            }
        }
    )
    h = to_connection(cfg.mcpServers["h"])
    assert h["headers"] == {"Authorization": "Bearer t", "X-Port": "8080"}
    assert (h["timeout"], h["sse_read_timeout"], h["terminate_on_close"]) == (10, 60, False)
    assert h["session_kwargs"]["read_timeout_seconds"] == timedelta(seconds=30)
    assert h["session_kwargs"]["client_info"] == Implementation(name="me", version="1")
    # nothing given, nothing passed: the transport's own defaults apply
    assert to_connection(cfg.mcpServers["e"]) == {
        "transport": "sse",
        "url": "http://127.0.0.1:9/sse",
    }
    s = to_connection(cfg.mcpServers["s"])
    assert s["env"] == {"DEBUG": "true"} and s["encoding"] == "latin-1"
    assert "session_kwargs" not in s and "headers" not in s


def test_unknown_keys_warn_naming_the_key_and_never_fail():
    cfg = parse_config(
        {
            "mcpServers": {
                "s": {"command": "x", "headers": {"a": "b"}, "dev": {"watch": "**/*.py"}},
                "h": {"url": "u", "session_kwargs": {"sampling_callback": "mod:fn"}},
            }
        }
    )
    assert cfg.warnings == [
        "<config>: mcpServers.s.headers: ignored: a key of HTTP servers",
        "<config>: mcpServers.s.dev: unknown key, ignored",
        "<config>: mcpServers.h.session_kwargs.sampling_callback: unknown key, ignored",
    ]
    assert cfg.mcpServers["h"].session_kwargs is not None


def test_vscode_servers_key_and_inputs():
    cfg = parse_config(
        {
            "inputs": [{"type": "promptString", "id": "key", "password": True}],
            "servers": {"a": {"type": "stdio", "command": "x"}},
            "mcpServers": {"b": {"url": "u"}},
            "skills": {"k": {"providers": [{"side": "external", "server": "a", "tool": "t"}]}},
        }
    )
    assert set(cfg.mcpServers) == {"a", "b"}
    assert len(cfg.warnings) == 1 and "inputs" in cfg.warnings[0]
    with pytest.raises(ConfigError) as err:
        parse_config({"servers": {"a": {"command": "x", "args": 3}}})
    assert str(err.value).endswith("servers.a.args: Input should be a valid list (got 3)")
    with pytest.raises(ConfigError, match=r"servers.a: also given under mcpServers"):
        parse_config({"servers": {"a": {"command": "x"}}, "mcpServers": {"a": {"command": "y"}}})


def test_an_entry_that_is_no_server_is_one_line():
    for raw, said in [
        ({"args": []}, "needs 'command' (a stdio server) or 'url'"),
        (5, "expected a mapping (a server entry), got 5"),
        ({"type": "websocket", "url": "ws://x"}, "type: unknown transport 'websocket'"),
        ({"type": "stdio", "transport": "sse", "url": "u"}, "name different transports"),
    ]:
        with pytest.raises(ConfigError) as err:
            parse_config({"mcpServers": {"s": raw}})
        assert "\n" not in str(err.value) and said in str(err.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        parse_config(
            {
                "coordination_config": {"default_timeout_ms": 0},
                "mcpServers": {
                    "a": {"command": "x", "timeout_ms": -1},
                    "b": {"url": 3},
                    "c": {"type": "pigeon"},
                },
                "skills": {
                    "k": {
                        "providers": [
                            {"side": "internal", "function": "json:no_such_function"},
                            {"side": "external", "server": "zz", "tool": "t"},
                        ]
                    }
                },
                "privacy": {"servers": {"yy": "refuse"}},
            }
        )
    lines = str(err.value).splitlines()
    assert lines[0] == "invalid configuration in <config> (7 problems):"
    assert sorted(line.strip().partition(":")[0] for line in lines[1:]) == [
        "coordination_config.default_timeout_ms",
        "mcpServers.a.timeout_ms",
        "mcpServers.b.url",
        "mcpServers.c.type",
        "privacy.servers",
        "skills.k.providers.0.function",
        "skills.k.providers.1.server",
    ]


# -- weights ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "weights",
    [
        {"performance_weight": 1, "cost_weight": 0, "quality_weight": 0, "security_weight": 0},
        {
            "performance_weight": 0.333,
            "cost_weight": 0.333,
            "quality_weight": 0.334,
            "security_weight": 0,
        },
        {
            "performance_weight": 0.25,
            "cost_weight": 0.25,
            "quality_weight": 0.25,
            "security_weight": 0.25,
        },
    ],
)
def test_weights_summing_to_one_are_taken_as_they_are(weights):
    got = parse_config({"optimization_criteria": weights}).optimization_criteria
    assert got.model_dump() == pytest.approx(weights)


def test_weights_are_never_normalised_silently():
    with pytest.raises(ConfigError) as err:
        parse_config(
            {
                "optimization_criteria": {
                    "performance_weight": 5,
                    "cost_weight": 5,
                    "quality_weight": 5,
                    "security_weight": 5,
                }
            }
        )
    assert str(err.value) == (
        "invalid configuration in <config>: optimization_criteria: the weights must sum to 1 "
        "(each is its factor's share of the fitness score), got 20 = performance 5 + cost 5 + "
        "quality 5 + security 5"
    )


# -- internal providers' modules ----------------------------------------------------------------


def test_function_modules_are_found_beside_the_configuration(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "modules", dict(sys.modules))
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "beside_config_mod.py").write_text("def answer(**_):\n    return {'v': 42}\n")
    path = folder / "hybrid.yaml"
    path.write_text(
        "skills:\n  k:\n    providers:\n"
        "      - {side: internal, function: 'beside_config_mod:answer'}\n"
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="cannot import 'beside_config_mod'"):
        parse_config(yaml.safe_load(path.read_text()))  # from the working directory: not found
    cfg = load_config(path)
    assert cfg.skills["k"].providers[0].function == "beside_config_mod:answer"
    assert import_function("beside_config_mod:answer")() == {"v": 42}
    assert sys.path[-1] == str(folder)  # after the installed packages


def test_a_module_that_fails_to_import_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "modules", dict(sys.modules))
    (tmp_path / "broken_mod.py").write_text("def f(:\n")
    (tmp_path / "raising_mod.py").write_text("raise RuntimeError('no database\\nconfigured')\n")
    (tmp_path / "exiting_mod.py").write_text("import sys\nsys.exit(3)\n")
    with pytest.raises(ConfigError) as err:
        parse_config(
            {
                "skills": {
                    "k": {
                        "providers": [
                            {"side": "internal", "function": "broken_mod:f"},
                            {"side": "internal", "function": "raising_mod:f"},
                            {"side": "internal", "function": "json:__doc__"},
                            {"side": "internal", "function": "exiting_mod:f"},
                        ]
                    }
                }
            },
            base_dir=tmp_path,
        )
    lines = str(err.value).splitlines()[1:]
    assert "providers.0.function: cannot import 'broken_mod': SyntaxError" in lines[0]
    assert lines[1].endswith(
        "cannot import 'raising_mod': RuntimeError: no database configured (got 'raising_mod:f')"
    )
    assert "json:__doc__ is not callable" in lines[2]
    assert "cannot import 'exiting_mod': SystemExit: 3" in lines[3]


# -- properties ---------------------------------------------------------------------------------

KNOWN_SERVER_KEYS = _field_names(StdioServer) | _field_names(HttpServer) | {"type", "transportType"}
KNOWN_SERVER_KEYS |= {"envFile"}  # read for the server (VS Code, Cursor), never a field of it
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=12).filter(lambda k: k not in KNOWN_SERVER_KEYS),
        JSON,
        max_size=4,
    )
)
def test_unknown_keys_of_any_value_only_warn(extra):
    cfg = parse_config({"mcpServers": {"s": {"command": "x", **extra}}})
    assert cfg.mcpServers["s"].command == "x"
    assert cfg.warnings == [
        f"<config>: mcpServers.s{key_path(k)}: unknown key, ignored" for k in extra
    ]
    assert all(len(w.splitlines()) == 1 for w in cfg.warnings)


TYPED_KEYS = sorted(
    {
        "args",
        "env",
        "cwd",
        "timeout_ms",
        "timeout",
        "startup_timeout_ms",
        "disabled",
        "enabled",
        "autoApprove",
        "max_concurrency",
        "clearance",
        "cost_per_call",
        "session_kwargs",
        "encoding_error_handler",
        "read_only",
    }
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(TYPED_KEYS), JSON)
def test_a_bad_value_of_a_known_key_is_one_line_naming_it(key, value):
    """One line per bad value (an item of a list may be one), each naming its key, never one
    line per union member the entry could have been."""
    try:
        parse_config({"mcpServers": {"s": {"command": "x", key: value}}})
    except ConfigError as err:
        text = str(err)
        head = "invalid configuration in <config>"
        if "\n" not in text:
            problems = [text.removeprefix(f"{head}: ")]
        else:
            first, *problems = text.splitlines()
            assert first == f"{head} ({len(problems)} problems):"
            problems = [p.strip() for p in problems]
        paths = [p.partition(": ")[0] for p in problems]
        under = f"mcpServers.s.{key}"
        assert all(p == under or p.startswith((f"{under}.", f"{under}[")) for p in paths), text
        assert len(set(paths)) == len(paths), text


def test_privacy_policy_of_an_unknown_skill_is_refused_before_any_server_starts():
    servers = {"notes": {"command": "x"}}
    with pytest.raises(ConfigError, match=r"privacy.skills: unknown skill\(s\) 'tim.now'"):
        parse_config({"mcpServers": servers, "privacy": {"skills": {"tim.now": "refuse"}}})
    # built-in skills, and a server's tools (known once it lists them), pass here
    cfg = parse_config(
        {
            "mcpServers": servers,
            "privacy": {"skills": {"time.now": "redact", "notes.add": "refuse"}},
        }
    )
    assert cfg.privacy.skills == {"time.now": "redact", "notes.add": "refuse"}


async def test_the_server_logs_what_its_configuration_ignored(tmp_path, caplog):
    """Under ``langgraph dev`` there is no terminal: the warnings go to the logger."""
    from hybridmcp.runtime import Context, close_shared, resources_for

    path = tmp_path / "hybrid.yaml"
    path.write_text("mcpServers:\n  paused: {command: x, disabled: true, dev: {watch: x}}\n")
    with caplog.at_level("WARNING", logger="hybridmcp.config"):
        resources = await resources_for(Context(config_path=str(path)))
        await close_shared()
    assert resources.pool.statuses() == {}  # the disabled server was never started
    assert [r.getMessage() for r in caplog.records if r.name == "hybridmcp.config"] == [
        f"{path}: mcpServers.paused.dev: unknown key, ignored"
    ]


def test_yaml_booleans_as_names_are_named():
    with pytest.raises(ConfigError) as err:
        parse_config(yaml.safe_load("mcpServers:\n  off: {command: x}\n"))
    assert str(err.value) == (
        "invalid configuration in <config>: mcpServers: the key False is not a string (YAML "
        "reads an unquoted on, off, yes, no, true or false as a boolean: quote the name)"
    )


KEYS = st.sampled_from(
    ["mcpServers", "servers", "skills", "privacy", "optimization_criteria", "inputs", "x"]
)
SERVER = st.fixed_dictionaries(
    {},
    optional={
        "command": JSON,
        "url": JSON,
        "type": st.sampled_from(["stdio", "http", "sse", "ws"]) | JSON,
        "args": JSON,
        "headers": JSON,
        "timeout": JSON,
        "disabled": JSON,
    },
)
DOCUMENT = st.dictionaries(
    KEYS,
    JSON
    | st.dictionaries(
        st.text(max_size=4) | st.booleans() | st.integers(), SERVER | JSON, max_size=3
    ),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(DOCUMENT)
def test_any_document_loads_or_is_refused_line_by_line(document):
    """Whatever the document, a configuration or a ConfigError: never another exception, and
    every line of the error says something."""
    try:
        parse_config(document)
    except ConfigError as err:
        lines = str(err).splitlines()
        assert all(line.strip() for line in lines)
        if len(lines) > 1:
            assert lines[0].endswith(f"({len(lines) - 1} problems):")


@pytest.mark.parametrize("name", ["\r[", "odd.[/s]", "a[b]", "list"])
def test_a_key_with_brackets_is_named_in_its_error_not_read_as_a_union(name):
    """Pydantic names a union's members ``dict[str,...]``; a skill the user named with a ``[``
    is still a key, and its error names it."""
    with pytest.raises(ConfigError) as err:
        parse_config({"skills": {name: None}})
    message = str(err.value)
    assert f"skills{key_path(name)}: Input should be a valid dictionary" in message, message
    assert "expected" not in message


def test_vscode_and_cursor_variables_and_env_file(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / ".vscode").mkdir(parents=True)
    (project / ".env").write_text(
        "# secrets\nexport API_KEY='k1'\nREGION=eu\n\nMODE=\"from file\"\n"
    )
    monkeypatch.setenv("HYBRIDMCP_TEST_TOKEN", "t0k")
    monkeypatch.delenv("HYBRIDMCP_TEST_UNSET", raising=False)
    path = project / ".vscode" / "mcp.json"
    path.write_text(
        json.dumps(
            {
                "servers": {
                    "local": {
                        "type": "stdio",
                        "command": "${userHome}/bin/server",
                        "args": ["--root", "${workspaceFolder}"],
                        "env": {"MODE": "explicit"},
                        "envFile": "${workspaceFolder}/.env",
                    },
                    "remote": {
                        "type": "http",
                        "url": "https://example.test/mcp",
                        "headers": {
                            "Authorization": "Bearer ${env:HYBRIDMCP_TEST_TOKEN}",
                            "X-Key": "${input:api-key}",
                        },
                    },
                    "off": {
                        "url": "u",
                        "headers": {"A": "${env:HYBRIDMCP_TEST_UNSET}"},
                        "disabled": True,
                    },
                }
            }
        )
    )
    cfg = load_config(path)
    local, remote = cfg.mcpServers["local"], cfg.mcpServers["remote"]
    assert local.command == f"{Path.home()}/bin/server"
    assert local.args == ["--root", str(project)]
    assert local.env == {"API_KEY": "k1", "REGION": "eu", "MODE": "explicit"}
    assert remote.headers == {"Authorization": "Bearer t0k", "X-Key": "${input:api-key}"}
    assert cfg.warnings == [
        f"{path}: servers.remote.headers.X-Key: ${{input:api-key}} cannot be prompted for; "
        "left as written"
    ]
    # an unset variable or a missing env file is a problem of the configuration
    with pytest.raises(ConfigError) as err:
        parse_config(
            {
                "mcpServers": {
                    "a": {"url": "u", "headers": {"A": "${env:HYBRIDMCP_TEST_UNSET}"}},
                    "b": {"command": "x", "envFile": "missing.env"},
                }
            },
            base_dir=tmp_path,
        )
    assert str(err.value).splitlines()[1:] == [
        "  mcpServers.a.headers.A: environment variable 'HYBRIDMCP_TEST_UNSET' is not set",
        f"  mcpServers.b.envFile: cannot read '{tmp_path / 'missing.env'}': "
        "No such file or directory",
    ]


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"mcpServers": {"s": {"command": "x", "timeout_ms": 1e300}}}, "mcpServers.s.timeout_ms"),
        ({"mcpServers": {"s": {"command": "x", "timeout": 1e300}}}, "mcpServers.s.timeout"),
        (
            {"mcpServers": {"s": {"command": "x", "startup_timeout_ms": 1e20}}},
            "mcpServers.s.startup_timeout_ms",
        ),
        (
            {"mcpServers": {"s": {"url": "http://h/mcp", "sse_read_timeout": 1e18}}},
            "mcpServers.s.sse_read_timeout",
        ),
        (
            {
                "mcpServers": {
                    "s": {"command": "x", "session_kwargs": {"read_timeout_seconds": 1e16}}
                }
            },
            "mcpServers.s.session_kwargs.read_timeout_seconds",
        ),
        ({"coordination_config": {"default_timeout_ms": 1e300}}, "default_timeout_ms"),
        ({"resilience": {"pool": {"max_queue_wait_ms": 1e300}}}, "max_queue_wait_ms"),
        ({"llm_config": {"timeout_ms": 1e300}}, "llm_config.timeout_ms"),
    ],
)
def test_a_duration_no_timer_can_hold_is_refused_naming_its_key(data, path):
    """A deadline of 1e300 ms once made every call to the server wait forever (no timer, no
    error): durations are bounded like every other value, the key named."""
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert path in str(err.value)
    assert "30 days" in str(err.value)


def test_a_long_but_sane_duration_is_kept():
    config = parse_config({"mcpServers": {"s": {"command": "x", "timeout_ms": 86_400_000}}})
    assert config.mcpServers["s"].timeout_ms == 86_400_000


def test_a_vscode_mcp_json_with_comments_and_trailing_commas_loads(tmp_path):
    """VS Code and Cursor write mcp.json as JSON with comments (JSONC): comments and trailing
    commas are read as they do, and text inside strings (a URL's ``//``) is left alone."""
    folder = tmp_path / ".vscode"
    folder.mkdir()
    path = folder / "mcp.json"
    path.write_text(
        "{\n"
        "  // the servers of this workspace\n"
        '  "servers": {\n'
        '    "web": {"type": "http", "url": "https://example.com/mcp", /* the API */\n'
        '            "headers": {"X-Note": "a /* not a comment */ // either",},},\n'
        '    "time": {"command": "mcp-server-time", "args": ["--local-timezone", "UTC",],},\n'
        "  },\n"
        "}\n"
    )
    cfg = load_config(path)
    assert cfg.mcpServers["web"].url == "https://example.com/mcp"
    assert cfg.mcpServers["web"].headers == {"X-Note": "a /* not a comment */ // either"}
    assert cfg.mcpServers["time"].args == ["--local-timezone", "UTC"]


def test_an_error_in_a_json_file_with_comments_keeps_its_line(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{\n  /* one\n  two */\n  "servers": {"a": {"command": "x"}}\n  "x": 1\n}\n')
    with pytest.raises(ConfigError, match="line 5 column 3"):
        load_config(path)

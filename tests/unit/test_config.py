import json

import pytest

from hybridmcp.config import HttpServer, StdioServer, load_config, parse_config
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

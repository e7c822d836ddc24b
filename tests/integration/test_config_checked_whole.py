"""A configuration is checked whole before any MCP server starts: every problem on a line of
its own, all at once, exit 2, and no server process started."""

from __future__ import annotations

import json
import sys

import yaml

from tests.integration.test_durable import cli, cli_env


def config_with(marker, **changes):
    """A stdio server that leaves ``marker`` behind when it is started, an HTTP one, and an
    internal provider; ``changes`` break some of it."""
    touch = f"import pathlib; pathlib.Path({str(marker)!r}).touch()"
    data = {
        "optimization_criteria": {
            "performance_weight": 0.4,
            "cost_weight": 0.3,
            "quality_weight": 0.2,
            "security_weight": 0.1,
        },
        "mcpServers": {
            "starter": {"command": sys.executable, "args": ["-c", touch]},
            "remote": {"url": "http://127.0.0.1:9/mcp", "timeout_ms": 500},
        },
        "skills": {
            "double": {
                "providers": [
                    {"side": "internal", "function": "hybridmcp.capabilities.builtin:text_stats"},
                    {"side": "external", "server": "remote", "tool": "double"},
                ]
            }
        },
    }
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value
    return data


def test_every_problem_at_once_and_no_server_started(tmp_path):
    marker = tmp_path / "started"
    config = tmp_path / "hybrid.yaml"
    config.write_text(
        yaml.safe_dump(
            config_with(
                marker,
                optimization_criteria__performance_weight=5,
                optimization_criteria__cost_weight=5,
                optimization_criteria__quality_weight=5,
                optimization_criteria__security_weight=5,
                mcpServers__remote__timeout_ms=-1,
                mcpServers__starter__args="-c",
                skills__double__providers__0__function="no_such_module:double",
                skills__double__providers__1__server="elsewhere",
            )
        )
    )
    for command in (["run", "--db", ":memory:"], ["servers"], ["tools"]):
        proc = cli(*command, "--config", str(config), cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.splitlines()
        assert lines[0] == f"error: invalid configuration in {config} (5 problems):", lines
        problems = sorted(line.strip().partition(":")[0] for line in lines[1:])
        assert problems == [
            "mcpServers.remote.timeout_ms",
            "mcpServers.starter.args",
            "optimization_criteria",
            "skills.double.providers.0.function",
            "skills.double.providers.1.server",
        ], lines
        assert "Traceback" not in proc.stderr
        assert not marker.exists(), f"{command}: a server was started"
    # the same file, put right, starts the server: the marker test can fail
    config.write_text(yaml.safe_dump(config_with(marker)))
    proc = cli("servers", "--config", str(config), "--json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # both servers are down: neither is a real one
    assert marker.exists()


def test_a_negative_timeout_is_one_line(tmp_path):
    """Not one line per transport the entry could have been, nor the HTTP server's errors."""
    config = tmp_path / "mcp.json"
    config.write_text(
        json.dumps({"mcpServers": {"remote": {"url": "http://127.0.0.1:9/mcp", "timeout_ms": -5}}})
    )
    proc = cli("servers", "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"error: invalid configuration in {config}: mcpServers.remote.timeout_ms: "
        "Input should be greater than 0 (got -5)"
    ]


def test_weights_that_do_not_sum_to_one_are_refused_in_one_line(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("optimization_criteria: {cost_weight: 0.5}\n")
    proc = cli("tools", "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 2
    (line,) = proc.stderr.splitlines()
    assert "optimization_criteria: the weights must sum to 1" in line
    assert "got 1.2 = performance 0.4 (default) + cost 0.5 + quality 0.2 (default)" in line


def test_a_module_beside_the_configuration_imports_from_any_directory(tmp_path):
    """``function: mytools:double`` finds ``mytools.py`` next to the configuration file, and
    ``mytools`` finds its own neighbours, whatever the working directory."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "_factor.py").write_text("FACTOR = 2\n")
    (project / "mytools.py").write_text(
        "from _factor import FACTOR\n\n\ndef double(n: int) -> dict:\n"
        "    return {'value': n * FACTOR}\n"
    )
    config = project / "hybrid.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "skills": {
                    "double": {
                        "input_schema": {
                            "type": "object",
                            "properties": {"n": {"type": "integer"}},
                            "required": ["n"],
                        },
                        "providers": [{"side": "internal", "function": "mytools:double"}],
                    }
                }
            }
        )
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    task = elsewhere / "task.json"
    task.write_text(json.dumps({"requests": [{"id": "d", "skill": "double", "args": {"n": 21}}]}))
    for cwd in (elsewhere, project):
        proc = cli("run", str(task), "--config", str(config), "--json", "--db", ":memory:", cwd=cwd)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["results"][0]["value"] == {"value": 42}
    # a module that is neither installed nor beside the configuration: one line, exit 2
    config.write_text(config.read_text().replace("mytools:double", "othertools:double"))
    proc = cli("run", str(task), "--config", str(config), "--db", ":memory:", cwd=elsewhere)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"error: invalid configuration in {config}: skills.double.providers.0.function: "
        "cannot import 'othertools': No module named 'othertools' (got 'othertools:double')"
    ]


def test_the_cli_reads_the_configuration_named_by_hybridmcp_config(tmp_path):
    named = tmp_path / "named.yaml"
    named.write_text("mcpServers:\n  elsewhere: {command: nothing-here, disabled: true}\n")
    given = tmp_path / "given.yaml"
    given.write_text("mcpServers:\n  other: {command: nothing-here, disabled: true}\n")
    env = cli_env(HYBRIDMCP_CONFIG=str(named))
    listed = cli("servers", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [s["server"] for s in json.loads(listed.stdout)] == ["elsewhere"]
    overridden = cli("servers", "--json", "-c", str(given), env=env)  # --config wins
    assert [s["server"] for s in json.loads(overridden.stdout)] == ["other"]
    missing = cli("run", "--json", env=cli_env(HYBRIDMCP_CONFIG=str(tmp_path / "gone.yaml")))
    assert missing.returncode == 2 and missing.stdout == ""
    assert "gone.yaml" in missing.stderr and "(named by $HYBRIDMCP_CONFIG)" in missing.stderr

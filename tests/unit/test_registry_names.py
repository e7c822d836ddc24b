"""The error for a skill name the registry does not know."""

import logging

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp.types import Tool

from hybridmcp.capabilities.registry import LISTED_SKILLS, build_registry, unknown_skills
from hybridmcp.config import parse_config

SERVER_TOOLS = ["ev.get-tiny-image", "ev.get-sum", "ev.trigger-long-running-operation", "ev.echo"]


def test_a_name_with_other_case_or_separators_points_to_the_known_one():
    said = unknown_skills(["ev.getTinyImage"], SERVER_TOOLS)
    assert said.startswith("unknown skill 'ev.getTinyImage' (did you mean 'ev.get-tiny-image'?)")
    assert said.endswith(
        "known skills: ev.echo, ev.get-sum, ev.get-tiny-image, ev.trigger-long-running-operation"
    )


def test_a_near_spelling_points_to_the_known_one_and_a_far_one_to_nothing():
    assert "(did you mean 'ev.echo'?)" in unknown_skills(["ev.ecoh"], SERVER_TOOLS)
    assert "did you mean" not in unknown_skills(["weather.forecast"], SERVER_TOOLS)


def test_many_known_skills_are_not_listed_but_counted():
    known = [f"s{i}.tool" for i in range(LISTED_SKILLS + 1)]
    said = unknown_skills(["s1.Tool", "zz"], known)
    assert said.startswith("unknown skills 's1.Tool' (did you mean 's1.tool'?), 'zz';")
    assert said.endswith(f"{LISTED_SKILLS + 1} skills are known (`hybridmcp tools` lists them)")


@given(st.lists(st.from_regex(r"[a-z]{1,6}\.[a-z][a-z_-]{0,12}", fullmatch=True), min_size=1))
def test_a_known_name_spelled_in_another_case_is_always_found(known):
    target = known[0]
    said = unknown_skills([target.upper().replace("-", "_")], known)
    folded = {
        k
        for k in known
        if k.replace("-", "").replace("_", "") == target.replace("-", "").replace("_", "")
    }
    assert any(f"(did you mean {k!r}?)" in said for k in folded)


# Servers and tools named with dots: ``a`` listing ``b.c`` and ``a.b`` listing ``c`` are both
# ``a.b.c``. Every tool is called by its ``server.tool`` name, or a warning names it.
_part = st.sampled_from(["a", "b", "c", "a.b", "b.c", "x/y", "é"])


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(_part, st.lists(_part, min_size=1, max_size=3), min_size=1, max_size=4))
def test_every_tool_is_callable_by_its_server_tool_name_or_a_warning_names_it(listing) -> None:
    config = parse_config({"mcpServers": {s: {"command": "x"} for s in listing}})
    tools = {s: [Tool(name=t, inputSchema={}) for t in ts] for s, ts in listing.items()}
    handler = _Records()
    logging.getLogger("hybridmcp.registry").addHandler(handler)
    try:
        registry = build_registry(config, tools)
    finally:
        logging.getLogger("hybridmcp.registry").removeHandler(handler)
    warned = " ".join(handler.messages)
    for server, names in listing.items():
        for tool in names:
            (provider,) = registry.get(f"{server}.{tool}").providers
            if (provider.server, provider.tool) != (server, tool):
                assert f"{server}/{tool} is not" in warned
                assert f"{provider.server}/{provider.tool} is called" in warned


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

"""Effect classes (invariant 9): where they come from, and what a write may not do."""

import pytest
from mcp.types import Tool, ToolAnnotations

from hybridmcp.capabilities.registry import build_registry, relisted
from hybridmcp.config import ResilienceConfig, parse_config
from hybridmcp.errors import TaskError
from hybridmcp.policy.arbitration import add_probe, arbitrate
from hybridmcp.policy.degradation import plan_round
from hybridmcp.policy.effects import tool_effect
from hybridmcp.policy.hedging import watch_plan
from tests.unit.test_scoring import ARB, CRIT, MAP, analyze_requirements, cand


def tool(name="t", **hints):
    return Tool(
        name=name,
        inputSchema={"type": "object"},
        annotations=ToolAnnotations(**hints) if hints else None,
    )


@pytest.mark.parametrize(
    ("hints", "read_only", "effect"),
    [
        ({"readOnlyHint": True}, False, "read"),
        ({"readOnlyHint": False, "idempotentHint": True}, False, "idempotent"),
        ({"destructiveHint": True, "idempotentHint": False}, False, "write"),
        ({"destructiveHint": False}, False, "write"),  # additive, not idempotent: a write
        ({}, False, "write"),  # says nothing
        ({}, True, "read"),  # says nothing, on a server marked read_only
        ({"title": "T"}, False, "write"),  # a title is not a hint
        # contradictory: read-only and destructive; the safe reading is a write
        ({"readOnlyHint": True, "destructiveHint": True}, False, "write"),
        ({"readOnlyHint": True, "destructiveHint": True}, True, "write"),
        ({"readOnlyHint": True, "destructiveHint": False}, False, "read"),
        ({"openWorldHint": True}, False, "write"),  # says nothing of what it changes
    ],
)
def test_tool_effect_from_annotations(hints, read_only, effect):
    t = Tool(name="t", inputSchema={"type": "object"}, annotations=ToolAnnotations(**hints))
    assert tool_effect(t, server_read_only=read_only) == effect


def test_config_overrides_annotations_per_provider_and_skill():
    cfg = parse_config(
        {
            "mcpServers": {"s": {"command": "x"}, "ro": {"command": "x", "read_only": True}},
            "skills": {
                "a.one": {"providers": [{"side": "external", "server": "s", "tool": "w"}]},
                "a.two": {
                    "effect": "idempotent",
                    "providers": [{"side": "external", "server": "s", "tool": "w"}],
                },
                "a.three": {
                    "providers": [
                        {"side": "external", "server": "s", "tool": "w", "effect": "read"},
                        {"side": "internal", "function": "tests.helpers:echo_text"},
                    ]
                },
            },
        }
    )
    reg = build_registry(
        cfg,
        {
            "s": [tool("w", destructiveHint=True)],
            "ro": [tool("q"), tool("d", destructiveHint=True)],
        },
    )
    assert reg.get("a.one").effect == "write"
    assert reg.get("a.two").effect == "idempotent"
    assert reg.get("a.three").effect == "read"  # internal providers are read unless declared
    assert reg.get("ro.q").effect == "read" and reg.get("ro.d").effect == "write"


def test_a_relisted_server_takes_its_tools_new_annotations_and_nothing_else():
    """``s`` lists ``w`` (read-only), then ``late`` (destructive) and ``w`` again, read-only
    still; ``gone`` leaves its list: it keeps its class. A declared effect wins over the new
    annotations; the other server's providers and skills added since (a tool given to a
    HybridToolNode) are kept as they were."""
    cfg = parse_config(
        {
            "mcpServers": {"s": {"command": "x"}, "o": {"command": "x"}},
            "skills": {
                "n.late": {"providers": [{"side": "external", "server": "s", "tool": "late"}]},
                "n.kept": {
                    "effect": "read",
                    "providers": [{"side": "external", "server": "s", "tool": "late"}],
                },
                "n.gone": {"providers": [{"side": "external", "server": "s", "tool": "gone"}]},
                "n.other": {"providers": [{"side": "external", "server": "o", "tool": "x"}]},
            },
        }
    )
    first = build_registry(cfg, {"s": [tool("w", readOnlyHint=True), tool("gone")], "o": []})
    assert first.get("n.late").effect == "read"  # not listed: a call cannot act
    assert first.get("n.gone").effect == "write" and first.get("n.other").effect == "read"
    first.skills["mine"] = first.get("s.w")  # registered after start-up
    listing = [tool("w", readOnlyHint=True), tool("late", destructiveHint=True)]
    fresh = build_registry(cfg, {"s": listing, "o": []})
    after = relisted(first, fresh, "s", [t.name for t in listing])
    assert after is not first and first.get("n.late").effect == "read"  # a new registry
    assert after.get("n.late").effect == "write"
    assert after.get("s.late").effect == "write"  # a skill of its own, as at start-up
    assert after.get("n.kept").effect == "read"  # declared
    assert after.get("n.gone").effect == "write"  # no longer listed: kept
    assert after.get("n.other").effect == "read" and after.get("s.w").effect == "read"
    assert after.get("mine") is first.get("mine")
    assert after.provider("mcp:s/late").effect == "write"


def decide(critical=False, strategy="auto", effect="write"):
    return arbitrate(
        strategy=strategy,
        critical=critical,
        profile=analyze_requirements(skill="s.x", tags=(), complexity="low", args={}),
        candidates=[cand("i", "internal"), cand("e", "external", latency=5, cost=0.001)],
        criteria=CRIT,
        arbitration=ARB,
        mapping=MAP,
        effect=effect,
    )


@pytest.mark.parametrize(
    ("critical", "strategy"), [(True, "auto"), (False, "hybrid"), (False, "auto")]
)
def test_a_write_runs_on_one_side(critical, strategy):
    a = decide(critical, strategy)
    assert a["mode"] in ("internal", "external") and len(a["providers"]) == 1
    assert a["effect"] == "write" and "write effect" in a["rule"]
    assert decide(critical, strategy, effect="read")["mode"] == "hybrid"


def test_a_write_is_never_probed_nor_hedged():
    a = decide()
    assert add_probe(a, "e" if a["mode"] == "internal" else "i", "probe") is a
    a["scores"][a["providers"][0]]["prediction"]["observations"] = 100
    assert watch_plan(a, a["providers"][0], ResilienceConfig())["hedge"] is None


SIDES = {"i": "internal", "e": "external"}
ALLOC = {"mode": "external", "providers": ["e"], "ranking": ["e", "i"], "scores": {}}


def failed(sent, **extra):
    return {"request_id": "r", "provider": "e", "side": "external", "round": 1, "ok": False,
            "latency_ms": 3.0, "error": "boom", "sent": sent} | extra  # fmt: skip


def plan(attempt, effect="write"):
    return plan_round(
        requests=["r"],
        allocations={"r": ALLOC},
        attempts=[attempt],
        round_no=1,
        max_rounds=3,
        sides=SIDES,
        effects={"e": effect, "i": "read"},
    )


def test_a_write_that_may_have_reached_the_server_is_not_moved():
    p = plan(failed(True, error_kind="timeout"))
    assert not p.moves and p.failed["r"].startswith("outcome_unknown")
    assert p.events[-1]["code"] == "WRITE_NOT_REPEATED" and p.events[-1]["outcome"] == "unknown"



@pytest.mark.parametrize(
    "answer",
    [
        {"tool_error": True, "error_kind": "provider"},  # the tool's error
        {  # a tool's error answer naming the request
            "error_kind": "request",
            "tool_error": True,
            "error": "e rejected the request: no such table: t",
        },
    ],
)
def test_a_writes_error_answer_leaves_its_outcome_unknown(answer):
    """A write's tool that answers with an error may have written before failing (a SQL
    batch whose first statement was kept): the request is not moved nor repeated and ends
    ``outcome_unknown``, never worded as a write known to have failed, whether the error is
    the tool's or names the request (which stays the request's error, not the provider's)."""
    p = plan(failed(True) | answer)
    assert not p.moves and p.failed["r"].startswith("outcome_unknown"), p.failed
    assert "does not say that nothing was written" in p.failed["r"]
    [held] = [e for e in p.events if e["code"] == "WRITE_NOT_REPEATED"]
    assert held["outcome"] == "unknown"
    codes = [e["code"] for e in p.events]
    assert ("REQUEST_ERROR" in codes) == (answer["error_kind"] == "request")


@pytest.mark.parametrize("error_kind", ["provider", "request"])
def test_an_idempotent_tools_error_answer_is_no_unknown_outcome(error_kind):
    """A tool annotated idempotent may be repeated: its error answer is moved (the tool's
    failure) or is the request's error, with no outcome left unknown."""
    p = plan(failed(True, tool_error=error_kind == "provider", error_kind=error_kind), "idempotent")
    assert not any(e["code"] == "WRITE_NOT_REPEATED" for e in p.events)
    if error_kind == "request":
        assert p.failed["r"].startswith("request error"), p.failed
    else:
        assert [m["provider"] for m in p.moves] == ["i"], p


def test_a_write_found_in_flight_after_its_process_stopped_blames_nobody():
    """A resumed run's write whose earlier process stopped mid-call (``censored: run
    stopped``): not moved, ``outcome_unknown``, and no degradation of its provider."""
    error = "outcome_unknown: an earlier run of this thread dispatched this write ..."
    p = plan(failed(True, error=error, replayed=True, censored="run stopped"))
    assert not p.moves and p.failed["r"].startswith("outcome_unknown")
    assert [e["code"] for e in p.events] == ["WRITE_NOT_REPEATED"]


def test_a_write_never_sent_moves_and_other_effects_move_anyway():
    assert [m["provider"] for m in plan(failed(False, error_kind="refused")).moves] == ["i"]
    assert [m["provider"] for m in plan(failed(True), effect="idempotent").moves] == ["i"]


def test_each_skill_mapping_of_a_tool_is_its_own_provider():
    mapped = {"side": "external", "server": "s", "tool": "w"}
    cfg = parse_config(
        {
            "mcpServers": {"s": {"command": "x"}},
            "skills": {
                "a.plain": {"providers": [mapped]},
                "a.same": {"providers": [mapped]},
                "a.text": {"providers": [mapped | {"arguments": {"x": "$.text"}, "result": "$.y"}]},
            },
        }
    )
    reg = build_registry(cfg, {"s": [tool("w", readOnlyHint=True)]})
    ids = {name: reg.get(name).providers[0].id for name in ("a.plain", "a.same", "a.text", "s.w")}
    # today's id where the mapping is the same (statistics shared), its own where it differs
    assert ids == {
        "a.plain": "mcp:s/w",
        "a.same": "mcp:s/w",
        "a.text": "mcp:s/w#a.text",
        "s.w": "mcp:s/w",
    }
    assert reg.provider("mcp:s/w#a.text").arguments == {"x": "$.text"}
    assert reg.provider("mcp:s/w").arguments is None


def test_a_tool_given_another_deadline_effect_or_price_by_a_skill_is_its_own_provider():
    """Calls find their provider by id: a second skill's ``timeout_ms``, ``effect`` or
    ``cost_per_call`` for a tool, under the first skill's id, was never used (a click given
    1.5 s ran for as long as the first skill allowed)."""
    mapped = {"side": "external", "server": "s", "tool": "w"}
    cfg = parse_config(
        {
            "mcpServers": {"s": {"command": "x", "timeout_ms": 60_000}},
            "skills": {
                "a.plain": {"providers": [mapped]},
                "a.brief": {"providers": [mapped | {"timeout_ms": 1_500}]},
                "a.kept": {"providers": [mapped | {"effect": "idempotent"}]},
                "a.cheap": {"providers": [mapped | {"cost_per_call": 0.0}]},
            },
        }
    )
    reg = build_registry(cfg, {"s": [tool("w", destructiveHint=True)]})
    providers = {name: reg.get(name).providers[0] for name in ("a.plain", "a.brief", "a.kept")}
    providers["a.cheap"] = reg.get("a.cheap").providers[0]
    assert {name: p.id for name, p in providers.items()} == {
        "a.plain": "mcp:s/w",
        "a.brief": "mcp:s/w#a.brief",
        "a.kept": "mcp:s/w#a.kept",
        "a.cheap": "mcp:s/w#a.cheap",
    }
    for p in providers.values():
        assert reg.provider(p.id) == p
    assert reg.provider("mcp:s/w#a.brief").timeout_ms == 1_500
    assert reg.provider("mcp:s/w#a.kept").effect == "idempotent"
    assert reg.provider("mcp:s/w").effect == "write"
    assert reg.get("s.w").providers[0].id == "mcp:s/w"  # the generic skill: same as a.plain


def test_a_relisted_servers_own_tool_skills_take_its_new_schemas_and_lose_what_it_dropped():
    """``s`` lists ``echo`` with a ``count`` of strings and ``gone``; then ``echo`` with a
    ``count`` of integers, and no ``gone``. ``s.echo`` checks arguments against the new schema
    and description; ``s.gone`` is refused with one line and no longer offered to a model,
    its provider kept for a run already using it; a configured skill of ``gone`` is kept."""

    def echo(kind: str) -> Tool:
        schema = {"type": "object", "properties": {"count": {"type": kind}}}
        return Tool(name="echo", description=f"count as {kind}", inputSchema=schema)

    cfg = parse_config(
        {
            "mcpServers": {"s": {"command": "x"}},
            "skills": {
                "n.gone": {"providers": [{"side": "external", "server": "s", "tool": "gone"}]}
            },
        }
    )
    first = build_registry(cfg, {"s": [echo("string"), tool("gone")]})
    first.get("s.echo").validate_args({"count": "3"})
    listing = [echo("integer")]
    after = relisted(first, build_registry(cfg, {"s": listing}), "s", [t.name for t in listing])
    after.get("s.echo").validate_args({"count": 3})
    with pytest.raises(TaskError, match=r"^skill 's.echo': argument count: '3' is not of type"):
        after.get("s.echo").validate_args({"count": "3"})
    assert after.get("s.echo").description == "count as integer"
    with pytest.raises(TaskError) as refused:
        after.get("s.gone").validate_args({})
    assert str(refused.value) == (
        "skill 's.gone': MCP server 's' no longer lists the tool 'gone' (its tool list "
        "changed); `hybridmcp tools` lists what it has"
    )
    names = [entry["name"] for entry in after.catalogue()]
    assert "s.gone" not in names and "s.echo" in names and "n.gone" in names
    assert after.provider("mcp:s/gone").tool == "gone"  # a run using it goes on
    after.get("n.gone").validate_args({})
    back = [echo("integer"), tool("gone")]  # listed again: callable again
    again = relisted(after, build_registry(cfg, {"s": back}), "s", [t.name for t in back])
    again.get("s.gone").validate_args({})


def test_a_write_whose_arguments_the_protocol_rejected_wrote_nothing():
    """JSON-RPC -32602 (the server refused the arguments before any tool ran) is the
    request's error, and no write was made: no outcome is left unknown."""
    p = plan(failed(True, error_kind="request", error="e rejected the arguments: bad 'sql'"))
    assert not p.moves and p.failed["r"].startswith("request error"), p.failed
    assert not any(e["code"] == "WRITE_NOT_REPEATED" for e in p.events), p.events

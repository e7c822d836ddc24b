"""The fault server's pure parts: the fault plan, output shaping, config loading, the tools."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from hybridmcp.errors import ConfigError
from hybridmcp.testing.faultserver import (
    FAULTABLE_TOOLS,
    WRONG_ANSWERS,
    FaultDecision,
    FaultPlan,
    ToolInputError,
    calculate,
    call_rng,
    convert_time,
    current_time,
    load_fault_config,
    render_output,
    word_count,
)


def plan(config: dict) -> FaultPlan:
    return FaultPlan.from_config(config, known_tools=FAULTABLE_TOOLS)


def decide(p: FaultPlan, tool: str, call: int, total: int | None = None, seed: int = 1):
    return p.decide(tool, call, call if total is None else total, call_rng(seed, tool, call))


# ---- validation -----------------------------------------------------------------------------


def test_empty_plan_answers_normally_without_delay():
    d = decide(FaultPlan(), "echo", 1)
    assert d == FaultDecision()
    assert (d.action, d.output, d.delay_s) == ("answer", "normal", 0.0)
    assert FaultPlan.from_config(None) == FaultPlan()


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({"echo": {"fail_rat": 0.5}}, "faults.echo.fail_rat"),
        ({"echo": {"fail_rate": 2}}, "faults.echo.fail_rate"),
        ({"echo": {"fail_rate": -0.1}}, "faults.echo.fail_rate"),
        ({"echo": {"latency_ms": "100"}}, "faults.echo.latency_ms"),
        ({"echo": {"latency_ms": -5}}, "faults.echo.latency_ms"),
        ({"*": {"fail_first": True}}, "faults.*.fail_first"),
        ({"*": {"hang": "yes"}}, "faults.*.hang"),
        ({"sleep": {"crash_after": -1}}, "faults.sleep.crash_after"),
        ({"calculate": {"malformed": "garbage"}}, "faults.calculate.malformed"),
        ({"calculate": {"oversized_bytes": 1.5}}, "faults.calculate.oversized_bytes"),
        ({"calculate": {"error_text": 3}}, "faults.calculate.error_text"),
        ({"calcluate": {"fail_rate": 1}}, "unknown tool 'calcluate'"),
        ({"echo": [1, 2]}, "faults.echo: expected an object"),
    ],
)
def test_bad_config_names_the_key(config, needle):
    with pytest.raises(ConfigError) as info:
        plan(config)
    assert needle in str(info.value)


def test_config_must_be_an_object():
    with pytest.raises(ConfigError, match="expected an object"):
        FaultPlan.from_config([{"echo": {}}])  # type: ignore[arg-type]


def test_unknown_tools_are_allowed_without_a_tool_list():
    assert FaultPlan.from_config({"anything": {"hang": True}}).faults["anything"].hang


def test_to_config_returns_only_given_keys():
    p = plan({"echo": {"fail_first": 2}, "*": {"latency_ms": 5}, "sleep": None})
    assert p.to_config() == {"echo": {"fail_first": 2}, "*": {"latency_ms": 5}, "sleep": {}}


# ---- decisions ------------------------------------------------------------------------------


def test_fail_first_fails_the_first_n_calls_of_the_tool():
    p = plan({"echo": {"fail_first": 2}})
    actions = [decide(p, "echo", n).action for n in (1, 2, 3, 4)]
    assert actions == ["fail", "fail", "answer", "answer"]
    assert decide(p, "calculate", 1).action == "answer"
    assert "fail_first=2" in decide(p, "echo", 1).reason


def test_wildcard_counting_keys_count_all_tool_calls():
    p = plan({"*": {"fail_first": 2}})
    # The second call overall fails even though it is the tool's first.
    assert decide(p, "calculate", 1, total=2).action == "fail"
    assert decide(p, "calculate", 1, total=3).action == "answer"


def test_tool_keys_override_wildcard_keys_one_by_one():
    p = plan({"*": {"latency_ms": 100, "fail_first": 1}, "echo": {"fail_first": 0}})
    d = decide(p, "echo", 1)
    assert d.action == "answer" and d.delay_s == pytest.approx(0.1)
    assert decide(p, "word_count", 1).action == "fail"


def test_crash_after_crashes_from_call_n_plus_one():
    p = plan({"sleep": {"crash_after": 2}})
    assert [decide(p, "sleep", n).action for n in (1, 2, 3, 4)] == [
        "answer",
        "answer",
        "crash",
        "crash",
    ]


def test_precedence_crash_then_hang_then_fail_then_outputs():
    everything = {"crash": True, "hang": True, "fail_first": 5, "error_text": "x"}
    assert decide(plan({"echo": everything}), "echo", 1).action == "crash"
    everything.pop("crash")
    assert decide(plan({"echo": everything}), "echo", 1).action == "hang"
    everything.pop("hang")
    assert decide(plan({"echo": everything}), "echo", 1).action == "fail"
    everything.pop("fail_first")
    d = decide(plan({"echo": everything}), "echo", 1)
    assert (d.action, d.output, d.error_text) == ("answer", "error_text", "x")
    outputs = {"malformed": "wrong_shape", "oversized_bytes": 10, "wrong_answer": True}
    assert decide(plan({"echo": outputs}), "echo", 1).output == "wrong_shape"
    outputs.pop("malformed")
    assert decide(plan({"echo": outputs}), "echo", 1).output == "oversized"
    outputs.pop("oversized_bytes")
    assert decide(plan({"echo": outputs}), "echo", 1).output == "wrong_answer"


@pytest.mark.parametrize(
    ("value", "output"),
    [(True, "invalid_json"), ("invalid_json", "invalid_json"), ("wrong_shape", "wrong_shape")],
)
def test_malformed_variants(value, output):
    assert decide(plan({"echo": {"malformed": value}}), "echo", 1).output == output


def test_rates_are_deterministic_for_a_seed_and_roughly_right():
    p = plan({"calculate": {"fail_rate": 0.3}})
    first = [decide(p, "calculate", n, seed=7).action for n in range(1, 2001)]
    again = [decide(p, "calculate", n, seed=7).action for n in range(1, 2001)]
    other = [decide(p, "calculate", n, seed=8).action for n in range(1, 2001)]
    assert first == again
    assert first != other
    assert 0.25 < first.count("fail") / len(first) < 0.35


def test_rate_extremes():
    never = plan({"echo": {"fail_rate": 0.0, "hang_rate": 0.0}})
    always_fail = plan({"echo": {"fail_rate": 1.0}})
    always_hang = plan({"echo": {"hang_rate": 1.0}})
    for n in range(1, 200):
        assert decide(never, "echo", n).action == "answer"
        assert decide(always_fail, "echo", n).action == "fail"
        assert decide(always_hang, "echo", n).action == "hang"


def test_decision_draws_do_not_depend_on_the_plan():
    rng_a, rng_b = random.Random(3), random.Random(3)
    FaultPlan().decide("echo", 1, 1, rng_a)
    plan({"echo": {"fail_rate": 0.5, "jitter_ms": 3}}).decide("echo", 1, 1, rng_b)
    assert rng_a.random() == rng_b.random()


def test_latency_and_jitter_bounds():
    p = plan({"echo": {"latency_ms": 50, "jitter_ms": 20}})
    delays = [decide(p, "echo", n).delay_s for n in range(1, 300)]
    assert all(0.050 <= d <= 0.070 for d in delays)
    assert len(set(delays)) > 1


# ---- outputs --------------------------------------------------------------------------------


RESULT = {"value": 42}


def test_render_normal_is_indented_json_and_structured():
    text, structured = render_output(FaultDecision(), RESULT)
    assert json.loads(text) == RESULT and structured == RESULT
    assert text == json.dumps(RESULT, indent=2)


def test_render_invalid_json():
    text, structured = render_output(FaultDecision(output="invalid_json"), RESULT)
    assert structured is None
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_render_wrong_shape():
    text, structured = render_output(FaultDecision(output="wrong_shape"), RESULT)
    assert json.loads(text) == structured == {"status": "ok", "data": [42]}


@pytest.mark.parametrize("size", [0, 5, 20, 1000, 100_000])
def test_render_oversized_is_exactly_that_many_bytes(size):
    text, structured = render_output(
        FaultDecision(output="oversized", oversized_bytes=size), RESULT
    )
    assert len(text.encode("utf-8")) == size and structured is None
    if size >= 1000:
        assert json.loads(text)["value"] == 42


def test_render_error_text():
    text, structured = render_output(FaultDecision(output="error_text", error_text="boom"), RESULT)
    assert (text, structured) == ("boom", None)


def test_wrong_answers_differ_plausibly():
    wrong = FaultDecision(output="wrong_answer")
    assert render_output(wrong, {"value": 41}, WRONG_ANSWERS["calculate"])[1] == {"value": 42}
    counts = word_count("One two. Three!")
    assert render_output(wrong, counts, WRONG_ANSWERS["word_count"])[1] == {**counts, "words": 4}
    assert render_output(wrong, {"text": "abc"}, WRONG_ANSWERS["echo"])[1] == {"text": "ab"}
    assert render_output(wrong, {"text": ""}, WRONG_ANSWERS["echo"])[1] != {"text": ""}
    assert render_output(wrong, {"slept_ms": 5}, WRONG_ANSWERS["sleep"])[1] == {"slept_ms": 6}
    assert render_output(wrong, {"a": 1})[1] != {"a": 1}


def test_wrong_time_is_three_hours_later():
    real = current_time("Europe/Paris")
    shifted = WRONG_ANSWERS["get_current_time"](real)
    delta = datetime.fromisoformat(shifted["datetime"]) - datetime.fromisoformat(real["datetime"])
    assert delta == timedelta(hours=3)
    assert shifted["timezone"] == "Europe/Paris"
    assert shifted["day_of_week"] == datetime.fromisoformat(shifted["datetime"]).strftime("%A")


def test_wrong_conversion_shifts_target_and_difference():
    real = convert_time("UTC", "12:00", "Asia/Tokyo")
    wrong = WRONG_ANSWERS["convert_time"](real)
    assert wrong["source"] == real["source"]
    assert wrong["target"]["datetime"] != real["target"]["datetime"]
    assert (real["time_difference"], wrong["time_difference"]) == ("+9.0h", "+12.0h")


# ---- config loading -------------------------------------------------------------------------


def test_load_inline_json_and_files(tmp_path):
    config = {"echo": {"fail_first": 1}}
    assert load_fault_config(json.dumps(config)) == config
    (tmp_path / "f.json").write_text(json.dumps(config))
    assert load_fault_config(str(tmp_path / "f.json")) == config
    (tmp_path / "f.yaml").write_text("echo:\n  fail_first: 1\n")
    assert load_fault_config(str(tmp_path / "f.yaml")) == config


def test_load_errors_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="invalid JSON"):
        load_fault_config("{not json")
    with pytest.raises(ConfigError, match="neither a JSON object nor an existing file"):
        load_fault_config(str(tmp_path / "missing.json"))
    (tmp_path / "bad.yaml").write_text("echo: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_fault_config(str(tmp_path / "bad.yaml"))


# ---- the tools ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 // 2", -4),
        ("7 % 3", 1),
        ("2 ** 10", 1024),
        ("2 ** -1", 0.5),
        ("-(3 - 5)", 2),
        ("+4", 4),
        ("1.5 * 4", 6),
        ("0.1 + 0.2", 0.1 + 0.2),
        ("2 ** 0.5", 2**0.5),
        ("10 ** 300", 10**300),
    ],
)
def test_calculate(expression, value):
    assert calculate(expression) == {"value": value}


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os').system('true')", "unsupported"),
        ("x + 1", "unsupported"),
        ("abs(-1)", "unsupported"),
        ("True + 1", "unsupported"),
        ("'a' * 3", "unsupported"),
        ("[1][0]", "unsupported"),
        ("1 +", "invalid expression"),
        ("1 / 0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("2 ** 100000", "too large"),
        ("9 ** 9 ** 9", "too large"),
        ("(2 ** 4000) * (2 ** 4000)", "too large"),
        ("1e308 * 10", "no finite value"),
        ("10.0 ** 400", "cannot evaluate"),
        ("(-8) ** 0.5", "not a real number"),
        ("1+" * 1500 + "1", "longer than"),
    ],
)
def test_calculate_refuses(expression, message):
    with pytest.raises(ToolInputError, match=message):
        calculate(expression)


@pytest.mark.parametrize(
    ("text", "words", "sentences"),
    [
        ("", 0, 0),
        ("hello", 1, 1),
        ("Hello world. How are you?", 5, 2),
        ("It's done!  Really done.\nYes", 5, 3),
    ],
)
def test_word_count(text, words, sentences):
    assert word_count(text) == {"words": words, "characters": len(text), "sentences": sentences}


def test_time_tools_match_mcp_server_time():
    reference = pytest.importorskip("mcp_server_time.server").TimeServer()
    for source, time, target in [
        ("UTC", "12:00", "Asia/Tokyo"),
        ("America/New_York", "09:30", "Europe/London"),
        ("Europe/Paris", "23:45", "Asia/Kathmandu"),
        ("Australia/Adelaide", "00:15", "America/Los_Angeles"),
    ]:
        expected = reference.convert_time(source, time, target).model_dump()
        assert convert_time(source, time, target) == expected
    ours, theirs = current_time("Asia/Tokyo"), reference.get_current_time("Asia/Tokyo")
    assert set(ours) == set(theirs.model_dump())
    gap = datetime.fromisoformat(ours["datetime"]) - datetime.fromisoformat(theirs.datetime)
    assert abs(gap) <= timedelta(seconds=5)


def test_current_time_is_now():
    result = current_time("UTC")
    assert abs(datetime.fromisoformat(result["datetime"]) - datetime.now(UTC)) < timedelta(
        seconds=5
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("Mars/Olympus", "12:00", "UTC"), "Invalid timezone"),
        (("UTC", "12:00", "europe/paris"), "Invalid timezone"),
        (("UTC", "25:00", "Asia/Tokyo"), "Invalid time format"),
        (("UTC", "noon", "Asia/Tokyo"), "Invalid time format"),
    ],
)
def test_convert_time_refuses(args, message):
    with pytest.raises(ToolInputError, match=message):
        convert_time(*args)


# ---- patterns: a slow start, bimodal latency, intermittent failures, a cut answer -----------


def test_a_slow_start_then_healthy():
    p = plan({"echo": {"latency_ms": 2, "slow_first": 3, "slow_ms": 100}})
    assert [decide(p, "echo", n).delay_s for n in range(1, 7)] == [0.102] * 3 + [0.002] * 3


def test_bimodal_latency_takes_the_slow_mode_at_its_rate_and_the_same_calls_every_time():
    p = plan({"echo": {"latency_ms": 5, "slow_rate": 0.25, "slow_ms": 200}})
    delays = [decide(p, "echo", n).delay_s for n in range(1, 2001)]
    assert set(delays) == {0.005, 0.205}
    assert 0.2 < delays.count(0.205) / len(delays) < 0.3
    assert delays == [decide(p, "echo", n).delay_s for n in range(1, 2001)]


def test_every_kth_call_fails_and_only_those():
    p = plan({"echo": {"fail_every": 3}})
    actions = [decide(p, "echo", n).action for n in range(1, 10)]
    assert actions == ["answer", "answer", "fail"] * 3
    assert decide(p, "echo", 6).reason == "fail_every=3 (call 6)"
    counted_over_all = plan({"*": {"fail_every": 2}})
    assert decide(counted_over_all, "echo", 1, total=4).action == "fail"


@pytest.mark.parametrize(
    ("how", "action"), [("stall", "partial_stall"), ("crash", "partial_crash")]
)
def test_a_cut_answer_comes_after_a_failure_would(how, action):
    assert decide(plan({"echo": {"partial": how}}), "echo", 1).action == action
    failing = plan({"echo": {"partial": how, "fail_first": 1}})
    assert [decide(failing, "echo", n).action for n in (1, 2)] == ["fail", action]


def test_new_patterns_are_validated_by_key():
    for bad, key in [
        ({"echo": {"fail_every": 0}}, "faults.echo.fail_every"),
        ({"echo": {"slow_rate": 1.5}}, "faults.echo.slow_rate"),
        ({"echo": {"partial": "later"}}, "faults.echo.partial"),
    ]:
        with pytest.raises(ConfigError, match=key):
            plan(bad)

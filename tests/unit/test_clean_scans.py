"""The gate's privacy step remembers small plain arguments that scanned clean: it must decide
exactly as a fresh scan would, whatever was seen before (real Presidio and detect-secrets)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hybridmcp.capabilities.gate import CallContext, ScanningPolicy, _CleanScans
from hybridmcp.capabilities.gate import _json as json_text
from hybridmcp.capabilities.registry import Provider
from hybridmcp.config import PrivacySettings
from hybridmcp.policy.privacy import PrivacyConfig

PROVIDER = Provider(
    id="mcp:s/t",
    skill="s.t",
    side="external",
    quality=0.9,
    expected_latency_ms=10,
    cost_per_call=0.0,
    clearance="public",
    timeout_ms=1000,
    server="s",
    tool="t",
)
CTX = CallContext("run", "r", "s.t", "run:r:s:1", "public")
SENSITIVE = [
    "alice.smith@example.com",
    "4111 1111 1111 1111",
    "+44 20 7946 0958",
    "536-22-1234",
    "hunter22hunter22",
    "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
]
WORDS = ["UTC", "Europe/Paris", "14:30", "note", "email", "phone", "password", "ssn", "card"]
scalars = st.one_of(
    st.sampled_from([*SENSITIVE, *WORDS]),
    st.text(max_size=12),
    st.integers(min_value=-(10**17), max_value=10**17),
    st.sampled_from([4111111111111111, 5362212341, 0, 1, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0]),
    st.booleans(),
    st.none(),
)
plain = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from([*WORDS, "a", "b"]), inner, max_size=4),
    ),
    max_leaves=8,
)
arguments = st.dictionaries(st.sampled_from([*WORDS, "x", "y"]), plain, max_size=4)


def _decision(policy: ScanningPolicy, args: dict[str, Any]) -> tuple[Any, ...]:
    d = policy.decide(PROVIDER, args, CTX)
    return d.action, d.reason, d.arguments, d.redactions, d.size


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seen=st.lists(arguments, max_size=6), args=arguments)
@example(seen=[{"UTC": "hunter22hunter22"}], args={"UTC": "alice.smith@example.com"})
def test_a_remembering_policy_decides_as_a_fresh_scan(
    seen: list[dict[str, Any]], args: dict[str, Any]
) -> None:
    policy = ScanningPolicy(PrivacySettings(policy="redact"))
    for n, earlier in enumerate([*seen, args]):  # each in a run of its own: what one run sent
        # before is joined with its later calls on purpose (a value cut over calls), which is
        # not what the memory of clean scans may change (tests/unit/test_privacy_sent.py)
        policy.decide(PROVIDER, earlier, CallContext(f"earlier{n}", "r", "s.t", f"k{n}", "public"))
    fresh = ScanningPolicy(PrivacySettings(policy="redact"))
    assert _decision(policy, args) == _decision(fresh, args)


def test_only_clean_plain_arguments_are_remembered() -> None:
    memo = _CleanScans()
    config = PrivacyConfig()
    clean, dirty = {"timezone": "UTC"}, {"to": SENSITIVE[0]}
    for args in (clean, clean, dirty, dirty):
        memo.scan(args, json_text(args), config)
    assert len(memo._kept) == 1
    # Same JSON text, not the same value: a tuple, a string-like object.
    memo.scan({"t": ("UTC",)}, '{"t":["UTC"]}', config)

    class Text(str):
        pass

    memo.scan({"timezone": Text("UTC")}, '{"timezone":"UTC"}', config)
    assert len(memo._kept) == 1


def test_a_detection_setting_is_part_of_what_was_remembered() -> None:
    """A value allowed by an allow list scans clean; without the list it is a finding again."""
    args = {"to": SENSITIVE[0]}
    allowing = ScanningPolicy(PrivacySettings(policy="refuse"))
    allowing.settings.detection.allow_list.add(SENSITIVE[0])
    assert allowing.decide(PROVIDER, args, CTX).action == "allow"
    allowing.settings.detection.allow_list.clear()  # the same settings object, changed
    assert allowing.decide(PROVIDER, args, CTX).action == "refuse"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seen=st.lists(arguments, max_size=6), args=arguments)
@example(seen=[{"UTC": 0}], args={"UTC": 100000000})
def test_scanning_through_the_memory_reports_as_a_fresh_scan(
    seen: list[dict[str, Any]], args: dict[str, Any]
) -> None:
    """What analysis scans through the gate's memory: the same report as a fresh scan, and the
    gate's decision afterwards the same as a fresh policy's. The earlier calls are other
    runs': one run's calls are joined on purpose (a value cut over calls, tests/unit/
    test_privacy_sent.py), which the memory of clean scans may not change."""
    from hybridmcp.policy.privacy import scan

    policy = ScanningPolicy(PrivacySettings(policy="redact"))
    for n, earlier in enumerate(seen):
        policy.scan(earlier, policy.settings.detection)
        policy.decide(PROVIDER, earlier, CallContext(f"earlier{n}", "r", "s.t", f"k{n}", "public"))
    config = policy.settings.detection
    assert policy.scan(args, config) == scan(args, config)
    assert policy.scan(args, config) == scan(args, config)  # now perhaps from the memory
    fresh = ScanningPolicy(PrivacySettings(policy="redact"))
    assert _decision(policy, args) == _decision(fresh, args)


def test_a_clean_scan_before_the_call_is_the_gates_hit() -> None:
    policy = ScanningPolicy(PrivacySettings())
    args = {"timezone": "Europe/Paris", "n": 3}
    policy.scan(args, policy.settings.detection)
    assert len(policy._clean._kept) == 1
    assert policy.decide(PROVIDER, args, CTX).action == "allow"
    assert len(policy._clean._kept) == 1  # the gate's scan found it: nothing new kept
    policy.scan({"to": SENSITIVE[0]}, policy.settings.detection)
    assert len(policy._clean._kept) == 1  # a finding is never kept


def test_entity_settings_changed_in_place_are_part_of_what_was_remembered() -> None:
    """The active entity types are worked out once per entity settings; a set changed in
    place (an entity disabled, then enabled again) is a new key, never a stale one."""
    args = {"to": SENSITIVE[0]}
    policy = ScanningPolicy(PrivacySettings(policy="refuse"))
    detection = policy.settings.detection
    assert policy.decide(PROVIDER, args, CTX).action == "refuse"
    detection.disabled_entities.add("EMAIL_ADDRESS")
    assert policy.decide(PROVIDER, args, CTX).action == "allow"  # now remembered as clean
    detection.disabled_entities.discard("EMAIL_ADDRESS")
    assert policy.decide(PROVIDER, args, CTX).action == "refuse"
    detection.enabled_entities = {"PHONE_NUMBER"}
    assert policy.decide(PROVIDER, args, CTX).action == "allow"
    detection.enabled_entities.add("EMAIL_ADDRESS")
    assert policy.decide(PROVIDER, args, CTX).action == "refuse"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.sampled_from(SENSITIVE), data=st.data())
def test_a_decision_says_a_value_was_completed_only_when_the_pieces_made_it(
    value: str, data: st.DataObject
) -> None:
    """A run sends a field a piece of a value, then the field again. The second decision says
    the value was completed with what the run sent only when its piece alone is not it: a
    call holding the whole value is decided, and said, as it would be alone."""
    cut = data.draw(st.integers(1, len(value) - 1))
    ctx = CallContext("run", "r2", "s.t", "k2", "public")
    whole = ScanningPolicy(PrivacySettings(policy="refuse"))
    whole.decide(PROVIDER, {"note": value[:cut]}, CallContext("run", "r1", "s.t", "k1", "public"))
    alone = ScanningPolicy(PrivacySettings(policy="refuse")).decide(PROVIDER, {"note": value}, ctx)
    said = whole.decide(PROVIDER, {"note": value}, ctx)
    assert (said.action, said.reason) == (alone.action, alone.reason)

    split = ScanningPolicy(PrivacySettings(policy="refuse"))
    first = split.decide(
        PROVIDER, {"note": value[:cut]}, CallContext("run", "r1", "s.t", "k1", "public")
    )
    rest = split.decide(PROVIDER, {"note": value[cut:]}, ctx)
    piece = ScanningPolicy(PrivacySettings(policy="refuse")).decide(
        PROVIDER, {"note": value[cut:]}, ctx
    )
    if alone.action == "refuse" and first.action == piece.action == "allow":  # both sent
        assert rest.action == "refuse" and "completed with what this run sent" in rest.reason

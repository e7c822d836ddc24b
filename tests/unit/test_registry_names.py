"""The error for a skill name the registry does not know."""

from hypothesis import given
from hypothesis import strategies as st

from hybridmcp.capabilities.registry import LISTED_SKILLS, unknown_skills

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

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridmcp.capabilities import builtin
from hybridmcp.errors import ProviderError, RequestError
from hybridmcp.testing.faultserver.tools import calculate as faultserver_calculate
from hybridmcp.testing.faultserver.tools import word_count as faultserver_word_count

NOW = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


def test_current_time_shape_and_dst():
    r = builtin.current_time("Europe/Paris", now=NOW)
    assert r == {
        "timezone": "Europe/Paris",
        "datetime": "2026-07-01T12:00:00+02:00",
        "day_of_week": "Wednesday",
        "is_dst": True,
    }


def test_convert_time_matches_known_offsets():
    r = builtin.convert_time("America/New_York", "14:30", "Asia/Tokyo", now=NOW)
    assert r["target"]["datetime"] == "2026-07-02T03:30:00+09:00"
    assert r["time_difference"] == "+13.0h"
    assert builtin.convert_time("UTC", "00:00", "Asia/Kathmandu", now=NOW)["time_difference"] == (
        "+5.75h"
    )


@pytest.mark.parametrize("tz", ["Mars/Olympus", "europe/paris", "../etc/passwd"])
def test_bad_timezones_are_refused(tz):
    with pytest.raises(RequestError, match="invalid timezone"):
        builtin.current_time(tz)


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("1 + 2 * 3", 7),
        ("(17 * 23.5) + 2 ** 10 / 4 - sqrt(144)", 643.5),
        ("-3 // 2", -2),
        ("max(1, 5, 2) + abs(-1)", 6),
        ("round(pi, 2)", 3.14),
    ],
)
def test_calculate(expr, value):
    assert builtin.calculate(expr)["value"] == value


@pytest.mark.parametrize(
    "expr",
    [
        "__import__('os').system('true')",
        "open('/etc/passwd')",
        "1 +",
        "2 ** 99999",
        "1 / 0",
        "(lambda: 1)()",
        "[1, 2]",
    ],
)
def test_calculate_refuses_anything_but_arithmetic(expr):
    with pytest.raises(RequestError):
        builtin.calculate(expr)


def test_text_stats_and_summary():
    text = "Cats purr. Cats sleep a lot. Dogs bark at cats! Birds sing."
    s = builtin.text_stats(text)
    assert s["words"] == 12 and s["sentences"] == 4 and s["top_words"][0] == "cats"
    summary = builtin.summarize(text, max_sentences=2)
    assert summary["sentences"] == 2
    assert summary["summary"].startswith("Cats purr.")


def test_json_query_paths():
    data = {"orders": [{"id": 1, "t": 2.5}, {"id": 2, "t": 4}], "a b": {"c": 1}}
    assert builtin.json_query(data, "$.orders[1].t") == {"result": 4}
    assert builtin.json_query(data, "$.orders[*].id") == {"result": [1, 2]}
    assert builtin.json_query(data, '$["a b"].c') == {"result": 1}
    # the skill's document and path are both the request's: a path that matches nothing or
    # cannot be read is the request's error, never held against the provider
    with pytest.raises(RequestError, match="matches nothing"):
        builtin.json_query(data, "$.missing")
    with pytest.raises(RequestError, match="starts with"):
        builtin.json_query(data, "orders")
    with pytest.raises(RequestError, match="at position 1"):
        builtin.json_query(data, "$..x")
    # a mapping's path into a server's answer: a missing field is the answer's (the provider's)
    with pytest.raises(ProviderError, match="matches nothing"):
        builtin.query_path(data, "$.missing")


@pytest.mark.parametrize("text", ["  1+1", "\t1 + 1", "1+1\n", " \n 1+1 "])
def test_calculate_reads_an_expression_between_blanks(text):
    """As the fault server's calculate (its external twin) does: leading blanks are no error."""
    assert builtin.calculate(text) == {"value": 2} == faultserver_calculate(text)


def test_blank_expression_says_so():
    for blank in ("", "   ", "\n\t"):
        with pytest.raises(RequestError, match="empty expression"):
            builtin.calculate(blank)


def test_time_skills_run_inline_only_once_their_zones_are_loaded():
    """Loading a zone reads files (never on the event loop): a call naming a zone not loaded
    yet runs in a worker thread; once loaded, on the loop."""
    zone, other = "Antarctica/Troll", "Asia/Kathmandu"
    builtin._LOADED_ZONES.pop(zone, None)
    assert not builtin.current_time.inline_when(timezone=zone)
    builtin.current_time(zone)
    assert builtin.current_time.inline_when(timezone=zone)
    builtin._LOADED_ZONES.pop(other, None)
    args = {"source_timezone": zone, "time": "10:00", "target_timezone": other}
    assert not builtin.convert_time.inline_when(**args)
    builtin.convert_time(**args)
    assert builtin.convert_time.inline_when(**args)
    assert not builtin.current_time.inline_when(timezone=123)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Привет мир, как дела?", 4),
        ("Καλημέρα κόσμε", 2),
        ("नमस्ते दुनिया", 2),
        ("日本語 テキスト 🚀", 2),
        ("héllo wörld it's", 3),
        ("snake_case x", 3),
    ],
)
def test_text_stats_counts_words_in_any_script(text, words):
    s = builtin.text_stats(text)
    assert s["words"] == words
    assert all(w in text.lower() for w in s["top_words"])


@given(st.lists(st.text(st.characters(categories=["Lu", "Ll", "Lo"]), min_size=1), max_size=8))
def test_text_stats_counts_every_space_separated_word(tokens):
    assert builtin.text_stats(" ".join(tokens))["words"] == len(tokens)


def test_summary_ranks_sentences_in_any_script():
    text = "Кошки мурлычут. Кошки спят. Собаки лают на кошек! Птицы поют."
    assert builtin.summarize(text, max_sentences=1)["summary"] == "Кошки мурлычут."


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("日本語です。次の文です！最後？", 3),
        ("中文句子。第二句。", 2),
        ("Version 3.14 is out. Really.", 2),
        ("Ende。 Next one.", 2),
    ],
)
def test_sentences_end_at_full_stops_of_any_script(text, sentences):
    assert builtin.text_stats(text)["sentences"] == sentences
    assert faultserver_word_count(text)["sentences"] == sentences  # its external twin agrees

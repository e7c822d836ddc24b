"""The parts of an ``--ask`` question in other languages and scripts: split where those
languages join two questions, and covered by a request that holds what they say."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hybridmcp.prompts.clauses import clauses, uncovered

CALC = {"skill": "math.calculate", "args": {"expression": "2+2*3"}}
COUNT = {"skill": "text.stats", "args": {"text": "der schnelle Fuchs"}}


def test_a_number_next_to_words_of_a_script_without_spaces_is_its_own_token():
    question = "2+2*3はいくつですか？"
    assert clauses(question) == ["2+2*3はいくつですか"]
    assert uncovered(question, [CALC]) == []


def test_full_width_and_arabic_question_marks_end_a_part():
    assert clauses("東京は何時ですか？2+2*3はいくつですか？") == [
        "東京は何時ですか",
        "2+2*3はいくつですか",
    ]
    assert len(clauses("كم الساعة في القاهرة؟ ما هو 2+2*3؟")) == 2
    assert len(clauses("今日は晴れです。明日は雨です。")) == 2


def test_and_in_other_languages_joins_two_parts_and_a_half_plan_misses_one():
    german = 'Wie viele Wörter hat "der schnelle Fuchs" und was ist 2+2*3?'
    assert uncovered(german, [COUNT]) == ["was ist 2+2*3"]
    assert uncovered(german, [COUNT, CALC]) == []
    for question in (
        'Combien de mots dans "le renard" et combien font 2+2*3 ?',
        "¿Cuántas palabras tiene el zorro? y también cuánto es 2+2*3",
        "Quante parole ha la volpe e poi quanto fa 2+2*3",
    ):
        assert len(clauses(question)) == 2, question


SCRIPTS = st.sampled_from(
    [
        "abcdefghijklmnopqrstuvwxyz",
        "äöüßéèàçñ",
        "東京天気時間要約翻訳",
        "あいうえおかきくけこ",
        "абвгдежзий",
        "ابتثجحخدذر",
        "0123456789+-*/",
    ]
)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        SCRIPTS.flatmap(lambda a: st.text(alphabet=a + " ", min_size=1, max_size=30)),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from([" and ", " und ", " et ", "？", "؟ ", "。", "\n"]),
)
def test_a_plan_quoting_each_part_covers_a_question_in_any_script(parts, joint):
    question = joint.join(parts)
    requests = [{"skill": "echo", "args": {"text": clause}} for clause in clauses(question)]
    assert uncovered(question, requests) == []

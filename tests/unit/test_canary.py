"""The canary corpus itself: deterministic, varied, and its secrets really are in the args."""

from __future__ import annotations

import collections
import json
import re

from hybridmcp.testing.canary import KINDS, canary_corpus, leaked, strings_in


def _luhn_ok(number: str) -> bool:
    digits = [int(c) for c in number][::-1]
    total = sum(
        d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(digits)
    )
    return total % 10 == 0


def _iban_ok(iban: str) -> bool:
    compact = iban.replace(" ", "")
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def test_same_seed_same_corpus_other_seed_other_corpus() -> None:
    a, b, c = canary_corpus(120, seed=3), canary_corpus(120, seed=3), canary_corpus(120, seed=4)
    assert a == b
    assert a != c
    assert len(canary_corpus()) == 600


def test_every_kind_and_form_is_present_with_a_clean_share() -> None:
    cases = canary_corpus()
    kinds = collections.Counter(c.kind for c in cases)
    assert set(kinds) == set(KINDS)
    assert kinds["clean"] == 60
    assert min(kinds.values()) >= 30
    forms = {c.form for c in cases}
    assert forms >= {"field", "nested", "text", "list", "split", "key", "mixed", "clean"}
    assert all(c.clean == (c.kind == "clean") for c in cases)
    assert len({c.id for c in cases}) == len(cases)


def test_secrets_are_exact_substrings_of_the_args() -> None:
    for case in canary_corpus():
        assert leaked(case.args, case.secrets) == case.secrets, case
        json.dumps(case.args)  # plain JSON, as a tool call would carry


def test_generated_values_pass_their_checksums() -> None:
    cards = ibans = 0
    for case in canary_corpus():
        if case.kind == "credit_card":
            cards += 1
            assert _luhn_ok(re.sub(r"[ -]", "", case.secrets[0])), case.secrets
        if case.kind == "split_card":
            assert _luhn_ok(re.sub(r"[ -]", "", "".join(case.secrets)))
        if case.kind == "iban":
            ibans += 1
            assert _iban_ok(case.secrets[0]), case.secrets
    assert cards and ibans


def test_card_numbers_also_come_as_ints_and_values_are_varied() -> None:
    cases = canary_corpus()
    assert any(isinstance(v, int) and v > 10**12 for c in cases for v in _leaves(c.args))
    phones = {c.secrets[0] for c in cases if c.kind == "phone"}
    assert any(p.startswith("+44") or p.startswith("07") for p in phones)
    assert any(p.startswith("(") for p in phones) or any("-" in p for p in phones)
    pems = [c for c in cases if c.kind == "private_key"]
    assert all("\n" in c.secrets[0] and len(c.secrets) > 2 for c in pems)


def test_leaked_and_strings_in_look_everywhere() -> None:
    value = {"k-secret": [1, {"x": "has SECRET inside"}], "n": 4111111111111111, "b": True}
    assert set(strings_in(value)) >= {"k-secret", "1", "has SECRET inside", "4111111111111111"}
    assert "True" not in set(strings_in(value))
    assert leaked(value, ["SECRET", "4111111111111111", "absent"]) == [
        "SECRET",
        "4111111111111111",
    ]


def _leaves(value: object) -> list[object]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list | tuple):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]

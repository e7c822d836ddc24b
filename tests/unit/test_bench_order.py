"""The overhead benchmark's order of subjects: a balanced Latin square, so that no subject
always runs right after the same other one."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from bench.overhead import rotated


@given(st.integers(min_value=2, max_value=9), st.integers(min_value=0, max_value=50))
def test_every_subject_follows_every_other_and_takes_every_place_equally_often(n, start):
    subjects = {f"s{i}": i for i in range(n)}
    cycle = n if n % 2 == 0 else 2 * n
    follows: Counter[tuple[str, str]] = Counter()
    places: Counter[tuple[int, str]] = Counter()
    for rep in range(start * cycle, (start + 1) * cycle):
        row = [name for name, _ in rotated(subjects, rep)]
        assert sorted(row) == sorted(subjects)
        follows.update(pairwise(row))
        places.update(enumerate(row))
    assert len(follows) == n * (n - 1) and len(set(follows.values())) == 1
    assert len(places) == n * n and len(set(places.values())) == 1

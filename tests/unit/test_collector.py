"""The cyclic collector's young threshold: Python 3.13's on 3.11 and 3.12, never over an
application's own choice."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from hybridmcp.runtime import OLDER_THRESHOLDS, YOUNG_THRESHOLD, tune_collector


@pytest.fixture
def thresholds() -> Iterator[None]:
    kept = gc.get_threshold()
    yield
    gc.set_threshold(*kept)


@pytest.mark.usefixtures("thresholds")
def test_the_older_defaults_take_the_young_threshold_of_python_3_13() -> None:
    gc.set_threshold(*OLDER_THRESHOLDS)
    tune_collector()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
    tune_collector()  # once tuned, left as is
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)


@pytest.mark.usefixtures("thresholds")
@pytest.mark.parametrize("chosen", [(5000, 20, 20), (700, 10, 5), (100, 10, 10)])
def test_an_applications_own_thresholds_are_kept(chosen: tuple[int, int, int]) -> None:
    gc.set_threshold(*chosen)
    tune_collector()
    assert gc.get_threshold() == chosen

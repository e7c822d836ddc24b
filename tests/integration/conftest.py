"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.model_server import Model, start


@pytest.fixture
def start_model(tmp_path: Path) -> Iterator[Any]:
    """Start the recording model server (tests/model_server.py) with its answers; each one
    started is stopped when the test ends."""
    processes: list[Any] = []

    def started(answers: list[Any]) -> Model:
        model, process = start(tmp_path, answers, len(processes))
        processes.append(process)
        return model

    yield started
    for process in processes:
        process.terminate()
        process.wait(timeout=10)

"""Fixtures shared by the integration tests."""

from __future__ import annotations

import subprocess
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


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A file system of 2 MiB of its own (tmpfs), to fill up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)

"""The id of a run on a thread (``hybridmcp.nodes.analyze.run_identity``): the thread's for its
first run, numbered for later ones, the copy's own on a copy of another thread."""

from __future__ import annotations

from typing import Any

from hybridmcp.nodes.analyze import run_identity


def _after(run_id: str, thread: str | None = None) -> dict[str, Any]:
    """The state a finished run leaves on its thread."""
    return {"run_id": run_id, "results": {"w": {}}, **({"run_thread": thread} if thread else {})}


def test_the_first_run_takes_the_threads_id_and_later_ones_are_numbered() -> None:
    assert run_identity({}, "t") == ("t", False)
    assert run_identity({}, "t", "co:1") == ("t/co:1", False)
    assert run_identity(_after("t", "t"), "t") == ("t#2", True)
    assert run_identity(_after("t#2", "t"), "t") == ("t#3", True)
    assert run_identity({"run_id": "given"}, "t") == ("given", False)


def test_a_copy_of_a_thread_numbers_its_runs_under_its_own_id() -> None:
    assert run_identity(_after("t#2", "t"), "copy") == ("copy#3", True)
    assert run_identity(_after("copy#3", "copy"), "copy") == ("copy#4", True)
    assert run_identity(_after("t/co:1", "t"), "copy", "co:1") == ("copy/co:1#2", True)


def test_state_saved_before_the_thread_was_recorded_keeps_its_numbering() -> None:
    assert run_identity(_after("t#2"), "other") == ("t#3", True)


def test_a_thread_id_holding_a_hash_never_takes_another_threads_run_id() -> None:
    assert run_identity({}, "job#2") == ("job%232", False)
    assert run_identity(_after("job%232", "job#2"), "job#2") == ("job%232#2", True)
    assert run_identity({}, "job%232") == ("job%25232", False)
    assert run_identity(_after("job", "job"), "job") == ("job#2", True)
    assert run_identity({}, "t", "co:#1") == ("t/co:%231", False)

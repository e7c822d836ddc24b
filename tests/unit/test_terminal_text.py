"""What the command line prints of text that came from outside (a server's answer, error,
progress or question, a tool's name) never acts on the terminal: escape sequences and
bidirectional overrides are shown as their escapes, whatever else the text holds."""

from __future__ import annotations

import io
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from hybridmcp.cli import render, show_questions
from hybridmcp.live import LiveProgress
from hybridmcp.report.summary import render_summary
from hybridmcp.terminal import plain, shown

HOSTILE = "A\x1b]0;pwned\x07\x1b[2J\x1b[8mhidden\x1b[0m\x9b31m\u202eevil\r\x08Z"
ACTING = ("\x1b", "\x07", "\x9b", "\u202e", "\r", "\x08")


def _console(buffer: io.StringIO) -> Console:
    # a terminal without colours: any escape character in the output came from the text
    return Console(file=buffer, force_terminal=True, color_system=None, width=200)


def _acts(out: str) -> list[str]:
    return [c for c in ACTING if c in out]


def result(i: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"r{i}",
        "skill": "echo",
        "status": "ok",
        "value": HOSTILE,
        "error": None,
        "served_by": {"provider": "mcp:x/echo", "side": "external"},
        "allocation": "external",
        "agreement": None,
        "confidence": 0.9,
        "attempts": [{"side": "external", "ok": True, "latency_ms": 1.0}],
    } | fields


def run_output(results: list[dict[str, Any]]) -> dict[str, Any]:
    event = {"code": "REQUEST_ERROR", "request_id": "r1", "detail": HOSTILE}
    return {"status": "partial", "results": results, "events": [event], "conflicts": [],
            "metrics": {}}  # fmt: skip


def test_a_servers_value_and_error_in_the_table_do_not_act_on_the_terminal() -> None:
    buffer = io.StringIO()
    failed = result(1, status="error", value=None, error=f"server said: {HOSTILE}")
    render(run_output([result(0), failed]), _console(buffer))
    out = buffer.getvalue()
    assert not _acts(out), out
    assert "\\x1b]0;pwned" in out  # shown as the text it is


def test_the_summary_of_a_big_run_does_not_act_on_the_terminal() -> None:
    buffer = io.StringIO()
    results = [result(i) for i in range(60)]
    results[3] = result(3, status="error", value=None, error=HOSTILE)
    render_summary(run_output(results), _console(buffer))
    out = buffer.getvalue()
    assert "failures (1)" in out and not _acts(out), out


def test_live_progress_lines_do_not_act_on_the_terminal() -> None:
    buffer = io.StringIO()
    view = LiveProgress(_console(buffer))
    key = {"provider": f"mcp:{HOSTILE}", "side": "external", "round": 1}
    with view:
        view.update({"type": "attempt", "status": "started", "request_id": "a", **key})
        view.update({"type": "progress", "provider": "p", "progress": 1, "message": HOSTILE})
        view.progress.refresh()
        view.update(
            {"type": "attempt", "status": "finished", "request_id": "a", "ok": False,
             "error": HOSTILE, **key}
        )  # fmt: skip
        view.progress.refresh()
    out = buffer.getvalue()
    # (the live display moves its own cursor: what is checked is the text the server sent)
    assert "pwned" in out and "\x1b]0;" not in out and "\x1b[2J" not in out
    assert "\u202e" not in out and "\x9b" not in out and "\x1b[8m" not in out


def test_a_servers_question_is_printed_as_text() -> None:
    buffer = io.StringIO()
    question = {"id": "q1", "type": "elicitation", "message": HOSTILE,
                "requested_schema": {"properties": {HOSTILE: {"type": "string"}}}}  # fmt: skip
    show_questions({"questions": [question]}, "t", _console(buffer))
    out = buffer.getvalue()
    assert "paused" in out and not _acts(out), out


@given(st.text())
def test_plain_text_is_kept_and_nothing_acting_survives(text: str) -> None:
    shown_text = plain(text)
    assert not _acts(shown_text)
    if not any(c in text for c in "\\\x00\x1b\x7f\x9b\u202a\u202b\u202c\u202d\u202e\u2066"):
        if all(c.isprintable() or c in "\n\t" for c in text):
            assert shown_text == text  # ordinary text is left as it is
    assert "\n" not in shown(text.replace("\n", "")) or "\n" in text


def test_a_servers_log_message_on_stderr_does_not_act_on_the_terminal() -> None:
    import logging

    from hybridmcp.cli import _OneLine

    record = logging.LogRecord("hybridmcp.server.x", logging.INFO, "", 0, "%s", (HOSTILE,), None)
    assert not _acts(_OneLine().format(record))

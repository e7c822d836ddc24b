"""Test-only internal providers (``tests.helpers:<name>`` in a configuration).

Append only: several test modules use these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hybridmcp.capabilities.builtin import current_time

WRONG_TIME_SHIFT = timedelta(hours=2)


def wrong_time(timezone: str) -> dict[str, Any]:
    """``time.now`` with a clock two hours fast: disagrees with any honest time server."""
    value = current_time(timezone)
    shifted = datetime.fromisoformat(value["datetime"]) + WRONG_TIME_SHIFT
    return value | {"datetime": shifted.isoformat(timespec="seconds")}


def broken_time(timezone: str) -> dict[str, Any]:
    """``time.now`` that always fails, so work on it moves to the other side."""
    raise RuntimeError(f"the internal clock is broken (asked for {timezone})")


def echo_text(text: str) -> dict[str, Any]:
    """``note.echo`` served internally: the text back, as the fault server's ``echo`` does."""
    return {"text": text}


def echo_payload(**payload: Any) -> dict[str, Any]:
    """``canary.echo`` served internally: the arguments back, as ``echo_json`` does."""
    return {"payload": payload}


PLANNER_ANSWER_ENV = "HYBRIDMCP_TEST_PLANNER_ANSWER"


def scripted_planner_lm(**_options: Any) -> Any:
    """An LM factory for ``llm_config.planner_model: python:tests.helpers:scripted_planner_lm``.

    It answers the planner with the JSON object in ``$HYBRIDMCP_TEST_PLANNER_ANSWER``
    (``{"requests": ..., "rationale": ...}``, every time), or with a list of such objects, one
    per call, so a CLI subprocess can be given a plan.
    """
    import json
    import os

    import dspy
    from dspy.utils import DummyLM

    answer = json.loads(os.environ[PLANNER_ANSWER_ENV])
    answers = answer if isinstance(answer, list) else [answer] * 4
    return DummyLM(answers, adapter=dspy.JSONAdapter())  # JSON, as the planner asks


SCRIPTED_LM_ENV = "HYBRIDMCP_TEST_LM_ANSWERS"


def scripted_lm(**_options: Any) -> Any:
    """An LM factory answering by prompt content: ``$HYBRIDMCP_TEST_LM_ANSWERS`` maps a text
    the prompt contains (a signature's field name) to that call's output fields."""
    import json
    import os

    import dspy
    from dspy.utils import DummyLM

    return DummyLM(json.loads(os.environ[SCRIPTED_LM_ENV]), adapter=dspy.JSONAdapter())


JOURNAL_ENV = "HYBRIDMCP_TEST_JOURNAL"


def journal_append(entry: str, sleep_ms: int = 0) -> dict[str, Any]:
    """``journal.append`` served internally: the same line in the same journal as the journal
    server's ``append`` (``$HYBRIDMCP_TEST_JOURNAL``), then ``sleep_ms`` (after the write)."""
    import os
    import time
    from pathlib import Path

    from hybridmcp.testing.journal_server import append_line

    append_line(Path(os.environ[JOURNAL_ENV]), {"entry": entry, "side": "internal", "key": None})
    time.sleep(sleep_ms / 1000)
    return {"entry": entry, "written": True}


FIXED_LM_ENV = "HYBRIDMCP_TEST_SAMPLING_ANSWER"


def fixed_answer_lm(**_options: Any) -> Any:
    """An LM factory whose every answer is ``$HYBRIDMCP_TEST_SAMPLING_ANSWER`` (default: a
    line with an e-mail address), for sampling tests that need an exact answer."""
    import os

    import dspy

    class FixedAnswerLM(dspy.BaseLM):
        def __init__(self, text: str) -> None:
            super().__init__(model="test/fixed-answer")
            self.text = text

        def __call__(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
            return [self.text]

        async def acall(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
            return [self.text]

    return FixedAnswerLM(os.environ.get(FIXED_LM_ENV, "Write to alice.jones@example.com today"))


STATION_READINGS = {
    "New York": (33.0, "Cloudy", 82.0),
    "Chicago": (36.0, "Light rain / drizzle", 82.0),
    "Los Angeles": (74.0, "Sunny / Clear", 48.0),
}
"""A weather station's readings, as Python floats. They match the readings of
``@modelcontextprotocol/server-everything``'s ``get-structured-content`` (which JavaScript sends
as integers: ``36``) but for Los Angeles, where the station reads a degree warmer."""


def station_weather(location: str) -> dict[str, Any]:
    """``weather.now`` served internally: the station's reading of a city."""
    temperature, conditions, humidity = STATION_READINGS[location]
    return {"temperature": temperature, "conditions": conditions, "humidity": humidity}


def lyon_weather_model() -> Any:
    """The shapes server's ``weather`` served internally by the same code: the pydantic model
    its FastMCP tool returns (the server sends it as structured content)."""
    from hybridmcp.testing.shapes_server import Weather

    return Weather(city="Lyon", temperature_c=21.5, conditions="sunny")


@dataclass
class LyonWeather:
    city: str
    temperature_c: float
    conditions: str
    measured: tuple[int, ...] = (2026, 6, 1)


def lyon_weather_dataclass() -> LyonWeather:
    """The same reading as a dataclass (with a tuple a FastMCP tool would send as a list)."""
    return LyonWeather("Lyon", 21.5, "sunny")


def echo_str(text: str) -> str:
    """``text.echo`` served internally: the text back, as the shapes server's ``echo`` does."""
    return text


def time_as_text(timezone: str) -> str:
    """``time.now`` answered as ``mcp-server-time`` does, as JSON text (a ``str``)."""
    from hybridmcp.testing.shapes_server import current_time_text

    return current_time_text(timezone)


MODEL_URL_ENV = "HYBRIDMCP_TEST_MODEL_URL"


def served_model_lm(max_tokens: int = 1000, **_options: Any) -> Any:
    """An LM factory for a model outside the process: a plain ``dspy.LM`` on the
    OpenAI-compatible recording server of :mod:`tests.model_server` at
    ``$HYBRIDMCP_TEST_MODEL_URL``, as a user would configure their own provider."""
    import os

    import dspy

    return dspy.LM(
        "openai/recorded",
        api_base=os.environ[MODEL_URL_ENV],
        api_key="not-needed",
        max_tokens=max_tokens,
        cache=False,
        num_retries=0,
    )


def slow_calculate(expression: str) -> dict[str, Any]:
    """An internal twin of the fault server's ``calculate`` that is always 50 ms slow (a
    plain function: it runs in a worker thread)."""
    import time

    from hybridmcp.testing.faultserver import calculate

    time.sleep(0.05)
    return calculate(expression)


HOLD_ENV = "HYBRIDMCP_TEST_HOLD"


def held_lookup(text: str) -> dict[str, Any]:
    """A lookup served internally that leaves a line in ``$HYBRIDMCP_TEST_JOURNAL`` for each
    call it starts (how many times it ran, seen from outside a killed process), then waits as
    long as the file ``$HYBRIDMCP_TEST_HOLD`` exists (at most ten minutes)."""
    import os
    import time
    from pathlib import Path

    with Path(os.environ[JOURNAL_ENV]).open("a", encoding="utf-8") as journal:
        journal.write(text + "\n")
    hold = os.environ.get(HOLD_ENV)
    deadline = time.monotonic() + 600
    while hold and Path(hold).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"text": text}

"""The coordinator validates each distinct (skill, arguments) of a task once: requests alike
share the verdict, and every invalid request is still named, each with its own problem."""

from __future__ import annotations

import random

import pytest

from hybridmcp import Coordinator, parse_config, parse_task
from hybridmcp.errors import TaskError
from hybridmcp.runtime import Resources

ARGS = [
    ("math.calculate", {"expression": "1 + 2"}),
    ("math.calculate", {"expression": 3}),  # not a string
    ("math.calculate", {"expression": "1 + 2", "extra": True}),  # not allowed
    ("math.calculate", {"expression": 3.0}),
    ("time.now", {"expression": "1 + 2"}),  # valid for another skill only
    ("time.now", {"timezone": "UTC"}),
    ("text.stats", {"text": "a b c"}),
    ("text.stats", {"text": ["a"]}),
]


async def test_requests_alike_share_a_verdict_and_every_invalid_one_is_named():
    res = await Resources.open(parse_config({}))
    try:
        co = Coordinator(res)
        rng = random.Random(7)
        for _ in range(300):
            picks = [rng.choice(ARGS) for _ in range(rng.randint(1, 12))]
            task = parse_task(
                [{"id": f"r{i}", "skill": s, "args": a} for i, (s, a) in enumerate(picks)]
            )
            expected = []
            for i, (skill, args) in enumerate(picks):
                try:
                    res.registry.get(skill).validate_args(args)
                except TaskError as err:
                    expected.append(f"request 'r{i}': {err}")
            if not expected:
                co.validate(task)
                continue
            with pytest.raises(TaskError) as raised:
                co.validate(task)
            assert str(raised.value) == "invalid task:\n  " + "\n  ".join(expected)
    finally:
        await res.close()

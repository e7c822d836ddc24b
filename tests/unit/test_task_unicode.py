"""Tasks whose text holds every code point JSON can escape, lone surrogates included (Hypothesis):
a task that loads can be written as UTF-8 (stored, printed, sent to a server), and one that
cannot is refused at the edge in one UTF-8 line naming where, never sent to fail mid-call."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridmcp.errors import TaskError
from hybridmcp.limits import InputLimits, lone_surrogate_in
from hybridmcp.task import Task, parse_task, task_from_bytes

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)
any_char = st.characters(codec=None, exclude_categories=()) | SURROGATES
texts = st.text(any_char, max_size=12) | st.sampled_from(
    ["\ufeff", "\u2028\u2029", "\x00", "\U0010ffff", "\ud83d\ude00", "\ude00\ud83d", "\u202e"]
)
values = st.recursive(
    texts | st.integers() | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)


def _has_surrogate(value: Any) -> bool:
    return lone_surrogate_in(value) is not None


@FUZZ
@given(rid=texts, skill=texts | st.just("s"), args=st.dictionaries(texts, values, max_size=3),
       bom=st.booleans(), ascii_only=st.booleans())  # fmt: skip
def test_a_task_that_loads_can_be_written_as_utf8(rid, skill, args, bom, ascii_only) -> None:
    document = {"requests": [{"id": rid, "skill": skill, "args": args}]}
    text = json.dumps(document, ensure_ascii=ascii_only)
    try:
        raw = text.encode()
    except UnicodeEncodeError:  # a surrogate cannot be in a UTF-8 file, only escaped in JSON
        raw = json.dumps(document).encode()
    if bom:
        raw = b"\xef\xbb\xbf" + raw
    try:
        task = task_from_bytes(raw, "fuzz.json", InputLimits())
    except TaskError as err:
        str(err).encode("utf-8")  # it can be printed
        return
    assert not _has_surrogate(json.loads(raw.decode("utf-8-sig")))  # (escaped pairs join)
    assert isinstance(task, Task)
    task.model_dump_json().encode("utf-8")


@pytest.mark.parametrize(
    ("args", "where"),
    [
        ({"t": "a\udc00"}, "requests.0.args: Value error, t: a string"),
        ({"k\ud800": 1}, "requests.0.args: Value error, <root> (a key): a string"),
        ({"deep": [[{"x": ["\udfff"]}]]}, "args: Value error, deep.0.0.x.0: a string"),
        ({"\ud800": {"\n": "\udfff"}}, "args: Value error, '\\ud800'.'\\n': a string"),
    ],
)
def test_a_task_built_in_python_with_a_lone_surrogate_is_refused(args, where) -> None:
    """The Python API's edge: the same refusal as a file's, naming where."""
    with pytest.raises(TaskError, match="lone surrogate") as err:
        parse_task({"requests": [{"id": "a", "skill": "s", "args": args}]})
    assert where in str(err.value), str(err.value)
    str(err.value).encode("utf-8")

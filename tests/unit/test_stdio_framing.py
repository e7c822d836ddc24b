"""The stdio transport's framing (:mod:`hybridmcp.capabilities.stdio`): whatever the chunks,
the lines are the stream's lines; a line past the bound and a line not in the server's
encoding are one error each, saying which."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridmcp.capabilities.stdio import (
    LineFramer,
    ServerMessageError,
    decode_line,
    utf8_transcoder,
)

lines_ = st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=8)


@settings(max_examples=300, deadline=None)
@given(lines=lines_, tail=st.binary(max_size=10).map(lambda b: b.replace(b"\n", b"")),
       cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))  # fmt: skip
def test_the_lines_are_the_streams_whatever_the_chunks(lines, tail, cuts) -> None:
    stream = b"".join(line + b"\n" for line in lines) + tail
    framer = LineFramer(max_bytes=64)
    got: list[bytes] = []
    points = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    for start, end in itertools.pairwise(points):
        got += framer.feed(stream[start:end])
    assert got == lines  # the unterminated tail is no line yet


@settings(max_examples=200, deadline=None)
@given(size=st.integers(min_value=1, max_value=300), chunk=st.integers(min_value=1, max_value=50))
def test_a_line_past_the_bound_is_refused_at_the_bound(size, chunk) -> None:
    framer = LineFramer(max_bytes=100)
    data = b"x" * size + b"\n"
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    if size <= 100:
        assert [line for c in chunks for line in framer.feed(c)] == [b"x" * size]
        return
    fed = 0
    with pytest.raises(ServerMessageError, match=r"more than 100 bytes .*max_message_bytes"):
        for c in chunks:
            framer.feed(c)
            fed += len(c)
    assert fed <= 100  # refused on the chunk that passed the bound, not at the line's end


def test_a_long_line_in_many_chunks_is_one_line() -> None:
    """A line of 64 MiB in 1,024 chunks of 64 KiB (the SDK's reader copied the whole buffer
    per chunk: about 32 GiB here; this test would take minutes)."""
    framer = LineFramer(max_bytes=1 << 27)
    chunk = b"y" * (1 << 16)
    for _ in range(1 << 10):
        assert framer.feed(chunk) == []
    (line,) = framer.feed(b"\n")
    assert len(line) == 1 << 26


def test_a_line_not_in_the_encoding_names_the_bytes_and_the_fix() -> None:
    assert decode_line("café".encode(), "utf-8", "strict") == "café"
    assert decode_line(b"caf\xe9", "utf-8", "replace") == "caf\ufffd"
    with pytest.raises(ServerMessageError) as err:
        decode_line(b'{"text": "caf\xe9"}', "utf-8", "strict")
    assert "not utf-8 (bytes e9 22 7d at offset 13" in str(err.value)
    assert "encoding_error_handler: replace" in str(err.value)


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.text(max_size=20).map(lambda t: t.replace("\n", "")), max_size=6),
    encoding=st.sampled_from(["utf-16-le", "utf-16-be", "utf-32-le", "cp037"]),
    cut=st.integers(min_value=1, max_value=7),
)
def test_an_encoding_whose_newline_is_not_the_byte_is_framed_on_its_text(
    lines, encoding, cut
) -> None:
    """UTF-16 and UTF-32 (and EBCDIC) hold the byte 0x0A inside other characters ('Ċ' is
    0A 01 in UTF-16-LE): their text is framed, decoded across chunk boundaries."""
    text = "".join(line + "\n" for line in lines)
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:  # a character the code page lacks
        return
    transcode = utf8_transcoder(encoding, "strict")
    assert transcode is not None
    framer = LineFramer(max_bytes=1_000)
    got = [
        decode_line(line, "utf-8", "strict")
        for i in range(0, len(data), cut)
        for line in framer.feed(transcode(data[i : i + cut]))
    ]
    assert got == lines


def test_an_ascii_compatible_encoding_is_framed_on_its_bytes() -> None:
    assert utf8_transcoder("utf-8", "strict") is None
    assert utf8_transcoder("latin-1", "strict") is None
    assert utf8_transcoder("shift_jis", "strict") is None
    with pytest.raises(ServerMessageError, match="not utf-16-le"):
        transcode = utf8_transcoder("utf-16-le", "strict")
        assert transcode is not None
        transcode(b"\x00\xd8a\x00")  # a lone high surrogate, then 'a'

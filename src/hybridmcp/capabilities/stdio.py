"""The stdio transport of a server's session: the MCP SDK's ``stdio_client`` (same process
start, same shutdown: stdin closed, 2 s, then the process group ended), with a reader that
frames the server's lines in linear time, bounds them, and says what was wrong with one.

The SDK's reader joins its buffer to each chunk it reads (at most 64 KiB) and splits the whole
again, so a line of n bytes costs about n²/128 KiB bytes copied on the event loop: a 100 MB
answer was not read within 100 s here (mcp 1.30), every other call of the run starved the
while, and a server that writes without a newline fills the memory. Here each byte is copied
once; a line longer than ``max_bytes`` (the server's ``max_message_bytes``) ends the session
at once with :class:`ServerMessageError`, and so does a line that is not in the server's
encoding (under ``encoding_error_handler: strict``, the default), so the calls in flight on it
fail now, naming why, instead of at their deadline.
"""

from __future__ import annotations

import codecs
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TextIO

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp import types
from mcp.client.stdio import (
    PROCESS_TERMINATION_TIMEOUT,
    StdioServerParameters,
    _create_platform_compatible_process,
    _get_executable_command,
    _terminate_process_tree,
    get_default_environment,
)
from mcp.shared.message import SessionMessage

from hybridmcp.errors import HybridMCPError

sdk_log = logging.getLogger("mcp.client.stdio")
"""The SDK reader's logger, kept for what it reported (a line that is not JSON-RPC, with its
traceback: ``--log-file`` keeps it whole), so logging set up for it goes on working."""

Streams = tuple[
    MemoryObjectReceiveStream[SessionMessage | Exception],
    MemoryObjectSendStream[SessionMessage],
]


class ServerMessageError(HybridMCPError):
    """What a server wrote cannot be a message: too long, or not in its encoding.
    ``answering``: the JSON-RPC id of the request whose answer it was, where the transport
    knows it (an HTTP response to that request's POST); None otherwise."""

    def __init__(self, message: str, answering: Any = None) -> None:
        super().__init__(message)
        self.answering = answering


class LineFramer:
    """Splits a byte stream into lines (without their ``\\n``), each byte copied once; a line
    longer than ``max_bytes`` raises :class:`ServerMessageError`. Pure: fed chunks, it returns
    the lines they complete."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._pending = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of a line begun and not yet ended (a server that stopped mid-message)."""
        return len(self._pending)

    def feed(self, chunk: bytes) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            self._grow(end - start)
            if self._pending:
                self._pending += chunk[start:end]
                lines.append(bytes(self._pending))
                self._pending.clear()
            else:
                lines.append(chunk[start:end])
            start = end + 1
        self._grow(len(chunk) - start)
        self._pending += chunk[start:]
        return lines

    def _grow(self, more: int) -> None:
        if len(self._pending) + more > self.max_bytes:
            size = len(self._pending) + more
            self._pending.clear()
            raise ServerMessageError(
                f"the server sent a message of more than {self.max_bytes:,} bytes "
                f"({size:,} so far, no end in sight; max_message_bytes)"
            )


def decode_line(line: bytes, encoding: str, errors: str) -> str:
    """The line as text; a line not in ``encoding`` (under ``strict``) raises
    :class:`ServerMessageError` saying where and what to set."""
    try:
        return line.decode(encoding, errors)
    except UnicodeDecodeError as err:
        bad = line[err.start : err.start + 4].hex(" ")
        raise ServerMessageError(
            f"the server wrote a line that is not {encoding} (bytes {bad} at offset "
            f"{err.start}: {err.reason}); set the server's encoding, or "
            "encoding_error_handler: replace"
        ) from None


def utf8_transcoder(encoding: str, errors: str) -> Callable[[bytes], bytes] | None:
    """For an encoding in which the byte ``\\n`` is not always a newline (UTF-16, UTF-32,
    EBCDIC), a function turning its chunks into UTF-8 (decoding across chunk boundaries);
    None for the others (UTF-8, Latin-1, Shift-JIS: framed on their own bytes)."""
    if "\n".encode(encoding) == b"\n":
        return None
    decoder = codecs.getincrementaldecoder(encoding)(errors)

    def transcode(chunk: bytes) -> bytes:
        try:
            return decoder.decode(chunk).encode("utf-8", "surrogatepass")
        except UnicodeDecodeError as err:
            raise ServerMessageError(
                f"the server wrote what is not {encoding} ({err.reason}); set the server's "
                "encoding, or encoding_error_handler: replace"
            ) from None

    return transcode


@asynccontextmanager
async def stdio_client(
    server: StdioServerParameters,
    errlog: TextIO = sys.stderr,
    *,
    max_bytes: int,
    framer: LineFramer | None = None,
) -> AsyncIterator[Streams]:
    """The SDK's ``stdio_client``, its reader replaced (see the module docstring); ``framer``:
    the one to frame the server's lines with (the caller may read what it holds)."""
    reader_in: MemoryObjectSendStream[SessionMessage | Exception]
    reader_out: MemoryObjectReceiveStream[SessionMessage | Exception]
    writer_in: MemoryObjectSendStream[SessionMessage]
    writer_out: MemoryObjectReceiveStream[SessionMessage]
    reader_in, reader_out = anyio.create_memory_object_stream(0)
    writer_in, writer_out = anyio.create_memory_object_stream(0)
    env = server.env if server.env is not None else {}
    try:
        process: Any = await _create_platform_compatible_process(
            command=_get_executable_command(server.command),
            args=server.args,
            env={**get_default_environment(), **env},
            errlog=errlog,
            cwd=server.cwd,
        )
    except OSError:
        for stream in (reader_in, reader_out, writer_in, writer_out):
            await stream.aclose()
        raise

    framer = framer or LineFramer(max_bytes)

    async def stdout_reader() -> None:
        encoding, errors = server.encoding, server.encoding_error_handler
        as_utf8 = utf8_transcoder(encoding, errors)
        if as_utf8 is not None:  # lines framed on the UTF-8 the text becomes
            encoding, errors = "utf-8", "strict"
        try:
            async with reader_in:
                async for chunk in process.stdout:
                    for line in framer.feed(chunk if as_utf8 is None else as_utf8(chunk)):
                        text = decode_line(line, encoding, errors)
                        try:
                            message = types.JSONRPCMessage.model_validate_json(text)
                        except Exception as exc:  # the session's message handler hears of it
                            sdk_log.exception("Failed to parse JSONRPC message from server")
                            await reader_in.send(exc)
                            continue
                        await reader_in.send(SessionMessage(message))
        except anyio.ClosedResourceError:
            await anyio.lowlevel.checkpoint()

    async def stdin_writer() -> None:
        try:
            async with writer_out:
                async for session_message in writer_out:
                    json = session_message.message.model_dump_json(by_alias=True, exclude_none=True)
                    await process.stdin.send(
                        (json + "\n").encode(server.encoding, server.encoding_error_handler)
                    )
        except anyio.ClosedResourceError:
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg, process:
        tg.start_soon(stdout_reader)
        tg.start_soon(stdin_writer)
        try:
            yield reader_out, writer_in
        finally:
            try:
                await process.stdin.aclose()
            except Exception:  # already closed
                pass
            try:
                with anyio.fail_after(PROCESS_TERMINATION_TIMEOUT):
                    await process.wait()
            except TimeoutError:
                await _terminate_process_tree(process)
            except ProcessLookupError:
                pass
            for stream in (reader_out, writer_in, reader_in, writer_out):
                await stream.aclose()

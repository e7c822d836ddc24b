"""Text from outside the process (a server's answer, error or progress message, a tool's name,
an audit record, a task's id) as the terminal is to show it: as the text it is.

Rich writes a string's escape sequences as they are (it drops only a few control codes), so a
server's answer printed as it came could clear the screen, retitle the window, hide or rewrite
what was printed before it, or set the clipboard (OSC 52); a bidirectional override could show
the rest of a line in another order than it is. Each such character is shown as its escape
instead (``\\x1b``, ``\\u202e``); line breaks and tabs are kept.
"""

from __future__ import annotations

import re

from rich.markup import escape

_HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
"""C0 controls but tab and line feed, DEL, C1 controls, bidirectional embeddings, overrides
and isolates."""


def plain(text: str) -> str:
    """``text`` with every character that would act on the terminal written as its escape."""
    return _HIDDEN.sub(_escaped, text)


def _escaped(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(text: str) -> str:
    """``text`` as console markup that shows it as the text it is: no markup read in it
    (``[/b]`` stays as typed), nothing in it acting on the terminal."""
    return escape(plain(text))

"""A headless browser for the conformance suite's authorization servers.

hybridmcp opens the authorization URL with the ``auth.browser`` command; a person would log in
and be sent back to hybridmcp's loopback redirect URI. The suite's authorization servers grant at
once with a redirect, so this stands in for the person: it follows the redirects, which deliver
the code to hybridmcp's listener.
"""

from __future__ import annotations

import sys
import urllib.request

with urllib.request.urlopen(sys.argv[-1], timeout=10) as answer:  # follows the redirects
    answer.read()

"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def privacy_engines() -> None:
    """The privacy scan's detection engines (Presidio, spaCy), built once per module before
    its tests (``pytestmark = pytest.mark.usefixtures("privacy_engines")``): the scan on the
    event loop never builds them."""
    from hybridmcp.policy.privacy import engines_ready

    engines_ready()

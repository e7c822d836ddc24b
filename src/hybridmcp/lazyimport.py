"""Deferred imports of third-party modules that a dependency imports eagerly but hybridmcp's
use of it never touches (each a measurable part of ``hybridmcp run``'s start-up):

- ``sqlite_vec``: LangGraph's SQLite store imports it at import time, and with it numpy; it
  is used only for vector search, which hybridmcp's store does not configure;
- ``mcp.server``: the MCP SDK's package ``__init__`` imports its server side (FastMCP,
  Starlette, uvicorn, pydantic-settings) for the client too; the client needs only two of its
  submodules (``mcp.server.session``, ``mcp.server.stdio``), which still import normally;
- ``jwt``: imported by the SDK's OAuth client-credentials module, used only to sign the
  assertions of the ``private_key_jwt`` grant.

A deferred module is a stand-in in ``sys.modules``; the first use of one of its own names
imports the real module, which every later import then finds (the stand-in forwards to it).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from importlib.machinery import ModuleSpec, PathFinder
from types import ModuleType
from typing import Any

_LOCK = threading.RLock()


class _Deferred(ModuleType):
    """A module's stand-in: importing it again finds the stand-in (its ``__spec__`` is an
    ordinary attribute, so the import system does not load it: ``importlib.util.LazyLoader``
    does not do here, an ``import`` statement reads ``__spec__``), and a package's submodules
    import through its ``__path__`` without running the package's ``__init__``."""

    def __getattr__(self, name: str) -> Any:  # only for names the stand-in does not have
        return getattr(_load(self), name)


def _load(stand_in: _Deferred) -> ModuleType:
    with _LOCK:
        real = stand_in.__dict__.get("_deferred_real")
        if real is not None:
            return real
        name = stand_in.__name__
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]
        try:
            real = importlib.import_module(name)
        except BaseException:
            sys.modules.setdefault(name, stand_in)
            raise
        for key, value in list(stand_in.__dict__.items()):  # submodules imported meanwhile
            if isinstance(value, ModuleType) and value.__name__ == f"{name}.{key}":
                real.__dict__.setdefault(key, value)
        stand_in.__dict__["_deferred_real"] = real
        return real


def _find(name: str) -> ModuleSpec | None:
    """The module's spec, found without importing its parent packages."""
    top, *rest = name.split(".")
    spec = importlib.util.find_spec(top)
    for depth in range(len(rest)):
        if spec is None or spec.submodule_search_locations is None:
            return None
        child = ".".join([top, *rest[: depth + 1]])
        spec = PathFinder.find_spec(child, list(spec.submodule_search_locations))
    return spec


def defer(name: str) -> None:
    """Make ``import name`` cheap: the module loads on the first use of one of its names.
    A submodule's parent package is imported now, without it (the stand-in is its attribute).
    Nothing happens when the module (or its parent) is imported already, or when it is not
    installed (an import then fails where it always would)."""
    with _LOCK:
        if name in sys.modules or name.rpartition(".")[0] in sys.modules:
            return
        spec = _find(name)
        if spec is None:
            return
        stand_in = _Deferred(name)
        stand_in.__spec__ = spec
        stand_in.__file__ = spec.origin
        stand_in.__loader__ = spec.loader
        if spec.submodule_search_locations is not None:
            stand_in.__path__ = list(spec.submodule_search_locations)
            stand_in.__package__ = name
        else:
            stand_in.__package__ = name.rpartition(".")[0]
        sys.modules[name] = stand_in
        parent, _, child = name.rpartition(".")
        if parent:
            try:
                setattr(importlib.import_module(parent), child, stand_in)
            except BaseException:
                del sys.modules[name]
                raise

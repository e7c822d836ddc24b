"""Deferred imports of third-party modules that a dependency imports eagerly but hybridmcp's
use of it never touches."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

_LOCK = threading.Lock()


class _Deferred(ModuleType):
    """A module's stand-in in ``sys.modules``: importing it again finds the stand-in (its
    ``__spec__`` is an ordinary attribute, so the import system does not load it); the first
    use of any of the module's own names imports the real module into it."""

    def __getattr__(self, name: str) -> Any:  # called only for names the stand-in lacks
        with _LOCK:
            if isinstance(self, _Deferred):  # not loaded by another thread meanwhile
                del sys.modules[self.__name__]
                try:
                    real = importlib.import_module(self.__name__)
                except BaseException:
                    sys.modules[self.__name__] = self
                    raise
                self.__dict__.update(real.__dict__)
                self.__class__ = ModuleType  # type: ignore[assignment]
                sys.modules[self.__name__] = self  # one module object, as before
        return getattr(self, name)


def defer(name: str) -> None:
    """Make ``import name`` cheap: the module is loaded on the first use of one of its
    attributes, not when imported. Nothing happens when it is imported already or not
    installed (the import then fails where it always would).

    LangGraph's SQLite store imports ``sqlite_vec`` at import time, which imports numpy (a
    sixth of a short run's start-up), and uses it only for vector search, which hybridmcp's
    store does not configure. (``importlib.util.LazyLoader`` does not do here: an ``import``
    statement reads the module's ``__spec__``, which makes a lazy module load.)"""
    with _LOCK:
        if name in sys.modules:
            return
        spec = importlib.util.find_spec(name)
        if spec is None:
            return
        stand_in = _Deferred(name)
        stand_in.__spec__ = spec
        stand_in.__file__ = spec.origin
        sys.modules[name] = stand_in

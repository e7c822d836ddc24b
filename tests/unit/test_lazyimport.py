"""Deferred imports (hybridmcp.lazyimport): a module or package stands in until one of its
names is used; its submodules import without it; then every import finds the real one."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hybridmcp.lazyimport import defer


@pytest.fixture
def packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``slowmod`` (a module), ``slowpkg`` (a package with a submodule ``part``) and
    ``outer`` (a package importing a submodule of its subpackage ``inner``, as ``mcp`` does of
    ``mcp.server``), each appending its name to ``executed.txt`` when its code runs."""
    log = tmp_path / "executed.txt"
    note = f"open({str(log)!r}, 'a').write(__name__ + '\\n')\n"
    (tmp_path / "slowmod.py").write_text(note + "VALUE = 42\ncounter = [0]\n")
    pkg = tmp_path / "slowpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(note + "from .part import PART\nTOP = 'top'\n")
    (pkg / "part.py").write_text(note + "PART = 'part'\n")
    inner = tmp_path / "outer" / "inner"
    inner.mkdir(parents=True)
    (tmp_path / "outer" / "__init__.py").write_text(note + "from .inner.part import PART\n")
    (inner / "__init__.py").write_text(note + "from .heavy import HEAVY\n")
    (inner / "part.py").write_text(note + "PART = 'part'\n")
    (inner / "heavy.py").write_text(note + "HEAVY = 'heavy'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield log
    for name in [n for n in sys.modules if n.split(".")[0] in ("slowmod", "slowpkg", "outer")]:
        del sys.modules[name]


def executed(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_a_deferred_module_runs_at_its_first_use_not_at_import(packages: Path) -> None:
    defer("slowmod")
    import slowmod

    assert executed(packages) == []
    assert slowmod.VALUE == 42
    assert executed(packages) == ["slowmod"]
    import slowmod as again

    assert again.VALUE == 42 and executed(packages) == ["slowmod"]  # ran once
    assert sys.modules["slowmod"].counter is slowmod.counter  # one module's state


def test_a_deferred_package_s_submodule_imports_without_the_package(packages: Path) -> None:
    defer("slowpkg")
    from slowpkg.part import PART

    assert PART == "part" and executed(packages) == ["slowpkg.part"]
    from slowpkg import TOP  # a name of the package itself: now it runs

    assert TOP == "top" and executed(packages) == ["slowpkg.part", "slowpkg"]
    pkg = importlib.import_module("slowpkg")
    assert pkg.part.PART == "part" and pkg.PART == "part"


def test_a_deferred_subpackage_s_parent_imports_without_it(packages: Path) -> None:
    defer("outer.inner")
    assert executed(packages) == ["outer", "outer.inner.part"]  # not inner's __init__, heavy
    import outer.inner

    assert outer.inner.part.PART == "part" and len(executed(packages)) == 2
    from outer.inner import HEAVY

    assert HEAVY == "heavy"
    assert executed(packages) == ["outer", "outer.inner.part", "outer.inner", "outer.inner.heavy"]
    assert importlib.import_module("outer.inner").part.PART == "part"


def test_nothing_is_deferred_that_is_imported_already_or_missing(packages: Path) -> None:
    import slowmod

    defer("slowmod")
    assert sys.modules["slowmod"] is slowmod
    defer("no_such_module_here")
    assert "no_such_module_here" not in sys.modules
    with pytest.raises(ModuleNotFoundError):
        import no_such_module_here  # noqa: F401


def test_a_missing_name_is_an_attribute_error_after_loading(packages: Path) -> None:
    defer("slowmod")
    import slowmod

    with pytest.raises(AttributeError):
        _ = slowmod.not_there
    assert executed(packages) == ["slowmod"]

"""The README's set-up section describes what `.ci/run` does: the extras it installs, the npm
servers, the Debian packages, and the exact test command. A change to one without the other fails
here."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CI = (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def _flat(text: str) -> str:
    """Markdown wraps lines; compare with runs of whitespace as one space."""
    return re.sub(r"\s+", " ", text)


def test_readme_names_the_extras_ci_installs():
    extras = re.findall(r"pip install --quiet (-e '\.\[[^\]]*\]')", CI)
    assert extras, "no 'pip install -e' line found in .ci/run"
    for spec in extras:
        assert f"`{spec}`" in README, f"README does not say .ci/run installs {spec}"


def test_readme_names_the_test_command_ci_runs():
    last = [ln for ln in CI.splitlines() if ln.strip() and not ln.startswith("#")][-1]
    assert _flat(last) in _flat(README), f"README does not show .ci/run's test command: {last}"
    for var in re.findall(r"^export (HYBRIDMCP_NO_SKIPS=\S+)", CI, re.M):
        assert var in README


def test_readme_names_the_servers_and_packages_ci_installs():
    npm = re.findall(r"@modelcontextprotocol/([\w-]+)", CI)
    assert npm
    for name in set(npm) - {"conformance"}:
        assert name in README, f"README does not say .ci/run installs the npm {name}"
    assert "conformance" in README
    for pkg in ("postgresql", "chromium"):
        assert pkg in CI and f"`{pkg}`" in README

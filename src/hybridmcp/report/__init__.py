"""The HTML report of a run: one self-contained file (styles, script and charts inline, nothing
fetched), built from the run's final state.

- :func:`report_model` (in :mod:`hybridmcp.report.model`): the page's content, pure;
- :func:`render_report`: that content laid out by the Jinja2 template beside this module;
- :func:`write_report`: both, written to a file.

Jinja2 does the layout because the page is mostly tables and repeated SVG shapes, which a
template with autoescaping writes more readably (and more safely, for values that come from
servers) than string building; the charts are plain SVG computed here, so the file needs no
plotting library at run time and opens offline in any browser.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from hybridmcp import jsontext
from hybridmcp.report.model import BAR_KINDS, isolated, page_records, report_model

if TYPE_CHECKING:
    from jinja2 import Environment

__all__ = ["BAR_KINDS", "render_report", "report_model", "write_report"]


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _ms(value: float | None) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "-"
    return f"{value / 1000:.2f} s" if value >= 10_000 else f"{value:.1f} ms"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _bar_style(bar: Mapping[str, Any]) -> Markup:
    """The SVG attributes that draw a bar of a kind (see the page's legend)."""
    fill = f"var(--{bar['side']})"
    kind = bar["kind"]
    if kind == "hedge":
        style = f'fill="url(#hatch-{bar["side"]})"'
    elif kind == "failed":
        style = f'fill="{fill}" stroke="var(--bad)" stroke-width="2"'
    elif kind == "cancelled":
        style = f'fill="{fill}" fill-opacity=".3" stroke="#4a5568" stroke-dasharray="3 2"'
    elif kind == "reallocated":
        style = f'fill="{fill}" stroke="#000" stroke-width="1.5" stroke-dasharray="2 1"'
    else:
        style = f'fill="{fill}"'
    return Markup(style)


def _version() -> str:
    try:
        return importlib.metadata.version("hybridmcp")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _environment() -> Environment:
    # Imported here: a run without --report (and `hybridmcp` at start-up) never loads Jinja2.
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("hybridmcp", "report"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    helpers: dict[str, Any] = {
        "num": _num,
        "ms": _ms,
        "share": _share,
        "bar_style": _bar_style,
        "iso": isolated,
    }
    env.globals.update(helpers)
    return env


def render_report(
    state: Mapping[str, Any],
    learned: Sequence[Mapping[str, Any]] = (),
    *,
    title: str = "hybridmcp run",
    source: str = "",
    now: datetime | None = None,
) -> str:
    """The report's HTML for a run's final state and the learned statistics."""
    model = report_model(state, learned, title=title)
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    subtitle = " · ".join(p for p in (source, f"generated {when}") if p)
    template = _environment().get_template("report.html.j2")
    return template.render(
        m=model,
        subtitle=subtitle,
        version=_version(),
        records=_script_json(page_records(model["records"])),
    )


def _script_json(value: Any) -> Markup:
    """Compact JSON safe inside a ``<script>`` element (no ``<``, ``>``, ``&`` or ``'``; a
    NaN or infinity written as null, which ``JSON.parse`` reads)."""
    text = jsontext.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("'", "\\u0027")):
        text = text.replace(char, escaped)
    return Markup(text)


def write_report(
    path: str | Path,
    state: Mapping[str, Any],
    learned: Sequence[Mapping[str, Any]] = (),
    **options: Any,
) -> Path:
    """Write the report to ``path`` (its directory created); returns the path. It is written
    whole beside ``path`` first, then put in its place: a write that fails (a full disk, an
    interruption) leaves the file that was there as it was."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = render_report(state, learned, **options)
    partial = out.with_name(f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
    try:
        with partial.open("x", encoding="utf-8") as file:
            file.write(text)
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return out

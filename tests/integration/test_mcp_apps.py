"""``@modelcontextprotocol/server-pdf`` (npm), an MCP Apps server: beside the tools a model
calls (``display_pdf``, ``list_pdfs``, ``interact``) it lists tools for its own viewer's use
only (``_meta.ui.visibility: ["app"]``: ``read_pdf_bytes``, ``submit_page_data``, ...). A model
is offered the first kind only, by :class:`~hybridmcp.toolnode.HybridToolNode` and in the
planner's catalogue; the others stay callable by name (they were offered to every agent's
model as tools of its own to call).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from hybridmcp import Coordinator, parse_task
from hybridmcp.config import parse_config
from hybridmcp.runtime import Resources
from hybridmcp.toolnode import tools_for_model

pytestmark = pytest.mark.integration


def pdf_entry() -> str | None:
    prefix = os.environ.get("MCP_EVERYTHING_DIR")
    entry = Path(prefix or "/nonexistent", "node_modules/@modelcontextprotocol/server-pdf")
    return str(entry / "dist/index.js") if (entry / "dist/index.js").exists() else None


requires_pdf_server = pytest.mark.skipif(
    shutil.which("node") is None or pdf_entry() is None,
    reason="needs node and @modelcontextprotocol/server-pdf (npm install --prefix DIR ... with "
    "MCP_EVERYTHING_DIR=DIR; .ci/run does)",
)


def tiny_pdf(path: Path) -> bytes:
    """A one-page PDF saying "Hello zoo", written to ``path``."""
    stream = "BT /F1 24 Tf 40 60 Td (Hello zoo) Tj ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 144] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    text, offsets = "%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(text))
        text += f"{number} 0 obj\n{body}\nendobj\n"
    xref = len(text)
    text += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n"
    text += "".join(f"{offset:010d} 00000 n \n" for offset in offsets)
    text += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    path.write_text(text)
    return text.encode()


def pdf_server(folder: Path) -> dict[str, Any]:
    entry = pdf_entry()
    assert entry is not None
    return {
        "command": shutil.which("node") or "node",
        "args": [entry, "--stdio", str(folder)],
        "env": {"PATH": os.environ["PATH"], "HOME": str(folder)},
        "cwd": str(folder),
        "timeout_ms": 30_000,
        "clearance": "restricted",
    }


def pdf_config(folder: Path) -> Any:
    return parse_config({"mcpServers": {"pdf": pdf_server(folder)}})


@requires_pdf_server
async def test_a_model_is_offered_only_the_tools_an_apps_server_gives_it(tmp_path):
    tiny = tiny_pdf(tmp_path / "hello.pdf")
    cfg = pdf_config(tmp_path)
    async with asyncio.timeout(90):
        async with await Resources.open(cfg) as res:
            listed = {t.name: t for t in res.pool.status("pdf").tools}
            offered = {t.name for t in tools_for_model(res)}
            catalogue = {entry["name"] for entry in res.registry.catalogue()}
            named = {t.name for t in tools_for_model(res, skills=["pdf.read_pdf_bytes"])}
        async with Coordinator.open(cfg) as co:
            out = await co.run(
                parse_task(
                    [
                        {
                            "id": "bytes",
                            "skill": "pdf.read_pdf_bytes",
                            "args": {"url": str(tmp_path / "hello.pdf")},
                        }
                    ]
                )
            )
    app_only = {
        name
        for name, tool in listed.items()
        if (tool.meta or {}).get("ui", {}).get("visibility") == ["app"]
    }
    # the server as it is: both kinds listed
    assert {"read_pdf_bytes", "submit_page_data", "poll_pdf_commands"} <= app_only
    assert {"display_pdf", "list_pdfs"} <= set(listed) - app_only
    for name in listed:
        seen = name not in app_only
        assert (f"pdf__{name}" in offered) is seen, (name, offered)
        assert (f"pdf.{name}" in catalogue) is seen, (name, catalogue)
    assert named == {"pdf__read_pdf_bytes"}  # asked for by name: offered
    result = out["results"]["bytes"]
    assert result["status"] == "ok", result
    assert base64.b64decode(result["value"]["bytes"]) == tiny


@requires_pdf_server
def test_hybridmcp_tools_marks_the_tools_an_apps_server_keeps_for_its_viewer(tmp_path):
    """``hybridmcp tools`` lists both kinds; the viewer's own are marked app only, in the
    table and in ``--json`` (``app_only``)."""
    from tests.integration.test_durable import cli, cli_env

    config = tmp_path / "pdf.json"
    config.write_text(json.dumps({"mcpServers": {"pdf": pdf_server(tmp_path)}}))
    listed = cli("tools", "--json", "--config", str(config), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    app_only = {r["skill"]: r["app_only"] for r in json.loads(listed.stdout)}
    assert {"pdf.read_pdf_bytes", "pdf.submit_page_data", "pdf.poll_pdf_commands"} <= {
        skill for skill, only in app_only.items() if only
    }, app_only
    assert not app_only["pdf.display_pdf"] and not app_only["pdf.list_pdfs"]
    assert not app_only["math.calculate"]
    table = cli("tools", "--config", str(config), cwd=tmp_path, env=cli_env(COLUMNS="200"))
    assert table.returncode == 0, table.stderr
    rows = {line.split()[0]: line for line in table.stdout.splitlines() if line.strip()}
    for skill, only in app_only.items():
        assert ("(app only)" in rows[skill]) is only, rows[skill]

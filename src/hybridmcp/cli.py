"""The command line: ``hybridmcp run [TASK] [--config FILE] [--audit FILE] [--json]`` and
``hybridmcp audit verify FILE``."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hybridmcp.audit import verify as verify_audit
from hybridmcp.config import load_config
from hybridmcp.coordinator import Coordinator
from hybridmcp.errors import HybridMCPError
from hybridmcp.progress import LiveProgress
from hybridmcp.task import load_task

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Coordinate work between internal skills and external MCP services.",
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
_EXIT = {"ok": EXIT_OK, "partial": EXIT_PARTIAL, "failed": EXIT_FAILED}


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def report(out: dict[str, Any]) -> dict[str, Any]:
    """The run as one JSON-ready object: what ``--json`` prints."""
    return {
        "status": out.get("status", "failed"),
        "results": list(out.get("results", {}).values()),
        "conflicts": out.get("conflicts", []),
        "events": out.get("events", []),
        "quality": out.get("quality", {}),
        "metrics": out.get("metrics", {}),
        "cost": out.get("cost", {}),
    }


def _attempts_cell(attempts: list[dict[str, Any]]) -> str:
    marks = []
    for a in attempts:
        mark = "[green]✓[/green]" if a["ok"] else "[red]✗[/red]"
        marks.append(f"{a['side'][:3]} {mark} {a['latency_ms']:.1f}ms")
    return "\n".join(marks) or "-"


def render(data: dict[str, Any], console: Console) -> None:
    table = Table(title=f"hybridmcp run: {data['status']}", show_lines=True)
    table.add_column("request", overflow="fold", max_width=22)
    table.add_column("allocation")
    table.add_column("attempts", no_wrap=True)
    table.add_column("agree")
    table.add_column("conf", justify="right")
    table.add_column("value", overflow="fold", ratio=1)
    for r in data["results"]:
        agree = {True: "yes", False: "[red]CONFLICT[/red]", None: "-"}[r["agreement"]]
        value = f"[red]{_short(r['error'], 160)}[/red]" if r["error"] else _short(r["value"], 120)
        table.add_row(
            r["id"],
            r["allocation"],
            _attempts_cell(r["attempts"]),
            agree,
            f"{r['confidence']:.2f}",
            value,
        )
    console.print(table)
    for e in data["events"]:
        detail = {k: v for k, v in e.items() if k not in ("code", "coordination_status")}
        console.print(f"[yellow]event[/yellow] {e['code']}: {_short(detail, 160)}", highlight=False)
    q, m = data["quality"], data["metrics"]
    console.print(
        "quality: " + ", ".join(f"{k} {v:.2f}" for k, v in q.items() if isinstance(v, float)),
        highlight=False,
    )
    console.print(
        f"metrics: {m.get('answered')}/{m.get('requests')} answered, rounds {m.get('rounds')}, "
        f"calls {m.get('calls')}, cost {m.get('cost')}, wall {m.get('wall_ms')} ms",
        highlight=False,
    )
    c = data.get("cost") or {}
    if c:
        opt = c["cost_optimization"]
        budget = (
            f", budget {c['budget']:g} ({c['budget_remaining']:g} left)"
            if c["budget"] is not None
            else ""
        )
        console.print(
            f"cost: spent {c['spent']:g}{budget}; always-external would have cost "
            f"{opt['always_external']:g} for {opt['requests_compared']} request(s), "
            f"saved {opt['saved']:g}",
            highlight=False,
        )


async def _run(
    task_path: str | None, config_path: str | None, live: bool = False, audit: str | None = None
) -> dict[str, Any]:
    config = load_config(config_path)
    if audit is not None:
        config = config.model_copy(
            update={"audit": config.audit.model_copy(update={"path": audit})}
        )
    task = load_task(task_path)
    async with Coordinator.open(config) as co:
        if not live:
            return report(await co.run(task))
        out: dict[str, Any] = {}
        with LiveProgress(Console(stderr=True)) as display:  # progress on stderr, as it happens
            async for event in co.stream(task):
                if event["type"] == "result":
                    out = event["output"]
                else:
                    display.update(event)
        return report(out)


@app.command()
def run(
    task: Annotated[
        str | None, typer.Argument(help="Task file (JSON/YAML), '-' for stdin; default: the demo.")
    ] = None,
    config: Annotated[
        str | None, typer.Option("--config", "-c", help="Configuration file (YAML/JSON).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    audit: Annotated[
        str | None,
        typer.Option("--audit", help="Append the hash-chained audit trail to FILE (JSON lines)."),
    ] = None,
) -> None:
    """Run a task (or the embedded demo) and print the coordinated result."""
    console = Console(stderr=as_json)
    try:
        data = asyncio.run(_run(task, config, not as_json and sys.stdout.isatty(), audit))
    except HybridMCPError as err:
        Console(stderr=True).print(f"[red]error:[/red] {err}", highlight=False)
        raise typer.Exit(EXIT_USAGE) from None
    if as_json:
        sys.stdout.write(json.dumps(data, default=str) + "\n")
    else:
        render(data, console)
    raise typer.Exit(_EXIT.get(data["status"], EXIT_FAILED))


audit_app = typer.Typer(no_args_is_help=True, help="The audit trail.")
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(
    file: Annotated[str, typer.Argument(help="Audit trail (JSON lines) to check.")],
) -> None:
    """Check the hash chain: exit 1, naming the first bad record, on any edit, removal,
    insertion or reordering."""
    result = verify_audit(file)
    if result.ok:
        seq, digest = result.head or (0, "")
        print(f"ok: {result.records} records, chain intact (last seq {seq}, hash {digest[:16]})")
        raise typer.Exit(EXIT_OK)
    typer.echo(f"FAILED: {result.problems[0]}", err=True)  # one line per problem, unwrapped
    for problem in result.problems[1:10]:
        typer.echo(f"  also: {problem}", err=True)
    raise typer.Exit(EXIT_FAILED)


@app.callback()
def _main() -> None:
    """hybridmcp: internal and external capabilities, coordinated."""


def main() -> None:
    app()


if __name__ == "__main__":
    main()

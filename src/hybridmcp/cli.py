"""The command line: ``hybridmcp run [TASK | --ask TEXT] [--config FILE] [--json]``."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hybridmcp.config import load_config
from hybridmcp.coordinator import Coordinator
from hybridmcp.errors import HybridMCPError
from hybridmcp.progress import LiveProgress
from hybridmcp.prompts.planner import Plan, plan_requests
from hybridmcp.task import load_task, parse_task

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
        **({"coordination": out["coordination"]} if out.get("coordination") else {}),
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
    if data.get("coordination"):
        strategy = data["coordination"]["coordination_strategy"]
        console.print(f"coordination: {_short(strategy, 200)}", highlight=False)
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


def show_plan(plan: Plan, console: Console, as_json: bool) -> None:
    """The planner's requests, before anything runs: a table, or one JSON line on stderr."""
    if as_json:
        sys.stderr.write(json.dumps({"plan": plan_record(plan)}, default=str) + "\n")
        return
    table = Table(title=f"plan by {plan.model}", show_lines=True)
    table.add_column("request")
    table.add_column("skill")
    table.add_column("args", overflow="fold", ratio=1)
    for r in plan.requests:
        table.add_row(r["id"], r["skill"], json.dumps(r["args"], ensure_ascii=False))
    console.print(table)
    if plan.rationale:
        console.print(f"rationale: {plan.rationale}", highlight=False)


def plan_record(plan: Plan) -> dict[str, Any]:
    return {"model": plan.model, "requests": plan.requests, "rationale": plan.rationale}


async def _run(
    task_path: str | None,
    config_path: str | None,
    live: bool = False,
    ask: str | None = None,
    show: Callable[[Plan], None] | None = None,
) -> dict[str, Any]:
    config = load_config(config_path)
    task = load_task(task_path) if ask is None else None
    async with Coordinator.open(config) as co:
        if ask is not None:
            plan = await plan_requests(co.resources, ask)
            if show is not None:
                show(plan)
            task = parse_task({"requests": plan.requests}, "the planner's plan")
            return report(await co.run(task)) | {"plan": plan_record(plan)}
        assert task is not None
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
    ask: Annotated[
        str | None,
        typer.Option(
            "--ask",
            help="A task in free text: the planner LM turns it into requests, which are "
            "shown, validated, then run.",
        ),
    ] = None,
) -> None:
    """Run a task (or the embedded demo) and print the coordinated result."""
    console = Console(stderr=as_json)
    if ask is not None and task is not None:
        Console(stderr=True).print("[red]error:[/red] give a TASK file or --ask, not both")
        raise typer.Exit(EXIT_USAGE)
    live = not as_json and sys.stdout.isatty() and ask is None
    try:
        data = asyncio.run(
            _run(task, config, live, ask, lambda plan: show_plan(plan, console, as_json))
        )
    except HybridMCPError as err:
        Console(stderr=True).print(f"[red]error:[/red] {err}", highlight=False)
        raise typer.Exit(EXIT_USAGE) from None
    if as_json:
        sys.stdout.write(json.dumps(data, default=str) + "\n")
    else:
        render(data, console)
    raise typer.Exit(_EXIT.get(data["status"], EXIT_FAILED))


@app.callback()
def _main() -> None:
    """hybridmcp: internal and external capabilities, coordinated."""


def main() -> None:
    app()


if __name__ == "__main__":
    main()

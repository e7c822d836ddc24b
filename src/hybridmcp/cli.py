"""The command line: ``hybridmcp run [TASK | --ask TEXT] [--config FILE] [--json] [--db DB]
[--thread ID] [--audit FILE] [--report FILE] [--table] [--quiet] [--server-log FILE]``,
``hybridmcp report --thread ID [--db DB | --url URL] -o FILE``, ``hybridmcp servers``,
``hybridmcp tools``, ``hybridmcp stats``, ``hybridmcp audit verify FILE [--head H]``,
``hybridmcp audit head FILE``, ``hybridmcp auth login SERVER``, ``hybridmcp auth status``,
``hybridmcp auth logout SERVER``, ``hybridmcp --version``."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import importlib.metadata
import itertools
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import anyio.lowlevel
import typer
from rich import box
from rich.console import Console
from rich.table import Table

from hybridmcp import jsontext
from hybridmcp.audit import ENV_KEY as ENV_AUDIT_KEY
from hybridmcp.audit import NO_HEAD, AuditReport, load_key, parse_head
from hybridmcp.audit import iter_records as iter_audit_records
from hybridmcp.audit import verify as verify_audit
from hybridmcp.config import CONFIG_ENV, HttpServer, HybridConfig, load_config
from hybridmcp.errors import AuditError, ConfigError, HybridMCPError, TaskError
from hybridmcp.lazyimport import defer
from hybridmcp.persistence import (
    ENV_DB,
    MEMORY,
    check_sqlite,
    default_db_path,
    head_anchor,
    heads_path,
    is_postgres,
    lock_path,
    open_persistence,
    resolve_db,
    shown_db,
    tokens_path,
)
from hybridmcp.prompts.planner import Plan, plan_requests
from hybridmcp.report.summary import SUMMARY_ABOVE, render_summary, render_totals
from hybridmcp.task import load_task, parse_task
from hybridmcp.terminal import plain, shown

# The rest is imported where it is used, so that each command loads only what it needs: `run`
# starts its MCP servers first and imports the graph while they start (see `_started`); the HTML
# report (Jinja2) loads only for --report and `report`, the OAuth flows only for `auth`.
if TYPE_CHECKING:
    from hybridmcp.coordinator import Coordinator
    from hybridmcp.oauth import StoredAuth, TokenStore
    from hybridmcp.runtime import Resources

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Coordinate work between internal skills and external MCP services.",
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL, EXIT_UNRESOLVED, EXIT_PAUSED = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command Ctrl-C ended
_EXIT = {
    "ok": EXIT_OK,
    "partial": EXIT_PARTIAL,
    "unresolved": EXIT_UNRESOLVED,
    "failed": EXIT_FAILED,
    "paused": EXIT_PAUSED,
}


class _OneLine(logging.Formatter):
    """``logger: message``, an exception as its one-line text, never a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{record.name}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            err = record.exc_info[1]
            text += f" ({type(err).__name__}: {' '.join(str(err).split())[:200]})"
        return plain(text)  # a server's log message, as the text it is


class _Output(Console):
    """A console on stdout that a reader may stop reading (``| head``): the rest of the
    output is dropped and the command ends with its own exit code (Rich exits 1 here,
    which ``run`` documents as a failed run)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        _drop_stdout()


def _drop_stdout() -> None:
    """What is still to be written to stdout goes nowhere: its reader is gone."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


@contextlib.contextmanager
def _output() -> Iterator[None]:
    """Write a command's output to stdout; a reader that stopped reading ends the output, not
    the command (click would exit 1 on the closed pipe)."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        _drop_stdout()


def _ours(record: logging.LogRecord) -> bool:
    return record.name.startswith("hybridmcp") and not record.name.startswith("hybridmcp.server")


def configure_logging(verbose: bool = False, log_file: str | None = None) -> None:
    """Where log records go: hybridmcp's warnings to stderr as one line each; with
    ``verbose``, every record at INFO and above (MCP servers' log messages, the SDK's), still
    one line each; with ``log_file``, every record at INFO and above with tracebacks."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "hybridmcp", False)]:
        root.removeHandler(handler)
        handler.close()
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(_OneLine())
    stderr.setLevel(logging.INFO if verbose else logging.WARNING)
    if not verbose:
        stderr.addFilter(_ours)
    handlers: list[logging.Handler] = [stderr]
    if log_file is not None:
        try:
            file = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"--log-file: cannot write {log_file!r}: {err.strerror}") from None
        file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        file.setLevel(logging.INFO)
        handlers.append(file)
    for handler in handlers:
        handler.hybridmcp = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.INFO if verbose or log_file else logging.WARNING)


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def _text(value: Any, width: int = 60) -> str:
    """A value cut to ``width``, as console markup that shows it as the text it is."""
    return shown(_short(value, width))


def report(out: dict[str, Any]) -> dict[str, Any]:
    """The run as one JSON-ready object: what ``--json`` prints. A run paused for a human
    has status ``paused`` and its questions under ``questions`` (answer with ``--answer``)."""
    questions = [{"id": i.id, **_as_dict(i.value)} for i in out.get("__interrupt__") or []]
    return {
        "status": "paused" if questions else out.get("status", "failed"),
        **({"questions": questions} if questions else {}),
        "results": list(out.get("results", {}).values()),
        "conflicts": out.get("conflicts", []),
        "events": out.get("events", []),
        "quality": out.get("quality", {}),
        "metrics": out.get("metrics", {}),
        "cost": out.get("cost", {}),
        **({"coordination": out["coordination"]} if out.get("coordination") else {}),
    }


def _as_dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {"value": value}


def _attempts_cell(attempts: list[dict[str, Any]]) -> str:
    marks = []
    for a in attempts:
        mark = "[green]✓[/green]" if a["ok"] else "[red]✗[/red]"
        marks.append(f"{a['side'][:3]} {mark} {a['latency_ms']:.1f}ms")
    return "\n".join(marks) or "-"


WIDE_TABLE = 120
"""From this many columns the results are a column per field; below it (an 80-column
terminal, a pipe) the allocation, attempts, agreement and confidence share one column, so the
value keeps half the width instead of a few letters."""


def _results_table(data: dict[str, Any], *, wide: bool) -> Table:
    table = Table(title=f"hybridmcp run: {data['status']}", show_lines=True)
    table.add_column("request", overflow="fold", max_width=22 if wide else 20)
    if wide:
        table.add_column("allocation")
        table.add_column("served by")
        table.add_column("attempts", no_wrap=True)
        table.add_column("agree")
        table.add_column("conf", justify="right")
    else:
        table.add_column("allocation → served by", no_wrap=True)
    table.add_column("value", overflow="fold", ratio=1)
    for r in data["results"]:
        agree = {True: "yes", False: "[red]CONFLICT[/red]", None: "-"}[r["agreement"]]
        if r["error"]:
            value = f"[red]{_text(r['error'], 160)}[/red]"
        elif r.get("status") == "unresolved":
            value = f"[red]UNRESOLVED[/red] {_text(r.get('values'), 120)}"
        else:
            value = _text(r["value"], 120)
        served = r.get("served_by")
        side = served["side"] if served else "-"
        attempts, conf = _attempts_cell(r["attempts"]), f"{r['confidence']:.2f}"
        if wide:
            table.add_row(shown(r["id"]), r["allocation"], side, attempts, agree, conf, value)
        else:
            outcome = f"{r['allocation']} → {side}\n{attempts}\nagree {agree}, conf {conf}"
            table.add_row(shown(r["id"]), outcome, value)
    return table


def render(data: dict[str, Any], console: Console) -> None:
    if not data["results"]:  # paused before any request settled: its questions follow
        console.print(f"hybridmcp run: {data['status']}", highlight=False)
        render_totals(data, console)
        return
    console.print(_results_table(data, wide=console.width >= WIDE_TABLE))
    for e in data["events"]:
        detail = {k: v for k, v in e.items() if k not in ("code", "coordination_status")}
        console.print(f"[yellow]event[/yellow] {e['code']}: {_text(detail, 160)}", highlight=False)
    if data.get("coordination"):
        strategy = data["coordination"]["coordination_strategy"]
        console.print(f"coordination: {_text(strategy, 200)}", highlight=False)
    render_totals(data, console)
    m = data["metrics"]
    accuracy = (m.get("prediction") or {}).get("accuracy")
    if accuracy is not None:
        console.print(
            f"prediction accuracy: {accuracy:.2f} over {m['prediction']['attempts']} attempts",
            highlight=False,
        )
    for key, learned in ((m.get("advice") or {}).get("accuracy") or {}).items():
        console.print(
            f"advice {key}: accuracy {learned['advice_accuracy']:.2f} vs the rule's "
            f"{learned['rule_accuracy']:.2f} over {learned['scored']} scored"
            + (" (trusted)" if learned["trusted"] else " (not trusted: the rule decides)"),
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
        table.add_row(
            *map(shown, (r["id"], r["skill"], json.dumps(r["args"], ensure_ascii=False)))
        )
    console.print(table)
    if plan.rationale:
        console.print(f"rationale: {shown(plan.rationale)}", highlight=False)
    for part in plan.uncovered:
        console.print(f"[yellow]not planned:[/] {shown(part)}", highlight=False)


def plan_record(plan: Plan) -> dict[str, Any]:
    record = {"model": plan.model, "requests": plan.requests, "rationale": plan.rationale}
    return record | ({"uncovered": list(plan.uncovered)} if plan.uncovered else {})


async def _run(
    task_path: str | None,
    config_path: str | None,
    *,
    db: str | None = None,
    thread: str | None = None,
    live: bool = False,
    audit: str | None = None,
    ask: str | None = None,
    show: Callable[[Plan], None] | None = None,
    server_log: str | None = None,
    captured: dict[str, Any] | None = None,
    answer: Any = None,
    prompt: Callable[[list[Any]], Any] | None = None,
    report_file: str | None = None,
    log_file: str | None = None,
) -> dict[str, Any]:
    with _collector_paused():
        config = _run_config(config_path, server_log=server_log, audit=audit, db=db)
        _refuse_clashes(
            config,
            task_path,
            config_path,
            report_file=report_file,
            log_file=log_file,
            audit_option="--audit" if audit is not None else "audit.path",
            server_log_option="--server-log"
            if server_log not in (None, str(_SERVER_LOG))
            else "the servers' log",
        )
        task = load_task(task_path, config.input_limits) if ask is None else None
    thread_id = thread or uuid.uuid4().hex
    planned: dict[str, Any] = {}
    async with _started(config, resolve_db(db)) as (co, checkpointer, store):
        warn_unavailable(co.resources)
        if ask is not None:
            plan = await plan_requests(co.resources, ask)
            if show is not None:
                show(plan)
            task = parse_task(
                {"requests": plan.requests}, "the planner's plan", config.input_limits
            )
            planned = {"plan": plan_record(plan)}
        assert task is not None
        status = await co.thread_status(task, thread_id)
        try:
            if answer is not None:
                out = await _answered(co, status, answer, thread, thread_id)
            else:
                out = await _ran(co, task, thread_id, live)
            while prompt is not None and out.get("__interrupt__"):
                decision = await asyncio.to_thread(prompt, list(out["__interrupt__"]))
                if decision is None:  # no answer (end of input): the run stays paused
                    break
                out = await co.resume(decision, thread_id=thread_id)
            if captured is not None:  # the full final state and what is learned: the report's
                captured |= await _captured(co, store, thread_id)
        finally:
            if thread is None:  # an unnamed run cannot be resumed: keep no checkpoints of it
                await checkpointer.adelete_thread(thread_id)
    return report(out) | {"thread": {"id": thread, "found": status.state}} | planned


def _run_config(
    path: str | None, *, server_log: str | None, audit: str | None, db: str | None
) -> HybridConfig:
    """The configuration checked whole, with the command's options applied."""
    config = configured(path)
    if server_log is not None:  # --server-log wins; the default yields to the configuration's
        chosen = server_log != str(_SERVER_LOG)
        if chosen or config.resilience.pool.server_log is None:
            config = _with_server_log(config, server_log, chosen)
    if audit is not None:
        config = config.model_copy(
            update={"audit": config.audit.model_copy(update={"path": audit})}
        )
    if db is not None:  # the trail's head is anchored beside the run database
        config = config.model_copy(update={"audit": config.audit.model_copy(update={"run_db": db})})
    return config


async def _answered(
    co: Coordinator, status: Any, answer: Any, thread: str | None, thread_id: str
) -> Any:
    """The thread paused for a question, resumed with ``--answer``."""
    if status.state != "paused":
        raise TaskError(
            f"--answer: thread {thread!r} is not paused for a question (it is {status.state})"
        )
    return await co.resume(answer, thread_id=thread_id)


async def _ran(co: Coordinator, task: Any, thread_id: str, live: bool) -> Any:
    """The task run on the thread; with ``live``, its progress shown on stderr meanwhile."""
    if not live:
        return await co.run(task, thread_id=thread_id)
    from hybridmcp.live import LiveProgress

    out: Any = {}
    with LiveProgress(Console(stderr=True)) as display:
        async for event in co.stream(task, thread_id=thread_id):
            if event["type"] == "result":
                out = event["output"]
            else:
                display.update(event)
    return out


async def _captured(co: Coordinator, store: Any, thread_id: str) -> dict[str, Any]:
    """The run's full final state and what is learned: what ``--report`` shows."""
    from hybridmcp.report.source import own_types_quiet
    from hybridmcp.stats_store import all_stats, stats_record

    with own_types_quiet():
        snapshot = await co.graph.aget_state(co.run_config(thread_id))
    learned = [stats_record(s) for s in await all_stats(store)]
    return {"state": dict(snapshot.values or {}), "learned": learned}


@contextlib.asynccontextmanager
async def _started(config: HybridConfig, db: str) -> AsyncIterator[tuple[Coordinator, Any, Any]]:
    """A run's coordinator, its checkpointer and its store on the run database ``db``.

    The MCP servers start first (the configuration, the task, the audit trail and the database
    file checked before, as ever): the graph's modules import, in a worker thread, and the
    database opens while the server processes start, which is most of a short run's start-up.
    A PostgreSQL database, reached over the network, is opened before any server starts."""
    async with AsyncExitStack() as stack:
        with _collector_paused():
            await asyncio.to_thread(_check_db_file, db)
            for unused in ("mcp.server", "jwt"):  # the MCP SDK's server side, OAuth's JWT
                defer(unused)  # signing (hybridmcp.lazyimport): loaded only if used
            from hybridmcp.runtime import opening  # the MCP client: to start the servers

            if is_postgres(db):
                checkpointer, store = await stack.enter_async_context(open_persistence(db))
            await anyio.lowlevel.checkpoint()  # anyio's backend loads now, not with the graph
            starting = await stack.enter_async_context(opening(config))
            switch = sys.getswitchinterval()
            # The event loop takes the interpreter from the importing thread at once (not
            # after the default 5 ms) at each step of starting the servers, so they start first.
            sys.setswitchinterval(0.0005)
            try:
                await asyncio.to_thread(_import_the_run, db)
            finally:
                sys.setswitchinterval(switch)
            if not is_postgres(db):
                checkpointer, store = await stack.enter_async_context(open_persistence(db))
            # entered last, closed first: the servers stop before the database closes
            resources = await stack.enter_async_context(await starting.resources(store))
            from hybridmcp.coordinator import Coordinator

            co = Coordinator(resources, checkpointer=checkpointer, store=store)
        yield co, checkpointer, store


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a run starts: start-up makes long-lived objects
    (modules, classes, the configuration, the sessions) that a collection would only scan, a
    fifth of the start-up's time; they are frozen once the resources are open
    (``runtime.freeze_startup_objects``), and the few cycles left unreachable with them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _check_db_file(db: str) -> None:
    """A damaged or foreign SQLite file is refused before any server starts (read-only)."""
    if db != MEMORY and not is_postgres(db):
        check_sqlite(str(Path(db).expanduser()))


def _import_the_run(db: str) -> None:
    """What a run imports beyond the MCP client: the graph (LangGraph, the nodes, the
    policies) and the run database's LangGraph savers."""
    importlib.import_module("hybridmcp.coordinator")
    if db != MEMORY and not is_postgres(db):
        defer("sqlite_vec")  # as persistence does: numpy is for vector search only
        importlib.import_module("langgraph.checkpoint.sqlite.aio")
        importlib.import_module("langgraph.store.sqlite.aio")


ConfigOption = Annotated[
    str | None,
    typer.Option(
        "--config",
        "-c",
        envvar=CONFIG_ENV,
        help="Configuration file (YAML/JSON); default: the embedded one.",
    ),
]


@app.command()
def run(
    task: Annotated[
        str | None, typer.Argument(help="Task file (JSON/YAML), '-' for stdin; default: the demo.")
    ] = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help=f"Database of checkpoints and learned statistics: a SQLite file, "
            f"postgresql://..., or :memory: (default: ${ENV_DB}, else {default_db_path()}).",
        ),
    ] = None,
    thread: Annotated[
        str | None,
        typer.Option(
            "--thread",
            help="Durable run id: a run interrupted on this thread resumes where it stopped; "
            "a finished one returns its stored result.",
        ),
    ] = None,
    audit: Annotated[
        str | None,
        typer.Option(
            "--audit",
            help="Append the MAC-chained audit trail to FILE (JSON lines); its head is "
            "anchored in the database.",
        ),
    ] = None,
    ask: Annotated[
        str | None,
        typer.Option(
            "--ask",
            help="A task in free text: the planner LM turns it into requests, which are "
            "shown, validated, then run.",
        ),
    ] = None,
    report_file: Annotated[
        str | None,
        typer.Option(
            "--report",
            help="Write the run as one self-contained HTML file: timeline, decisions, "
            "conflicts, events, cost and quality (docs/report.md).",
        ),
    ] = None,
    table: Annotated[
        bool,
        typer.Option(
            "--table", help=f"Print a row per request even above {SUMMARY_ABOVE} requests."
        ),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="No progress and no result on stdout: the exit code says it."
        ),
    ] = False,
    server_log: Annotated[
        str | None,
        typer.Option(
            "--server-log",
            help=f"Append the stderr of stdio MCP servers to FILE (default: {_SERVER_LOG}).",
        ),
    ] = None,
    answer: Annotated[
        str | None,
        typer.Option(
            "--answer",
            help="Resume the run paused on --thread with this answer (JSON; a bare word is a "
            "string): the fields a server asked for, 'decline', or a review's choices.",
        ),
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Log to stderr, one line each: MCP servers' log messages, the MCP SDK's.",
        ),
    ] = False,
    log_file: Annotated[
        str | None,
        typer.Option("--log-file", help="Append the log (with tracebacks) to FILE."),
    ] = None,
) -> None:
    """Run a task (or the embedded demo) and print the coordinated result: a table, or above
    50 requests a summary."""
    console = Console(stderr=True) if as_json else _Output()
    try:
        configure_logging(verbose, log_file)
        decision = _parse_answer(answer) if answer is not None else None
    except HybridMCPError as err:
        _refuse(err)
    if answer is not None and thread is None:
        Console(stderr=True).print("[red]error:[/red] --answer needs the --thread of the run")
        raise typer.Exit(EXIT_USAGE)
    if thread is not None and not thread.strip():  # it would name a run no one can resume
        _refuse(HybridMCPError("--thread: give the run a non-empty id"))
    if thread is not None and resolve_db(db) == MEMORY and not quiet:
        Console(stderr=True).print(
            f"note: --db {MEMORY} keeps nothing after this command: thread {thread!r} "
            "cannot be resumed or answered later (give --db a file to keep it)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if ask is not None and task is not None:
        Console(stderr=True).print("[red]error:[/red] give a TASK file or --ask, not both")
        raise typer.Exit(EXIT_USAGE)
    live = not as_json and not quiet and sys.stderr.isatty() and ask is None
    log_path = server_log or str(_SERVER_LOG)
    log_size = _size(log_path)
    captured: dict[str, Any] | None = {} if report_file else None
    try:
        if report_file:  # refused before the run, not after it
            _check_writable(report_file, "--report")
        data = asyncio.run(
            _run(
                task,
                config,
                db=db,
                thread=thread,
                live=live,
                audit=audit,
                ask=ask,
                show=lambda plan: show_plan(plan, console, as_json),
                server_log=log_path,
                captured=captured,
                answer=decision,
                prompt=ask_on_terminal if answer is None and sys.stdin.isatty() else None,
                report_file=report_file,
                log_file=log_file,
            )
        )
        if report_file and captured is not None:
            from hybridmcp.report import write_report

            where = f"thread {thread}" if thread else "an unnamed run"
            write_report(
                report_file,
                captured["state"],
                captured["learned"],
                source=f"{len(data['results'])} requests, {where}",
            )
    except HybridMCPError as err:
        _refuse(err)
    except OSError as err:  # the report is the only file written here after the run
        what = f"cannot write the report {report_file!r}" if report_file else "cannot run"
        _refuse(HybridMCPError(f"{what}: {err}"))
    except KeyboardInterrupt:
        _interrupted(thread)
    _note_thread(data["thread"]["found"], thread, answered=answer is not None)
    with _output():
        _print_run(data, console, as_json=as_json, quiet=quiet, table=table, thread=thread)
    notes = Console(stderr=True)
    if _size(log_path) > log_size and not quiet:
        notes.print(f"servers' stderr: {shown(str(log_path))}", highlight=False, soft_wrap=True)
    if report_file and not quiet:
        notes.print(f"report: {shown(str(report_file))}", highlight=False, soft_wrap=True)
    raise typer.Exit(_EXIT.get(data["status"], EXIT_FAILED))


def _interrupted(thread: str | None) -> NoReturn:
    """Ctrl-C: one line on what was kept (a named thread keeps every step that ended: the
    same command resumes it), exit 130."""
    if thread is not None:
        note = (
            f"interrupted: thread {thread!r} keeps every completed step; "
            "run the same command again to resume it"
        )
    else:
        note = "interrupted: nothing is kept of an unnamed run (give --thread ID to resume one)"
    Console(stderr=True).print(shown(note), highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_INTERRUPTED)


def _note_thread(found: str, thread: str | None, *, answered: bool) -> None:
    """On stderr: what was found on a named thread that was not new."""
    if found == "new":
        return
    note = {
        "unfinished": "resumed where it stopped",
        "finished": "had finished: its stored result, nothing was run",
        "paused": "was paused for a human decision"
        + ("; answered" if answered else "; answer it with --answer"),
    }[found]
    Console(stderr=True).print(shown(f"thread {thread!r} {note}"), highlight=False)


def _print_run(
    data: dict[str, Any],
    console: Console,
    *,
    as_json: bool,
    quiet: bool,
    table: bool,
    thread: str | None,
) -> None:
    """The run's result: one JSON object, nothing (``--quiet``), a summary above
    ``SUMMARY_ABOVE`` requests, or a table; then the questions it is paused on."""
    if as_json:
        # a NaN or infinity of a server's answer is written as null: the output is JSON
        sys.stdout.write(jsontext.dumps(data, default=str) + "\n")
    elif quiet:
        pass
    elif len(data["results"]) > SUMMARY_ABOVE and not table:
        render_summary(data, console)
    else:
        render(data, console)
    if not as_json and not quiet:
        show_questions(data, thread, Console(stderr=True))


_SERVER_LOG = default_db_path().parent / "servers.log"
"""Where the stderr of stdio servers goes by default: beside the default database."""


def _check_writable(path: str, option: str) -> None:
    where = Path(path).expanduser()
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{option} {path!r} cannot be written: {err}") from None
    if where.is_dir() or not os.access(where.parent, os.W_OK):
        why = "it is a directory" if where.is_dir() else "its directory is not writable"
        raise ConfigError(f"{option} {path!r} cannot be written: {why}")
    existed = where.exists()
    try:  # permission bits do not stop root: open it (a file made here is removed again)
        with where.open("a", encoding="utf-8"):
            pass
        if not existed:
            where.unlink()
    except OSError as err:
        raise ConfigError(f"{option} {path!r} cannot be written: {err.strerror}") from None


def _db_files(db: str) -> list[str]:
    """The run database ``db`` and the files hybridmcp keeps beside it."""
    from hybridmcp.thread_lock import threads_lock_path

    if db == MEMORY:
        return []
    files = []
    if not is_postgres(db):  # a SQLite file, its journal and the locks and heads beside it
        beside = (lock_path(db), threads_lock_path(db), heads_path(db))
        files = [db, f"{db}-wal", f"{db}-shm", *map(str, beside)]
    tokens = tokens_path(db)
    return files + ([str(tokens)] if tokens is not None else [])


_TRAIL = "the audit trail or its key"
_LOGS = ("the servers' log", "the log file")


def _run_files(
    config: HybridConfig, task: str | None, config_path: str | None, log_file: str | None
) -> dict[str, Any]:
    """What a run reads or keeps, by what it is: a file the run writes that named one would
    destroy it (:func:`_refuse_clashes`)."""
    trail = config.audit.path
    return {
        "the task file": [task] if task not in (None, "-") else [],
        "the configuration file": [config_path] if config_path else [],
        "the run database or a file kept beside it": _db_files(resolve_db(config.audit.run_db)),
        _TRAIL: [trail, str(config.audit.key_path(trail))] if trail else [],
        "the audit heads file": [config.audit.head_db] if config.audit.head_db else [],
        _LOGS[0]: [config.resilience.pool.server_log or ""],
        _LOGS[1]: [log_file or ""],
    }


def _refuse_clashes(
    config: HybridConfig,
    task: str | None,
    config_path: str | None,
    *,
    report_file: str | None,
    log_file: str | None,
    audit_option: str,
    server_log_option: str,
) -> None:
    """Refuse a file the run writes that names another file it reads or keeps: the report
    would overwrite it; a log or the audit trail would be appended to it (a database, a task
    or a trail with log lines in it). The two logs may share one file."""
    kept = _run_files(config, task, config_path, log_file)
    writes = [
        ("--report", report_file, "the report would overwrite it", ()),
        ("--log-file", log_file, "the log would be appended to it", _LOGS),
        (server_log_option, config.resilience.pool.server_log, "the servers' stderr would be "
         "appended to it", _LOGS),
        (audit_option, config.audit.path, "the audit trail would be appended to it", (_TRAIL,)),
    ]  # fmt: skip
    for option, path, harm, own in writes:
        if path:
            others = {what: files for what, files in kept.items() if what not in own}
            _refuse_overwrite(path, option, others, harm)


def _refuse_overwrite(
    path: str, option: str, kept: dict[str, Any], harm: str = "the report would overwrite it"
) -> None:
    """Refuse an output that names a file the command reads or keeps."""
    out = Path(path).expanduser()
    for what, files in kept.items():
        if any(f and _same_file(out, Path(f).expanduser()) for f in files):
            raise ConfigError(f"{option} {path!r} is {what}: {harm} (choose another file)")


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _with_server_log(config: HybridConfig, path: str, chosen: bool) -> HybridConfig:
    """The configuration with stdio servers' stderr appended to ``path``. A file that cannot be
    written is an error when chosen (``--server-log``); the default one is then left out."""
    where = Path(path).expanduser()
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        with where.open("a", encoding="utf-8"):
            pass
    except OSError as err:
        if chosen:
            raise ConfigError(f"--server-log {path!r} cannot be written: {err}") from None
        return config
    pool = config.resilience.pool.model_copy(update={"server_log": str(where)})
    resilience = config.resilience.model_copy(update={"pool": pool})
    return config.model_copy(update={"resilience": resilience})


@app.command("report")
def report_command(
    thread: Annotated[str, typer.Option("--thread", help="The thread the run was started on.")],
    output: Annotated[str, typer.Option("--output", "-o", help="The HTML file to write.")],
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help=f"Run database holding the thread's checkpoints (default: ${ENV_DB}, "
            f"else {default_db_path()}).",
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option("--url", help="Read the thread from a LangGraph server instead (its URL)."),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key", envvar="LANGGRAPH_API_KEY", help="The server's API key (with --url)."
        ),
    ] = None,
) -> None:
    """Write the HTML report of a checkpointed run (from the run database or a LangGraph
    server): one self-contained file, see docs/report.md."""
    if url is not None and db is not None:
        _refuse(HybridMCPError("give --db or --url, not both"))
    from hybridmcp.report import write_report
    from hybridmcp.report.source import from_database, from_server

    try:
        if url is None:
            kept = {"the run database or a file kept beside it": _db_files(resolve_db(db))}
            _refuse_overwrite(output, "--output", kept)
        _check_writable(output, "--output")
        if url is not None:
            state, learned = asyncio.run(from_server(url, thread, api_key))
            where = url
        else:
            where = resolve_db(db)
            state, learned = asyncio.run(from_database(where, thread))
        write_report(output, state, learned, source=f"thread {thread} in {where}")
    except HybridMCPError as err:
        _refuse(err)
    except OSError as err:
        _refuse(HybridMCPError(f"cannot write the report {output!r}: {err}"))
    Console(stderr=True).print(f"report: {shown(str(output))}", highlight=False, soft_wrap=True)


def coerce(text: str, prop: dict[str, Any]) -> Any:
    """A typed answer to one field of a requested schema (``ValueError`` when it is not one)."""
    kind = prop.get("type")
    if kind == "integer":
        return int(text)
    if kind == "number":
        return float(text)
    if kind == "boolean":
        if text.strip().lower() in ("y", "yes", "true", "1"):
            return True
        if text.strip().lower() in ("n", "no", "false", "0"):
            return False
        raise ValueError(f"expected yes or no, got {text!r}")
    if kind == "array":
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def answer_question(value: Any, ask: Callable[[str, str | None], str]) -> Any:
    """One question answered through ``ask(label, default) -> text``: a server's elicitation
    field by field (``decline``/``cancel`` at the first prompt say no), anything else as JSON
    or a bare word."""
    if not isinstance(value, dict) or value.get("type") != "elicitation":
        return _parse_answer(ask(f"answer ({_short(value, 200)})", None))
    schema = value.get("requested_schema") or {}
    action = ask(
        f"{value.get('server')} asks: {value.get('message')} [accept/decline/cancel]", "accept"
    )
    if action.strip().lower() in ("decline", "cancel"):
        return action.strip().lower()
    content: dict[str, Any] = {}
    required = set(schema.get("required") or [])
    for name, prop in (schema.get("properties") or {}).items():
        label = f"  {prop.get('title') or name}" + (
            f" ({prop['description']})" if prop.get("description") else ""
        )
        default = prop.get("default")
        offered = (
            None
            if default is None
            else (", ".join(map(str, default)) if isinstance(default, list) else str(default))
        )
        while True:
            text = ask(label, offered)
            if not text and name not in required:
                break
            try:
                content[name] = coerce(text, prop)
                break
            except ValueError as err:
                Console(stderr=True).print(f"  [red]{shown(str(err))}[/red]", highlight=False)
    return content


def ask_on_terminal(pending: list[Any]) -> Any:
    """Ask a person on the terminal for the answer to each pending question (prompts on
    stderr); ``None`` when the input ends."""

    def ask(label: str, default: str | None) -> str:
        shown_default = plain(default or "")  # the server's schema's: shown as text
        text = typer.prompt(
            plain(label), default=shown_default, show_default=bool(default), err=True
        )
        return default if default and text == shown_default else str(text)

    try:
        answers = {i.id: answer_question(i.value, ask) for i in pending}
    except (typer.Abort, EOFError):
        return None
    return next(iter(answers.values())) if len(answers) == 1 else answers


def _parse_answer(text: str) -> Any:
    """``--answer``: JSON, or a bare word taken as a string (``decline``, ``external``)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        if text.strip() and not text.strip().startswith(("{", "[", '"')):
            return text.strip()
        raise TaskError(f"--answer: not valid JSON: {_short(text)}") from None


def show_questions(data: dict[str, Any], thread: str | None, console: Console) -> None:
    """The questions a paused run waits on, and how to answer them."""
    for q in data.get("questions", []):
        what = q.get("message") or q.get("question") or ""
        fields = ", ".join((q.get("requested_schema") or {}).get("properties") or {})
        console.print(
            "[yellow]paused[/yellow] "
            + shown(
                f"{q.get('type', 'question')} {q['id']}: {what}"
                + (f" (fields: {fields})" if fields else "")
            ),
            highlight=False,
            soft_wrap=True,
        )
    if data.get("questions"):
        how = (
            f"hybridmcp run TASK --thread {thread} --answer JSON"
            if thread
            else "run it again with --thread ID to be able to answer"
        )
        console.print(f"resume: {shown(how)}", highlight=False, soft_wrap=True)


def _refuse(err: HybridMCPError) -> NoReturn:
    """Exit 2 with the error on stderr, unwrapped (a limit's message is one line)."""
    Console(stderr=True).print(
        f"[red]error:[/red] {shown(str(err))}", highlight=False, soft_wrap=True
    )
    raise typer.Exit(EXIT_USAGE)


def _load_config(path: str | None) -> HybridConfig:
    """:func:`load_config`, its error naming ``$HYBRIDMCP_CONFIG`` when the path came from
    there (a variable set for the served graph and forgotten)."""
    try:
        return load_config(path)
    except ConfigError as err:
        named = path is not None and path == os.environ.get(CONFIG_ENV)
        if named and not any(
            a in ("-c", "--config") or a.startswith("--config=") for a in sys.argv
        ):
            raise ConfigError(f"{err} (named by ${CONFIG_ENV})") from None
        raise


def configured(path: str | None) -> HybridConfig:
    """The configuration, checked whole; one warning line on stderr per key it ignored."""
    config = _load_config(path)
    console = Console(stderr=True)
    for warning in config.warnings:
        console.print(
            f"[yellow]warning:[/yellow] {shown(warning)}", highlight=False, soft_wrap=True
        )
    return config


def warn_unavailable(resources: Resources) -> None:
    """One warning line on stderr per configured server that could not start or connect."""
    console = Console(stderr=True)
    for server, reason in sorted(resources.registry.unavailable.items()):
        state = "" if reason.startswith("needs authentication") else "is down: "
        console.print(
            f"[yellow]warning:[/yellow] MCP server {shown(repr(server))} {state}{shown(reason)}",
            highlight=False,
            soft_wrap=True,
        )


def server_records(config: HybridConfig, resources: Resources) -> list[dict[str, Any]]:
    """Each configured server: transport, state, tool count, and why it is down."""
    statuses = resources.pool.statuses()
    records = []
    for name, cfg in config.mcpServers.items():
        status = statuses.get(name)
        state = "disabled" if status is None else "up" if status.up else "down"
        reason = (status.error or "not started") if status is not None else None
        if not cfg.enabled:
            reason = "disabled in the configuration"
        records.append(
            {
                "server": name,
                "transport": cfg.transport,
                "state": state,
                "tools": len(status.tools) if status is not None and status.up else 0,
                "reason": None if status is not None and status.up else reason,
            }
        )
    return records


def tool_records(resources: Resources) -> list[dict[str, Any]]:
    """Each skill (and so each tool) with its providers, sides and effect classes, and
    whether its server keeps it for its own user interface (``app_only``: MCP Apps)."""
    return [
        {
            "skill": skill.name,
            "effect": skill.effect,
            "app_only": not skill.model_visible,
            "providers": [
                {
                    "id": p.id,
                    "side": p.side,
                    "effect": p.effect,
                    **({"server": p.server, "tool": p.tool} if p.server else {}),
                    **({"function": p.function} if p.function else {}),
                }
                for p in skill.providers
            ],
        }
        for skill in sorted(resources.registry.skills.values(), key=lambda s: s.name)
    ]


async def _inspect(
    config_path: str | None, what: Callable[[HybridConfig, Resources], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    from hybridmcp.runtime import Resources

    config = configured(config_path)
    if config.resilience.pool.server_log is None:  # stdio servers' banners: where `run` puts them
        config = _with_server_log(config, str(_SERVER_LOG), False)
    async with await Resources.open(config) as resources:
        return what(config, resources)


def _print_records(
    records: list[dict[str, Any]], columns: list[str], as_json: bool, title: str
) -> None:
    if as_json:
        with _output():
            sys.stdout.write(json.dumps(records, default=str) + "\n")
        return
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for column in columns:
        table.add_column(column, overflow="fold")
    for r in records:
        table.add_row(*("-" if r.get(c) is None else shown(str(r[c])) for c in columns))
    with _output():
        _Output(width=None if sys.stdout.isatty() else 160).print(table)


JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON list.")]


@app.command()
def servers(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List each configured MCP server: transport, state, tool count, and why it is down."""
    configure_logging()
    try:
        records = asyncio.run(_inspect(config, server_records))
    except HybridMCPError as err:
        _refuse(err)
    columns = ["server", "transport", "state", "tools", "reason"]
    _print_records(records, columns, as_json, "MCP servers")
    raise typer.Exit(EXIT_OK if all(r["state"] != "down" for r in records) else EXIT_FAILED)


@app.command()
def tools(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List skills and tools with their providers, sides and effect classes; a tool its
    server keeps for its own user interface (MCP Apps) is marked app only. A server that is
    down (its tools missing from the list) is one warning line on stderr."""
    configure_logging()

    def listed(_cfg: HybridConfig, res: Resources) -> list[dict[str, Any]]:
        warn_unavailable(res)
        return tool_records(res)

    try:
        records = asyncio.run(_inspect(config, listed))
    except HybridMCPError as err:
        _refuse(err)
    if as_json:
        _print_records(records, [], True, "")
        return
    rows = [
        {"skill": r["skill"] + (" (app only)" if r["app_only"] else ""), "effect": r["effect"]}
        | {"provider": p["id"], "side": p["side"], "provider effect": p["effect"]}
        for r in records
        for p in r["providers"]
    ]
    _print_records(
        rows, ["skill", "effect", "provider", "side", "provider effect"], False, "Skills"
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


STATS_FULL_WIDTH = 110
"""Narrower than this, the statistics table leaves out the evidence and the time of the last
update (``--json`` has them), so the figures it shows keep every digit."""


def render_stats(records: list[dict[str, Any]], db: str, console: Console) -> None:
    if not records:
        console.print(f"nothing learned yet in {shown(db)}", highlight=False)
        return
    full = console.width >= STATS_FULL_WIDTH
    table = Table(
        title=f"learned provider statistics ({shown(db)})", box=box.SIMPLE_HEAD, pad_edge=False
    )
    # The names fold (they can be long); the figures never lose a digit.
    table.add_column("provider /\nskill", overflow="fold", min_width=14, ratio=1)
    figures = ["calls", "success", "latency\nms", "p95\nms", "agree", "cost/\ncall"]
    for name in figures + (["evidence"] if full else []):
        table.add_column(name, justify="right", no_wrap=True)
    if full:
        table.add_column("updated\n(UTC)", no_wrap=True)
    for r in records:
        updated = r["updated_at"]
        row = [
            f"{shown(r['provider'])}\n[dim]{shown(r['skill'])}[/dim]",
            f"{r['calls']}\n{r['failures']} failed" if r["failures"] else str(r["calls"]),
            _share(r["success_rate"]),
            _ms(r["ewma_latency_ms"]),
            _ms(r["p95_latency_ms"]),
            f"{_share(r['agreement_rate'])} of {r['cross_validations']}"
            if r["cross_validations"]
            else "-",
            "-" if r["cost_per_call"] is None else f"{r['cost_per_call']:.3g}",
        ]
        if full:
            passes = f" ({r['passed_over']} passes)" if r["passed_over"] else ""
            row.append(f"{r['evidence']:.1f}{passes}")
            row.append(
                "-"
                if updated is None
                else datetime.fromtimestamp(updated, UTC).strftime("%Y-%m-%d\n%H:%M:%S")
            )
        table.add_row(*row)
    console.print(table)


async def _stats(db: str, reset: bool) -> tuple[list[dict[str, Any]], int]:
    from hybridmcp.stats_store import all_stats, reset_stats, stats_record

    async with open_persistence(db) as (_checkpointer, store):
        deleted = await reset_stats(store) if reset else 0
        found = sorted(await all_stats(store), key=lambda s: (s.skill, s.provider))
    return [stats_record(s) for s in found], deleted


@app.command()
def stats(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
    db: Annotated[
        str | None,
        typer.Option("--db", help=f"Database (default: ${ENV_DB}, else {default_db_path()})."),
    ] = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Forget every learned statistic first.")
    ] = False,
) -> None:
    """Show what was learned of each provider, per skill: the numbers arbitration predicts from."""
    where = resolve_db(db)
    made = is_postgres(where) or where == MEMORY or Path(where).expanduser().exists()
    try:  # a database not made yet has nothing learned: looking makes none
        records, deleted = asyncio.run(_stats(where, reset)) if made else ([], 0)
    except HybridMCPError as err:
        _refuse(err)
    if reset:
        Console(stderr=True).print(
            f"reset: {deleted} statistics deleted from {shown(shown_db(where))}", highlight=False
        )
    with _output():
        if as_json:
            sys.stdout.write(json.dumps(records) + "\n")
        elif not reset or records:
            # piped output gets room for the whole table; a terminal gets its own width
            width = None if sys.stdout.isatty() else 130
            render_stats(records, shown_db(where), _Output(width=width))


audit_app = typer.Typer(no_args_is_help=True, help="The audit trail.")
app.add_typer(audit_app, name="audit")


_DB_OPTION = typer.Option(
    "--db",
    help=f"Run database; the trail's head is anchored beside it in <name>.audit-heads.db "
    f"(default: ${ENV_DB}, else {default_db_path()}).",
)
_HEAD_DB_OPTION = typer.Option(
    "--head-db", help="The head file itself, when the configuration sets audit.head_db."
)
_KEY_OPTION = typer.Option(
    "--key-file", help="The trail's key file (default: $HYBRIDMCP_AUDIT_KEY, else FILE.key)."
)


def _check_trail(
    file: str, db: str | None, head_db: str | None, key_file: str | None, head: str | None = None
) -> tuple[AuditReport, str]:
    if key_file is not None and not os.environ.get(ENV_AUDIT_KEY) and not Path(key_file).exists():
        raise AuditError(f"--key-file {key_file!r}: no such file")
    key = load_key(key_file or f"{file}.key", create=False)
    expected = parse_head(head) if head is not None else None
    anchor = head_anchor(db, head_db)
    where = str(anchor.db) if anchor is not None else "nowhere"
    try:
        return verify_audit(file, key=key, anchor=anchor, expected_head=expected), where
    finally:
        close = getattr(anchor, "close", None)  # a database connection it holds
        if close is not None:
            close()


def _verified(
    file: str, db: str | None, head_db: str | None, key_file: str | None, head: str | None = None
) -> tuple[AuditReport, str]:
    """The trail's verification, and where its head was looked for; bad options exit 2, a
    trail that does not verify exits 1 naming its problems (:func:`_fail`)."""
    try:
        result, where = _check_trail(file, db, head_db, key_file, head)
    except HybridMCPError as err:
        typer.echo(plain(f"error: {err}"), err=True)
        raise typer.Exit(EXIT_USAGE) from None
    if not result.ok:
        _fail(result, where)
    return result, where


def _fail(result: AuditReport, where: str) -> None:
    problems = [
        f"{p} (looked in {where}: give verify the --db or --head-db the run used)"
        if p.startswith(NO_HEAD)
        else p
        for p in result.problems
    ]
    typer.echo(plain(f"FAILED: {problems[0]}"), err=True)  # one line per problem, unwrapped
    for problem in problems[1:10]:
        typer.echo(plain(f"  also: {problem}"), err=True)
    raise typer.Exit(EXIT_FAILED)


@audit_app.command("verify")
def audit_verify(
    file: Annotated[str, typer.Argument(help="Audit trail (JSON lines) to check.")],
    head: Annotated[
        str | None,
        typer.Option("--head", help="An exported head (SEQ:MAC) the trail must still contain."),
    ] = None,
    db: Annotated[str | None, _DB_OPTION] = None,
    head_db: Annotated[str | None, _HEAD_DB_OPTION] = None,
    key_file: Annotated[str | None, _KEY_OPTION] = None,
) -> None:
    """Check the MAC chain and the anchored head: exit 1, naming the first bad record, on any
    edit, removal, insertion, reordering, cut tail, emptied file or recomputed chain."""
    result, where = _verified(file, db, head_db, key_file, head)
    with _output():
        _print_verified(result, where)
    raise typer.Exit(EXIT_OK)


def _print_verified(result: AuditReport, where: str) -> None:
    if result.head is None:
        print("ok: 0 records (the trail is empty: no external call or decision was recorded)")
    else:
        seq, digest = result.head
        what = "MAC chain intact" if result.keyed else "chain intact"
        print(f"ok: {result.records} records, {what} (last seq {seq}, {digest[:16]})")
    if result.anchored is not None:
        print(f"head anchored in {where}: matches")
    for note in result.notes:
        print(plain(f"note: {note}"))


@audit_app.command("head")
def audit_head(
    file: Annotated[str, typer.Argument(help="Audit trail (JSON lines).")],
    db: Annotated[str | None, _DB_OPTION] = None,
    head_db: Annotated[str | None, _HEAD_DB_OPTION] = None,
    key_file: Annotated[str | None, _KEY_OPTION] = None,
) -> None:
    """Print the verified trail's head (SEQ:MAC) to keep elsewhere; check the trail against it
    later with `audit verify FILE --head SEQ:MAC`."""
    result, _ = _verified(file, db, head_db, key_file)
    if result.head is None:
        typer.echo("FAILED: the trail has no records: there is no head to export", err=True)
        raise typer.Exit(EXIT_FAILED)
    with _output():
        print(result.head)
    raise typer.Exit(EXIT_OK)


_SHOWN = ["seq", "ts", "kind", "run", "request", "to", "action", "outcome", "sent", "received"]


def _shown(record: dict[str, Any]) -> dict[str, Any]:
    """One audit record as a row: who the data went to or came from, what was decided."""
    to = record.get("model") or record.get("server") or record.get("provider")
    if record.get("server") and record.get("tool"):
        to = f"{record['server']}/{record['tool']}"
    return {
        "seq": record.get("seq"),
        "ts": str(record.get("ts") or "")[:19].replace("T", " ") or None,
        "kind": record.get("kind"),
        "run": record.get("run_id"),
        "request": record.get("request_id"),
        "to": to,
        "action": record.get("action") or record.get("privacy"),
        "outcome": record.get("outcome"),
        "sent": record.get("bytes_sent"),
        "received": record.get("bytes_received", record.get("bytes_read")),
    }


@audit_app.command("show")
def audit_show(
    file: Annotated[str, typer.Argument(help="Audit trail (JSON lines).")],
    run_id: Annotated[
        str | None, typer.Option("--run", help="Only the records of this run (thread).")
    ] = None,
    kinds: Annotated[
        list[str] | None,
        typer.Option(
            "--kind",
            help="Only records of this kind (external_call, policy_decision, model_call, "
            "sampling, elicitation, ...); repeat for several.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the records whole, one JSON line each.")
    ] = False,
    db: Annotated[str | None, _DB_OPTION] = None,
    head_db: Annotated[str | None, _HEAD_DB_OPTION] = None,
    key_file: Annotated[str | None, _KEY_OPTION] = None,
) -> None:
    """Show the verified trail's records, one row each (which run, where the data went, what
    was decided); a trail that does not verify is not shown (exit 1, as `verify`)."""
    result, _ = _verified(file, db, head_db, key_file)
    wanted = set(kinds or ())
    records = [
        r
        for r in itertools.islice(iter_audit_records(file), result.records)  # those verified
        if (run_id is None or r.get("run_id") == run_id) and (not wanted or r.get("kind") in wanted)
    ]
    if as_json:
        with _output():
            for record in records:
                sys.stdout.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        raise typer.Exit(EXIT_OK)
    title = f"{len(records)} of {result.records} records of {file}"
    columns = [c for c in _SHOWN if c != "run" or run_id is None]
    _print_records([_shown(r) for r in records], columns, False, title)
    raise typer.Exit(EXIT_OK)


def _print_version(value: bool) -> None:
    if value:
        try:
            version = importlib.metadata.version("hybridmcp")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        print(f"hybridmcp {version}")
        raise typer.Exit(EXIT_OK)


auth_app = typer.Typer(no_args_is_help=True, help="OAuth authorization of HTTP MCP servers.")
app.add_typer(auth_app, name="auth")

_AUTH_DB_OPTION = typer.Option(
    "--db",
    help=f"Run database; tokens are kept beside it in <name>.tokens.db, mode 0600 "
    f"(default: ${ENV_DB}, else {default_db_path()}).",
)


def _oauth_server(config: HybridConfig, server: str) -> HttpServer:
    entry = config.mcpServers.get(server)
    if entry is None:
        known = ", ".join(sorted(config.mcpServers)) or "none"
        raise ConfigError(f"unknown MCP server {server!r} (configured servers: {known})")
    if not isinstance(entry, HttpServer):
        raise ConfigError(
            f"MCP server {server!r} is a stdio server: OAuth is for HTTP servers "
            "(a stdio server takes its credentials from its `env:`)"
        )
    if entry.auth is None:
        raise ConfigError(
            f"MCP server {server!r} has no `auth:` block: give its entry one "
            "(docs/authorization.md) to log in to it"
        )
    return entry


def _token_store(db: str | None) -> TokenStore:
    from hybridmcp.oauth import TokenStore

    path = tokens_path(db)
    if path is None:
        raise ConfigError("--db :memory: keeps no tokens: give a database file")
    return TokenStore(path)


async def _login(config_path: str | None, server: str, db: str | None) -> tuple[bool, str]:
    config = _load_config(config_path)
    entry = _oauth_server(config, server)
    assert entry.auth is not None
    store = _token_store(db)
    await asyncio.to_thread(store.forget, server)  # a fresh authorization, same registration
    # The user's step may take minutes: the open waits for it.
    wait_ms = entry.startup_timeout_ms + entry.auth.login_timeout_s * 1000
    entry = entry.model_copy(update={"startup_timeout_ms": wait_ms})
    settings = config.resilience.pool.model_copy(update={"health_interval_ms": 0})
    from hybridmcp.capabilities.mcp_pool import SessionPool
    from hybridmcp.oauth import OAuthSessions

    oauth = OAuthSessions(store, interactive=True)
    async with SessionPool({server: entry}, settings, oauth=oauth) as pool:
        status = pool.status(server)
        if not status.up:
            return False, status.error or "the session did not open"
        tools = len(status.tools)
    stored = await asyncio.to_thread(store.load, server, entry.url)
    detail = _token_summary(stored, time.time()) if stored is not None else "no token kept"
    return True, f"logged in to MCP server {server!r} ({tools} tools): {detail}"


def _token_summary(stored: StoredAuth, now: float) -> str:
    tokens = stored.tokens or {}
    parts = []
    if stored.expires_at is not None:
        left = stored.expires_at - now
        parts.append(f"expires in {left / 60:.0f} min" if left > 0 else "expired")
    if tokens.get("scope"):
        parts.append(f"scope {tokens['scope']}")
    parts.append("refreshable" if tokens.get("refresh_token") else "not refreshable")
    return ", ".join(parts)


@auth_app.command("login")
def auth_login(
    server: Annotated[str, typer.Argument(help="The MCP server, as named in mcpServers.")],
    config: ConfigOption = None,
    db: Annotated[str | None, _AUTH_DB_OPTION] = None,
) -> None:
    """Authorize hybridmcp for an OAuth-protected MCP server (the browser opens once); the
    tokens are kept and refreshed for every later run."""
    try:
        ok, message = asyncio.run(_login(config, server, db))
    except HybridMCPError as err:
        _refuse(err)
    if not ok:
        typer.echo(plain(f"error: MCP server {server!r}: {message}"), err=True)
        raise typer.Exit(EXIT_FAILED)
    typer.echo(message)


def auth_records(config: HybridConfig, store: TokenStore, now: float) -> list[dict[str, Any]]:
    """Each server with an ``auth:`` block: its grant and what is kept for it (no secrets)."""
    records = []
    for name, entry in config.mcpServers.items():
        if not isinstance(entry, HttpServer) or entry.auth is None:
            continue
        stored = store.load(name, entry.url)
        tokens = stored.tokens if stored is not None else None
        if tokens is None:
            state = (
                "no token yet (fetched at first use)"
                if entry.auth.grant == "client_credentials"
                else "not logged in"
            )
        elif stored is not None and stored.expires_at is not None and stored.expires_at <= now:
            state = "expired, refreshed at next use" if tokens.get("refresh_token") else "expired"
        else:
            state = "logged in"
        records.append(
            {
                "server": name,
                "grant": entry.auth.grant,
                "state": state,
                "expires_at": stored.expires_at if stored is not None else None,
                "scope": tokens.get("scope") if tokens else None,
                "refreshable": bool(tokens and tokens.get("refresh_token")),
                "registered": bool(
                    entry.auth.client_id or (stored is not None and stored.client_info)
                ),
                "url": entry.url,
            }
        )
    return records


@auth_app.command("status")
def auth_status(
    config: ConfigOption = None,
    db: Annotated[str | None, _AUTH_DB_OPTION] = None,
    as_json: JsonOption = False,
) -> None:
    """Show each OAuth server's state: logged in, expired, or not logged in (offline: no
    server is contacted, no token is shown)."""
    try:
        cfg = _load_config(config)
        records = auth_records(cfg, _token_store(db), time.time())
    except HybridMCPError as err:
        _refuse(err)
    if as_json:
        with _output():
            sys.stdout.write(json.dumps(records) + "\n")
        return
    for r in records:
        r["expires (UTC)"] = (
            None
            if r["expires_at"] is None
            else datetime.fromtimestamp(r["expires_at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        )
    columns = ["server", "grant", "state", "expires (UTC)", "scope", "refreshable"]
    _print_records(records, columns, False, "OAuth servers")


@auth_app.command("logout")
def auth_logout(
    server: Annotated[str, typer.Argument(help="The MCP server, as named in mcpServers.")],
    config: ConfigOption = None,
    db: Annotated[str | None, _AUTH_DB_OPTION] = None,
) -> None:
    """Forget the server's tokens and client registration."""
    try:
        _oauth_server(_load_config(config), server)
        forgot = _token_store(db).forget(server, registration=True)
    except HybridMCPError as err:
        _refuse(err)
    typer.echo(f"forgot the tokens of {server!r}" if forgot else f"nothing kept for {server!r}")


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """hybridmcp: internal and external capabilities, coordinated."""


def main() -> None:
    app()


if __name__ == "__main__":
    main()

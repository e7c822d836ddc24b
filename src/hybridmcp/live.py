"""The CLI's live view of a run's progress events (:mod:`hybridmcp.progress`) on a rich
console. Rendering only: the graph emits the events and never imports this module."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from hybridmcp.progress import ATTEMPT_KEYS
from hybridmcp.terminal import shown


class LiveProgress:
    """A live view of the events above on a rich console (the CLI shows it on stderr).

    One bar counts attempts (its total grows as arbitration and reallocation dispatch work),
    with how many failed, how many are in flight and the time left at the current pace; its
    label names the phase under way (``calls`` while attempts run). Failures, reallocations and
    conflicts are printed above it as they happen, the first :attr:`lines` of them (then only
    counted, so a big run does not scroll). The bar is transient: when the run ends, only those
    lines stay.
    """

    lines = 20

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("done · [red]{task.fields[failed]}[/red] failed · "
                       "{task.fields[flight]} in flight"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )  # fmt: skip
        self.task = self.progress.add_task("starting", total=None, failed=0, flight=0)
        self.total = 0
        self.failed = 0
        self.flying: set[tuple[Any, ...]] = set()
        self.logged = 0
        self.unlogged = 0

    def __enter__(self) -> LiveProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
        if self.unlogged:
            self.progress.console.print(
                f"… {self.unlogged} more failures, reallocations or conflicts (see the result)",
                highlight=False,
            )

    def _log(self, text: str) -> None:
        if self.logged >= self.lines:
            self.unlogged += 1
            return
        self.logged += 1
        self.progress.console.print(text, highlight=False)

    def _counts(self) -> None:
        self.progress.update(self.task, failed=self.failed, flight=len(self.flying))

    def update(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "phase":
            if event["status"] == "started":
                self.progress.update(self.task, description=event["node"])
            elif event.get("attempts"):
                self.total += event["attempts"]
                self.progress.update(self.task, total=self.total, description="calls")
        elif kind == "attempt" and event["status"] == "started":
            self.flying.add(tuple(event.get(k) for k in ATTEMPT_KEYS))
            self._counts()
        elif kind == "attempt" and event["status"] == "finished":
            key = tuple(event.get(k) for k in ATTEMPT_KEYS)
            if key in self.flying:
                self.flying.discard(key)
            else:  # a hedge: one more attempt than was dispatched
                self.total += 1
                self.progress.update(self.task, total=self.total)
            self.progress.advance(self.task)
            if not event.get("ok"):
                self.failed += 1
                self._log(
                    "[red]✗[/red] "
                    + shown(
                        f"{event['request_id']}: {event['provider']} failed: {event.get('error')}"
                    )
                )
            self._counts()
        elif kind == "reallocation":
            self._log(
                "[yellow]↪[/yellow] "
                + shown(
                    f"{event['request_id']}: reallocated to {event['to_provider']}"
                    f" (round {event['round']})"
                )
            )
        elif kind == "conflict":
            self._log(
                "[red]≠[/red] "
                + shown(
                    f"{event['request_id']}: the sides disagree "
                    f"(disagreement {event.get('disagreement_level')})"
                )
            )
        elif kind == "progress":  # an MCP server's progress notification of a call
            done = event.get("progress")
            total = event.get("total")
            share = f"{done:g}/{total:g}" if total else f"{done:g}"
            note = f" {event['message']}" if event.get("message") else ""
            self.progress.update(
                self.task, description=shown(f"{event.get('provider')} {share}{note}"[:60])
            )
        elif kind == "event":
            self._log(f"[yellow]event[/yellow] {event.get('code')}")

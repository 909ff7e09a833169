"""What the command lines draw on a terminal (``rich``): tables and progress on long waits.

Everything here falls back to plain text when the stream is not a terminal (pipes, files,
CI logs, tests), and ``--json`` output never goes through it: scripts see the same bytes as
before.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from typing import IO, Any

from rich import box
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table


def on_terminal(stream: IO[str]) -> bool:
    """True when ``stream`` is an interactive terminal that can take colours and redraws."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and os.environ.get("TERM") != "dumb"


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table (no colours, so it pipes well)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def rich_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
    for h in headers:
        table.add_column(str(h), overflow="fold")
    for r in rows:
        table.add_row(*(str(c) for c in r))
    return table


def table_text(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The table for standard output: drawn by ``rich`` on a terminal, plain otherwise."""
    if not on_terminal(sys.stdout):
        return plain_table(headers, rows)
    console = Console(file=sys.stdout)
    with console.capture() as captured:
        console.print(rich_table(headers, rows))
    return captured.get().rstrip("\n")


class Waiting:
    """Handle of :func:`waiting`: ``update("certified at 12")`` changes the line shown."""

    def __init__(self, progress: Progress | None, task: int | None) -> None:
        self._progress = progress
        self._task = task

    def update(self, status: str) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, status=status)  # type: ignore[arg-type]


@contextlib.contextmanager
def waiting(what: str, timeout_s: float | None = None) -> Iterator[Waiting]:
    """A spinner, the elapsed time and the deadline on standard error while the body waits;
    nothing when standard error is not a terminal. Rich redraws from its own thread, so a Trio
    body needs no extra task."""
    if not on_terminal(sys.stderr):
        yield Waiting(None, None)
        return
    columns = [
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("[dim]{task.fields[status]}"),
        TimeElapsedColumn(),
    ]
    if timeout_s is not None:
        what += f" (up to {timeout_s:g} s)"
    progress = Progress(*columns, console=Console(file=sys.stderr), transient=True)
    with progress:
        task = progress.add_task(what, total=None, status="")
        handle = Waiting(progress, task)
        try:
            yield handle
        finally:
            progress.stop_task(task)

"""Printing: JSON for scripts, rich tables for people, one-line errors for everyone."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click


def print_json(value: Any) -> None:
    import orjson

    sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


def console() -> Any:
    """Rich output; when piped, lines are not cut at 80 columns but at $COLUMNS or 160."""
    import os

    from rich.console import Console

    width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS") or 160)
    return Console(highlight=False, soft_wrap=False, width=width)


def fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


def short_time(value: str | None) -> str:
    return value[:16].replace("T", " ") if value else ""


def plain(text: str, width: int = 80) -> str:
    one = " ".join(text.split())
    return one if len(one) <= width else one[: width - 1] + "…"


def sessions_table(sessions: list[Any], title: str | None = None) -> Any:
    from rich.table import Table

    table = Table(title=title, show_lines=False, pad_edge=False)
    table.add_column("ID", no_wrap=True, style="cyan")
    table.add_column("Title")
    table.add_column("Status")
    table.add_column("Msgs", justify="right")
    table.add_column("Updated", no_wrap=True)
    for s in sessions:
        table.add_row(
            s.id,
            plain(s.title or "(untitled)", 60),
            s.status,
            str(s.message_count),
            short_time(s.updated_at),
        )
    return table


def shares_table(shares: list[Any], now: str) -> Any:
    from rich.table import Table

    table = Table(pad_edge=False)
    table.add_column("Share ID", no_wrap=True, style="cyan")
    table.add_column("Session", no_wrap=True)
    table.add_column("Title")
    table.add_column("State")
    table.add_column("Created", no_wrap=True)
    table.add_column("Expires", no_wrap=True)
    for s in shares:
        table.add_row(
            s.id,
            s.session_id,
            plain(s.title, 40),
            s.state(now),
            short_time(s.created_at),
            short_time(s.expires_at) or "never",
        )
    return table


def part_summary(part: dict[str, Any]) -> str:
    from baton.core.validation import part_text

    kind = part.get("type")
    text = part_text(part)
    if kind == "tool_call":
        return f"→ {part.get('name')}({plain(text[len(str(part.get('name'))) + 1 :], 100)})"
    if kind == "tool_result":
        return f"← {plain(text, 160)}"
    if kind == "reasoning":
        return f"(thinking) {plain(text, 160)}"
    if kind == "blob_ref":
        return f"[{part.get('of', 'blob')}: {part.get('size')} bytes] {plain(text, 120)}"
    return text


@contextmanager
def progress_bar(label: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on a terminal; silent when piped or with --json."""
    if not enabled or not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
        console=_err_console(),
    ) as bar:
        task = bar.add_task(label, total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


def _err_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)

"""Printing: JSON for scripts, rich tables for people, one-line errors for everyone."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import click


def print_json(value: Any) -> None:
    import orjson

    data = orjson.dumps(value, option=orjson.OPT_INDENT_2)
    if not data.isascii():  # C1 and bidi controls are left raw by JSON: escape them
        from baton.core.terminal import json_printable

        data = json_printable(data.decode()).encode()
    sys.stdout.buffer.write(data + b"\n")
    sys.stdout.flush()


def write_json_list(
    out: Any, head: dict[str, Any], key: str, items: Iterable[Any], *, visible: bool = False
) -> None:
    """Write `{**head, key: [*items]}` to the binary stream `out` exactly as print_json
    would (two-space indents, `key` last), one item at a time: a long list (a session's
    messages) is never held whole. `visible`: controls escaped as print_json does."""
    import orjson

    from baton.core.terminal import json_printable

    def put(data: bytes) -> None:
        if visible and not data.isascii():
            data = json_printable(data.decode()).encode()
        out.write(data)

    opening = orjson.dumps({**head, key: []}, option=orjson.OPT_INDENT_2)
    assert opening.endswith(b"[]\n}")  # `key` is the last member
    put(opening[: -len(b"[]\n}")] + b"[")
    first = True
    for item in items:
        body = orjson.dumps(item, option=orjson.OPT_INDENT_2).replace(b"\n", b"\n    ")
        put((b"\n    " if first else b",\n    ") + body)
        first = False
    out.write(b"]\n}\n" if first else b"\n  ]\n}\n")
    out.flush()


def pages(read: Callable[[int, int], list[Any]], total: int, size: int = 500) -> Iterator[Any]:
    """The items `read(start, limit)` gives, `size` at a time, up to `total`."""
    start = 0
    while start < total:
        page = read(start, min(size, total - start))
        if not page:
            return
        yield from page
        start += len(page)


def console() -> Any:
    """Rich output; when piped, lines are not cut at 80 columns but at $COLUMNS or 160."""
    import os

    width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS") or 160)
    return safe_console(highlight=False, soft_wrap=False, width=width)


@functools.cache
def _safe_console_class() -> Any:
    from rich.console import Console
    from rich.segment import Segment

    class SafeConsole(Console):
        """A rich Console that prints no control character of the text it is given: every
        segment of text (a table cell, Markdown, a message) goes through `printable`, while
        rich's own styles and cursor moves (kept apart from the text) still work."""

        def _render_buffer(self, buffer: Iterable[Segment]) -> str:
            return super()._render_buffer(
                segment if segment.control else Segment(printable(segment.text), segment.style)
                for segment in buffer
            )

    return SafeConsole


def printable(text: str) -> str:
    """core.terminal.printable, imported when first used (the CLI starts light)."""
    from baton.core.terminal import printable as visible

    return visible(text)


def safe_console(**options: Any) -> Any:
    """A rich Console (same options) that shows control characters visibly (`printable`)."""
    return _safe_console_class()(**options)


def echo(text: str, err: bool = False) -> None:
    """click.echo for text that holds stored content: control characters shown visibly."""
    click.echo(printable(text), err=err)


def markup(text: str) -> str:
    """Stored text to put inside rich markup: its own `[...]` is not markup."""
    from rich.markup import escape

    return escape(printable(text))


def fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {printable(message)}", err=True)
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
    table.add_column("Cost", justify="right", no_wrap=True)
    table.add_column("Inherited", justify="right", no_wrap=True)
    for s in sessions:
        table.add_row(
            s.id,
            markup(plain(s.title or "(untitled)", 60)),
            s.status,
            str(s.message_count),
            short_time(s.updated_at),
            money(s.own.cost_usd),
            money(s.inherited.cost_usd) if s.forked_from else "-",
        )
    return table


def money(usd: float) -> str:
    return f"${usd:.4f}"


def usage(t: Any) -> str:
    """Tokens and cost of a Totals: `1,200 in / 40 out, $0.0010`."""
    return f"{t.input_tokens:,} in / {t.output_tokens:,} out, {money(t.cost_usd)}"


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
            markup(plain(s.title, 40)),
            s.state(now),
            short_time(s.created_at),
            short_time(s.expires_at) or "never",
        )
    return table


def part_summary(part: dict[str, Any]) -> str:
    from baton.core.models import kept_before
    from baton.core.validation import part_text

    kind = part.get("type")
    kept = kept_before(part)
    if kept is not None:
        return f"[{part.get('path')} {kept}]"
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
    return safe_console(stderr=True)

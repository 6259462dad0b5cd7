"""`baton sessions import`: a baton export, or other agents' sessions, one path or a scan."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import click

from baton.cli.context import Context
from baton.cli.output import console, echo, print_json, progress_bar


def _baton_export(ctx: Context, path: str, as_json: bool) -> None:
    from baton.core.errors import InvalidInput
    from baton.importers.base import stream_json_object

    data: bytes | dict[str, Any]
    streamed = None if path == "-" else stream_json_object(Path(path), "messages")
    if streamed is not None and isinstance(streamed.head.get("session"), dict):
        # read a message at a time: a big export is never held whole
        data = {**streamed.head, "messages": streamed.items}
    else:
        if streamed is not None:
            streamed.close()
        try:
            data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        except OSError as exc:
            raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    with progress_bar("checking messages", enabled=not as_json) as advance:
        progress = advance
        if streamed is not None and not isinstance(data, bytes):
            progress = _megabytes_read(advance, streamed.position, Path(path))
        result = ctx.service.import_document(ctx.owner, data, progress=progress)
    if as_json:
        print_json(
            {
                **result.session.to_dict(),
                "created": result.created,
                "messages_imported": result.messages,
            }
        )
    elif result.created:
        click.echo(f"imported {result.session.id}: {result.messages} messages")
    else:
        click.echo(f"already imported as {result.session.id}; nothing added")


def _megabytes_read(
    advance: Callable[[int, int], None], read: Callable[[], int], path: Path
) -> Callable[[int, int], None]:
    """A progress callback that shows, whatever it is told, the MB of `path` read so far."""
    size = max(1, path.stat().st_size // 1_000_000)

    def progress(done: int, total: int) -> None:
        advance(min(size, read() // 1_000_000), size)

    return progress


def _imported(ctx: Context, source_id: str) -> Any:
    """My session imported before from the source tool's session `source_id` (local mode:
    the server has no route for this lookup, so a remote import starts afresh, and the
    server's own check makes the same conversation imported twice one session)."""
    if ctx.remote is not None:
        return None
    return ctx.local.imported_from(ctx.owner, source_id)


def _earlier(ctx: Context) -> Any:
    """Messages of a session imported before, by the source tool's session id (local mode)."""

    def find(source_id: str, count: int) -> list[dict[str, Any]] | None:
        session = _imported(ctx, source_id)
        if session is None:
            return None
        found = ctx.service.messages(ctx.owner, session.id, limit=count, hydrate=True)
        return [{k: v for k, v in m.to_dict().items() if k not in ("id", "parent")} for m in found]

    return find


def import_parsed(
    ctx: Context, path: Path, fmt: str, progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Import every session at `path` (not a baton export); a summary of what happened.
    `progress(done, total)` follows a big file in MB as it is read."""
    from baton import importers

    parsed = importers.read(path, fmt, stream=True)
    docs, warnings = importers.documents(parsed, _earlier(ctx))
    track = None
    if progress is not None and parsed.read_so_far is not None:
        track = _megabytes_read(progress, parsed.read_so_far, path)

    sessions: list[dict[str, Any]] = []
    made: dict[str, str] = {}  # source session id -> baton session id
    for doc in docs:
        origin = doc["session"].get("forked_from")
        if origin and origin.get("source_session") in made:
            origin["session"] = made[origin["source_session"]]
        elif origin:
            parent = _imported(ctx, origin["source_session"])
            if parent is not None:
                origin["session"] = parent.id
        result = ctx.service.import_document(ctx.owner, doc, progress=track)
        source = doc["session"]["metadata"].get("source", {}).get("session_id")
        if source:
            made[source] = result.session.id
        sessions.append(
            {
                "id": result.session.id,
                "title": result.session.title,
                "created": result.created,
                "messages": result.session.message_count,
                "messages_imported": result.messages,
                "source_session": source,
            }
        )
    return {
        "path": str(path),
        "format": parsed.tool,
        "version": parsed.version,
        "sessions": sessions,
        "sessions_created": sum(s["created"] for s in sessions),
        "messages_imported": sum(s["messages_imported"] for s in sessions),
        "skipped_lines": parsed.skipped_lines,
        "warnings": [*parsed.warnings, *warnings],
    }


def _say(summary: dict[str, Any]) -> None:
    made = summary["sessions_created"]
    grown = sum(not s["created"] and s["messages_imported"] > 0 for s in summary["sessions"])
    known = len(summary["sessions"]) - made - grown
    line = (
        f"imported {made} session(s) from {summary['format']} "
        f"({summary['messages_imported']} messages)"
    )
    if grown:
        line += f"; {grown} imported before grew"
    if known:
        line += f"; {known} already imported, nothing added"
    if summary["skipped_lines"]:
        line += f"; skipped {summary['skipped_lines']} line(s)"
    click.echo(line)
    for s in summary["sessions"]:
        state = (
            "new"
            if s["created"]
            else f"+{s['messages_imported']}"
            if s["messages_imported"]
            else "already there"
        )
        echo(f"  {s['id']}  {s['messages']:>6} messages  {state}  {s['title']}")
    for warning in summary["warnings"]:
        echo(f"warning: {warning}", err=True)


def one(ctx: Context, path: str, fmt: str, as_json: bool) -> None:
    from baton import importers

    if path == "-" or fmt == "baton" or (fmt == "auto" and importers.detect(Path(path)) == "baton"):
        with _alone(ctx):
            _baton_export(ctx, path, as_json)
        return
    with _alone(ctx), progress_bar("importing (MB read)", enabled=not as_json) as advance:
        summary = import_parsed(ctx, Path(path).expanduser(), fmt, advance)
    if as_json:
        print_json(summary)
    else:
        _say(summary)


def _alone(ctx: Context) -> AbstractContextManager[None]:
    """The local store, for one import by this process (`Store.alone`)."""
    return nullcontext() if ctx.remote is not None else ctx.local.alone()


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def scan(ctx: Context, as_json: bool) -> None:
    from baton.core.errors import BatonError
    from baton.importers.places import locations  # the importers load only when used

    found = locations()
    totals: dict[str, list[int]] = {}
    for tool, path in found:
        entry = totals.setdefault(tool, [0, 0])
        entry[0] += 1
        entry[1] += _size(path)
    if not as_json:
        if not found:
            click.echo("no sessions of Claude Code, Codex, opencode, Kilo or Cline found here")
            return
        from rich.table import Table

        table = Table(pad_edge=False, title="found")
        for column in ("tool", "files", "size"):
            table.add_column(column)
        for tool, (count, size) in totals.items():
            table.add_row(tool, str(count), f"{size / 1e6:.1f} MB")
        console().print(table)
    results: list[dict[str, Any]] = []
    with progress_bar("importing", enabled=not as_json) as advance:
        for done, (tool, path) in enumerate(found, 1):
            try:
                results.append(import_parsed(ctx, path, tool))
            except BatonError as exc:  # one bad file does not stop the rest
                results.append({"path": str(path), "format": tool, "error": exc.message})
            advance(done, len(found))
    summary = {
        "found": [{"tool": t, "files": c, "bytes": b} for t, (c, b) in totals.items()],
        "imports": results,
        "sessions_created": sum(r.get("sessions_created", 0) for r in results),
        "messages_imported": sum(r.get("messages_imported", 0) for r in results),
    }
    if as_json:
        print_json(summary)
        return
    click.echo(
        f"imported {summary['sessions_created']} session(s), "
        f"{summary['messages_imported']} messages, from {len(found)} file(s)"
    )
    for r in results:
        if "error" in r:
            echo(f"warning: {r['path']}: {r['error']}", err=True)
        for warning in r.get("warnings", []):
            echo(f"warning: {warning}", err=True)

"""`baton sessions …`: create, list, show, append, rename, update, delete, export, import,
verify."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from baton.cli import imports
from baton.cli.context import Context, pass_ctx
from baton.cli.options import json_option, status_option
from baton.cli.output import (
    console,
    echo,
    fail,
    markup,
    money,
    part_summary,
    print_json,
    progress_bar,
    sessions_table,
    short_time,
    usage,
)
from baton.cli.snapshots import capture, describe


@click.group()
def sessions() -> None:
    """Create, list, show and change sessions."""


@sessions.command("new")
@click.option("--title", help="Title (default: the first prompt).")
@click.option("--task", default="", help="What the session is for.")
@click.option("--repo", help="Record this repository's state (default: the current folder's).")
@click.option("--no-git", is_flag=True, help="Record no git context.")
@json_option
@pass_ctx
def new(
    ctx: Context, title: str | None, task: str, repo: str | None, no_git: bool, as_json: bool
) -> None:
    """Start a new, empty session; inside a git repository it records the state of the code.

    Example: baton sessions new --title "Fix the login bug" --task "login fails on Safari"
    """
    git = None if no_git else capture(ctx, repo)
    session = ctx.service.create(ctx.owner, title=title, task=task, git=git)
    if as_json:
        print_json(session.to_dict())
        return
    click.echo(session.id)
    if not no_git:
        for line in describe(git):
            echo(line, err=True)


@sessions.command("list")
@click.option("-q", "--query", help="Only sessions whose title, task or messages hold these words.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--cursor", help="Continue after the page that printed this cursor.")
@click.option("--all", "all_pages", is_flag=True, help="Page through every session.")
@status_option
@click.option(
    "--repo",
    help="Only sessions of this repository: its key (as `sessions show` prints it) or a folder "
    "of it (`--repo .`).",
)
@json_option
@pass_ctx
def list_(
    ctx: Context,
    query: str | None,
    limit: int,
    cursor: str | None,
    all_pages: bool,
    status: str | None,
    repo: str | None,
    as_json: bool,
) -> None:
    """Recent sessions, newest first.

    Example: baton sessions list -q "login bug" --limit 20
    """
    if repo is not None and Path(repo).is_dir():  # a folder of a work tree: its key
        from baton.cli.snapshots import repository_key

        repo = repository_key(Path(repo).resolve())[0] or repo
    found: list[Any] = []
    while True:
        page = ctx.service.list(
            ctx.owner, limit=limit, cursor=cursor, status=status, repo=repo, query=query
        )
        found += page.sessions
        cursor = page.next_cursor
        if not all_pages or cursor is None:
            break
    if as_json:
        print_json([s.to_dict() for s in found])
        return
    if not found:
        echo("no sessions" + (f" match {query!r}" if query else ""))
        return
    console().print(sessions_table(found))
    if len(found) > 1:  # own costs only: a message a fork inherited is counted once
        own = round(sum(s.own.cost_usd for s in found), 9)
        click.echo(f"{len(found)} sessions, own cost {money(own)}")
    if cursor:
        click.echo(f"more: baton sessions list --cursor {cursor}  (or --all)")


@sessions.command("show")
@click.argument("session_id")
@click.option(
    "--last",
    type=click.IntRange(0),
    help="Only the last N messages (and the start of a streamed answer they cut).",
)
@click.option("--full", is_flag=True, help="Read large stored outputs back in full.")
@json_option
@pass_ctx
def show(ctx: Context, session_id: str, last: int | None, full: bool, as_json: bool) -> None:
    """A session's header and conversation.

    Example: baton sessions show ses_01J... --last 10
    """
    session = ctx.service.get(ctx.owner, session_id)
    start = max(0, session.message_count - last) if last is not None else 0
    if as_json:  # written a page at a time: a long session is never held whole
        from baton.cli.output import pages, write_json_list

        def read(at: int, limit: int) -> list[dict[str, Any]]:
            found = ctx.service.messages(
                ctx.owner, session_id, start=start + at, limit=limit, hydrate=full
            )
            return [m.to_dict() for m in found]

        items = pages(read, session.message_count - start)
        write_json_list(sys.stdout.buffer, session.to_dict(), "messages", items, visible=True)
        return
    messages = ctx.service.messages(ctx.owner, session_id, start=start, hydrate=full)
    from baton.core.partials import is_partial, join_runs

    # --last N that starts inside a streamed answer shows that answer whole
    while start > 0 and messages and messages[0].role == "assistant":
        earlier = ctx.service.messages(
            ctx.owner, session_id, start=max(0, start - 50), limit=min(50, start), hydrate=full
        )
        run = len(earlier)
        while run > 0 and is_partial(earlier[run - 1]):
            run -= 1
        messages = earlier[run:] + messages
        start -= len(earlier) - run
        if run > 0 or not earlier:
            break
    out = console()
    out.print(f"[bold]{markup(session.title or '(untitled)')}[/bold]  [dim]{session.id}[/dim]")
    rows = [
        ("status", session.status),
        ("messages", str(session.message_count)),
        ("head", session.head or "-"),
        ("task", session.task or "-"),
        ("tokens", usage(session.own) + (" own" if session.forked_from else "")),
        ("created", short_time(session.created_at)),
        ("updated", short_time(session.updated_at)),
    ]
    if session.forked_from:
        origin = session.forked_from
        rows.insert(5, ("inherited", usage(session.inherited)))
        rows.append(
            (
                "forked from",
                f"{origin.get('share') or origin.get('session')} at {origin.get('message')}",
            )
        )
    for name, value in rows:
        out.print(f"[dim]{name:>12}[/dim]  {markup(value)}", markup=True, highlight=False)
    position = start
    for message, count in join_runs(messages):  # a streamed answer's chunks as one message
        position += count
        number = f"#{position - count + 1}–#{position}" if count > 1 else f"#{position}"
        label = message.role + (f" · {message.model}" if message.model else "")
        out.print(
            f"\n[bold]{number} {markup(label)}[/bold] [dim]{short_time(message.created_at)}[/dim]"
        )
        for part in message.parts:
            out.print(part_summary(part), markup=False)


def _read_messages(file: str) -> tuple[list[Any], Any]:
    import orjson

    from baton.core.errors import InvalidInput

    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {file}: {exc.strerror}") from None
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{file} is not valid JSON: {exc}") from None
    from baton.contract import ANY_HEAD

    if isinstance(doc, dict) and "messages" in doc:
        return doc["messages"], doc.get("expected_head", ANY_HEAD)
    return (doc if isinstance(doc, list) else [doc]), ANY_HEAD


@sessions.command("append")
@click.argument("session_id")
@click.option("--role", type=click.Choice(["user", "assistant", "system", "tool"]))
@click.option("--text", help="The message text.")
@click.option("--model", help="Model that wrote an assistant message.")
@click.option(
    "--file",
    "file",
    help="A JSON message, list of messages, or {expected_head, messages}; - reads stdin.",
)
@click.option("--expected-head", help="Refuse if the session's head is not this message.")
@click.option(
    "--idempotency-key",
    metavar="KEY",
    help="Run again with the same KEY (within 24 h), append nothing and answer as the first "
    "run did. Default: a new key.",
)
@json_option
@pass_ctx
def append(
    ctx: Context,
    session_id: str,
    role: str | None,
    text: str | None,
    model: str | None,
    file: str | None,
    expected_head: str | None,
    idempotency_key: str | None,
    as_json: bool,
) -> None:
    """Add messages to the end of a session.

    \b
    Examples:
      baton sessions append ses_01J... --role user --text "Add a test for it"
      baton sessions append ses_01J... --file turn.json
      baton sessions append ses_01J... --file turn.json --idempotency-key turn-7
    """
    from baton.contract import ANY_HEAD

    head: Any = ANY_HEAD
    if file is not None:
        if role or text is not None:
            fail("use either --file or --role with --text, not both", 2)
        messages, head = _read_messages(file)
    elif role and text is not None:
        message: dict[str, Any] = {"role": role, "parts": [{"type": "text", "text": text}]}
        if model:
            message["model"] = model
        messages = [message]
    else:
        fail("give --role and --text, or --file", 2)
    if expected_head is not None:
        head = None if expected_head in ("", "none", "null") else expected_head
    import uuid

    result = ctx.service.append(
        ctx.owner,
        session_id,
        messages,
        expected_head=head,
        idempotency_key=idempotency_key or str(uuid.uuid4()),
    )
    if as_json:
        print_json(
            {
                "id": result.session.id,
                "head": result.session.head,
                "message_count": result.session.message_count,
                "version": result.session.version,
                "appended": [m.id for m in result.appended],
            }
        )
    else:
        click.echo(result.session.head if result.appended else f"unchanged: {result.session.head}")


@sessions.command("rename")
@click.argument("session_id")
@click.argument("title")
@json_option
@pass_ctx
def rename(ctx: Context, session_id: str, title: str, as_json: bool) -> None:
    """Give a session a new title.

    Example: baton sessions rename ses_01J... "Login bug on Safari"
    """
    session = ctx.service.rename(ctx.owner, session_id, title)
    if as_json:
        print_json(session.to_dict())
    else:
        echo(f"renamed {session.id}: {session.title}")


@sessions.command("update")
@click.argument("session_id")
@status_option
@click.option("--task", help="New task text.")
@click.option("--metadata", help="Task metadata as a JSON object (replaces the old one).")
@click.option("--if-version", type=int, help="Refuse unless the session is at this version.")
@json_option
@pass_ctx
def update(
    ctx: Context,
    session_id: str,
    status: str | None,
    task: str | None,
    metadata: str | None,
    if_version: int | None,
    as_json: bool,
) -> None:
    """Change a session's status, task or metadata.

    Example: baton sessions update ses_01J... --status done --if-version 7
    """
    meta = None
    if metadata is not None:
        import orjson

        try:
            meta = orjson.loads(metadata)
        except orjson.JSONDecodeError:
            fail("--metadata is not valid JSON", 2)
    session = ctx.service.update(
        ctx.owner, session_id, expected_version=if_version, status=status, task=task, metadata=meta
    )
    if as_json:
        print_json(session.to_dict())
    else:
        click.echo(f"updated {session.id} (version {session.version})")


@sessions.command("delete")
@click.argument("session_id")
@click.option("--revoke-shares", is_flag=True, help="Also revoke the live shares of the session.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_ctx
def delete(ctx: Context, session_id: str, revoke_shares: bool, yes: bool, as_json: bool) -> None:
    """Delete a session and every message no other session or live share reaches.

    Example: baton sessions delete ses_01J... --revoke-shares
    """
    session = ctx.service.get(ctx.owner, session_id)
    if not yes and not as_json and sys.stdin.isatty():
        click.confirm(f"Delete {session.id} ({session.title or 'untitled'})?", abort=True)
    revoked = ctx.service.delete(ctx.owner, session_id, revoke_shares=revoke_shares)
    if as_json:
        print_json({"id": session_id, "deleted": True, "revoked_shares": revoked})
    else:
        suffix = f" and revoked {len(revoked)} share(s)" if revoked else ""
        click.echo(f"deleted {session_id}{suffix}")


@sessions.command("export")
@click.argument("session_id")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "markdown", "md", "html", "opencode"]),
    default="json",
    show_default=True,
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write to a file instead of stdout."
)
@pass_ctx
def export(ctx: Context, session_id: str, fmt: str, output: str | None) -> None:
    """Export a session: versioned JSON (re-importable), Markdown, one self-contained HTML
    page, or an opencode file (`opencode import` / `kilo import` take it).

    Example: baton sessions export ses_01J... --format html -o session.html
    """
    import orjson

    from baton.core.terminal import json_printable, printable

    if fmt == "json":
        _export_json(ctx, session_id, output)
        return
    doc = ctx.service.export(ctx.owner, session_id, fmt)
    data = (
        orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"
        if isinstance(doc, dict)
        else str(doc).encode()
    )
    if output:
        Path(output).write_bytes(data)
        click.echo(f"wrote {output}", err=True)
    elif sys.stdout.isatty():  # a file keeps every byte; a terminal is shown controls visibly
        text = data.decode()
        safe = json_printable(text) if isinstance(doc, dict) else printable(text)
        sys.stdout.buffer.write(safe.encode())
    else:
        sys.stdout.buffer.write(data)


def _export_json(ctx: Context, session_id: str, output: str | None) -> None:
    """The JSON export written a page of messages at a time (hydrated), as `export` makes it
    whole: a long session is never held whole."""
    from baton.cli.output import pages, write_json_list
    from baton.core.models import utcnow
    from baton.render.document import export_document

    session = ctx.service.get(ctx.owner, session_id)
    doc = export_document(session, [], utcnow())
    del doc["messages"]

    def read(at: int, limit: int) -> list[dict[str, Any]]:
        found = ctx.service.messages(ctx.owner, session_id, start=at, limit=limit, hydrate=True)
        return [m.to_dict() for m in found]

    items = pages(read, session.message_count)
    if output:
        with Path(output).open("wb") as out:
            write_json_list(out, doc, "messages", items)
        click.echo(f"wrote {output}", err=True)
    else:
        write_json_list(sys.stdout.buffer, doc, "messages", items, visible=sys.stdout.isatty())


@sessions.command("import")
@click.argument("path", required=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "baton", "claude-code", "codex", "opencode", "cline"]),
    default="auto",
    show_default=True,
    help="The file's format (auto: decided from its content).",
)
@click.option(
    "--scan", is_flag=True, help="Find other agents' sessions on this machine and import all."
)
@json_option
@pass_ctx
def import_(ctx: Context, path: str | None, fmt: str, scan: bool, as_json: bool) -> None:
    """Import sessions: a baton export (- reads stdin), or another agent's sessions (Claude
    Code, Codex, opencode, Kilo, Cline). Nothing is stored from a file that is invalid, and
    importing the same file twice adds nothing.

    \b
    Examples:
      baton sessions import session.json
      baton sessions import ~/.claude/projects/-home-me-app/0cfc0f17-….jsonl
      baton sessions import ~/.local/share/opencode/opencode.db
      baton sessions import --scan
    """
    if scan:
        imports.scan(ctx, as_json)
        return
    if path is None:
        raise click.UsageError("give a PATH to import, or --scan")
    imports.one(ctx, path, fmt, as_json)


@sessions.command("verify")
@click.argument("session_id", required=False)
@click.option(
    "--rescan",
    is_flag=True,
    help="First rescan, once, the messages scanned for secrets with older rules.",
)
@json_option
@pass_ctx
def verify(ctx: Context, session_id: str | None, rescan: bool, as_json: bool) -> None:
    """Re-hash every chain (or one session's) and check every blob. With --rescan, first
    scan for secrets again every message of the store scanned with older rules than this
    baton's (after an upgrade; the first share runs it too), flagging what they find.

    \b
    Examples:
      baton sessions verify
      baton sessions verify --rescan --json
    """
    rescanned = None
    if rescan:
        with progress_bar("rescanning messages", enabled=not as_json) as advance:
            rescanned = ctx.service.rescan(advance)
    report = ctx.service.verify(ctx.owner, session_id)
    if rescanned is not None and not as_json:
        click.echo(
            f"rescanned {rescanned['rescanned']} message(s) with the secret-scan rules "
            f"version {rescanned['rules']}: {rescanned['flagged']} newly flagged"
            if rescanned["rescanned"]
            else f"secret-scan rules version {rescanned['rules']}: nothing to rescan"
        )
        for share_id in rescanned["exposed_shares"]:
            echo(
                f"warning: share {share_id} publishes a secret found now; revoke it with: "
                f"baton unshare {share_id}",
                err=True,
            )
    if as_json:
        print_json(report.to_dict() | ({"rescan": rescanned} if rescanned is not None else {}))
    else:
        for problem in report.problems:
            echo(f"problem: {problem}", err=True)
        state = "ok" if report.ok else f"{len(report.problems)} problem(s)"
        click.echo(
            f"{state}: {report.sessions} session(s), {report.shares} share(s), "
            f"{report.messages} message(s) verified"
        )
    if not report.ok:
        raise SystemExit(1)

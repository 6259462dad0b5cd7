"""`baton handoff ID --to claude|codex|opencode|kilo`: carry a session into another agent."""

from __future__ import annotations

from pathlib import Path

import click

from baton.cli.context import Context, pass_ctx
from baton.cli.options import json_option
from baton.cli.output import print_json


@click.command("handoff")
@click.argument("session_id")
@click.option(
    "--to",
    "tool",
    type=click.Choice(["claude", "codex", "opencode", "kilo"]),
    required=True,
    help="The agent that continues the session.",
)
@click.option(
    "--cwd",
    "directory",
    type=click.Path(file_okay=False),
    help="The project folder it continues in (default: the session's, if it is here; "
    "else the current folder).",
)
@json_option
@pass_ctx
def handoff(ctx: Context, session_id: str, tool: str, directory: str | None, as_json: bool) -> None:
    """Write a session where another agent resumes it, and print the command that does:
    Claude Code (`claude --resume`), Codex (`codex resume`), opencode or Kilo (imported
    into their store, then `opencode -s` / `kilo -s`).

    \b
    Examples:
      baton handoff ses_01J... --to claude
      baton handoff ses_01J... --to codex --cwd ~/src/app
    """
    from baton.handoff import directory_of, hand_off

    session = ctx.service.get(ctx.owner, session_id)
    messages = ctx.service.messages(ctx.owner, session.id, hydrate=True)
    where = Path(directory).expanduser() if directory else directory_of(session, Path.cwd())
    done = hand_off(tool, session, messages, directory=where, work=ctx.settings.home)
    if as_json:
        print_json(done.to_dict())
        return
    if not done.written:
        state = "already there"
    elif done.imported is False:
        state = f"not imported: no `{tool}` on PATH; the command below imports it"
    else:
        state = "imported" if done.imported else "written"
    click.echo(f"{done.session} -> {tool} session {done.id} ({state})", err=True)
    click.echo(f"  {done.path}", err=True)
    click.echo(done.command)


COMMANDS = [handoff]

"""`baton sessions snapshot` and `baton restore`: record the state of the code, bring it back."""

from __future__ import annotations

import click

from baton.cli.context import Context, pass_ctx
from baton.cli.options import json_option
from baton.cli.output import echo, print_json
from baton.cli.snapshots import capture, describe, restore_into


@click.command("snapshot")
@click.argument("session_id")
@click.option("--repo", help="The repository (default: the current folder).")
@json_option
@pass_ctx
def snapshot(ctx: Context, session_id: str, repo: str | None, as_json: bool) -> None:
    """Record the repository's current state in a session (an unchanged state adds nothing).

    Example: baton sessions snapshot ses_01J... --repo ~/src/app
    """
    from baton.core.errors import InvalidInput

    git = capture(ctx, repo)
    if git is None:
        raise InvalidInput("not inside a git repository: pass --repo PATH")
    session, changed = ctx.service.snapshot(ctx.owner, session_id, git)
    if as_json:
        print_json({**session.to_dict(), "changed": changed})
        return
    click.echo(f"{'recorded' if changed else 'unchanged'}: {session.id}")
    for line in describe(session.git):
        echo(line, err=True)


@click.command("restore")
@click.argument("source")
@click.option("--path", "path", help="A new folder to restore into (default: ./REPO-ID).")
@click.option(
    "--from", "origin", help="Clone from this path or URL instead of the recorded remote."
)
@json_option
@pass_ctx
def restore(ctx: Context, source: str, path: str | None, origin: str | None, as_json: bool) -> None:
    """Bring back a session's (or share's) code: the repository at the recorded commit on a
    new branch baton/ID in a new folder, with the unpushed commits and the uncommitted
    changes (staged). Your current checkout is never touched.

    \b
    Examples:
      baton restore ses_01J... --path ../app-review
      baton restore 3q2-7wEr9aTz_Rk1mC0x4Ab --from git@github.com:acme/app.git
    """
    report = restore_into(ctx, source, path, origin, as_json)
    if as_json:
        print_json(report)

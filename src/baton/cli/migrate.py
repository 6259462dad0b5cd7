"""`baton migrate`: show and apply the store's pending schema migrations."""

from __future__ import annotations

import click

from baton.cli.context import Context, pass_ctx
from baton.cli.options import json_option
from baton.cli.output import print_json


@click.command("migrate")
@click.option("--list", "list_only", is_flag=True, help="Show applied and pending; change nothing.")
@json_option
@pass_ctx
def migrate(ctx: Context, list_only: bool, as_json: bool) -> None:
    """Show and apply pending schema migrations of the store (BATON_DATABASE_URL, else the
    embedded SQLite store in BATON_HOME). Servers also apply them when they start; run this
    first to see what an upgrade will change. Back up the database before applying.

    \b
    Examples:
      baton migrate --list
      BATON_DATABASE_URL=postgresql://baton@db/baton baton migrate
    """
    from baton.store import status
    from baton.store.base import safe_url

    url = ctx.settings.database_url
    steps = status.status(url)
    pending = [s for s in steps if s.applied_at is None]
    ran = [] if list_only or not pending else status.apply(url)
    if ran:
        steps = status.status(url)
    if as_json:
        print_json(
            {
                "store": safe_url(url),
                "migrations": [s.to_dict() for s in steps],
                "pending": [s.number for s in pending],
                "applied_now": [s.number for s in ran],
            }
        )
        return
    click.echo(f"store: {safe_url(url)}")
    for step in steps:
        state = f"applied {step.applied_at}" if step.applied_at else "pending"
        click.echo(f"  {step.number:03d} {step.name:<20} {state}")
    if list_only:
        click.echo(f"{len(pending)} pending" + ("; apply with: baton migrate" if pending else ""))
    elif ran:
        click.echo("applied " + ", ".join(f"{s.number:03d} {s.name}" for s in ran))
    else:
        click.echo("up to date: nothing to apply")

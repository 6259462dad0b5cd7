"""`baton worker`: executes server runs on PostgreSQL (procrastinate jobs), on any machine."""

from __future__ import annotations

import click

from baton.cli.context import Context, pass_ctx


@click.command("worker")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Runs executed at once by this process.",
)
@pass_ctx
def worker(ctx: Context, concurrency: int) -> None:
    """Execute the server runs queued in the PostgreSQL store (BATON_DATABASE_URL): each in
    its workspace under BATON_HOME/runs, until Ctrl-C or SIGTERM. Run any number, on any
    machines that reach the database, the blob store and the repositories. It also fails the
    runs whose worker stopped answering. On the embedded store `baton serve --runners N`
    executes the runs itself.

    \b
    Example:
      BATON_DATABASE_URL=postgresql://db/baton baton worker --concurrency 2
    """
    from baton.core.errors import InvalidInput
    from baton.runs.queue import Jobs, is_postgres

    settings = ctx.settings
    if not is_postgres(settings.database_url):
        raise InvalidInput(
            "baton worker needs the PostgreSQL store (BATON_DATABASE_URL=postgresql://…); on "
            "the embedded store `baton serve --runners N` executes the runs"
        )
    service = ctx.local
    jobs = service.queue if isinstance(service.queue, Jobs) else Jobs(settings.database_url)
    click.echo(f"baton worker: executing runs ({concurrency} at once); Ctrl-C stops it", err=True)
    jobs.work(service, settings, concurrency)


COMMANDS = [worker]

"""`baton`: the entry point, which registers every command. Heavy modules are imported inside
the commands that need them."""

from __future__ import annotations

import sys

import click

from baton import __version__
from baton.cli import (
    chat,
    cloud,
    git,
    handoff,
    links,
    migrate,
    remote,
    server,
    sessions,
    shares,
    sync,
    worker,
)
from baton.cli.context import Context
from baton.cli.copy import copy_command
from baton.cli.forks import fork_into_mine
from baton.cli.output import printable


@click.group(
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "-V", "--version", prog_name="baton")
@click.option("--home", help="Data folder (default: $BATON_HOME or the user data dir).")
@click.option(
    "--fork",
    "fork_source",
    metavar="SHARE_ID",
    help="Fork a share (id or URL) into a new session of yours, then continue there.",
)
@click.pass_context
def cli(ctx: click.Context, home: str | None, fork_source: str | None) -> None:
    """baton keeps the working sessions of AI coding agents: resume, share, fork.

    \b
    Examples:
      baton sessions new --title "Fix the login bug"
      baton sessions append SESSION_ID --role user --text "Why does login fail?"
      baton share SESSION_ID --expires 7d
      baton fork SHARE_ID
    """
    ctx.obj = Context(home)
    if fork_source is not None:
        if ctx.invoked_subcommand is None and sys.stdin.isatty() and sys.stdout.isatty():
            ctx.invoke(chat.chat, fork_source=fork_source)
            return
        session = fork_into_mine(ctx.obj, fork_source)
        click.echo(session.id)
        click.echo(f"continue it with: baton chat -s {session.id}", err=True)
    elif ctx.invoked_subcommand is None:
        chat.chat_or_help(ctx)


cli.add_command(sessions.sessions)
cli.add_command(copy_command)
sessions.sessions.add_command(git.snapshot)
for command in [
    *shares.COMMANDS,
    git.restore,
    *server.COMMANDS,
    migrate.migrate,
    *remote.COMMANDS,
    *chat.COMMANDS,
    *cloud.COMMANDS,
    *worker.COMMANDS,
    *links.COMMANDS,
    *handoff.COMMANDS,
    *sync.COMMANDS,
]:
    cli.add_command(command)


def _run_json(exc: click.UsageError, argv: list[str] | None) -> bool:
    """A usage error of `baton run --json`: a script reads one JSON object, like its other
    errors."""
    args = sys.argv[1:] if argv is None else argv
    if exc.ctx is None or exc.ctx.command.name != "run" or "run" not in args:
        return False
    return "--json" in args[args.index("run") + 1 :]


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: user errors are one line and exit 1 or 2, never a traceback."""
    from baton.core.errors import BatonError

    try:
        cli.main(args=argv, prog_name="baton", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        if isinstance(exc, click.UsageError) and _run_json(exc, argv):
            from baton.cli.output import print_json

            message = printable(exc.format_message())
            print_json({"error": {"code": "usage", "message": message}})
        else:
            exc.show()
        sys.exit(exc.exit_code)
    except BatonError as exc:
        click.echo(f"error: {printable(exc.message)}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:
        from baton.config import debug

        if debug():
            raise
        message = printable(f"{type(exc).__name__}: {exc}")
        click.echo(f"error: {message} (set BATON_DEBUG=1 for details)", err=True)
        sys.exit(1)

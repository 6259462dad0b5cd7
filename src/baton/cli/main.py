"""`baton`: the entry point. Heavy modules are imported inside the commands that need them."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from baton import __version__
from baton.core.terminal import printable


class Context:
    """What every command needs, built on first use."""

    def __init__(self, home: str | None) -> None:
        self._home = home
        self._service: Any = None
        self._owner: Any = None
        self._local: Any = None

    @property
    def settings(self) -> Any:
        from baton.config import Settings

        return Settings.load(home=self._home)

    @property
    def remote(self) -> dict[str, Any] | None:
        """The server this CLI is logged in to (`baton login`), if any."""
        from baton.cli.remote import load_login

        return load_login(self.settings.home)

    @property
    def local(self) -> Any:
        """The service over the embedded store in BATON_HOME, logged in or not."""
        if self._local is None:
            from baton.config import build_service

            self._local = build_service(self.settings)
        return self._local

    @property
    def service(self) -> Any:
        """The local service, or after `baton login` the client of that server."""
        if self._service is None:
            remote = self.remote
            if remote is not None:
                from baton.client import Client

                self._service = Client(remote["url"], remote["token"])
                self._owner = remote["account"]["id"]
            else:
                self._service = self.local
        return self._service

    @property
    def owner(self) -> str:
        service = self.service
        if self._owner is None:
            settings = self.settings
            self._owner = service.account(settings.user, settings.display_name).id
        return str(self._owner)


pass_ctx = click.make_pass_decorator(Context)


@click.group(
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "-V", "--version", prog_name="baton")
@click.option(
    "--home", envvar="BATON_HOME", help="Data folder (default: $BATON_HOME or the user data dir)."
)
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
            from baton.cli.chat import chat

            ctx.invoke(chat, fork_source=fork_source)
            return
        from baton.cli.chat import _fork_source

        session = _fork_source(ctx.obj, fork_source)
        click.echo(session.id)
        click.echo(f"continue it with: baton chat -s {session.id}", err=True)
    elif ctx.invoked_subcommand is None:
        from baton.cli.chat import chat

        ctx.invoke(chat)


def _register() -> None:
    from baton.cli import chat, git, migrate, remote, server, sessions, shares
    from baton.cli.copy import copy_command

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
    ]:
        cli.add_command(command)


_register()


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: user errors are one line and exit 1 or 2, never a traceback."""
    from baton.core.errors import BatonError

    try:
        cli.main(args=argv, prog_name="baton", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
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
        if os.environ.get("BATON_DEBUG"):
            raise
        message = printable(f"{type(exc).__name__}: {exc}")
        click.echo(f"error: {message} (set BATON_DEBUG=1 for details)", err=True)
        sys.exit(1)

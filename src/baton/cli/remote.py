"""`baton login`, `logout` and `whoami`: remote mode, where commands go to a server."""

from __future__ import annotations

import os

import click

from baton.cli.context import LOGIN_FILE, Context, pass_ctx, save_login
from baton.cli.options import json_option
from baton.cli.output import print_json, printable


@click.command("login")
@click.argument("url")
@click.option("--token", help="An API token (else asked for, hidden). Also $BATON_TOKEN.")
@json_option
@pass_ctx
def login(ctx: Context, url: str, token: str | None, as_json: bool) -> None:
    """Log in to a baton server: from now on every command works against it.

    The token comes from `baton serve`'s first start, `baton users add`, or the server's
    Tokens page. It is kept in BATON_HOME with mode 0600.

    Example: baton login https://baton.example.com --token baton_...
    """
    from baton.client import Client
    from baton.core.errors import InvalidInput

    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise InvalidInput(f"{url!r} is not a server URL (http://… or https://…)")
    token = token or os.environ.get("BATON_TOKEN") or click.prompt("Token", hide_input=True)
    client = Client(url, token.strip(), timeout=15)
    try:
        account = client.me()
    finally:
        client.close()
    data = {"url": url, "token": token.strip(), "account": account.to_dict()}
    path = save_login(ctx.settings.home, data)
    if as_json:
        print_json({"url": url, "account": account.to_dict(), "saved": str(path)})
    else:
        click.echo(printable(f"logged in to {url} as {account.handle} ({account.display_name})"))


@click.command("logout")
@json_option
@pass_ctx
def logout(ctx: Context, as_json: bool) -> None:
    """Forget the server login: commands use the local store again.

    Example: baton logout
    """
    path = ctx.settings.home / LOGIN_FILE
    existed = path.exists()
    path.unlink(missing_ok=True)
    if as_json:
        print_json({"logged_out": existed})
    else:
        click.echo("logged out" if existed else "not logged in")


@click.command("whoami")
@json_option
@pass_ctx
def whoami(ctx: Context, as_json: bool) -> None:
    """Who commands act as: the server account, or the local store's owner.

    Example: baton whoami --json
    """
    remote = ctx.remote
    if remote is not None:
        account = ctx.service.me()
        where = remote["url"]
    else:
        settings = ctx.settings
        account = ctx.service.account(settings.user, settings.display_name)
        where = f"local store in {settings.home}"
    if as_json:
        print_json({**account.to_dict(), "server": remote["url"] if remote else None})
    else:
        click.echo(printable(f"{account.handle} ({account.display_name}) on {where}"))


COMMANDS = [login, logout, whoami]

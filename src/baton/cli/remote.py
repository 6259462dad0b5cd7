"""`baton login`, `logout` and `whoami`: remote mode, where commands go to a server."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from baton.cli.main import Context, pass_ctx
from baton.cli.output import json_option, print_json
from baton.core.terminal import printable

LOGIN_FILE = "login.json"


def load_login(home: Path) -> dict[str, Any] | None:
    path = home / LOGIN_FILE
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        from baton.core.errors import InvalidInput

        raise InvalidInput(f"{path} is damaged: run `baton logout`, then log in again") from None
    if not isinstance(data, dict) or not {"url", "token", "account"} <= data.keys():
        from baton.core.errors import InvalidInput

        raise InvalidInput(f"{path} is damaged: run `baton logout`, then log in again")
    return data


def save_login(home: Path, data: dict[str, Any]) -> Path:
    """Written with mode 0600 from the start (the token is a password), then renamed."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / LOGIN_FILE
    tmp = home / f".{LOGIN_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


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

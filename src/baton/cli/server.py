"""`baton serve`, `baton users …` and `baton tokens …`."""

from __future__ import annotations

import ipaddress
import sys
from typing import Any

import click

from baton.cli.context import Context, pass_ctx
from baton.cli.options import json_option
from baton.cli.output import console, markup, print_json, printable, short_time


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.command("serve")
@click.option("--host", help="Address to listen on (default: $BATON_HOST or 127.0.0.1).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help="Port (default: $BATON_PORT or 8765).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="Server processes sharing the port (default: $BATON_WORKERS or 1).",
)
@click.option(
    "--runners",
    type=click.IntRange(0, 64),
    help="Server runs executed at once by this server (default: $BATON_RUNNERS or 1 on the "
    "embedded store; 0 on PostgreSQL, where `baton worker` executes them).",
)
@pass_ctx
def serve(
    ctx: Context, host: str | None, port: int | None, workers: int | None, runners: int | None
) -> None:
    """Serve the web pages and the JSON API over the store: the embedded one in BATON_HOME,
    or PostgreSQL and S3 (BATON_DATABASE_URL, BATON_BLOB_URL; see docs/deployment.md).

    On the first start it prints a one-time login link and an API token for the owner.
    Listening beyond loopback needs BATON_SECRET (32+ random characters) to sign cookies.
    Servers hold no state: run several (--workers N, or on several machines) over one store.

    Server runs are executed by this process on the embedded store (--runners N threads,
    default 1), by `baton worker` processes on PostgreSQL (or here too with --runners N).

    Example: baton serve --port 8765 --workers 2
    """
    from baton.core.errors import InvalidInput

    settings = ctx.configure(host=host, port=port, workers=workers)
    host, port = settings.host, settings.port
    if not is_loopback(host) and (not settings.secret or len(settings.secret) < 32):
        raise InvalidInput(
            f"refusing to listen on {host} without a secret: set BATON_SECRET to 32+ random "
            "characters (and BATON_URL to the address people use)"
        )
    if settings.secret and len(settings.secret) < 32:
        raise InvalidInput("BATON_SECRET is too short: use 32+ random characters")
    from baton.sealing import local_secret

    # what the workers are given too: the secret (made once if none), the address people use
    secret = settings.secret or local_secret(settings.home)
    settings = ctx.configure(
        secret=secret,
        base_url=settings.base_url
        if settings.url_given
        else f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}",
    )
    service = ctx.local
    accounts = service.accounts
    first = not accounts.any_tokens()
    if first:
        owner = service.account(settings.user, settings.display_name)
        _, token = accounts.create_token(owner.id, "first start")
        code = accounts.login_code(owner.id)
        click.echo(f"baton: first start; the owner account is {owner.handle}. Shown once:")
        click.echo(f"  log in to the web pages: {service.base_url}/login?code={code}")
        click.echo(f"  API token:               {token}")
        click.echo(f"  this CLI on another machine: baton login {service.base_url} --token {token}")
    from baton.store.base import safe_url

    if not settings.database_url.startswith("sqlite:") and settings.blob_url.startswith("file:"):
        click.echo(
            f"baton: warning: blobs are kept in {settings.blob_url[len('file://') :]} on this "
            "machine; servers on other machines will not find them: set BATON_BLOB_URL="
            "s3://BUCKET?endpoint=… (docs/deployment.md)",
            err=True,
        )
    where = (
        f"data in {settings.home}"
        if settings.database_url.startswith("sqlite:")
        else f"store {safe_url(settings.database_url)}"
    )
    from baton.runs.queue import is_postgres
    from baton.server import processes

    if runners is None:
        runners = 0 if is_postgres(settings.database_url) else settings.runners
    sock = processes.listen(host, port)  # listening before it says so
    from baton.config import serving

    with serving(settings.home, service.base_url):
        _serve(settings, service, sock, secret, where, runners)


def _serve(settings: Any, service: Any, sock: Any, secret: str, where: str, runners: int) -> None:
    from baton.runs.queue import running
    from baton.server import processes

    if settings.workers == 1:
        from baton.server import create_app

        app = create_app(
            service,
            secret=secret,
            secure_cookies=service.base_url.startswith("https"),
            trusted_proxies=settings.trusted_proxies,
        )
        click.echo(f"baton serving {service.base_url} ({where}); Ctrl-C stops it")
        sys.stdout.flush()
        with running(service, settings, runners):
            processes.serve(app, sock)
        return
    # Each worker process builds its own app from these settings (given to it, not read again).
    service.close()
    click.echo(
        f"baton serving {service.base_url} ({where}, {settings.workers} workers); Ctrl-C stops it"
    )
    sys.stdout.flush()
    if runners:  # the runs are executed here, beside the server processes
        from baton.config import build_service
        from baton.runs.queue import attach

        with running(attach(build_service(settings), settings), settings, runners):
            processes.supervise(sock, settings)
        return
    processes.supervise(sock, settings)


def _account(ctx: Context, handle: str | None) -> Any:
    if handle is None:
        settings = ctx.settings
        return ctx.local.account(settings.user, settings.display_name)
    return ctx.local.accounts.find(handle)


@click.group("users")
def users() -> None:
    """Accounts of the local store (the server's): add, list, set a password."""


@users.command("add")
@click.argument("handle")
@click.option("--display-name", help="The name shown on shared pages (default: the handle).")
@json_option
@pass_ctx
def users_add(ctx: Context, handle: str, display_name: str | None, as_json: bool) -> None:
    """Add an account and print its first API token (shown once).

    Example: baton users add ada --display-name "Ada Lovelace"
    """
    accounts = ctx.local.accounts
    account = accounts.add(handle, display_name)
    _, token = accounts.create_token(account.id, "first token")
    if as_json:
        print_json({**account.to_dict(), "token": token})
    else:
        click.echo(
            printable(f"added {account.handle} ({account.display_name}); token, shown once:")
        )
        click.echo(token)


@users.command("list")
@json_option
@pass_ctx
def users_list(ctx: Context, as_json: bool) -> None:
    """Every account.

    Example: baton users list
    """
    found = ctx.local.accounts.list_all()
    if as_json:
        print_json([a.to_dict() for a in found])
        return
    from rich.table import Table

    table = Table(pad_edge=False)
    for name in ("handle", "display name", "id", "created"):
        table.add_column(name)
    for a in found:
        table.add_row(a.handle, markup(a.display_name), a.id, short_time(a.created_at))
    console().print(table)


@users.command("passwd")
@click.argument("handle")
@click.option("--password", help="The new password (else asked for twice, hidden).")
@pass_ctx
def users_passwd(ctx: Context, handle: str, password: str | None) -> None:
    """Set the password an account logs in to the web pages with (argon2id).

    Example: baton users passwd ada
    """
    accounts = ctx.local.accounts
    account = accounts.find(handle)
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    accounts.set_password(account.id, password)
    click.echo(f"password set for {account.handle}")


@click.group("tokens")
def tokens() -> None:
    """API tokens: create, list, revoke (on the server after `baton login`)."""


@tokens.command("create")
@click.option("--name", default="", help="What the token is for.")
@click.option("--user", "handle", help="For this account (local store only).")
@json_option
@pass_ctx
def tokens_create(ctx: Context, name: str, handle: str | None, as_json: bool) -> None:
    """Create a token and print it (shown once; only its hash is kept).

    Example: baton tokens create --name laptop
    """
    if ctx.remote is not None and handle is None:
        data = ctx.client.create_token(name)
    else:
        account = _account(ctx, handle)
        token, secret = ctx.local.accounts.create_token(account.id, name)
        data = {**token.to_dict(), "token": secret}
    if as_json:
        print_json(data)
    else:
        click.echo(data["token"])


@tokens.command("list")
@click.option("--user", "handle", help="Of this account (local store only).")
@json_option
@pass_ctx
def tokens_list(ctx: Context, handle: str | None, as_json: bool) -> None:
    """The tokens of an account (never their secrets).

    Example: baton tokens list
    """
    if ctx.remote is not None and handle is None:
        found = ctx.client.tokens()
    else:
        service = ctx.local
        now = service.now()
        found = [
            {**t.to_dict(), "state": t.state(now)}
            for t in service.accounts.tokens(_account(ctx, handle).id)
        ]
    for t in found:
        t.setdefault("state", "revoked" if t["revoked_at"] else "live")
    if as_json:
        print_json(found)
        return
    from rich.table import Table

    table = Table(pad_edge=False)
    for column in ("id", "name", "state", "created", "last used"):
        table.add_column(column)
    for t in found:
        table.add_row(
            t["id"],
            markup(t["name"] or "-"),
            t["state"],
            short_time(t["created_at"]),
            short_time(t["last_used_at"]) or "never",
        )
    console().print(table)


@tokens.command("revoke")
@click.argument("token_id")
@click.option("--user", "handle", help="Of this account (local store only).")
@json_option
@pass_ctx
def tokens_revoke(ctx: Context, token_id: str, handle: str | None, as_json: bool) -> None:
    """Revoke a token: requests with it answer 401 from now on.

    Example: baton tokens revoke tok_01J...
    """
    if ctx.remote is not None and handle is None:
        data = ctx.client.revoke_token(token_id)
    else:
        data = ctx.local.accounts.revoke(_account(ctx, handle).id, token_id).to_dict()
    if as_json:
        print_json(data)
    else:
        click.echo(f"revoked {data['id']}")


COMMANDS = [serve, users, tokens]

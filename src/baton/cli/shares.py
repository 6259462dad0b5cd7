"""`baton share`, `unshare`, `shares`, `fork` and `gc`."""

from __future__ import annotations

import click

from baton.cli.context import Context, pass_ctx
from baton.cli.forks import fork_into_mine
from baton.cli.options import json_option
from baton.cli.output import console, echo, print_json, progress_bar, shares_table
from baton.cli.snapshots import restore_into


def _share_json(ctx: Context, share: object) -> dict[str, object]:
    data = share.to_dict()  # type: ignore[attr-defined]
    url = ctx.service.share_url(data["id"])
    return {
        **data,
        "url": url,
        "command": f"baton --fork {url}",  # the URL works on any machine; the id only here
        "install": f"pipx install {ctx.service.install_url()}",  # not PyPI's `baton`
        "published": share.published,  # type: ignore[attr-defined]
        "withheld": share.withheld,  # type: ignore[attr-defined]
    }


@click.command("share")
@click.argument("session_id")
@click.option("--expires", help="Expire after 30m, 12h, 7d, 2w… (default: never).")
@click.option("--redact", "mode", flag_value="redact", help="Publish copies with secrets replaced.")
@click.option(
    "--allow-secrets", "mode", flag_value="allow", help="Publish even with secrets found."
)
@click.option(
    "--no-code",
    "no_code",
    is_flag=True,
    help="Publish no git patch and no git bundle (the repository, branch and commit stay).",
)
@json_option
@pass_ctx
def share(
    ctx: Context,
    session_id: str,
    expires: str | None,
    mode: str | None,
    as_json: bool,
    no_code: bool = False,
) -> None:
    """Publish a frozen, read-only copy of a session at a link.

    Everything it publishes is scanned for secrets first: the messages, their large
    outputs, the git patch and every commit of the git bundle. Any finding blocks the share
    unless --redact (secrets replaced; a patch or bundle with secrets left out), --no-code
    or --allow-secrets is given.

    Example: baton share ses_01J... --expires 7d
    """
    from baton.core.errors import SecretsFound

    if ctx.remote is None and mode != "allow" and ctx.local.unscanned_imports():
        # what imports left for the first share: seconds for a big one, so it shows
        with progress_bar("scanning imported messages for secrets", enabled=not as_json) as bar:
            ctx.local.scan_imports(bar)
    try:
        created = ctx.service.share(
            ctx.owner, session_id, expires=expires, mode=mode or "block", code=not no_code
        )
    except SecretsFound as exc:
        if as_json:
            print_json(
                {"error": {"code": exc.code, "message": exc.message, "findings": exc.findings}}
            )
        else:
            for f in exc.findings:
                echo(f"  {f['where']}: {f['kind']} {f['excerpt']}")
        raise
    data = _share_json(ctx, created)
    if as_json:
        print_json(data)
        return
    click.echo(data["url"])
    click.echo(f"  no baton there? {data['install']}", err=True)
    click.echo(f"  published: {created.published}", err=True)
    for note in created.withheld:
        echo(f"  not published: {note}", err=True)
    for f in created.redacted:
        echo(f"  redacted {f['where']}: {f['kind']} {f['excerpt']}", err=True)
    if created.expires_at:
        click.echo(f"  expires {created.expires_at}", err=True)


@click.command("unshare")
@click.argument("share_id")
@json_option
@pass_ctx
def unshare(ctx: Context, share_id: str, as_json: bool) -> None:
    """Revoke a share: its link answers 410 Gone from now on.

    Example: baton unshare 3q2-7wEr9aTz_Rk1mC0x4Ab
    """
    from baton.core.shares import share_id_from

    revoked = ctx.service.revoke(ctx.owner, share_id_from(share_id))
    if as_json:
        print_json(_share_json(ctx, revoked))
    else:
        click.echo(f"revoked {revoked.id}")


@click.command("shares")
@click.option("--session", "session_id", help="Only the shares of this session.")
@json_option
@pass_ctx
def shares(ctx: Context, session_id: str | None, as_json: bool) -> None:
    """My shares, newest first, with their state (live, expired, revoked).

    Example: baton shares --json
    """
    found = ctx.service.shares(ctx.owner, session_id)
    now = ctx.service.now()
    if as_json:
        print_json([{**_share_json(ctx, s), "state": s.state(now)} for s in found])
    elif not found:
        click.echo("no shares")
    else:
        console().print(shares_table(found, now))


@click.command("fork")
@click.argument("source")
@click.option("--at", "at", help="Fork at this earlier message instead of the head.")
@click.option(
    "--restore",
    "restore_to",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[DIR]",
    help="Also restore the code of the fork into DIR (default: ./REPO-ID).",
)
@json_option
@pass_ctx
def fork(
    ctx: Context, source: str, at: str | None, as_json: bool, restore_to: str | None = None
) -> None:
    """Fork a share (id or URL) or one of your sessions into a new session of yours.

    \b
    Examples:
      baton fork 3q2-7wEr9aTz_Rk1mC0x4Ab
      baton fork https://baton.example.com/share/3q2-7wEr9aTz_Rk1mC0x4Ab
      baton fork ses_01J... --at m_5f2c...
    """
    session = fork_into_mine(ctx, source, at)
    if restore_to is not None:
        if not as_json:
            click.echo(session.id)
        report = restore_into(ctx, session.id, restore_to or None, None, as_json)
        if as_json:
            print_json({**session.to_dict(), "restore": report})
        return
    if as_json:
        print_json(session.to_dict())
    else:
        click.echo(session.id)


@click.command("gc")
@json_option
@pass_ctx
def gc(ctx: Context, as_json: bool) -> None:
    """Delete messages and blobs that no session and no live share reaches.

    Example: baton gc
    """
    report = ctx.service.gc()
    if as_json:
        print_json(report)
    else:
        click.echo(
            f"deleted {report['messages_deleted']} message(s) and {report['blobs_deleted']} blob(s)"
        )


COMMANDS = [share, unshare, shares, fork, gc]

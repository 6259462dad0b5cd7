"""`baton copy`: a whole store into another, e.g. from the embedded SQLite store to
PostgreSQL + S3 when a laptop setup becomes a team server, and back."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from baton.cli.options import json_option
from baton.cli.output import print_json, progress_bar

if TYPE_CHECKING:
    from baton.contract import VerifyReport
    from baton.copying import CopyReport, Location


@click.command("copy")
@click.option(
    "--from",
    "source",
    required=True,
    metavar="STORE",
    help="The store to copy: a data folder (a BATON_HOME) or a store URL "
    "(sqlite:///PATH/baton.db, postgresql://…).",
)
@click.option(
    "--to",
    "target",
    required=True,
    metavar="STORE",
    help="The store to copy into, named the same way (made when it is a new folder); "
    "memory:// copies into memory and verifies, keeping nothing (a dry run).",
)
@click.option(
    "--from-blobs",
    metavar="URL",
    help="The source's blob store (file:///PATH, s3://BUCKET?endpoint=URL). Needed unless "
    "--from is a folder or a sqlite URL (then: the blobs folder beside the database).",
)
@click.option("--to-blobs", metavar="URL", help="The target's blob store, as for --from-blobs.")
@json_option
def copy_command(
    source: str, target: str, from_blobs: str | None, to_blobs: str | None, as_json: bool
) -> None:
    """Copy a whole store into another: accounts (with password hashes), API tokens,
    repositories, environments, sessions with their server runs, shares (revoked and
    expired ones too), messages and blobs, exactly as they are, then verify every chain in
    the target.

    Environment secrets and repository credentials stay sealed with the server secret: the
    target's servers need the source's BATON_SECRET to open them (or set them again). Runs
    are copied as they ended; one still queued or running in the source is copied failed
    (it does not run again in the target).

    Each session and share is written whole, so an interrupted copy can simply be run
    again: what the target already holds is skipped. Stop whatever writes to the source
    (`baton serve`, agents) while it runs.

    \b
    Examples:
      baton copy --from ~/.local/share/baton --to postgresql://baton@db/baton \\
        --to-blobs "s3://baton?endpoint=http://s3:8333"
      baton copy --from postgresql://baton@db/baton --from-blobs "s3://baton?endpoint=…" \\
        --to ./baton-backup
    """
    from baton import copying
    from baton.core.errors import Corrupt

    src = copying.locate(source, from_blobs, "--from-blobs")
    dst = copying.locate(target, to_blobs, "--to-blobs")
    with copying.opened(src, dst) as (src_store, src_blobs, dst_store, dst_blobs):
        with progress_bar("copying", enabled=not as_json) as advance:
            report = copying.copy_store(
                src_store, src_blobs, dst_store, dst_blobs, progress=advance
            )
        with progress_bar("verifying", enabled=not as_json) as advance:
            check = copying.verify_store(
                dst_store, dst_blobs, missing_ok=report.missing_blobs, progress=advance
            )
    report.verified = check
    if as_json:
        print_json({"from": _side(src), "to": _side(dst), **report.to_dict()})
    else:
        _say(report, check, dst.describe())
    if not check.ok:
        raise Corrupt(
            f"the copy in {dst.describe()} does not verify: {len(check.problems)} problem(s), "
            f"the first: {check.problems[0]}"
        )


def _side(location: Location) -> dict[str, str | None]:
    from baton.store.base import safe_url

    blobs = location.blob_url
    return {"store": safe_url(location.store_url), "blobs": safe_url(blobs) if blobs else None}


def _say(report: CopyReport, check: VerifyReport, target: str) -> None:
    click.echo(
        f"copied {report.accounts} account(s), {report.tokens} token(s), "
        f"{report.sessions} session(s), {report.shares} share(s), {report.repos} repo(s), "
        f"{report.environments} environment(s), {report.runs} run(s), "
        f"{report.messages} message(s) and {report.blobs} blob(s) into {target}"
    )
    skipped = {k: v for k, v in report.skipped.items() if v}
    if skipped:
        listed = ", ".join(f"{v} {k[:-1]}(s)" for k, v in skipped.items())
        click.echo(f"already there, left as they are: {listed}")
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    if check.ok:
        click.echo(
            f"verified: {check.sessions} session(s), {check.shares} share(s), "
            f"{check.messages} message(s)"
        )

"""Setup commands from the CLI: run before a new session's first turn, after `baton restore`
and `fork --restore`, and again with `baton setup [ID]` (the logic: baton.agent.setup)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from baton.cli.context import Context
from baton.cli.output import echo

setup_option = click.option(
    "--setup",
    "setup_flags",
    multiple=True,
    metavar="CMD",
    help="A setup command to run before the first turn (repeatable; replaces the declared ones).",
)


def run_setup(
    ctx: Context,
    session_id: str | None,
    root: Path,
    flags: Sequence[str] = (),
    sandbox: str | None = None,
    spec: Any = None,
) -> list[Any]:
    """Run the setup commands of the workspace at `root` (sandboxed, network allowed), each
    recorded in the session when there is one; SetupFailed (one line) when one fails."""
    from baton import sandbox as confinement
    from baton.agent import setup

    settings = ctx.settings
    if spec is None:
        spec = setup.load(root, settings.setup, flags)
    if not spec.commands:
        return []
    confined = settings.sandbox if sandbox is None else sandbox == "on"
    policy = confinement.choose(confined, True, settings.sandbox_limits)
    if policy.confined:
        try:
            confinement.check()
        except confinement.SandboxUnavailable as exc:
            raise setup.SetupFailed(f"setup commands cannot run: {exc}") from None

    def started(command: Any) -> None:
        echo(f"setup: {command.command}", err=True)

    record = setup.recorder(ctx.service, ctx.owner, session_id) if session_id else None

    def ended(result: Any) -> None:
        if record is not None:
            record(result)
        code = (
            "interrupted"
            if result.interrupted
            else "timed out"
            if result.timed_out
            else f"exit {result.exit_code}"
        )
        echo(f"setup: {code} ({result.duration:.1f}s)", err=True)

    try:
        results = setup.run(spec, root, policy, on_result=ended, on_start=started)
    except confinement.Stopped:  # recorded; click would make Ctrl-C an "aborted", exit 1
        echo("interrupted", err=True)
        raise SystemExit(130) from None
    setup.check(results, session_id)
    return results


def workspace_spec(ctx: Context, root: Path, flags: Sequence[str]) -> Any:
    from baton.agent import setup

    return setup.load(root, ctx.settings.setup, flags)


REPOSITORY_SOURCES = (".baton/setup.toml", ".baton/config.toml")


def after_restore(ctx: Context, source: str, path: str) -> list[Any]:
    """A restored workspace runs its setup commands, recorded in the session when `source` is
    one of mine; what each gave, for --json. Commands that the restored repository declares
    itself run only when the code is mine: code from someone else's share (restored, or a
    fork of it) never runs its own declarations unasked; they are named, to run with
    `baton setup` after reading them."""
    from baton.agent import setup
    from baton.core.errors import BatonError

    session_id: str | None = None
    theirs = _from_someone_else(ctx, {"share": source.removeprefix("share-")})
    if source.startswith("ses_"):  # else a share: run, but nothing to record in
        try:
            session = ctx.service.get(ctx.owner, source)
            session_id = session.id
            theirs = _from_someone_else(ctx, session.forked_from)
        except BatonError:
            session_id = None
    spec = setup.load(Path(path), ctx.settings.setup)
    if theirs and spec.source in REPOSITORY_SOURCES:
        listed = ", ".join(f"`{c.command}`" for c in spec.commands)
        echo(
            f"setup: not run: this code comes from someone else's share, and its {spec.source} "
            f"declares {len(spec.commands)} command(s): {listed}. Read them, then run "
            f"`baton setup` in {path}",
            err=True,
        )
        return []
    results = run_setup(ctx, session_id, Path(path), spec=spec)
    return [r.message()["parts"][0]["setup"] for r in results]


def _from_someone_else(ctx: Context, forked_from: Any) -> bool:
    """Whether a session's code came from a share of another account (a fork of it, or of a
    fork of it: the origin is followed through my own sessions)."""
    from baton.core.errors import BatonError

    seen: set[str] = set()
    while isinstance(forked_from, dict):
        if forked_from.get("share"):
            try:
                share = ctx.service.public_share(str(forked_from["share"]))
            except BatonError:
                return True  # revoked or gone: it cannot be told to be mine
            return bool(share.shared_by.get("account") != ctx.owner)
        parent = forked_from.get("session")
        if not parent or parent in seen:
            return False
        seen.add(str(parent))
        try:
            forked_from = ctx.service.get(ctx.owner, str(parent)).forked_from
        except BatonError:
            return True
    return False

"""The git context of sessions from the command line, shared by the commands: capture a
snapshot (`sessions new`, `sessions snapshot`, `chat`, `run`), describe it, and restore one
(`restore`, `fork --restore`)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from baton.cli.context import Context
from baton.cli.output import echo


def put_blob(ctx: Context) -> Callable[[bytes], str]:
    """Where a snapshot's patch and bundle go: the local blob store, or the server."""
    service = ctx.service
    from baton.core import ids

    def put(data: bytes) -> str:
        sha = ids.sha256_hex(data)
        service.put_blob(sha, data, ctx.owner)
        return sha

    return put


def capture(ctx: Context, repo: str | None) -> dict[str, Any] | None:
    """A snapshot of the repository at `repo` (default: the current folder, if in one)."""
    from baton import gitstate
    from baton.core.errors import InvalidInput

    path = Path(repo).expanduser() if repo else Path.cwd()
    if repo is not None and not path.exists():
        raise InvalidInput(f"{repo}: no such folder")
    settings = ctx.settings
    git = gitstate.capture(
        path,
        put_blob(ctx),
        patch_cap=settings.patch_cap,
        file_cap=settings.file_cap,
        bundle_cap=settings.bundle_cap,
    )
    if git is None and repo is not None:
        raise InvalidInput(f"{repo} is not inside a git repository")
    return git


def describe(git: dict[str, Any] | None) -> list[str]:
    """What a snapshot holds and what it left out, one line each (for stderr)."""
    if not git:
        return ["no git context: not inside a git repository"]
    lines = []
    where = git.get("branch") or ("detached HEAD" if git.get("detached") else "no branch")
    head = (git.get("head") or "")[:12] or "no commit"
    summary = f"git: {git.get('remote') or 'no remote'} {where} at {head}"
    if git.get("ahead"):
        summary += f", {git['ahead']} commit(s) not on {git.get('upstream') or 'a remote'}"
    if git.get("patch"):
        summary += f", {git['patch'].get('files')} changed file(s) ({git['patch'].get('size')} bytes of patch)"
    lines.append(summary)
    if git.get("partial"):
        lines.append(f"git: {git['partial']}")
    for item in git.get("omitted") or []:
        lines.append(f"git: left out {item.get('path')}: {item.get('reason')}")
    return lines


def _target(ctx: Context, source: str) -> tuple[dict[str, Any] | None, Any, str]:
    """The git snapshot of a session of mine or of a share, a blob reader, and a branch name."""
    from baton.core.shares import share_id_from

    service = ctx.service
    value = share_id_from(source)
    if value.startswith("ses_"):
        session = service.get(ctx.owner, value)
        return (
            session.git,
            lambda sha: service.blob(ctx.owner, sha, session_id=value),
            value,
        )
    if source.startswith(("http://", "https://")) and not _same_server(ctx, source):
        from baton.client import anonymous

        client = anonymous(source)
        share = client.public_share(value)
        return share.git, lambda sha: client.blob(None, sha, share_id=value), f"share-{value}"
    share = service.public_share(value)
    return share.git, lambda sha: service.blob(None, sha, share_id=value), f"share-{value}"


def _same_server(ctx: Context, url: str) -> bool:
    from urllib.parse import urlsplit

    origin = urlsplit(url)._replace(path="", query="", fragment="").geturl()
    remote = ctx.remote
    if remote is not None:
        return bool(remote["url"].rstrip("/") == origin)
    return bool(ctx.local.share_exists(url.rstrip("/").rsplit("/", 1)[-1]))


def restore_into(
    ctx: Context, source: str, path: str | None, origin: str | None, as_json: bool
) -> dict[str, Any]:
    """Restore and say what was done (on stderr); the report, for --json."""
    from baton import gitstate
    from baton.core.errors import InvalidInput

    git, get_blob, name = _target(ctx, source)
    if not git:
        raise InvalidInput(f"{source} has no git context to restore")
    if path is None:
        remote = str(git.get("remote") or git.get("root") or "repo")
        base = remote.rstrip("/").rsplit("/", 1)[-1] or "repo"
        path = f"{base}-{name[-8:]}"
    current = Path.cwd() if origin is None else None
    report = gitstate.restore(
        git,
        get_blob,
        Path(path),
        session_id=name,
        source=origin,
        current_repo=current,
    )
    import dataclasses

    data = dataclasses.asdict(report)
    from baton.cli.setup import after_restore

    data["setup"] = after_restore(ctx, name, report.path)
    if as_json:
        return data
    for step in report.steps:
        echo(step, err=True)
    for item in report.omitted:
        echo(
            f"not restored (left out at capture): {item.get('path')}: {item.get('reason')}",
            err=True,
        )
    if git.get("no_code"):
        click.echo("not restored: it was shared without code (no patch, no bundle)", err=True)
    for dropped in ("bundle_dropped", "patch_dropped"):
        if git.get(dropped):
            echo(f"not restored: {git[dropped]}", err=True)
    click.echo(report.path)
    return data


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def repository_key(cwd: Path) -> tuple[str | None, str | None]:
    """(the repo key sessions are listed by, the work tree root) of `cwd`, as a capture
    records them: the normalised remote URL, else the root commit."""
    from baton import gitstate

    root = _git(cwd, "rev-parse", "--show-toplevel")
    if root is None:
        return None, None
    remote_name = None
    upstream = _git(cwd, "rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{u}")
    remotes = (_git(cwd, "remote") or "").split()
    if upstream and "/" in upstream and upstream.split("/", 1)[0] in remotes:
        remote_name = upstream.split("/", 1)[0]
    elif remotes:
        remote_name = "origin" if "origin" in remotes else remotes[0]
    url = _git(cwd, "config", "--get", f"remote.{remote_name}.url") if remote_name else None
    if url:
        if "://" not in url and gitstate.scp_like(url) is None:
            url = os.path.normpath(Path(root) / url)
        return gitstate.normalize_remote(url), root
    roots = (_git(cwd, "rev-list", "--max-parents=0", "HEAD") or "").split()
    return (roots[-1] if roots else None), root

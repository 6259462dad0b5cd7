"""`baton sync`: the other agents' sessions brought in as they are written (baton.syncing)."""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import click

from baton.cli.context import Context, pass_ctx
from baton.cli.options import json_option
from baton.cli.output import echo, print_json, printable

UNIT = "baton-sync.service"


def _target(ctx: Context) -> str:
    remote = ctx.remote
    return f"{remote['url']} {remote['account']['id']}" if remote else "local"


def _unit_path() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "systemd" / "user" / UNIT


def _install(ctx: Context, paths: tuple[str, ...], as_json: bool) -> None:
    """Write the systemd user unit that runs `baton sync` (BATON_HOME as this command has)."""
    command = [sys.executable, "-m", "baton", "--home", str(ctx.settings.home), "sync"]
    for path in paths:
        command += ["--path", str(Path(path).expanduser().resolve())]
    unit = _unit_path()
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(
        "[Unit]\n"
        "Description=baton sync: other agents' sessions brought into baton as they are written\n"
        "\n"
        "[Service]\n"
        f"ExecStart={shlex.join(command)}\n"
        "Restart=on-failure\n"
        "RestartSec=5\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )
    enable = f"systemctl --user daemon-reload && systemctl --user enable --now {UNIT}"
    if as_json:
        print_json({"unit": str(unit), "enable": enable})
        return
    click.echo(f"wrote {unit}")
    click.echo(f"start it now and at every login with: {enable}")


def _line(change: dict[str, Any]) -> str:
    if "error" in change:
        return f"{change['path']}: {change['error']}"
    parts = []
    for s in change["sessions"]:
        what = "new" if s["created"] else f"+{s['messages_imported']}"
        if s["created"] or s["messages_imported"]:
            parts.append(f"{s['id']} {what} ({s['messages']} messages) {s['title']}")
    return f"{change['format']}: " + "; ".join(parts) if parts else ""


@click.command("sync")
@click.option("--once", is_flag=True, help="One pass, then exit (for cron).")
@click.option("--install", is_flag=True, help="Set it up as a systemd user service.")
@click.option(
    "--path",
    "paths",
    multiple=True,
    help="Also follow this session file or folder (repeatable; and $BATON_SYNC_PATHS).",
)
@json_option
@pass_ctx
def sync(ctx: Context, once: bool, install: bool, paths: tuple[str, ...], as_json: bool) -> None:
    """Bring Claude Code, Codex, opencode, Kilo and Cline sessions into baton as they are
    written: into the local store, or after `baton login` the server. A session file that
    grows grows the same baton session. Runs in the foreground with a one-line status;
    stop it with Ctrl-C. It goes on where it stopped (BATON_HOME/sync-state.json).

    \b
    Examples:
      baton sync
      baton sync --once --json
      baton sync --install
    """
    from baton import syncing
    from baton.cli.imports import import_parsed

    if install:
        _install(ctx, paths, as_json)
        return
    followed = [Path(p).expanduser() for p in (*ctx.settings.sync_paths, *paths)]
    engine = syncing.Sync(
        ctx.settings.home,
        _target(ctx),
        lambda path, tool: import_parsed(ctx, path, tool),
        followed,
    )
    if once:
        changes = [c.to_dict() for c in engine.once()]
        summary = _summary(engine, changes)
        if as_json:
            print_json(summary)
        else:
            for change in changes:
                line = _line(change)
                if line:
                    echo(line, err="error" in change)
            click.echo(
                f"{summary['files']} file(s) followed; {summary['sessions_created']} new "
                f"session(s), {summary['messages_imported']} message(s) added"
            )
        return
    status = sys.stdout.isatty() and not as_json
    totals = {"sessions": 0, "messages": 0}
    try:
        for found in engine.follow():
            for change in (c.to_dict() for c in found):
                if as_json:
                    click.echo(printable(_json_line(change)))
                    continue
                for s in change["sessions"]:
                    totals["sessions"] += s["created"]
                    totals["messages"] += s["messages_imported"]
                line = _line(change)
                if line:
                    if status:
                        click.echo("\r\x1b[K", nl=False)
                    echo(f"{time.strftime('%H:%M:%S')} {line}", err="error" in change)
            if status:
                click.echo(
                    f"\r\x1b[Ksyncing {engine.watched} file(s): {totals['sessions']} new "
                    f"session(s), {totals['messages']} message(s) added",
                    nl=False,
                )
    except KeyboardInterrupt:
        if status:
            click.echo()


def _json_line(change: dict[str, Any]) -> str:
    import orjson

    return orjson.dumps(change).decode()


def _summary(engine: Any, changes: list[dict[str, Any]]) -> dict[str, Any]:
    sessions = [s for c in changes for s in c["sessions"]]
    return {
        "files": engine.watched,
        "changes": changes,
        "sessions_created": sum(s["created"] for s in sessions),
        "messages_imported": sum(s["messages_imported"] for s in sessions),
    }


COMMANDS = [sync]

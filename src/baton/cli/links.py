"""`baton open-handler`: `baton://fork?url=SHARE_URL` links opened from the desktop without an
editor. `install` registers the scheme (Linux: a .desktop file and `xdg-mime default`), a click
runs `open LINK`, which opens a terminal that asks first and then forks the share with its code
(`baton fork URL --restore`) and starts `baton chat` there; `remove` undoes `install`."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import click

from baton.cli.context import Context, pass_ctx
from baton.cli.options import json_option
from baton.cli.output import echo, print_json
from baton.core.errors import InvalidInput

DESKTOP_FILE = "baton-open-handler.desktop"
MIME = "x-scheme-handler/baton"
# Terminals tried in order when neither --terminal nor $BATON_TERMINAL says which: each with
# the flag after which it takes the command to run.
TERMINALS = [
    ("x-terminal-emulator", ["-e"]),
    ("gnome-terminal", ["--"]),
    ("konsole", ["-e"]),
    ("xfce4-terminal", ["-x"]),
    ("kitty", []),
    ("alacritty", ["-e"]),
    ("xterm", ["-e"]),
]
MACOS = (
    "on macOS a URL scheme needs an application bundle: see docs/editor.md "
    '("baton:// links on macOS"); editors\' links work through the baton extension'
)


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
SHARE_PATH = re.compile(r"/share/([A-Za-z0-9_-]+)/?")


def fork_link_target(link: str) -> str:
    """The share URL that a `baton://fork?url=SHARE_URL` link names, normalised; refused
    unless it is https (or http on this machine) and a share URL without credentials."""
    parts = urlsplit(link.strip())
    if parts.scheme != "baton" or "fork" not in (parts.netloc, parts.path.strip("/")):
        raise InvalidInput(f"{link!r} is not a baton link (baton://fork?url=SHARE_URL)")
    urls = parse_qs(parts.query).get("url", [])
    if len(urls) != 1:
        raise InvalidInput("the link names no share (baton://fork?url=SHARE_URL)")
    shown = urls[0]
    target = urlsplit(shown)
    host = (target.hostname or "").lower()
    if target.scheme not in ("https", "http") or not host:
        raise InvalidInput(f"refused {shown!r}: a share URL is https://HOST/share/ID")
    if target.scheme == "http" and host not in LOOPBACK:
        raise InvalidInput(f"refused {shown}: not https (plain http only for this machine)")
    if target.username or target.password:
        raise InvalidInput("refused a share URL with a user name or password in it")
    match = SHARE_PATH.fullmatch(target.path)
    if match is None:
        raise InvalidInput(f"refused {shown}: not a share URL (https://HOST/share/ID)")
    return f"{target.scheme}://{target.netloc.lower()}/share/{match.group(1)}"


def applications() -> Path:
    """$XDG_DATA_HOME/applications (default ~/.local/share/applications)."""
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "applications"


def baton_argv() -> list[str]:
    """How to run this baton again, whatever PATH the desktop has."""
    return [sys.executable, "-m", "baton"]


def _desktop_quote(arg: str) -> str:
    """An argument of a .desktop Exec line (the spec's quoting)."""
    if arg and not any(c in arg for c in " \t\n\"'\\><~|&;$*?#()`%="):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace("$", "\\$")
    return '"' + escaped.replace("%", "%%") + '"'


def desktop_entry(terminal: str | None) -> str:
    argv = [*baton_argv(), "open-handler", "open"]
    if terminal:
        argv += ["--terminal", terminal]
    exec_line = " ".join(_desktop_quote(a) for a in argv) + " %u"
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=baton links\n"
        "Comment=Fork a shared baton session from a baton:// link, after asking\n"
        f"Exec={exec_line}\n"
        f"MimeType={MIME};\n"
        "NoDisplay=true\n"
        "Terminal=false\n"
    )


def _xdg_mime(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("xdg-mime") is None:
        raise InvalidInput("xdg-mime is not installed (Debian/Ubuntu: apt install xdg-utils)")
    return subprocess.run(
        ["xdg-mime", *args], capture_output=True, text=True, timeout=60, check=False
    )


@click.group("open-handler")
def open_handler() -> None:
    """Open baton:// links ("Open in editor" on a share page) without an editor.

    \b
    Examples:
      baton open-handler install
      baton open-handler install --terminal "gnome-terminal --"
      baton open-handler remove
    """


@open_handler.command("install")
@click.option(
    "--terminal",
    metavar="CMD",
    help="The terminal to run in, with the flag before the command "
    '(e.g. "gnome-terminal --"; default: $BATON_TERMINAL, else the first one found).',
)
@json_option
def install(terminal: str | None, as_json: bool) -> None:
    """Register baton:// links with the desktop (Linux; macOS: see docs/editor.md).

    Example: baton open-handler install
    """
    if sys.platform == "darwin":
        raise InvalidInput(MACOS)
    if not sys.platform.startswith("linux"):
        raise InvalidInput(f"baton:// links are registered on Linux only, not on {sys.platform}")
    folder = applications()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / DESKTOP_FILE
    path.write_text(desktop_entry(terminal))
    done = _xdg_mime("default", DESKTOP_FILE, MIME)
    if done.returncode != 0:
        path.unlink()
        raise InvalidInput(f"xdg-mime default failed: {done.stderr.strip() or done.returncode}")
    if shutil.which("update-desktop-database"):
        subprocess.run(
            ["update-desktop-database", str(folder)], capture_output=True, timeout=60, check=False
        )
    if as_json:
        print_json({"desktop_file": str(path), "scheme": "baton", "mime": MIME})
    else:
        click.echo(f"baton:// links now open with {path}")


def _mimeapps() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "mimeapps.list"


@open_handler.command("remove")
@json_option
def remove(as_json: bool) -> None:
    """Undo `install`: the .desktop file and the scheme's default.

    Example: baton open-handler remove
    """
    path = applications() / DESKTOP_FILE
    existed = path.exists()
    path.unlink(missing_ok=True)
    mimeapps = _mimeapps()
    if mimeapps.exists():
        lines = mimeapps.read_text().splitlines(keepends=True)
        kept = [
            line for line in lines if not (line.startswith(f"{MIME}=") and DESKTOP_FILE in line)
        ]
        if kept != lines:
            mimeapps.write_text("".join(kept))
            existed = True
    if as_json:
        print_json({"removed": existed, "desktop_file": str(path)})
    else:
        click.echo("baton:// links are no longer handled" if existed else "nothing to remove")


def terminal_argv(terminal: str | None) -> list[str]:
    """The terminal's command line, up to the command it should run."""
    chosen = terminal
    if chosen:
        return shlex.split(chosen)
    for name, flags in TERMINALS:
        if shutil.which(name):
            return [name, *flags]
    raise InvalidInput(
        "no terminal found to ask in: set $BATON_TERMINAL or `baton open-handler install "
        '--terminal "CMD"`'
    )


@open_handler.command("open")
@click.argument("link")
@click.option("--terminal", metavar="CMD", help="The terminal to ask in (see `install`).")
@click.option(
    "--here",
    is_flag=True,
    help="Ask on this terminal instead of opening one (what the opened terminal runs).",
)
@click.option(
    "--into",
    metavar="DIR",
    help="Where the fork's code goes: a new folder under DIR (default: ~/baton-forks).",
)
@json_option
@pass_ctx
def open_link(
    ctx: Context, link: str, terminal: str | None, here: bool, into: str | None, as_json: bool
) -> None:
    """Open a baton://fork?url=SHARE_URL link: a terminal that says what will happen, asks,
    then runs `baton fork URL --restore` and `baton chat` in the fork's folder.

    Example: baton open-handler open 'baton://fork?url=https%3A%2F%2Fbaton.example.com%2Fshare%2F3q2-7wEr9aTz_Rk1mC0x4Ab'
    """
    url = fork_link_target(link)  # a bad link is refused before anything opens
    if not here:
        argv = [*terminal_argv(terminal or ctx.settings.terminal), *baton_argv(), "open-handler", "open", "--here", link]
        if into:
            argv[-1:-1] = ["--into", into]
        try:
            subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise InvalidInput(f"cannot open the terminal {argv[0]}: {exc.strerror}") from None
        if as_json:
            print_json({"url": url, "terminal": argv})
        return
    from baton.core.errors import BatonError

    try:
        parent = Path(into).expanduser() if into else Path.home() / "baton-forks"
        _confirm_and_fork(ctx, url, parent, as_json)
    except BatonError as exc:
        if sys.stdin.isatty():  # a terminal opened for this closes when we exit: keep it
            click.echo(f"error: {exc.message}", err=True)
            click.prompt("Press Enter to close", default="", show_default=False)
            sys.exit(1)
        raise


def _confirm_and_fork(ctx: Context, url: str, parent: Path, as_json: bool) -> None:
    """Say what will happen, ask, fork and restore, then chat (on a terminal) or say how.
    With --json the talk goes to stderr and stdout gets one object: what was done."""
    from baton.cli.forks import fork_into_mine
    from baton.cli.snapshots import restore_into
    from baton.client import Client
    from baton.core.shares import share_id_from

    origin, share_id = url.rsplit("/share/", 1)
    reader = Client(origin, None, timeout=30)
    try:
        share = reader.public_share(share_id_from(url))
    finally:
        reader.close()
    where = f"your account on {ctx.remote['url']}" if ctx.remote else "your local baton store"
    who = share.shared_by.get("display_name") or share.shared_by.get("handle") or "someone"
    talk = as_json  # with --json, everything but the result goes to stderr
    echo(f"A link asks to fork {url}", err=talk)
    echo(f"  “{share.title or share_id}”, shared by {who}: {share.published}", err=talk)
    steps = f"It will be forked into {where}"
    if share.git:
        steps += f", its code restored into a new folder under {parent}"
    echo(steps + ", and baton chat started there. Nothing runs before you say yes.", err=talk)
    echo(f"  baton fork {url}" + (" --restore" if share.git else ""), err=talk)
    if not click.confirm("Fork it?", default=False, err=talk):
        echo("nothing done", err=talk)
        if as_json:
            print_json({"url": url, "forked": None, "path": None})
        return
    session = fork_into_mine(ctx, url)
    folder = None
    if session.git:
        parent.mkdir(parents=True, exist_ok=True)
        os.chdir(parent)
        folder = restore_into(ctx, session.id, None, None, as_json)["path"]
    if as_json:
        print_json({"url": url, "forked": session.id, "path": folder})
        return
    echo(f"forked into {session.id}" + (f"; the code is in {folder}" if folder else ""))
    chat = [*baton_argv(), "chat", "-s", session.id]
    if sys.stdin.isatty() and sys.stdout.isatty():
        if folder:
            os.chdir(folder)
        os.execv(chat[0], chat)
    cd = f"cd {shlex.quote(folder)} && " if folder else ""
    echo(f"continue it with: {cd}baton chat -s {session.id}")


COMMANDS = [open_handler]

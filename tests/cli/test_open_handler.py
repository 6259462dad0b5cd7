"""`baton open-handler`: baton:// links from the desktop. `install` registers the scheme with
xdg-utils, `xdg-open baton://fork?url=…` then opens a terminal (a stub here, that records what
it was asked to run), and that command asks before it forks the share with its code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest

from tests.fixtures.servers import start_serve, stop
from tests.fixtures.services import unavailable
from tests.helpers import run_baton, run_json

SHARE = "https://baton.example.com/share/3q2-7wEr9aTz_Rk1mC0x4Ab"


@pytest.fixture
def desktop(tmp_path: Path) -> dict[str, str]:
    """XDG folders of a desktop of our own, a display name (xdg-open only follows scheme
    handlers with one) and a stub terminal that records the command it is given."""
    if shutil.which("xdg-open") is None or shutil.which("xdg-mime") is None:
        unavailable("xdg-utils is not installed (apt install xdg-utils)")
    record = tmp_path / "terminal.log"
    stub = tmp_path / "stub-terminal"
    stub.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {record}\n")
    stub.chmod(0o755)
    return {
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_CURRENT_DESKTOP": "",
        "DISPLAY": ":99",
        "BATON_TERMINAL": str(stub),
        "RECORD": str(record),
    }


def link(url: str) -> str:
    return "baton://fork?url=" + quote(url, safe="")


def recorded(env: dict[str, str]) -> list[str]:
    path = Path(env["RECORD"])
    for _ in range(100):  # the handler starts the terminal and returns
        if path.exists() and path.read_text().endswith("\n"):
            return path.read_text().splitlines()
        time.sleep(0.05)
    return []


def test_install_registers_the_scheme_and_remove_undoes_it(
    desktop: dict[str, str], baton_home: Path
) -> None:
    done = run_json("open-handler", "install", home=baton_home, env=desktop)
    path = Path(desktop["XDG_DATA_HOME"]) / "applications" / "baton-open-handler.desktop"
    assert done == {"desktop_file": str(path), "scheme": "baton", "mime": "x-scheme-handler/baton"}
    assert path.read_text() == (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=baton links\n"
        "Comment=Fork a shared baton session from a baton:// link, after asking\n"
        f"Exec={sys.executable} -m baton open-handler open %u\n"
        "MimeType=x-scheme-handler/baton;\n"
        "NoDisplay=true\n"
        "Terminal=false\n"
    )
    env = {**os.environ, **desktop}
    query = ["xdg-mime", "query", "default", "x-scheme-handler/baton"]
    default = subprocess.run(query, env=env, capture_output=True, text=True, check=True)
    assert default.stdout.strip() == "baton-open-handler.desktop"
    assert run_json("open-handler", "remove", home=baton_home, env=desktop)["removed"] is True
    assert not path.exists()
    default = subprocess.run(query, env=env, capture_output=True, text=True, check=True)
    assert default.stdout.strip() == ""
    again = run_baton("open-handler", "remove", home=baton_home, env=desktop)
    assert again.stdout == "nothing to remove\n"


def test_xdg_open_of_a_link_opens_a_terminal_that_will_ask(
    desktop: dict[str, str], baton_home: Path
) -> None:
    assert run_baton("open-handler", "install", home=baton_home, env=desktop).returncode == 0
    env = {**os.environ, **desktop, "BATON_HOME": str(baton_home)}
    opened = subprocess.run(
        ["xdg-open", link(SHARE)], env=env, capture_output=True, text=True, timeout=60
    )
    assert opened.returncode == 0, opened.stderr
    assert recorded(desktop) == [
        sys.executable, "-m", "baton", "open-handler", "open", "--here", link(SHARE),
    ]  # fmt: skip
    Path(desktop["RECORD"]).unlink()
    launched = run_json("open-handler", "open", link(SHARE), home=baton_home, env=desktop)
    assert launched == {"url": SHARE, "terminal": [desktop["BATON_TERMINAL"], *recorded(desktop)]}


def test_bad_links_are_refused_before_a_terminal_opens(
    desktop: dict[str, str], baton_home: Path
) -> None:
    cases = {
        link("http://evil.example/share/3q2-7wEr9aTz_Rk1mC0x4Ab"): (
            "error: refused http://evil.example/share/3q2-7wEr9aTz_Rk1mC0x4Ab: not https "
            "(plain http only for this machine)"
        ),
        link("https://me:pw@baton.example.com/share/3q2-7wEr9aTz_Rk1mC0x4Ab"): (
            "error: refused a share URL with a user name or password in it"
        ),
        link("https://baton.example.com/sessions/ses_01"): (
            "error: refused https://baton.example.com/sessions/ses_01: not a share URL "
            "(https://HOST/share/ID)"
        ),
        link("file:///etc/passwd"): (
            "error: refused 'file:///etc/passwd': a share URL is https://HOST/share/ID"
        ),
        "baton://fork": "error: the link names no share (baton://fork?url=SHARE_URL)",
        "baton://run?cmd=rm": (
            "error: 'baton://run?cmd=rm' is not a baton link (baton://fork?url=SHARE_URL)"
        ),
    }
    for value, message in cases.items():
        done = run_baton("open-handler", "open", value, home=baton_home, env=desktop)
        assert (done.returncode, done.stderr) == (2, message + "\n"), value
    assert not Path(desktop["RECORD"]).exists()


@pytest.mark.slow
def test_the_terminal_asks_then_forks_with_the_code(
    dirty_repo: Path, tmp_path: Path, desktop: dict[str, str]
) -> None:
    served = start_serve(tmp_path / "server-home")
    try:
        owner = {"BATON_USER": "owner"}
        sid = run_json(
            "sessions", "new", "--repo", str(dirty_repo), "--title", "Fix login",
            home=served.home, env=owner,
        )["id"]  # fmt: skip
        share = run_json("share", sid, home=served.home, env=owner)
        url = f"{served.url}/share/{share['id']}"
        visitor = tmp_path / "visitor"
        forks = tmp_path / "forks"
        command = ["open-handler", "open", "--here", "--into", str(forks), link(url)]
        said_no = run_baton(*command, home=visitor, input=b"n\n")
        assert said_no.returncode == 0, said_no.stderr
        assert said_no.stdout == (
            f"A link asks to fork {url}\n"
            f"  “Fix login”, shared by owner: {share['published']}\n"
            f"It will be forked into your local baton store, its code restored into a new "
            f"folder under {forks}, and baton chat started there. Nothing runs before you say "
            "yes.\n"
            f"  baton fork {url} --restore\n"
            "Fork it? [y/N]: nothing done\n"
        )
        assert run_json("sessions", "list", home=visitor) == []
        said_yes = run_baton(*command, home=visitor, input=b"y\n")
        assert said_yes.returncode == 0, said_yes.stderr
        forked = run_json("sessions", "list", home=visitor)
        assert [s["forked_from"]["share"] for s in forked] == [share["id"]]
        folder = next(forks.iterdir())
        assert (folder / "notes.txt").read_text() == "untracked notes\n"
        again = run_baton(*command, "--json", home=visitor, input=b"y\n")
        assert again.returncode == 0, again.stderr
        second = orjson.loads(again.stdout)
        assert second["url"] == url and second["forked"].startswith("ses_")
        assert (Path(second["path"]) / "notes.txt").read_text() == "untracked notes\n"
        assert "Fork it? [y/N]: " in again.stderr
        assert said_yes.stdout.endswith(
            f"forked into {forked[0]['id']}; the code is in {folder}\n"
            f"continue it with: cd {folder} && baton chat -s {forked[0]['id']}\n"
        )
    finally:
        stop(served)

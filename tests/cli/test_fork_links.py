"""What a visitor of a share page does with the command it shows, `baton --fork SHARE_URL`:
it works on any machine with baton installed, on a fresh store or logged in to another server,
and brings the code along (`baton fork URL --restore DIR`)."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest

from tests.fixtures.git import git
from tests.fixtures.servers import start_serve, stop
from tests.helpers import run_baton, run_json

OWNER = {"BATON_USER": "owner"}


@pytest.mark.slow
def test_a_share_url_forks_with_its_code_anywhere(dirty_repo: Path, tmp_path: Path) -> None:
    served = start_serve(tmp_path / "server-home")
    other = start_serve(tmp_path / "other-home")
    try:
        sid = run_json(
            "sessions", "new", "--repo", str(dirty_repo), "--title", "Fix login",
            home=served.home, env=OWNER,
        )["id"]  # fmt: skip
        run_json(
            "sessions", "append", sid, "--role", "user", "--text", "why?",
            home=served.home, env=OWNER,
        )  # fmt: skip
        share = run_json("share", sid, home=served.home, env=OWNER)
        url = f"{served.url}/share/{share['id']}"
        sharer = run_baton("login", served.url, "--token", served.token, home=tmp_path / "sharer")
        assert sharer.returncode == 0, sharer.stderr
        public = run_json("share", sid, home=tmp_path / "sharer")  # through the server
        assert public["command"] == f"baton --fork {public['url']}"
        assert public["url"] == f"{served.url}/share/{public['id']}"
        wheel = f"baton-{version('baton')}-py3-none-any.whl"  # the server's own, not PyPI's
        assert public["install"] == f"pipx install {served.url}/install/{wheel}"

        # a fresh machine: no store, not logged in
        fresh = tmp_path / "fresh"
        target = tmp_path / "code"
        forked = run_json("fork", url, "--restore", str(target), home=fresh, cwd=tmp_path)
        assert forked["forked_from"]["share"] == share["id"] and forked["title"] == "Fix login"
        assert forked["restore"]["path"] == str(target)
        assert forked["restore"]["bundle_applied"] and forked["restore"]["patch_applied"]
        assert (target / "notes.txt").read_text() == "untracked notes\n"
        assert (target / "src" / "feature.py").read_text() == "FEATURE = 2\n"  # unpushed commits
        assert git(target, "rev-parse", "--abbrev-ref", "HEAD") == f"baton/{forked['id']}"
        top = run_baton("--fork", url, home=fresh)
        assert top.returncode == 0, top.stderr
        assert top.stdout.startswith("ses_")
        assert top.stderr == f"continue it with: baton chat -s {top.stdout.strip()}\n"

        # logged in to another server: the fork goes there, its code too
        elsewhere = tmp_path / "elsewhere"
        assert run_baton("login", other.url, "--token", other.token, home=elsewhere).returncode == 0
        target2 = tmp_path / "code2"
        forked2 = run_json("fork", url, "--restore", str(target2), home=elsewhere, cwd=tmp_path)
        assert (target2 / "notes.txt").read_text() == "untracked notes\n"
        on_other = run_json("sessions", "show", forked2["id"], home=elsewhere)
        assert on_other["git"]["patch"] == share["git"]["patch"]
        restored = tmp_path / "code3"  # the code is on the other server now, not only here
        done = run_baton("restore", forked2["id"], "--path", str(restored), home=elsewhere)
        assert done.returncode == 0, done.stderr
        assert (restored / "notes.txt").read_text() == "untracked notes\n"

        # the id alone means nothing on another machine: it says what to use instead
        alone = run_baton("fork", share["id"], home=tmp_path / "fresh2")
        assert alone.returncode == 1
        assert alone.stderr == f"error: no share {share['id']}\n"
    finally:
        stop(served)
        stop(other)

"""A share publishes no secret: planted in every place a session holds one (title, task,
metadata, message text, tool input keys and values, a tool output over 64 KiB, the git
remote URL and branch, the work-tree patch, a file committed then deleted, a commit message),
none of them can be read back through anything a share exposes after `--redact`."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from baton import gitstate
from baton.server import create_app
from tests.fixtures.servers import SECRET, Live, ThreadServer, make_service, person
from tests.helpers import text_message, tool_turn


def planted(label: str) -> str:
    """A secret the scanner knows (an OpenAI-style key), distinct for each place."""
    return "sk-proj-" + hashlib.sha256(label.encode()).hexdigest()[:40]


PLACES = [
    "title",
    "task",
    "metadata value",
    "metadata key",
    "message text",
    "tool input value",
    "tool input key",
    "large tool output",
    "remote url",
    "branch",
    "patch",
    "deleted file",
    "commit message",
]
S = {place: planted(place) for place in PLACES}
BIG = 70 * 1024  # over the 64 KiB a part keeps inline


def git(cwd: Path, *args: str, env: dict[str, str]) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, check=True)
    return done.stdout.decode().strip()


def make_repo(folder: Path, env: dict[str, str]) -> Path:
    """No remote to push to (so every commit goes in the bundle): a secret committed then
    deleted, one in a commit message, one in the branch name, one in the remote URL, and an
    uncommitted change with another."""
    repo = folder / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", f"wip-{S['branch']}", env=env)
    (repo / "README.md").write_text("# app\n")
    git(repo, "add", "-A", env=env)
    git(repo, "commit", "-q", "-m", "first", env=env)
    (repo / "deploy.env").write_text(f"OPENAI_API_KEY={S['deleted file']}\n")
    git(repo, "add", "-A", env=env)
    git(repo, "commit", "-q", "-m", "deploy settings", env=env)
    git(repo, "rm", "-q", "deploy.env", env=env)
    git(
        repo, "commit", "-q", "-m", f"oops, remove the key\n\nit was {S['commit message']}", env=env
    )
    url = f"https://git.example.com/acme/app.git?access={S['remote url']}"
    git(repo, "remote", "add", "origin", url, env=env)
    (repo / "settings.py").write_text(f"KEY = '{S['patch']}'\n")
    return repo


@dataclass
class World:
    live: Live
    session: dict[str, Any]
    share: dict[str, Any]
    session_blobs: set[str] = field(default_factory=set)
    commits: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("surfaces")
    config = folder / "gitconfig"
    config.write_text("[user]\n\tname = Test\n\temail = test@example.com\n")
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": str(config),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Test",
        "GIT_COMMITTER_NAME": "Test",
    }
    repo = make_repo(folder, env)
    service = make_service(folder / "server")
    alice = person(service, "alice", "Alice Example")
    bob = person(service, "bob", "Bob Other")
    app = create_app(service, secret=SECRET, login_rate=1000, share_rate=100_000)
    with ThreadServer(app) as url, pytest.MonkeyPatch.context() as mp:
        service.base_url = url
        live = Live(url, service, alice, bob)
        for name in ("GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM"):
            mp.setenv(name, env[name])
        with live.client(alice) as http:

            def put(data: bytes) -> str:
                sha = hashlib.sha256(data).hexdigest()
                assert http.post(f"/api/blobs/{sha}", content=data).status_code == 201
                return sha

            snapshot = gitstate.capture(repo, put)
            assert snapshot is not None
            made = http.post(
                "/api/sessions",
                json={
                    "title": f"deploy with {S['title']}",
                    "task": f"use {S['task']} to deploy",
                    "metadata": {"env": f"key {S['metadata value']}", S["metadata key"]: 1},
                    "git": snapshot,
                },
            ).json()
            big = "log line\n" * (BIG // 18) + f"found {S['large tool output']} here\n" + "x" * BIG
            turn = tool_turn(
                "c1", "bash", {"cmd": S["tool input value"], S["tool input key"]: 1}, big
            )
            batch = [text_message("user", f"my key is {S['message text']}"), *turn]
            appended = http.post(f"/api/sessions/{made['id']}/messages", json={"messages": batch})
            assert appended.status_code == 201, appended.text
            share = http.post(f"/api/sessions/{made['id']}/shares", json={"mode": "redact"})
            assert share.status_code == 201, share.text
            raw = http.get(f"/api/sessions/{made['id']}/messages").json()["messages"]
            blobs = {p["sha256"] for m in raw for p in m["parts"] if p["type"] == "blob_ref"}
            blobs |= {snapshot["patch"]["sha256"], snapshot["bundle"]["sha256"]}
            commits = git(repo, "rev-list", "--reverse", "HEAD", env=env).split()
            session = http.get(f"/api/sessions/{made['id']}").json()
        yield World(live, session, share.json(), blobs, commits)
    service.store.close()


def history(bundle: bytes) -> bytes:
    """What `git clone` of a bundle and `git log -p` show (its pack is compressed)."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "published.bundle"
        path.write_bytes(bundle)
        subprocess.run(["git", "clone", "-q", str(path), f"{scratch}/clone"], check=True)
        return subprocess.run(
            ["git", "log", "-p", "--all"], cwd=f"{scratch}/clone", capture_output=True, check=True
        ).stdout


def surfaces(world: World) -> dict[str, bytes]:
    """Everything anyone can read of the share, and of a fork of it (as its new owner)."""
    share_id = world.share["id"]
    seen: dict[str, bytes] = {}
    with world.live.client() as anyone:

        def get(name: str, path: str, **params: Any) -> httpx.Response:
            response = anyone.get(path, params=params)
            seen[name] = response.content
            return response

        assert get("page", f"/share/{share_id}").status_code == 200
        assert get("page, all", f"/share/{share_id}", all=1).status_code == 200
        public = get("share", f"/api/shares/{share_id}").json()
        messages = get("messages", f"/api/shares/{share_id}/messages").json()["messages"]
        get("messages full", f"/api/shares/{share_id}/messages", full="true")
        refs = {p["sha256"] for m in messages for p in m["parts"] if p["type"] == "blob_ref"}
        for entry in ("patch", "bundle"):
            if isinstance((public["git"] or {}).get(entry), dict):
                refs.add(public["git"][entry]["sha256"])
        for sha in sorted(refs | world.session_blobs):
            response = get(f"blob {sha[:12]}", f"/api/blobs/{sha}", share=share_id)
            if response.content.startswith(b"# v2 git bundle"):
                seen[f"bundle {sha[:12]}, git log -p"] = history(response.content)
            if response.status_code == 200 and sha in world.session_blobs - refs:
                pytest.fail(f"the session's own blob {sha} is readable through the share")
    with world.live.client(world.live.bob) as bob:
        fork = bob.post(f"/api/shares/{share_id}/fork").json()
        for fmt in ("html", "json", "markdown"):
            exported = bob.get(f"/api/sessions/{fork['id']}/export", params={"format": fmt})
            assert exported.status_code == 200
            seen[f"fork export {fmt}"] = exported.content
        seen["fork"] = bob.get(f"/api/sessions/{fork['id']}").content
    return seen


@pytest.fixture(scope="module")
def published(world: World) -> dict[str, bytes]:
    return surfaces(world)


@pytest.mark.parametrize("place", PLACES)
def test_no_surface_of_a_redacted_share_holds_the_secret(
    place: str, world: World, published: dict[str, bytes]
) -> None:
    secret = S[place].encode()
    # the secret was really there, and found
    assert any(f["excerpt"].startswith(S[place][:4]) for f in world.share["redacted"])
    leaks = [name for name, body in published.items() if secret in body]
    assert leaks == []
    # nor a recognisable piece of it (a secret cut at a line or a JSON escape)
    assert [n for n, body in published.items() if secret[8:30] in body] == []


def test_a_redacted_share_says_what_it_publishes_and_what_it_left_out(world: World) -> None:
    git_public = world.share["git"]
    assert git_public["bundle"] is None and git_public["patch"] is None
    assert git_public["bundle_dropped"] == (
        "the bundle of 3 commit(s) held 2 secret(s), so it is not shared"
    )
    assert git_public["patch_dropped"] == "the patch held 1 secret(s), so it is not shared"
    assert world.share["published"] == "3 messages, commit " + world.commits[-1][:7] + (
        " only, no code changes"
    )
    assert world.share["withheld"] == [
        git_public["bundle_dropped"],
        git_public["patch_dropped"],
    ]
    wheres = {f["where"] for f in world.share["redacted"]}
    first, second, third = (c[:7] for c in world.commits)
    assert {
        f"git bundle: commit {second} (deploy.env)",
        f"git bundle: commit {third} (message)",
    } <= wheres
    assert first not in str(wheres)
    with world.live.client() as anyone:
        page = anyone.get(f"/share/{world.share['id']}").text
    assert "Published: 3 messages, commit " in page
    assert "Not published: the bundle of 3 commit(s) held 2 secret(s)" in page


def test_a_large_output_is_published_redacted_not_left_out(
    world: World, published: dict[str, bytes]
) -> None:
    with world.live.client() as anyone:
        full = anyone.get(
            f"/api/shares/{world.share['id']}/messages", params={"full": "true"}
        ).json()
    output = full["messages"][-1]["parts"][0]["output"]
    assert output.count("[REDACTED:OpenAI Token]") == 1
    assert output.startswith("log line\n") and output.endswith("x" * 100)
    assert len(output) > BIG


def test_the_session_itself_keeps_everything(world: World) -> None:
    """Redaction makes copies: the owner's session is unchanged."""
    with world.live.client(world.live.alice) as alice:
        session = alice.get(f"/api/sessions/{world.session['id']}").json()
    assert S["title"] in session["title"]
    assert session["git"]["bundle"]["commits"] == 3
    assert re.fullmatch(r"[0-9a-f]{64}", session["git"]["patch"]["sha256"])


KEY = planted("one")


def session_with_code(live: Live, folder: Path, *, dirty: bool = True) -> tuple[str, Any, str]:
    """A session of alice's recorded in a repository with no remote: a key committed then
    deleted (so only the bundle holds it), and an uncommitted file. (session id, its git
    snapshot, the commit that added the key)."""
    env = dict(os.environ)
    repo = folder / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main", env=env)
    (repo / "README.md").write_text("# app\n")
    git(repo, "add", "-A", env=env)
    git(repo, "commit", "-q", "-m", "first", env=env)
    (repo / "deploy.env").write_text(f"OPENAI_API_KEY={KEY}\n")
    git(repo, "add", "-A", env=env)
    git(repo, "commit", "-q", "-m", "deploy settings", env=env)
    added = git(repo, "rev-parse", "HEAD", env=env)
    git(repo, "rm", "-q", "deploy.env", env=env)
    git(repo, "commit", "-q", "-m", "remove the key", env=env)
    if dirty:
        (repo / "notes.txt").write_text("todo\n")
    with live.client(live.alice) as http:

        def put(data: bytes) -> str:
            sha = hashlib.sha256(data).hexdigest()
            assert http.post(f"/api/blobs/{sha}", content=data).status_code == 201
            return sha

        snapshot = gitstate.capture(repo, put)
        made = http.post("/api/sessions", json={"title": "deploy", "git": snapshot}).json()
    return made["id"], snapshot, added


def test_a_secret_in_the_bundle_blocks_a_default_share_and_says_where(
    live: Live, tmp_path: Path
) -> None:
    session_id, snapshot, added = session_with_code(live, tmp_path, dirty=False)
    with live.client(live.alice) as http:
        refused = http.post(f"/api/sessions/{session_id}/shares", json={})
        scan = http.get(f"/api/sessions/{session_id}/scan").json()
        without_code = http.get(f"/api/sessions/{session_id}/scan", params={"code": "false"})
        listed = http.get("/api/shares").json()
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["message"] == (
        "this session holds 1 secret(s); nothing was shared. Remove them, or share with "
        "--redact (or --allow-secrets, or --no-code)"
    )
    expected = {
        "where": f"git bundle: commit {added[:7]} (deploy.env)",
        "kind": "OpenAI Token",
        "excerpt": f"{KEY[:4]}…{KEY[-2:]} (48 chars)",
    }
    assert error["findings"] == [expected]
    assert scan["findings"] == [expected]
    assert without_code.json() == {"findings": []}
    assert listed == []
    assert snapshot["bundle"]["commits"] == 3


def test_no_code_shares_neither_patch_nor_bundle(live: Live, tmp_path: Path) -> None:
    session_id, snapshot, _ = session_with_code(live, tmp_path)
    with live.client(live.alice) as http:
        made = http.post(f"/api/sessions/{session_id}/shares", json={"code": False})
    assert made.status_code == 201, made.text
    share = made.json()
    assert share["published"] == "0 messages, no code"
    assert share["withheld"] == [] and share["redacted"] == []
    g = share["git"]
    assert (g["patch"], g["bundle"], g["no_code"]) == (None, None, True)
    assert g["head"] == snapshot["head"]  # the commit it was on is still said
    with live.client() as anyone:
        for entry in ("patch", "bundle"):
            sha = snapshot[entry]["sha256"]
            found = anyone.get(f"/api/blobs/{sha}", params={"share": share["id"]})
            assert found.status_code == 404, entry
            assert found.json()["error"]["message"] == f"no blob {sha}"
        page = anyone.get(f"/share/{share['id']}").text
    assert "Published: 0 messages, no code" in page


def test_redact_drops_the_bundle_and_keeps_a_clean_patch(live: Live, tmp_path: Path) -> None:
    session_id, snapshot, added = session_with_code(live, tmp_path)
    with live.client(live.alice) as http:
        share = http.post(f"/api/sessions/{session_id}/shares", json={"mode": "redact"}).json()
    g = share["git"]
    assert g["bundle"] is None and g["patch"] == snapshot["patch"]
    assert share["withheld"] == ["the bundle of 3 commit(s) held 1 secret(s), so it is not shared"]
    assert share["published"] == "0 messages, uncommitted changes (1 file)"
    assert [f["where"] for f in share["redacted"]] == [
        f"git bundle: commit {added[:7]} (deploy.env)"
    ]
    with live.client() as anyone:
        bundle = anyone.get(
            f"/api/blobs/{snapshot['bundle']['sha256']}", params={"share": share["id"]}
        )
        patch = anyone.get(
            f"/api/blobs/{snapshot['patch']['sha256']}", params={"share": share["id"]}
        )
    assert bundle.status_code == 404 and patch.status_code == 200
    assert b"+todo" in patch.content


def test_the_share_form_says_what_is_published_and_can_leave_the_code_out(
    live: Live, tmp_path: Path
) -> None:
    from tests.server.test_api import csrf_of, login

    session_id, _, added = session_with_code(live, tmp_path)
    with live.client(follow_redirects=False) as browser:
        login(browser, token=live.alice.token)
        form = browser.get(f"/sessions/{session_id}/share").text
        assert (
            '<p id="published">Published: 0 messages, 3 commits not on any remote, '
            "uncommitted changes (1 file)</p>"
        ) in form
        assert f"<td>git bundle: commit {added[:7]} (deploy.env)</td>" in form
        assert 'name="no_code"' in form
        done = browser.post(
            f"/sessions/{session_id}/share",
            data={"csrf": csrf_of(browser, f"/sessions/{session_id}/share"), "no_code": "1"},
        )
        assert done.status_code == 303, done.text
        shown = browser.get(done.headers["location"]).text
        assert '<span id="new-share-published">Published: 0 messages, no code</span>' in shown
    shares = live.service.shares(live.alice.id, session_id)
    assert [s.published for s in shares] == ["0 messages, no code"]

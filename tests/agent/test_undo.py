"""`/undo` after `baton chat -c`: a turn writes files in one process, a later chat process
(local store, or a server after `baton login`) puts them back from what the session recorded
and records it. What the session keeps for it (the files' content before the turn) is
scanned like the rest: a share is refused, `--redact` publishes none of it, and nothing a
share exposes (page, API, blobs, a fork and its exports) holds the secret."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.fixtures.git import commit_all, git
from tests.fixtures.model import FakeModel, call, model_env
from tests.fixtures.servers import Served, start_serve, stop
from tests.helpers import run_baton, run_json

UNDONE = (
    "undo of the last turn: restored a.txt; deleted new.txt (created by the turn); "
    "left b.txt as is (changed since the turn wrote it)"
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "a.txt").write_text("a0\n")
    (path / "b.txt").write_text("b0\n")
    commit_all(path, "first")
    return path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    running = start_serve(tmp_path / "server-home")
    yield running
    stop(running)


def client_home(tmp_path: Path, served: Served | None) -> Path:
    """The client's BATON_HOME: its own store, or logged in to a `baton serve`."""
    home = tmp_path / "client"
    if served is not None:
        assert run_baton("login", served.url, "--token", served.token, home=home).returncode == 0
    return home


@pytest.mark.parametrize("where", ["local", "remote"])
def test_undo_in_a_later_chat_process_restores_the_last_turn_and_records_it(
    where: str, fake_model: FakeModel, repo: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    home = client_home(tmp_path, request.getfixturevalue("served") if where == "remote" else None)
    env = model_env(fake_model)
    fake_model.reply("", call("c1", "write_file", path="a.txt", content="first\n"))
    fake_model.reply("first done")
    fake_model.reply(
        "",
        call("c2", "edit_file", path="a.txt", old_text="first", new_text="second"),
        call("c3", "write_file", path="new.txt", content="n\n"),
        call("c4", "write_file", path="b.txt", content="b1\n"),
    )
    fake_model.reply("second done")
    one = run_baton("chat", "--yes", input=b"one\ntwo\n", home=home, env=env, cwd=repo)
    assert one.returncode == 0, one.stderr
    assert (repo / "a.txt").read_text() == "second\n" and (repo / "new.txt").exists()
    (repo / "b.txt").write_text("edited by hand\n")  # after the turn: left alone by /undo

    two = run_baton("chat", "-c", input=b"/undo\n/undo\n", home=home, env=env, cwd=repo)
    assert two.returncode == 0, two.stderr
    lines = two.stdout.splitlines()
    assert UNDONE in lines
    assert "nothing to undo: the last turn was undone already" in lines
    assert (repo / "a.txt").read_text() == "first\n"  # as the last turn found it
    assert not (repo / "new.txt").exists()
    assert (repo / "b.txt").read_text() == "edited by hand\n"
    assert len(fake_model.requests) == 4  # /undo asks the model nothing

    (session,) = run_json("sessions", "list", home=home)
    shown = run_json("sessions", "show", session["id"], home=home)
    last = shown["messages"][-1]
    assert last["role"] == "system"
    assert last["parts"] == [
        {
            "type": "text",
            "text": f"[{UNDONE}]",
            "undo": {
                "restored": ["a.txt"],
                "deleted": ["new.txt"],
                "skipped": ["b.txt"],
                "not_kept": [],
            },
        }
    ]
    assert shown["message_count"] == 11  # turns of 4 and 6 messages, and the undo
    assert git(repo, "status", "--porcelain") == "M a.txt\n M b.txt".lstrip()
    assert shown["git"]["patch"]["files"] == 2  # the state of the code after the undo
    if where == "remote":
        assert not (home / "baton.db").exists()


def planted(label: str) -> str:
    """A secret the scanner knows (an OpenAI-style key)."""
    return "sk-proj-" + hashlib.sha256(label.encode()).hexdigest()[:40]


def test_a_share_never_publishes_the_secret_of_a_file_the_agent_changed(
    served: Served, fake_model: FakeModel, repo: Path, tmp_path: Path
) -> None:
    """A secret in files the agent edits far from it (so no diff shows it): only the content
    kept for /undo holds it, inline (a small file) and as a blob (over 64 KiB)."""
    small, large = planted("small"), planted("large")
    (repo / ".gitignore").write_text(".env\nsettings.txt\n")  # neither patch nor bundle has them
    settings = f"TOKEN={small}\n" + "".join(f"option{i} = {i}\n" for i in range(40)) + "DEBUG=1\n"
    (repo / "settings.txt").write_text(settings)
    env_file = f"OPENAI_API_KEY={large}\n" + "# padding\n" * 8000 + "MODE=dev\n"
    (repo / ".env").write_text(env_file)
    assert len(env_file) > 64 * 1024
    home = client_home(tmp_path, served)
    env = model_env(fake_model)
    fake_model.reply(
        "",
        call("c1", "edit_file", path="settings.txt", old_text="DEBUG=1", new_text="DEBUG=0"),
        call("c2", "edit_file", path=".env", old_text="MODE=dev", new_text="MODE=prod"),
    )
    fake_model.reply("switched")
    one = run_baton("chat", "--yes", input=b"switch to prod\n", home=home, env=env, cwd=repo)
    assert one.returncode == 0, one.stderr
    (session,) = run_json("sessions", "list", home=home)
    sid = session["id"]
    raw = run_json("sessions", "show", sid, home=home)["messages"]
    kept = [p for m in raw for p in m["parts"] if p.get("before_turn")]
    assert [(p["type"], p["path"]) for p in kept] == [
        ("file", "settings.txt"),
        ("blob_ref", ".env"),
    ]
    diffs = [p["metadata"]["diff"] for m in raw for p in m["parts"] if p["type"] == "tool_result"]
    assert len(diffs) == 2 and not any(s in d for s in (small, large) for d in diffs)

    blocked = run_baton("share", sid, "--json", home=home)
    assert blocked.returncode == 1
    error = orjson.loads(blocked.stdout)["error"]
    assert error["code"] == "secrets_found"
    assert sorted((f["where"], f["kind"]) for f in error["findings"]) == [
        ("message 3, file settings.txt", "OpenAI Token"),
        ("message 4, file .env", "OpenAI Token"),
    ]
    assert run_json("shares", home=home) == []

    shared = run_json("share", sid, "--redact", home=home)
    share_id = shared["id"]
    seen = surfaces(served, share_id, {kept[1]["sha256"]})
    for name, body in seen.items():
        assert small.encode() not in body, name
        assert large.encode() not in body, name
    messages = orjson.loads(seen["messages full"])["messages"]
    published = [p for m in messages for p in m["parts"] if p.get("before_turn")]
    assert [p["path"] for p in published] == ["settings.txt", ".env"]
    assert published[0]["data"].startswith("TOKEN=[REDACTED:OpenAI Token]\n")
    assert published[1]["data"].startswith("OPENAI_API_KEY=[REDACTED:OpenAI Token]\n")

    # the owner's session keeps what it recorded: /undo still puts the files back exactly
    two = run_baton("chat", "-c", input=b"/undo\n", home=home, env=env, cwd=repo)
    assert two.returncode == 0, two.stderr
    assert "undo of the last turn: restored settings.txt, .env" in two.stdout.splitlines()
    assert (repo / "settings.txt").read_text() == settings
    assert (repo / ".env").read_text() == env_file


def surfaces(served: Served, share_id: str, own_blobs: set[str]) -> dict[str, bytes]:
    """Everything anyone can read of the share, and of a fork of it and its exports; a blob
    of the session's own that the share does not reference is not readable through it."""
    seen: dict[str, bytes] = {}
    with httpx.Client(base_url=served.url, timeout=30) as anyone:

        def get(name: str, path: str, **params: Any) -> httpx.Response:
            response = anyone.get(path, params=params)
            seen[name] = response.content
            return response

        assert get("page", f"/share/{share_id}").status_code == 200
        assert get("page, all", f"/share/{share_id}", all=1).status_code == 200
        assert get("share", f"/api/shares/{share_id}").status_code == 200
        messages = get("messages", f"/api/shares/{share_id}/messages").json()["messages"]
        get("messages full", f"/api/shares/{share_id}/messages", full="true")
        refs = {p["sha256"] for m in messages for p in m["parts"] if p["type"] == "blob_ref"}
        assert refs  # the redacted .env, kept as a blob again
        for sha in sorted(refs | own_blobs):
            response = get(f"blob {sha[:12]}", f"/api/blobs/{sha}", share=share_id)
            assert response.status_code == (200 if sha in refs else 404), sha
    headers = {"Authorization": f"Bearer {served.token}"}
    with httpx.Client(base_url=served.url, timeout=30, headers=headers) as owner:
        fork = owner.post(f"/api/shares/{share_id}/fork")
        assert fork.status_code == 201, fork.text
        fork_id = fork.json()["id"]
        seen["fork"] = owner.get(f"/api/sessions/{fork_id}").content
        seen["fork messages"] = owner.get(
            f"/api/sessions/{fork_id}/messages", params={"full": "true"}
        ).content
        for fmt in ("html", "json", "markdown", "opencode"):
            exported = owner.get(f"/api/sessions/{fork_id}/export", params={"format": fmt})
            assert exported.status_code == 200, (fmt, exported.text)
            seen[f"fork export {fmt}"] = exported.content
    return seen


def test_undo_pages_show_no_content_kept_for_undo() -> None:
    """The pages and exports say a file's earlier content was kept; they do not print it."""
    from baton.render.html import part_html
    from baton.render.markdown import _part_markdown as part_markdown

    inline = {"type": "file", "path": "a.txt", "before_turn": True, "data": "old text\n"}
    blob = {
        "type": "blob_ref",
        "of": "file",
        "field": "data",
        "path": "big.txt",
        "before_turn": True,
        "sha256": "0" * 64,
        "size": 70000,
        "encoding": "utf-8",
        "preview": "old big text",
    }
    created = {"type": "file", "path": "new.txt", "before_turn": True, "existed": False}
    for part in (inline, blob, created):
        assert "old" not in part_html(part) and "old" not in part_markdown(part)
    assert re.sub(r"<[^>]+>", "", part_html(inline)) == "a.txt before the turn (kept for /undo)"
    assert part_markdown(created) == "*`new.txt` did not exist before the turn (kept for /undo)*"

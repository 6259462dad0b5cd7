"""Workspaces of server runs over real git: bare repositories reached by file:// and by a
path, mirrors, new/warm/cold workspaces, a snapshot with unpushed commits and uncommitted
changes restored, push, idle cleanup."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton import gitstate
from baton.core.errors import InvalidInput
from baton.runs.workspace import COLD, NEW, WARM, GitFailed, Workspaces, url_key
from baton.store.blobs import MemoryBlobStore
from tests.fixtures.git import commit_all, git, tree

SESSION = "ses_01JTESTWORKSPACE0000000000"


@pytest.fixture
def spaces(baton_home: Path) -> Workspaces:
    return Workspaces(baton_home, idle=60)


def snapshot(repo: Path, blobs: MemoryBlobStore) -> dict[str, object]:
    def put(data: bytes) -> str:
        sha = gitstate._sha256(data)
        blobs.put(sha, data)
        return sha

    found = gitstate.capture(repo, put)
    assert found is not None
    return found


def work_tree(root: Path) -> dict[str, tuple[bytes, int]]:
    return {k: v for k, v in tree(root).items() if not k.endswith(".log") and "build" not in k}


@pytest.mark.parametrize("form", ["file", "path"])
def test_a_new_workspace_is_a_clone_on_the_sessions_branch(
    spaces: Workspaces, git_repo: Path, origin: Path, form: str
) -> None:
    url = f"file://{origin}" if form == "file" else str(origin)
    ready = spaces.prepare(SESSION, url)
    assert ready.how == NEW
    assert ready.path == spaces.root / "workspaces" / SESSION
    assert ready.branch == f"baton/{SESSION}"
    assert git(ready.path, "branch", "--show-current") == f"baton/{SESSION}"
    assert git(ready.path, "rev-parse", "HEAD") == git(git_repo, "rev-parse", "HEAD")
    assert git(ready.path, "remote", "get-url", "origin") == url  # the repository, not the mirror
    assert work_tree(ready.path) == work_tree(git_repo)
    assert (spaces.root / "mirrors" / url_key(url) / "HEAD").is_file()
    # its snapshot records where the code comes from
    git_state = snapshot(ready.path, MemoryBlobStore())
    assert git_state["remote_url"] == url and git_state["ahead"] == 0


def test_an_early_workspace_reads_its_first_files_while_it_checks_out(
    spaces: Workspaces, git_repo: Path, origin: Path, tmp_path: Path
) -> None:
    """Prepared early, a new workspace comes back cloned, with the instructions and setup
    files read from the start commit (a symlink in the tree followed, one out of it not);
    `wait()` gives the same work tree as a plain prepare."""
    outside = tmp_path / "server-file.txt"
    outside.write_text("not for the prompt\n")
    (git_repo / "AGENTS.md").write_text("# Rules\nRun the tests.\n")
    (git_repo / "CLAUDE.md").symlink_to(outside)
    (git_repo / ".baton").mkdir()
    (git_repo / ".baton" / "setup.toml").write_text('commands = ["echo hi"]\n')
    (git_repo / ".baton" / "config.toml").symlink_to("../AGENTS.md")
    commit_all(git_repo, "instructions")
    git(git_repo, "push", "-q", "origin", "main")
    ready = spaces.prepare(SESSION, str(origin), early=True)
    assert ready.how == NEW
    assert ready.files == {
        "AGENTS.md": b"# Rules\nRun the tests.\n",
        ".baton/setup.toml": b'commands = ["echo hi"]\n',
        ".baton/config.toml": b"# Rules\nRun the tests.\n",
    }
    ready.wait()
    assert git(ready.path, "branch", "--show-current") == f"baton/{SESSION}"
    assert git(ready.path, "status", "--porcelain") == ""
    assert (ready.path / "AGENTS.md").read_text() == "# Rules\nRun the tests.\n"


def test_a_branch_is_started_from_and_an_unknown_one_is_refused(
    spaces: Workspaces, git_repo: Path, origin: Path
) -> None:
    git(git_repo, "checkout", "-q", "-b", "feature")
    (git_repo / "feature.txt").write_text("feature\n")
    feature = commit_all(git_repo, "feature")
    git(git_repo, "push", "-q", "origin", "feature")
    ready = spaces.prepare(SESSION, str(origin), branch="feature")
    assert git(ready.path, "rev-parse", "HEAD") == feature
    with pytest.raises(InvalidInput, match=r"^branch 'nope' does not exist in "):
        spaces.prepare("ses_other", str(origin), branch="nope")
    assert not (spaces.root / "workspaces" / "ses_other").exists()


def test_the_mirror_follows_the_remote(spaces: Workspaces, git_repo: Path, origin: Path) -> None:
    spaces.prepare(SESSION, str(origin))
    (git_repo / "later.txt").write_text("later\n")
    later = commit_all(git_repo, "later")
    git(git_repo, "push", "-q", "origin", "main")
    ready = spaces.prepare("ses_second", str(origin))
    assert git(ready.path, "rev-parse", "HEAD") == later


def test_cold_resume_restores_unpushed_commits_and_uncommitted_changes(
    spaces: Workspaces, dirty_repo: Path, origin: Path
) -> None:
    blobs = MemoryBlobStore()
    state = snapshot(dirty_repo, blobs)
    assert state["ahead"] == 2 and state["bundle"] and state["patch"]
    ready = spaces.prepare(SESSION, f"file://{origin}", git=state, get_blob=blobs.get)
    assert ready.how == COLD
    assert git(ready.path, "branch", "--show-current") == f"baton/{SESSION}"
    assert git(ready.path, "rev-parse", "HEAD") == state["head"]
    assert work_tree(ready.path) == work_tree(dirty_repo)
    # the workspace says the same as the snapshot (but for where it is)
    again = snapshot(ready.path, blobs)
    assert again["ahead"] == 2 and again["remote_url"] == f"file://{origin}"


def test_warm_reuse_when_the_workspace_holds_the_snapshot(
    spaces: Workspaces, git_repo: Path, origin: Path
) -> None:
    blobs = MemoryBlobStore()
    ready = spaces.prepare(SESSION, str(origin))
    (ready.path / "work.txt").write_text("the agent's work\n")
    state = snapshot(ready.path, blobs)
    marker = ready.path / ".git" / "marker"
    marker.write_text("same clone")
    again = spaces.prepare(SESSION, str(origin), git=state, get_blob=blobs.get)
    assert again.how == WARM and marker.exists()
    # the session moved on elsewhere (another snapshot): made again, cold
    (ready.path / "work.txt").write_text("changed behind the session's back\n")
    cold = spaces.prepare(SESSION, str(origin), git=state, get_blob=blobs.get)
    assert cold.how == COLD and not marker.exists()
    assert (cold.path / "work.txt").read_text() == "the agent's work\n"


def test_push_sends_the_sessions_branch(spaces: Workspaces, git_repo: Path, origin: Path) -> None:
    ready = spaces.prepare(SESSION, str(origin))
    (ready.path / "pushed.txt").write_text("pushed\n")
    head = commit_all(ready.path, "work")
    spaces.push(ready.path, ready.branch, str(origin))
    assert git(origin, "rev-parse", f"refs/heads/baton/{SESSION}") == head


def test_credentials_reach_git_through_askpass_only(
    spaces: Workspaces, git_repo: Path, origin: Path
) -> None:
    env = spaces.env("alice:s3cret-pass")
    assert env["BATON_GIT_PASSWORD"] == "s3cret-pass"
    askpass = env["GIT_ASKPASS"]

    def ask(prompt: str) -> str:
        done = subprocess.run([askpass, prompt], env=env, capture_output=True, text=True)
        return done.stdout

    assert ask("Username for 'https://example.com': ") == "alice\n"
    assert ask("Password for 'https://alice@example.com': ") == "s3cret-pass\n"
    assert "s3cret" not in Path(askpass).read_text()
    assert spaces.env("tok123")["BATON_GIT_USERNAME"] == "x-access-token"
    spaces.prepare(SESSION, str(origin), credentials="alice:s3cret-pass")
    for config in (spaces.root / "mirrors").glob("*/config"):
        assert "s3cret" not in config.read_text()
    assert "s3cret" not in (spaces.path(SESSION) / ".git" / "config").read_text()


def test_idle_and_deleted_workspaces_are_removed(
    spaces: Workspaces, git_repo: Path, origin: Path
) -> None:
    with spaces.using(SESSION, "acc_alice"):
        spaces.prepare(SESSION, str(origin))
        assert spaces.clean(now=time.time() + 3600) == []  # in use: kept
    with spaces.using("ses_gone", "acc_bob"):
        spaces.prepare("ses_gone", str(origin))
    assert spaces.clean(gone=lambda owner, sid: sid == "ses_gone") == ["ses_gone"]
    assert not spaces.path("ses_gone").exists() and spaces.path(SESSION).exists()
    assert spaces.clean(now=time.time() + 30) == []
    assert spaces.clean(now=time.time() + 61) == [SESSION]
    assert not spaces.path(SESSION).exists()
    assert sorted(os.listdir(spaces.root / "workspaces")) == []


def test_a_bad_session_id_or_url_is_refused(
    spaces: Workspaces, git_repo: Path, origin: Path
) -> None:
    with pytest.raises(InvalidInput):
        spaces.prepare("../escape", str(origin))
    with pytest.raises(InvalidInput, match="one line"):
        spaces.prepare(SESSION, f"{origin}\n--upload-pack=touch /tmp/x")


@pytest.fixture
def git_daemon(tmp_path: Path, origin: Path, git_repo: Path) -> Iterator[str]:
    """`git daemon` on loopback serving the bare origin: its git:// URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    daemon = subprocess.Popen(
        [
            "git",
            "daemon",
            "--export-all",
            "--reuseaddr",
            "--listen=127.0.0.1",
            f"--port={port}",
            f"--base-path={tmp_path}",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"git://127.0.0.1:{port}/{origin.name}"
    try:
        end = time.monotonic() + 20
        while subprocess.run(["git", "ls-remote", url], capture_output=True).returncode != 0:
            assert time.monotonic() < end, "git daemon did not answer"
            time.sleep(0.1)
        yield url
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


def test_a_workspace_from_a_git_daemon(
    spaces: Workspaces, git_daemon: str, git_repo: Path, dirty_repo: Path
) -> None:
    blobs = MemoryBlobStore()
    state = snapshot(dirty_repo, blobs)
    ready = spaces.prepare(SESSION, git_daemon, git=state, get_blob=blobs.get)
    assert ready.how == COLD
    assert git(ready.path, "remote", "get-url", "origin") == git_daemon
    assert work_tree(ready.path) == work_tree(dirty_repo)
    fresh = spaces.prepare("ses_fresh", git_daemon)
    assert git(fresh.path, "rev-parse", "HEAD") == git(git_repo, "rev-parse", "origin/main")


@pytest.fixture
def git_http(tmp_path: Path, origin: Path, git_repo: Path) -> Iterator[tuple[str, list[str]]]:
    """`git http-backend` behind HTTP basic authentication (alice / s3cret-pass) on loopback:
    the URL of the bare origin, and the Authorization headers that came."""
    import base64
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    wanted = "Basic " + base64.b64encode(b"alice:s3cret-pass").decode()
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.backend()

        def do_POST(self) -> None:
            self.backend()

        def backend(self) -> None:
            given = self.headers.get("Authorization") or ""
            seen.append(given)
            if given != wanted:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("Content-Length") or 0)
            env = {
                **os.environ,
                "GIT_PROJECT_ROOT": str(tmp_path),
                "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "REQUEST_METHOD": self.command,
                "CONTENT_TYPE": self.headers.get("Content-Type") or "",
                "CONTENT_LENGTH": str(length),
                "REMOTE_USER": "alice",
                "REMOTE_ADDR": "127.0.0.1",
            }
            body = self.rfile.read(length) if length else b""
            out = subprocess.run(
                ["git", "http-backend"], input=body, env=env, capture_output=True
            ).stdout
            head, _, content = out.partition(b"\r\n\r\n")
            status = 200
            headers = []
            for line in head.decode().split("\r\n"):
                name, _, value = line.partition(": ")
                if name.lower() == "status":
                    status = int(value.split()[0])
                elif name:
                    headers.append((name, value))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{origin.name}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_credentials_reach_an_https_like_server_through_askpass(
    spaces: Workspaces, git_http: tuple[str, list[str]], origin: Path, git_repo: Path
) -> None:
    url, seen = git_http
    with pytest.raises(GitFailed) as refused:
        spaces.prepare("ses_nocreds", url)
    assert refused.value.message.startswith(f"git clone {url} failed: ")
    assert not spaces.path("ses_nocreds").exists()
    ready = spaces.prepare(SESSION, url, credentials="alice:s3cret-pass")
    assert git(ready.path, "rev-parse", "HEAD") == git(git_repo, "rev-parse", "HEAD")
    assert any(h.startswith("Basic ") for h in seen)
    (ready.path / "pushed.txt").write_text("over http\n")
    head = commit_all(ready.path, "work")
    spaces.push(ready.path, ready.branch, url, "alice:s3cret-pass")
    assert git(origin, "rev-parse", f"refs/heads/baton/{SESSION}") == head
    spaces.prepare(SESSION, url, credentials="alice:s3cret-pass")  # a fetch of the mirror
    stored = [p for p in spaces.root.rglob("*") if p.is_file()]
    assert not [p for p in stored if b"s3cret" in p.read_bytes()]


def test_git_transports_that_run_commands_are_refused(spaces: Workspaces, tmp_path: Path) -> None:
    planted = tmp_path / "planted"
    with pytest.raises(GitFailed, match=r"^git clone ext::"):
        spaces.prepare(SESSION, f"ext::sh -c touch% {planted}")
    assert not planted.exists()

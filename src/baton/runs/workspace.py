"""Where a server run works: a cached bare mirror of each repository and a workspace (a clone
of the mirror) per session, on the branch `baton/<session id>`.

Layout under BATON_HOME/runs: `mirrors/<sha of the URL>` (`git clone --mirror`, then
`git fetch --prune`, under a file lock), `workspaces/<session id>` (the clone) with
`workspaces/<session id>.json` beside it (whose it is, when it was last used) and
`<session id>.lock` (held while a run works in it).

A workspace is disposable: the session and its git snapshot are the state. A session's next
run reuses its workspace when it is still there and holds exactly what the session's latest
snapshot says (warm); otherwise the workspace is made again from the mirror and the snapshot
is restored into it, unpushed commits (the bundle) and uncommitted changes (the patch)
included (cold). A session without a snapshot starts from the requested branch (or the
repository's default).

Credentials never appear in a URL git stores or in an argv: git asks an askpass helper that
reads them from its environment."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baton import gitstate
from baton.core.errors import BatonError, InvalidInput
from baton.core.models import JSON

GIT_TIMEOUT = 1800.0  # seconds a clone, fetch or push may take
ASKPASS = """#!/bin/sh
# baton's git askpass: the credentials come from the environment, never from an argv
case "$1" in
  Username*) printf '%s\\n' "$BATON_GIT_USERNAME" ;;
  *) printf '%s\\n' "$BATON_GIT_PASSWORD" ;;
esac
"""
NEW, WARM, COLD = "new", "warm", "cold"
# What a run reads of a new workspace before its first model request: the project's
# instructions (agent.instructions) and setup declaration (agent.setup): read from the start
# commit while the tree is checked out beside the request.
FIRST_FILES = ("AGENTS.md", "CLAUDE.md", ".baton/setup.toml", ".baton/config.toml")
ALLOWED_PROTOCOLS = "file:git:http:https:ssh"
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")  # what gitstate can name a branch for


class GitFailed(BatonError):
    """A git command of a workspace failed: one line, credentials left out."""

    code = "git_failed"


def url_key(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def credential_env(credentials: str | None) -> dict[str, str]:
    """The variables the askpass helper answers from: `user:password`, or a token alone
    (sent as the password, with a user name servers ignore for tokens)."""
    if not credentials:
        return {}
    user, sep, password = credentials.partition(":")
    if not sep:
        user, password = "x-access-token", credentials
    return {"BATON_GIT_USERNAME": user, "BATON_GIT_PASSWORD": password}


@dataclass
class Prepared:
    """A workspace ready for a run, or, for a NEW one prepared with `early`, cloned with its
    files still being checked out in a thread: `files` then holds what the run reads before
    it works on the tree (FIRST_FILES, as the start commit has them), and `wait()` waits
    for the checkout (raising its failure)."""

    path: Path
    branch: str
    how: str  # NEW, WARM or COLD
    steps: list[str] = field(default_factory=list)
    files: dict[str, bytes] | None = None  # FIRST_FILES in the start commit, while checking out
    _checkout: threading.Thread | None = field(default=None, repr=False)
    _failed: list[BaseException] = field(default_factory=list, repr=False)

    def wait(self) -> None:
        """Wait until the work tree is checked out; GitFailed when the checkout failed."""
        if self._checkout is not None:
            self._checkout.join()
        if self._failed:
            raise self._failed[0]


class Workspaces:
    """The mirrors and workspaces of one machine (BATON_HOME/runs)."""

    def __init__(self, home: Path, idle: float = 3600.0) -> None:
        self.root = Path(home) / "runs"
        self.mirrors = self.root / "mirrors"
        self.spaces = self.root / "workspaces"
        self.idle = idle

    # ------------------------------------------------------------------ git
    def _askpass(self) -> Path:
        path = self.root / "askpass.sh"
        if not path.is_file():
            self.root.mkdir(parents=True, exist_ok=True)
            scratch = path.with_suffix(f".{os.getpid()}.tmp")
            scratch.write_text(ASKPASS)
            scratch.chmod(stat.S_IRWXU)
            scratch.replace(path)
        return path

    def env(self, credentials: str | None = None) -> dict[str, str]:
        """git's environment: no prompt on a terminal, no user or system identity needed
        beyond a committer name, credentials through the askpass helper."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("GIT_") or k in ("GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM")
        }
        env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C", GIT_OPTIONAL_LOCKS="0")
        env["GIT_ALLOW_PROTOCOL"] = ALLOWED_PROTOCOLS  # never ext:: (it runs a command)
        env.setdefault("GIT_AUTHOR_NAME", "baton")
        env.setdefault("GIT_AUTHOR_EMAIL", "baton@localhost")
        env.setdefault("GIT_COMMITTER_NAME", "baton")
        env.setdefault("GIT_COMMITTER_EMAIL", "baton@localhost")
        if credentials:
            env.update(GIT_ASKPASS=str(self._askpass()), **credential_env(credentials))
        return env

    def git(
        self,
        cwd: Path,
        *args: str,
        env: Mapping[str, str] | None = None,
        what: str | None = None,
        ok: tuple[int, ...] = (0,),
    ) -> str:
        """Run git; GitFailed with its last line of stderr when it fails."""
        try:
            done = subprocess.run(
                ["git", "-c", "gc.auto=0", "-c", "maintenance.auto=false", *args],
                cwd=cwd,
                env=dict(env) if env is not None else self.env(),
                capture_output=True,
                timeout=GIT_TIMEOUT,
                check=False,
            )
        except FileNotFoundError:
            raise BatonError("git is not installed (or not on PATH)") from None
        except subprocess.TimeoutExpired:
            raise GitFailed(
                f"{what or 'git ' + args[0]} took longer than {GIT_TIMEOUT:g}s"
            ) from None
        if done.returncode not in ok:
            lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
            line = next((x for x in reversed(lines) if x.strip()), f"exit {done.returncode}")
            raise GitFailed(f"{what or 'git ' + args[0]} failed: {line.strip()}")
        return done.stdout.decode("utf-8", "surrogateescape").strip()

    @contextlib.contextmanager
    def _locked(self, path: Path, shared: bool = False, wait: bool = True) -> Iterator[bool]:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            flags = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
            try:
                fcntl.flock(handle, flags)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ mirrors
    def mirror(self, url: str, credentials: str | None = None) -> Path:
        """The bare mirror of `url`, cloned the first time and fetched (pruned) after."""
        check_url(url)
        path = self.mirrors / url_key(url)
        env = self.env(credentials)
        with self._locked(path.with_suffix(".lock")):
            if (path / "HEAD").is_file():
                self.git(path, "fetch", "-q", "--prune", "origin", env=env, what=f"git fetch {url}")
                # packs, when fetches piled up (git's default threshold; nothing to do otherwise)
                self.git(path, "-c", "gc.auto=6700", "gc", "--auto", "--quiet")
            else:
                if path.exists():  # a clone that died half way
                    shutil.rmtree(path)
                path.parent.mkdir(parents=True, exist_ok=True)
                scratch = path.with_name(path.name + f".{os.getpid()}.tmp")
                shutil.rmtree(scratch, ignore_errors=True)
                self.git(
                    path.parent,
                    "clone",
                    "-q",
                    "--mirror",
                    "--",
                    source_of(url),
                    str(scratch),
                    env=env,
                    what=f"git clone {url}",
                )
                scratch.rename(path)
        return path

    # ------------------------------------------------------------------ workspaces
    def path(self, session_id: str) -> Path:
        if not _SESSION_ID.fullmatch(session_id):
            raise InvalidInput(f"{session_id!r} cannot name a workspace")
        return self.spaces / session_id

    @contextlib.contextmanager
    def using(self, session_id: str, owner: str) -> Iterator[Path]:
        """Hold the session's workspace for a run (idle cleanup leaves it alone), and mark
        it used when the run lets go of it."""
        where = self.path(session_id)
        with self._locked(where.with_name(session_id + ".lock")):
            self._mark(session_id, owner)
            try:
                yield where
            finally:
                self._mark(session_id, owner)

    def _mark(self, session_id: str, owner: str) -> None:
        info = self.path(session_id).with_name(session_id + ".json")
        info.parent.mkdir(parents=True, exist_ok=True)
        info.write_text(json.dumps({"owner": owner, "used": time.time()}))

    def setup_of(self, session_id: str) -> str | None:
        """What the workspace's setup commands were made with, when they all succeeded."""
        try:
            return self.path(session_id).with_name(session_id + ".setup").read_text() or None
        except FileNotFoundError:
            return None

    def set_setup(self, session_id: str, key: str | None) -> None:
        marker = self.path(session_id).with_name(session_id + ".setup")
        if key is None:
            marker.unlink(missing_ok=True)
        else:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(key)

    def prepare(
        self,
        session_id: str,
        url: str,
        *,
        credentials: str | None = None,
        branch: str | None = None,
        git: JSON | None = None,
        get_blob: Callable[[str], bytes | None] | None = None,
        early: bool = False,
    ) -> Prepared:
        """The session's workspace, ready: warm when it still holds the snapshot `git`,
        else made again from the mirror (the snapshot restored into it when there is one,
        else on a new branch from `branch` or the default branch). The mirror is fetched
        first either way, so the workspace sees the remote as it is now.

        With `early`, a new workspace is returned as soon as it is cloned: its files are
        checked out in a thread (`Prepared.wait`), FIRST_FILES read from the start commit
        meanwhile (`Prepared.files`)."""
        mirror = self.mirror(url, credentials)
        dest = self.path(session_id)
        ours = f"baton/{session_id}"
        if git and dest.is_dir() and self.holds(dest, git):
            self._refresh(dest, mirror)
            return Prepared(dest, ours, WARM, [f"reused the workspace of {session_id}"])
        self.set_setup(session_id, None)  # a new workspace: its setup is to be run
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if git:
            report = gitstate.restore(
                dict(git),
                get_blob or (lambda sha: None),
                dest,
                session_id=session_id,
                source=str(mirror),
            )
            self._as_origin(dest, url)
            return Prepared(dest, report.branch, COLD, list(report.steps))
        try:
            self.git(dest.parent, "clone", "-q", "--no-checkout", "--", str(mirror), str(dest))
            self._as_origin(dest, url)
            start = self._start(dest, url, branch)
            steps = [f"cloned {url} on the new branch {ours} from {start}"]
            if not early:
                self.git(dest, "checkout", "-q", "--no-track", "-b", ours, start)
                return Prepared(dest, ours, NEW, steps)
            files = self.read_files(dest, start, FIRST_FILES)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        ready = Prepared(dest, ours, NEW, steps, files)

        def checkout() -> None:
            try:
                self.git(dest, "checkout", "-q", "--no-track", "-b", ours, start)
            except BaseException as exc:
                ready._failed.append(exc)

        ready._checkout = threading.Thread(target=checkout, name=f"checkout {session_id}")
        ready._checkout.start()
        return ready

    def read_files(self, dest: Path, commit: str, names: tuple[str, ...]) -> dict[str, bytes]:
        """The files `names` (paths from the root) of `commit` that are there, read from
        the object store in one git process (not from the work tree); a symlink within the
        tree is followed, one that leads out of it is left out."""
        asked = "".join(f"{commit}:{name}\n" for name in names).encode()
        try:
            done = subprocess.run(
                ["git", "cat-file", "--batch", "--follow-symlinks"],
                cwd=dest,
                env=self.env(),
                input=asked,
                capture_output=True,
                timeout=GIT_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise GitFailed("git cat-file took too long") from None
        if done.returncode != 0:
            raise GitFailed(f"git cat-file failed: {done.stderr.decode(errors='replace')}")
        out, at, found = done.stdout, 0, {}
        for name in names:
            end = out.index(b"\n", at)
            header = out[at:end].split()
            at = end + 1
            if len(header) == 3 and header[1] == b"blob":
                size = int(header[2])
                found[name] = out[at : at + size]
                at += size + 1
            elif header and header[-1].isdigit():  # a tree, or a symlink out: content skipped
                at += int(header[-1]) + 1
        return found

    def _start(self, dest: Path, url: str, branch: str | None) -> str:
        if branch:
            ref = f"refs/remotes/origin/{branch}"
            if not self.git(dest, "rev-parse", "--verify", "-q", ref, ok=(0, 1)):
                raise InvalidInput(f"branch {branch!r} does not exist in {url}")
            return ref
        if not self.git(dest, "rev-parse", "--verify", "-q", "refs/remotes/origin/HEAD", ok=(0, 1)):
            raise InvalidInput(f"{url} has no commits (or no default branch): give a branch")
        return "refs/remotes/origin/HEAD"

    def _as_origin(self, dest: Path, url: str) -> None:
        """origin names the repository itself (the URL without credentials), not the
        mirror: so a snapshot records where the code comes from, and a push goes there."""
        self.git(dest, "remote", "set-url", "origin", url)

    def _refresh(self, dest: Path, mirror: Path) -> None:
        """A warm workspace's remote-tracking branches, updated from the mirror."""
        self.git(
            dest,
            "fetch",
            "-q",
            "--prune",
            "--no-write-fetch-head",
            str(mirror),
            "+refs/heads/*:refs/remotes/origin/*",
        )

    def holds(self, dest: Path, git: JSON) -> bool:
        """Whether the workspace holds exactly the snapshot `git` (its state hash)."""
        try:
            now = gitstate.capture(dest, lambda data: hashlib.sha256(data).hexdigest())
        except BatonError:
            return False
        return now is not None and now.get("state") == git.get("state")

    def commit(self, dest: Path, message: str) -> str | None:
        """Commit every change of the work tree (untracked files too, .gitignore'd ones
        not); the new commit, or None when there was nothing to commit."""
        if not self.git(dest, "status", "--porcelain", "--untracked-files=all"):
            return None
        self.git(dest, "add", "-A")
        self.git(dest, "commit", "-q", "--no-verify", "-m", message)
        return self.git(dest, "rev-parse", "HEAD")

    def push(self, dest: Path, branch: str, url: str, credentials: str | None = None) -> None:
        """Push the workspace's branch to the repository (origin)."""
        self.git(
            dest,
            "push",
            "-q",
            "--force-with-lease",
            "origin",
            f"HEAD:refs/heads/{branch}",
            env=self.env(credentials),
            what=f"git push {url} {branch}",
        )

    # ------------------------------------------------------------------ cleanup
    def remove(self, session_id: str) -> bool:
        """Remove the session's workspace (unless a run holds it); whether it was there."""
        dest = self.path(session_id)
        with self._locked(dest.with_name(session_id + ".lock"), wait=False) as free:
            if not free:
                return False
            existed = dest.exists()
            shutil.rmtree(dest, ignore_errors=True)
            dest.with_name(session_id + ".json").unlink(missing_ok=True)
            dest.with_name(session_id + ".setup").unlink(missing_ok=True)
        dest.with_name(session_id + ".lock").unlink(missing_ok=True)
        return existed

    def clean(
        self, now: float | None = None, gone: Callable[[str, str], bool] | None = None
    ) -> list[str]:
        """Remove the workspaces unused for `idle` seconds, and those whose session is gone
        (`gone(owner, session_id)`); the ids removed."""
        now = time.time() if now is None else now
        removed: list[str] = []
        if not self.spaces.is_dir():
            return removed
        for info in sorted(self.spaces.glob("*.json")):
            session_id = info.name[: -len(".json")]
            try:
                data: Any = json.loads(info.read_text())
                used, owner = float(data["used"]), str(data["owner"])
            except (OSError, ValueError, KeyError, TypeError):
                used, owner = 0.0, ""
            stale = now - used >= self.idle
            if (stale or (gone is not None and owner and gone(owner, session_id))) and self.remove(
                session_id
            ):
                removed.append(session_id)
        return removed


def check_url(url: str) -> None:
    if not url or any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise InvalidInput("a repository URL must be one line of printable characters")
    if url.startswith("-"):
        raise InvalidInput(f"{url!r} is not a repository URL")


def source_of(url: str) -> str:
    """What git clones from: the URL, or a local path made absolute."""
    if "://" not in url and gitstate.scp_like(url) is None:
        return str(Path(url).expanduser().absolute())
    return url

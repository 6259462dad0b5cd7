"""Figure of the git snapshot: a capture against `git status` on the same repository, in the
same run (a repository of 10,000 small files in nested folders, pushed to a bare `origin`,
then one file changed and one added)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from baton import gitstate
from bench.timing import paired_medians

Record = Callable[..., None]
TARGET = 3.0


def _git(repo: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
    }
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def build(root: Path, files: int) -> Path:
    """A committed repository of `files` small files, 100 to a folder two levels deep, whose
    branch tracks a bare `origin` it was pushed to (so there is no bundle to make, as in
    daily use); then one file changed and one untracked file added."""
    repo = root / f"git-{files}"
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    for i in range(files):
        folder = repo / f"pkg{i // 1000}" / f"mod{i // 100 % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file{i}.py").write_text(
            f"# file {i}\nVALUE = {i}\n\ndef f():\n    return VALUE\n"
        )
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "files")
    origin = root / f"git-{files}-origin.git"
    _git(root, "clone", "-q", "--bare", str(repo), str(origin))
    _git(repo, "remote", "add", "origin", str(origin))
    _git(repo, "fetch", "-q", "origin")
    _git(repo, "branch", "-q", "--set-upstream-to=origin/main", "main")
    _git(repo, "status", "--porcelain")  # the index's stat data is fresh, as in daily use
    with (repo / "pkg0" / "mod0" / "file0.py").open("a") as changed:
        changed.write("CHANGED = True\n")
    (repo / "pkg0" / "new_module.py").write_text("NEW = 1\n")
    return repo


def run(root: Path, quick: bool, record: Record) -> None:
    files = 500 if quick else 10_000
    repo = build(root, files)
    blobs: dict[str, bytes] = {}

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return digest

    def status() -> None:
        subprocess.run(["git", "status", "--porcelain"], cwd=repo, check=True, capture_output=True)

    def capture() -> None:
        snapshot = gitstate.capture(repo, put)
        assert snapshot is not None and snapshot["patch"] is not None
        assert snapshot["bundle"] is None

    repeat = 3 if quick else 15
    t_status, t_capture = paired_medians(status, capture, repeat, warmup=1 if quick else 2)
    ratio = t_capture / t_status
    record(
        f"git capture vs git status, {files} files with a small change",
        f"{t_capture * 1e3:.1f} ms vs {t_status * 1e3:.1f} ms",
        ratio,
        f"≤ {TARGET:g}×",
        ratio <= TARGET,
        "medians of alternating runs; the repository is pushed, so no bundle is made",
    )

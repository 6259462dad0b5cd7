"""gitstate: capture never changes the repository, restore brings back the exact work tree,
caps are reported, and refusals leave nothing behind. Real git, real repositories."""

from __future__ import annotations

import hashlib
import os
import subprocess
import zlib
from pathlib import Path

import pytest

from baton import gitstate
from baton.core.errors import BatonError, InvalidInput, NotFound
from tests.fixtures.git import BIN, commit_all, git, repository_state, tree


class Blobs:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.data[digest] = data
        return digest

    def get(self, digest: str) -> bytes | None:
        return self.data.get(digest)


@pytest.fixture
def blobs() -> Blobs:
    return Blobs()


# --- remote URLs --------------------------------------------------------------------------


def test_normalize_remote_gives_one_key_for_every_way_of_writing_a_remote() -> None:
    forms = [
        "git@github.com:Owner/Repo.git",
        "git@GitHub.com:Owner/Repo",
        "https://github.com/Owner/Repo",
        "https://github.com/Owner/Repo.git",
        "https://github.com/Owner/Repo/",
        "https://alice:s3cr3t-pw@github.com/Owner/Repo.git",
        "https://ghp_tokenvalue@github.com/Owner/Repo",
        "http://github.com:80/Owner/Repo.git",
        "ssh://git@github.com/Owner/Repo.git",
        "ssh://git@github.com:22/Owner/Repo.git",
        "ssh://git:s3cr3t-pw@github.com/Owner/Repo",
        "git+ssh://git@github.com/Owner/Repo.git",
        "git://github.com/Owner/Repo",
        "github.com:Owner/Repo.git",
    ]
    keys = {gitstate.normalize_remote(form) for form in forms}
    assert keys == {"github.com/Owner/Repo"}


def test_normalize_remote_leaves_local_paths_and_file_urls(tmp_path: Path) -> None:
    assert gitstate.normalize_remote("/srv/git/repo.git") == "/srv/git/repo.git"
    assert gitstate.normalize_remote("file:///srv/git/repo.git") == "file:///srv/git/repo.git"
    assert gitstate.normalize_remote("relative/repo") == os.path.abspath("relative/repo")


def test_strip_credentials_drops_passwords_and_tokens_but_keeps_the_ssh_user() -> None:
    cases = {
        "https://alice:s3cr3t-pw@github.com/o/r.git": "https://github.com/o/r.git",
        "https://ghp_s3cr3t@github.com/o/r": "https://github.com/o/r",
        "ssh://git:s3cr3t-pw@host.example:2222/o/r.git": "ssh://git@host.example:2222/o/r.git",
        "ssh://git@host.example/o/r.git": "ssh://git@host.example/o/r.git",
        "git@github.com:o/r.git": "git@github.com:o/r.git",
        "https://github.com/o/r.git": "https://github.com/o/r.git",
        "/srv/git/r.git": "/srv/git/r.git",
    }
    for url, expected in cases.items():
        stripped = gitstate.strip_credentials(url)
        assert stripped == expected
        assert "s3cr3t" not in stripped
        assert "s3cr3t" not in gitstate.normalize_remote(url)


def test_capture_records_the_remote_without_its_credentials(git_repo: Path, blobs: Blobs) -> None:
    git(git_repo, "remote", "set-url", "origin", "https://alice:s3cr3t-pw@Example.com/o/r.git")
    snapshot = gitstate.capture(git_repo, blobs.put)
    assert snapshot is not None
    assert snapshot["remote"] == "example.com/o/r"
    assert snapshot["remote_url"] == "https://Example.com/o/r.git"
    assert "s3cr3t" not in repr(snapshot)


# --- capture ------------------------------------------------------------------------------


def test_capture_changes_nothing_in_the_repository(dirty_repo: Path, blobs: Blobs) -> None:
    assert git(dirty_repo, "stash", "list") != ""
    before = repository_state(dirty_repo)
    snapshot = gitstate.capture(dirty_repo, blobs.put)
    after = repository_state(dirty_repo)
    assert snapshot is not None and snapshot["patch"] is not None
    assert after == before


def test_capture_records_where_the_repository_is(
    dirty_repo: Path, origin: Path, blobs: Blobs
) -> None:
    snapshot = gitstate.capture(dirty_repo / "src", blobs.put)
    assert snapshot is not None
    root_commit = git(dirty_repo, "rev-list", "--max-parents=0", "HEAD")
    assert set(snapshot) == {
        "version", "root", "remote", "remote_url", "root_commit", "branch", "detached",
        "head", "upstream", "ahead", "bundle", "patch", "omitted", "dirty", "partial", "state",
    }  # fmt: skip
    assert {k: v for k, v in snapshot.items() if k not in ("bundle", "patch", "state")} == {
        "version": 1,
        "root": str(dirty_repo),
        "remote": str(origin),
        "remote_url": str(origin),
        "root_commit": root_commit,
        "branch": "main",
        "detached": False,
        "head": git(dirty_repo, "rev-parse", "HEAD"),
        "upstream": "origin/main",
        "ahead": 2,
        "omitted": [],
        "dirty": True,
        "partial": None,
    }
    assert snapshot["bundle"]["commits"] == 2
    assert snapshot["patch"]["files"] == 10
    for part in ("bundle", "patch"):
        data = blobs.data[snapshot[part]["sha256"]]
        assert snapshot[part]["size"] == len(data)
    patch = blobs.data[snapshot["patch"]["sha256"]]
    assert b"debug.log" not in patch and b"build/out.o" not in patch
    assert b"rename from old_name.txt" in patch and b"new mode 100755" in patch
    assert b"GIT binary patch" in patch and b"new file mode 120000" in patch


def test_a_clean_repository_has_no_patch_and_a_pushed_one_no_bundle(
    git_repo: Path, blobs: Blobs
) -> None:
    snapshot = gitstate.capture(git_repo, blobs.put)
    assert snapshot is not None
    assert (snapshot["patch"], snapshot["bundle"], snapshot["dirty"], snapshot["ahead"]) == (
        None,
        None,
        False,
        0,
    )
    assert blobs.data == {}


def test_the_state_is_the_same_until_something_changes(dirty_repo: Path, blobs: Blobs) -> None:
    first = gitstate.capture(dirty_repo, blobs.put)
    second = gitstate.capture(dirty_repo, blobs.put)
    assert first is not None and second is not None
    assert second["state"] == first["state"]
    assert second == first
    with (dirty_repo / "notes.txt").open("a") as notes:
        notes.write("one more line\n")
    third = gitstate.capture(dirty_repo, blobs.put)
    assert third is not None
    assert third["state"] != first["state"]
    assert third["patch"]["sha256"] != first["patch"]["sha256"]
    assert gitstate.state_of(third) == third["state"]


def test_a_file_over_the_cap_is_left_out_and_listed(git_repo: Path, blobs: Blobs) -> None:
    (git_repo / "huge.dat").write_bytes(b"h" * 5000)  # untracked
    (git_repo / "src" / "app.py").write_text("x = 1\n" * 1000)  # tracked, staged
    git(git_repo, "add", "src/app.py")
    (git_repo / "small.txt").write_text("kept\n")
    snapshot = gitstate.capture(git_repo, blobs.put, file_cap=4096)
    assert snapshot is not None
    assert snapshot["omitted"] == [
        {"path": "huge.dat", "reason": "file over 4096 bytes", "size": 5000},
        {"path": "src/app.py", "reason": "file over 4096 bytes", "size": 6000},
    ]
    patch = blobs.data[snapshot["patch"]["sha256"]]
    assert b"small.txt" in patch and b"huge.dat" not in patch and b"app.py" not in patch
    assert snapshot["patch"]["files"] == 1
    assert git(git_repo, "diff", "--cached", "--name-only") == "src/app.py"  # still staged


def test_a_patch_over_the_cap_drops_the_biggest_files_and_lists_them(
    git_repo: Path, blobs: Blobs
) -> None:
    (git_repo / "big.txt").write_text("".join(f"line {i}\n" for i in range(300)))
    (git_repo / "little.txt").write_text("small\n")
    snapshot = gitstate.capture(git_repo, blobs.put, patch_cap=1000)
    assert snapshot is not None
    [entry] = snapshot["omitted"]
    assert (entry["path"], entry["reason"]) == ("big.txt", "patch over 1000 bytes")
    assert entry["size"] > 1000
    patch = blobs.data[snapshot["patch"]["sha256"]]
    assert snapshot["patch"]["size"] == len(patch) <= 1000
    assert b"little.txt" in patch and b"big.txt" not in patch

    tiny = gitstate.capture(git_repo, blobs.put, patch_cap=10)
    assert tiny is not None
    assert tiny["patch"] is None and tiny["dirty"] is True
    assert [(o["path"], o["reason"]) for o in tiny["omitted"]] == [
        ("big.txt", "patch over 10 bytes"),
        ("little.txt", "patch over 10 bytes"),
    ]


def test_outside_a_repository_there_is_nothing_to_capture(tmp_path: Path, blobs: Blobs) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert gitstate.capture(plain, blobs.put) is None
    assert gitstate.capture(tmp_path / "missing", blobs.put) is None


def test_a_repository_without_commits_is_captured_in_part(tmp_path: Path, blobs: Blobs) -> None:
    repo = tmp_path / "fresh"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "trunk")
    (repo / "a.txt").write_text("a\n")
    git(repo, "add", "a.txt")
    snapshot = gitstate.capture(repo, blobs.put)
    assert snapshot is not None
    assert snapshot["partial"] == "the repository has no commits yet"
    assert (snapshot["branch"], snapshot["head"], snapshot["root_commit"]) == ("trunk", None, None)
    assert (snapshot["patch"], snapshot["bundle"], snapshot["dirty"]) == (None, None, True)
    with pytest.raises(InvalidInput, match="no commit to restore"):
        gitstate.restore(snapshot, blobs.get, tmp_path / "out", session_id="ses_1")


def test_capture_in_a_linked_worktree(dirty_repo: Path, tmp_path: Path, blobs: Blobs) -> None:
    linked = tmp_path / "linked"
    git(dirty_repo, "worktree", "add", "-q", "-b", "side", str(linked))
    (linked / "side.txt").write_text("from the worktree\n")
    objects = sorted(str(p) for p in (dirty_repo / ".git" / "objects").rglob("*"))
    snapshot = gitstate.capture(linked, blobs.put)
    assert snapshot is not None
    assert (snapshot["root"], snapshot["branch"]) == (str(linked), "side")
    assert sorted(str(p) for p in (dirty_repo / ".git" / "objects").rglob("*")) == objects
    out = tmp_path / "out"
    gitstate.restore(snapshot, blobs.get, out, session_id="ses_wt", source=str(dirty_repo))
    assert tree(out) == tree(linked)


# --- restore ------------------------------------------------------------------------------


def expected_tree(repo: Path) -> dict[str, tuple[bytes, int]]:
    return {k: v for k, v in tree(repo).items() if k != "debug.log" and not k.startswith("build/")}


@pytest.mark.parametrize("how", ["source", "current_repo", "remote_url"])
def test_restore_brings_back_the_work_tree_exactly(
    dirty_repo: Path, origin: Path, tmp_path: Path, blobs: Blobs, how: str
) -> None:
    snapshot = gitstate.capture(dirty_repo, blobs.put)
    assert snapshot is not None
    out = tmp_path / "restored"
    source = str(origin) if how == "source" else None
    current_repo = dirty_repo if how == "current_repo" else None
    before = repository_state(dirty_repo)
    report = gitstate.restore(
        snapshot, blobs.get, out, session_id="ses_abc", source=source, current_repo=current_repo
    )

    assert tree(out) == expected_tree(dirty_repo)
    assert not (out / "debug.log").exists() and not (out / "build").exists()
    assert git(out, "rev-parse", "--abbrev-ref", "HEAD") == "baton/ses_abc"
    assert git(out, "rev-parse", "baton/ses_abc") == snapshot["head"]
    for local_commit in git(dirty_repo, "rev-list", "origin/main..HEAD").split():
        assert git(out, "cat-file", "-t", local_commit) == "commit"
    assert (report.path, report.branch, report.commit) == (
        str(out),
        "baton/ses_abc",
        snapshot["head"],
    )
    assert (report.bundle_applied, report.patch_applied, report.omitted) == (True, True, [])
    assert report.source == {"source": str(origin), "current_repo": str(dirty_repo)}.get(
        how, str(origin)
    )
    # The captured changes are staged in the restored folder: the index matches the work tree.
    assert git(out, "diff", "--name-only") == ""
    after = repository_state(dirty_repo)
    if how == "current_repo":  # a worktree and a branch were added; the checkout is untouched
        for key in ("index", "status", "stash", "tree"):
            assert after[key] == before[key]
        assert "refs/heads/baton/ses_abc" in str(after["refs"])
    else:
        assert after == before


def test_restore_refuses_a_folder_that_is_not_empty(
    dirty_repo: Path, tmp_path: Path, blobs: Blobs
) -> None:
    snapshot = gitstate.capture(dirty_repo, blobs.put)
    assert snapshot is not None
    out = tmp_path / "busy"
    out.mkdir()
    (out / "mine.txt").write_text("keep me\n")
    with pytest.raises(InvalidInput, match="already exists and is not an empty folder"):
        gitstate.restore(snapshot, blobs.get, out, session_id="ses_1", current_repo=dirty_repo)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    assert (out / "mine.txt").read_text() == "keep me\n"
    assert "baton/" not in git(dirty_repo, "for-each-ref")


def test_restore_refuses_a_different_repository_and_leaves_nothing(
    dirty_repo: Path, tmp_path: Path, blobs: Blobs
) -> None:
    snapshot = gitstate.capture(dirty_repo, blobs.put)
    assert snapshot is not None
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    (other / "x.txt").write_text("unrelated\n")
    theirs = commit_all(other, "unrelated")
    out = tmp_path / "nested" / "out"
    message = (
        f"{other} is a different repository: its root commit is {theirs}, "
        f"the session's is {snapshot['root_commit']}"
    )
    with pytest.raises(InvalidInput) as refused:
        gitstate.restore(snapshot, blobs.get, out, session_id="ses_1", source=str(other))
    assert refused.value.message == message
    assert not (tmp_path / "nested").exists()

    empty = tmp_path / "empty"
    empty.mkdir()  # an empty folder is accepted, and left empty after a refusal
    with pytest.raises(InvalidInput, match="is a different repository"):
        gitstate.restore(snapshot, blobs.get, empty, session_id="ses_1", source=str(other))
    assert empty.is_dir() and list(empty.iterdir()) == []


def test_restore_falls_back_to_the_remote_when_the_current_repo_is_another(
    dirty_repo: Path, origin: Path, tmp_path: Path, blobs: Blobs
) -> None:
    snapshot = gitstate.capture(dirty_repo, blobs.put)
    assert snapshot is not None
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    (other / "x.txt").write_text("unrelated\n")
    commit_all(other, "unrelated")
    report = gitstate.restore(
        snapshot, blobs.get, tmp_path / "out", session_id="ses_1", current_repo=other
    )
    assert report.source == str(origin)
    assert report.steps[0] == f"{other} is not the session's repository"
    assert git(other, "worktree", "list").count("\n") == 0


def test_restore_without_a_remote_asks_for_one(
    git_repo: Path, tmp_path: Path, blobs: Blobs
) -> None:
    git(git_repo, "remote", "remove", "origin")
    (git_repo / "README.md").write_text("changed\n")
    snapshot = gitstate.capture(git_repo, blobs.put)
    assert snapshot is not None
    assert (snapshot["remote"], snapshot["remote_url"], snapshot["upstream"]) == (None, None, None)
    assert snapshot["bundle"]["commits"] == 1  # no remote: the whole history is bundled
    out = tmp_path / "out"
    with pytest.raises(InvalidInput) as refused:
        gitstate.restore(snapshot, blobs.get, out, session_id="ses_1")
    assert refused.value.message == (
        "the session's repository has no remote to clone from: pass --from PATH_OR_URL"
    )
    assert not out.exists()
    gitstate.restore(snapshot, blobs.get, out, session_id="ses_1", source=str(git_repo))
    assert tree(out) == tree(git_repo)


def test_restore_reports_a_missing_blob(dirty_repo: Path, tmp_path: Path, blobs: Blobs) -> None:
    snapshot = gitstate.capture(dirty_repo, blobs.put)
    assert snapshot is not None
    del blobs.data[snapshot["patch"]["sha256"]]
    out = tmp_path / "out"
    with pytest.raises(NotFound) as missing:
        gitstate.restore(snapshot, blobs.get, out, session_id="ses_1")
    assert missing.value.message == (
        f"the session's git patch (blob {snapshot['patch']['sha256']}) is missing from the "
        "blob store"
    )
    assert not out.exists()


def test_restore_refuses_a_branch_that_exists_and_keeps_it(
    dirty_repo: Path, tmp_path: Path, blobs: Blobs
) -> None:
    snapshot = gitstate.capture(dirty_repo, blobs.put)
    assert snapshot is not None
    git(dirty_repo, "branch", "baton/ses_1", "origin/main")
    kept = git(dirty_repo, "rev-parse", "baton/ses_1")
    out = tmp_path / "out"
    with pytest.raises(InvalidInput, match="branch baton/ses_1 already exists"):
        gitstate.restore(snapshot, blobs.get, out, session_id="ses_1", current_repo=dirty_repo)
    assert git(dirty_repo, "rev-parse", "baton/ses_1") == kept
    assert not out.exists()
    assert git(dirty_repo, "worktree", "list").count("\n") == 0


def test_a_git_failure_is_a_one_line_error(dirty_repo: Path, tmp_path: Path, blobs: Blobs) -> None:
    snapshot = gitstate.capture(dirty_repo, blobs.put)
    assert snapshot is not None
    with pytest.raises(BatonError) as failed:
        gitstate.restore(
            snapshot, blobs.get, tmp_path / "out", session_id="ses_1", source=str(tmp_path / "nope")
        )
    assert failed.value.message.startswith(f"git clone {tmp_path / 'nope'} failed: fatal: ")
    assert "\n" not in failed.value.message
    assert not (tmp_path / "out").exists()


def test_restore_of_a_capture_with_omissions_reports_them(
    git_repo: Path, tmp_path: Path, blobs: Blobs
) -> None:
    (git_repo / "huge.dat").write_bytes(b"h" * 5000)
    (git_repo / "README.md").write_text("changed\n")
    snapshot = gitstate.capture(git_repo, blobs.put, file_cap=4096)
    assert snapshot is not None
    out = tmp_path / "out"
    report = gitstate.restore(snapshot, blobs.get, out, session_id="ses_1")
    assert report.omitted == [{"path": "huge.dat", "reason": "file over 4096 bytes", "size": 5000}]
    assert report.steps[-1] == "not in the snapshot: huge.dat (file over 4096 bytes)"
    assert (out / "README.md").read_text() == "changed\n"
    assert not (out / "huge.dat").exists()


def test_detached_head_is_captured_and_restored(
    dirty_repo: Path, tmp_path: Path, blobs: Blobs
) -> None:
    git(dirty_repo, "add", "-A")
    git(dirty_repo, "commit", "-q", "-m", "everything")
    git(dirty_repo, "checkout", "-q", "--detach", "HEAD")
    (dirty_repo / "detached.txt").write_text("made while detached\n")
    detached = commit_all(dirty_repo, "on a detached head")
    (dirty_repo / "src" / "util.py").write_text("def util():\n    return 2\n")
    snapshot = gitstate.capture(dirty_repo, blobs.put)
    assert snapshot is not None
    assert (snapshot["branch"], snapshot["detached"], snapshot["head"]) == (None, True, detached)
    assert (snapshot["upstream"], snapshot["ahead"], snapshot["bundle"]["commits"]) == (None, 4, 4)
    out = tmp_path / "out"
    report = gitstate.restore(
        snapshot, blobs.get, out, session_id="ses_d", source=str(tmp_path / "origin.git")
    )
    assert report.commit == detached
    assert git(out, "rev-parse", "HEAD") == detached
    assert tree(out) == expected_tree(dirty_repo)


def test_odd_names_type_changes_and_a_merge_in_progress_round_trip(
    git_repo: Path, tmp_path: Path, blobs: Blobs
) -> None:
    repo = git_repo
    git(repo, "checkout", "-q", "-b", "theirs")
    (repo / "README.md").write_text("# theirs\n")
    commit_all(repo, "theirs")
    git(repo, "checkout", "-q", "main")
    (repo / "README.md").write_text("# ours\n")
    commit_all(repo, "ours")
    merge = subprocess.run(["git", "merge", "-q", "theirs"], cwd=repo, capture_output=True)
    assert merge.returncode != 0  # a conflict, left in the work tree
    for name in ("sp ace.txt", "ünïcode.txt", "tab\there.txt", 'quo"te.txt', "new\nline.txt"):
        (repo / name).write_text(f"{name}\n")
    (repo / "run.sh").unlink()
    (repo / "run.sh").symlink_to("README.md")  # a file becomes a link
    (repo / "src" / "util.py").unlink()
    (repo / "src" / "util.py").mkdir()  # a file becomes a folder
    (repo / "src" / "util.py" / "inner.py").write_text("inside\n")
    nested = repo / "vendored"
    nested.mkdir()
    git(nested, "init", "-q")
    (nested / "x.txt").write_text("a repository of its own\n")

    snapshot = gitstate.capture(repo, blobs.put)
    assert snapshot is not None
    assert snapshot["partial"] == gitstate.UNMERGED
    assert snapshot["omitted"] == [
        {"path": "vendored/", "reason": "a nested git repository", "size": 0}
    ]
    out = tmp_path / "out"
    gitstate.restore(snapshot, blobs.get, out, session_id="ses_odd")
    expected = {k: v for k, v in tree(repo).items() if not k.startswith("vendored/")}
    assert tree(out) == expected
    assert "<<<<<<<" in (out / "README.md").read_text()


def test_a_repository_without_an_index_file(git_repo: Path, blobs: Blobs) -> None:
    clean = gitstate.capture(git_repo, blobs.put)
    (git_repo / ".git" / "index").unlink()
    (git_repo / "README.md").write_text("changed\n")
    snapshot = gitstate.capture(git_repo, blobs.put)
    assert clean is not None and snapshot is not None
    assert not (git_repo / ".git" / "index").exists()
    assert snapshot["patch"]["files"] == 1
    assert snapshot["head"] == clean["head"]


def test_a_deleted_big_file_over_the_patch_cap_is_kept_and_listed(
    git_repo: Path, tmp_path: Path, blobs: Blobs
) -> None:
    (git_repo / "image.bin").unlink()  # a deletion's patch holds the whole old content
    (git_repo / "README.md").write_text("changed\n")
    snapshot = gitstate.capture(git_repo, blobs.put, patch_cap=600)
    assert snapshot is not None
    assert [(o["path"], o["reason"]) for o in snapshot["omitted"]] == [
        ("image.bin", "patch over 600 bytes")
    ]
    out = tmp_path / "out"
    gitstate.restore(snapshot, blobs.get, out, session_id="ses_1")
    assert (out / "image.bin").read_bytes() == BIN  # not deleted: the deletion was left out
    assert (out / "README.md").read_text() == "changed\n"


def test_a_failed_restore_into_a_worktree_takes_back_the_worktree_and_branch(
    dirty_repo: Path, tmp_path: Path, blobs: Blobs
) -> None:
    snapshot = gitstate.capture(dirty_repo, blobs.put)
    assert snapshot is not None
    bad = b"diff --git a/nowhere.txt b/nowhere.txt\n--- a/nowhere.txt\n+++ b/nowhere.txt\n"
    bad += b"@@ -1 +1 @@\n-not there\n+at all\n"
    snapshot["patch"] = {"sha256": blobs.put(bad), "size": len(bad), "files": 1}
    refs = git(dirty_repo, "for-each-ref")
    out = tmp_path / "out"
    with pytest.raises(BatonError) as failed:
        gitstate.restore(snapshot, blobs.get, out, session_id="ses_1", current_repo=dirty_repo)
    assert failed.value.message == (
        "applying the session's work-tree patch failed: error: nowhere.txt: does not exist in index"
    )
    assert not out.exists()
    assert git(dirty_repo, "for-each-ref") == refs
    assert git(dirty_repo, "worktree", "list").count("\n") == 0


# ---------------------------------------------------------------------------------------------
# Reading a bundle (what a share of it publishes)

BUNDLE_KEY = "sk-proj-" + "Bundle5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5xY7w"


def test_a_bundle_of_a_repository_without_remote_yields_every_file_and_message(
    tmp_path: Path, blobs: Blobs
) -> None:
    repo = tmp_path / "alone"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "src").mkdir()
    for i in range(30):
        (repo / "src" / f"m{i}.py").write_text(f"VALUE = {i}\n" * 50)
    first = commit_all(repo, "first")
    (repo / "src" / "deploy.env").write_text(f"KEY={BUNDLE_KEY}\n")
    (repo / "src" / "m3.py").write_text("VALUE = 3\n" * 50 + "changed\n")
    added = commit_all(repo, "add the deploy settings")
    (repo / "src" / "deploy.env").unlink()
    last = commit_all(repo, f"remove them\n\nthe old one was {BUNDLE_KEY[:-1]}X")
    snapshot = gitstate.capture(repo, blobs.put)
    assert snapshot is not None and snapshot["bundle"]["commits"] == 3
    texts = gitstate.bundle_texts(blobs.data[snapshot["bundle"]["sha256"]])
    where = dict((text, w) for w, text in reversed(texts))  # text -> first place it is
    assert where[f"KEY={BUNDLE_KEY}\n"] == f"commit {added[:7]} (src/deploy.env)"
    assert where["VALUE = 3\n" * 50 + "changed\n"] == f"commit {added[:7]} (src/m3.py)"
    assert where["VALUE = 7\n" * 50] == f"commit {first[:7]} (src/m7.py)"
    assert (
        where[f"remove them\n\nthe old one was {BUNDLE_KEY[:-1]}X\n"]
        == f"commit {last[:7]} (message)"
    )
    # every blob of the history is read (what `git log -p --all` shows), once
    every = git(repo, "rev-list", "--objects", "--all").splitlines()
    shas = [line.split()[0] for line in every if len(line.split()) == 2]
    contents = [
        git(repo, "cat-file", "-p", sha)
        for sha in shas
        if git(repo, "cat-file", "-t", sha) == "blob"
    ]
    read = [text.rstrip("\n") for _, text in texts]
    assert all(c in read for c in contents) and len(contents) == 32


def test_a_thin_bundle_yields_what_its_changes_insert(
    git_repo: Path, origin: Path, blobs: Blobs
) -> None:
    """Commits not on the remote are bundled as changes to what the remote has: the bytes
    they add are read without the remote."""
    (git_repo / "src" / "app.py").write_text("print('hello')\n" * 20 + f"KEY = '{BUNDLE_KEY}'\n")
    commit_all(git_repo, "a key in app.py")
    snapshot = gitstate.capture(git_repo, blobs.put)
    assert snapshot is not None and snapshot["bundle"]["commits"] == 1
    texts = gitstate.bundle_texts(blobs.data[snapshot["bundle"]["sha256"]])
    assert [w for w, text in texts if BUNDLE_KEY in text] == [
        "a change to a file outside the bundle"
    ]


def test_a_damaged_or_oversized_bundle_is_refused_in_one_line(git_repo: Path, blobs: Blobs) -> None:
    (git_repo / "new.py").write_text("x = 1\n" * 1000)
    commit_all(git_repo, "more")
    snapshot = gitstate.capture(git_repo, blobs.put)
    assert snapshot is not None
    data = blobs.data[snapshot["bundle"]["sha256"]]
    with pytest.raises(
        InvalidInput, match=r"^the git bundle unpacks to more than 100 bytes: too big to scan$"
    ):
        gitstate.bundle_texts(data, cap=100)
    for damaged in (b"not a bundle", data[: len(data) // 2], data.replace(b"PACK", b"PUCK")):
        with pytest.raises(InvalidInput, match=r"^the git bundle cannot be read \("):
            gitstate.bundle_texts(damaged)


def _header(kind: int, size: int) -> bytes:
    """git's type-and-size header of one pack entry."""
    first, size = (kind << 4) | (size & 15), size >> 4
    head = bytearray()
    while size:
        head.append(first | 0x80)
        first, size = size & 0x7F, size >> 7
    head.append(first)
    return bytes(head)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def test_a_delta_that_copies_its_base_over_and_over_is_refused_unread() -> None:
    """A few bytes of delta can make terabytes: its declared size and what it makes are
    checked before and while it is applied."""
    base = _header(3, 4096) + zlib.compress(b"x" * 4096)
    assert len(base) < 128  # so the delta's offset back to it is one byte
    copies = b"\xf0\xff\xff\xff" * 10_000  # copy 16 MiB (of a 4 KiB base) ten thousand times
    for declared, message in (
        (1 << 40, r"^the git bundle unpacks to more than 1000000 bytes: too big to scan$"),
        (5000, r"^the git bundle cannot be read \(a delta makes more than its header says\)$"),
    ):
        delta = _varint(4096) + _varint(declared) + copies
        body = _header(6, len(delta)) + bytes([len(base)]) + zlib.compress(delta)
        pack = b"PACK" + (2).to_bytes(4, "big") + (2).to_bytes(4, "big") + base + body
        bundle = b"# v2 git bundle\n" + b"0" * 40 + b" HEAD\n\n" + pack
        with pytest.raises(InvalidInput, match=message):
            gitstate.bundle_texts(bundle, cap=1_000_000)

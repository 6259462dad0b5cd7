"""The git context as a user meets it: `sessions new` in a repository, `sessions snapshot`,
`restore`, `fork --restore`, shares that show (and scan) the code, locally and remotely."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from tests.fixtures.git import git, repository_state, tree
from tests.fixtures.servers import start_serve, stop
from tests.helpers import run_baton, run_json

FAKE_KEY = "sk-proj-" + "Ab3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5xY7w"


def blob_files(home: Path) -> set[str]:
    return {p.parent.name + p.name for p in (home / "blobs").rglob("*") if p.is_file()}


def test_a_session_made_in_a_repository_records_its_code(
    dirty_repo: Path, baton_home: Path, tmp_path: Path
) -> None:
    before = repository_state(dirty_repo)
    made = run_baton(
        "sessions", "new", "--title", "in a repo", "--json", home=baton_home, cwd=dirty_repo / "src"
    )
    assert made.returncode == 0, made.stderr
    assert repository_state(dirty_repo) == before  # the user's repository is untouched
    session = __import__("orjson").loads(made.stdout)
    g = session["git"]
    assert (g["branch"], g["upstream"], g["ahead"], g["detached"]) == (
        "main",
        "origin/main",
        2,
        False,
    )
    assert g["head"] == git(dirty_repo, "rev-parse", "HEAD")
    assert g["root_commit"] == git(dirty_repo, "rev-list", "--max-parents=0", "HEAD")
    assert g["patch"]["files"] >= 8 and g["bundle"]["commits"] == 2
    assert session["repo"] == g["remote"]
    # outside a repository: no git context, and it says so only when asked for a repo
    plain = run_json("sessions", "new", home=baton_home, cwd=tmp_path)
    assert plain["git"] is None
    refused = run_baton("sessions", "new", "--repo", str(tmp_path), home=baton_home)
    assert refused.returncode == 2 and "is not inside a git repository" in refused.stderr
    human = run_baton("sessions", "new", home=baton_home, cwd=dirty_repo)
    assert (
        "git: " in human.stderr
        and "main at" in human.stderr
        and "2 commit(s) not on origin/main" in human.stderr
    )


def test_snapshot_stores_nothing_when_nothing_changed(dirty_repo: Path, baton_home: Path) -> None:
    sid = run_json("sessions", "new", "--repo", str(dirty_repo), home=baton_home)["id"]
    files = blob_files(baton_home)
    same = run_json("sessions", "snapshot", sid, "--repo", str(dirty_repo), home=baton_home)
    assert same["changed"] is False and same["version"] == 1
    assert blob_files(baton_home) == files
    (dirty_repo / "notes.txt").write_text("changed notes\n")
    changed = run_json("sessions", "snapshot", sid, "--repo", str(dirty_repo), home=baton_home)
    assert changed["changed"] is True and changed["version"] == 2
    # the old patch is freed, the new one kept; the bundle did not change
    assert len(blob_files(baton_home)) == len(files)
    assert changed["git"]["patch"]["sha256"] in blob_files(baton_home)


def test_big_files_are_left_out_by_name_and_reported(git_repo: Path, baton_home: Path) -> None:
    (git_repo / "huge.dat").write_bytes(b"x" * 300_000)
    made = run_baton(
        "sessions", "new", home=baton_home, cwd=git_repo, env={"BATON_FILE_CAP": "100000"}
    )
    assert made.returncode == 0
    assert "git: left out huge.dat: file over 100000 bytes" in made.stderr


def test_restore_brings_back_the_code_in_a_new_folder(
    dirty_repo: Path, baton_home: Path, tmp_path: Path
) -> None:
    sid = run_json("sessions", "new", "--repo", str(dirty_repo), home=baton_home)["id"]
    before = repository_state(dirty_repo)
    target = tmp_path / "restored"
    done = run_baton("restore", sid, "--path", str(target), home=baton_home, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(target)
    assert repository_state(dirty_repo) == before
    expected = {
        k: v
        for k, v in tree(dirty_repo).items()
        if not k.endswith(".log") and not k.startswith("build")
    }
    assert tree(target) == expected
    assert git(target, "rev-parse", "--abbrev-ref", "HEAD") == f"baton/{sid}"
    assert git(target, "rev-parse", "HEAD") == git(dirty_repo, "rev-parse", "HEAD")
    # a folder that is not empty is refused, and left as it was
    again = run_baton("restore", sid, "--path", str(target), home=baton_home, cwd=tmp_path)
    assert again.returncode == 2 and "is not an empty folder" in again.stderr


def test_shares_show_the_code_scan_the_patch_and_restore(
    git_repo: Path, baton_home: Path, tmp_path: Path
) -> None:
    (git_repo / "config.py").write_text(f"API_KEY = '{FAKE_KEY}'\n")
    sid = run_json("sessions", "new", "--repo", str(git_repo), home=baton_home)["id"]
    blocked = run_baton("share", sid, "--json", home=baton_home)
    assert blocked.returncode == 1
    findings = __import__("orjson").loads(blocked.stdout)["error"]["findings"]
    assert [(f["where"], f["kind"]) for f in findings] == [("git patch", "OpenAI Token")]
    share = run_json("share", sid, "--redact", home=baton_home)
    g = share["git"]
    assert (g["branch"], g["head"]) == ("main", git(git_repo, "rev-parse", "HEAD"))
    assert g["remote"] == str(git_repo.parent / "origin.git")
    assert g["patch"] is None and "the patch held 1 secret(s)" in g["patch_dropped"]
    assert "root" not in g  # the sharer's local path is not published
    assert FAKE_KEY not in str(share)
    # the share restores: the commit comes back, the dropped patch does not
    target = tmp_path / "from-share"
    done = run_baton("restore", share["id"], "--path", str(target), home=baton_home, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "not restored: the patch held 1 secret(s)" in done.stderr
    assert not (target / "config.py").exists()
    assert git(target, "rev-parse", "--abbrev-ref", "HEAD") == f"baton/share-{share['id']}"


def test_fork_with_restore_in_one_step(dirty_repo: Path, baton_home: Path, tmp_path: Path) -> None:
    sid = run_json("sessions", "new", "--repo", str(dirty_repo), home=baton_home)["id"]
    share = run_json("share", sid, home=baton_home)
    target = tmp_path / "forked-code"
    forked = run_json("fork", share["id"], "--restore", str(target), home=baton_home, cwd=tmp_path)
    assert forked["forked_from"]["share"] == share["id"]
    assert forked["restore"]["path"] == str(target)
    assert (target / "notes.txt").read_text() == "untracked notes\n"
    assert git(target, "rev-parse", "--abbrev-ref", "HEAD") == f"baton/{forked['id']}"


def test_remote_mode_keeps_the_snapshot_on_the_server(dirty_repo: Path, tmp_path: Path) -> None:
    served = start_serve(tmp_path / "server-home")
    try:
        client = tmp_path / "client-home"
        assert run_baton("login", served.url, "--token", served.token, home=client).returncode == 0
        made = run_json("sessions", "new", "--repo", str(dirty_repo), home=client)
        assert made["git"]["bundle"]["commits"] == 2
        assert blob_files(served.home)  # the patch and bundle went to the server
        target = tmp_path / "remote-restore"
        done = run_baton("restore", made["id"], "--path", str(target), home=client, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert (target / "notes.txt").read_text() == "untracked notes\n"
        deleted = run_baton("sessions", "delete", made["id"], "-y", home=client)
        assert deleted.returncode == 0
        assert blob_files(served.home) == set()  # deleting the session frees its patch and bundle
    finally:
        stop(served)


def test_a_bundle_over_its_cap_is_left_out_and_said(dirty_repo: Path, baton_home: Path) -> None:
    made = run_baton(
        "sessions", "new", "--json", home=baton_home, cwd=dirty_repo, env={"BATON_BUNDLE_CAP": "10"}
    )
    assert made.returncode == 0, made.stderr
    g = __import__("orjson").loads(made.stdout)["git"]
    assert g["bundle"] is None and g["ahead"] == 2
    [entry] = [o for o in g["omitted"] if "bundle" in o["path"]]
    assert entry["reason"] == "bundle over 10 bytes" and entry["size"] > 10
    human = run_baton(
        "sessions", "new", home=baton_home, cwd=dirty_repo, env={"BATON_BUNDLE_CAP": "10"}
    )
    assert (
        "git: left out the bundle of 2 commit(s) not on origin/main: bundle over 10 bytes"
        in human.stderr
    )


def test_a_key_committed_then_deleted_blocks_the_share_until_redacted_or_left_out(
    git_repo: Path, baton_home: Path
) -> None:
    """The bundle of unpushed commits is scanned like everything else a share publishes."""
    from tests.fixtures.git import commit_all

    (git_repo / "deploy.env").write_text(f"OPENAI_API_KEY={FAKE_KEY}\n")
    added = commit_all(git_repo, "deploy settings")
    (git_repo / "deploy.env").unlink()
    head = commit_all(git_repo, "remove the key")
    sid = run_json("sessions", "new", "--repo", str(git_repo), home=baton_home)["id"]
    # The bundle holds the commits not on origin/main as changes to what origin has: the
    # tree that lists the file is such a change, so the file is named by its blob
    # (`git log --find-object` finds its commit).
    blob = git(git_repo, "rev-parse", f"{added}:deploy.env")
    where = f"git bundle: blob {blob[:7]}"
    excerpt = f"OpenAI Token {FAKE_KEY[:4]}…{FAKE_KEY[-2:]} (48 chars)"

    blocked = run_baton("share", sid, home=baton_home)
    assert blocked.returncode == 1
    assert blocked.stdout == f"  {where}: {excerpt}\n"
    assert blocked.stderr == (
        "error: this session holds 1 secret(s); nothing was shared. Remove them, or share "
        "with --redact (or --allow-secrets, or --no-code)\n"
    )

    redacted = run_baton("share", sid, "--redact", home=baton_home)
    assert redacted.returncode == 0, redacted.stderr
    dropped = "the bundle of 2 commit(s) held 1 secret(s), so it is not shared"
    assert redacted.stderr.splitlines() == [
        installs(redacted.stdout),
        f"  published: 0 messages, commit {head[:7]} only, no code changes",
        f"  not published: {dropped}",
        f"  redacted {where}: {excerpt}",
    ]
    as_json = run_json("share", sid, "--redact", home=baton_home)
    assert as_json["git"]["bundle"] is None and as_json["git"]["bundle_dropped"] == dropped
    assert as_json["withheld"] == [dropped]
    assert as_json["published"] == f"0 messages, commit {head[:7]} only, no code changes"
    # its restore says why the unpushed commits are missing
    target = git_repo.parent / "from-share"
    failed = run_baton("restore", as_json["id"], "--path", str(target), home=baton_home)
    assert failed.returncode == 1 and not target.exists()
    assert failed.stderr == (
        f"error: commit {head} is not in {git_repo.parent / 'origin.git'} and the session "
        f"recorded no bundle ({dropped}): restore from a repository that has it "
        "(--from PATH_OR_URL)\n"
    )
    done = run_baton(
        "restore", as_json["id"], "--path", str(target), "--from", str(git_repo), home=baton_home
    )
    assert done.returncode == 0, done.stderr
    assert f"not restored: {dropped}" in done.stderr
    assert not (target / "deploy.env").exists()

    no_code = run_baton("share", sid, "--no-code", home=baton_home)
    assert no_code.returncode == 0, no_code.stderr
    assert no_code.stderr.splitlines() == [
        installs(no_code.stdout),
        "  published: 0 messages, no code",
    ]
    shown = run_json("share", sid, "--no-code", home=baton_home)
    assert (shown["git"]["bundle"], shown["git"]["patch"], shown["published"]) == (
        None,
        None,
        "0 messages, no code",
    )


def installs(share_url: str) -> str:
    """The line under a share's link that installs this baton from the server that shared it."""
    server = share_url.strip().split("/share/")[0]
    return (
        f"  no baton there? pipx install {server}/install/baton-{version('baton')}-py3-none-any.whl"
    )


def test_share_says_what_it_publishes(dirty_repo: Path, baton_home: Path) -> None:
    sid = run_json("sessions", "new", "--repo", str(dirty_repo), home=baton_home)["id"]
    done = run_baton("share", sid, home=baton_home)
    assert done.returncode == 0, done.stderr
    files = run_json("sessions", "show", sid, home=baton_home)["git"]["patch"]["files"]
    assert done.stderr.splitlines() == [
        installs(done.stdout),
        f"  published: 0 messages, 2 commits not on origin/main, uncommitted changes ({files} files)",
    ]


def test_sessions_of_a_repository_by_a_folder_of_it(
    dirty_repo: Path, baton_home: Path, tmp_path: Path
) -> None:
    mine = run_json("sessions", "new", "--repo", str(dirty_repo), home=baton_home)
    run_json("sessions", "new", "--no-git", "--title", "elsewhere", home=baton_home)
    listed = run_json("sessions", "list", "--repo", str(dirty_repo / "src"), home=baton_home)
    assert [s["id"] for s in listed] == [mine["id"]]
    by_key = run_json("sessions", "list", "--repo", mine["repo"], home=baton_home)
    assert [s["id"] for s in by_key] == [mine["id"]]
    outside = tmp_path / "plain"  # not a repository: nothing of it
    outside.mkdir()
    assert run_json("sessions", "list", "--repo", str(outside), home=baton_home) == []

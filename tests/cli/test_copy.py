"""`baton copy`: a whole store into another and back, exactly, resumable after kill -9, and
verified. `build_source`, `contents` and `assert_copied` take `Side`s, so a PostgreSQL + S3
test reuses them with other URLs:

    side = Side("postgresql://…", "postgresql://…", "s3://bucket?endpoint=…", explicit_blobs=True)
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from baton import copying
from baton.accounts import Accounts
from baton.core.ids import sha256_hex
from baton.core.models import StoredMessage, format_time, parse_time
from baton.scanning import SecretScanner
from baton.service import Service
from baton.store import open_blobs, open_store
from baton.store.base import BlobStore, Store
from tests.helpers import run_baton, run_json, text_message, tool_turn

FAKE_KEY = "sk-proj-" + "Qw3eR5tY7uI9oP1aS3dF5gH7jK9lZ1xC3vB5nM7q"
PASSWORD = "correct horse battery staple"
BIG = 70 * 1024  # over the 64 KiB a part keeps inline: it becomes a blob


@dataclass(frozen=True)
class Side:
    """One store as `baton copy` names it (`--from NAME [--from-blobs URL]`), and as every
    other command reaches it (BATON_DATABASE_URL and BATON_BLOB_URL)."""

    name: str
    store_url: str
    blob_url: str
    explicit_blobs: bool = False  # pass --from-blobs / --to-blobs

    def copy_args(self, direction: str) -> list[str]:
        args = [f"--{direction}", self.name]
        if self.explicit_blobs:
            args += [f"--{direction}-blobs", self.blob_url]
        return args

    def env(self, user: str) -> dict[str, str]:
        return {
            "BATON_DATABASE_URL": self.store_url,
            "BATON_BLOB_URL": self.blob_url,
            "BATON_USER": user,
        }

    @contextmanager
    def open(self) -> Iterator[tuple[Store, BlobStore]]:
        store = open_store(self.store_url)
        try:
            yield store, open_blobs(self.blob_url)
        finally:
            store.close()


def folder(path: Path) -> Side:
    """A data folder, as `baton copy` takes it: baton.db and blobs/ inside."""
    return Side(str(path), f"sqlite://{path / 'baton.db'}", f"file://{path / 'blobs'}")


def sqlite_file(path: Path, blobs: Path | None = None) -> Side:
    """A sqlite URL; its blobs beside it unless `blobs` names them (then passed explicitly)."""
    blob_path = blobs or path.parent / "blobs"
    return Side(f"sqlite://{path}", f"sqlite://{path}", f"file://{blob_path}", blobs is not None)


@dataclass
class Built:
    """What `build_source` made, to check a copy against."""

    sessions: dict[str, str] = field(default_factory=dict)  # session id -> owner's handle
    tokens: dict[str, str] = field(default_factory=dict)  # live API token -> handle
    passwords: dict[str, str] = field(default_factory=dict)  # handle -> password
    blobs: set[str] = field(default_factory=set)
    headless: list[str] = field(default_factory=list)  # shares whose messages are gone
    shares: int = 0


def _clock(start: str = "2025-03-01T09:00:00.000000Z") -> Any:
    """A clock one second further on at every reading: every timestamp differs, and a share
    that expires in a minute has long expired by the time the copy runs."""
    now = [parse_time(start)]

    def tick() -> str:
        now[0] += timedelta(seconds=1)
        return format_time(now[0])

    return tick


def build_source(side: Side) -> Built:
    """A store with a bit of everything: two accounts with tokens (one revoked, one login
    code) and a password, sessions with tool calls, usage, a git snapshot, a large tool
    output and an attachment (blobs), a fork sharing a prefix, a message with a secret,
    and live, redacted, revoked, expired shares and a revoked share of a deleted session."""
    built = Built()
    with side.open() as (store, blobs):
        service = Service(store, blobs, scanner=SecretScanner({}), clock=_clock())
        accounts = service.accounts
        alice = service.account("alice", "Alice Example")
        bob = accounts.add("bob", "Bob Builder")
        built.tokens[accounts.create_token(alice.id, "laptop")[1]] = "alice"
        built.tokens[accounts.create_token(bob.id, "ci")[1]] = "bob"
        old, _ = accounts.create_token(alice.id, "old laptop")
        accounts.revoke(alice.id, old.id)
        accounts.login_code(bob.id)
        accounts.set_password(alice.id, PASSWORD)
        built.passwords["alice"] = PASSWORD

        patch = b"diff --git a/app.py b/app.py\n+print('hello')\n"
        service.put_blob(sha256_hex(patch), patch, alice.id)
        git = {
            "remote": "https://example.com/team/app.git",
            "root_commit": "a" * 40,
            "branch": "main",
            "head": "b" * 40,
            "patch": {"sha256": sha256_hex(patch), "size": len(patch), "files": 1},
        }
        work = service.create(
            alice.id,
            task="fix the login bug",
            metadata={"mode": "build", "model": "m1", "todo": [{"text": "tests", "done": False}]},
            git=git,
        )
        first = service.append(
            alice.id,
            work.id,
            [
                text_message("user", "Why does login fail?"),
                *tool_turn("c1", "bash", {"cmd": "pytest -x"}, "F" * BIG),
                text_message(
                    "assistant",
                    "The cookie is not set.",
                    model="m1",
                    usage={"input_tokens": 1200, "output_tokens": 80, "cost_usd": 0.0123},
                ),
            ],
        ).appended
        service.append(alice.id, work.id, [text_message("user", "Fix it, then.")])
        service.update(alice.id, work.id, status="paused")
        fork = service.fork(alice.id, work.id, at=first[2].id)  # shares three messages
        service.append(
            alice.id,
            fork.id,
            [
                text_message("user", "Try another way."),
                text_message("assistant", "Rewriting the middleware.", model="m2"),
            ],
        )
        service.rename(alice.id, fork.id, "Login, second attempt")
        secret = service.create(alice.id, title="deploy")
        service.append(
            alice.id,
            secret.id,
            [
                text_message("user", "deploy it"),
                text_message("user", f"use OPENAI_API_KEY={FAKE_KEY}"),
                text_message("assistant", "Deployed."),
            ],
        )
        service.share(alice.id, secret.id, mode="redact")  # copies of the affected messages
        empty = service.create(alice.id, title="nothing yet", platform="api")

        notes = service.create(bob.id, task="write the release notes")
        service.append(
            bob.id,
            notes.id,
            [
                text_message("user", "Here is the logo."),
                {
                    "role": "user",
                    "parts": [{"type": "file", "path": "logo.svg", "data": "<svg/>" * (BIG // 6)}],
                },
                text_message("assistant", "Noted.", usage={"input_tokens": 7, "output_tokens": 2}),
            ],
        )
        service.share(bob.id, notes.id)
        service.share(bob.id, notes.id, expires="1m")  # expired long before the copy runs
        service.revoke(bob.id, service.share(bob.id, notes.id).id)
        gone = service.create(bob.id, title="scratch")
        service.append(bob.id, gone.id, [text_message("user", "throwaway")])
        lost = service.share(bob.id, gone.id)
        service.revoke(bob.id, lost.id)
        service.delete(bob.id, gone.id)  # its messages go; the revoked share stays
        built.headless.append(lost.id)

        for sid, handle in [
            (work.id, "alice"),
            (fork.id, "alice"),
            (secret.id, "alice"),
            (empty.id, "alice"),
            (notes.id, "bob"),
        ]:
            built.sessions[sid] = handle
        built.blobs = store.referenced_blobs()
        built.shares = len(store.list_shares())
    assert len(built.blobs) == 3  # the tool output, the attachment, the git patch
    return built


def _reachable(store: Store) -> dict[str, StoredMessage]:
    heads = [s.head for s in store.iter_sessions()] + [s.head for s in store.list_shares()]
    ids = {m.id for head in heads if head for m in store.chain(head)}
    # `blobs` is derived from the parts, and not every store fills it in when reading
    return {
        i: dataclasses.replace(sm, blobs=()) for i, sm in store.get_messages(sorted(ids)).items()
    }


def contents(side: Side) -> dict[str, Any]:
    """Everything a store holds, as comparable values."""
    with side.open() as (store, blobs):
        accounts = store.list_accounts()
        return {
            "accounts": accounts,
            "passwords": {a.id: store.password_hash(a.id) for a in accounts},
            "tokens": {a.id: store.list_tokens(a.id) for a in accounts},
            "sessions": sorted(store.iter_sessions(), key=lambda s: s.id),
            "shares": store.list_shares(),
            "messages": _reachable(store),
            "blobs": {sha: blobs.get(sha) for sha in sorted(store.referenced_blobs())},
        }


def stored_messages(side: Side) -> int:
    """How many message rows the store holds (each message once, however many chains)."""
    if side.store_url.startswith("sqlite://"):
        path = side.store_url[len("sqlite://") :]
        with sqlite3.connect(path) as conn:
            return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
    with side.open() as (store, _):
        return len(_reachable(store))


def exports(side: Side, built: Built, cli_home: Path) -> dict[str, Any]:
    """`baton sessions export ID --format json` of every session, as its owner."""
    found = {}
    for sid, handle in built.sessions.items():
        result = run_baton(
            "sessions", "export", sid, "--format", "json", home=cli_home, env=side.env(handle)
        )
        assert result.returncode == 0, result.stderr
        doc = orjson.loads(result.stdout)
        doc.pop("exported_at")
        found[sid] = doc
    return found


def copy(src: Side, dst: Side, cli_home: Path) -> dict[str, Any]:
    summary: dict[str, Any] = run_json(
        "copy", *src.copy_args("from"), *dst.copy_args("to"), home=cli_home
    )
    return summary


def expected_copy(src: Side, built: Built) -> dict[str, Any]:
    """What a copy of `src` holds: the same, but a revoked share whose messages are gone
    has no head (no store takes a share whose head it lacks)."""
    want = contents(src)
    want["shares"] = [
        dataclasses.replace(s, head=None) if s.id in built.headless else s for s in want["shares"]
    ]
    return want


def assert_copied(
    src: Side, dst: Side, built: Built, cli_home: Path, source_exports: dict[str, Any]
) -> None:
    """`dst` holds exactly what `src` does, and works: the same exports, tokens and
    passwords made for the source authenticate against the copy, each message is stored
    once (a fork's prefix too)."""
    assert contents(dst) == expected_copy(src, built)
    assert exports(dst, built, cli_home) == source_exports
    assert stored_messages(dst) == stored_messages(src)
    with dst.open() as (store, _):
        accounts = Accounts(store)
        for secret, handle in built.tokens.items():
            found = accounts.authenticate_token(secret, touch=False)
            assert found is not None and found[0].handle == handle
        for handle, password in built.passwords.items():
            account = accounts.check_password(handle, password)
            assert account is not None and account.handle == handle
        assert accounts.check_password("alice", "not the password") is None
        chains = sum(s.message_count for s in store.iter_sessions())
        assert stored_messages(dst) < chains  # the fork's prefix is stored once


def roundtrip(src: Side, dst: Side, tmp_path: Path) -> None:
    """Build `src`, copy it into `dst` with the CLI, and check the copy."""
    built = build_source(src)
    cli_home = tmp_path / "cli-home"
    summary = copy(src, dst, cli_home)
    assert summary["verified"]["ok"] is True
    assert_copied(src, dst, built, cli_home, exports(src, built, cli_home))


# --------------------------------------------------------------------------------------


def test_a_folder_copies_into_another_exactly(tmp_path: Path) -> None:
    src, dst = folder(tmp_path / "a"), folder(tmp_path / "b")
    built = build_source(src)
    cli_home = tmp_path / "cli-home"
    summary = copy(src, dst, cli_home)
    assert summary["from"] == {"store": src.store_url, "blobs": src.blob_url}
    assert summary["to"] == {"store": dst.store_url, "blobs": dst.blob_url}
    want = contents(src)
    assert {k: summary[k] for k in ("accounts", "tokens", "sessions", "shares", "blobs")} == {
        "accounts": 2,
        "tokens": 4,  # two live, one revoked, one login code
        "sessions": 5,
        "shares": built.shares,
        "blobs": 3,
    }
    assert summary["messages"] == len(want["messages"]) == stored_messages(src)
    assert summary["skipped"] == dict.fromkeys(copying.SKIPPABLE, 0)
    assert summary["headless_shares"] == built.headless and summary["missing_blobs"] == []
    assert summary["warnings"] == [
        f"share {built.headless[0]} is revoked and its messages are gone from the source; "
        "copied without them (it still answers 410)"
    ]
    assert summary["verified"] == {
        "sessions": 5,
        "shares": built.shares - 1,
        "messages": summary["verified"]["messages"],
        "problems": [],
        "ok": True,
    }
    assert_copied(src, dst, built, cli_home, exports(src, built, cli_home))
    # the revoked share of a deleted session still answers 410 in the copy, not 404
    gone = run_baton(
        "fork", built.headless[0], home=cli_home, env={**dst.env("alice")}, cwd=tmp_path
    )
    assert gone.returncode == 1 and gone.stderr == f"error: share {built.headless[0]} was revoked\n"
    # a second run finds everything there and writes nothing
    again = copy(src, dst, cli_home)
    assert {k: again[k] for k in ("accounts", "tokens", "sessions", "shares", "messages")} == (
        dict.fromkeys(("accounts", "tokens", "sessions", "shares", "messages"), 0)
    )
    assert again["skipped"] == {
        **dict.fromkeys(copying.SKIPPABLE, 0),
        "accounts": 2,
        "tokens": 4,
        "sessions": 5,
        "shares": built.shares,
        "blobs": 0,  # the blobs of skipped objects are not even looked at
    }
    assert again["warnings"] == [] and again["verified"]["ok"] is True
    assert contents(dst) == expected_copy(src, built)


def test_round_trip_a_to_b_to_c_gives_identical_exports(tmp_path: Path) -> None:
    a = folder(tmp_path / "a")
    b = sqlite_file(tmp_path / "b" / "store.db")  # blobs beside it: b/blobs
    c = sqlite_file(tmp_path / "c" / "c.db", blobs=tmp_path / "c-blobs")  # --to-blobs
    built = build_source(a)
    cli_home = tmp_path / "cli-home"
    source_exports = exports(a, built, cli_home)
    copy(a, b, cli_home)
    copy(b, c, cli_home)
    assert (tmp_path / "b" / "blobs").is_dir() and (tmp_path / "c-blobs").is_dir()
    assert_copied(a, b, built, cli_home, source_exports)
    assert_copied(a, c, built, cli_home, source_exports)


def test_the_human_summary(tmp_path: Path) -> None:
    src, dst = folder(tmp_path / "a"), folder(tmp_path / "b")
    built = build_source(src)
    result = run_baton("copy", "--from", src.name, "--to", dst.name, home=tmp_path / "cli-home")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        f"copied 2 account(s), 4 token(s), 5 session(s), {built.shares} share(s), "
    )
    assert lines[0].endswith(f" and 3 blob(s) into {dst.store_url}")
    assert lines[1].startswith(f"verified: 5 session(s), {built.shares - 1} share(s), ")
    assert result.stderr == (
        f"warning: share {built.headless[0]} is revoked and its messages are gone from the "
        "source; copied without them (it still answers 410)\n"
    )
    again = run_baton("copy", "--from", src.name, "--to", dst.name, home=tmp_path / "cli-home")
    assert again.stdout.splitlines()[1] == (
        f"already there, left as they are: 2 account(s), 4 token(s), 5 session(s), "
        f"{built.shares} share(s)"
    )


KILLER = """
import os, signal, sys
from baton import copying

def progress(done, total):
    if done == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)

src = copying.locate(sys.argv[1], None, "--from-blobs")
dst = copying.locate(sys.argv[2], None, "--to-blobs")
copying.copy(src, dst, progress=progress)
"""


def test_a_copy_killed_midway_resumes_to_the_same_result(tmp_path: Path) -> None:
    src, dst, clean = folder(tmp_path / "a"), folder(tmp_path / "b"), folder(tmp_path / "c")
    built = build_source(src)
    cli_home = tmp_path / "cli-home"
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, src.name, dst.name, "3"],
        capture_output=True,
        timeout=120,
        env={**os.environ, "BATON_HOME": str(cli_home)},
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # kill -9 after three sessions: the target holds those three, whole, and nothing else
    with dst.open() as (store, blobs):
        assert len(list(store.iter_sessions())) == 3 and store.list_shares() == []
        partial = copying.verify_store(store, blobs)
        assert partial.ok and partial.sessions == 3, partial.problems
    resumed = copy(src, dst, cli_home)
    assert resumed["skipped"]["accounts"] == 2 and resumed["skipped"]["tokens"] == 4
    assert resumed["skipped"]["sessions"] == 3 and resumed["sessions"] == 2
    assert resumed["shares"] == built.shares and resumed["verified"]["ok"] is True
    copy(src, clean, cli_home)
    assert contents(dst) == contents(clean) == expected_copy(src, built)
    assert stored_messages(dst) == stored_messages(clean) == stored_messages(src)
    assert_copied(src, dst, built, cli_home, exports(src, built, cli_home))


def test_an_interrupted_copy_in_process_leaves_whole_objects(tmp_path: Path) -> None:
    src, dst = folder(tmp_path / "a"), folder(tmp_path / "b")
    built = build_source(src)

    class Stop(Exception):
        pass

    def stop_at(n: int) -> Any:
        def progress(done: int, total: int) -> None:
            if done == n:
                raise Stop

        return progress

    with src.open() as (a, a_blobs), dst.open() as (b, b_blobs):
        with pytest.raises(Stop):
            copying.copy_store(a, a_blobs, b, b_blobs, progress=stop_at(6))  # 5 sessions, 1 share
        assert len(list(b.iter_sessions())) == 5 and len(b.list_shares()) == 1
        report = copying.copy_store(a, a_blobs, b, b_blobs)
        assert (report.sessions, report.shares) == (0, built.shares - 1)
        assert report.skipped["sessions"] == 5 and report.skipped["shares"] == 1
        assert copying.verify_store(b, b_blobs).ok
    assert contents(dst) == expected_copy(src, built)


def test_a_copy_of_an_import_left_unscanned_is_scanned_first(tmp_path: Path) -> None:
    """The embedded store leaves an import's secret scan for later; a copy, whose target takes
    its messages as scanned, scans them first: the target still blocks the share."""
    from baton.core.errors import SecretsFound
    from baton.store.blobs import MemoryBlobStore
    from baton.store.memory import MemoryStore

    key = "sk-proj-" + "Ab3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5xY7w"
    elsewhere = Service(MemoryStore(), MemoryBlobStore(), scanner=SecretScanner({}))
    carol = elsewhere.account("carol").id
    made = elsewhere.create(carol)
    texts = ["hello", "hi", f"my key is {key}", "noted"]
    elsewhere.append(carol, made.id, [text_message("user", t) for t in texts])
    document = orjson.dumps(elsewhere.export(carol, made.id))
    src, dst = folder(tmp_path / "a"), folder(tmp_path / "b")
    with src.open() as (a, a_blobs), dst.open() as (b, b_blobs):
        first = Service(a, a_blobs, scanner=SecretScanner({}))
        owner = first.account("alice").id
        imported = first.import_document(owner, document).session
        assert len(a.unscanned(10)) == 4
        copying.copy_store(a, a_blobs, b, b_blobs)
        assert a.unscanned(10) == []
        with pytest.raises(SecretsFound) as caught:
            Service(b, b_blobs, scanner=SecretScanner({})).share(owner, imported.id)
        assert [(f["position"], f["kind"]) for f in caught.value.findings] == [(3, "OpenAI Token")]


def test_a_copy_is_no_better_scanned_for_secrets_than_its_source(tmp_path: Path) -> None:
    """A store whose messages older rules scanned gives a copy that a rescan still reads."""
    src, dst = folder(tmp_path / "a"), folder(tmp_path / "b")
    build_source(src)
    with src.open() as (a, a_blobs), dst.open() as (b, b_blobs):
        assert b.scan_rules() == 2
        a.set_scan_rules(1)
        copying.copy_store(a, a_blobs, b, b_blobs)
        assert b.scan_rules() == 1


def test_a_store_is_not_copied_onto_itself(tmp_path: Path) -> None:
    src = folder(tmp_path / "a")
    build_source(src)
    before = contents(src)
    for target in (src.name, src.store_url, f"{tmp_path}/a/../a"):
        result = run_baton("copy", "--from", src.name, "--to", target, home=tmp_path / "h")
        assert result.returncode == 2, target
        assert result.stderr == (
            f"error: the source and the target are the same store ({src.store_url}); "
            "copy to another one\n"
        )
    assert contents(src) == before


def test_unknown_schemes_and_missing_stores_are_one_line_errors(tmp_path: Path) -> None:
    src = folder(tmp_path / "a")
    build_source(src)
    home = tmp_path / "h"
    unknown = run_baton("copy", "--from", src.name, "--to", "ftp://host/baton", home=home)
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("error: unknown store URL 'ftp://host/baton': use ")
    assert unknown.stderr.count("\n") == 1
    blobs = run_baton(
        "copy",
        "--from",
        src.name,
        "--to",
        str(tmp_path / "b"),
        "--to-blobs",
        "ftp://x/y",
        home=home,
    )
    assert blobs.returncode == 2
    assert blobs.stderr.startswith("error: unknown blob URL 'ftp://x/y': use ")
    assert blobs.stderr.count("\n") == 1
    assert not (tmp_path / "b").exists()  # no store was made for nothing
    missing = run_baton("copy", "--from", str(tmp_path / "nothing"), "--to", src.name, home=home)
    assert missing.returncode == 2
    assert missing.stderr == (
        f"error: no baton store at {tmp_path / 'nothing' / 'baton.db'} (there is no baton.db "
        "there)\n"
    )
    assert not (tmp_path / "nothing").exists()  # reading a source never makes one
    bare = run_baton("copy", "--from", src.name, "--to", "sqlite://", home=home)
    assert bare.returncode == 2
    assert bare.stderr == "error: a sqlite URL needs a file: sqlite:///PATH/baton.db\n"
    usage = run_baton("copy", "--from", src.name, home=home)
    assert usage.returncode == 2 and "Missing option '--to'" in usage.stderr


def _corrupt_first_message(db: Path) -> str:
    """Change the text of a stored message behind the store's back."""
    with sqlite3.connect(db) as conn:
        mid, body = conn.execute(
            "SELECT id, body FROM messages WHERE depth = 0 ORDER BY rowid LIMIT 1"
        ).fetchone()
        doc = orjson.loads(body)
        doc["parts"][0]["text"] = "something else"
        conn.execute("UPDATE messages SET body = ? WHERE id = ?", (orjson.dumps(doc), mid))
    return str(mid)


def test_a_copy_that_does_not_verify_fails_in_one_line(tmp_path: Path) -> None:
    src, dst = folder(tmp_path / "a"), folder(tmp_path / "b")
    build_source(src)
    cli_home = tmp_path / "cli-home"
    copy(src, dst, cli_home)
    mid = _corrupt_first_message(tmp_path / "b" / "baton.db")
    with dst.open() as (store, blobs):
        report = copying.verify_store(store, blobs)
    assert not report.ok
    assert all(mid in p and "does not match its content" in p for p in report.problems)
    assert report.problems[0].startswith("session ses_")
    result = run_baton("copy", "--from", src.name, "--to", dst.name, home=cli_home)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(
        f"error: the copy in {dst.store_url} does not verify: {len(report.problems)} "
        f"problem(s), the first: {report.problems[0]}"
    )
    as_json = run_baton("copy", "--from", src.name, "--to", dst.name, "--json", home=cli_home)
    assert as_json.returncode == 1
    assert orjson.loads(as_json.stdout)["verified"]["problems"] == report.problems
    # a blob the target lost is a problem too
    victim = sorted((tmp_path / "b" / "blobs").rglob("*"))[-1]
    victim.unlink()
    with dst.open() as (store, blobs):
        problems = copying.verify_store(store, blobs).problems
    assert f"blob {victim.parent.name}{victim.name} is referenced but not stored" in problems


def test_urls_are_read_as_folders_sqlite_files_or_other_stores(tmp_path: Path) -> None:
    home = copying.locate(str(tmp_path / "h"), None, "--to-blobs")
    assert home == copying.Location(
        f"sqlite://{tmp_path / 'h' / 'baton.db'}",
        f"file://{tmp_path / 'h' / 'blobs'}",
        "--to-blobs",
    )
    db = copying.locate(f"sqlite://{tmp_path}/x/my.db", None, "--from-blobs")
    assert db.blob_url == f"file://{tmp_path / 'x' / 'blobs'}"
    pg = copying.locate("postgresql://baton:pw@db/baton", None, "--to-blobs")
    assert pg.blob_url is None and pg.describe() == "postgresql://baton:***@db/baton"
    given = copying.locate("postgresql://db/baton", "s3://b?endpoint=http://s3:8333", "--to-blobs")
    assert given.blob_url == "s3://b?endpoint=http://s3:8333"


def test_a_copy_into_memory_is_a_dry_run(tmp_path: Path) -> None:
    src = folder(tmp_path / "a")
    built = build_source(src)
    summary = run_json("copy", "--from", src.name, "--to", "memory://", home=tmp_path / "h")
    assert summary["to"] == {"store": "memory://", "blobs": "memory://"}
    assert summary["sessions"] == 5 and summary["shares"] == built.shares
    assert summary["blobs"] == 3 and summary["verified"]["ok"] is True


@pytest.mark.slow
def test_sqlite_to_postgres_and_s3_and_back_gives_identical_exports(
    tmp_path: Path, postgres_url: str, s3_blob_url: str
) -> None:
    """The issue's round trip: the embedded store into PostgreSQL + S3 (a real server of
    each), and from there into a new embedded store; every export is the same all along,
    and copying again adds nothing."""
    a = folder(tmp_path / "a")
    b = Side(postgres_url, postgres_url, s3_blob_url, explicit_blobs=True)
    c = folder(tmp_path / "c")
    built = build_source(a)
    cli_home = tmp_path / "cli-home"
    source_exports = exports(a, built, cli_home)
    to_pg = copy(a, b, cli_home)
    assert to_pg["verified"]["ok"] is True and to_pg["blobs"] == 3
    back = copy(b, c, cli_home)
    assert back["verified"]["ok"] is True
    assert_copied(a, b, built, cli_home, source_exports)
    assert_copied(a, c, built, cli_home, source_exports)
    again = copy(a, b, cli_home)
    assert (again["sessions"], again["messages"], again["blobs"]) == (0, 0, 0)
    assert again["skipped"]["sessions"] == 5


def test_repositories_environments_and_runs_are_copied(tmp_path: Path) -> None:
    """Repositories and environments keep their ids and sealed parts (they open with the
    same BATON_SECRET); runs are copied as they ended, one still queued as failed."""
    from baton.core.runs import DONE, FAILED, PREPARING, RUNNING
    from baton.sealing import Unsealable

    src, dst = folder(tmp_path / "a"), folder(tmp_path / "b")
    with src.open() as (store, blobs):
        service = Service(store, blobs, scanner=SecretScanner({}), secret="the-server-secret")
        alice = service.account("alice", "Alice Example").id
        repo = service.add_repo(alice, "https://ci:hunter2-token@example.com/team/app.git")
        env = service.add_environment(
            alice, "deploy", variables={"MODE": "test"}, secrets={"API_TOKEN": "tok-123456789"}
        )
        finished, ended_session = service.start_run(alice, "first", repo=repo.id)
        service.move_run(finished.id, PREPARING, worker="w1")
        service.move_run(finished.id, RUNNING)
        finished = service.move_run(finished.id, DONE)
        waiting, waiting_session = service.start_run(
            alice, "second", repo=repo.id, environment=env.id
        )
    cli_home = tmp_path / "cli-home"
    summary = copy(src, dst, cli_home)
    assert {k: summary[k] for k in ("repos", "environments", "sessions", "runs")} == {
        "repos": 1,
        "environments": 1,
        "sessions": 2,
        "runs": 2,
    }
    assert summary["warnings"] == [
        "2 repositories and environments hold sealed credentials or secrets: they open only "
        "where BATON_SECRET is the source's (else set them again in the target)"
    ]
    with dst.open() as (store, blobs):
        same = Service(store, blobs, scanner=SecretScanner({}), secret="the-server-secret")
        assert same.repos(alice) == [repo]
        assert same.environments(alice) == [env]
        assert same.run(alice, finished.id) == finished  # as it ended
        copied = same.run(alice, waiting.id)
        assert (copied.state, copied.error) == (
            FAILED,
            "the store was copied while this run was queued: it did not run here "
            "(continue the session to go on)",
        )
        context = same.run_context(waiting.id)  # what a worker opens: the same secrets
        assert context.secrets == {"API_TOKEN": "tok-123456789"}
        assert context.credentials == "ci:hunter2-token"
        assert same.resubmit_runs(0) == []  # nothing queued: the target does not run it
        again, _ = same.start_run(alice, "go on", session_id=waiting_session.id)
        assert again.state == "queued"  # the session is not held busy
        other = Service(store, blobs, scanner=SecretScanner({}), secret="another-secret")
        with pytest.raises(Unsealable, match="do not open with this server's secret"):
            other.run_context(waiting.id)
    assert ended_session.id != waiting_session.id
    second = copy(src, dst, cli_home)
    assert {k: second["skipped"][k] for k in ("repos", "environments", "runs")} == {
        "repos": 1,
        "environments": 1,
        "runs": 2,
    }
    assert (second["repos"], second["environments"], second["runs"]) == (0, 0, 0)

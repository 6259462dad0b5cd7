"""What only the SQLite store and the local blob store promise: durability settings,
numbered migrations (from empty and from the previous schema), one writer, files on disk."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from hashlib import sha256
from pathlib import Path
from typing import Any

import orjson
import pytest

from baton.core.chain import link
from baton.core.errors import Conflict, Corrupt, InvalidInput
from baton.core.models import Message, StoredMessage, Totals
from baton.core.runs import Run
from baton.core.validation import validate_message
from baton.scanning import SecretScanner
from baton.service import BLOB_GRACE_SECONDS, Service
from baton.store import migrations, open_blobs, open_store
from baton.store.base import BlobStore, Store
from baton.store.blobs import LocalBlobStore, MemoryBlobStore
from baton.store.memory import MemoryStore
from baton.store.sqlite import SQLiteStore
from tests.helpers import text_message

NOW = "2026-01-01T00:00:00.000000Z"
TABLES = {
    "accounts",
    "messages",
    "message_blobs",
    "sessions",
    "shares",
    "migrations",
    "session_search",
    "message_search",
    "unindexed",
    "unscanned",
    "tokens",
    "blob_grants",
    "session_blobs",
    "share_blobs",
    "idempotency_keys",
    "logins",
    "repos",
    "environments",
    "runs",
    "scan_rules",
}


def pragmas(conn: sqlite3.Connection) -> tuple[str, int, int]:
    return (
        conn.execute("PRAGMA journal_mode").fetchone()[0],
        conn.execute("PRAGMA synchronous").fetchone()[0],
        conn.execute("PRAGMA foreign_keys").fetchone()[0],
    )


def test_wal_synchronous_full_and_foreign_keys_on_every_connection(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "baton.db")
    assert pragmas(store._conn()) == ("wal", 2, 1)  # synchronous 2 = FULL
    seen: list[tuple[str, int, int]] = []
    thread = threading.Thread(target=lambda: seen.append(pragmas(store._conn())))
    thread.start()
    thread.join()
    assert seen == [("wal", 2, 1)]  # each thread has its own connection, set up the same way
    store.close()


@pytest.mark.parametrize(("setting", "value"), [("OFF", 0), ("NORMAL", 1), ("FULL", 2)])
def test_synchronous_can_be_chosen(tmp_path: Path, setting: str, value: int) -> None:
    store = SQLiteStore(tmp_path / "baton.db", synchronous=setting)
    assert pragmas(store._conn()) == ("wal", value, 1)
    store.close()


def test_foreign_keys_are_enforced(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "baton.db")
    conn = store._conn()
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        conn.execute(
            "INSERT INTO sessions(id, owner, title, title_auto, task, status, message_count, "
            "created_at, updated_at, version, metadata, platform, input_tokens, output_tokens, "
            "cache_read_tokens, cache_write_tokens, cost_usd) VALUES "
            "('ses_x', 'acc_nobody', '', 1, '', 'active', 0, ?, ?, 1, '{}', 'cli', 0, 0, 0, 0, 0)",
            (NOW, NOW),
        )
    store.close()


def test_open_store_and_blobs_from_urls(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path}/data/baton.db")
    assert isinstance(store, SQLiteStore) and store.path == f"{tmp_path}/data/baton.db"
    assert (tmp_path / "data" / "baton.db").exists()
    store.close()
    in_memory = open_store("sqlite://")
    assert isinstance(in_memory, SQLiteStore) and in_memory.path == ":memory:"
    in_memory.close()
    assert isinstance(open_store("memory://"), MemoryStore)
    blobs = open_blobs(f"file://{tmp_path}/blobs")
    assert isinstance(blobs, LocalBlobStore) and blobs.root == tmp_path / "blobs"
    assert isinstance(open_blobs("memory://"), MemoryBlobStore)
    with pytest.raises(InvalidInput, match="unknown store URL 'mysql://x'"):
        open_store("mysql://x")
    with pytest.raises(InvalidInput, match="unknown blob URL 'ftp://x'"):
        open_blobs("ftp://x")


# migrations


def test_migrations_from_an_empty_database(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "baton.db")
    conn = store._conn()
    rows = conn.execute(
        "SELECT number, name, applied_at FROM migrations ORDER BY number"
    ).fetchall()
    assert [(n, name) for n, name, _ in rows] == [
        (1, "m001_initial"),
        (2, "m002_search"),
        (3, "m003_auth"),
        (4, "m004_depth_index"),
        (5, "m005_blob_access"),
        (6, "m006_logins"),
        (7, "m007_inherited"),
        (8, "m008_runs"),
        (9, "m009_scan_rules"),
        (10, "m010_import_later"),
    ]
    for _, _, applied_at in rows:
        assert time.strptime(applied_at, "%Y-%m-%dT%H:%M:%S.%fZ")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables >= TABLES
    assert [m.name for m in migrations.MIGRATIONS] == [
        "m001_initial",
        "m002_search",
        "m003_auth",
        "m004_depth_index",
        "m005_blob_access",
        "m006_logins",
        "m007_inherited",
        "m008_runs",
        "m009_scan_rules",
        "m010_import_later",
    ]
    assert [m.number for m in migrations.MIGRATIONS] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    store.close()
    # opening again applies nothing and records nothing twice
    again = SQLiteStore(tmp_path / "baton.db")
    assert migrations.pending(again._conn()) == []
    assert migrations.migrate(again._conn()) == []
    assert again._conn().execute("SELECT count(*) FROM migrations").fetchone()[0] == 10
    again.close()


def test_two_processes_opening_a_new_database_migrate_it_once(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    stores: list[SQLiteStore] = []

    def open_one() -> None:
        try:
            stores.append(SQLiteStore(tmp_path / "baton.db"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    numbers = stores[0]._conn().execute("SELECT number FROM migrations ORDER BY number")
    assert [r[0] for r in numbers] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    for store in stores:
        store.close()


def test_a_failing_migration_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("migration 99 failed")

    monkeypatch.setattr(
        migrations,
        "MIGRATIONS",
        [*migrations.MIGRATIONS, migrations.Migration(99, "m099_broken", broken)],
    )
    with pytest.raises(RuntimeError, match="migration 99 failed"):
        SQLiteStore(tmp_path / "baton.db")
    conn = sqlite3.connect(tmp_path / "baton.db")
    assert [r[0] for r in conn.execute("SELECT number FROM migrations ORDER BY number")] == [
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        9,
        10,
    ]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "half_done" not in tables
    conn.close()


def chain_for_m001() -> list[StoredMessage]:
    raw = [
        text_message("user", "the narwhal question", created_at=NOW),
        {
            "role": "assistant",
            "model": "gpt-x",
            "usage": {"input_tokens": 12, "output_tokens": 30, "cost_usd": 0.02},
            "created_at": NOW,
            "parts": [{"type": "text", "text": "beluga " + "z" * 70_000}],
        },
    ]
    out: list[StoredMessage] = []
    for message in raw:
        out.append(link(out[-1] if out else None, validate_message(message, NOW), []))
    return out


def write_m001_database(db: Path, blobs: LocalBlobStore) -> list[StoredMessage]:
    """A database as baton wrote it before m002: the m001 schema and its rows, no search."""
    conn = sqlite3.connect(db, isolation_level=None)
    assert [m.name for m in migrations.migrate(conn, upto=1)] == ["m001_initial"]
    assert [m.name for m in migrations.pending(conn)] == [
        "m002_search",
        "m003_auth",
        "m004_depth_index",
        "m005_blob_access",
        "m006_logins",
        "m007_inherited",
        "m008_runs",
        "m009_scan_rules",
        "m010_import_later",
    ]
    chain = chain_for_m001()
    conn.execute("INSERT INTO accounts VALUES ('acc_1', 'alice', 'Alice', ?)", (NOW,))
    for sm in chain:
        m = sm.message
        body = {"role": m.role, "parts": m.parts, "created_at": m.created_at}
        if m.model is not None:
            body["model"] = m.model
        if m.usage is not None:
            body["usage"] = m.usage
        t = sm.totals
        cur = conn.execute(
            "INSERT INTO messages(id, parent, depth, root, body, input_tokens, output_tokens, "
            "cache_read_tokens, cache_write_tokens, cost_usd) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (m.id, m.parent, sm.depth, sm.root, orjson.dumps(body), t.input_tokens,
             t.output_tokens, t.cache_read_tokens, t.cache_write_tokens, t.cost_usd),
        )  # fmt: skip
        for sha in sm.blobs:
            conn.execute("INSERT INTO message_blobs VALUES (?, ?)", (sha, cur.lastrowid))
    [sha] = chain[1].blobs
    blobs.put(sha, ("beluga " + "z" * 70_000).encode())
    head, t = chain[-1], chain[-1].totals
    conn.execute(
        "INSERT INTO sessions(id, owner, title, title_auto, task, status, head, root, "
        "message_count, created_at, updated_at, version, metadata, platform, input_tokens, "
        "output_tokens, cache_read_tokens, cache_write_tokens, cost_usd) VALUES "
        "('ses_01AAAAAAAAAAAAAAAAAAAAAAAA', 'acc_1', 'Old session', 0, 'walrus task', "
        "'paused', ?, ?, 2, ?, ?, 3, '{\"mode\": \"plan\"}', 'cli', ?, ?, ?, ?, ?)",
        (head.message.id, head.root, NOW, NOW, t.input_tokens, t.output_tokens,
         t.cache_read_tokens, t.cache_write_tokens, t.cost_usd),
    )  # fmt: skip
    conn.execute(
        "INSERT INTO shares(id, session_id, owner, shared_by, head, root, message_count, title, "
        "task, metadata, created_at, redacted, input_tokens, output_tokens, cache_read_tokens, "
        "cache_write_tokens, cost_usd) VALUES ('OldShareId_____________', "
        "'ses_01AAAAAAAAAAAAAAAAAAAAAAAA', 'acc_1', '{\"handle\": \"alice\"}', ?, ?, 2, "
        "'Old session', 'walrus task', '{}', ?, '[]', 0, 0, 0, 0, 0)",
        (head.message.id, head.root, NOW),
    )
    conn.close()
    return chain


def test_migration_from_m001_carries_the_data_over(tmp_path: Path) -> None:
    db = tmp_path / "baton.db"
    blobs = LocalBlobStore(tmp_path / "blobs")
    chain = write_m001_database(db, blobs)
    store = SQLiteStore(db)
    conn = store._conn()
    assert [r[0] for r in conn.execute("SELECT name FROM migrations ORDER BY number")] == [
        "m001_initial",
        "m002_search",
        "m003_auth",
        "m004_depth_index",
        "m005_blob_access",
        "m006_logins",
        "m007_inherited",
        "m008_runs",
        "m009_scan_rules",
        "m010_import_later",
    ]
    service = Service(store, blobs, scanner=SecretScanner({}), clock=lambda: NOW)
    sid = "ses_01AAAAAAAAAAAAAAAAAAAAAAAA"
    session = service.get("acc_1", sid)
    assert (session.title, session.task, session.status, session.version) == (
        "Old session",
        "walrus task",
        "paused",
        3,
    )
    assert (session.metadata, session.message_count, session.totals) == (
        {"mode": "plan"},
        2,
        chain[-1].totals,
    )
    assert service.messages("acc_1", sid) == [sm.message for sm in chain]
    full = service.messages("acc_1", sid, hydrate=True)
    assert full[1].parts == [{"type": "text", "text": "beluga " + "z" * 70_000}]
    assert service.verify().to_dict() == {
        "sessions": 1,
        "shares": 1,
        "messages": 4,
        "problems": [],
        "ok": True,
    }
    assert [m.id for m in service.share_messages("OldShareId_____________")] == [
        sm.message.id for sm in chain
    ]
    # the search index of m002 was filled from the rows m001 left
    for word in ("Old", "walrus", "narwhal", "beluga"):
        assert [s.id for s in service.list("acc_1", query=word).sessions] == [sid], word
    # and the migrated rows behave like new ones: append, search, delete
    service.append("acc_1", sid, [text_message("user", "a manatee follow-up")])
    assert [s.id for s in service.list("acc_1", query="manatee").sessions] == [sid]
    service.delete("acc_1", sid, revoke_shares=True)
    assert service.list("acc_1", query="narwhal").sessions == []
    assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
    hits = conn.execute("SELECT rowid FROM message_search WHERE message_search MATCH 'narwhal'")
    assert hits.fetchall() == []
    assert list(blobs.list()) == []
    # m003: the old account has no password and no token, and can be given both
    assert store.password_hash("acc_1") is None and store.list_tokens("acc_1") == []
    _, secret = service.accounts.create_token("acc_1", "after m003")
    assert service.accounts.authenticate(secret) == store.get_account("acc_1")
    found = service.accounts.authenticate_token(secret)
    assert found is not None
    cookie = service.accounts.start_login("acc_1", found[1])  # m006: web logins are kept
    assert service.accounts.logged_in(cookie) == store.get_account("acc_1")
    service.accounts.revoke("acc_1", found[1].id)
    assert service.accounts.logged_in(cookie) is None
    assert store.integrity_check() == "ok"
    store.close()


M004_SESSION = "ses_01BBBBBBBBBBBBBBBBBBBBBBBB"
M004_PATCH, M004_BUNDLE, M004_GONE = b"a patch\n", b"a bundle", b"a revoked share's patch"


def write_m004_rows(execute: Any, mark: str) -> None:
    """Rows as baton wrote them before m005: a session and a live share whose git snapshots
    name a patch and a bundle, and a revoked share naming another patch. `execute(sql, args)`
    runs a statement with `mark` as its placeholder."""
    execute(
        f"INSERT INTO accounts(id, handle, display_name, created_at) VALUES "
        f"({mark}, {mark}, {mark}, {mark})",
        ("acc_1", "alice", "Alice", NOW),
    )
    git = {
        "remote": "https://example.com/a.git",
        "patch": {"sha256": sha256(M004_PATCH).hexdigest(), "size": 8},
        "bundle": {"sha256": sha256(M004_BUNDLE).hexdigest(), "size": 8, "commits": 1},
    }
    execute(
        "INSERT INTO sessions(id, owner, title, title_auto, task, status, message_count, "
        "created_at, updated_at, version, metadata, git, platform, input_tokens, output_tokens, "
        "cache_read_tokens, cache_write_tokens, cost_usd) VALUES "
        f"({mark}, 'acc_1', 'Old', {mark}, '', 'active', 0, {mark}, {mark}, 1, "
        f"{mark}, {mark}, 'cli', 0, 0, 0, 0, 0)",
        (M004_SESSION, False, NOW, NOW, b"{}", orjson.dumps(git)),
    )
    gone = {"patch": {"sha256": sha256(M004_GONE).hexdigest(), "size": 8}}
    for share_id, share_git, revoked in (("LiveShare", git, None), ("GoneShare", gone, NOW)):
        execute(
            "INSERT INTO shares(id, session_id, owner, shared_by, message_count, title, task, "
            "metadata, git, created_at, revoked_at, redacted, input_tokens, output_tokens, "
            "cache_read_tokens, cache_write_tokens, cost_usd) VALUES "
            f"({mark}, {mark}, 'acc_1', {mark}, 0, 'Old', '', {mark}, {mark}, {mark}, {mark}, "
            f"{mark}, 0, 0, 0, 0, 0)",
            (share_id, M004_SESSION, b"{}", b"{}", orjson.dumps(share_git), NOW, revoked, b"[]"),
        )


def check_m005(store: Store, blobs: BlobStore) -> None:
    """After m005: the git snapshots' blobs are references, and grant access as new ones do."""
    patch, bundle, gone = (sha256(d).hexdigest() for d in (M004_PATCH, M004_BUNDLE, M004_GONE))
    for data in (M004_PATCH, M004_BUNDLE, M004_GONE):
        blobs.put(sha256(data).hexdigest(), data)
    assert store.referenced_blobs() == {patch, bundle}
    service = Service(store, blobs, scanner=SecretScanner({}), clock=lambda: NOW)
    bob = service.account("bob").id
    assert store.granted_blobs("acc_1", [patch, bundle, gone]) == {patch, bundle}
    assert store.granted_blobs(bob, [patch, bundle, gone]) == set()
    # the owner may name the old patch in a new snapshot; another account may not
    snapshot = {"patch": {"sha256": patch, "size": 8}}
    assert service.update("acc_1", M004_SESSION, git=snapshot).git == snapshot
    mine = service.create(bob)
    with pytest.raises(InvalidInput, match=f"git.patch: blob {patch} is not one of yours"):
        service.update(bob, mine.id, git=snapshot)
    # the bundle is still named by the live share; the revoked share's patch by nothing
    assert store.release_blobs([patch, bundle, gone], lambda doomed: None) == [gone]
    service.delete("acc_1", M004_SESSION, revoke_shares=True)
    assert store.referenced_blobs() == set()


def test_migration_from_m004_makes_git_blobs_references(tmp_path: Path) -> None:
    db = tmp_path / "baton.db"
    conn = sqlite3.connect(db, isolation_level=None)
    assert [m.name for m in migrations.migrate(conn, upto=4)][-1] == "m004_depth_index"
    write_m004_rows(conn.execute, "?")
    conn.close()
    store = SQLiteStore(db)
    assert [m.name for m in migrations.pending(store._conn())] == []
    rows = store._conn().execute("SELECT session_id, sha256 FROM session_blobs ORDER BY sha256")
    assert {r[0] for r in rows} == {M004_SESSION}
    check_m005(store, LocalBlobStore(tmp_path / "blobs"))
    store.close()


M006_SESSIONS = ("ses_01CCCCCCCCCCCCCCCCCCCCCCCC", "ses_01DDDDDDDDDDDDDDDDDDDDDDDD")
M006_EMPTY_FORK = "ses_01EEEEEEEEEEEEEEEEEEEEEEEE"


def m006_chain() -> list[StoredMessage]:
    """A chain of three messages; the second and third cost something."""
    raw: list[dict[str, Any]] = [
        {"role": "user", "parts": [{"type": "text", "text": "hi"}], "created_at": NOW},
        {
            "role": "assistant",
            "parts": [{"type": "text", "text": "hello"}],
            "created_at": NOW,
            "usage": {"input_tokens": 100, "output_tokens": 20, "cost_usd": 0.00096},
        },
        {
            "role": "assistant",
            "parts": [{"type": "text", "text": "more"}],
            "created_at": NOW,
            "usage": {"input_tokens": 300, "output_tokens": 7, "cost_usd": 0.002},
        },
    ]
    out: list[StoredMessage] = []
    for message in raw:
        out.append(link(out[-1] if out else None, validate_message(message, NOW), []))
    return out


def write_m006_rows(execute: Any, mark: str) -> list[StoredMessage]:
    """Rows as baton wrote them before m007: a session of three messages, a fork of it made
    at its second message that went on to the third, and a fork of an empty session. A fork's
    totals then counted the whole chain."""
    chain = m006_chain()
    execute(
        f"INSERT INTO accounts(id, handle, display_name, created_at) VALUES "
        f"({mark}, {mark}, {mark}, {mark})",
        ("acc_1", "alice", "Alice", NOW),
    )
    for sm in chain:
        m, t = sm.message, sm.totals
        body = {k: v for k, v in m.content().items() if k != "parent"}
        execute(
            "INSERT INTO messages(id, parent, depth, root, body, input_tokens, output_tokens, "
            "cache_read_tokens, cache_write_tokens, cost_usd) VALUES "
            f"({mark}, {mark}, {mark}, {mark}, {mark}, {mark}, {mark}, {mark}, {mark}, {mark})",
            (m.id, m.parent, sm.depth, sm.root, orjson.dumps(body), t.input_tokens,
             t.output_tokens, t.cache_read_tokens, t.cache_write_tokens, t.cost_usd),
        )  # fmt: skip
    head, t = chain[-1], chain[-1].totals
    origins = (None, {"session": M006_SESSIONS[0], "message": chain[1].message.id})
    for sid, origin in zip(M006_SESSIONS, origins, strict=True):
        execute(
            "INSERT INTO sessions(id, owner, title, title_auto, task, status, head, root, "
            "message_count, created_at, updated_at, version, metadata, platform, forked_from, "
            "input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd) "
            f"VALUES ({mark}, 'acc_1', 'Old', {mark}, '', 'active', {mark}, {mark}, 3, {mark}, "
            f"{mark}, 1, {mark}, 'cli', {mark}, {mark}, {mark}, {mark}, {mark}, {mark})",
            (sid, False, head.message.id, head.root, NOW, NOW, b"{}",
             orjson.dumps(origin) if origin else None, t.input_tokens, t.output_tokens,
             t.cache_read_tokens, t.cache_write_tokens, t.cost_usd),
        )  # fmt: skip
    execute(
        "INSERT INTO sessions(id, owner, title, title_auto, task, status, message_count, "
        "created_at, updated_at, version, metadata, platform, forked_from, input_tokens, "
        "output_tokens, cache_read_tokens, cache_write_tokens, cost_usd) VALUES "
        f"({mark}, 'acc_1', '', {mark}, '', 'active', 0, {mark}, {mark}, 1, {mark}, 'cli', "
        f"{mark}, 0, 0, 0, 0, 0)",
        (
            M006_EMPTY_FORK,
            True,
            NOW,
            NOW,
            b"{}",
            orjson.dumps({"session": "ses_x", "message": None}),
        ),
    )
    execute(
        "INSERT INTO shares(id, session_id, owner, shared_by, head, root, message_count, title, "
        "task, metadata, created_at, redacted, input_tokens, output_tokens, cache_read_tokens, "
        "cache_write_tokens, cost_usd) VALUES "
        f"('ForkShare', {mark}, 'acc_1', {mark}, {mark}, {mark}, 3, 'Old', '', {mark}, {mark}, "
        f"{mark}, {mark}, {mark}, {mark}, {mark}, {mark})",
        (M006_SESSIONS[1], b"{}", head.message.id, head.root, b"{}", NOW, b"[]",
         t.input_tokens, t.output_tokens, t.cache_read_tokens, t.cache_write_tokens, t.cost_usd),
    )  # fmt: skip
    return chain


def check_m007(store: Store, chain: list[StoredMessage]) -> None:
    """After m007: a fork's inherited totals are its fork point's; its own are what follows."""
    original, fork = (store.get_session(sid) for sid in M006_SESSIONS)
    empty = store.get_session(M006_EMPTY_FORK)
    assert original is not None and fork is not None and empty is not None
    assert (original.totals, original.inherited, original.own) == (
        Totals(400, 27, 0, 0, 0.00296),
        Totals(),
        Totals(400, 27, 0, 0, 0.00296),
    )
    assert (fork.totals, fork.inherited, fork.own) == (
        Totals(400, 27, 0, 0, 0.00296),
        Totals(100, 20, 0, 0, 0.00096),
        Totals(300, 7, 0, 0, 0.002),
    )
    assert fork.inherited == chain[1].totals
    assert (empty.inherited, empty.own) == (Totals(), Totals())
    share = store.get_share("ForkShare")
    assert share is not None and (share.inherited, share.own) == (fork.inherited, fork.own)
    # a fork made now, of the migrated fork, inherits its whole chain
    service = Service(store, MemoryBlobStore(), scanner=SecretScanner({}), clock=lambda: NOW)
    again = service.fork("acc_1", fork.id)
    assert (again.inherited, again.own) == (Totals(400, 27, 0, 0, 0.00296), Totals())


def test_migration_from_m006_records_what_forks_inherited(tmp_path: Path) -> None:
    db = tmp_path / "baton.db"
    conn = sqlite3.connect(db, isolation_level=None)
    assert [m.name for m in migrations.migrate(conn, upto=6)][-1] == "m006_logins"
    chain = write_m006_rows(conn.execute, "?")
    conn.close()
    store = SQLiteStore(db)
    assert [m.name for m in migrations.pending(store._conn())] == []
    check_m007(store, chain)
    assert store.scan_rules() == 1  # its messages were scanned by the rules before m009
    assert store.integrity_check() == "ok"
    store.close()


def check_m008(store: Store) -> None:
    """After m008: a session written before it takes runs, one active at a time."""
    sid = M006_SESSIONS[0]
    queued = Run("run_1", "acc_1", sid, None, None, "main", "go on", "queued", NOW, NOW)
    store.add_run(queued)
    with pytest.raises(Conflict, match=f"session {sid} has a run in progress \\(run_1\\)"):
        store.add_run(Run("run_2", "acc_1", sid, None, None, None, "again", "queued", NOW, NOW))
    assert [r.id for r in store.list_runs(owner="acc_1")] == ["run_1"]
    assert store.list_repos("acc_1") == [] and store.list_environments("acc_1") == []


def test_migration_from_m007_adds_the_runs_tables(tmp_path: Path) -> None:
    db = tmp_path / "baton.db"
    conn = sqlite3.connect(db, isolation_level=None)
    assert [m.name for m in migrations.migrate(conn, upto=7)][-1] == "m007_inherited"
    write_m006_rows(conn.execute, "?")
    conn.close()
    store = SQLiteStore(db)
    assert [m.name for m in migrations.pending(store._conn())] == []
    check_m008(store)
    assert store.integrity_check() == "ok"
    store.close()


# one file on disk


def test_a_fork_adds_one_row_and_no_messages(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "baton.db")
    service = Service(store, LocalBlobStore(tmp_path / "blobs"), scanner=SecretScanner({}))
    owner = service.account("alice").id
    session = service.create(owner)
    service.append(owner, session.id, [text_message("user", f"m{i}") for i in range(50)])
    conn = store._conn()
    count = "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM sessions)"
    before = conn.execute(count).fetchone()
    service.fork(owner, session.id)
    service.share(owner, session.id)
    assert conn.execute(count).fetchone() == (before[0], before[1] + 1)
    assert conn.execute("SELECT count(*) FROM shares").fetchone()[0] == 1
    store.close()


def test_an_acknowledged_append_is_in_the_file(tmp_path: Path) -> None:
    db = tmp_path / "baton.db"
    store = SQLiteStore(db)
    service = Service(store, LocalBlobStore(tmp_path / "blobs"), scanner=SecretScanner({}))
    owner = service.account("alice").id
    session = service.create(owner)
    head = service.append(owner, session.id, [text_message("user", "kept")]).session.head
    # another connection, as another process would open it, sees the committed append
    other = sqlite3.connect(db)
    row = other.execute("SELECT head FROM sessions WHERE id = ?", (session.id,)).fetchone()
    assert row == (head,)
    other.close()
    store.close()


# the local blob store


def test_blob_files_are_laid_out_by_hash_and_written_whole(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    data = os.urandom(100_000)
    sha = sha256(data).hexdigest()
    blobs.put(sha, data)
    path = tmp_path / "blobs" / sha[:2] / sha[2:]
    assert path.read_bytes() == data
    assert sorted(p.name for p in (tmp_path / "blobs" / sha[:2]).iterdir()) == [sha[2:]]
    # a temp file left by a crash mid-write is not a blob
    (path.parent / ".tmp-crashed").write_bytes(b"partial")
    assert [s for s, _ in blobs.list()] == [sha]
    for bad in ("../../etc/passwd", "A" * 64, sha[:-1]):
        with pytest.raises(InvalidInput, match="is not a blob id"):
            blobs.get(bad)


def test_a_damaged_blob_is_reported_not_served(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "baton.db")
    blobs = LocalBlobStore(tmp_path / "blobs")
    service = Service(store, blobs, scanner=SecretScanner({}))
    owner = service.account("alice").id
    session = service.create(owner)
    service.append(owner, session.id, [text_message("user", "d" * 70_000)])
    [sha] = store.referenced_blobs()
    (tmp_path / "blobs" / sha[:2] / sha[2:]).write_bytes(b"flipped bits")
    with pytest.raises(Corrupt, match=f"blob {sha} is damaged on disk"):
        blobs.get(sha)
    report = service.verify()
    assert not report.ok and report.problems == [
        f"session {session.id}: blob {sha} is damaged on disk "
        f"({tmp_path / 'blobs' / sha[:2] / sha[2:]})"
    ]
    store.close()


def test_gc_removes_old_unreferenced_blob_files_only(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "baton.db")
    blobs = LocalBlobStore(tmp_path / "blobs")
    service = Service(store, blobs, scanner=SecretScanner({}))
    owner = service.account("alice").id
    session = service.create(owner)
    service.append(owner, session.id, [text_message("user", "k" * 70_000)])
    [kept] = store.referenced_blobs()
    old, young = b"left by a crash", b"an append in flight"
    for data in (old, young):
        blobs.put(sha256(data).hexdigest(), data)
    long_ago = time.time() - BLOB_GRACE_SECONDS - 60
    for sha in (kept, sha256(old).hexdigest()):
        os.utime(tmp_path / "blobs" / sha[:2] / sha[2:], (long_ago, long_ago))
    assert service.gc() == {"messages_deleted": 0, "blobs_deleted": 1}
    assert {s for s, _ in blobs.list()} == {kept, sha256(young).hexdigest()}
    assert service.verify().ok
    store.close()


def test_integrity_after_a_mixed_workload(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "baton.db")
    service = Service(store, LocalBlobStore(tmp_path / "blobs"), scanner=SecretScanner({}))
    owner = service.account("alice").id
    sessions = [service.create(owner).id for _ in range(3)]
    for i in range(30):
        sid = sessions[i % 3]
        service.append(owner, sid, [text_message("user", f"turn {i} " + "p" * (i * 3000))])
        if i % 7 == 0:
            sessions.append(service.fork(owner, sid).id)
    service.delete(owner, sessions[0])
    service.gc()
    assert store.integrity_check() == "ok"
    assert service.verify().ok
    messages: list[Message] = service.messages(owner, sessions[1])
    assert [m.parts[0].get("text", m.parts[0].get("preview", ""))[:7] for m in messages][:2] == [
        "turn 1 ",
        "turn 4 ",
    ]
    store.close()


def test_the_migration_status_of_a_sqlite_store_then_applying_it(tmp_path: Path) -> None:
    """What `baton migrate` reads and does on an embedded store left at m001: --list writes
    nothing, then the pending steps run through the store's own `apply_migrations`."""
    from baton.store import status

    db = tmp_path / "baton.db"
    url = f"sqlite://{db}"
    assert [s.applied_at for s in status.status(url)] == [None] * len(migrations.MIGRATIONS)
    assert not db.exists()  # reading the status of a missing store does not make it
    conn = sqlite3.connect(db, isolation_level=None)
    migrations.migrate(conn, upto=1)
    conn.close()
    later = [m.number for m in migrations.MIGRATIONS[1:]]
    assert [s.number for s in status.status(url) if s.applied_at is None] == later
    assert [s.number for s in status.status(url) if s.applied_at is None] == later  # unchanged
    assert [(s.number, s.applied_at) for s in status.apply(url)] == [(n, None) for n in later]
    assert all(s.applied_at for s in status.status(url))
    assert status.apply(url) == []
    store = SQLiteStore(db, migrate=False)
    assert store.apply_migrations() == []
    store.close()


def test_an_import_with_the_database_alone_writes_it_once_and_keeps_others_waiting(
    tmp_path: Path,
) -> None:
    """`alone`: a rollback journal instead of the WAL while no one else has the database
    open; whoever opens it during the import's transaction waits, then reads it whole; with
    another connection open, the WAL stays."""
    path = tmp_path / "baton.db"
    store = SQLiteStore(path)

    def mode() -> str:
        return str(store._conn().execute("PRAGMA journal_mode").fetchone()[0])

    opened: list[int] = []

    def open_and_count() -> None:
        other = SQLiteStore(path)
        opened.append(other._conn().execute("SELECT count(*) FROM accounts").fetchone()[0])
        other.close()

    with store.alone():
        assert mode() == "delete"
        with store._write() as c:
            c.execute(
                "INSERT INTO accounts(id, handle, display_name, created_at) VALUES ('acc_1', 'alice', 'Alice', '2026-12-07')"
            )
            beside = threading.Thread(target=open_and_count)
            beside.start()
            beside.join(0.3)
            assert opened == []  # still waiting: the import holds the database
    beside.join(30)
    assert opened == [1] and mode() == "wal"
    assert not (tmp_path / "baton.db-journal").exists()
    other = SQLiteStore(path)
    other._conn()
    with store.alone():  # someone else has it open
        assert mode() == "wal"
    other.close()
    store.close()

"""What only the SQLite store promises: durability settings, migrations, one file on disk."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson

from baton.scanning import SecretScanner
from baton.service import Service
from baton.store import migrations
from baton.store.blobs import LocalBlobStore
from baton.store.sqlite import SQLiteStore


def test_durability_settings(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "baton.db")
    conn = store._conn()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    store.close()


def test_migrations_from_empty(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "baton.db")
    rows = store._conn().execute("SELECT number, name FROM migrations ORDER BY number").fetchall()
    assert rows == [(1, "m001_initial"), (2, "m002_search")]
    store.close()
    # opening again applies nothing
    again = SQLiteStore(tmp_path / "baton.db")
    assert migrations.pending(again._conn()) == []
    again.close()


def test_migration_from_the_previous_schema_keeps_data(tmp_path: Path) -> None:
    db = tmp_path / "baton.db"
    conn = sqlite3.connect(db, isolation_level=None)
    migrations.migrate(conn, upto=1)
    assert [m.name for m in migrations.pending(conn)] == ["m002_search"]
    body = orjson.dumps(
        {
            "role": "user",
            "parts": [{"type": "text", "text": "the narwhal question"}],
            "created_at": "2026-01-01T00:00:00.000000Z",
        }
    )
    conn.execute(
        "INSERT INTO accounts VALUES ('acc_1', 'alice', 'Alice', '2026-01-01T00:00:00.000000Z')"
    )
    conn.execute(
        "INSERT INTO messages(id, parent, depth, root, body, input_tokens, output_tokens, "
        "cache_read_tokens, cache_write_tokens, cost_usd) VALUES ('m_1', NULL, 0, 'm_1', ?, 0, 0, 0, 0, 0)",
        (body,),
    )
    conn.execute(
        "INSERT INTO sessions(id, owner, title, title_auto, task, status, head, root, message_count, "
        "created_at, updated_at, version, metadata, platform, input_tokens, output_tokens, "
        "cache_read_tokens, cache_write_tokens, cost_usd) VALUES ('ses_01AAAAAAAAAAAAAAAAAAAAAAAA', "
        "'acc_1', 'Old session', 0, 'walrus task', 'active', 'm_1', 'm_1', 1, '2026-01-01T00:00:00.000000Z', "
        "'2026-01-01T00:00:00.000000Z', 1, '{}', 'cli', 0, 0, 0, 0, 0)"
    )
    conn.close()
    store = SQLiteStore(db)
    service = Service(store, LocalBlobStore(tmp_path / "blobs"), scanner=SecretScanner({}))
    assert [s.title for s in service.list("acc_1", query="narwhal").sessions] == ["Old session"]
    assert [s.title for s in service.list("acc_1", query="walrus").sessions] == ["Old session"]
    assert service.get("acc_1", "ses_01AAAAAAAAAAAAAAAAAAAAAAAA").message_count == 1
    store.close()


def test_a_fork_adds_one_row_and_no_messages(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "baton.db")
    service = Service(store, LocalBlobStore(tmp_path / "blobs"), scanner=SecretScanner({}))
    owner = service.account("alice").id
    session = service.create(owner)
    service.append(
        owner,
        session.id,
        [{"role": "user", "parts": [{"type": "text", "text": f"m{i}"}]} for i in range(50)],
    )
    conn = store._conn()
    before = conn.execute(
        "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM sessions)"
    ).fetchone()
    service.fork(owner, session.id)
    service.share(owner, session.id)
    after = conn.execute(
        "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM sessions)"
    ).fetchone()
    assert after == (before[0], before[1] + 1)
    store.close()

"""What the API's event loop asks of the service (so that it never reaches into the store):
whether writes are inline, an append that gives way instead of waiting, and recording a
token's use. Over every backend."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from baton.service import Service
from baton.store.blobs import LocalBlobStore
from baton.store.sqlite import SQLiteStore
from tests.helpers import text_message


def test_an_inline_append_runs_only_over_a_local_store(service: Service, owner: str) -> None:
    local = service.store.inline_writes
    assert service.inline_writes is local
    session = service.create(owner, title="t")
    result = service.append_inline(
        owner, session.id, [text_message("user", "hi")], None, idempotency_key="k1"
    )
    if local:  # memory, SQLite
        assert result is not None
        assert [m.id for m in result.appended] == [service.get(owner, session.id).head]
        assert result.session.message_count == 1
    else:  # PostgreSQL: the caller appends from a worker thread instead
        assert result is None
        assert service.get(owner, session.id).message_count == 0


def test_an_inline_append_gives_way_to_another_writer(tmp_path: Path) -> None:
    """Another process holds SQLite's write lock: None after a brief wait (not the minute a
    worker thread waits), with nothing appended; the caller then appends from a thread."""
    store = SQLiteStore(tmp_path / "baton.db")
    service = Service(store, LocalBlobStore(tmp_path / "blobs"))
    owner = service.account("alice").id
    session = service.create(owner, title="t")
    blocker = sqlite3.connect(tmp_path / "baton.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    assert service.append_inline(owner, session.id, [text_message("user", "hi")]) is None
    assert time.monotonic() - started < 20  # a worker thread would wait 60 s
    blocker.execute("ROLLBACK")
    blocker.close()
    assert service.get(owner, session.id).message_count == 0
    done = service.append_inline(owner, session.id, [text_message("user", "hi")])
    assert done is not None and done.session.message_count == 1
    store.close()


def test_touch_records_a_tokens_use_now(service: Service, owner: str) -> None:
    token, secret = service.accounts.create_token(owner, "laptop")
    found = service.accounts.authenticate_token(secret, touch=False)
    assert found is not None and found[1].last_used_at is None
    assert service.accounts.needs_touch(found[1])
    service.accounts.touch(token.id)
    [listed] = service.accounts.tokens(owner)
    assert listed.last_used_at is not None
    assert not service.accounts.needs_touch(listed)

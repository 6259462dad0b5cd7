"""Appends a SQLite server runs on its event loop commit without an fsync each and share one
flush of the WAL (group commit); none is answered before a flush that began after it
committed, so nothing acknowledged can be lost to a power cut either."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx

from baton.scanning import SecretScanner
from baton.server import create_app
from baton.service import Service
from baton.store.blobs import LocalBlobStore
from baton.store.sqlite import SQLiteStore
from tests.server.conftest import SECRET, ThreadServer, person


def test_every_answer_waits_for_a_flush_after_its_commit(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "baton.db")  # synchronous=FULL, the default
    service = Service(store, LocalBlobStore(tmp_path / "blobs"), scanner=SecretScanner({}))
    alice = person(service, "alice", "Alice")
    committed: dict[str, float] = {}  # head after an append -> when its commit returned
    flushes: list[tuple[float, float]] = []
    real_append, real_sync = store.append, store.sync

    def append(*args: Any, **kwargs: Any) -> Any:
        session = real_append(*args, **kwargs)
        committed[session.head] = time.monotonic()
        return session

    def sync() -> None:
        started = time.monotonic()
        real_sync()
        flushes.append((started, time.monotonic()))

    store.append = append  # type: ignore[method-assign]
    store.sync = sync  # type: ignore[method-assign]
    app = create_app(service, secret=SECRET, login_rate=1000, share_rate=100_000)
    answered: dict[str, float] = {}
    errors: list[BaseException] = []
    with ThreadServer(app) as url:
        auth = {"Authorization": f"Bearer {alice.token}"}
        with httpx.Client(base_url=url, headers=auth) as c:
            sessions = [c.post("/api/sessions", json={}).json()["id"] for _ in range(4)]

        def writer(sid: str) -> None:
            try:
                with httpx.Client(base_url=url, headers=auth, timeout=30) as c:
                    for i in range(40):
                        body = {"messages": [{"role": "user", "parts": [
                            {"type": "text", "text": f"{sid} {i}"}]}]}  # fmt: skip
                        r = c.post(f"/api/sessions/{sid}/messages", json=body)
                        assert r.status_code == 201, r.text
                        answered[r.json()["session"]["head"]] = time.monotonic()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(sid,)) for sid in sessions]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        group = app.state.group_sync
    assert errors == []
    assert len(answered) == 160
    for head, at in answered.items():
        done = committed[head]
        assert any(start >= done and end <= at for start, end in flushes), head
    # one flush served several appends
    assert 0 < group.flushes == len(flushes) < len(answered)
    for sid in sessions:
        assert service.verify(alice.id, sid).ok
        assert service.get(alice.id, sid).message_count == 40
    store.close()


def test_a_store_that_flushes_each_commit_needs_no_group(tmp_path: Path) -> None:
    normal = SQLiteStore(tmp_path / "n.db", synchronous="NORMAL")
    assert normal.defer_sync() is False  # the user chose no fsync per commit
    full = SQLiteStore(tmp_path / "f.db")
    assert full.defer_sync() is True
    assert full._conn().execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL, this thread
    seen: list[int] = []
    other = threading.Thread(
        target=lambda: seen.append(full._conn().execute("PRAGMA synchronous").fetchone()[0])
    )
    other.start()
    other.join()
    assert seen == [2]  # FULL on every other thread's connection
    normal.close()
    full.close()

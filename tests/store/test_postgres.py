"""What only the PostgreSQL store promises: the same numbered migrations as SQLite (from an
empty database and from the previous schema, once however many servers start together),
compare-and-set across connection pools (as across servers), and PostgreSQL's own search.
Its share of the common contract runs in tests/store/test_contract.py ("postgres" kind)."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import psycopg
import pytest

from baton.core.errors import Busy, Conflict
from baton.scanning import SecretScanner
from baton.service import Service
from baton.store import migrations, open_store, pg_migrations, status
from baton.store.blobs import LocalBlobStore
from baton.store.postgres import PostgresStore
from tests.helpers import run_baton, text_message
from tests.store.test_sqlite import (
    M004_SESSION,
    chain_for_m001,
    check_m005,
    check_m007,
    check_m008,
    write_m004_rows,
    write_m006_rows,
)

NOW = "2026-01-01T00:00:00.000000Z"
TABLES = {
    "accounts",
    "messages",
    "message_blobs",
    "sessions",
    "shares",
    "migrations",
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


@pytest.fixture
def pg(postgres_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A plain connection to the test's schema, to look at what the store wrote."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        yield conn


def tables(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    ).fetchall()
    return {r[0] for r in rows}


def test_migrations_from_an_empty_database(postgres_url: str, pg: psycopg.Connection[Any]) -> None:
    assert tables(pg) == set()
    store = PostgresStore(postgres_url)
    rows = pg.execute("SELECT number, name, applied_at FROM migrations ORDER BY number").fetchall()
    # the same steps, numbers and names as the embedded store's
    assert [(n, name) for n, name, _ in rows] == [(m.number, m.name) for m in migrations.MIGRATIONS]
    for _, _, applied_at in rows:
        assert time.strptime(applied_at, "%Y-%m-%dT%H:%M:%S.%fZ")
    assert tables(pg) == TABLES
    store.close()
    again = PostgresStore(postgres_url)
    with psycopg.connect(postgres_url) as conn, conn.cursor() as cur:
        assert pg_migrations.pending(cur) == []
    assert pg.execute("SELECT count(*) FROM migrations").fetchone() == (10,)
    again.close()


def test_servers_starting_together_migrate_once(postgres_url: str) -> None:
    errors: list[BaseException] = []
    stores: list[PostgresStore] = []

    def open_one() -> None:
        try:
            stores.append(PostgresStore(postgres_url))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [s.number for s in status.status(postgres_url)] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert all(s.applied_at for s in status.status(postgres_url))
    for store in stores:
        store.close()


def test_a_failing_migration_leaves_nothing_behind(
    postgres_url: str, pg: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(cur: psycopg.Cursor[Any]) -> None:
        cur.execute("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("migration 99 failed")

    monkeypatch.setattr(
        pg_migrations,
        "MIGRATIONS",
        [*pg_migrations.MIGRATIONS, pg_migrations.Migration(99, "m099_broken", broken)],
    )
    with pytest.raises(RuntimeError, match="migration 99 failed"):
        PostgresStore(postgres_url)
    assert [r[0] for r in pg.execute("SELECT number FROM migrations ORDER BY number")] == [
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
    assert "half_done" not in tables(pg)


def test_migration_from_m001_carries_the_data_over(postgres_url: str, tmp_path: Any) -> None:
    """A database as it stood after m001, with rows: opening it applies m002-m004, fills the
    search index from the old rows, and the rows behave like new ones."""
    chain = chain_for_m001()
    blobs = LocalBlobStore(tmp_path / "blobs")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert [m.name for m in pg_migrations.migrate(conn, upto=1)] == ["m001_initial"]
        conn.execute("INSERT INTO accounts VALUES ('acc_1', 'alice', 'Alice', %s)", (NOW,))
        for sm in chain:
            m, t = sm.message, sm.totals
            body = {"role": m.role, "parts": m.parts, "created_at": m.created_at}
            if m.model:
                body["model"] = m.model
            if m.usage:
                body["usage"] = m.usage
            conn.execute(
                "INSERT INTO messages(id, parent, depth, root, body, input_tokens, "
                "output_tokens, cache_read_tokens, cache_write_tokens, cost_usd) "
                "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (m.id, m.parent, sm.depth, sm.root, orjson.dumps(body), t.input_tokens,
                 t.output_tokens, t.cache_read_tokens, t.cache_write_tokens, t.cost_usd),
            )  # fmt: skip
            for sha in sm.blobs:
                conn.execute("INSERT INTO message_blobs VALUES (%s, %s)", (sha, m.id))
        [sha] = chain[1].blobs
        blobs.put(sha, ("beluga " + "z" * 70_000).encode())
        head, t = chain[-1], chain[-1].totals
        conn.execute(
            "INSERT INTO sessions(id, owner, title, title_auto, task, status, head, root, "
            "message_count, created_at, updated_at, version, metadata, platform, input_tokens, "
            "output_tokens, cache_read_tokens, cache_write_tokens, cost_usd) VALUES "
            "('ses_01AAAAAAAAAAAAAAAAAAAAAAAA', 'acc_1', 'Old session', false, 'walrus task', "
            "'paused', %s, %s, 2, %s, %s, 3, '{\"mode\": \"plan\"}', 'cli', %s, %s, %s, %s, %s)",
            (head.message.id, head.root, NOW, NOW, t.input_tokens, t.output_tokens,
             t.cache_read_tokens, t.cache_write_tokens, t.cost_usd),
        )  # fmt: skip
        pending = [s.number for s in status.status(postgres_url) if s.applied_at is None]
        assert pending == [2, 3, 4, 5, 6, 7, 8, 9, 10]
    store = open_store(postgres_url)
    service = Service(store, blobs, scanner=SecretScanner({}), clock=lambda: NOW)
    sid = "ses_01AAAAAAAAAAAAAAAAAAAAAAAA"
    session = service.get("acc_1", sid)
    assert (session.title, session.status, session.version, session.metadata) == (
        "Old session",
        "paused",
        3,
        {"mode": "plan"},
    )
    assert service.messages("acc_1", sid) == [sm.message for sm in chain]
    assert service.verify().ok
    for word in ("Old", "walrus", "narwhal", "beluga"):
        assert [s.id for s in service.list("acc_1", query=word).sessions] == [sid], word
    service.append("acc_1", sid, [text_message("user", "a manatee follow-up")])
    assert [s.id for s in service.list("acc_1", query="manatee").sessions] == [sid]
    service.delete("acc_1", sid)
    assert service.list("acc_1", query="narwhal").sessions == []
    assert list(blobs.list()) == []
    _, secret = service.accounts.create_token("acc_1", "after m003")
    assert service.accounts.authenticate(secret) == store.get_account("acc_1")
    found = service.accounts.authenticate_token(secret)
    assert found is not None
    cookie = service.accounts.start_login("acc_1", found[1])  # m006: web logins are kept
    assert service.accounts.logged_in(cookie) == store.get_account("acc_1")
    service.accounts.revoke("acc_1", found[1].id)
    assert service.accounts.logged_in(cookie) is None
    store.close()


def test_migration_from_m004_makes_git_blobs_references(postgres_url: str, tmp_path: Any) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert [m.name for m in pg_migrations.migrate(conn, upto=4)][-1] == "m004_depth_index"
        write_m004_rows(conn.execute, "%s")
    store = open_store(postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        rows = conn.execute("SELECT session_id FROM session_blobs").fetchall()
    assert {r[0] for r in rows} == {M004_SESSION}
    check_m005(store, LocalBlobStore(tmp_path / "blobs"))
    store.close()


def test_migration_from_m006_records_what_forks_inherited(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert [m.name for m in pg_migrations.migrate(conn, upto=6)][-1] == "m006_logins"
        chain = write_m006_rows(conn.execute, "%s")
    store = open_store(postgres_url)
    check_m007(store, chain)
    assert store.scan_rules() == 1  # its messages were scanned by the rules before m009
    store.close()


def test_migration_from_m007_adds_the_runs_tables(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert [m.name for m in pg_migrations.migrate(conn, upto=7)][-1] == "m007_inherited"
        write_m006_rows(conn.execute, "%s")
    store = open_store(postgres_url)
    check_m008(store)
    store.close()


def test_only_one_of_two_servers_moves_a_head(postgres_url: str, tmp_path: Any) -> None:
    """Two pools (as two servers) append after the same head at the same moment, many times:
    each round exactly one commits, the others are Conflicts naming the winner's head, and the
    chain holds every winner once."""
    blobs = LocalBlobStore(tmp_path / "blobs")
    services = [
        Service(PostgresStore(postgres_url), blobs, scanner=SecretScanner({})) for _ in range(2)
    ]
    owner = services[0].account("alice").id
    sid = services[0].create(owner).id
    winners: list[str] = []
    for round_ in range(15):
        head = services[0].get(owner, sid).head
        barrier = threading.Barrier(4)
        results: list[Any] = []

        def one(
            i: int,
            head: str | None = head,
            r: int = round_,
            barrier: threading.Barrier = barrier,
            results: list[Any] = results,
        ) -> None:
            barrier.wait()
            try:
                done = services[i % 2].append(
                    owner, sid, [text_message("user", f"round {r} writer {i}")], head
                )
                results.append(done.appended[-1].id)
            except Conflict as exc:
                results.append(exc)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        won = [r for r in results if isinstance(r, str)]
        lost = [r for r in results if isinstance(r, Conflict)]
        assert len(won) == 1 and len(lost) == 3, results
        assert all(c.current_head == won[0] for c in lost)
        winners.append(won[0])
    assert [m.id for m in services[1].messages(owner, sid)] == winners
    assert services[1].verify().ok
    for service in services:
        service.store.close()


@pytest.mark.slow
def test_an_unreachable_database_is_busy_in_one_line() -> None:
    started = time.monotonic()
    with pytest.raises(Busy, match="unreachable") as caught:
        PostgresStore("postgresql://postgres@127.0.0.1:1/test?connect_timeout=2")
    assert "\n" not in str(caught.value)
    assert time.monotonic() - started < 30  # the pool gives up after 10 s


def test_dropped_connections_are_replaced(postgres_url: str, pg: psycopg.Connection[Any]) -> None:
    """After the server drops every connection (as a restart does), the next call opens a
    new one instead of failing on a dead one."""
    name = f"baton-dropped-{secrets.token_hex(4)}"  # this test's connections, no one else's
    store = PostgresStore(postgres_url + f"&application_name={name}")
    store.list_accounts()
    killed = pg.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
        (name,),
    ).fetchone()
    assert killed is not None and killed[0] >= 1
    assert store.list_accounts() == []
    store.close()


def test_text_postgresql_cannot_hold_is_stored_anyway(postgres_url: str, tmp_path: Any) -> None:
    """NUL characters (valid JSON, invalid in PostgreSQL text) in a title, a task and a
    message: kept in the message, replaced in the indexed and header text."""
    store = PostgresStore(postgres_url)
    service = Service(store, LocalBlobStore(tmp_path / "blobs"), scanner=SecretScanner({}))
    owner = service.account("alice").id
    session = service.create(owner, title="nul\x00title", task="a\x00task")
    service.append(owner, session.id, [text_message("user", "before\x00after zebra")])
    [message] = service.messages(owner, session.id)
    assert message.parts[0]["text"] == "before\x00after zebra"
    assert [s.id for s in service.list(owner, query="zebra").sessions] == [session.id]
    store.close()


def test_migrate_list_writes_nothing(
    postgres_url: str, pg: psycopg.Connection[Any], tmp_path: Any
) -> None:
    env = {"BATON_DATABASE_URL": postgres_url}
    home = tmp_path / "home"
    listed = run_baton("migrate", "--list", env=env, home=home)
    assert listed.returncode == 0, listed.stderr
    assert "10 pending" in listed.stdout and "m005_blob_access" in listed.stdout
    assert "m006_logins" in listed.stdout and "m007_inherited" in listed.stdout
    assert tables(pg) == set()
    applied = run_baton("migrate", env=env, home=home)
    assert "applied 001 m001_initial, 002 m002_search" in applied.stdout
    assert tables(pg) == TABLES
    again = run_baton("migrate", "--list", "--json", env=env, home=home)
    data = orjson.loads(again.stdout)
    numbers = [m["number"] for m in data["migrations"]]
    assert data["pending"] == [] and numbers == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]

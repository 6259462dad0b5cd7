"""One contract, two ways in: every scenario runs through the service (local mode) and through
the HTTP client against a live `baton serve` process (remote mode), with the same results."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from baton.client import Client
from baton.core.errors import (
    Conflict,
    Gone,
    InvalidInput,
    LiveShares,
    NotFound,
    SecretsFound,
    VersionMismatch,
)
from baton.scanning import SecretScanner
from baton.service import Service
from baton.store import open_blobs, open_store
from tests.fixtures.servers import Served, make_service, start_serve, stop
from tests.fixtures.services import SeaweedFS
from tests.helpers import run_json, text_message, tool_turn

FAKE_KEY = "sk-proj-" + "Ab3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5xY7w"


@dataclass
class Way:
    """A way in for two accounts: `alice` and `bob` are (interface, account id)."""

    name: str
    alice: tuple[Any, str]
    bob: tuple[Any, str]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, str, str]]:
    home = tmp_path_factory.mktemp("contract-server")
    alice = run_json("users", "add", "alice", "--display-name", "Alice Example", home=home)
    bob = run_json("users", "add", "bob", "--display-name", "Bob Other", home=home)
    running = start_serve(home)
    yield running, alice["token"], bob["token"]
    stop(running)


@pytest.fixture(scope="module")
def pg_server(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: str, seaweedfs: SeaweedFS
) -> Iterator[tuple[Served, str, str]]:
    """`baton serve` over PostgreSQL (a schema of its own) and S3 (a prefix of its own)."""
    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    env = {
        "BATON_DATABASE_URL": f"{postgres_server}?options=-csearch_path%3D{schema}",
        "BATON_BLOB_URL": seaweedfs.url(f"t-{secrets.token_hex(6)}"),
        **seaweedfs.env(),
    }
    home = tmp_path_factory.mktemp("contract-pg-server")
    alice = run_json("users", "add", "alice", "--display-name", "Alice Example", home=home, env=env)
    bob = run_json("users", "add", "bob", "--display-name", "Bob Other", home=home, env=env)
    running = start_serve(home, env=env)
    yield running, alice["token"], bob["token"]
    stop(running)
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["local", "remote", "local-postgres-s3", "remote-postgres-s3"])
def way(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Way]:
    """The service in this process, or a client of a `baton serve` process; each over the
    embedded store or over PostgreSQL and S3."""
    if request.param.startswith("local"):
        if request.param == "local":
            service = make_service(tmp_path / "local")
        else:
            service = Service(
                open_store(request.getfixturevalue("postgres_url")),
                open_blobs(request.getfixturevalue("s3_blob_url")),
                scanner=SecretScanner({"MY_SERVICE_TOKEN": "tok-4f9a8b7c6d5e"}),
            )
        alice = service.accounts.add("alice", "Alice Example").id
        bob = service.accounts.add("bob", "Bob Other").id
        yield Way("local", (service, alice), (service, bob))
        service.store.close()
        return
    fixture = "server" if request.param == "remote" else "pg_server"
    served, alice_token, bob_token = request.getfixturevalue(fixture)
    a, b = Client(served.url, alice_token), Client(served.url, bob_token)
    yield Way("remote", (a, a.me().id), (b, b.me().id))
    a.close()
    b.close()


def conversation(n: int = 3) -> list[dict[str, Any]]:
    out = [text_message("user", "Why does the login fail?")]
    out += tool_turn("c1", "bash", {"cmd": "pytest -x"}, "FAILED test_login\n" * 20)
    out += [
        text_message(
            "assistant",
            "The token expired.",
            model="gpt-x",
            usage={"input_tokens": 100, "output_tokens": 20, "cost_usd": 0.01},
        )
    ]
    return (
        out[:n]
        if n <= len(out)
        else out + [text_message("user", f"more {i}") for i in range(n - 4)]
    )


def test_create_append_read_back(way: Way) -> None:
    svc, me = way.alice
    session = svc.create(me, title="Login bug", task="fix it", metadata={"mode": "build"})
    assert (session.title, session.task, session.status, session.version) == (
        "Login bug",
        "fix it",
        "active",
        1,
    )
    result = svc.append(me, session.id, conversation(4))
    assert len(result.appended) == 4
    assert result.session.head == result.appended[-1].id
    header = svc.get(me, session.id)
    assert header.message_count == 4
    assert (header.totals.input_tokens, header.totals.output_tokens) == (100, 20)
    assert header.metadata == {"mode": "build"}
    read = svc.messages(me, session.id)
    assert [m.id for m in read] == [m.id for m in result.appended]
    assert read[1].parts[0]["name"] == "bash"
    assert [m.role for m in svc.messages(me, session.id, start=2, limit=1)] == ["tool"]


def test_long_conversations_page_through(way: Way) -> None:
    svc, me = way.alice
    session = svc.create(me)
    batch = [text_message("user" if i % 2 else "assistant", f"turn {i}") for i in range(1205)]
    svc.append(me, session.id, batch)
    read = svc.messages(me, session.id)
    assert [m.parts[0]["text"] for m in read] == [f"turn {i}" for i in range(1205)]
    assert [m.parts[0]["text"] for m in svc.messages(me, session.id, start=1200)] == [
        f"turn {i}" for i in range(1200, 1205)
    ]


def test_a_stale_head_is_a_conflict_and_a_retry_is_a_no_op(way: Way) -> None:
    svc, me = way.alice
    session = svc.create(me)
    first = svc.append(me, session.id, [text_message("user", "one")], expected_head=None)
    head = first.session.head
    with pytest.raises(Conflict) as caught:
        svc.append(me, session.id, [text_message("user", "two")], expected_head=None)
    assert caught.value.current_head == head
    again = svc.append(
        me,
        session.id,
        [{**text_message("user", "one"), "created_at": first.appended[0].created_at}],
        expected_head=None,
    )
    assert (again.appended, again.session.head, again.session.message_count) == ([], head, 1)


def test_updates_check_the_version(way: Way) -> None:
    svc, me = way.alice
    session = svc.create(me, title="old")
    renamed = svc.rename(me, session.id, "new   title")
    assert (renamed.title, renamed.version) == ("new title", 2)
    with pytest.raises(VersionMismatch) as caught:
        svc.update(me, session.id, expected_version=1, status="done")
    assert caught.value.current_version == 2
    done = svc.update(me, session.id, expected_version=2, status="done", task="shipped")
    assert (done.status, done.task, done.version) == ("done", "shipped", 3)
    with pytest.raises(InvalidInput):
        svc.update(me, session.id, status="finished")


def test_listing_pages_and_searches(way: Way) -> None:
    svc, me = way.alice
    made = [svc.create(me, title=f"walrus {i}") for i in range(5)]
    svc.append(me, made[2].id, [text_message("user", "a narwhal appears")])
    first = svc.list(me, limit=2, query="walrus")
    second = svc.list(me, limit=10, query="walrus", cursor=first.next_cursor)
    assert len(first.sessions) == 2 and first.next_cursor
    listed = [s.id for s in first.sessions + second.sessions]
    assert sorted(listed) == sorted(s.id for s in made) and second.next_cursor is None
    assert [s.id for s in svc.list(me, query="narwhal").sessions] == [made[2].id]
    assert svc.list(me, status="archived").sessions == []


def test_share_blocks_then_redacts_and_revoke_is_gone_everywhere(way: Way) -> None:
    svc, me = way.alice
    bob_svc, bob = way.bob
    session = svc.create(me, title="with a key")
    svc.append(
        me, session.id, [text_message("user", "hello"), text_message("user", f"key {FAKE_KEY}")]
    )
    with pytest.raises(SecretsFound) as caught:
        svc.share(me, session.id)
    assert [(f["where"], f["kind"]) for f in caught.value.findings] == [
        ("message 2", "OpenAI Token")
    ]
    assert svc.shares(me, session.id) == []
    share = svc.share(me, session.id, mode="redact", expires="7d")
    assert share.expires_at is not None and share.message_count == 2
    assert share.shared_by["display_name"] == "Alice Example"
    public = bob_svc.share_messages(share.id, hydrate=True)
    text = orjson.dumps([m.to_dict() for m in public]).decode()
    assert FAKE_KEY not in text and "[REDACTED:OpenAI Token]" in text
    assert public[0].id == svc.messages(me, session.id)[0].id  # the clean prefix is not copied
    fork = bob_svc.fork(bob, share.id)
    assert fork.owner == bob and fork.forked_from == {"share": share.id, "message": share.head}
    assert [m.id for m in bob_svc.messages(bob, fork.id)] == [m.id for m in public]
    revoked = svc.revoke(me, share.id)
    assert revoked.revoked_at is not None
    for attempt in (
        lambda: bob_svc.share_messages(share.id),
        lambda: bob_svc.public_share(share.id),
        lambda: bob_svc.fork(bob, share.id),
    ):
        with pytest.raises(Gone):
            attempt()
    assert bob_svc.get(bob, fork.id).message_count == 2  # a fork made before stays


def test_forks_of_own_sessions_at_a_message(way: Way) -> None:
    svc, me = way.alice
    session = svc.create(me, title="base")
    appended = svc.append(me, session.id, conversation(4)).appended
    fork = svc.fork(me, session.id, at=appended[1].id)
    assert (fork.message_count, fork.head, fork.title) == (2, appended[1].id, "base")
    assert fork.forked_from == {"session": session.id, "message": appended[1].id}
    with pytest.raises(NotFound):
        svc.fork(me, session.id, at="m_" + "0" * 64)


def test_delete_refuses_while_links_are_live(way: Way) -> None:
    svc, me = way.alice
    session = svc.create(me, title="doomed")
    svc.append(me, session.id, [text_message("user", "bye")])
    share = svc.share(me, session.id)
    with pytest.raises(LiveShares) as caught:
        svc.delete(me, session.id)
    assert caught.value.share_ids == [share.id]
    assert svc.get(me, session.id).title == "doomed"
    assert svc.delete(me, session.id, revoke_shares=True) == [share.id]
    with pytest.raises(NotFound):
        svc.get(me, session.id)
    with pytest.raises(Gone):
        svc.share_messages(share.id)


def test_export_and_import_round_trip(way: Way) -> None:
    svc, me = way.alice
    bob_svc, bob = way.bob
    session = svc.create(me, title="exported", task="t")
    svc.append(me, session.id, conversation(4))
    doc = svc.export(me, session.id)
    markdown = svc.export(me, session.id, "markdown")
    assert isinstance(doc, dict) and isinstance(markdown, str)
    assert "# exported" in markdown and "Why does the login fail?" in markdown
    result = bob_svc.import_document(bob, orjson.dumps(doc))
    assert result.created and result.messages == 4 and result.session.owner == bob
    assert [m.id for m in bob_svc.messages(bob, result.session.id)] == [
        m["id"] for m in doc["messages"]
    ]
    again = bob_svc.import_document(bob, doc)
    assert (again.created, again.session.id) == (False, result.session.id)
    with pytest.raises(InvalidInput):
        bob_svc.import_document(bob, b'{"format": "baton-session", "version": 1, "sess')
    assert svc.verify(me, session.id).ok


def test_another_accounts_session_is_not_found(way: Way) -> None:
    svc, me = way.alice
    bob_svc, bob = way.bob
    session = svc.create(me, title="private")
    svc.append(me, session.id, [text_message("user", "secret plans")])
    for attempt in (
        lambda: bob_svc.get(bob, session.id),
        lambda: bob_svc.messages(bob, session.id),
        lambda: bob_svc.append(bob, session.id, [text_message("user", "hi")]),
        lambda: bob_svc.rename(bob, session.id, "mine"),
        lambda: bob_svc.share(bob, session.id),
        lambda: bob_svc.fork(bob, session.id),
        lambda: bob_svc.export(bob, session.id),
        lambda: bob_svc.delete(bob, session.id),
        lambda: bob_svc.shares(bob, session.id),
    ):
        with pytest.raises(NotFound, match="no session"):
            attempt()
    assert session.id not in [s.id for s in bob_svc.list(bob, query="secret").sessions]
    assert svc.get(me, session.id).message_count == 1


def test_bad_input_is_refused_and_changes_nothing(way: Way) -> None:
    svc, me = way.alice
    session = svc.create(me)
    for bad in ([{"role": "robot", "parts": []}], [{"role": "user", "parts": [{"type": "x"}]}]):
        with pytest.raises(InvalidInput):
            svc.append(me, session.id, bad)
    with pytest.raises(InvalidInput):
        svc.share(me, session.id, expires="soon")
    assert svc.get(me, session.id).version == 1


def test_a_share_says_what_it_publishes_and_can_leave_the_code_out(way: Way) -> None:
    svc, me = way.alice
    git = {
        "version": 1,
        "head": "c" * 40,
        "upstream": "origin/main",
        "patch": {"sha256": "a" * 64, "size": 10, "files": 2},
        "bundle": {"sha256": "b" * 64, "size": 10, "commits": 1},
    }
    session = svc.create(me, title="code", git=git)
    svc.append(me, session.id, [text_message("user", "hello")])
    full = svc.share(me, session.id)
    assert full.published == "1 message, 1 commit not on origin/main, uncommitted changes (2 files)"
    bare = svc.share(me, session.id, code=False)
    assert bare.published == "1 message, no code" and bare.withheld == []
    assert bare.git is not None and (bare.git["patch"], bare.git["bundle"]) == (None, None)
    assert svc.public_share(bare.id).published == "1 message, no code"

"""One contract, two ways in: every scenario runs through the service (local mode) and through
the HTTP client against a live `baton serve` process (remote mode), with the same results."""

from __future__ import annotations

import inspect
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson
import pytest

from baton.client import Client
from baton.contract import Baton, Cloud
from baton.core.errors import (
    Conflict,
    Gone,
    InvalidInput,
    LiveShares,
    NotFound,
    RateLimited,
    SecretsFound,
    VersionMismatch,
)
from baton.core.ids import sha256_hex
from baton.core.models import Totals
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
    alice: tuple[Baton, str]
    bob: tuple[Baton, str]


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


def test_forks_keep_own_and_inherited_costs_apart(way: Way) -> None:
    svc, me = way.alice
    bob_svc, bob = way.bob
    session = svc.create(me, title="costly")
    reply = {"input_tokens": 900, "output_tokens": 12, "cost_usd": 0.00096}
    svc.append(
        me, session.id, [text_message("user", "q"), text_message("assistant", "a", usage=reply)]
    )
    spent = Totals(900, 12, 0, 0, 0.00096)
    fork = svc.fork(me, session.id)
    assert (fork.totals, fork.inherited, fork.own) == (spent, spent, Totals())
    assert svc.get(me, fork.id).to_dict() == fork.to_dict()
    more = {"output_tokens": 3, "cost_usd": 0.002}
    moved = svc.append(me, fork.id, [text_message("assistant", "b", usage=more)]).session
    assert (moved.inherited, moved.own) == (spent, Totals(0, 3, 0, 0, 0.002))
    listed = {
        s.id: (s.own.cost_usd, s.inherited.cost_usd)
        for s in svc.list(me).sessions
        if s.id in (session.id, fork.id)
    }
    assert listed == {session.id: (0.00096, 0.0), fork.id: (0.002, 0.00096)}
    # on the server too: a fork of a share starts at zero own cost
    share = svc.share(me, fork.id)
    theirs = bob_svc.fork(bob, share.id)
    assert (theirs.inherited, theirs.own) == (Totals(900, 15, 0, 0, 0.00296), Totals())
    assert bob_svc.get(bob, theirs.id).own == Totals()


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


def one_commit_bundle(folder: Path) -> bytes:
    """A real git bundle (a share scans it) holding one commit."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(folder),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        **{
            f"GIT_{who}_{what}": value
            for who in ("AUTHOR", "COMMITTER")
            for what, value in (("NAME", "Alice"), ("EMAIL", "alice@example.com"))
        },
    }
    repo = folder / "repo"
    repo.mkdir()
    (repo / "app.py").write_text("print('hi')\n")
    for args in (["init", "-q"], ["add", "app.py"], ["commit", "-qm", "first"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True)
    subprocess.run(["git", "bundle", "create", "-q", "b", "--all"], cwd=repo, env=env, check=True)
    return (repo / "b").read_bytes()


def test_a_share_says_what_it_publishes_and_can_leave_the_code_out(
    way: Way, tmp_path: Path
) -> None:
    svc, me = way.alice
    patch, bundle = b"a patch of two files", one_commit_bundle(tmp_path)
    for data in (patch, bundle):  # a snapshot names only blobs its owner uploaded
        svc.put_blob(sha256_hex(data), data, me)
    git = {
        "version": 1,
        "head": "c" * 40,
        "upstream": "origin/main",
        "patch": {"sha256": sha256_hex(patch), "size": len(patch), "files": 2},
        "bundle": {"sha256": sha256_hex(bundle), "size": len(bundle), "commits": 1},
    }
    session = svc.create(me, title="code", git=git)
    svc.append(me, session.id, [text_message("user", "hello")])
    full = svc.share(me, session.id)
    assert full.published == "1 message, 1 commit not on origin/main, uncommitted changes (2 files)"
    bare = svc.share(me, session.id, code=False)
    assert bare.published == "1 message, no code" and bare.withheld == []
    assert bare.git is not None and (bare.git["patch"], bare.git["bundle"]) == (None, None)
    assert svc.public_share(bare.id).published == "1 message, no code"


def test_blobs_and_git_snapshots_go_through_the_same_calls(way: Way) -> None:
    """`put_blob(sha256, data, owner)` then a snapshot naming it, read back with `blob`; the
    same state again records nothing. A body that does not hash to its name is refused."""
    svc, me = way.alice
    bob_svc, bob = way.bob
    patch = b"diff --git a/app.py b/app.py\n+print('hi')\n"
    sha = sha256_hex(patch)
    assert svc.put_blob(sha, patch, me) is None
    with pytest.raises(InvalidInput, match=f"the body does not hash to {'0' * 64}"):
        svc.put_blob("0" * 64, patch, me)
    session = svc.create(me, title="snap")
    git = {"version": 1, "head": "c" * 40, "state": "s1", "patch": {"sha256": sha, "size": 9}}
    updated, changed = svc.snapshot(me, session.id, git)
    assert (changed, updated.version, updated.git) == (True, 2, git)
    same, changed = svc.snapshot(me, session.id, {**git, "captured_at": "later"})
    assert (changed, same.version) == (False, 2)
    assert svc.blob(me, sha, session_id=session.id) == patch
    with pytest.raises(NotFound, match=f"no session {session.id}"):
        bob_svc.blob(bob, sha, session_id=session.id)
    with pytest.raises(NotFound, match=f"no blob {sha}"):
        svc.blob(me, sha, session_id=svc.create(me).id)
    with pytest.raises(InvalidInput, match=f"git.patch: blob {sha} is not one of yours"):
        bob_svc.create(bob, git=git)


def cloud(way: Way) -> tuple[Cloud, str, Cloud, str]:
    """Both accounts' ways in, as the Cloud contract."""
    (a, alice), (b, bob) = way.alice, way.bob
    return cast(Cloud, a), alice, cast(Cloud, b), bob


def test_repos_and_environments_alike_both_ways(way: Way) -> None:
    svc, me, other, bob = cloud(way)
    tag = secrets.token_hex(3)  # the remote servers live for the module
    repo = svc.add_repo(me, f"https://bot:{FAKE_KEY}@git.example.com/team/w{tag}.git")
    assert (repo.name, repo.url, repo.to_dict()["has_credentials"]) == (
        f"w{tag}",
        f"https://git.example.com/team/w{tag}.git",
        True,
    )
    assert repo.id in [r.id for r in svc.repos(me)]
    assert repo.id not in [r.id for r in other.repos(bob)]
    with pytest.raises(Conflict, match=f"a repository named 'w{tag}' exists already"):
        svc.add_repo(me, f"/srv/w{tag}")
    with pytest.raises(InvalidInput, match="is not a clone URL"):
        svc.add_repo(me, "ftp://x/y")
    env = svc.add_environment(
        me, f"ci-{tag}", variables={"MODE": "test"}, secrets={"API_KEY": FAKE_KEY}, setup=["make"]
    )
    assert env.to_dict() == {
        "id": env.id,
        "name": f"ci-{tag}",
        "variables": {"MODE": "test"},
        "secrets": ["API_KEY"],
        "setup": [{"command": "make", "timeout": 600.0}],
        "network": False,
        "model": None,
        "push": False,
        "created_at": env.created_at,
        "updated_at": env.updated_at,
    }
    changed = svc.change_environment(me, env.id, {"secrets": {"API_KEY": None}, "push": True})
    assert (changed.secret_names, changed.push) == ((), True)
    with pytest.raises(NotFound, match=f"no environment {env.id}"):
        other.change_environment(bob, env.id, {"push": False})
    with pytest.raises(NotFound, match=f"no repository {repo.id}"):
        other.remove_repo(bob, repo.id)
    svc.remove_environment(me, env.id)
    svc.remove_repo(me, repo.id)
    assert repo.id not in [r.id for r in svc.repos(me)]
    assert env.id not in [e.id for e in svc.environments(me)]
    assert FAKE_KEY not in repr([svc.repos(me), svc.environments(me)])


def test_runs_alike_both_ways(way: Way) -> None:
    svc, me, other, bob = cloud(way)
    tag = secrets.token_hex(3)
    svc.add_repo(me, f"/srv/git/r{tag}", default_branch="trunk")
    for run in svc.runs(me, limit=500):  # the module's server keeps earlier tests' runs
        if run.active:
            svc.cancel_run(me, run.id)
    run, session = svc.start_run(me, "Fix the login bug", repo=f"r{tag}")
    assert (run.state, run.branch, run.session_id, session.title, session.platform) == (
        "queued",
        "trunk",
        session.id,
        "Fix the login bug",
        "web",
    )
    assert svc.run(me, run.id).to_dict() == run.to_dict()
    assert [r.id for r in svc.runs(me, session_id=session.id)] == [run.id]
    with pytest.raises(NotFound, match=f"no run {run.id}"):
        other.run(bob, run.id)
    with pytest.raises(NotFound, match=f"no session {session.id}"):
        other.runs(bob, session_id=session.id)
    with pytest.raises(Conflict, match=f"session {session.id} has a run in progress"):
        svc.start_run(me, "more", session_id=session.id)
    with pytest.raises(InvalidInput, match="a run needs a task"):
        svc.start_run(me, "", repo=f"r{tag}")
    second, _ = svc.start_run(me, "another", repo=f"r{tag}")
    with pytest.raises(RateLimited, match="the limit is 2"):
        svc.start_run(me, "a third", repo=f"r{tag}")
    stopped = svc.cancel_run(me, run.id)
    assert (stopped.state, stopped.active) == ("stopped", False)
    with pytest.raises(Conflict, match="has ended"):
        svc.cancel_run(me, run.id)
    svc.cancel_run(me, second.id)
    again, same = svc.start_run(me, "go on", session_id=session.id)
    assert (same.id, again.branch) == (session.id, "trunk")
    svc.cancel_run(me, again.id)


def public_signature(cls: type, name: str) -> list[tuple[str, Any, Any]]:
    """A method's parameters (after self) as (name, kind, default)."""
    params = list(inspect.signature(getattr(cls, name)).parameters.values())[1:]
    return [(p.name, p.kind, p.default) for p in params]


CONTRACT = sorted(
    name
    for name, value in vars(Baton).items()
    if not name.startswith("_") and inspect.isfunction(value)
)
CLOUD = sorted(
    name
    for name, value in vars(Cloud).items()
    if not name.startswith("_") and inspect.isfunction(value)
)
# What the Service takes beyond the contract (the Client has no use for it).
SERVICE_ONLY = {"append": {"retries"}}


def test_the_contract_names_every_shared_call() -> None:
    assert CONTRACT == [
        "append",
        "blob",
        "create",
        "delete",
        "export",
        "fork",
        "gc",
        "get",
        "import_document",
        "install_url",
        "list",
        "messages",
        "now",
        "public_share",
        "put_blob",
        "rename",
        "rescan",
        "revoke",
        "scan_session",
        "share",
        "share_messages",
        "share_url",
        "shares",
        "snapshot",
        "update",
        "verify",
    ]


@pytest.mark.parametrize("name", [n for n in CONTRACT if n != "now"])
def test_service_and_client_take_the_contracts_parameters(name: str) -> None:
    """Same names, kinds and defaults on both sides (mypy checks the types): a call written
    for one works on the other."""
    wanted = public_signature(Baton, name)
    client = public_signature(Client, name)
    service = [p for p in public_signature(Service, name) if p[0] not in SERVICE_ONLY.get(name, ())]
    assert client == wanted
    assert service == wanted


@pytest.mark.parametrize("name", CLOUD)
def test_service_and_client_take_the_cloud_contracts_parameters(name: str) -> None:
    wanted = public_signature(Cloud, name)
    assert public_signature(Client, name) == wanted
    assert public_signature(Service, name) == wanted


def test_the_service_shares_the_contracts_values_not_copies() -> None:
    """One sentinel and one class of each result: a copy in the service would make the CLI's
    `ANY_HEAD` a real expected head in local mode, and results unequal across modes."""
    import baton.contract
    import baton.core.durations
    import baton.core.shares
    import baton.service

    for name in ("ANY_HEAD", "AppendResult", "ImportResult", "VerifyReport"):
        assert getattr(baton.service, name) is getattr(baton.contract, name), name
    assert baton.service.share_id_from is baton.core.shares.share_id_from
    assert baton.service.parse_duration is baton.core.durations.parse_duration

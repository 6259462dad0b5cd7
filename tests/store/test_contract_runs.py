"""The Store contract for server runs (repositories, environments, runs): part of the one suite
of tests/store/test_contract.py, run against every backend (memory, SQLite, PostgreSQL)
through the same `store` fixture."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from baton.core.errors import Conflict, NotFound
from baton.core.runs import (
    DONE,
    PREPARING,
    QUEUED,
    RUNNING,
    Environment,
    Repo,
    Run,
    new_environment_id,
    new_repo_id,
    new_run_id,
)
from baton.store.base import Store
from tests.store.test_contract import NOW, account, at, new_session


def repo(owner: str, name: str, **fields: object) -> Repo:
    values: dict[str, object] = {
        "id": new_repo_id(),
        "owner": owner,
        "name": name,
        "url": f"https://git.example.com/team/{name}.git",
        "created_at": NOW,
    }
    values.update(fields)
    return Repo(**values)  # type: ignore[arg-type]


def environment(owner: str, name: str, **fields: object) -> Environment:
    values: dict[str, object] = {
        "id": new_environment_id(),
        "owner": owner,
        "name": name,
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(fields)
    return Environment(**values)  # type: ignore[arg-type]


def run(owner: str, session_id: str, created_at: str = NOW, **fields: object) -> Run:
    values: dict[str, object] = {
        "id": new_run_id(),
        "owner": owner,
        "session_id": session_id,
        "repo_id": None,
        "environment_id": None,
        "branch": None,
        "prompt": "fix the tests",
        "state": QUEUED,
        "created_at": created_at,
        "updated_at": created_at,
        "times": {QUEUED: created_at},
    }
    values.update(fields)
    return Run(**values)  # type: ignore[arg-type]


# repositories


def test_a_repo_round_trips_every_field(store: Store) -> None:
    alice = account(store)
    r = repo(alice, "widgets", default_branch="trunk", credentials=b"\x00ciphertext\xff")
    store.add_repo(r)
    assert store.get_repo(r.id) == r
    plain = repo(alice, "gadgets")
    store.add_repo(plain)
    assert store.get_repo(plain.id) == plain
    assert store.get_repo(new_repo_id()) is None


def test_repos_are_listed_by_name_per_owner_and_a_name_is_taken_once(store: Store) -> None:
    alice, bob = account(store, "alice"), account(store, "bob")
    zeta, alpha = repo(alice, "zeta"), repo(alice, "alpha")
    store.add_repo(zeta)
    store.add_repo(alpha)
    store.add_repo(repo(bob, "zeta"))  # another owner may use the name
    assert [r.name for r in store.list_repos(alice)] == ["alpha", "zeta"]
    assert [r.id for r in store.list_repos(alice)] == [alpha.id, zeta.id]
    with pytest.raises(Conflict, match="a repository named 'zeta' exists already"):
        store.add_repo(repo(alice, "zeta"))
    assert [r.name for r in store.list_repos(alice)] == ["alpha", "zeta"]


def test_deleting_a_repo_says_whether_it_was_there(store: Store) -> None:
    alice = account(store)
    r = repo(alice, "widgets")
    store.add_repo(r)
    assert store.delete_repo(r.id) is True
    assert store.delete_repo(r.id) is False
    assert store.get_repo(r.id) is None and store.list_repos(alice) == []


# environments


def test_an_environment_round_trips_every_field(store: Store) -> None:
    alice = account(store)
    e = environment(
        alice,
        "ci",
        variables={"NODE_ENV": "test", "EMPTY": ""},
        secret_names=("API_KEY", "TOKEN"),
        secrets=b"\x01\x02sealed",
        setup=({"command": "pip install -e .", "timeout": 600}, {"command": "make", "timeout": 60}),
        network=True,
        model="gpt-x",
        push=True,
    )
    store.add_environment(e)
    assert store.get_environment(e.id) == e
    bare = environment(alice, "bare")
    store.add_environment(bare)
    got = store.get_environment(bare.id)
    assert got == bare and got is not None
    assert (got.variables, got.secret_names, got.secrets, got.setup) == ({}, (), None, ())
    assert (got.network, got.model, got.push) == (False, None, False)


def test_put_environment_replaces_the_row_and_keeps_names_unique(store: Store) -> None:
    alice = account(store)
    ci, dev = environment(alice, "ci"), environment(alice, "dev")
    store.add_environment(ci)
    store.add_environment(dev)
    with pytest.raises(Conflict, match="an environment named 'ci' exists already"):
        store.add_environment(environment(alice, "ci"))
    changed = Environment(
        id=ci.id,
        owner=alice,
        name="ci-2",
        created_at=NOW,
        updated_at=at(5),
        variables={"A": "1"},
        secret_names=("S",),
        secrets=b"new",
        setup=({"command": "true", "timeout": 5},),
        network=True,
        model="m",
        push=True,
    )
    store.put_environment(changed)
    assert store.get_environment(ci.id) == changed
    with pytest.raises(Conflict, match="an environment named 'dev' exists already"):
        store.put_environment(Environment(ci.id, alice, "dev", NOW, at(6)))
    assert store.get_environment(ci.id) == changed
    with pytest.raises(NotFound, match="no environment env_"):
        store.put_environment(environment(alice, "ghost"))
    assert [e.name for e in store.list_environments(alice)] == ["ci-2", "dev"]
    assert store.delete_environment(dev.id) is True
    assert store.delete_environment(dev.id) is False
    assert [e.name for e in store.list_environments(alice)] == ["ci-2"]


# runs


def test_a_run_round_trips_every_field(store: Store) -> None:
    alice = account(store)
    session = new_session(store, alice)
    r = run(
        alice,
        session.id,
        repo_id="repo_1",
        environment_id="env_1",
        branch="main",
        prompt="make it faster\nplease",
        model="gpt-x",
        error=None,
        worker=None,
    )
    store.add_run(r)
    assert store.get_run(r.id) == r
    moved = r.moved(PREPARING, at(1), worker="w1", heartbeat_at=at(1), workspace="/tmp/ws")
    moved = moved.moved(RUNNING, at(2))
    moved = moved.moved("failed", at(3), error="the worker stopped answering")
    assert store.put_run(moved) is True
    got = store.get_run(moved.id)
    assert got == moved and got is not None
    assert got.times == {QUEUED: NOW, PREPARING: at(1), RUNNING: at(2), "failed": at(3)}
    assert (got.worker, got.heartbeat_at, got.workspace) == ("w1", at(1), "/tmp/ws")
    assert store.get_run(new_run_id()) is None


def test_a_session_has_one_active_run_at_a_time(store: Store) -> None:
    alice = account(store)
    session = new_session(store, alice)
    first = run(alice, session.id)
    store.add_run(first)
    second = run(alice, session.id, created_at=at(1))
    with pytest.raises(Conflict) as raised:
        store.add_run(second)
    assert str(raised.value) == (
        f"session {session.id} has a run in progress ({first.id}): wait for it or stop it"
    )
    assert [r.id for r in store.list_runs(session_id=session.id)] == [first.id]
    # once the first has ended, the next may start
    assert store.put_run(first.moved(PREPARING, at(1)).moved(RUNNING, at(2)).moved(DONE, at(3)))
    store.add_run(second)
    assert [r.id for r in store.list_runs(session_id=session.id)] == [second.id, first.id]
    # another session is not held up
    other = new_session(store, alice)
    store.add_run(run(alice, other.id))


def test_a_run_of_an_unknown_session_is_refused(store: Store) -> None:
    alice = account(store)
    with pytest.raises(NotFound, match="no session ses_nobody"):
        store.add_run(run(alice, "ses_nobody"))
    assert store.list_runs(owner=alice) == []


def test_runs_are_listed_newest_first_by_owner_and_session(store: Store) -> None:
    alice, bob = account(store, "alice"), account(store, "bob")
    s1, s2 = new_session(store, alice), new_session(store, alice)
    s3 = new_session(store, bob)
    made = []
    for i, sid in enumerate([s1.id, s2.id, s1.id, s2.id]):
        r = run(alice, sid, created_at=at(i), state=DONE)
        store.add_run(r)
        made.append(r.id)
    theirs = run(bob, s3.id)
    store.add_run(theirs)
    assert [r.id for r in store.list_runs(owner=alice)] == made[::-1]
    assert [r.id for r in store.list_runs(owner=alice, limit=2)] == made[:1:-1]
    assert [r.id for r in store.list_runs(session_id=s1.id)] == [made[2], made[0]]
    assert [r.id for r in store.list_runs(owner=bob)] == [theirs.id]
    assert [r.id for r in store.list_runs(owner=alice, session_id=s3.id)] == []
    assert len(store.list_runs()) == 5


def test_put_run_writes_only_from_an_expected_state(store: Store) -> None:
    alice = account(store)
    session = new_session(store, alice)
    r = run(alice, session.id)
    store.add_run(r)
    preparing = r.moved(PREPARING, at(1), worker="w1")
    assert store.put_run(preparing, expect_states=[RUNNING]) is False
    assert store.get_run(r.id) == r
    assert store.put_run(preparing, expect_states=[QUEUED]) is True
    stopped = r.moved("stopped", at(2))
    assert store.put_run(stopped, expect_states=[QUEUED]) is False  # it moved on meanwhile
    assert store.get_run(r.id) == preparing
    assert store.put_run(run(alice, session.id)) is False  # not stored: nothing written


def test_claim_takes_the_oldest_queued_run_once(store: Store) -> None:
    alice = account(store)
    sessions = [new_session(store, alice) for _ in range(3)]
    newer = run(alice, sessions[0].id, created_at=at(5))
    older = run(alice, sessions[1].id, created_at=at(1))
    store.add_run(newer)
    store.add_run(older)
    store.add_run(run(alice, sessions[2].id, created_at=at(0), state=DONE))
    claimed = store.claim_run("worker-1", at(10))
    assert claimed is not None and claimed.id == older.id
    assert (claimed.state, claimed.worker, claimed.heartbeat_at) == (PREPARING, "worker-1", at(10))
    assert claimed.times == {QUEUED: at(1), PREPARING: at(10)}
    assert store.get_run(older.id) == claimed
    second = store.claim_run("worker-2", at(11))
    assert second is not None and (second.id, second.worker) == (newer.id, "worker-2")
    assert store.claim_run("worker-3", at(12)) is None


def test_two_workers_never_claim_one_run(store: Store) -> None:
    alice = account(store)
    queued = []
    for i in range(6):
        r = run(alice, new_session(store, alice).id, created_at=at(i))
        store.add_run(r)
        queued.append(r.id)
    claims: dict[str, list[str]] = {"a": [], "b": [], "c": []}

    def work(worker: str) -> None:
        while (got := store.claim_run(worker, at(30))) is not None:
            claims[worker].append(got.id)

    threads = [threading.Thread(target=work, args=(w,)) for w in claims]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken = [rid for got in claims.values() for rid in got]
    assert sorted(taken) == sorted(queued)  # each once, none left
    assert {r.state for r in store.list_runs(owner=alice)} == {PREPARING}


def test_stale_runs_are_the_busy_ones_whose_heartbeat_is_old(store: Store) -> None:
    alice = account(store)
    s = [new_session(store, alice) for _ in range(4)]
    quiet = run(alice, s[0].id, state=RUNNING, heartbeat_at=at(10), created_at=at(1))
    alive = run(alice, s[1].id, state=RUNNING, heartbeat_at=at(50))
    waiting = run(alice, s[2].id, state=QUEUED, created_at=at(0))  # not started: not stale
    never = run(alice, s[3].id, state=PREPARING, created_at=at(2), updated_at=at(2))
    for r in (quiet, alive, waiting, never):
        store.add_run(r)
    assert [r.id for r in store.stale_runs(at(40))] == [quiet.id, never.id]
    assert store.stale_runs(at(2)) == []


def test_waiting_runs_are_the_queued_ones_created_before_a_time(store: Store) -> None:
    alice, bob = account(store), account(store, "bob")
    old = run(alice, new_session(store, alice).id, created_at=at(1))
    older = run(bob, new_session(store, bob).id, created_at=at(0))
    new = run(alice, new_session(store, alice).id, created_at=at(20))
    busy = run(alice, new_session(store, alice).id, state=RUNNING, created_at=at(0))
    for r in (old, older, new, busy):
        store.add_run(r)
    assert [r.id for r in store.waiting_runs(at(10))] == [older.id, old.id]
    assert store.waiting_runs(at(0)) == []


def test_deleting_a_session_deletes_its_runs(store: Store) -> None:
    alice = account(store)
    session, kept = new_session(store, alice), new_session(store, alice)
    r, other = run(alice, session.id, state=DONE), run(alice, kept.id)
    store.add_run(r)
    store.add_run(other)
    store.delete_session(session.id, NOW)
    assert store.get_run(r.id) is None
    assert [x.id for x in store.list_runs(owner=alice)] == [other.id]


def test_active_runs_are_the_owners_unfinished_ones_oldest_first(store: Store) -> None:
    alice, bob = account(store, "alice"), account(store, "bob")
    s = [new_session(store, alice) for _ in range(4)]
    running = run(alice, s[0].id, state=RUNNING, created_at=at(3))
    queued = run(alice, s[1].id, created_at=at(1))
    preparing = run(alice, s[2].id, state=PREPARING, created_at=at(2))
    for r in (running, queued, preparing, run(alice, s[3].id, state=DONE)):
        store.add_run(r)
    store.add_run(run(bob, new_session(store, bob).id))
    assert [r.id for r in store.active_runs(alice)] == [queued.id, preparing.id, running.id]
    assert store.active_runs("acc_nobody") == []


def test_a_requested_cancel_stays_requested(store: Store) -> None:
    alice = account(store)
    r = run(alice, new_session(store, alice).id, state=RUNNING)
    store.add_run(r)
    assert store.put_run(dataclasses.replace(r, cancel_requested=True), expect_states=[RUNNING])
    # the worker's copy, read before the Stop, renews its heartbeat: the Stop is kept
    assert store.put_run(dataclasses.replace(r, heartbeat_at=at(9)), expect_states=[RUNNING])
    got = store.get_run(r.id)
    assert got is not None and (got.cancel_requested, got.heartbeat_at) == (True, at(9))

"""The Store and BlobStore contract: one suite, run against every backend (memory, SQLite)
through the `store` and `store_pair` fixtures. The service's rules are tested in
tests/test_service.py; this suite pins what each backend must do on its own."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from typing import Any

import pytest

from baton.core.chain import link
from baton.core.errors import Conflict, InvalidInput, NotFound, VersionMismatch
from baton.core.ids import new_account_id, new_session_id, new_share_id
from baton.core.models import Account, Login, Session, Share, StoredMessage, Token, Totals
from baton.core.validation import validate_message
from baton.store.base import (
    Answered,
    BlobStore,
    ListQuery,
    Remembered,
    Remembering,
    Store,
)

NOW = "2026-03-01T12:00:00.000000Z"
FINDING = [{"kind": "OpenAI Token", "excerpt": "sk-p…aa (48 chars)"}]


def at(second: int) -> str:
    """A fixed time, `second` seconds after 2026-03-01T12:00:00Z (up to an hour)."""
    return f"2026-03-01T12:{second // 60:02d}:{second % 60:02d}.000000Z"


def account(store: Store, handle: str = "alice") -> str:
    acc = Account(new_account_id(), handle, handle.title(), NOW)
    store.add_account(acc)
    return acc.id


def new_session(store: Store, owner: str, **fields: Any) -> Session:
    messages: list[StoredMessage] = fields.pop("messages", [])
    values: dict[str, Any] = {
        "id": new_session_id(),
        "owner": owner,
        "title": "",
        "task": "",
        "status": "active",
        "head": messages[-1].message.id if messages else None,
        "message_count": len(messages),
        "created_at": NOW,
        "updated_at": NOW,
        "version": 1,
        "totals": messages[-1].totals if messages else Totals(),
    }
    values.update(fields)
    session = Session(**values)
    store.create_session(session, messages)
    return session


def messages(
    parent: StoredMessage | None,
    *texts: str,
    usage: dict[str, Any] | None = None,
    findings_at: tuple[int, ...] = (),
) -> list[StoredMessage]:
    """Stored forms of user/assistant messages with these texts, after `parent`."""
    out: list[StoredMessage] = []
    for i, text in enumerate(texts):
        raw: dict[str, Any] = {
            "role": "user" if i % 2 == 0 else "assistant",
            "parts": [{"type": "text", "text": text}],
            "created_at": NOW,
        }
        if usage:
            raw["usage"] = usage
        item = validate_message(raw, NOW)
        out.append(link(out[-1] if out else parent, item, FINDING if i in findings_at else []))
    return out


def big(parent: StoredMessage | None, payload: str) -> StoredMessage:
    item = validate_message({"role": "tool", "parts": [{"type": "text", "text": payload}]}, NOW)
    return link(parent, item, [])


def new_share(store: Store, session: Session, head: str | None, **fields: Any) -> Share:
    copies: list[StoredMessage] = fields.pop("copies", [])
    values: dict[str, Any] = {
        "id": new_share_id(),
        "session_id": session.id,
        "owner": session.owner,
        "shared_by": {"account": session.owner, "handle": "alice", "display_name": "Alice"},
        "head": head,
        "message_count": session.message_count,
        "title": session.title or "Untitled session",
        "task": session.task,
        "metadata": session.metadata,
        "git": session.git,
        "created_at": NOW,
    }
    values.update(fields)
    share = Share(**values)
    store.create_share(share, copies)
    return share


def ids(stored: list[StoredMessage]) -> list[str]:
    return [sm.message.id for sm in stored]


def present(store: Store, message_ids: list[str]) -> set[str]:
    return set(store.get_messages(message_ids))


def listed(store: Store, owner: str, **query: Any) -> list[str]:
    return [s.id for s in store.list_sessions(ListQuery(owner, **query)).sessions]


# accounts


def test_accounts_are_found_by_id_and_handle(store: Store) -> None:
    acc = Account(new_account_id(), "alice", "Alice Example", NOW)
    store.add_account(acc)
    assert store.get_account(acc.id) == acc
    assert store.find_account("alice") == acc
    assert store.get_account(new_account_id()) is None
    assert store.find_account("nobody") is None


def test_a_handle_is_taken_once(store: Store) -> None:
    first = account(store, "alice")
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its own kind
        store.add_account(Account(new_account_id(), "alice", "Impostor", NOW))
    found = store.find_account("alice")
    assert found is not None and (found.id, found.display_name) == (first, "Alice")


# sessions


def test_accounts_are_listed_oldest_first_with_passwords_kept_apart(store: Store) -> None:
    store.add_account(Account("acc_b", "bob", "Bob", at(1)))
    store.add_account(Account("acc_a", "alice", "Alice", at(2)))
    alice, bob = "acc_a", "acc_b"
    assert [a.id for a in store.list_accounts()] == [bob, alice]
    assert store.password_hash(alice) is None
    store.set_password(alice, "$argon2id$fake")
    assert (store.password_hash(alice), store.password_hash(bob)) == ("$argon2id$fake", None)
    store.set_password(alice, None)
    assert store.password_hash(alice) is None
    with pytest.raises(NotFound):
        store.set_password("acc_nobody", "x")


def token(owner: str, name: str, created_at: str = NOW, kind: str = "api") -> Token:
    return Token(
        f"tok_{name}", owner, name, kind, hashlib.sha256(name.encode()).hexdigest(), created_at
    )


def test_tokens_are_found_by_hash_listed_newest_first_and_revoked_once(store: Store) -> None:
    alice, bob = account(store, "alice"), account(store, "bob")
    store.add_token(token(alice, "one", at(1)))
    store.add_token(token(alice, "two", at(2), kind="login"))
    store.add_token(token(bob, "three", at(3)))
    found = store.find_token(hashlib.sha256(b"two").hexdigest())
    assert found == token(alice, "two", at(2), kind="login")
    assert store.find_token("0" * 64) is None
    assert [t.name for t in store.list_tokens(alice)] == ["two", "one"]
    assert store.revoke_token("tok_one", at(4)) is True
    assert store.revoke_token("tok_one", at(5)) is False  # a login code works once
    assert store.revoke_token("tok_nothing", at(5)) is False
    store.touch_token("tok_three", at(6))
    [one] = [t for t in store.list_tokens(alice) if t.name == "one"]
    assert (one.revoked_at, one.state(at(7))) == (at(4), "revoked")
    assert store.list_tokens(bob)[0].last_used_at == at(6)
    with pytest.raises(NotFound):
        store.add_token(token("acc_nobody", "four"))


def login(owner: str, name: str, token_id: str | None = None, expires: int = 3000) -> Login:
    return Login(f"login-{name}", owner, token_id, at(0), at(expires))


def test_logins_end_by_logout_password_change_and_token_revoke(store: Store) -> None:
    alice, bob = account(store, "alice"), account(store, "bob")
    store.add_token(token(alice, "laptop", at(1)))
    for made in (
        login(alice, "password"),
        login(alice, "link"),
        login(alice, "with-token", "tok_laptop"),
        login(bob, "bobs"),
    ):
        store.add_login(made)
    assert store.get_login("login-with-token") == login(alice, "with-token", "tok_laptop")
    assert store.get_login("login-nothing") is None
    # logout ends that login only
    assert store.end_login("login-link") is True
    assert store.end_login("login-link") is False
    assert store.get_login("login-link") is None
    assert store.get_login("login-password") == login(alice, "password")
    # a password change ends the account's logins that no token made
    store.add_login(login(alice, "second"))
    assert store.end_password_logins(alice) == 2
    assert store.get_login("login-password") is None and store.get_login("login-second") is None
    assert store.get_login("login-with-token") == login(alice, "with-token", "tok_laptop")
    assert store.get_login("login-bobs") == login(bob, "bobs")  # other accounts keep theirs
    # revoking a token ends the logins made with it
    assert store.revoke_token("tok_laptop", at(2)) is True
    assert store.get_login("login-with-token") is None
    assert store.get_login("login-bobs") == login(bob, "bobs")
    with pytest.raises(NotFound):
        store.add_login(login("acc_nobody", "ghost"))
    with pytest.raises(NotFound):
        store.add_login(login(alice, "ghost", "tok_nothing"))
    assert store.get_login("login-ghost") is None


def test_a_new_login_forgets_the_accounts_expired_ones(store: Store) -> None:
    alice, bob = account(store, "alice"), account(store, "bob")
    store.add_login(login(alice, "old", expires=10))
    store.add_login(login(bob, "bobs-old", expires=10))
    store.add_login(login(alice, "recent", expires=3000))
    store.add_login(Login("login-new", alice, None, at(10), at(3000)))
    assert store.get_login("login-old") is None
    assert store.get_login("login-recent") == login(alice, "recent", expires=3000)
    assert store.get_login("login-bobs-old") == login(bob, "bobs-old", expires=10)


def test_messages_with_blob_finds_every_referrer(store: Store) -> None:
    owner = account(store)
    big = "q" * 70_000
    first = messages(None, big)
    second = messages(first[-1], "after", big)
    new_session(store, owner, messages=first + second)
    [sha] = first[0].blobs
    assert sorted(sm.message.id for sm in store.messages_with_blob(sha)) == sorted(
        [first[0].message.id, second[1].message.id]
    )
    assert store.messages_with_blob("f" * 64) == []
    # read back, a message names its blobs as it did when stored
    assert store.get_messages([first[0].message.id])[first[0].message.id] == first[0]
    assert all(sm.blobs == (sha,) for sm in store.messages_with_blob(sha))


def test_a_session_round_trips_every_field(store: Store) -> None:
    owner = account(store)
    chain = messages(None, "a", "b", usage={"input_tokens": 7, "cost_usd": 0.125})
    session = new_session(
        store,
        owner,
        messages=chain,
        title="Ünïcode title 🚀",
        task="fix\nthe login",
        status="paused",
        version=4,
        metadata={"mode": "plan", "todo": [{"text": "x", "done": False}], "n": 2**63 - 1},
        git={"remote": "github.com/o/r", "branch": "main", "dirty": True},
        platform="web",
        forked_from={"share": "abc", "message": chain[0].message.id},
        repo="github.com/o/r",
        title_auto=False,
        created_at=at(1),
        updated_at=at(2),
    )
    assert store.get_session(session.id) == session
    assert session.totals == Totals(input_tokens=14, cost_usd=0.25)
    assert store.get_session(new_session_id()) is None


def test_returned_sessions_are_copies(store: Store) -> None:
    owner = account(store)
    session = new_session(store, owner, metadata={"todo": ["a"]})
    got = store.get_session(session.id)
    assert got is not None
    got.metadata["todo"].append("b")
    got.title = "changed"
    assert store.get_session(session.id) == session


def test_a_session_with_an_unknown_head_is_refused(store: Store) -> None:
    owner = account(store)
    ghost = messages(None, "never stored")[0]
    with pytest.raises(NotFound):
        store.create_session(
            Session(new_session_id(), owner, "", "", "active", ghost.message.id, 1, NOW, NOW, 1)
        )
    assert list(store.iter_sessions()) == []


def test_a_session_stores_the_messages_it_brings(store: Store) -> None:
    owner = account(store)
    chain = messages(None, "one", "two", "three", findings_at=(1,))
    session = new_session(store, owner, messages=chain)
    got = store.get_messages(ids(chain))
    assert list(got) == ids(chain)
    for expected in chain:
        stored = got[expected.message.id]
        assert stored.message == expected.message
        assert (stored.depth, stored.root, stored.totals) == (
            expected.depth,
            expected.root,
            expected.totals,
        )
        assert (stored.findings, stored.flagged) == (
            expected.findings,
            expected.flagged,
        )
    assert store.chain(session.head or "") == [sm.message for sm in chain]


def test_messages_whose_parent_is_not_stored_are_refused_whole(store: Store) -> None:
    """All or nothing: a batch with one orphan stores none of its messages, and the store
    keeps working afterwards."""
    owner = account(store)
    chain = messages(None, "a", "b", "c")
    batch = [*messages(None, "a fresh start"), chain[2]]  # chain[2]'s parent was never stored
    with pytest.raises(NotFound):
        new_session(store, owner, messages=batch)
    assert list(store.iter_sessions()) == []
    session = new_session(store, owner)
    with pytest.raises(NotFound):
        store.append(session.id, None, batch, {"updated_at": at(1)})
    assert store.get_session(session.id) == session
    with pytest.raises(NotFound):
        new_share(store, session, batch[-1].message.id, copies=batch)
    assert store.list_shares() == []
    assert present(store, ids(batch)) == set()
    assert store.gc(NOW) == (0, [])
    good = store.append(session.id, None, chain, {"updated_at": at(2)})
    assert good.message_count == 3


def test_find_session_by_owner_and_head(store: Store) -> None:
    alice, bob = account(store, "alice"), account(store, "bob")
    chain = messages(None, "a", "b")
    mine = new_session(store, alice, messages=chain)
    assert store.find_session(alice, chain[-1].message.id) == mine
    assert store.find_session(bob, chain[-1].message.id) is None
    assert store.find_session(alice, chain[0].message.id) is None


# appends


def test_a_fork_keeps_what_it_inherited_apart_from_what_it_spends(store: Store) -> None:
    owner = account(store)
    chain = messages(None, "a", "b", usage={"input_tokens": 7, "cost_usd": 0.00048})
    top = chain[-1]
    fork = new_session(
        store,
        owner,
        messages=chain,
        forked_from={"session": new_session_id(), "message": top.message.id},
        inherited=top.totals,
    )
    assert store.get_session(fork.id) == fork
    assert (fork.inherited, fork.own) == (Totals(input_tokens=14, cost_usd=0.00096), Totals())
    more = messages(top, "c", usage={"output_tokens": 3, "cost_usd": 0.001})
    moved = store.append(fork.id, top.message.id, more, {"updated_at": at(5)})
    assert moved == store.get_session(fork.id)
    assert (moved.totals, moved.inherited, moved.own) == (
        Totals(input_tokens=14, output_tokens=3, cost_usd=0.00196),
        Totals(input_tokens=14, cost_usd=0.00096),
        Totals(output_tokens=3, cost_usd=0.001),
    )
    # saturated totals never make a negative own
    big = Totals(2**63 - 1, 2**63 - 1, 0, 0, 1e15)
    saturated = new_session(store, owner, totals=big, inherited=big)
    assert store.get_session(saturated.id) == saturated
    assert saturated.own == Totals()
    assert Totals(1, 0, 0, 0, 0.5).minus(Totals(2, 1, 0, 0, 0.75)) == Totals()


def test_append_moves_the_head_and_applies_changes(store: Store) -> None:
    owner = account(store)
    session = new_session(store, owner)
    chain = messages(None, "hello there", "hi", usage={"output_tokens": 5, "cost_usd": 0.5})
    updated = store.append(session.id, None, chain, {"updated_at": at(9), "title": "hello there"})
    expected = dataclasses.replace(
        session,
        head=chain[-1].message.id,
        message_count=2,
        totals=Totals(output_tokens=10, cost_usd=1.0),
        version=2,
        updated_at=at(9),
        title="hello there",
    )
    assert updated == expected
    assert store.get_session(session.id) == expected
    more = messages(chain[-1], "and more")
    again = store.append(session.id, chain[-1].message.id, more, {"updated_at": at(10)})
    assert (again.head, again.message_count, again.version) == (more[0].message.id, 3, 3)
    assert store.chain(again.head or "") == [sm.message for sm in [*chain, *more]]


def test_append_after_a_stale_head_is_a_conflict_that_stores_nothing(store: Store) -> None:
    owner = account(store)
    first = messages(None, "one", "two")
    session = new_session(store, owner, messages=first)
    stale = messages(first[0], "a different two")
    with pytest.raises(Conflict) as caught:
        store.append(session.id, first[0].message.id, stale, {"updated_at": at(5)})
    assert caught.value.current_head == first[-1].message.id
    assert first[-1].message.id in caught.value.message
    assert present(store, ids(stale)) == set()
    assert store.get_session(session.id) == session
    with pytest.raises(Conflict) as empty:
        store.append(session.id, None, messages(None, "x"), {})
    assert empty.value.current_head == first[-1].message.id


def test_append_to_an_unknown_session_or_field_is_refused(store: Store) -> None:
    owner = account(store)
    with pytest.raises(NotFound):
        store.append(new_session_id(), None, messages(None, "x"), {})
    session = new_session(store, owner)
    with pytest.raises(ValueError, match="cannot change"):
        store.append(session.id, None, messages(None, "x"), {"owner": "someone else"})
    assert store.get_session(session.id) == session


def test_a_message_two_sessions_share_is_stored_once(store: Store) -> None:
    owner = account(store)
    chain = messages(None, "same start", "same reply")
    a = new_session(store, owner, messages=chain)
    b = new_session(store, owner)
    updated = store.append(b.id, None, chain, {"updated_at": at(3)})
    assert (updated.head, updated.message_count) == (a.head, 2)
    assert store.chain(a.head or "") == store.chain(updated.head or "")


# reading chains


def test_chain_pages_by_position(store: Store) -> None:
    owner = account(store)
    chain = messages(None, *[f"m{i}" for i in range(10)])
    head = new_session(store, owner, messages=chain).head or ""
    everything = [sm.message for sm in chain]
    assert store.chain(head) == everything
    assert store.chain(head, 0, 3) == everything[:3]
    assert store.chain(head, 3, 4) == everything[3:7]
    assert store.chain(head, 7) == everything[7:]
    assert store.chain(head, 9, 100) == everything[9:]
    assert store.chain(head, 10) == []
    assert store.chain(head, 2, 0) == []
    assert store.chain(chain[4].message.id) == everything[:5]
    assert store.chain("m_" + "0" * 64) == []


def test_pages_far_from_the_head_are_right_on_every_branch(store: Store) -> None:
    """A page near the start of a long chain (found without walking from the head, where the
    store can) is the same slice whichever branch of the family it is read through."""
    owner = account(store)
    trunk = messages(None, *(f"trunk {i}" for i in range(120)))
    branch = messages(trunk[9], *(f"branch {i}" for i in range(80)))
    late = messages(trunk[99], *(f"late {i}" for i in range(5)))
    new_session(store, owner, messages=trunk)
    new_session(store, owner, messages=trunk[:10] + branch)
    new_session(store, owner, messages=trunk[:100] + late)
    for chain in (trunk, trunk[:10] + branch, trunk[:100] + late):
        ids = [sm.message.id for sm in chain]
        head = ids[-1]
        for start, limit in ((0, 5), (0, 20), (5, 10), (40, 20), (len(ids) - 3, 10)):
            got = [m.id for m in store.chain(head, start, limit)]
            assert got == ids[start : start + limit], (len(ids), start, limit)
        for depth in [d for d in (0, 9, 10, 11, 50, 99, 100, len(ids) - 1) if d < len(ids)]:
            assert store.ancestor(head, depth) == ids[depth]
        assert store.ancestor(head, len(ids)) is None


def test_ancestor_names_the_message_at_a_position(store: Store) -> None:
    owner = account(store)
    chain = messages(None, *[f"m{i}" for i in range(6)])
    head = new_session(store, owner, messages=chain).head or ""
    assert [store.ancestor(head, d) for d in range(6)] == ids(chain)
    assert store.ancestor(head, 6) is None
    assert store.ancestor(chain[2].message.id, 4) is None
    assert store.ancestor("m_" + "0" * 64, 0) is None


def test_flagged_lists_messages_with_findings_oldest_first(store: Store) -> None:
    owner = account(store)
    chain = messages(None, *[f"m{i}" for i in range(7)], findings_at=(1, 4, 5))
    head = new_session(store, owner, messages=chain).head or ""
    found = store.flagged(head)
    assert [sm.message.id for sm in found] == [ids(chain)[i] for i in (1, 4, 5)]
    assert [sm.depth for sm in found] == [1, 4, 5]
    assert all(sm.findings == FINDING for sm in found)
    assert [sm.depth for sm in store.flagged(chain[3].message.id)] == [1]
    assert store.flagged(chain[0].message.id) == []
    assert store.flagged("m_" + "0" * 64) == []


def test_the_rescan_reads_every_message_parents_first_and_sets_findings(store: Store) -> None:
    """What the one-time rescan of the secret scan needs (service.findings.rescan)."""
    from baton.store.memory import MemoryStore

    assert store.scan_rules() == (None if isinstance(store, MemoryStore) else 2)
    owner = account(store)
    chain = messages(None, *[f"m{i}" for i in range(5)])
    new_session(store, owner, messages=chain)
    new_session(store, owner, messages=messages(chain[2], "f0", "f1"))
    new_session(store, owner, messages=messages(None, "o0", "o1"))
    assert store.count_messages() == 9
    seen: list[StoredMessage] = []
    after = None
    while batch := store.messages_in_order(after, 2):
        assert len(batch) <= 2
        seen += batch
        after = (batch[-1].root, batch[-1].depth, batch[-1].message.id)
    order = [sm.message.id for sm in seen]
    assert len(set(order)) == 9
    keys = [(sm.root, sm.depth, sm.message.id) for sm in seen]
    assert keys == sorted(keys)
    for sm in seen:
        if sm.message.parent is not None:
            assert order.index(sm.message.parent) < order.index(sm.message.id)
    flagged = chain[1].message.id
    store.set_findings(
        [(flagged, FINDING, flagged), *[(sm.message.id, [], flagged) for sm in chain[2:]]]
    )
    assert [sm.message.id for sm in store.flagged(chain[-1].message.id)] == [flagged]
    assert store.get_messages([flagged])[flagged].findings == FINDING
    assert store.get_messages([chain[0].message.id])[chain[0].message.id].findings == []
    store.set_findings([])
    store.set_scan_rules(3)
    assert store.scan_rules() == 3


def test_get_messages_leaves_out_unknown_ids_in_any_number(store: Store) -> None:
    owner = account(store)
    chain = messages(None, *[f"m{i}" for i in range(600)])
    new_session(store, owner, messages=chain)
    unknown = [f"m_{i:064x}" for i in range(700)]
    asked = [x for pair in zip(unknown, ids(chain), strict=False) for x in pair] + unknown[600:]
    assert set(store.get_messages(asked)) == set(ids(chain))
    assert store.get_messages([]) == {}


# header updates


def test_update_session_checks_the_version(store: Store) -> None:
    owner = account(store)
    session = new_session(store, owner)
    changed = store.update_session(
        session.id,
        1,
        {
            "title": "Renamed",
            "title_auto": False,
            "status": "done",
            "metadata": {"mode": "build"},
            "git": {"remote": "r"},
            "repo": "r",
            "task": "t",
            "updated_at": at(5),
        },
    )
    expected = dataclasses.replace(
        session,
        version=2,
        title="Renamed",
        title_auto=False,
        status="done",
        metadata={"mode": "build"},
        git={"remote": "r"},
        repo="r",
        task="t",
        updated_at=at(5),
    )
    assert changed == expected == store.get_session(session.id)
    with pytest.raises(VersionMismatch) as caught:
        store.update_session(session.id, 1, {"status": "paused"})
    assert caught.value.current_version == 2
    assert store.get_session(session.id) == expected
    unconditional = store.update_session(session.id, None, {"status": "paused"})
    assert (unconditional.status, unconditional.version) == ("paused", 3)


def test_update_session_refuses_unknown_sessions_and_fields(store: Store) -> None:
    owner = account(store)
    with pytest.raises(NotFound):
        store.update_session(new_session_id(), None, {"status": "done"})
    with pytest.raises(NotFound):
        store.update_session(new_session_id(), 1, {"status": "done"})
    session = new_session(store, owner)
    with pytest.raises(ValueError, match="cannot change"):
        store.update_session(session.id, None, {"head": None})
    assert store.get_session(session.id) == session


# listing


def test_list_pages_newest_first_with_ties_broken_by_id(store: Store) -> None:
    owner = account(store)
    # four sessions updated at the same instant, three at distinct later ones
    same = [new_session(store, owner, updated_at=at(1)).id for _ in range(4)]
    later = [new_session(store, owner, updated_at=at(2 + i)).id for i in range(3)]
    expected = list(reversed(later)) + sorted(same, reverse=True)
    for limit in (1, 2, 3, 7, 50):
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = store.list_sessions(ListQuery(owner, limit=limit, cursor=cursor))
            assert len(page.sessions) <= limit
            seen += [s.id for s in page.sessions]
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == expected, limit
        assert pages == -(-7 // limit)


def test_list_shows_only_the_owners_sessions(store: Store) -> None:
    alice, bob = account(store, "alice"), account(store, "bob")
    mine = new_session(store, alice, title="the walrus")
    new_session(store, bob, title="the walrus")
    assert listed(store, alice) == [mine.id]
    assert listed(store, alice, text="walrus") == [mine.id]
    assert listed(store, account(store, "carol")) == []


def test_list_filters_by_status_and_repo(store: Store) -> None:
    owner = account(store)
    a = new_session(store, owner, repo="github.com/o/birds", updated_at=at(1))
    b = new_session(store, owner, repo="github.com/o/birds", status="done", updated_at=at(2))
    c = new_session(store, owner, status="done", updated_at=at(3))
    assert listed(store, owner, status="done") == [c.id, b.id]
    assert listed(store, owner, repo="github.com/o/birds") == [b.id, a.id]
    assert listed(store, owner, repo="github.com/o/birds", status="done") == [b.id]
    assert listed(store, owner, status="archived") == []


def test_list_text_matches_title_task_and_message_words(store: Store) -> None:
    owner = account(store)
    by_title = new_session(store, owner, title="Penguin migration", updated_at=at(1))
    by_task = new_session(store, owner, task="parse the walrus logs", updated_at=at(2))
    chain = messages(None, "where is the flamingo colour bug", "in the palette code")
    by_text = new_session(store, owner, messages=chain, updated_at=at(3))
    assert listed(store, owner, text="penguin") == [by_title.id]
    assert listed(store, owner, text="Walrus") == [by_task.id]
    assert listed(store, owner, text="flamingo") == [by_text.id]
    assert listed(store, owner, text="palette") == [by_text.id]
    assert listed(store, owner, text="flamingo colour") == [by_text.id]
    assert listed(store, owner, text="the") == [by_text.id, by_task.id]
    assert listed(store, owner, text="flamin") == [by_text.id]  # the last word is a prefix
    assert listed(store, owner, text="flamingo walrus") == []  # every word must match
    assert listed(store, owner, text="albatross") == []


def test_list_text_follows_renames_and_appends(store: Store) -> None:
    owner = account(store)
    session = new_session(store, owner, title="Old narwhal")
    store.update_session(session.id, None, {"title": "New dolphin"})
    assert listed(store, owner, text="dolphin") == [session.id]
    assert listed(store, owner, text="narwhal") == []
    store.append(session.id, None, messages(None, "an octopus appears"), {"title": "Octopus"})
    assert listed(store, owner, text="octopus") == [session.id]
    assert listed(store, owner, text="dolphin") == []


def test_list_text_sees_only_messages_on_the_sessions_own_chain(store: Store) -> None:
    owner = account(store)
    chain = messages(None, "common start", "reply", "only in the longer albatross")
    short = new_session(store, owner, messages=chain[:2], updated_at=at(1))
    long = new_session(store, owner, messages=chain, updated_at=at(2))
    assert listed(store, owner, text="albatross") == [long.id]
    assert listed(store, owner, text="common") == [long.id, short.id]


def test_list_text_with_search_syntax_is_taken_literally(store: Store) -> None:
    owner = account(store)
    new_session(store, owner, title="AND OR NOT near")
    for text in ['"', "-", "*", "(x", 'foo"bar', "a AND b", "NEAR(", "title:x", "^start"]:
        assert isinstance(listed(store, owner, text=text), list)


def test_list_text_finds_words_joined_by_underscores_and_dashes(store: Store) -> None:
    owner = account(store)
    hit = new_session(store, owner, title="fix snake_case_name in kebab-case-file").id
    new_session(store, owner, title="unrelated")
    for text in ("snake_case", "snake_case_name", "kebab-case", "case_na", "SNAKE"):
        assert listed(store, owner, text=text) == [hit], text


def test_list_text_and_cursor_together(store: Store) -> None:
    owner = account(store)
    made = [new_session(store, owner, title=f"kiwi {i}", updated_at=at(i)).id for i in range(5)]
    new_session(store, owner, title="other", updated_at=at(10))
    first = store.list_sessions(ListQuery(owner, limit=2, text="kiwi"))
    second = store.list_sessions(ListQuery(owner, limit=2, cursor=first.next_cursor, text="kiwi"))
    third = store.list_sessions(ListQuery(owner, limit=2, cursor=second.next_cursor, text="kiwi"))
    pages = [first.sessions, second.sessions, third.sessions]
    assert [s.id for page in pages for s in page] == list(reversed(made))
    assert third.next_cursor is None


def test_a_bad_cursor_is_invalid_input(store: Store) -> None:
    owner = account(store)
    for cursor in ("not-a-cursor!", "bm9waXBl"):
        with pytest.raises(InvalidInput, match="cursor"):
            store.list_sessions(ListQuery(owner, cursor=cursor))


# deletion and garbage collection


def test_delete_removes_what_nothing_else_reaches(store: Store) -> None:
    owner = account(store)
    chain = messages(None, "a", "b", "c", "d")
    session = new_session(store, owner, messages=chain)
    fork = new_session(store, owner, head=chain[1].message.id, message_count=2)
    other = new_session(store, owner, messages=messages(None, "unrelated"))
    assert store.delete_session(session.id, NOW) == []
    assert store.get_session(session.id) is None
    assert present(store, ids(chain)) == set(ids(chain[:2]))
    assert store.chain(fork.head or "") == [sm.message for sm in chain[:2]]
    assert len(store.chain(other.head or "")) == 1
    assert [s.id for s in store.iter_sessions()] == [fork.id, other.id]
    with pytest.raises(NotFound):
        store.delete_session(session.id, NOW)


def test_delete_keeps_what_a_live_share_reaches_and_nothing_else(store: Store) -> None:
    owner = account(store)
    chain = messages(None, "a", "b", "c", "d", "e")
    session = new_session(store, owner, messages=chain)
    live = new_share(store, session, chain[3].message.id)
    new_share(store, session, chain[4].message.id, revoked_at=NOW)
    new_share(store, session, chain[4].message.id, expires_at=at(1))
    store.delete_session(session.id, at(2))
    assert present(store, ids(chain)) == set(ids(chain[:4]))
    assert store.chain(live.head or "") == [sm.message for sm in chain[:4]]
    store.revoke_share(live.id, at(3))
    assert store.gc(at(3))[0] == 4
    assert present(store, ids(chain)) == set()


def test_delete_returns_blobs_nothing_references_any_more(store: Store) -> None:
    owner = account(store)
    first = big(None, "x" * 70_000)
    second = big(first, "y" * 70_000)
    kept = big(None, "y" * 70_000)
    doomed = new_session(store, owner, messages=[first, second])
    new_session(store, owner, messages=[kept])
    assert store.referenced_blobs() == {*first.blobs, *second.blobs}
    assert store.delete_session(doomed.id, NOW) == list(first.blobs)
    assert store.referenced_blobs() == set(second.blobs)


def test_gc_removes_what_no_session_or_live_share_reaches(store: Store) -> None:
    owner = account(store)
    chain = messages(None, "a", "b", "c")
    session = new_session(store, owner, messages=chain)
    secret = big(chain[-1], "s" * 70_000)
    copy = new_share(store, session, secret.message.id, copies=[secret], revoked_at=NOW)
    assert store.gc(NOW) == (1, list(secret.blobs))
    assert present(store, [secret.message.id]) == set()
    assert store.gc(NOW) == (0, [])
    assert store.chain(session.head or "") == [sm.message for sm in chain]
    assert store.get_share(copy.id) is not None  # the revoked share row stays, for its 410


def test_gc_keeps_live_shares_until_they_expire(store: Store) -> None:
    owner = account(store)
    base = messages(None, "a")
    session = new_session(store, owner, messages=base)
    extra = messages(base[0], "copy")
    new_share(store, session, extra[0].message.id, copies=extra, expires_at=at(60))
    assert store.gc(at(59)) == (0, [])
    assert store.chain(extra[0].message.id)[-1] == extra[0].message
    assert store.gc(at(60)) == (1, [])
    assert present(store, ids(base)) == set(ids(base))


def test_release_blobs_only_frees_unreferenced_ones(store: Store) -> None:
    owner = account(store)
    held = big(None, "h" * 70_000)
    new_session(store, owner, messages=[held])
    [sha] = held.blobs
    loose = hashlib.sha256(b"loose").hexdigest()
    deleted: list[list[str]] = []
    assert store.release_blobs([sha, loose], deleted.append) == [loose]
    assert deleted == [[loose]]
    assert store.release_blobs([], deleted.append) == []


def test_iter_sessions_lists_every_owner(store: Store) -> None:
    alice, bob = account(store, "alice"), account(store, "bob")
    made = {new_session(store, alice).id, new_session(store, bob).id}
    assert {s.id for s in store.iter_sessions()} == made


# shares


def test_a_share_round_trips_every_field(store: Store) -> None:
    owner = account(store)
    chain = messages(None, "a", "b", usage={"input_tokens": 2})
    session = new_session(store, owner, messages=chain, title="T", task="K")
    share = new_share(
        store,
        session,
        chain[-1].message.id,
        expires_at=at(99),
        redacted=[{"where": "message 2", "kind": "OpenAI Token", "excerpt": "sk-p…"}],
        totals=chain[-1].totals,
        metadata={"mode": "plan"},
        git={"remote": "r"},
    )
    assert store.get_share(share.id) == share
    assert store.get_share(new_share_id()) is None


def test_a_share_of_an_unknown_head_is_refused(store: Store) -> None:
    owner = account(store)
    session = new_session(store, owner)
    with pytest.raises(NotFound):
        new_share(store, session, messages(None, "ghost")[0].message.id)
    assert store.list_shares() == []


def test_a_share_can_bring_copies(store: Store) -> None:
    owner = account(store)
    chain = messages(None, "a", "key here")
    session = new_session(store, owner, messages=chain)
    copies = messages(chain[0], "[REDACTED:k]")
    share = new_share(store, session, copies[-1].message.id, copies=copies)
    assert store.chain(share.head or "") == [chain[0].message, copies[0].message]


def test_shares_are_listed_newest_first_by_owner_and_session(store: Store) -> None:
    alice, bob = account(store, "alice"), account(store, "bob")
    one = new_session(store, alice)
    two = new_session(store, alice)
    theirs = new_session(store, bob)
    s1 = new_share(store, one, None, created_at=at(1))
    s2 = new_share(store, two, None, created_at=at(2))
    s3 = new_share(store, one, None, created_at=at(3))
    sb = new_share(store, theirs, None, created_at=at(4))
    assert [s.id for s in store.list_shares(owner=alice)] == [s3.id, s2.id, s1.id]
    assert [s.id for s in store.list_shares(session_id=one.id)] == [s3.id, s1.id]
    assert [s.id for s in store.list_shares(owner=bob)] == [sb.id]
    assert [s.id for s in store.list_shares()] == [sb.id, s3.id, s2.id, s1.id]
    tied = sorted([new_share(store, two, None, created_at=at(9)).id for _ in range(3)])
    assert [s.id for s in store.list_shares(session_id=two.id)][:3] == tied


def test_revoking_keeps_the_first_time(store: Store) -> None:
    owner = account(store)
    share = new_share(store, new_session(store, owner), None)
    revoked = store.revoke_share(share.id, at(1))
    assert revoked == dataclasses.replace(share, revoked_at=at(1))
    assert store.revoke_share(share.id, at(2)).revoked_at == at(1)
    assert store.get_share(share.id) == revoked
    with pytest.raises(NotFound):
        store.revoke_share(new_share_id(), NOW)


# blob access and idempotency keys


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_granted_blobs_are_the_accounts_uploads_and_its_sessions_git_blobs(store: Store) -> None:
    alice, bob = account(store, "alice"), account(store, "bob")
    uploaded, patch, bundle, unknown = sha("up"), sha("patch"), sha("bundle"), sha("none")
    store.grant_blobs(alice, [uploaded], NOW)
    store.grant_blobs(alice, [uploaded], at(1))  # granting again is a no-op
    store.grant_blobs(alice, [], NOW)
    git = {"patch": {"sha256": patch, "size": 1}, "bundle": {"sha256": bundle, "size": 1}}
    session = new_session(store, alice, git=git)
    everything = [uploaded, patch, bundle, unknown]
    assert store.granted_blobs(alice, everything) == {uploaded, patch, bundle}
    assert store.granted_blobs(bob, everything) == set()
    # a new snapshot replaces the old one's references
    store.update_session(session.id, None, {"git": {"patch": {"sha256": unknown, "size": 1}}})
    assert store.granted_blobs(alice, everything) == {uploaded, unknown}
    store.update_session(session.id, None, {"git": None})
    assert store.granted_blobs(alice, everything) == {uploaded}
    store.delete_session(session.id, NOW)
    assert store.granted_blobs(alice, everything) == {uploaded}


def test_git_blobs_are_referenced_while_a_session_or_live_share_names_them(store: Store) -> None:
    owner = account(store)
    patch, other = sha("patch"), sha("other")
    session = new_session(store, owner, git={"patch": {"sha256": patch, "size": 1}})
    share = new_share(store, session, None)
    assert store.referenced_blobs() == {patch}
    store.update_session(session.id, None, {"git": {"bundle": {"sha256": other, "size": 1}}})
    assert store.referenced_blobs() == {patch, other}  # the live share still names the patch
    deleted: list[list[str]] = []
    assert store.release_blobs([patch, other], deleted.append) == []
    store.revoke_share(share.id, NOW)
    assert store.referenced_blobs() == {other}
    assert store.release_blobs([patch, other], deleted.append) == [patch]
    assert deleted == [[], [patch]]


def test_releasing_a_blob_forgets_its_grants(store: Store) -> None:
    owner = account(store)
    store.grant_blobs(owner, [sha("loose")], NOW)
    assert store.release_blobs([sha("loose")], lambda doomed: None) == [sha("loose")]
    assert store.granted_blobs(owner, [sha("loose")]) == set()


def test_blob_access_follows_the_chains_of_the_accounts_sessions(store: Store) -> None:
    alice, bob = account(store, "alice"), account(store, "bob")
    first = big(None, "f" * 70_000)
    later = big(first, "l" * 70_000)
    new_session(store, alice, messages=[first, later])
    [early], [late] = first.blobs, later.blobs
    assert store.family_heads(alice, first.root) == [later.message.id]
    assert store.family_heads(bob, first.root) == []
    assert store.blob_access(alice, [early, late]) == {early, late}
    assert store.blob_access(bob, [early, late]) == set()
    # bob's fork at the first message reaches its blob, not the later one's
    new_session(store, bob, messages=[], head=first.message.id, message_count=1)
    assert store.family_heads(bob, first.root) == [first.message.id]
    assert store.blob_access(bob, [early, late]) == {early}


def test_an_idempotency_key_is_remembered_per_session_for_a_day(store: Store) -> None:
    owner = account(store)
    one, two = new_session(store, owner), new_session(store, owner)
    first = Remembered("r1", 201, {"appended": ["m_1"], "n": 1.5})
    assert store.recall(one.id, "k", NOW) is None
    assert store.remember(one.id, "k", first, at(0)) == first
    # the first answer stands; another session's key of the same name is another key
    assert store.remember(one.id, "k", Remembered("r2", 200, {}), at(1)) == first
    assert store.recall(one.id, "k", at(0)) == first
    assert store.recall(two.id, "k", at(0)) is None
    assert store.remember(two.id, "k", Remembered("r2", 200, {}), at(1)).request == "r2"
    assert store.recall(one.id, "k", at(1)) is None  # recorded before `since`: expired
    # a day later the key is forgotten and can be used again
    tomorrow = "2026-03-02T12:00:01.000000Z"
    assert store.remember(one.id, "k", Remembered("r3", 200, {}), tomorrow).request == "r3"
    store.delete_session(one.id, NOW)
    assert store.recall(one.id, "k", NOW) is None


def test_an_append_keeps_its_idempotency_answer_in_its_own_transaction(store: Store) -> None:
    owner = account(store)
    session = new_session(store, owner)
    chain = messages(None, "a", "b")

    def answer(s: Session) -> Remembered:
        return Remembered("req", 201, {"head": s.head, "version": s.version})

    moved = store.append(session.id, None, chain[:1], {}, Remembering("k", answer, at(0)))
    kept = Remembered("req", 201, {"head": chain[0].message.id, "version": 2})
    assert store.recall(session.id, "k", at(0)) == kept
    # the same key again: nothing is written, and the first answer comes back
    with pytest.raises(Answered) as raised:
        store.append(session.id, moved.head, chain[1:], {}, Remembering("k", answer, at(5)))
    assert raised.value.answer == kept
    assert store.get_session(session.id) == moved
    assert present(store, ids(chain)) == {chain[0].message.id}
    # an append that fails keeps nothing for its key
    with pytest.raises(Conflict):
        store.append(session.id, None, chain[1:], {}, Remembering("other", answer, at(5)))
    assert store.recall(session.id, "other", at(0)) is None
    # a day later the key is free again
    tomorrow = "2026-03-02T12:00:01.000000Z"
    again = store.append(session.id, moved.head, chain[1:], {}, Remembering("k", answer, tomorrow))
    assert store.recall(session.id, "k", tomorrow) == Remembered(
        "req", 201, {"head": again.head, "version": 3}
    )


# blob stores


@pytest.fixture
def blobs(store_pair: tuple[Store, BlobStore]) -> BlobStore:
    return store_pair[1]


def test_blobs_are_stored_by_their_sha256(blobs: BlobStore) -> None:
    data = b"\x00binary\xffdata" * 1000
    sha = hashlib.sha256(data).hexdigest()
    assert blobs.get(sha) is None
    before = time.time()
    blobs.put(sha, data)
    blobs.put(sha, data)  # again: a no-op
    assert blobs.get(sha) == data
    [(listed_sha, mtime)] = list(blobs.list())
    assert listed_sha == sha and before - 5 <= mtime <= time.time() + 5
    blobs.delete(sha)
    blobs.delete(sha)  # deleting what is gone is fine
    assert blobs.get(sha) is None and list(blobs.list()) == []


def test_a_blob_must_match_its_id(blobs: BlobStore) -> None:
    with pytest.raises(InvalidInput, match="does not match"):
        blobs.put(hashlib.sha256(b"one").hexdigest(), b"two")
    assert list(blobs.list()) == []


def test_an_empty_blob_is_a_blob(blobs: BlobStore) -> None:
    sha = hashlib.sha256(b"").hexdigest()
    blobs.put(sha, b"")
    assert blobs.get(sha) == b""

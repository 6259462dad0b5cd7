"""The use cases of service.py, as a user sees them, against every store (memory, SQLite)."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any

import orjson
import pytest

from baton.core.errors import (
    Conflict,
    Gone,
    InvalidInput,
    LiveShares,
    NotFound,
    SecretsFound,
    TooLarge,
    VersionMismatch,
)
from baton.core.ids import message_id
from baton.core.models import JSON, Totals, format_time, message_content, parse_time
from baton.service import Service, parse_duration, share_id_from
from baton.store.sql.sqlite import SQLiteStore
from tests.helpers import stored_ids, text_message, tool_turn

FAKE_KEY = "sk-proj-" + "Ab3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5xY7w"  # 'sk-proj-' + 40 alnum
ENV_TOKEN = "tok-4f9a8b7c6d5e"  # the value of MY_SERVICE_TOKEN given to the scanner
KIB64 = 64 * 1024
START = "2026-03-01T12:00:00.000000Z"


class Clock:
    """A clock that moves one millisecond on every reading, and can be moved by hand."""

    def __init__(self, start: str = START) -> None:
        self.time = parse_time(start)

    def __call__(self) -> str:
        self.time += timedelta(milliseconds=1)
        return format_time(self.time)

    def advance(self, **delta: float) -> None:
        self.time += timedelta(**delta)


@pytest.fixture
def clock(service: Service) -> Clock:
    clock = Clock()
    service.now = clock
    return clock


def snapshot(service: Service) -> tuple[Any, ...]:
    """Everything a user could see change: sessions, shares, messages and blob files."""
    sessions = sorted((s.to_dict() for s in service.store.iter_sessions()), key=lambda s: s["id"])
    shares = sorted((s.to_dict() for s in service.store.list_shares()), key=lambda s: s["id"])
    blobs = sorted(sha for sha, _ in service.blobs.list())
    return sessions, shares, sorted(stored_ids(service)), blobs


def conversation(service: Service, owner: str, n: int = 4, **create: Any) -> str:
    session = service.create(owner, task=create.pop("task", "fix login"), **create)
    for i in range(n):
        role = "user" if i % 2 == 0 else "assistant"
        service.append(owner, session.id, [text_message(role, f"message number {i}")])
    return session.id


def ids_of(service: Service, owner: str, session_id: str) -> list[str]:
    return [m.id for m in service.messages(owner, session_id)]


# create, append, show


def test_create_gives_an_empty_active_session(service: Service, owner: str, clock: Clock) -> None:
    session = service.create(owner, task="fix the login bug")
    assert re.fullmatch(r"ses_[0-9A-HJKMNP-TV-Z]{26}", session.id)
    assert session.to_dict() == {
        "id": session.id,
        "owner": owner,
        "title": "",
        "task": "fix the login bug",
        "status": "active",
        "head": None,
        "message_count": 0,
        "created_at": "2026-03-01T12:00:00.001000Z",
        "updated_at": "2026-03-01T12:00:00.001000Z",
        "version": 1,
        "metadata": {},
        "git": None,
        "platform": "cli",
        "forked_from": None,
        "repo": None,
        "totals": Totals().to_dict(),
        "own": Totals().to_dict(),
        "inherited": Totals().to_dict(),
    }
    assert service.get(owner, session.id) == session
    assert service.messages(owner, session.id) == []


def test_create_keeps_what_it_is_given(service: Service, owner: str) -> None:
    git = {"remote": "github.com/o/r", "branch": "main", "head": "abc"}
    session = service.create(
        owner, title="  My title ", task="t", metadata={"mode": "plan"}, git=git, platform="web"
    )
    assert (session.title, session.metadata, session.git, session.platform, session.repo) == (
        "My title",
        {"mode": "plan"},
        git,
        "web",
        "github.com/o/r",
    )
    assert service.create(owner, repo="github.com/x/y").repo == "github.com/x/y"
    with pytest.raises(InvalidInput, match="platform must be one of api, cli, import, web"):
        service.create(owner, platform="fax")


def test_append_and_show(service: Service, owner: str) -> None:
    session = service.create(owner)
    result = service.append(
        owner,
        session.id,
        [
            text_message("user", "Why does login fail?", created_at="2026-01-01T00:00:00Z"),
            text_message("assistant", "Let me look.", model="gpt-x"),
        ],
    )
    first, second = result.appended
    assert (first.parent, second.parent) == (None, first.id)
    assert (first.role, first.parts, first.created_at) == (
        "user",
        [{"type": "text", "text": "Why does login fail?"}],
        "2026-01-01T00:00:00.000000Z",
    )
    assert second.model == "gpt-x"
    assert (result.session.head, result.session.message_count, result.session.version) == (
        second.id,
        2,
        2,
    )
    shown = service.get(owner, session.id)
    assert shown == result.session
    assert service.messages(owner, session.id) == [first, second]


def test_messages_are_paginated_by_position(service: Service, owner: str) -> None:
    sid = conversation(service, owner, 7)
    everything = service.messages(owner, sid)
    assert [m.parts[0]["text"] for m in everything] == [f"message number {i}" for i in range(7)]
    assert service.messages(owner, sid, start=2, limit=3) == everything[2:5]
    assert service.messages(owner, sid, start=5) == everything[5:]
    assert service.messages(owner, sid, start=7) == []
    with pytest.raises(InvalidInput, match="must not be negative"):
        service.messages(owner, sid, start=-1)
    with pytest.raises(InvalidInput, match="must not be negative"):
        service.messages(owner, sid, limit=-1)


# titles


def test_the_title_defaults_to_the_first_user_prompt(service: Service, owner: str) -> None:
    session = service.create(owner)
    result = service.append(
        owner,
        session.id,
        [
            text_message("system", "You are a coding agent."),
            text_message("assistant", "Hello."),
            text_message("user", "  Why does\n login   fail\ton Safari?  "),
        ],
    )
    assert result.session.title == "Why does login fail on Safari?"
    later = service.append(owner, session.id, [text_message("user", "Another question")])
    assert later.session.title == "Why does login fail on Safari?"


def test_a_long_first_prompt_is_cut_at_80_characters(service: Service, owner: str) -> None:
    session = service.create(owner)
    prompt = "Please " + "refactor the authentication module " * 5
    title = service.append(owner, session.id, [text_message("user", prompt)]).session.title
    assert title == " ".join(prompt.split())[:80].rstrip()
    assert len(title) == 80
    words = service.create(owner)
    title = service.append(owner, words.id, [text_message("user", "word " * 40)]).session.title
    assert title == ("word " * 16).strip()  # 79 characters: the cut does not keep a space


def test_a_given_or_renamed_title_is_kept(service: Service, owner: str) -> None:
    given = service.create(owner, title="Given title")
    assert service.append(owner, given.id, [text_message("user", "a prompt")]).session.title == (
        "Given title"
    )
    renamed = service.create(owner)
    service.rename(owner, renamed.id, "Chosen")
    assert service.append(owner, renamed.id, [text_message("user", "prompt")]).session.title == (
        "Chosen"
    )


# compare-and-set appends


def test_a_stale_head_is_a_conflict_naming_the_current_head(service: Service, owner: str) -> None:
    session = service.create(owner)
    first = service.append(owner, session.id, [text_message("user", "one")], expected_head=None)
    second = service.append(
        owner, session.id, [text_message("assistant", "two")], expected_head=first.session.head
    )
    before = snapshot(service)
    with pytest.raises(Conflict) as caught:
        service.append(
            owner, session.id, [text_message("user", "three")], expected_head=first.session.head
        )
    assert caught.value.current_head == second.session.head
    assert caught.value.status == 409
    assert caught.value.message == (
        f"the session moved on: its head is {second.session.head}, not {first.session.head}"
    )
    with pytest.raises(Conflict) as empty:
        service.append(owner, session.id, [text_message("user", "three")], expected_head=None)
    assert empty.value.current_head == second.session.head
    assert snapshot(service) == before


def test_an_expected_head_from_elsewhere_is_a_conflict(service: Service, owner: str) -> None:
    sid = conversation(service, owner, 2)
    head = service.get(owner, sid).head
    before = snapshot(service)
    with pytest.raises(Conflict) as caught:
        service.append(owner, sid, [text_message("user", "x")], expected_head="m_" + "0" * 64)
    assert caught.value.current_head == head
    assert f"its head is {head}" in caught.value.message
    assert snapshot(service) == before


def test_resending_stored_messages_is_a_no_op(service: Service, owner: str) -> None:
    session = service.create(owner)
    batch = [
        text_message("user", "hi", created_at="2026-01-01T00:00:00Z"),
        text_message("assistant", "hello", created_at="2026-01-01T00:00:01Z"),
    ]
    first = service.append(owner, session.id, batch, expected_head=None)
    before = snapshot(service)
    again = service.append(owner, session.id, batch, expected_head=None)
    assert again.appended == []
    assert again.session == first.session  # same head, same version, same time
    assert snapshot(service) == before
    # a retry of a longer batch appends only its tail
    longer = [*batch, text_message("user", "more", created_at="2026-01-01T00:00:02Z")]
    tail = service.append(owner, session.id, longer, expected_head=None)
    assert [m.parts[0]["text"] for m in tail.appended] == ["more"]
    assert tail.appended[0].parent == first.session.head
    assert tail.session.message_count == 3


def test_resending_messages_with_their_ids_is_a_no_op(service: Service, owner: str) -> None:
    """A client that sends messages as `show` prints them (with id and parent) and retries
    after a lost answer gets the same head back, not an error and not a duplicate."""
    session = service.create(owner)
    sent = service.append(
        owner, session.id, [text_message("user", "hi", created_at="2026-01-01T00:00:00Z")]
    )
    as_shown = [m.to_dict() for m in sent.appended]
    again = service.append(owner, session.id, as_shown)
    assert again.appended == [] and again.session.head == sent.session.head
    assert service.get(owner, session.id).message_count == 1
    # a message that names a parent other than the head is a conflict, not a silent re-link
    service.append(owner, session.id, [text_message("assistant", "moved on")])
    with pytest.raises(Conflict):
        service.append(owner, session.id, [{**text_message("user", "late"), "parent": None}])
    with pytest.raises(InvalidInput, match="parent"):
        service.append(
            owner,
            session.id,
            [text_message("user", "a"), {**text_message("user", "b"), "parent": "m_" + "1" * 64}],
        )
    assert service.get(owner, session.id).message_count == 2


def test_message_ids_are_content_addressed(service: Service, owner: str) -> None:
    a, b = service.create(owner), service.create(owner)
    msg = text_message("user", "same", created_at="2026-01-01T00:00:00Z")
    ra = service.append(owner, a.id, [msg])
    rb = service.append(owner, b.id, [msg])
    head = ra.session.head
    assert head is not None and re.fullmatch(r"m_[0-9a-f]{64}", head)
    assert rb.session.head == head
    assert head == message_id(
        message_content(
            None,
            "user",
            [{"type": "text", "text": "same"}],
            "2026-01-01T00:00:00.000000Z",
            None,
            None,
        )
    )
    # the same content after another parent is another message
    rc = service.append(owner, a.id, [msg])
    assert rc.session.head != head and rc.appended[0].parent == head


def test_a_given_id_must_match_the_content(service: Service, owner: str) -> None:
    session = service.create(owner)
    before = snapshot(service)
    with pytest.raises(InvalidInput, match=r"message 1: id m_0+ does not match its content"):
        service.append(owner, session.id, [{**text_message("user", "x"), "id": "m_" + "0" * 64}])
    assert snapshot(service) == before


# sizes and blobs


def test_payloads_over_64_kib_become_blob_refs(service: Service, owner: str) -> None:
    session = service.create(owner)
    big = "x" * (KIB64 + 1)
    exactly = "y" * KIB64
    output = "line of output\n" * 5000
    service.append(
        owner,
        session.id,
        [
            text_message("user", exactly),
            *tool_turn("c1", "bash", {"cmd": "cat big.log"}, output),
            text_message("assistant", big),
        ],
    )
    stored = service.messages(owner, session.id)
    assert stored[0].parts == [{"type": "text", "text": exactly}]
    ref = stored[2].parts[0]
    assert {k: v for k, v in ref.items() if k != "preview"} == {
        "type": "blob_ref",
        "of": "tool_result",
        "field": "output",
        "tool_call_id": "c1",
        "sha256": ref["sha256"],
        "size": len(output),
        "encoding": "utf-8",
    }
    assert ref["preview"] == output[:2000]
    assert service.blobs.get(ref["sha256"]) == output.encode()
    assert stored[3].parts[0]["type"] == "blob_ref" and stored[3].parts[0]["size"] == KIB64 + 1
    full = service.messages(owner, session.id, hydrate=True)
    assert full[2].parts == [{"type": "tool_result", "tool_call_id": "c1", "output": output}]
    assert full[3].parts == [{"type": "text", "text": big}]
    assert [m.id for m in full] == [m.id for m in stored]
    assert service.verify().ok


def test_a_message_over_16_mib_is_too_large(service: Service, owner: str) -> None:
    sid = conversation(service, owner, 1)
    before = snapshot(service)
    with pytest.raises(TooLarge, match=r"message 2 is \d+ bytes; the limit is 16777216 bytes"):
        service.append(
            owner,
            sid,
            [text_message("assistant", "ok"), text_message("user", "z" * (16 * 1024 * 1024))],
        )
    assert snapshot(service) == before


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"role": "robot", "parts": [{"type": "text", "text": "x"}]}, "role must be one of"),
        ({"role": "user", "parts": [{"type": "video", "text": "x"}]}, "type must be one of"),
        ({"role": "user", "parts": []}, "parts must be a non-empty list"),
        ("just a string", "expected a JSON object"),
    ],
)
def test_unknown_roles_and_part_types_are_invalid(
    service: Service, owner: str, message: object, error: str
) -> None:
    sid = conversation(service, owner, 1)
    before = snapshot(service)
    with pytest.raises(InvalidInput, match=f"message 2.*{error}"):
        service.append(owner, sid, [text_message("assistant", "fine"), message])
    assert snapshot(service) == before


def test_an_empty_batch_is_invalid(service: Service, owner: str) -> None:
    session = service.create(owner)
    for batch in ([], "not a list", None):
        with pytest.raises(InvalidInput, match="messages must be a non-empty list"):
            service.append(owner, session.id, batch)  # type: ignore[arg-type]


# listing


def test_list_pages_through_every_session_newest_updated_first(
    service: Service, owner: str, other: str, clock: Clock
) -> None:
    created = [service.create(owner, title=f"session {i}").id for i in range(8)]
    service.create(other, title="not mine")
    service.append(owner, created[2], [text_message("user", "bump")])
    service.rename(owner, created[5], "renamed")
    expected = [created[5], created[2]] + [
        c for c in reversed(created) if c not in (created[5], created[2])
    ]
    for limit in (1, 3, 8, 50):
        seen: list[str] = []
        cursor = None
        while True:
            page = service.list(owner, limit=limit, cursor=cursor)
            seen += [s.id for s in page.sessions]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == expected


def test_list_checks_its_arguments(service: Service, owner: str) -> None:
    for limit in (0, 1001):
        with pytest.raises(InvalidInput, match="limit must be between 1 and 1000"):
            service.list(owner, limit=limit)
    with pytest.raises(InvalidInput, match="status must be one of active, archived, done, paused"):
        service.list(owner, status="sleeping")
    with pytest.raises(InvalidInput, match="cursor"):
        service.list(owner, cursor="garbage!")


def test_list_filters_by_status_repo_and_text(service: Service, owner: str, clock: Clock) -> None:
    a = service.create(owner, title="Penguin migration", git={"remote": "github.com/o/birds"})
    b = service.create(owner, title="Other", task="parse the walrus logs")
    c = service.create(owner, title="Third")
    service.append(owner, c.id, [text_message("user", "the flamingo colour bug")])
    service.append(
        owner, c.id, tool_turn("c1", "grep", {"pattern": "palette"}, "src/colours.py: ochre")
    )
    service.update(owner, b.id, status="done")
    assert [s.id for s in service.list(owner, query="penguin").sessions] == [a.id]
    assert [s.id for s in service.list(owner, query="walrus").sessions] == [b.id]
    assert [s.id for s in service.list(owner, query="flamingo").sessions] == [c.id]
    assert [s.id for s in service.list(owner, query="ochre").sessions] == [c.id]  # tool output
    assert [s.id for s in service.list(owner, query="flamingo bug").sessions] == [c.id]
    assert service.list(owner, query="flamingo walrus").sessions == []
    assert service.list(owner, query="nothingmatches").sessions == []
    assert [s.id for s in service.list(owner, query="   ").sessions] == [b.id, c.id, a.id]
    assert [s.id for s in service.list(owner, status="done").sessions] == [b.id]
    assert [s.id for s in service.list(owner, status="active").sessions] == [c.id, a.id]
    assert [s.id for s in service.list(owner, repo="github.com/o/birds").sessions] == [a.id]
    assert service.list(owner, repo="github.com/o/birds", status="done").sessions == []


def test_search_finds_forks_by_their_shared_prefix(service: Service, owner: str) -> None:
    sid = conversation(service, owner)
    service.append(owner, sid, [text_message("user", "the albatross question")])
    fork = service.fork(owner, sid)
    early = service.fork(owner, sid, at=service.messages(owner, sid)[1].id)
    found = {s.id for s in service.list(owner, query="albatross").sessions}
    assert found == {sid, fork.id}
    assert early.id not in found


# rename and update


def test_rename_and_update_with_a_version_check(service: Service, owner: str) -> None:
    session = service.create(owner)
    renamed = service.rename(owner, session.id, "  New \n  name ")
    assert (renamed.title, renamed.version) == ("New name", 2)
    assert renamed.updated_at > session.updated_at
    before = snapshot(service)
    with pytest.raises(VersionMismatch) as caught:
        service.update(owner, session.id, expected_version=1, status="paused")
    assert caught.value.current_version == 2 and caught.value.status == 412
    assert caught.value.message == "the session is at version 2, not 1"
    assert snapshot(service) == before
    updated = service.update(
        owner,
        session.id,
        expected_version=2,
        status="paused",
        task="new task",
        metadata={"mode": "plan", "todo": ["a"]},
        git={"remote": "github.com/o/r", "branch": "dev"},
    )
    assert (updated.status, updated.task, updated.metadata, updated.version) == (
        "paused",
        "new task",
        {"mode": "plan", "todo": ["a"]},
        3,
    )
    assert (updated.git, updated.repo) == (
        {"remote": "github.com/o/r", "branch": "dev"},
        "github.com/o/r",
    )
    assert service.get(owner, session.id) == updated


def test_bad_updates_are_refused(service: Service, owner: str) -> None:
    session = service.create(owner)
    for kwargs, error in [
        ({"status": "sleeping"}, "status must be one of"),
        ({"title": "   "}, "a title cannot be empty"),
        ({}, "nothing to change"),
        ({"metadata": {"n": -(2**64)}}, "64-bit"),
    ]:
        with pytest.raises(InvalidInput, match=error):
            service.update(owner, session.id, **kwargs)
    assert service.get(owner, session.id) == session


# ownership


def test_another_owners_session_is_not_found_everywhere(
    service: Service, owner: str, other: str
) -> None:
    sid = conversation(service, owner)
    share = service.share(owner, sid)
    before = snapshot(service)
    calls = {
        "get": lambda: service.get(other, sid),
        "messages": lambda: service.messages(other, sid),
        "append": lambda: service.append(other, sid, [text_message("user", "x")]),
        "append at head": lambda: service.append(
            other, sid, [text_message("user", "x")], expected_head=service.get(owner, sid).head
        ),
        "rename": lambda: service.rename(other, sid, "mine"),
        "update": lambda: service.update(other, sid, status="done"),
        "delete": lambda: service.delete(other, sid, revoke_shares=True),
        "share": lambda: service.share(other, sid, mode="allow"),
        "fork": lambda: service.fork(other, sid),
        "export": lambda: service.export(other, sid),
        "export markdown": lambda: service.export(other, sid, "markdown"),
        "shares": lambda: service.shares(other, sid),
        "scan": lambda: service.scan_session(other, sid),
        "verify": lambda: service.verify(other, sid),
    }
    for name, call in calls.items():
        with pytest.raises(NotFound) as caught:
            call()
        assert caught.value.message == f"no session {sid}", name
        assert caught.value.status == 404
    with pytest.raises(NotFound, match=f"no share {share.id}"):
        service.revoke(other, share.id)
    assert service.list(other).sessions == []
    assert service.list(other, query="message").sessions == []
    assert service.shares(other) == []
    assert snapshot(service) == before


def test_an_unknown_session_is_not_found(service: Service, owner: str) -> None:
    for sid in ("ses_01AAAAAAAAAAAAAAAAAAAAAAAA", "nonsense"):
        with pytest.raises(NotFound, match=f"no session {sid}"):
            service.get(owner, sid)


# delete


def test_delete_really_deletes(service: Service, owner: str, clock: Clock) -> None:
    unrelated = conversation(service, owner, 2)
    sid = conversation(service, owner, 4)
    messages = service.messages(owner, sid)
    fork = service.fork(owner, sid, at=messages[1].id)
    service.append(owner, sid, [text_message("user", "x" * (70 * 1024))])
    deleted = service.messages(owner, sid)
    keep = set(stored_ids(service)) - {m.id for m in deleted[2:]}
    assert service.delete(owner, sid) == []
    with pytest.raises(NotFound):
        service.get(owner, sid)
    assert stored_ids(service) == keep
    assert ids_of(service, owner, fork.id) == [m.id for m in messages[:2]]
    assert len(service.messages(owner, unrelated)) == 2
    assert service.store.referenced_blobs() == set()
    assert list(service.blobs.list()) == []
    assert [s.id for s in service.list(owner).sessions] == [fork.id, unrelated]
    assert service.list(owner, query="number 3").sessions == []
    assert service.verify().ok


def test_delete_refuses_while_live_shares_exist(service: Service, owner: str, other: str) -> None:
    sid = conversation(service, owner)
    newer = service.share(owner, sid)
    older = service.share(owner, sid)
    shares = service.shares(owner, sid)
    before = snapshot(service)
    with pytest.raises(LiveShares) as caught:
        service.delete(owner, sid)
    assert sorted(caught.value.share_ids) == sorted([newer.id, older.id])
    assert caught.value.share_ids == [s.id for s in shares]
    assert caught.value.message.startswith("2 live share(s) still expose this session: ")
    assert snapshot(service) == before
    fork = service.fork(other, newer.id)
    assert sorted(service.delete(owner, sid, revoke_shares=True)) == sorted([newer.id, older.id])
    for share_id in (newer.id, older.id):
        with pytest.raises(Gone, match="revoked"):
            service.public_share(share_id)
    # a fork made from a share before the delete keeps its whole conversation
    assert len(service.messages(other, fork.id)) == 4
    assert service.verify().ok


def test_an_expired_share_does_not_hold_a_delete(
    service: Service, owner: str, clock: Clock
) -> None:
    sid = conversation(service, owner)
    share = service.share(owner, sid, expires="1h")
    clock.advance(hours=2)
    assert service.delete(owner, sid) == []
    assert stored_ids(service) == set()
    with pytest.raises(Gone, match="expired"):
        service.share_messages(share.id)


def test_delete_removes_redacted_copies_of_its_revoked_shares(service: Service, owner: str) -> None:
    session = service.create(owner)
    service.append(
        owner,
        session.id,
        [text_message("user", f"my key is {FAKE_KEY}"), text_message("assistant", "ok")],
    )
    share = service.share(owner, session.id, mode="redact")
    copies = [m.id for m in service.share_messages(share.id)]
    assert set(copies) <= stored_ids(service)
    service.delete(owner, session.id, revoke_shares=True)
    assert stored_ids(service) == set()


# sharing


def test_a_share_freezes_the_head(service: Service, owner: str, clock: Clock) -> None:
    sid = conversation(service, owner, task="the task", metadata={"mode": "build"})
    session = service.get(owner, sid)
    share = service.share(owner, sid)
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{22}", share.id)
    assert share.to_dict() == {
        "id": share.id,
        "session_id": sid,
        "shared_by": {"account": owner, "handle": "alice", "display_name": "Alice Example"},
        "head": session.head,
        "message_count": 4,
        "title": "message number 0",
        "task": "the task",
        "metadata": {"mode": "build"},
        "git": None,
        "created_at": share.created_at,
        "expires_at": None,
        "revoked_at": None,
        "redacted": [],
        "totals": Totals().to_dict(),
        "own": Totals().to_dict(),
        "inherited": Totals().to_dict(),
    }
    assert service.share_url(share.id) == f"http://127.0.0.1:8765/share/{share.id}"
    before = service.share_messages(share.id)
    service.append(owner, sid, [text_message("user", "later")])
    service.update(owner, sid, title="Renamed later", task="other", metadata={"mode": "plan"})
    assert service.share_messages(share.id) == before
    assert [m.id for m in before] == ids_of(service, owner, sid)[:4]
    public = service.public_share(share.id)
    assert (public.title, public.task, public.metadata, public.message_count, public.head) == (
        "message number 0",
        "the task",
        {"mode": "build"},
        4,
        session.head,
    )
    assert service.share_messages(share.id, start=1, limit=2) == before[1:3]
    assert [s.id for s in service.shares(owner)] == [share.id]


def test_a_share_of_an_empty_session(service: Service, owner: str, other: str) -> None:
    session = service.create(owner)
    share = service.share(owner, session.id)
    assert (share.head, share.message_count, share.title) == (None, 0, "Untitled session")
    assert service.share_messages(share.id) == []
    fork = service.fork(other, share.id)
    assert (fork.head, fork.message_count) == (None, 0)


def test_share_ids_are_random(service: Service, owner: str) -> None:
    sid = conversation(service, owner, 1)
    found = {service.share(owner, sid).id for _ in range(20)}
    assert len(found) == 20
    assert all(sid[4:] not in share_id and sid not in share_id for share_id in found)


def test_share_expiry(service: Service, owner: str, other: str, clock: Clock) -> None:
    sid = conversation(service, owner)
    share = service.share(owner, sid, expires="7d")
    assert share.expires_at == format_time(parse_time(share.created_at) + timedelta(days=7))
    assert service.public_share(share.id).id == share.id
    clock.advance(days=7)
    for call in (
        lambda: service.public_share(share.id),
        lambda: service.share_messages(share.id),
        lambda: service.fork(other, share.id),
    ):
        with pytest.raises(Gone, match=f"share {share.id} was expired") as caught:
            call()
        assert caught.value.status == 410
    assert service.list(other).sessions == []


def test_an_already_expired_share_is_gone(service: Service, owner: str, other: str) -> None:
    sid = conversation(service, owner)
    share = service.share(owner, sid, expires="30m")
    service.now = lambda: "2999-01-01T00:00:00.000000Z"
    with pytest.raises(Gone, match="expired"):
        service.public_share(share.id)
    with pytest.raises(Gone, match="expired"):
        service.fork(other, share.id)


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("30m", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("7d", timedelta(days=7)),
        (" 2W ", timedelta(weeks=2)),
    ],
)
def test_durations(text: str, delta: timedelta) -> None:
    assert parse_duration(text) == delta


@pytest.mark.parametrize("text", ["soon", "0d", "-1d", "7", "d", "1.5h", "7y", ""])
def test_bad_durations_are_invalid(service: Service, owner: str, text: str) -> None:
    sid = conversation(service, owner, 1)
    with pytest.raises(InvalidInput, match="is not a duration like 30m, 12h, 7d or 2w"):
        service.share(owner, sid, expires=text)
    assert service.shares(owner) == []


def test_a_bad_share_mode_is_invalid(service: Service, owner: str) -> None:
    sid = conversation(service, owner, 1)
    with pytest.raises(InvalidInput, match="mode must be one of block, redact, allow"):
        service.share(owner, sid, mode="yolo")


def test_revoke(service: Service, owner: str, other: str, clock: Clock) -> None:
    sid = conversation(service, owner)
    share = service.share(owner, sid)
    early_fork = service.fork(other, share.id)
    revoked = service.revoke(owner, share.id)
    assert revoked.revoked_at is not None and revoked.revoked_at > share.created_at
    assert service.revoke(owner, share.id).revoked_at == revoked.revoked_at
    for call in (
        lambda: service.public_share(share.id),
        lambda: service.share_messages(share.id),
        lambda: service.fork(other, share.id),
        lambda: service.fork(other, f"https://baton.example/share/{share.id}"),
    ):
        with pytest.raises(Gone, match=f"share {share.id} was revoked"):
            call()
    assert [s.revoked_at for s in service.shares(owner)] == [revoked.revoked_at]
    assert len(service.messages(other, early_fork.id)) == 4  # forks are the forker's own
    with pytest.raises(NotFound, match="no share AAAAAAAAAAAAAAAAAAAAAAA"):
        service.public_share("A" * 23)
    with pytest.raises(NotFound):
        service.revoke(owner, "A" * 23)


# the secret scan


def test_a_secret_blocks_a_share(service: Service, owner: str) -> None:
    sid = conversation(service, owner, 2)
    service.append(owner, sid, [text_message("user", f"my key is {FAKE_KEY} ok")])
    service.append(owner, sid, [text_message("assistant", "noted")])
    before = snapshot(service)
    with pytest.raises(SecretsFound) as caught:
        service.share(owner, sid)
    assert caught.value.findings == [
        {
            "where": "message 3",
            "message": ids_of(service, owner, sid)[2],
            "position": 3,
            "kind": "OpenAI Token",
            "excerpt": "sk-p…7w (48 chars)",
        }
    ]
    assert caught.value.message == (
        "this session holds 1 secret(s); nothing was shared. "
        "Remove them, or share with --redact (or --allow-secrets)"
    )
    assert FAKE_KEY not in repr(caught.value.findings) + caught.value.message
    assert FAKE_KEY[8:20] not in repr(caught.value.findings)
    assert snapshot(service) == before
    assert service.scan_session(owner, sid) == caught.value.findings


def test_the_callers_secret_environment_values_are_found(service: Service, owner: str) -> None:
    sid = conversation(service, owner, 1)
    service.append(
        owner, sid, tool_turn("c1", "env", {}, f"PATH=/bin\nMY_SERVICE_TOKEN={ENV_TOKEN}")
    )
    with pytest.raises(SecretsFound) as caught:
        service.share(owner, sid)
    [finding] = caught.value.findings
    assert (finding["position"], finding["kind"], finding["excerpt"]) == (
        3,
        "environment variable MY_SERVICE_TOKEN",
        "tok-…5e (16 chars)",
    )


def test_secrets_in_big_tool_outputs_are_found(service: Service, owner: str) -> None:
    session = service.create(owner)
    output = "a" * 70_000 + f"\nexport OPENAI_API_KEY={FAKE_KEY}\n"
    service.append(owner, session.id, tool_turn("c1", "cat", {"path": ".env"}, output))
    assert service.messages(owner, session.id)[1].parts[0]["type"] == "blob_ref"
    with pytest.raises(SecretsFound) as caught:
        service.share(owner, session.id)
    assert [(f["position"], f["kind"]) for f in caught.value.findings] == [(2, "OpenAI Token")]
    share = service.share(owner, session.id, mode="redact")
    [public] = service.share_messages(share.id, start=1, hydrate=True)
    assert public.parts[0]["output"] == "a" * 70_000 + (
        "\nexport OPENAI_API_KEY=[REDACTED:OpenAI Token]\n"
    )
    assert FAKE_KEY.encode() not in b"".join(
        service.blobs.get(p["sha256"]) or b"" for p in public.parts if p["type"] == "blob_ref"
    )


def test_redact_publishes_copies_from_the_first_secret_on(service: Service, owner: str) -> None:
    sid = conversation(service, owner, 2)
    service.append(owner, sid, [text_message("user", f"key {FAKE_KEY} and token {ENV_TOKEN}")])
    service.append(owner, sid, [text_message("assistant", f"I will not repeat {FAKE_KEY}")])
    service.append(owner, sid, [text_message("user", "thanks")])
    original = service.messages(owner, sid)
    share = service.share(owner, sid, mode="redact")
    public = service.share_messages(share.id)
    assert [m.id for m in public[:2]] == [m.id for m in original[:2]]  # shared, not copied
    assert all(p.id != o.id for p, o in zip(public[2:], original[2:], strict=True))
    assert [m.parts[0]["text"] for m in public] == [
        "message number 0",
        "message number 1",
        "key [REDACTED:OpenAI Token] and token [REDACTED:environment variable MY_SERVICE_TOKEN]",
        "I will not repeat [REDACTED:OpenAI Token]",
        "thanks",
    ]
    assert [m.parent for m in public] == [None, *[m.id for m in public[:-1]]]
    assert [(m.role, m.created_at) for m in public] == [(m.role, m.created_at) for m in original]
    assert share.head == public[-1].id and share.message_count == 5
    assert [(f["position"], f["kind"]) for f in share.redacted] == [
        (3, "OpenAI Token"),
        (3, "environment variable MY_SERVICE_TOKEN"),
        (4, "OpenAI Token"),
    ]
    assert FAKE_KEY not in repr(share.to_dict())
    assert service.messages(owner, sid) == original  # the private session is untouched
    assert service.verify().ok
    # a fork of the share cannot reach the private, unredacted messages
    with pytest.raises(NotFound, match="is not in"):
        service.fork(owner, share.id, at=original[2].id)
    early = service.fork(owner, share.id, at=original[1].id)
    assert early.message_count == 2


def test_allow_publishes_as_is(service: Service, owner: str) -> None:
    sid = conversation(service, owner, 1)
    service.append(owner, sid, [text_message("user", FAKE_KEY)])
    share = service.share(owner, sid, mode="allow")
    assert share.head == service.get(owner, sid).head and share.redacted == []
    assert service.share_messages(share.id) == service.messages(owner, sid)
    assert service.share_messages(share.id)[-1].parts[0]["text"] == FAKE_KEY


def test_secrets_in_the_header_are_found(service: Service, owner: str) -> None:
    session = service.create(owner, task=f"use {FAKE_KEY}", metadata={"env": ENV_TOKEN})
    with pytest.raises(SecretsFound) as caught:
        service.share(owner, session.id)
    assert caught.value.findings == [
        {"where": "task", "kind": "OpenAI Token", "excerpt": "sk-p…7w (48 chars)"},
        {
            "where": "metadata",
            "kind": "environment variable MY_SERVICE_TOKEN",
            "excerpt": "tok-…5e (16 chars)",
        },
    ]
    share = service.share(owner, session.id, mode="redact")
    assert share.task == "use [REDACTED:OpenAI Token]"
    assert share.metadata == {"env": "[REDACTED:environment variable MY_SERVICE_TOKEN]"}
    assert service.get(owner, session.id).task == f"use {FAKE_KEY}"


def test_a_secret_in_the_first_prompt_is_redacted_from_the_title(
    service: Service, owner: str
) -> None:
    session = service.create(owner)
    service.append(owner, session.id, [text_message("user", f"why is {FAKE_KEY} refused")])
    with pytest.raises(SecretsFound) as caught:
        service.share(owner, session.id)
    assert [f["where"] for f in caught.value.findings] == ["title", "message 1"]
    share = service.share(owner, session.id, mode="redact")
    assert share.title == "why is [REDACTED:OpenAI Token] refused"
    [copy] = service.share_messages(share.id)
    assert copy.parent is None and copy.parts[0]["text"] == share.title


# forks


def make_costly(service: Service, owner: str) -> str:
    session = service.create(owner, task="t", metadata={"mode": "build"})
    service.append(
        owner,
        session.id,
        [
            text_message("user", "a", usage={"input_tokens": 10, "cost_usd": 0.5}),
            text_message(
                "assistant",
                "b",
                usage={"output_tokens": 20, "cache_read_tokens": 4, "cost_usd": 0.25},
            ),
            text_message("user", "c", usage={"cache_write_tokens": 2}),
        ],
    )
    return session.id


def test_fork_of_a_share(service: Service, owner: str, other: str) -> None:
    sid = make_costly(service, owner)
    messages = service.messages(owner, sid)
    share = service.share(owner, sid)
    assert share.totals == Totals(10, 20, 4, 2, 0.75)
    fork = service.fork(other, share.id)
    assert fork.owner == other and fork.id != sid
    assert (fork.head, fork.message_count, fork.totals) == (
        messages[-1].id,
        3,
        Totals(10, 20, 4, 2, 0.75),
    )
    assert fork.forked_from == {"share": share.id, "message": messages[-1].id}
    assert (fork.title, fork.task, fork.metadata, fork.status, fork.version) == (
        "a",
        "t",
        {"mode": "build"},
        "active",
        1,
    )
    assert service.messages(other, fork.id) == messages
    # appending to the fork never touches the original or the share
    service.append(other, fork.id, [text_message("assistant", "d")])
    assert service.get(owner, sid).message_count == 3
    assert len(service.share_messages(share.id)) == 3
    for source in (f"https://baton.example/share/{share.id}", f"baton://fork/{share.id}"):
        assert service.fork(other, source).head == messages[-1].id


def test_fork_at_an_earlier_message(service: Service, owner: str, other: str) -> None:
    sid = make_costly(service, owner)
    messages = service.messages(owner, sid)
    early = service.fork(owner, sid, at=messages[0].id)
    assert (early.message_count, early.head, early.totals) == (
        1,
        messages[0].id,
        Totals(input_tokens=10, cost_usd=0.5),
    )
    assert early.forked_from == {"session": sid, "message": messages[0].id}
    middle = service.fork(other, service.share(owner, sid).id, at=messages[1].id)
    assert (middle.message_count, middle.totals) == (2, Totals(10, 20, 4, 0, 0.75))
    assert service.messages(other, middle.id) == messages[:2]
    # an appended fork diverges: its new message is not on the original's chain
    diverged = service.append(owner, early.id, [text_message("assistant", "other b")])
    with pytest.raises(NotFound, match=f"message {diverged.session.head} is not in {sid}"):
        service.fork(owner, sid, at=diverged.session.head)
    with pytest.raises(NotFound, match="is not in"):
        service.fork(owner, sid, at="m_" + "1" * 64)
    empty = service.create(owner)
    with pytest.raises(NotFound, match="is not in"):
        service.fork(owner, empty.id, at=messages[0].id)


def test_forks_of_forks_record_where_they_came_from(service: Service, owner: str) -> None:
    sid = conversation(service, owner, 2)
    first = service.fork(owner, sid)
    second = service.fork(owner, first.id, platform="web")
    assert second.forked_from == {"session": first.id, "message": service.get(owner, sid).head}
    assert second.platform == "web"
    with pytest.raises(InvalidInput, match="is not a share id"):
        service.fork(owner, "not a/valid id!")


def cheap_session(service: Service, owner: str) -> str:
    """A session whose one reply cost $0.00096 (the fork that showed $0.0010 as its own)."""
    session = service.create(owner)
    reply = {"input_tokens": 900, "output_tokens": 12, "cost_usd": 0.00096}
    service.append(
        owner,
        session.id,
        [text_message("user", "q"), text_message("assistant", "a", usage=reply)],
    )
    return session.id


def own_costs(service: Service, owner: str) -> float:
    return round(sum(s.own.cost_usd for s in service.list(owner, limit=100).sessions), 9)


def test_a_fork_starts_at_zero_own_cost(service: Service, owner: str) -> None:
    sid = cheap_session(service, owner)
    fork = service.fork(owner, sid)
    spent = Totals(900, 12, 0, 0, 0.00096)
    assert (fork.totals, fork.inherited, fork.own) == (spent, spent, Totals())
    assert service.get(owner, fork.id).to_dict()["own"] == Totals().to_dict()
    assert service.get(owner, fork.id).to_dict()["inherited"] == spent.to_dict()
    original = service.get(owner, sid)
    assert (original.inherited, original.own) == (Totals(), spent)
    # the fork's own messages are its own; the original does not see them
    more = {"input_tokens": 1000, "output_tokens": 3, "cost_usd": 0.002}
    service.append(owner, fork.id, [text_message("assistant", "b", usage=more)])
    after = service.get(owner, fork.id)
    assert (after.totals, after.inherited, after.own) == (
        Totals(1900, 15, 0, 0, 0.00296),
        spent,
        Totals(1000, 3, 0, 0, 0.002),
    )
    assert service.get(owner, sid).own == spent
    # a sum of own costs counts each message once
    assert own_costs(service, owner) == 0.00296


def test_fork_at_an_earlier_message_inherits_the_totals_there(
    service: Service, owner: str, other: str
) -> None:
    sid = make_costly(service, owner)
    messages = service.messages(owner, sid)
    early = service.fork(owner, sid, at=messages[0].id)
    assert (early.inherited, early.own) == (Totals(input_tokens=10, cost_usd=0.5), Totals())
    middle = service.fork(other, service.share(owner, sid).id, at=messages[1].id)
    assert (middle.inherited, middle.own) == (Totals(10, 20, 4, 0, 0.75), Totals())
    service.append(owner, early.id, [text_message("assistant", "x", usage={"cost_usd": 0.125})])
    assert service.get(owner, early.id).own == Totals(cost_usd=0.125)
    assert own_costs(service, owner) == 0.875
    assert own_costs(service, other) == 0.0


def test_a_fork_of_a_fork_inherits_the_whole_chain_and_counts_nothing_twice(
    service: Service, owner: str
) -> None:
    sid = cheap_session(service, owner)
    first = service.fork(owner, sid)
    service.append(owner, first.id, [text_message("assistant", "b", usage={"cost_usd": 0.002})])
    second = service.fork(owner, first.id)
    assert (second.inherited.cost_usd, second.own) == (0.00296, Totals())
    service.append(owner, second.id, [text_message("assistant", "c", usage={"cost_usd": 0.004})])
    costs = {s: service.get(owner, s).own.cost_usd for s in (sid, first.id, second.id)}
    assert costs == {sid: 0.00096, first.id: 0.002, second.id: 0.004}
    assert service.get(owner, second.id).totals.cost_usd == own_costs(service, owner) == 0.00696


def test_a_fork_of_a_redacted_share_inherits_what_the_copies_carry(
    service: Service, owner: str, other: str
) -> None:
    sid = cheap_session(service, owner)
    secret = {"output_tokens": 5, "cost_usd": 0.001}
    service.append(owner, sid, [text_message("assistant", f"key {FAKE_KEY}", usage=secret)])
    share = service.share(owner, sid, mode="redact")
    assert share.head != service.get(owner, sid).head  # its last message is a copy
    fork = service.fork(other, share.id)
    spent = Totals(900, 17, 0, 0, 0.00196)
    assert (share.totals, fork.totals, fork.inherited, fork.own) == (spent, spent, spent, Totals())
    at_copy = service.fork(other, share.id, at=share.head)
    assert (at_copy.inherited, at_copy.own) == (spent, Totals())
    # a share of a fork knows what its session inherited, and so does a fork of that share
    service.append(other, fork.id, [text_message("assistant", "b", usage={"cost_usd": 0.002})])
    again = service.share(other, fork.id)
    assert (again.inherited, again.own) == (spent, Totals(cost_usd=0.002))
    assert service.public_share(again.id).to_dict()["own"] == Totals(cost_usd=0.002).to_dict()
    assert service.fork(owner, again.id).inherited == Totals(900, 17, 0, 0, 0.00396)


def test_an_exported_fork_imports_with_what_it_inherited(service: Service, owner: str) -> None:
    sid = cheap_session(service, owner)
    fork = service.fork(owner, sid)
    service.append(owner, fork.id, [text_message("assistant", "b", usage={"cost_usd": 0.002})])
    document = service.export(owner, fork.id)
    assert isinstance(document, dict)
    imported = service.import_document(owner, document, fresh=True).session
    assert (imported.inherited.cost_usd, imported.own.cost_usd) == (0.00096, 0.002)
    markdown = service.export(owner, fork.id, "markdown")
    assert isinstance(markdown, str)
    assert "- Tokens: 0 in, 0 out; cost $0.0020\n" in markdown
    assert "- Inherited: 900 in, 12 out; cost $0.0010\n" in markdown


def test_totals_follow_usage(service: Service, owner: str) -> None:
    session = service.create(owner)
    service.append(
        owner,
        session.id,
        [
            text_message("user", "q"),
            text_message(
                "assistant",
                "a",
                usage={
                    "input_tokens": 100,
                    "output_tokens": 50,
                    "cache_read_tokens": 7,
                    "cache_write_tokens": 3,
                    "cost_usd": 0.0123,
                },
            ),
        ],
    )
    result = service.append(
        owner,
        session.id,
        [
            text_message(
                "assistant", "b", usage={"input_tokens": 1, "output_tokens": 2, "cost_usd": 0.0001}
            )
        ],
    )
    expected = {
        "input_tokens": 101,
        "output_tokens": 52,
        "cache_read_tokens": 7,
        "cache_write_tokens": 3,
        "cost_usd": 0.0124,
    }
    assert result.session.totals.to_dict() == expected
    assert service.get(owner, session.id).totals.to_dict() == expected


# export and import


def test_export_import_round_trip(service: Service, owner: str, other: str) -> None:
    session = service.create(owner, task="t", metadata={"mode": "plan"})
    service.append(
        owner,
        session.id,
        [
            text_message("user", "hello"),
            *tool_turn("c1", "bash", {"cmd": "ls"}, "o" * 70_000),
            text_message(
                "assistant", "done", model="m1", usage={"output_tokens": 3, "cost_usd": 0.01}
            ),
        ],
    )
    service.update(owner, session.id, status="paused")
    original = service.get(owner, session.id)
    doc = service.export(owner, session.id)
    assert isinstance(doc, dict)
    assert (doc["format"], doc["version"]) == ("baton-session", 1)
    assert doc["messages"][2]["parts"] == [
        {"type": "tool_result", "tool_call_id": "c1", "output": "o" * 70_000}
    ]
    assert [m["id"] for m in doc["messages"]] == ids_of(service, owner, session.id)
    result = service.import_document(other, orjson.dumps(doc))
    imported = result.session
    assert (result.created, result.messages) == (True, 4)
    assert imported.id != session.id and imported.owner == other  # the id was taken
    assert ids_of(service, other, imported.id) == ids_of(service, owner, session.id)
    assert (imported.title, imported.task, imported.metadata, imported.status) == (
        "hello",
        "t",
        {"mode": "plan"},
        "paused",
    )
    assert (imported.platform, imported.message_count, imported.totals, imported.created_at) == (
        "import",
        4,
        original.totals,
        original.created_at,
    )
    assert service.messages(other, imported.id, hydrate=True) == service.messages(
        owner, session.id, hydrate=True
    )
    assert service.verify().ok


def test_an_import_keeps_a_free_session_id(service: Service, owner: str) -> None:
    sid = conversation(service, owner, 2)
    doc = service.export(owner, sid, "json")
    ids = ids_of(service, owner, sid)
    service.delete(owner, sid)
    result = service.import_document(owner, orjson.dumps(doc).decode())
    assert result.session.id == sid and ids_of(service, owner, sid) == ids


def test_importing_twice_adds_nothing(service: Service, owner: str, other: str) -> None:
    sid = conversation(service, owner, 3)
    doc = service.export(owner, sid)
    assert isinstance(doc, dict)
    first = service.import_document(other, doc)
    before = snapshot(service)
    again = service.import_document(other, doc)
    assert (again.created, again.messages, again.session) == (False, 0, first.session)
    assert snapshot(service) == before
    # the owner's own session is the same conversation: nothing to add either
    mine = service.import_document(owner, doc)
    assert (mine.created, mine.session.id) == (False, sid)
    assert snapshot(service) == before


def test_a_tampered_export_is_refused_and_changes_nothing(service: Service, owner: str) -> None:
    sid = conversation(service, owner, 3)
    doc = service.export(owner, sid)
    assert isinstance(doc, dict)
    service.delete(owner, sid)  # so an accepted import could not be mistaken for a no-op
    before = snapshot(service)
    changed = orjson.loads(orjson.dumps(doc))
    changed["messages"][1]["parts"][0]["text"] = "changed"
    with pytest.raises(InvalidInput) as caught:
        service.import_document(owner, changed)
    assert caught.value.message == (
        f"message 2: id {doc['messages'][1]['id']} does not match its content; "
        "the file was changed or damaged"
    )
    relinked = orjson.loads(orjson.dumps(doc))
    relinked["messages"][2]["parent"] = None
    with pytest.raises(InvalidInput, match="message 3: parent does not match"):
        service.import_document(owner, relinked)
    dropped = orjson.loads(orjson.dumps(doc))
    del dropped["messages"][1]
    with pytest.raises(InvalidInput, match=r"message 2: id .* does not match its content"):
        service.import_document(owner, dropped)
    assert snapshot(service) == before


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "the file is empty"),
        (b"   \n", "the file is empty"),
        (b'{"format": "baton-session", "vers', "not valid JSON"),
        (b"\x00\xff\xfe garbage", "not valid JSON"),
        (b"[]", 'not a baton export \\(expected "format": "baton-session"\\)'),
        (b'{"format": "baton-session", "version": 99}', "export version 99 is not supported"),
        (b'{"format": "baton-session", "version": 1}', "needs a session object and a messages"),
        (
            b'{"format": "baton-session", "version": 1, "session": {}, "messages": [1]}',
            "message 1: expected an object",
        ),
        (
            b'{"format": "baton-session", "version": 1, "session": {}, '
            b'"messages": [{"role": "user", "parts": [{"type": "text", "text": "x"}]}]}',
            "message 1: created_at is missing",
        ),
    ],
)
def test_broken_imports_change_nothing(
    service: Service, owner: str, data: bytes, error: str
) -> None:
    conversation(service, owner, 2)
    before = snapshot(service)
    with pytest.raises(InvalidInput, match=error):
        service.import_document(owner, data)
    assert snapshot(service) == before


def test_markdown_export(service: Service, owner: str) -> None:
    sid = conversation(service, owner, 2, title="Login bug")
    service.append(owner, sid, tool_turn("c1", "bash", {"cmd": "ls"}, "a.py"))
    md = service.export(owner, sid, "markdown")
    assert isinstance(md, str)
    assert md.startswith(f"# Login bug\n\n- Session: `{sid}`\n- Status: active\n")
    assert "## User" in md and "message number 0" in md and "## Assistant" in md
    assert '**Tool call** `bash` (`c1`)\n\n```json\n{\n  "cmd": "ls"\n}\n```' in md
    assert "**Tool result** (`c1`)\n\n```\na.py\n```" in md
    with pytest.raises(InvalidInput, match="unknown export format 'pdf'"):
        service.export(owner, sid, "pdf")


def test_import_reports_progress(service: Service, owner: str, other: str) -> None:
    sid = conversation(service, owner, 3)
    seen: list[tuple[int, int]] = []
    service.import_document(
        other, service.export(owner, sid), progress=lambda d, t: seen.append((d, t))
    )
    assert seen[0] == (1, 3) and seen[-1] == (3, 3)


# verify and gc


def test_verify_counts_and_reports_damage(service: Service, owner: str, other: str) -> None:
    sid = conversation(service, owner, 2)
    service.append(owner, sid, [text_message("user", "b" * 70_000)])
    share = service.share(owner, sid)
    conversation(service, other, 1)
    report = service.verify()
    assert report.to_dict() == {
        "sessions": 2,
        "shares": 1,
        "messages": 7,
        "problems": [],
        "ok": True,
    }
    assert service.verify(owner, sid).to_dict() == {
        "sessions": 1,
        "shares": 0,
        "messages": 3,
        "problems": [],
        "ok": True,
    }
    [sha] = service.store.referenced_blobs()
    service.blobs.delete(sha)
    head = service.get(owner, sid).head
    assert service.verify().problems == [
        f"session {sid}: blob {sha} of {head} is missing",
        f"share {share.id}: blob {sha} of {head} is missing",
    ]


def test_gc_deletes_revoked_redacted_copies(service: Service, owner: str) -> None:
    sid = conversation(service, owner, 2)
    service.append(owner, sid, tool_turn("c1", "cat", {}, f"{'x' * 70_000} {FAKE_KEY}"))
    before = stored_ids(service)
    share = service.share(owner, sid, mode="redact")
    copies = [m.id for m in service.share_messages(share.id)[3:]]  # the tool result on
    assert len(copies) == 1 and set(copies).isdisjoint(before)
    assert stored_ids(service) == before | set(copies)
    assert len(list(service.blobs.list())) == 2  # the original output and its redacted copy
    assert service.gc() == {"messages_deleted": 0, "blobs_deleted": 0}
    service.revoke(owner, share.id)
    assert service.gc() == {"messages_deleted": 1, "blobs_deleted": 1}
    assert stored_ids(service) == before
    assert len(list(service.blobs.list())) == 1
    assert service.verify().ok
    assert service.gc() == {"messages_deleted": 0, "blobs_deleted": 0}


def test_referenced_blobs_are_never_released(service: Service, owner: str) -> None:
    a = service.create(owner)
    b = service.create(owner)
    big = "q" * (65 * 1024)
    service.append(owner, a.id, [text_message("user", big, created_at="2026-01-01T00:00:00Z")])
    service.append(owner, b.id, [text_message("assistant", big)])
    [sha] = service.store.referenced_blobs()
    service.delete(owner, a.id)  # b still holds the same payload
    assert service.blobs.get(sha) is not None
    service.delete(owner, b.id)
    assert service.blobs.get(sha) is None
    # a payload whose file vanished is written again by the next append that carries it
    c = service.create(owner)
    service.append(owner, c.id, [text_message("user", big)])
    service.blobs.delete(sha)
    service.append(owner, c.id, [text_message("user", big)])
    assert service.blobs.get(sha) is not None and service.verify().ok


# small pieces


def test_accounts_are_created_once(service: Service) -> None:
    first = service.account("carol", "Carol C")
    again = service.account("carol", "Someone Else")
    assert again == first and first.display_name == "Carol C"
    assert service.account("dave").display_name == "dave"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("AbC_-123", "AbC_-123"),
        ("https://baton.example/share/AbC_-123", "AbC_-123"),
        ("https://baton.example/share/AbC_-123/?x=1#top", "AbC_-123"),
        ("baton://fork/AbC_-123", "AbC_-123"),
        ("  ses_01AAAAAAAAAAAAAAAAAAAAAAAA ", "ses_01AAAAAAAAAAAAAAAAAAAAAAAA"),
    ],
)
def test_share_ids_from_links(value: str, expected: str) -> None:
    assert share_id_from(value) == expected


@pytest.mark.parametrize("value", ["", "https://baton.example/share/", "a b", "../etc"])
def test_bad_share_links(value: str) -> None:
    with pytest.raises(InvalidInput, match="is not a share id, share URL or session id"):
        share_id_from(value)


def test_an_idempotency_key_answers_its_retries_for_24_hours(service: Service, owner: str) -> None:
    clock = ["2026-03-01T12:00:00.000000Z"]
    service.now = lambda: clock[0]
    sid = service.create(owner).id
    turn = [text_message("user", "only once")]
    first = service.append(owner, sid, turn, idempotency_key="k-1")
    clock[0] = "2026-03-02T11:59:59.000000Z"  # a retry the next day, within 24 hours
    again = service.append(owner, sid, turn, idempotency_key="k-1")
    assert again.session.to_dict() == first.session.to_dict()
    assert again.appended == first.appended and len(first.appended) == 1
    assert service.get(owner, sid).message_count == 1
    clock[0] = "2026-03-02T12:00:01.000000Z"  # the key is forgotten: a new request
    later = service.append(owner, sid, turn, idempotency_key="k-1")
    assert len(later.appended) == 1 and later.session.message_count == 2


def test_a_bundle_that_cannot_be_read_blocks_a_share_and_redact_leaves_it_out(
    service: Service, owner: str
) -> None:
    junk = b"# v2 git bundle\n" + b"0" * 40 + b" HEAD\n\nPACK\x00\x00\x00\x02\x00\x00\x00\x05junk"
    sha = hashlib.sha256(junk).hexdigest()
    service.put_blob(sha, junk, owner)
    git = {
        "version": 1,
        "head": "a" * 40,
        "bundle": {"sha256": sha, "size": len(junk), "commits": 2},
    }
    session = service.create(owner, title="t", git=git)
    with pytest.raises(SecretsFound) as refused:
        service.share(owner, session.id)
    [finding] = refused.value.findings
    assert finding["where"] == "git bundle" and finding["kind"] == "unscanned bundle"
    assert finding["excerpt"].startswith("the git bundle cannot be read (")
    share = service.share(owner, session.id, mode="redact")
    assert share.git is not None and share.git["bundle"] is None
    assert share.git["bundle_dropped"].startswith(
        "the bundle of 2 commit(s) could not be scanned (the git bundle cannot be read ("
    )
    assert share.withheld == [share.git["bundle_dropped"]]
    assert share.published == "0 messages, commit aaaaaaa only, no code changes"
    with pytest.raises(NotFound):
        service.blob(None, sha, share_id=share.id)
    bare = service.share(owner, session.id, code=False)  # nothing of the code is read
    assert bare.published == "0 messages, no code" and bare.redacted == []


def test_redact_replaces_a_secret_in_every_message_it_is_in_not_only_flagged_ones(
    service: Service, owner: str
) -> None:
    """A secret found at share time (here in the title, with an environment variable the
    recording process lacked) is replaced in every message that holds it."""
    from baton.scanning import SecretScanner

    token = "tok-4f9a8b7c6d5e"  # MY_SERVICE_TOKEN of the fixture's scanner
    scanner, service.scanner = service.scanner, SecretScanner({})
    session = service.create(owner, title=f"deploy with {token}")
    big = "y" * (70 * 1024) + token
    batch = [
        text_message("user", "hello"),
        text_message("user", f"use {token}"),
        *tool_turn("c", "bash", {}, big),
    ]
    service.append(owner, session.id, batch)
    service.scanner = scanner
    original = service.messages(owner, session.id)
    share = service.share(owner, session.id, mode="redact")
    published = service.share_messages(share.id, hydrate=True)
    assert token not in share.title and token not in str([m.parts for m in published])
    assert published[0].id == original[0].id  # the prefix without it is shared as it is
    assert published[1].id != original[1].id
    assert published[1].parts == [
        {"type": "text", "text": "use [REDACTED:environment variable MY_SERVICE_TOKEN]"}
    ]
    assert (
        published[3]
        .parts[0]["output"]
        .endswith("y[REDACTED:environment variable MY_SERVICE_TOKEN]")
    )


def _from_source(messages: list[dict[str, Any]], sid: str = "s-1") -> dict[str, Any]:
    return {
        "format": "baton-session",
        "version": 1,
        "session": {"title": "", "metadata": {"source": {"tool": "codex", "session_id": sid}}},
        "messages": messages,
    }


def _said(n: int, text: str = "") -> dict[str, Any]:
    return text_message(
        "user" if n % 2 == 0 else "assistant",
        text or f"message {n}",
        created_at=format_time(parse_time("2026-01-01T00:00:00.000000Z") + timedelta(seconds=n)),
    )


def test_a_source_session_imported_again_grows_the_same_session(
    service: Service, owner: str
) -> None:
    first = service.import_document(owner, _from_source([_said(n) for n in range(3)]))
    assert (first.created, first.messages, first.session.message_count) == (True, 3, 3)
    grown = service.import_document(owner, _from_source([_said(n) for n in range(5)]))
    assert (grown.session.id, grown.created, grown.messages) == (first.session.id, False, 2)
    assert grown.session.message_count == 5
    # the source rewrote its last message (a reply still being written): it is replaced
    rewritten = [*[_said(n) for n in range(4)], _said(4, "message 4, whole"), _said(5)]
    again = service.import_document(owner, _from_source(rewritten))
    assert (again.session.id, again.messages, again.session.message_count) == (
        first.session.id,
        2,
        6,
    )
    shown = service.messages(owner, first.session.id)
    assert [m.parts[0]["text"] for m in shown][-2:] == ["message 4, whole", "message 5"]
    # the same messages again add nothing; another source session is a session of its own
    same = service.import_document(owner, _from_source(rewritten))
    assert (same.session.id, same.created, same.messages) == (first.session.id, False, 0)
    other = service.import_document(owner, _from_source([_said(0, "other")], sid="s-2"))
    assert other.created and other.session.id != first.session.id
    # a source that parted long before (rewritten from its start) is imported on its own
    parted = [_said(n, f"new {n}") for n in range(6)]
    apart = service.import_document(owner, _from_source(parted))
    assert apart.created and apart.session.id != first.session.id


def _export_of(service: Service, owner: str, n: int, big: int | None = None) -> JSON:
    """A baton export of a session of `n` messages; message `big` (1-based) carries a
    payload large enough to be kept as a blob."""
    session = service.create(owner, task="a long session")
    batch = []
    for i in range(n):
        text = ("x" * 70_000 + str(i)) if i + 1 == big else f"message number {i}"
        batch.append(text_message("user" if i % 2 == 0 else "assistant", text))
    service.append(owner, session.id, batch)
    doc = service.export(owner, session.id)
    assert isinstance(doc, dict)
    return doc


def test_an_import_read_a_message_at_a_time_stores_what_a_whole_one_does(
    service: Service, owner: str, other: str
) -> None:
    doc = _export_of(service, owner, 700, big=5)
    whole = service.import_document(other, orjson.dumps(doc))
    service.delete(other, whole.session.id)
    streamed = service.import_document(
        other, {**doc, "messages": iter(doc["messages"])}, fresh=True
    )
    assert streamed.messages == whole.messages == 700
    assert streamed.session.head == whole.session.head == doc["messages"][-1]["id"]
    assert streamed.session.title == whole.session.title
    assert ids_of(service, other, streamed.session.id) == [m["id"] for m in doc["messages"]]


def test_an_import_refused_part_way_changes_nothing(
    service: Service, owner: str, other: str
) -> None:
    doc = _export_of(service, owner, 700, big=3)
    doc["messages"] = [
        {k: v for k, v in m.items() if k not in ("id", "parent")} for m in doc["messages"]
    ]
    # a payload of its own, written as a blob before the refusal, and one the owner has
    doc["messages"][1]["parts"][0]["text"] = "y" * 70_000
    doc["messages"][599]["created_at"] = "yesterday"
    before = snapshot(service)
    for data in (orjson.dumps(doc), {**doc, "messages": iter(doc["messages"])}):
        with pytest.raises(InvalidInput, match="message 600: created_at 'yesterday'"):
            service.import_document(other, data)
        assert snapshot(service) == before
    assert service.list(other).sessions == []


# What an import leaves for later: the embedded store neither scans an import's messages for
# secrets nor indexes them for search on the way in; the first share and the first search do.


def _exported_with_a_secret(after: int = 2) -> bytes:
    """A baton export made in a store of its own, whose third message holds a key."""
    from baton.scanning import SecretScanner
    from baton.store.blobs import MemoryBlobStore
    from baton.store.memory import MemoryStore

    source = Service(MemoryStore(), MemoryBlobStore(), scanner=SecretScanner({}))
    carol = source.account("carol").id
    sid = conversation(source, carol, 2)
    source.append(carol, sid, [text_message("user", f"my key is {FAKE_KEY} ok")])
    source.append(carol, sid, [text_message("assistant", f"zebra-{i}") for i in range(after)])
    return orjson.dumps(source.export(carol, sid))


def test_an_imported_secret_blocks_a_share_and_is_redacted(service: Service, owner: str) -> None:
    imported = service.import_document(owner, _exported_with_a_secret()).session
    service.append(owner, imported.id, [text_message("user", "and one more")])
    original = service.messages(owner, imported.id)
    before = snapshot(service)
    with pytest.raises(SecretsFound) as caught:
        service.share(owner, imported.id)
    assert [(f["position"], f["kind"], f["excerpt"]) for f in caught.value.findings] == [
        (3, "OpenAI Token", "sk-p…7w (48 chars)")
    ]
    assert snapshot(service) == before
    share = service.share(owner, imported.id, mode="redact")
    public = service.share_messages(share.id)
    assert [m.parts[0]["text"] for m in public] == [
        "message number 0",
        "message number 1",
        "my key is [REDACTED:OpenAI Token] ok",
        "zebra-0",
        "zebra-1",
        "and one more",
    ]
    assert [m.id for m in public[:2]] == [m.id for m in original[:2]]  # shared, not copied
    assert FAKE_KEY not in repr([m.parts for m in public])
    report = service.rescan()
    assert (report["rescanned"], report["flagged"]) == (0, 0)  # the share scanned them all
    assert service.verify().ok


def test_a_rescan_scans_what_imports_left(service: Service, owner: str) -> None:
    service.import_document(owner, _exported_with_a_secret(after=3))
    report = service.rescan()
    deferred = service.store.defers_scan  # the embedded store: 6 messages were left unscanned
    assert (report["rescanned"], report["flagged"]) == ((6, 1) if deferred else (0, 0))
    assert service.rescan()["rescanned"] == 0


def test_an_imported_session_is_found_by_search_and_deleted_cleanly(
    service: Service, owner: str
) -> None:
    first = service.import_document(owner, _exported_with_a_secret()).session
    service.delete(owner, first.id)  # before anything searched: it never was in the index
    again = service.import_document(owner, _exported_with_a_secret(after=3)).session
    service.append(owner, again.id, [text_message("user", "the okapi question")])
    assert [s.id for s in service.list(owner, query="zebra").sessions] == [again.id]
    assert [s.id for s in service.list(owner, query="okapi").sessions] == [again.id]
    service.delete(owner, again.id)  # indexed now: taken out of the index again
    assert service.list(owner, query="zebra").sessions == []
    third = service.import_document(owner, _exported_with_a_secret(after=1)).session
    assert [s.id for s in service.list(owner, query="zebra").sessions] == [third.id]
    assert service.verify().ok
    if isinstance(service.store, SQLiteStore):  # the index holds exactly what it should
        service.store._conn().execute(
            "INSERT INTO message_search(message_search, rank) VALUES ('integrity-check', 0)"
        )


def test_a_fork_of_an_imported_session_is_scanned_before_it_is_shared(
    service: Service, owner: str
) -> None:
    imported = service.import_document(owner, _exported_with_a_secret()).session
    fork = service.fork(owner, imported.id)
    with pytest.raises(SecretsFound) as caught:
        service.share(owner, fork.id)
    assert [(f["position"], f["kind"]) for f in caught.value.findings] == [(3, "OpenAI Token")]
    early = service.fork(owner, imported.id, at=service.messages(owner, imported.id)[1].id)
    assert service.share(owner, early.id).message_count == 2  # before the secret: shared

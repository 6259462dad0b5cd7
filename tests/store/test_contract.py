"""One contract suite, run against every store (memory and SQLite) through the service."""

from __future__ import annotations

import re

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
from baton.service import Service
from tests.helpers import text_message, tool_turn

FAKE_KEY = "sk-proj-" + "Ab3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5"


def conversation(service: Service, owner: str, n: int = 4) -> str:
    session = service.create(owner, task="fix login")
    for i in range(n):
        role = "user" if i % 2 == 0 else "assistant"
        service.append(owner, session.id, [text_message(role, f"message number {i}")])
    return session.id


def test_create_append_show(service: Service, owner: str) -> None:
    session = service.create(owner, task="fix the login bug")
    assert session.id.startswith("ses_") and len(session.id) == 30
    assert (session.title, session.message_count, session.head, session.version) == ("", 0, None, 1)
    result = service.append(
        owner, session.id, [text_message("user", "  Why does\n login   fail?  ")]
    )
    assert result.session.title == "Why does login fail?"
    assert result.session.message_count == 1
    assert result.session.version == 2
    [message] = result.appended
    assert re.fullmatch(r"m_[0-9a-f]{64}", message.id)
    assert message.parent is None
    assert result.session.head == message.id
    shown = service.get(owner, session.id)
    assert shown.head == message.id and shown.task == "fix the login bug"
    assert [m.id for m in service.messages(owner, session.id)] == [message.id]


def test_title_is_cut_at_80_characters(service: Service, owner: str) -> None:
    session = service.create(owner)
    result = service.append(owner, session.id, [text_message("user", "word " * 40)])
    assert len(result.session.title) <= 80
    assert result.session.title == ("word " * 16).strip()
    titled = service.create(owner, title="Given title")
    assert (
        service.append(owner, titled.id, [text_message("user", "a prompt")]).session.title
        == "Given title"
    )


def test_append_with_stale_head_is_a_conflict_that_changes_nothing(
    service: Service, owner: str
) -> None:
    session = service.create(owner)
    first = service.append(owner, session.id, [text_message("user", "one")], expected_head=None)
    second = service.append(
        owner, session.id, [text_message("assistant", "two")], expected_head=first.session.head
    )
    with pytest.raises(Conflict) as caught:
        service.append(
            owner, session.id, [text_message("user", "three")], expected_head=first.session.head
        )
    assert caught.value.current_head == second.session.head
    assert second.session.head in str(caught.value)
    after = service.get(owner, session.id)
    assert (after.head, after.message_count, after.version) == (
        second.session.head,
        2,
        second.session.version,
    )


def test_resending_stored_messages_is_a_no_op(service: Service, owner: str) -> None:
    session = service.create(owner)
    batch = [
        text_message("user", "hi", created_at="2026-01-01T00:00:00Z"),
        text_message("assistant", "hello", created_at="2026-01-01T00:00:01Z"),
    ]
    first = service.append(owner, session.id, batch, expected_head=None)
    again = service.append(owner, session.id, batch, expected_head=None)
    assert again.appended == []
    assert again.session.head == first.session.head
    assert service.get(owner, session.id).message_count == 2
    # a retry of a longer batch appends only the tail
    longer = [*batch, text_message("user", "more", created_at="2026-01-01T00:00:02Z")]
    tail = service.append(owner, session.id, longer, expected_head=None)
    assert len(tail.appended) == 1 and tail.session.message_count == 3


def test_ids_are_content_addressed(service: Service, owner: str) -> None:
    a = service.create(owner)
    b = service.create(owner)
    msg = text_message("user", "same", created_at="2026-01-01T00:00:00Z")
    ra = service.append(owner, a.id, [msg])
    rb = service.append(owner, b.id, [msg])
    assert ra.session.head == rb.session.head
    # same content under another parent is another message
    rc = service.append(owner, a.id, [msg])
    assert rc.session.head != ra.session.head
    assert rc.appended[0].parent == ra.session.head


def test_a_given_id_must_match_the_content(service: Service, owner: str) -> None:
    session = service.create(owner)
    with pytest.raises(InvalidInput, match="does not match its content"):
        service.append(owner, session.id, [{**text_message("user", "x"), "id": "m_" + "0" * 64}])
    assert service.get(owner, session.id).message_count == 0


def test_large_parts_go_to_the_blob_store(service: Service, owner: str) -> None:
    session = service.create(owner)
    big = "x" * (64 * 1024 + 1)
    small = "y" * (64 * 1024)
    turn = tool_turn("c1", "bash", {"cmd": "cat big"}, big)
    service.append(
        owner, session.id, [text_message("user", small), *turn, text_message("assistant", big)]
    )
    stored = service.messages(owner, session.id)
    assert stored[0].parts[0]["type"] == "text"  # exactly 64 KiB stays inline
    result_part = stored[2].parts[0]
    assert result_part["type"] == "blob_ref" and result_part["of"] == "tool_result"
    assert result_part["size"] == len(big) and result_part["tool_call_id"] == "c1"
    assert stored[3].parts[0]["type"] == "blob_ref"
    full = service.messages(owner, session.id, hydrate=True)
    assert full[2].parts[0] == {"type": "tool_result", "tool_call_id": "c1", "output": big}
    assert full[3].parts[0] == {"type": "text", "text": big}
    assert service.verify().ok


def test_message_over_16_mib_is_refused(service: Service, owner: str) -> None:
    session = service.create(owner)
    with pytest.raises(TooLarge, match="16 MiB"):
        service.append(owner, session.id, [text_message("user", "z" * (16 * 1024 * 1024 + 10))])
    assert service.get(owner, session.id).message_count == 0


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"role": "robot", "parts": [{"type": "text", "text": "x"}]}, "role must be one of"),
        ({"role": "user", "parts": [{"type": "video", "text": "x"}]}, "type must be one of"),
        ({"role": "user", "parts": []}, "non-empty list"),
        ({"role": "user", "parts": [{"type": "text"}]}, "needs a string text"),
        ({"role": "user", "parts": [{"type": "tool_call", "name": "x"}]}, "needs a string id"),
        (
            {"role": "user", "parts": [{"type": "text", "text": "x"}], "created_at": "yesterday"},
            "not an ISO 8601",
        ),
        (
            {
                "role": "user",
                "parts": [{"type": "text", "text": "x"}],
                "usage": {"input_tokens": -1},
            },
            "non-negative",
        ),
        ("just a string", "expected a JSON object"),
        ({"role": "user", "parts": [{"type": "text", "text": "bad \ud800"}]}, "not valid Unicode"),
        (
            {
                "role": "user",
                "parts": [{"type": "tool_call", "id": "c", "name": "n", "input": {"n": 2**70}}],
            },
            "64-bit range",
        ),
        (
            {
                "role": "user",
                "parts": [{"type": "tool_call", "id": "c", "name": "n", "input": [float("nan")]}],
            },
            "finite",
        ),
    ],
)
def test_bad_messages_are_refused(
    service: Service, owner: str, message: object, error: str
) -> None:
    session = service.create(owner)
    with pytest.raises(InvalidInput, match=error):
        service.append(owner, session.id, [message])
    assert service.get(owner, session.id).version == 1


def test_list_pages_through_every_session_newest_first(service: Service, owner: str) -> None:
    created = [service.create(owner, title=f"session {i}").id for i in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        page = service.list(owner, limit=3, cursor=cursor)
        seen += [s.id for s in page.sessions]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(reversed(created))
    service.append(owner, created[0], [text_message("user", "bump")])
    assert service.list(owner, limit=1).sessions[0].id == created[0]


def test_list_filters(service: Service, owner: str) -> None:
    a = service.create(owner, title="Penguin migration", repo="github.com/o/birds")
    b = service.create(owner, title="Other", task="parse the walrus logs")
    c = service.create(owner, title="Third")
    service.append(owner, c.id, [text_message("user", "the flamingo colour bug")])
    service.update(owner, b.id, status="done")
    assert [s.id for s in service.list(owner, query="penguin").sessions] == [a.id]
    assert [s.id for s in service.list(owner, query="walrus").sessions] == [b.id]
    assert [s.id for s in service.list(owner, query="flamingo").sessions] == [c.id]
    assert service.list(owner, query="nothingmatches").sessions == []
    assert [s.id for s in service.list(owner, status="done").sessions] == [b.id]
    assert [s.id for s in service.list(owner, repo="github.com/o/birds").sessions] == [a.id]
    with pytest.raises(InvalidInput):
        service.list(owner, status="sleeping")


def test_search_finds_forks_by_their_shared_prefix(service: Service, owner: str) -> None:
    sid = conversation(service, owner)
    service.append(owner, sid, [text_message("user", "the albatross question")])
    fork = service.fork(owner, sid)
    early = service.fork(owner, sid, at=service.messages(owner, sid)[1].id)
    found = {s.id for s in service.list(owner, query="albatross").sessions}
    assert found == {sid, fork.id}
    assert early.id not in found


def test_update_and_rename_with_version_check(service: Service, owner: str) -> None:
    session = service.create(owner)
    renamed = service.rename(owner, session.id, "  New   name ")
    assert renamed.title == "New name" and renamed.version == 2
    with pytest.raises(VersionMismatch) as caught:
        service.update(owner, session.id, expected_version=1, status="paused")
    assert caught.value.current_version == 2
    updated = service.update(
        owner, session.id, expected_version=2, status="paused", metadata={"mode": "plan"}
    )
    assert (updated.status, updated.metadata, updated.version) == ("paused", {"mode": "plan"}, 3)
    # a renamed session keeps its title when the first prompt comes
    after = service.append(owner, session.id, [text_message("user", "first prompt")])
    assert after.session.title == "New name"
    with pytest.raises(InvalidInput):
        service.update(owner, session.id, status="sleeping")


def test_another_owner_sees_nothing(service: Service, owner: str, other: str) -> None:
    sid = conversation(service, owner)
    head = service.get(owner, sid).head
    calls = [
        lambda: service.get(other, sid),
        lambda: service.messages(other, sid),
        lambda: service.append(other, sid, [text_message("user", "x")]),
        lambda: service.rename(other, sid, "mine"),
        lambda: service.update(other, sid, status="done"),
        lambda: service.delete(other, sid),
        lambda: service.share(other, sid),
        lambda: service.fork(other, sid),
        lambda: service.export(other, sid),
        lambda: service.shares(other, sid),
        lambda: service.verify(other, sid),
    ]
    for call in calls:
        with pytest.raises(NotFound, match=f"no session {sid}"):
            call()
    share = service.share(owner, sid)
    with pytest.raises(NotFound):
        service.revoke(other, share.id)
    assert service.list(other).sessions == []
    assert service.list(other, query="message").sessions == []
    after = service.get(owner, sid)
    assert (after.head, after.title, after.version) == (head, "message number 0", 5)


def test_share_is_frozen(service: Service, owner: str) -> None:
    sid = conversation(service, owner)
    share = service.share(owner, sid)
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{22}", share.id)
    assert (
        share.shared_by["handle"] == "alice" and share.shared_by["display_name"] == "Alice Example"
    )
    assert service.share_url(share.id).endswith(f"/share/{share.id}")
    before = [m.id for m in service.share_messages(share.id)]
    service.append(owner, sid, [text_message("user", "later")])
    service.rename(owner, sid, "Renamed later")
    assert [m.id for m in service.share_messages(share.id)] == before
    assert len(before) == 4
    public = service.public_share(share.id)
    assert public.title == "message number 0" and public.message_count == 4


def test_share_ids_are_random(service: Service, owner: str) -> None:
    sid = conversation(service, owner, 1)
    ids = {service.share(owner, sid).id for _ in range(20)}
    assert len(ids) == 20
    assert all(sid[4:] not in i for i in ids)


def test_share_expiry_and_revoke(service: Service, owner: str, other: str) -> None:
    sid = conversation(service, owner)
    share = service.share(owner, sid, expires="7d")
    assert share.expires_at is not None and share.expires_at > share.created_at
    real_now = service.now
    service.now = lambda: "2999-01-01T00:00:00.000000Z"
    with pytest.raises(Gone, match="expired"):
        service.public_share(share.id)
    with pytest.raises(Gone):
        service.fork(other, share.id)
    service.now = real_now
    assert service.fork(other, share.id).owner == other
    revoked = service.revoke(owner, share.id)
    assert revoked.revoked_at is not None
    for call in (
        lambda: service.public_share(share.id),
        lambda: service.share_messages(share.id),
        lambda: service.fork(other, share.id),
    ):
        with pytest.raises(Gone, match="revoked"):
            call()
    with pytest.raises(NotFound):
        service.public_share("A" * 23)
    with pytest.raises(InvalidInput):
        service.share(owner, sid, expires="soon")


def test_secrets_block_a_share(service: Service, owner: str) -> None:
    sid = conversation(service, owner, 2)
    service.append(owner, sid, [text_message("user", f"my key is {FAKE_KEY} ok")])
    service.append(owner, sid, [text_message("assistant", "noted")])
    with pytest.raises(SecretsFound) as caught:
        service.share(owner, sid)
    [finding] = caught.value.findings
    assert finding["where"] == "message 3" and finding["position"] == 3
    assert finding["kind"] == "OpenAI Token"
    assert FAKE_KEY not in str(caught.value.findings)
    assert finding["excerpt"].startswith("sk-p")
    assert service.shares(owner) == []


def test_redact_copies_from_the_first_secret_on(service: Service, owner: str) -> None:
    sid = conversation(service, owner, 2)
    service.append(owner, sid, [text_message("user", f"key {FAKE_KEY} and token tok-4f9a8b7c6d5e")])
    service.append(owner, sid, [text_message("assistant", f"I will not repeat {FAKE_KEY}")])
    original = service.messages(owner, sid)
    share = service.share(owner, sid, mode="redact")
    public = service.share_messages(share.id)
    assert [m.id for m in public[:2]] == [m.id for m in original[:2]]  # prefix shared, not copied
    assert public[2].id != original[2].id
    assert public[2].parts[0]["text"] == (
        "key [REDACTED:OpenAI Token] and token [REDACTED:environment variable MY_SERVICE_TOKEN]"
    )
    assert public[3].parts[0]["text"] == "I will not repeat [REDACTED:OpenAI Token]"
    assert public[3].parent == public[2].id
    assert {f["kind"] for f in share.redacted} == {
        "OpenAI Token",
        "environment variable MY_SERVICE_TOKEN",
    }
    # the private session is untouched
    assert [m.id for m in service.messages(owner, sid)] == [m.id for m in original]
    assert service.verify().ok


def test_allow_secrets_publishes_as_is(service: Service, owner: str) -> None:
    sid = conversation(service, owner, 1)
    service.append(owner, sid, [text_message("user", FAKE_KEY)])
    share = service.share(owner, sid, mode="allow")
    assert service.share_messages(share.id)[-1].parts[0]["text"] == FAKE_KEY


def test_secrets_in_the_header_are_found(service: Service, owner: str) -> None:
    session = service.create(owner, task=f"use {FAKE_KEY}", metadata={"env": "tok-4f9a8b7c6d5e"})
    with pytest.raises(SecretsFound) as caught:
        service.share(owner, session.id)
    assert {f["where"] for f in caught.value.findings} == {"task", "metadata"}
    share = service.share(owner, session.id, mode="redact")
    assert share.task == "use [REDACTED:OpenAI Token]"
    assert share.metadata == {"env": "[REDACTED:environment variable MY_SERVICE_TOKEN]"}


def test_fork_of_a_share_and_of_a_session(service: Service, owner: str, other: str) -> None:
    session = service.create(owner, task="t", metadata={"mode": "build"})
    service.append(
        owner, session.id, [text_message("user", "a", usage={"input_tokens": 10, "cost_usd": 0.5})]
    )
    service.append(
        owner,
        session.id,
        [text_message("assistant", "b", usage={"output_tokens": 20, "cost_usd": 0.25})],
    )
    service.append(owner, session.id, [text_message("user", "c")])
    messages = service.messages(owner, session.id)
    share = service.share(owner, session.id)
    fork = service.fork(other, share.id)
    assert fork.owner == other and fork.id != session.id
    assert fork.head == messages[-1].id and fork.message_count == 3
    assert fork.forked_from == {"share": share.id, "message": messages[-1].id}
    assert (fork.task, fork.metadata, fork.title) == ("t", {"mode": "build"}, "a")
    assert fork.totals.input_tokens == 10 and fork.totals.output_tokens == 20
    assert fork.totals.cost_usd == 0.75
    # appending to the fork never touches the original
    service.append(other, fork.id, [text_message("assistant", "d")])
    assert service.get(owner, session.id).message_count == 3
    early = service.fork(owner, session.id, at=messages[0].id)
    assert early.message_count == 1 and early.head == messages[0].id
    assert early.forked_from == {"session": session.id, "message": messages[0].id}
    assert early.totals.cost_usd == 0.5 and early.totals.output_tokens == 0
    by_url = service.fork(other, f"https://baton.example/share/{share.id}")
    assert by_url.head == messages[-1].id
    with pytest.raises(NotFound, match="is not in"):
        service.fork(owner, session.id, at=service.messages(other, fork.id)[-1].id)
    with pytest.raises(NotFound):
        service.fork(owner, session.id, at="m_" + "1" * 64)


def test_delete_really_deletes(service: Service, owner: str) -> None:
    sid = conversation(service, owner, 4)
    messages = service.messages(owner, sid)
    fork = service.fork(owner, sid, at=messages[1].id)
    service.append(owner, sid, [text_message("user", "x" * (70 * 1024))])
    share = service.share(owner, sid)
    with pytest.raises(LiveShares) as caught:
        service.delete(owner, sid)
    assert caught.value.share_ids == [share.id]
    assert service.get(owner, sid).message_count == 5
    assert service.delete(owner, sid, revoke_shares=True) == [share.id]
    with pytest.raises(NotFound):
        service.get(owner, sid)
    # the fork's prefix survives, the rest is gone
    assert [m.id for m in service.messages(owner, fork.id)] == [m.id for m in messages[:2]]
    store = service.store
    assert set(store.get_messages([m.id for m in messages])) == {m.id for m in messages[:2]}
    assert store.referenced_blobs() == set()
    assert list(service.blobs.list()) == []
    with pytest.raises(Gone):
        service.public_share(share.id)
    assert service.verify().ok


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
            text_message(
                "assistant", "b", usage={"input_tokens": 1, "output_tokens": 2, "cost_usd": 0.0001}
            ),
        ],
    )
    totals = service.get(owner, session.id).totals
    assert totals.to_dict() == {
        "input_tokens": 101,
        "output_tokens": 52,
        "cache_read_tokens": 7,
        "cache_write_tokens": 3,
        "cost_usd": 0.0124,
    }


def test_export_import_round_trip(service: Service, owner: str, other: str) -> None:
    session = service.create(owner, task="t")
    service.append(
        owner,
        session.id,
        [
            text_message("user", "hello"),
            *tool_turn("c1", "bash", {"cmd": "ls"}, "o" * 70000),
            text_message("assistant", "done", model="m1", usage={"output_tokens": 3}),
        ],
    )
    doc = service.export(owner, session.id)
    assert isinstance(doc, dict)
    assert doc["format"] == "baton-session" and doc["version"] == 1
    assert doc["messages"][2]["parts"][0]["output"] == "o" * 70000
    result = service.import_document(other, doc)
    assert result.created and result.messages == 4
    assert result.session.id == session.id or result.session.owner == other
    assert [m.id for m in service.messages(other, result.session.id)] == [
        m.id for m in service.messages(owner, session.id)
    ]
    assert result.session.platform == "import"
    again = service.import_document(other, doc)
    assert not again.created and again.session.id == result.session.id
    markdown = service.export(owner, session.id, "markdown")
    assert isinstance(markdown, str)
    assert "## User" in markdown and "hello" in markdown and "**Tool call** `bash`" in markdown


def test_tampered_or_broken_import_changes_nothing(service: Service, owner: str) -> None:
    sid = conversation(service, owner, 3)
    doc = service.export(owner, sid)
    assert isinstance(doc, dict)
    count = len(service.list(owner).sessions)
    doc["messages"][1]["parts"][0]["text"] = "changed"
    with pytest.raises(InvalidInput, match="does not match its content"):
        service.import_document(owner, doc)
    for bad, error in [
        (b"", "empty"),
        (b'{"format": "baton-session", "vers', "not valid JSON"),
        (b"\x00\xff\xfe garbage", "not valid JSON"),
        (b"[]", "not a baton export"),
        (b'{"format": "baton-session", "version": 99}', "version 99"),
    ]:
        with pytest.raises(InvalidInput, match=error):
            service.import_document(owner, bad)
    assert len(service.list(owner).sessions) == count


def test_gc_collects_revoked_redacted_copies(service: Service, owner: str) -> None:
    sid = conversation(service, owner, 2)
    service.append(owner, sid, [text_message("user", FAKE_KEY)])
    share = service.share(owner, sid, mode="redact")
    copy_id = share.head
    assert copy_id is not None and service.store.get_messages([copy_id])
    assert service.gc()["messages_deleted"] == 0
    service.revoke(owner, share.id)
    assert service.gc()["messages_deleted"] == 1
    assert service.store.get_messages([copy_id]) == {}
    assert service.verify().ok


def test_verify_reports_damage(service: Service, owner: str) -> None:
    sid = conversation(service, owner, 2)
    service.append(owner, sid, [text_message("user", "b" * 70000)])
    report = service.verify()
    assert report.ok and report.sessions == 1 and report.messages == 3
    [sha] = service.store.referenced_blobs()
    service.blobs.delete(sha)
    report = service.verify()
    assert not report.ok
    assert report.problems == [
        f"session {sid}: blob {sha} of {service.get(owner, sid).head} is missing"
    ]


def test_referenced_blobs_are_never_released(service: Service, owner: str) -> None:
    a = service.create(owner)
    b = service.create(owner)
    big = "q" * (65 * 1024)
    service.append(owner, a.id, [text_message("user", big, created_at="2026-01-01T00:00:00Z")])
    service.append(owner, b.id, [text_message("assistant", big)])
    [sha] = service.store.referenced_blobs()
    deleted: list[str] = []
    assert service.store.release_blobs([sha], deleted.extend) == [] and deleted == []
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


def test_redact_removes_a_whole_private_key(service: Service, owner: str) -> None:
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAwJ8f0Zx\nq9Pn3Lw==\n-----END RSA PRIVATE KEY-----"
    session = service.create(owner)
    service.append(owner, session.id, tool_turn("c1", "read_file", {"path": "id_rsa"}, f"{key}\n"))
    share = service.share(owner, session.id, mode="redact")
    output = service.share_messages(share.id)[-1].parts[0]["output"]
    assert output == "[REDACTED:Private Key]\n"
    assert "MIIE" not in str(share.redacted)


def test_header_fields_are_checked(service: Service, owner: str) -> None:
    with pytest.raises(InvalidInput, match="metadata must be a JSON object"):
        service.create(owner, metadata=["not", "an", "object"])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="finite"):
        service.create(owner, metadata={"x": float("inf")})
    with pytest.raises(InvalidInput, match="not valid Unicode"):
        service.create(owner, task="bad \ud800")
    with pytest.raises(TooLarge, match="title"):
        service.create(owner, title="t" * 1001)
    session = service.create(owner)
    with pytest.raises(InvalidInput, match="64-bit"):
        service.update(owner, session.id, metadata={"n": -(2**64)})
    assert service.get(owner, session.id).version == 1
    assert len(service.list(owner).sessions) == 1

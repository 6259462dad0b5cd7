"""Chain rules: linking messages to their parents, re-hashing chains, totals, share states,
and the export formats that are pure functions of a chain."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from baton.core.chain import blob_refs, link, verify_chain
from baton.core.ids import message_id
from baton.core.models import Message, Session, Share, StoredMessage, Totals
from baton.core.validation import message_text, validate_message
from baton.render.document import export_document
from baton.render.markdown import export_markdown

NOW = "2026-11-24T00:00:00.000000Z"


def linked(parent: StoredMessage | None, role: str, text: str, **extra: Any) -> StoredMessage:
    raw = {"role": role, "parts": [{"type": "text", "text": text}], **extra}
    return link(parent, validate_message(raw, NOW), extra.pop("findings", []))


def chain_of(n: int) -> list[StoredMessage]:
    out: list[StoredMessage] = []
    for i in range(n):
        out.append(linked(out[-1] if out else None, "user" if i % 2 == 0 else "assistant", f"{i}"))
    return out


def test_the_first_message_is_its_own_root() -> None:
    first = linked(None, "user", "a")
    assert first.message.parent is None
    assert (first.depth, first.root, first.flagged) == (0, first.message.id, None)
    assert message_text(first.message.parts) == "a"  # what the store indexes for search
    assert first.message.id == message_id(first.message.content())


def test_children_point_at_their_parent_and_share_its_root() -> None:
    a, b, c = chain_of(3)
    assert (b.message.parent, b.depth, b.root) == (a.message.id, 1, a.message.id)
    assert (c.message.parent, c.depth, c.root) == (b.message.id, 2, a.message.id)


def test_the_same_content_under_another_parent_is_another_message() -> None:
    a = linked(None, "user", "a")
    alone = linked(None, "assistant", "same")
    child = linked(a, "assistant", "same")
    assert alone.message.id != child.message.id
    assert linked(a, "assistant", "same").message.id == child.message.id


def test_totals_are_summed_along_the_chain() -> None:
    a = linked(None, "user", "q", usage={"input_tokens": 3, "cache_read_tokens": 5})
    b = linked(a, "assistant", "r", usage={"output_tokens": 4, "cost_usd": 0.1})
    c = linked(
        b, "assistant", "s", usage={"output_tokens": 1, "cache_write_tokens": 2, "cost_usd": 0.2}
    )
    assert c.totals == Totals(3, 5, 5, 2, 0.3)  # 0.1 + 0.2 rounded, not 0.30000000000000004
    assert a.totals == Totals(input_tokens=3, cache_read_tokens=5)


def test_the_flag_pointer_names_the_nearest_message_with_findings() -> None:
    finding = [{"kind": "OpenAI Token", "excerpt": "sk-p…aa (48 chars)"}]
    a = linked(None, "user", "a")
    b = link(
        a,
        validate_message({"role": "user", "parts": [{"type": "text", "text": "b"}]}, NOW),
        finding,
    )
    c = linked(b, "assistant", "c")
    d = link(
        c,
        validate_message({"role": "user", "parts": [{"type": "text", "text": "d"}]}, NOW),
        finding,
    )
    e = linked(d, "assistant", "e")
    assert [m.flagged for m in (a, b, c, d, e)] == [
        None,
        b.message.id,
        b.message.id,
        d.message.id,
        d.message.id,
    ]
    assert b.findings == finding and c.findings == []


def test_blob_refs_are_listed_once_and_sorted() -> None:
    parts = [
        {"type": "blob_ref", "sha256": "b" * 64, "size": 1},
        {"type": "text", "text": "x"},
        {"type": "blob_ref", "sha256": "a" * 64, "size": 1},
        {"type": "blob_ref", "sha256": "b" * 64, "size": 1},
    ]
    assert blob_refs(parts) == ("a" * 64, "b" * 64)
    big = validate_message({"role": "user", "parts": [{"type": "text", "text": "x" * 70000}]}, NOW)
    assert link(None, big, []).blobs == tuple(big.blobs)


def test_a_sound_chain_verifies() -> None:
    assert verify_chain([m.message for m in chain_of(5)]) == []
    assert verify_chain([]) == []


def test_verify_reports_changed_content() -> None:
    a, b, c = (m.message for m in chain_of(3))
    tampered = dataclasses.replace(b, parts=[{"type": "text", "text": "B"}])
    assert verify_chain([a, tampered, c]) == [
        f"message 2 ({b.id}) does not match its content "
        f"(hashes to {message_id(tampered.content())})"
    ]


def test_verify_reports_broken_links() -> None:
    a, b, c = (m.message for m in chain_of(3))
    assert verify_chain([a, c]) == [f"message 2 ({c.id}) has parent {b.id}, expected {a.id}"]
    assert verify_chain([b, c]) == [f"message 1 ({b.id}) has parent {a.id}, expected None"]
    swapped = verify_chain([a, c, b])
    assert len(swapped) == 2 and all("has parent" in p for p in swapped)


def test_totals_add_and_serialise() -> None:
    assert Totals().add(None) == Totals()
    assert Totals().add({}) == Totals()
    total = Totals(1, 2, 3, 4, 0.5).add({"input_tokens": 1, "cost_usd": 0.25, "other": 9})
    assert total.to_dict() == {
        "input_tokens": 2,
        "output_tokens": 2,
        "cache_read_tokens": 3,
        "cache_write_tokens": 4,
        "cost_usd": 0.75,
    }


def share(**kw: Any) -> Share:
    base: dict[str, Any] = {
        "id": "s" * 23,
        "session_id": "ses_x",
        "owner": "acc_x",
        "shared_by": {},
        "head": None,
        "message_count": 0,
        "title": "t",
        "task": "",
        "metadata": {},
        "git": None,
        "created_at": "2026-01-01T00:00:00.000000Z",
    }
    return Share(**{**base, **kw})


def test_share_state_is_live_expired_or_revoked() -> None:
    expires = "2026-01-08T00:00:00.000000Z"
    assert share().state(NOW) == "live"
    assert share(expires_at=expires).state("2026-01-07T23:59:59.999999Z") == "live"
    assert share(expires_at=expires).state(expires) == "expired"  # expiry is exclusive
    assert share(revoked_at=NOW).state("2026-01-01T00:00:00.000000Z") == "revoked"
    assert share(revoked_at=NOW, expires_at=expires).state("2030-01-01T00:00:00.000000Z") == (
        "revoked"
    )


def session_with(messages: list[Message]) -> Session:
    return Session(
        id="ses_01AAAAAAAAAAAAAAAAAAAAAAAA",
        owner="acc_x",
        title="Fix ``` fences",
        task="the task",
        status="paused",
        head=messages[-1].id if messages else None,
        message_count=len(messages),
        created_at=NOW,
        updated_at=NOW,
        version=7,
        totals=Totals(10, 20, 0, 0, 0.5),
    )


def test_export_document_leaves_out_the_owner_and_version() -> None:
    messages = [m.message for m in chain_of(2)]
    doc = export_document(session_with(messages), messages, "2026-12-01T00:00:00.000000Z")
    assert doc["format"] == "baton-session" and doc["version"] == 1
    assert doc["exported_at"] == "2026-12-01T00:00:00.000000Z"
    assert "owner" not in doc["session"] and "version" not in doc["session"]
    assert doc["session"]["status"] == "paused" and doc["session"]["head"] == messages[-1].id
    assert doc["messages"] == [m.to_dict() for m in messages]
    assert doc["messages"][1]["parent"] == doc["messages"][0]["id"]
    json.dumps(doc)  # plain JSON values only


def test_markdown_export() -> None:
    first = linked(None, "user", "Why ``` does it fail?")
    call = link(
        first,
        validate_message(
            {
                "role": "assistant",
                "model": "gpt-x",
                "parts": [
                    {"type": "reasoning", "text": "look\nclosely"},
                    {"type": "tool_call", "id": "c1", "name": "bash", "input": {"cmd": "ls"}},
                ],
            },
            NOW,
        ),
        [],
    )
    result = link(
        call,
        validate_message(
            {
                "role": "tool",
                "parts": [
                    {
                        "type": "tool_result",
                        "tool_call_id": "c1",
                        "output": "boom",
                        "is_error": True,
                    }
                ],
            },
            NOW,
        ),
        [],
    )
    messages = [first.message, call.message, result.message]
    md = export_markdown(session_with(messages), messages)
    assert md.startswith("# Fix ``` fences\n\n- Session: `ses_01AAAAAAAAAAAAAAAAAAAAAAAA`\n")
    assert "- Tokens: 10 in, 20 out; cost $0.5000\n- Task: the task\n" in md
    assert "## User\n\n*2026-11-24T00:00:00.000000Z*\n\nWhy ``` does it fail?" in md
    assert "## Assistant (gpt-x)" in md
    assert "> *Reasoning:* look\n> closely" in md
    assert '**Tool call** `bash` (`c1`)\n\n```json\n{\n  "cmd": "ls"\n}\n```' in md
    assert "**Tool error** (`c1`)\n\n```\nboom\n```" in md
    assert md.endswith("\n")

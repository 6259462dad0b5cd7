"""Chain rules: linking a new message to its parent, and re-hashing a chain end to end."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from baton.core.ids import Encoder, message_id
from baton.core.models import JSON, Message, StoredMessage, Totals, message_content
from baton.core.validation import MessageInput


def link(
    parent: StoredMessage | None,
    item: MessageInput,
    findings: list[JSON],
    encode: Encoder | None = None,
) -> StoredMessage:
    """Make the stored form of `item` as the child of `parent` (None: first message). A
    faster `encode` of canonical JSON is used when validation found only plain numbers."""
    parent_id = parent.message.id if parent else None
    content = message_content(
        parent_id, item.role, item.parts, item.created_at, item.model, item.usage
    )
    mid = message_id(content, encode) if encode and item.plain_numbers else message_id(content)
    message = Message(
        mid, parent_id, item.role, item.parts, item.created_at, item.model, item.usage
    )
    return stored(message, parent, findings)


def stored(message: Message, parent: StoredMessage | None, findings: list[JSON]) -> StoredMessage:
    """Derive depth, root, totals and the secret pointer of `message` from its parent."""
    base = parent.totals if parent else Totals()
    flagged = message.id if findings else (parent.flagged if parent else None)
    return StoredMessage(
        message=message,
        depth=parent.depth + 1 if parent else 0,
        root=parent.root if parent else message.id,
        totals=base.add(message.usage),
        findings=findings,
        flagged=flagged,
        blobs=blob_refs(message.parts),
    )


def blob_refs(parts: Iterable[JSON]) -> tuple[str, ...]:
    return tuple(sorted({p["sha256"] for p in parts if p.get("type") == "blob_ref"}))


def verify_chain(messages: Sequence[Message]) -> list[str]:
    """Re-hash every message and check every parent link. Returns the problems found."""
    problems: list[str] = []
    previous: str | None = None
    for position, message in enumerate(messages):
        if message.parent != previous:
            problems.append(
                f"message {position + 1} ({message.id}) has parent {message.parent}, "
                f"expected {previous}"
            )
        expected = message_id(message.content())
        if expected != message.id:
            problems.append(
                f"message {position + 1} ({message.id}) does not match its content "
                f"(hashes to {expected})"
            )
        previous = message.id
    return problems

"""Appending messages to a session: validated, scanned, linked after the expected head,
retried on a moving head, and answered once per idempotency key."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from baton.contract import ANY_HEAD, AppendResult
from baton.core import ids
from baton.core.attachments import decode
from baton.core.chain import link
from baton.core.errors import Conflict, InvalidInput
from baton.core.models import JSON, Message, Session, StoredMessage, Totals
from baton.core.validation import MessageInput, derive_title, message_text, validate_message
from baton.service import blobs
from baton.service.common import Ports, canonical, owned
from baton.store.base import Answered, Remembered, Remembering, idempotency_cutoff

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, as Stripe's


def append(
    p: Ports,
    owner: str,
    session_id: str,
    messages: Sequence[Any],
    expected_head: Any = ANY_HEAD,
    retries: int = 20,
    *,
    idempotency_key: str | None = None,
) -> AppendResult:
    """Append `messages` after `expected_head`. A stale head is a Conflict naming the
    current one; re-sending messages that are already the head is a no-op. A request
    sent again with the same `idempotency_key` (within 24 hours) is answered as the first
    one was, and changes nothing."""
    if not isinstance(messages, list | tuple) or not messages:
        raise InvalidInput("messages must be a non-empty list")
    current = owned(p, owner, session_id)  # nothing is written for a session not yours
    if idempotency_key is None:
        return _append(p, owner, current, messages, expected_head, retries)
    if not _IDEMPOTENCY_KEY.match(idempotency_key):
        raise InvalidInput("an Idempotency-Key is 1 to 255 printable ASCII characters")
    request = {"messages": list(messages)}
    if expected_head is not ANY_HEAD:
        request["expected_head"] = expected_head
    try:
        digest = ids.sha256_hex(canonical(request))
    except (TypeError, ValueError):
        digest = ids.sha256_hex(repr(request).encode())
    kept = p.store.recall(session_id, idempotency_key, idempotency_cutoff(p.now()))
    if kept is None:
        # The answer is kept in the append's own transaction: a retry racing the first
        # request waits for it, then is answered as it was.
        key = (idempotency_key, digest)
        try:
            result = _append(p, owner, current, messages, expected_head, retries, key)
        except Answered as raced:
            kept = raced.answer
        else:
            if result.appended:
                return result
            # nothing was written (the messages had landed): keep the answer on its own
            answer = _answer(digest, result)
            kept = p.store.remember(session_id, idempotency_key, answer, p.now())
            if kept == answer:
                return result
    if kept.request != digest:
        raise InvalidInput(
            f"Idempotency-Key {idempotency_key!r} was used for a different request to "
            "this session; send a new key with a new request"
        )
    return _replay(kept)


def _append(
    p: Ports,
    owner: str,
    current: Session,
    messages: Sequence[Any],
    expected_head: Any,
    retries: int,
    key: tuple[str, str] | None = None,
) -> AppendResult:
    session_id = current.id
    now = p.now()
    inputs = [validate_message(raw, now, i) for i, raw in enumerate(messages)]
    first = messages[0]
    if expected_head is ANY_HEAD and isinstance(first, dict) and "parent" in first:
        # A message that names its parent goes after that parent or nowhere, so a retry
        # of messages that already landed is a no-op, not an error or a duplicate.
        if first["parent"] is not None and not isinstance(first["parent"], str):
            raise InvalidInput("message 1: parent must be a message id or null")
        expected_head = first["parent"]
    blobs.check_references(p, owner, inputs)
    findings = [_scan(p, item) for item in inputs]
    blobs.keep(p, inputs)
    blobs.grant(p, owner, inputs)
    for attempt in range(retries + 1):
        session = current if attempt == 0 else owned(p, owner, session_id)
        base = session.head if expected_head is ANY_HEAD else expected_head
        try:
            result = _append_at(p, session, base, inputs, findings, messages, key)
        except Conflict:
            if expected_head is not ANY_HEAD:
                raise
            continue
        blobs.keep(p, inputs)
        return result
    raise Conflict("the session kept moving; try again", owned(p, owner, session_id).head)


def _append_at(
    p: Ports,
    session: Session,
    base: str | None,
    inputs: list[MessageInput],
    findings: list[list[JSON]],
    raw: Sequence[Any],
    key: tuple[str, str] | None = None,
) -> AppendResult:
    parent: StoredMessage | None = None
    if base is not None:
        parent = p.store.get_messages([base]).get(base)
        if parent is None:
            raise Conflict(
                f"expected head {base} is not a message of this session; "
                f"its head is {session.head}",
                session.head,
            )
    chain: list[StoredMessage] = []
    for i, item in enumerate(inputs):
        sm = link(chain[-1] if chain else parent, item, findings[i], canonical)
        given = raw[i].get("id") if isinstance(raw[i], dict) else None
        if given is not None and given != sm.message.id:
            raise InvalidInput(
                f"message {i + 1}: id {given} does not match its content ({sm.message.id})"
            )
        named = (
            raw[i].get("parent", sm.message.parent)
            if isinstance(raw[i], dict)
            else sm.message.parent
        )
        if named != sm.message.parent:
            raise InvalidInput(
                f"message {i + 1}: parent {named} is not the message before it "
                f"({sm.message.parent})"
            )
        chain.append(sm)
    if session.head != base:
        # A retry of messages that already landed is a no-op; a tail of them is appended.
        landed = [sm.message.id for sm in chain]
        if session.head in landed:
            done = landed.index(session.head) + 1
            if done == len(chain):
                return AppendResult(session, [])
            chain = chain[done:]
            base = session.head
        else:
            raise Conflict(
                f"the session moved on: its head is {session.head}, not {base}", session.head
            )
    changes: JSON = {"updated_at": p.now()}
    if session.title_auto and not session.title:
        for sm in chain:
            text = message_text(sm.message.parts) if sm.message.role == "user" else ""
            if text.strip():
                changes["title"] = derive_title(text)
                break
    appended = [sm.message for sm in chain]
    remember = None
    if key is not None:
        digest = key[1]
        remember = Remembering(
            key[0], lambda s: _answer(digest, AppendResult(s, appended)), p.now()
        )
    updated = p.store.append(session.id, base, chain, changes, remember)
    return AppendResult(updated, appended)


def _scan(p: Ports, item: MessageInput) -> list[JSON]:
    """The findings of a message and of the payloads it moved to blobs (a file's, as the
    text its base64 says when it says text)."""
    extra = [data.decode("utf-8", "replace") for data in item.blobs.values()]
    files = {part.get("sha256") for part in item.parts if part.get("of") == "file"}
    for sha, text in zip(item.blobs, list(extra), strict=True):
        said = decode({"type": "file", "data": text}) if sha in files else None
        if said is not None:
            extra.append(said.text)
    return p.scanner.findings(item.parts, extra)


def _answer(digest: str, result: AppendResult) -> Remembered:
    """What an append with an idempotency key answers, kept for its retries."""
    return Remembered(
        digest,
        201 if result.appended else 200,
        {
            "session": result.session.to_dict(),
            "appended": [m.to_dict() for m in result.appended],
        },
    )


def _replay(answer: Remembered) -> AppendResult:
    """The result of an append, as remembered for its idempotency key."""
    data = dict(answer.response["session"])
    totals = Totals(**data.pop("totals"))
    data.pop("own", None)
    inherited = Totals(**(data.pop("inherited", None) or {}))
    return AppendResult(
        Session(**data, totals=totals, inherited=inherited),
        [Message(**m) for m in answer.response["appended"]],
    )

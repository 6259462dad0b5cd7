"""Export and import: a session as a file (json, markdown, html, opencode), and a baton JSON
export read back, checked whole before anything is stored, once per conversation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from baton.contract import ImportResult
from baton.core import ids
from baton.core.chain import link, stored
from baton.core.errors import InvalidInput
from baton.core.models import JSON, STATUSES, Session, StoredMessage, Totals
from baton.core.redaction import strings_in
from baton.core.validation import (
    MessageInput,
    check_header,
    derive_title,
    message_text,
    validate_message,
)
from baton.render.document import EXPORT_FORMAT, EXPORT_VERSION
from baton.scanning import Pending
from baton.service import blobs
from baton.service.common import Ports, canonical, owned, read_chain, repo_of, time_or
from baton.store.base import source_key

PARALLEL_SCAN = 4 * 1024 * 1024  # an import this big is scanned on every core
# A source session imported again may have rewritten this many of its last messages.
REWRITTEN = 4


def export(p: Ports, owner: str, session_id: str, fmt: str = "json") -> str | JSON:
    """The session as json (re-importable), markdown, html (one self-contained page) or
    opencode (a file `opencode import` and `kilo import` take)."""
    from baton import render

    session = owned(p, owner, session_id)
    messages = read_chain(p, session.head, 0, None, True)
    return render.export(session, messages, fmt, p.now())


def imported_from(p: Ports, owner: str, source_id: str) -> Session | None:
    """The session of `owner` imported before from another tool's session `source_id`
    (its `metadata.source.session_id`), if any."""
    for session in p.store.iter_sessions():
        source = (session.metadata or {}).get("source") or {}
        if session.owner == owner and source.get("session_id") == source_id:
            return session
    return None


def import_document(
    p: Ports,
    owner: str,
    data: bytes | str | JSON,
    progress: Callable[[int, int], None] | None = None,
    *,
    fresh: bool = False,
) -> ImportResult:
    """Import a baton JSON export. Nothing is stored unless the whole file is valid.
    `progress(done, total)` is called as messages are checked. The same conversation
    imported twice is one session, unless `fresh` (a fork) asks for a new one."""
    doc = _parse_document(data)
    header = doc["session"]
    title = header.get("title") if isinstance(header.get("title"), str) else ""
    task = header.get("task") if isinstance(header.get("task"), str) else ""
    metadata = header.get("metadata") if isinstance(header.get("metadata"), dict) else {}
    git = header.get("git") if isinstance(header.get("git"), dict) else None
    check_header(title=title, task=task, metadata=metadata, git=git)
    blobs.check_git(p, owner, git)
    now = p.now()
    chain: list[StoredMessage] = []
    items: list[MessageInput] = []
    raws: list[JSON] = doc["messages"]
    total = len(raws)
    size = len(data) if isinstance(data, bytes | str) else PARALLEL_SCAN * (total > 500)
    scanned = _scan_raw(p, raws, size)  # in another process while this one works
    try:
        for i, raw in enumerate(raws):
            if not isinstance(raw, dict):
                raise InvalidInput(f"message {i + 1}: expected an object")
            body = {k: v for k, v in raw.items() if k not in ("id", "parent")}
            if "created_at" not in body:
                raise InvalidInput(f"message {i + 1}: created_at is missing")
            items.append(validate_message(body, now, i))
        for i, (raw, item) in enumerate(zip(raws, items, strict=True)):
            sm = link(chain[-1] if chain else None, item, [], canonical)
            if raw.get("id") not in (None, sm.message.id):
                raise InvalidInput(
                    f"message {i + 1}: id {raw.get('id')} does not match its content; "
                    "the file was changed or damaged"
                )
            if raw.get("parent", sm.message.parent) != sm.message.parent:
                raise InvalidInput(f"message {i + 1}: parent does not match the message before it")
            chain.append(sm)
            if progress is not None and (i % 200 == 0 or i + 1 == total):
                progress(i + 1, total)
    except BaseException:
        scanned.cancel()
        raise
    findings = scanned.get()
    blobs.check_references(p, owner, items)
    if any(findings):  # the secret pointers follow the findings
        found: list[StoredMessage] = []
        for sm, f in zip(chain, findings, strict=True):
            found.append(stored(sm.message, found[-1] if found else None, f))
        chain = found
    head = chain[-1] if chain else None
    key = source_key(metadata)
    origin = header.get("forked_from") if isinstance(header.get("forked_from"), dict) else None
    if origin is not None and key is not None and "session" not in origin:
        origin = _parent_of(p, owner, key[0], origin)
    if head is not None and not fresh:
        existing = p.store.find_session(owner, head.message.id)
        if existing is not None:  # the same conversation is already yours
            return ImportResult(existing, False, 0)
        earlier = p.store.find_imported(owner, key) if key is not None else None
        if earlier is not None:
            followed = _follow(p, owner, earlier, chain, items, title, metadata, origin)
            if followed is not None:
                return followed
    blobs.keep(p, items)
    blobs.grant(p, owner, items)
    given_id = header.get("id")
    session_id = ids.new_session_id()
    if isinstance(given_id, str) and ids.is_session_id(given_id) and not fresh:
        if p.store.get_session(given_id) is None:
            session_id = given_id
    status = header.get("status") if header.get("status") in STATUSES else "active"
    point = (origin or {}).get("message")
    # A fork keeps what it inherited: the totals of its fork point, when the file holds it.
    inherited = next((sm.totals for sm in chain if sm.message.id == point), Totals())
    session = Session(
        id=session_id,
        owner=owner,
        title=title
        or (
            derive_title(
                next((message_text(s.message.parts) for s in chain if s.message.role == "user"), "")
            )
        ),
        task=task,
        status=status,
        head=head.message.id if head else None,
        message_count=len(chain),
        created_at=time_or(header.get("created_at"), now),
        updated_at=now,
        version=1,
        metadata=metadata,
        git=git,
        platform="import",
        forked_from=origin,
        totals=head.totals if head else Totals(),
        repo=repo_of(git),
        title_auto=not title,
        inherited=inherited,
    )
    p.store.create_session(session, chain)
    blobs.keep(p, items)
    if key is not None and key[2] is None:
        _link_forks(p, owner, key, session.id)
    return ImportResult(session, True, len(chain))


def _parent_of(p: Ports, owner: str, tool: str, origin: JSON) -> JSON:
    """A fork's origin naming the source session it came from, with the baton session
    imported from that one when there is one."""
    parent = origin.get("source_session")
    if not isinstance(parent, str):
        return origin
    found = p.store.find_imported(owner, (tool, parent, None))
    return {**origin, "session": found.id} if found is not None else origin


def _link_forks(p: Ports, owner: str, key: tuple[str, str, str | None], session_id: str) -> None:
    """Forks of this source session imported before it (a Codex or Claude Code fork
    imported first) now name the baton session they came from."""
    for fork in p.store.imported_sessions(owner, key[1]):
        origin, its = fork.forked_from, source_key(fork.metadata)
        if (
            isinstance(origin, dict)
            and origin.get("source_session") == key[1]
            and "session" not in origin
            and its is not None
            and its[0] == key[0]
        ):
            p.store.update_session(
                fork.id, None, {"forked_from": {**origin, "session": session_id}}
            )


def _follow(
    p: Ports,
    owner: str,
    earlier: Session,
    chain: list[StoredMessage],
    items: list[MessageInput],
    title: str,
    metadata: JSON,
    origin: JSON | None,
) -> ImportResult | None:
    """The session imported before from the same source session, grown to `chain`: the
    messages after what it has in common with `chain` are appended. The source may have
    rewritten its last few messages since (a reply still being written, its token counts
    added on a later line): those are replaced. None when the two part earlier than that
    (the source was rewritten, or the session was continued in baton): the caller imports
    `chain` as a session of its own. A fork imported before from its own messages alone
    takes the history of its parent in front of them, once that is found."""
    shared = _shared(p, earlier, chain)
    if earlier.message_count - shared > REWRITTEN:
        if not _gained_history(p, earlier, chain, origin):
            return None
        shared = 0  # the whole chain: what it has in common with the stored one is stored
    tail = chain[shared:]
    if not tail:
        return ImportResult(earlier, False, 0)
    blobs.keep(p, items[shared:])
    blobs.grant(p, owner, items[shared:])
    changes: JSON = {"updated_at": p.now(), "metadata": metadata}
    if origin is not None and origin != earlier.forked_from:
        changes["forked_from"] = origin
    if title and title != earlier.title and not earlier.title_auto:
        changes["title"] = title  # the source's name for it changed (Claude Code /rename)
    elif title and earlier.title_auto:
        changes["title"], changes["title_auto"] = title, False
    session = p.store.append(earlier.id, earlier.head, tail, changes)
    blobs.keep(p, items[shared:])
    return ImportResult(session, False, len(tail))


def _gained_history(
    p: Ports, earlier: Session, chain: list[StoredMessage], origin: JSON | None
) -> bool:
    """Is `chain` the stored session's messages with its parent's history in front (the
    fork's `origin.messages`), and perhaps more after?"""
    start = (origin or {}).get("messages")
    if earlier.head is None or not isinstance(start, int) or isinstance(start, bool):
        return False
    if start <= 0 or start + earlier.message_count > len(chain):
        return False
    stored = p.store.chain(earlier.head)

    def content(message: Any) -> JSON:
        return {k: v for k, v in message.to_dict().items() if k not in ("id", "parent")}

    return all(
        content(m) == content(sm.message)
        for m, sm in zip(stored, chain[start : start + len(stored)], strict=True)
    )


def _shared(p: Ports, session: Session, chain: list[StoredMessage]) -> int:
    """How many leading messages of `chain` the session's chain has. Ids are content
    addressed over the whole history before them, so one id at the same depth on both says
    everything before it is the same: a binary search over depths."""
    if session.head is None:
        return 0
    count = min(session.message_count, len(chain))

    def same(n: int) -> bool:  # are the first n the same?
        return p.store.ancestor(session.head or "", n - 1) == chain[n - 1].message.id

    if count and same(count):
        return count
    low, high = 0, count  # same(low) holds, same(high) does not
    while high - low > 1:
        middle = (low + high) // 2
        if same(middle):
            low = middle
        else:
            high = middle
    return low


def _scan_raw(p: Ports, raws: Sequence[Any], size: int) -> Pending:
    """Start the scan of an import's messages as they arrived (their full payloads), in
    another process when there is much: it runs while this one checks and hashes."""
    texts: list[tuple[list[str], list[str]]] = [
        (strings_in(raw.get("parts")) if isinstance(raw, dict) else [], []) for raw in raws
    ]
    if size < PARALLEL_SCAN:
        scanner = p.scanner
        return Pending(lambda: [scanner.findings(a, b) for a, b in texts])
    return p.scanner.findings_many(texts)


def _parse_document(data: bytes | str | JSON) -> JSON:
    if isinstance(data, bytes | str):
        if not data.strip():
            raise InvalidInput("the file is empty")
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"not valid JSON ({exc}); is the file truncated?") from None
    else:
        doc = data
    if not isinstance(doc, dict) or doc.get("format") != EXPORT_FORMAT:
        raise InvalidInput(f'not a baton export (expected "format": "{EXPORT_FORMAT}")')
    if doc.get("version") != EXPORT_VERSION:
        raise InvalidInput(
            f"export version {doc.get('version')!r} is not supported (this baton reads "
            f"version {EXPORT_VERSION})"
        )
    if not isinstance(doc.get("session"), dict) or not isinstance(doc.get("messages"), list):
        raise InvalidInput("a baton export needs a session object and a messages list")
    return doc

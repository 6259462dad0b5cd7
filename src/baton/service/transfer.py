"""Export and import: a session as a file (json, markdown, html, opencode), and a baton JSON
export read back a batch at a time, stored all or nothing, once per conversation."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import ExitStack, suppress
from typing import Any

import orjson

from baton.contract import ImportResult
from baton.core import ids
from baton.core.chain import link, stored
from baton.core.errors import InvalidInput
from baton.core.ids import message_id
from baton.core.models import JSON, STATUSES, Session, StoredMessage, Totals, message_content
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
from baton.store.base import ImportPlan, batches, source_key

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
    `progress(done, total)` is called as messages are checked (total is the count so far
    when the messages come one at a time). The same conversation imported twice is one session, unless
    `fresh` (a fork) asks for a new one.

    The messages are checked, hashed, scanned and stored a batch at a time, in one
    transaction that ends when the header is read: a document's `messages` may be any
    iterable, and its `session` header may be completed as they are read (an importer
    reading a big file once), so a big import never holds more than a batch."""
    doc = _parse_document(data)
    raws: Iterable[Any] = doc["messages"]
    total = len(raws) if isinstance(raws, Sized) else 0
    size = len(data) if isinstance(data, bytes | str) else PARALLEL_SCAN * (total > 500)
    _read_header(p, owner, doc["session"])  # refused early when it can be
    reading = _Reading(p, raws, total, progress, doc["session"], size >= PARALLEL_SCAN)
    outcome: list[ImportResult] = []

    def finish() -> ImportPlan:
        plan, result = _plan(p, owner, doc["session"], reading, fresh)
        outcome.append(result)
        return plan

    try:
        with reading:
            moved = p.store.import_chain(reading.messages(), finish)
    except BaseException:
        # the payloads written for it, unless something else has them; the failure is told
        with suppress(Exception):
            blobs.free(p, sorted(reading.carried))
        raise
    result = outcome[0]
    if moved is not None:
        result = ImportResult(moved, result.created, result.messages)
        if result.created:
            key = source_key(moved.metadata)
            if key is not None and key[2] is None:
                _link_forks(p, owner, key, moved.id)
    return result


def _read_header(p: Ports, owner: str, header: JSON) -> tuple[str, str, JSON, JSON | None]:
    """Title, task, metadata and git of an import's header, checked."""
    title, task = header.get("title"), header.get("task")
    metadata, git = header.get("metadata"), header.get("git")
    title = title if isinstance(title, str) else ""
    task = task if isinstance(task, str) else ""
    metadata = metadata if isinstance(metadata, dict) else {}
    git = git if isinstance(git, dict) else None
    check_header(title=title, task=task, metadata=metadata, git=git)
    blobs.check_git(p, owner, git)
    return title, task, metadata, git


class _Reading:
    """An import's messages as they are read: checked, linked, scanned for secrets (unless the
    store leaves that for later: `findings.settle`) and their blobs written, a batch at a
    time; what the end needs is kept (ids, the first prompt,
    the totals at a fork point, the blobs carried and named), not the messages."""

    BATCH = 256

    def __init__(
        self,
        p: Ports,
        raws: Iterable[Any],
        total: int,
        progress: Callable[[int, int], None] | None,
        header: JSON,
        parallel: bool,
    ) -> None:
        self.p, self.raws, self.total, self.progress = p, raws, total, progress
        origin = header.get("forked_from")
        self.point = origin.get("message") if isinstance(origin, dict) else None
        self.parallel = parallel
        self.ids: list[str] = []
        self.last: StoredMessage | None = None  # the last stored
        self.prompt: str | None = None
        self.inherited = Totals()
        self.carried: set[str] = set()
        self.named: dict[str, int] = {}  # blob_refs not carried: sha -> first message
        self._linked: StoredMessage | None = None  # the last linked, its findings unknown
        self._stack = ExitStack()
        self._start: Callable[[list[list[str]]], Pending] | None = None
        self._scanned = 0

    def __enter__(self) -> _Reading:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _scan(self, texts: list[list[str]]) -> Pending:
        """A batch's findings: in worker processes once the import is big."""
        self._scanned += sum(len(t) for strings in texts for t in strings)
        if self._start is None and (self.parallel or self._scanned >= PARALLEL_SCAN):
            self._start = self._stack.enter_context(self.p.scanner.batches())
        if self._start is not None:
            return self._start(texts)
        scanner = self.p.scanner
        return Pending(lambda: [scanner.findings(strings) for strings in texts])

    def messages(self) -> Iterator[StoredMessage]:
        """The stored messages, each batch's yielded while the next one's are scanned."""
        waiting: tuple[list[StoredMessage], Pending] | None = None
        for batch in batches(self.raws, self.BATCH):
            linked = self._link(batch)
            if self.p.store.defers_scan:  # scanned before anything reads findings
                pending = Pending.ready([[] for _ in batch])
            else:
                pending = self._scan([strings_in(raw.get("parts")) for raw in batch])
            if waiting is not None:
                yield from self._finished(*waiting)
            waiting = (linked, pending)
        if waiting is not None:
            yield from self._finished(*waiting)

    def _link(self, batch: list[Any]) -> list[StoredMessage]:
        """Check a batch and link it after the messages before it, without findings yet."""
        now = self.p.now()
        items: list[MessageInput] = []
        start = len(self.ids)
        for i, raw in enumerate(batch, start):
            if not isinstance(raw, dict):
                raise InvalidInput(f"message {i + 1}: expected an object")
            body = {k: v for k, v in raw.items() if k not in ("id", "parent")}
            if "created_at" not in body:
                raise InvalidInput(f"message {i + 1}: created_at is missing")
            items.append(validate_message(body, now, i))
        linked: list[StoredMessage] = []
        parent = linked_last = self._linked
        for i, (raw, item) in enumerate(zip(batch, items, strict=True), start):
            sm = link(parent, item, [], canonical)
            if raw.get("id") not in (None, sm.message.id):
                raise InvalidInput(
                    f"message {i + 1}: id {raw.get('id')} does not match its content; "
                    "the file was changed or damaged"
                )
            if raw.get("parent", sm.message.parent) != sm.message.parent:
                raise InvalidInput(f"message {i + 1}: parent does not match the message before it")
            if self.prompt is None and item.role == "user":
                self.prompt = message_text(item.parts)
            for sha in sm.blobs:
                if sha not in item.blobs and sha not in self.carried:
                    self.named.setdefault(sha, i)
            self.carried.update(item.blobs)
            self.ids.append(sm.message.id)
            linked.append(sm)
            parent = linked_last = sm
            if self.progress is not None and (i % 200 == 0 or i + 1 == self.total):
                self.progress(i + 1, max(self.total, i + 1))
        blobs.keep(self.p, items)  # before the rows that name them (under the blob lock)
        self._linked = linked_last
        return linked

    def _finished(self, linked: list[StoredMessage], pending: Pending) -> Iterator[StoredMessage]:
        """The batch as stored: with its findings, and each message's pointer to the last
        flagged message before it."""
        findings = pending.get()
        if any(findings) or (self.last is not None and self.last.flagged is not None):
            parent = self.last
            out = []
            for sm, found in zip(linked, findings, strict=True):
                parent = stored(sm.message, parent, found)
                out.append(parent)
            linked = out
        for sm in linked:
            if sm.message.id == self.point:
                self.inherited = sm.totals
        self.last = linked[-1]
        yield from linked


def _plan(
    p: Ports, owner: str, header: JSON, reading: _Reading, fresh: bool
) -> tuple[ImportPlan, ImportResult]:
    """Once every message is in: what the import does, and what it answers."""
    title, task, metadata, git = _read_header(p, owner, header)
    _check_named(p, owner, reading)
    now = p.now()
    head = reading.last
    count = len(reading.ids)
    grant = (owner, sorted(reading.carried), now)
    key = source_key(metadata)
    origin = header.get("forked_from") if isinstance(header.get("forked_from"), dict) else None
    if origin is not None and key is not None and "session" not in origin:
        origin = _parent_of(p, owner, key[0], origin)
    if head is not None and not fresh:
        existing = p.store.find_session(owner, head.message.id)
        if existing is not None:  # the same conversation is already yours
            return ImportPlan(), ImportResult(existing, False, 0)
        earlier = p.store.find_imported(owner, key) if key is not None else None
        if earlier is not None:
            followed = _follow(p, earlier, reading, title, metadata, origin)
            if followed is not None:
                changes, shared = followed
                if shared == count:
                    return ImportPlan(), ImportResult(earlier, False, 0)
                plan = ImportPlan(append=(earlier.id, earlier.head, head, changes), grant=grant)
                return plan, ImportResult(earlier, False, count - shared)
    given_id = header.get("id")
    session_id = ids.new_session_id()
    if isinstance(given_id, str) and ids.is_session_id(given_id) and not fresh:
        if p.store.get_session(given_id) is None:
            session_id = given_id
    status = str(header["status"]) if header.get("status") in STATUSES else "active"
    session = Session(
        id=session_id,
        owner=owner,
        title=title or derive_title(reading.prompt or ""),
        task=task,
        status=status,
        head=head.message.id if head else None,
        message_count=count,
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
        # A fork keeps what it inherited: the totals of its fork point, when the file holds it.
        inherited=reading.inherited,
    )
    return ImportPlan(create=session, grant=grant), ImportResult(session, True, count)


def _check_named(p: Ports, owner: str, reading: _Reading) -> None:
    """Every blob_ref the file names without carrying its bytes is one of the caller's (see
    `blobs.check_references`)."""
    named = {sha: i for sha, i in reading.named.items() if sha not in reading.carried}
    if not named:
        return
    allowed = p.store.blob_access(owner, sorted(named))
    for sha, i in sorted(named.items(), key=lambda kv: kv[1]):
        if sha not in allowed:
            raise InvalidInput(
                f"message {i + 1}: blob {sha} is not one of yours; send its content, or "
                f"upload it first (POST /api/blobs/{sha})"
            )


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
    earlier: Session,
    reading: _Reading,
    title: str,
    metadata: JSON,
    origin: JSON | None,
) -> tuple[JSON, int] | None:
    """The session imported before from the same source session, grown to the messages
    just read: the changes to its header, and how many messages the two have in common
    (the rest are appended). The source may have rewritten its last few messages since (a
    reply still being written, its token counts added on a later line): those are replaced.
    None when the two part earlier than that (the source was rewritten, or the session was
    continued in baton): the caller imports the messages as a session of its own. A fork
    imported before from its own messages alone takes the history of its parent in front of
    them, once that is found."""
    shared = _shared(p, earlier, reading.ids)
    if earlier.message_count - shared > REWRITTEN:
        if not _gained_history(p, earlier, reading.ids, origin):
            return None
        shared = 0  # the whole chain: what it has in common with the stored one is stored
    changes: JSON = {"updated_at": p.now(), "metadata": metadata}
    if origin is not None and origin != earlier.forked_from:
        changes["forked_from"] = origin
    if title and title != earlier.title and not earlier.title_auto:
        changes["title"] = title  # the source's name for it changed (Claude Code /rename)
    elif title and earlier.title_auto:
        changes["title"], changes["title_auto"] = title, False
    return changes, shared


def _gained_history(p: Ports, earlier: Session, chain: list[str], origin: JSON | None) -> bool:
    """Are the messages just read (their ids, `chain`) the stored session's messages with
    its parent's history in front (the fork's `origin.messages`), and perhaps more after?
    The stored messages, linked after the new chain's message before them, must give the
    new chain's ids: the same content after the same history."""
    start = (origin or {}).get("messages")
    if earlier.head is None or not isinstance(start, int) or isinstance(start, bool):
        return False
    if start <= 0 or start + earlier.message_count > len(chain):
        return False
    parent = chain[start - 1]
    for position, m in enumerate(p.store.chain(earlier.head), start):
        content = message_content(parent, m.role, m.parts, m.created_at, m.model, m.usage)
        parent = message_id(content)
        if parent != chain[position]:
            return False
    return True


def _shared(p: Ports, session: Session, chain: list[str]) -> int:
    """How many leading messages of `chain` (ids) the session's chain has. Ids are content
    addressed over the whole history before them, so one id at the same depth on both says
    everything before it is the same: a binary search over depths."""
    if session.head is None:
        return 0
    count = min(session.message_count, len(chain))

    def same(n: int) -> bool:  # are the first n the same?
        return p.store.ancestor(session.head or "", n - 1) == chain[n - 1]

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
    if not isinstance(doc.get("session"), dict) or not isinstance(
        doc.get("messages"), list | Iterator
    ):
        raise InvalidInput("a baton export needs a session object and a messages list")
    return doc

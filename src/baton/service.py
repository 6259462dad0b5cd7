"""The use cases over a Store: the one place where baton's rules live."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson

from baton.accounts import Accounts
from baton.core import ids
from baton.core.chain import link, stored, verify_chain
from baton.core.errors import (
    Conflict,
    Gone,
    InvalidInput,
    LiveShares,
    NotFound,
    SecretsFound,
)
from baton.core.models import (
    JSON,
    PLATFORMS,
    STATUSES,
    Account,
    Message,
    Session,
    Share,
    StoredMessage,
    Totals,
    format_time,
    parse_time,
    utcnow,
)
from baton.core.redaction import mask, redact_value, strings_in
from baton.core.validation import (
    MessageInput,
    check_header,
    derive_title,
    hydrate_part,
    validate_message,
)
from baton.render.document import EXPORT_FORMAT, EXPORT_VERSION
from baton.scanning import Pending, SecretScanner
from baton.store.base import (
    Answered,
    BlobStore,
    ListQuery,
    Page,
    Remembered,
    Remembering,
    Store,
    git_blobs,
    idempotency_cutoff,
)

ANY_HEAD = object()  # append at whatever the head is, retrying on conflict
SHARE_MODES = ("block", "redact", "allow")
_DURATION = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_EXPIRY = timedelta(days=36500)  # a share or token lives at most about 100 years
MAX_POSITION = 2**62  # no chain is this long: a page from here on is empty
BLOB_GRACE_SECONDS = 3600.0
GIT_PATCH = "git patch"
GIT_BUNDLE = "git bundle"
PARALLEL_SCAN = 4 * 1024 * 1024  # an import this big is scanned on every core
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, as Stripe's


def canonical(value: Any) -> bytes:
    """Canonical JSON by orjson, for message ids: the bytes of `core.ids.canonical_json`
    (Python's json with sorted keys, no spaces, UTF-8), several times faster, for values whose
    floats are all `plain_float` (validation says so in `MessageInput.plain_numbers`;
    `chain.link` asks)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, TypeError):  # beyond what orjson writes (a huge int…)
        return ids.canonical_json(value)


def parse_duration(text: str) -> timedelta:
    """`30m`, `12h`, `7d`, `2w`; at most MAX_EXPIRY."""
    match = _DURATION.match(text.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise InvalidInput(f"expiry {text!r} is not a duration like 30m, 12h, 7d or 2w")
    try:
        duration = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError:
        duration = timedelta.max
    if duration > MAX_EXPIRY:
        raise InvalidInput(f"expiry {text!r} is too far ahead; at most {MAX_EXPIRY.days}d")
    return duration


@dataclass(frozen=True)
class AppendResult:
    session: Session
    appended: list[Message]  # the messages this call added (empty when all were stored)


@dataclass(frozen=True)
class ImportResult:
    session: Session
    created: bool
    messages: int


@dataclass
class VerifyReport:
    sessions: int = 0
    shares: int = 0
    messages: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> JSON:
        return {**dataclasses.asdict(self), "ok": self.ok}

    def check_chain(self, store: Store, name: str, head: str | None, count: int) -> list[Message]:
        """Read the chain ending at `head` and note what is wrong with it: unreadable, not
        `count` messages long, its head missing, a message that does not hash to its id or
        link to the one before. Returns what was read."""
        try:
            chain = store.chain(head) if head else []
        except Exception as exc:  # a damaged row reports, it does not stop the check
            self.problems.append(f"{name}: cannot be read ({type(exc).__name__}: {exc})")
            return []
        self.messages += len(chain)
        if len(chain) != count:
            self.problems.append(f"{name}: holds {len(chain)} messages, header says {count}")
        if head is not None and (not chain or chain[-1].id != head):
            self.problems.append(f"{name}: head {head} is missing")
        self.problems.extend(f"{name}: {p}" for p in verify_chain(chain))
        return chain


class Service:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        *,
        scanner: SecretScanner | None = None,
        base_url: str = "http://127.0.0.1:8765",
        clock: Callable[[], str] = utcnow,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.scanner = scanner or SecretScanner()
        self.base_url = base_url.rstrip("/")
        self.now = clock
        self.accounts = Accounts(store, lambda: self.now())

    # accounts
    def account(self, handle: str, display_name: str | None = None) -> Account:
        """The account with this handle, created on first use (local mode's owner)."""
        found = self.store.find_account(handle)
        if found:
            return found
        account = Account(ids.new_account_id(), handle, display_name or handle, self.now())
        try:
            self.store.add_account(account)
        except Exception:
            again = self.store.find_account(handle)  # another process created it first
            if again is None:
                raise
            return again
        return account

    # sessions
    def create(
        self,
        owner: str,
        *,
        title: str | None = None,
        task: str = "",
        metadata: JSON | None = None,
        git: JSON | None = None,
        platform: str = "cli",
        repo: str | None = None,
    ) -> Session:
        if platform not in PLATFORMS:
            raise InvalidInput(f"platform must be one of {', '.join(sorted(PLATFORMS))}")
        check_header(title=title, task=task, metadata=metadata, git=git)
        self._check_git(owner, git)
        now = self.now()
        session = Session(
            id=ids.new_session_id(),
            owner=owner,
            title=(title or "").strip(),
            task=task,
            status="active",
            head=None,
            message_count=0,
            created_at=now,
            updated_at=now,
            version=1,
            metadata=metadata or {},
            git=git,
            platform=platform,
            repo=repo or _repo_of(git),
            title_auto=not title,
        )
        self.store.create_session(session)
        return session

    def get(self, owner: str, session_id: str) -> Session:
        session = self.store.get_session(session_id)
        if session is None or session.owner != owner:
            raise NotFound(f"no session {session_id}")
        return session

    def messages(
        self,
        owner: str,
        session_id: str,
        *,
        start: int = 0,
        limit: int | None = None,
        hydrate: bool = False,
    ) -> list[Message]:
        session = self.get(owner, session_id)
        return self._chain(session.head, start, limit, hydrate)

    def _chain(
        self, head: str | None, start: int, limit: int | None, hydrate: bool
    ) -> list[Message]:
        if start < 0 or (limit is not None and limit < 0):
            raise InvalidInput("start and limit must not be negative")
        if head is None or start >= MAX_POSITION:
            return []
        chain = self.store.chain(head, start, None if limit is None else min(limit, MAX_POSITION))
        return [self.hydrate(m) for m in chain] if hydrate else chain

    def after(self, head: str | None, after: str | None, source: str) -> int:
        """The position just past message `after` in the chain ending at `head` (0 for None)."""
        if after is None:
            return 0
        found = self.store.get_messages([after]).get(after)
        if head is None or found is None or self.store.ancestor(head, found.depth) != after:
            raise NotFound(f"message {after} is not in {source}")
        return found.depth + 1

    def blob(
        self,
        owner: str | None,
        sha256: str,
        *,
        session_id: str | None = None,
        share_id: str | None = None,
    ) -> bytes:
        """A blob, read through a session of the caller's or a live share whose conversation
        references it. Anything else is 404, whether or not the blob exists."""
        if session_id is not None and owner is not None:
            session = self.get(owner, session_id)
            head, git = session.head, session.git
        elif share_id is not None:
            share = self.public_share(share_id)
            head, git = share.head, share.git
        else:
            raise NotFound(f"no blob {sha256}")
        if sha256 in git_blobs(git):  # the session's git patch or bundle
            data = self.blobs.get(sha256)
            if data is not None:
                return data
        for sm in self.store.messages_with_blob(sha256) if head else []:
            if self.store.ancestor(head, sm.depth) == sm.message.id:  # type: ignore[arg-type]
                data = self.blobs.get(sha256)
                if data is not None:
                    return data
        raise NotFound(f"no blob {sha256}")

    def put_blob(self, sha256: str, data: bytes, owner: str | None = None) -> None:
        """Store a blob; `owner` may then reference it (in messages or a git snapshot)."""
        if ids.sha256_hex(data) != sha256:
            raise InvalidInput(f"the body does not hash to {sha256}")
        self.blobs.put(sha256, data)
        if owner is not None:
            self.store.grant_blobs(owner, [sha256], self.now())

    def _check_references(self, owner: str, items: Sequence[MessageInput]) -> None:
        """Every blob_ref a caller sends names a blob it holds: uploaded by it, with its bytes
        in this request, or referenced by one of its sessions. Any other is refused, with the
        same answer whether or not the blob exists, and nothing is stored."""
        given = {sha for item in items for sha in item.blobs}
        named = [
            (i, part["sha256"])
            for i, item in enumerate(items)
            for part in item.parts
            if part.get("type") == "blob_ref" and part["sha256"] not in given
        ]
        if not named:
            return
        allowed = self.store.blob_access(owner, sorted({sha for _, sha in named}))
        for i, sha in named:
            if sha not in allowed:
                raise InvalidInput(
                    f"message {i + 1}: blob {sha} is not one of yours; send its content, or "
                    f"upload it first (POST /api/blobs/{sha})"
                )

    def _check_git(self, owner: str, git: JSON | None) -> None:
        """A git snapshot names only patches and bundles the caller holds (see
        _check_references)."""
        shas = git_blobs(git)
        if not shas:
            return
        allowed = self.store.blob_access(owner, shas)
        for key in ("patch", "bundle"):
            sha = git_blobs({key: (git or {}).get(key)})
            if sha and sha[0] not in allowed:
                raise InvalidInput(
                    f"git.{key}: blob {sha[0]} is not one of yours; upload it first "
                    f"(POST /api/blobs/{sha[0]})"
                )

    def _grant(self, owner: str, items: Sequence[MessageInput]) -> None:
        """The payloads a caller sent in full are theirs to reference later."""
        shas = sorted({sha for item in items for sha in item.blobs})
        if shas:
            self.store.grant_blobs(owner, shas, self.now())

    def hydrate(self, message: Message) -> Message:
        """The message with every offloaded payload read back from the blob store."""
        if not any(p.get("type") == "blob_ref" and "of" in p for p in message.parts):
            return message
        parts = []
        for part in message.parts:
            if part.get("type") == "blob_ref" and "of" in part:
                data = self.blobs.get(part["sha256"])
                if data is None:
                    raise NotFound(f"blob {part['sha256']} of message {message.id} is missing")
                try:
                    parts.append(hydrate_part(part, data))
                except InvalidInput:  # not what its blob_ref says: left as the reference
                    parts.append(part)
            else:
                parts.append(part)
        return dataclasses.replace(message, parts=parts)

    def append(
        self,
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
        current = self.get(owner, session_id)  # nothing is written for a session not yours
        if idempotency_key is None:
            return self._append(owner, current, messages, expected_head, retries)
        if not _IDEMPOTENCY_KEY.match(idempotency_key):
            raise InvalidInput("an Idempotency-Key is 1 to 255 printable ASCII characters")
        request = {"messages": list(messages)}
        if expected_head is not ANY_HEAD:
            request["expected_head"] = expected_head
        try:
            digest = ids.sha256_hex(canonical(request))
        except (TypeError, ValueError):
            digest = ids.sha256_hex(repr(request).encode())
        kept = self.store.recall(session_id, idempotency_key, idempotency_cutoff(self.now()))
        if kept is None:
            # The answer is kept in the append's own transaction: a retry racing the first
            # request waits for it, then is answered as it was.
            key = (idempotency_key, digest)
            try:
                result = self._append(owner, current, messages, expected_head, retries, key)
            except Answered as raced:
                kept = raced.answer
            else:
                if result.appended:
                    return result
                # nothing was written (the messages had landed): keep the answer on its own
                answer = _answer(digest, result)
                kept = self.store.remember(session_id, idempotency_key, answer, self.now())
                if kept == answer:
                    return result
        if kept.request != digest:
            raise InvalidInput(
                f"Idempotency-Key {idempotency_key!r} was used for a different request to "
                "this session; send a new key with a new request"
            )
        return _replay(kept)

    def _append(
        self,
        owner: str,
        current: Session,
        messages: Sequence[Any],
        expected_head: Any,
        retries: int,
        key: tuple[str, str] | None = None,
    ) -> AppendResult:
        session_id = current.id
        now = self.now()
        inputs = [validate_message(raw, now, i) for i, raw in enumerate(messages)]
        first = messages[0]
        if expected_head is ANY_HEAD and isinstance(first, dict) and "parent" in first:
            # A message that names its parent goes after that parent or nowhere, so a retry
            # of messages that already landed is a no-op, not an error or a duplicate.
            if first["parent"] is not None and not isinstance(first["parent"], str):
                raise InvalidInput("message 1: parent must be a message id or null")
            expected_head = first["parent"]
        self._check_references(owner, inputs)
        findings = [self._scan(item) for item in inputs]
        self._keep_blobs(inputs)
        self._grant(owner, inputs)
        for attempt in range(retries + 1):
            session = current if attempt == 0 else self.get(owner, session_id)
            base = session.head if expected_head is ANY_HEAD else expected_head
            try:
                result = self._append_at(session, base, inputs, findings, messages, key)
            except Conflict:
                if expected_head is not ANY_HEAD:
                    raise
                continue
            self._keep_blobs(inputs)
            return result
        raise Conflict("the session kept moving; try again", self.get(owner, session_id).head)

    def _append_at(
        self,
        session: Session,
        base: str | None,
        inputs: list[MessageInput],
        findings: list[list[JSON]],
        raw: Sequence[Any],
        key: tuple[str, str] | None = None,
    ) -> AppendResult:
        parent: StoredMessage | None = None
        if base is not None:
            parent = self.store.get_messages([base]).get(base)
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
        changes: JSON = {"updated_at": self.now()}
        if session.title_auto and not session.title:
            for sm in chain:
                if sm.message.role == "user" and sm.text.strip():
                    changes["title"] = derive_title(sm.text)
                    break
        appended = [sm.message for sm in chain]
        remember = None
        if key is not None:
            digest = key[1]
            remember = Remembering(
                key[0], lambda s: _answer(digest, AppendResult(s, appended)), self.now()
            )
        updated = self.store.append(session.id, base, chain, changes, remember)
        return AppendResult(updated, appended)

    def _scan(self, item: MessageInput) -> list[JSON]:
        extra = [data.decode("utf-8", "replace") for data in item.blobs.values()]
        return self.scanner.findings(item.parts, extra)

    def _scan_raw(self, raws: Sequence[Any], size: int) -> Pending:
        """Start the scan of an import's messages as they arrived (their full payloads), in
        another process when there is much: it runs while this one checks and hashes."""
        texts: list[tuple[list[str], list[str]]] = [
            (strings_in(raw.get("parts")) if isinstance(raw, dict) else [], []) for raw in raws
        ]
        if size < PARALLEL_SCAN:
            return Pending(lambda: [self.scanner.findings(a, b) for a, b in texts])
        return self.scanner.findings_many(texts)

    def update(
        self,
        owner: str,
        session_id: str,
        *,
        expected_version: int | None = None,
        title: str | None = None,
        task: str | None = None,
        status: str | None = None,
        metadata: JSON | None = None,
        git: JSON | None = None,
    ) -> Session:
        self.get(owner, session_id)
        check_header(title=title, task=task, metadata=metadata, git=git)
        changes: JSON = {}
        if title is not None:
            if not title.strip():
                raise InvalidInput("a title cannot be empty")
            changes.update(title=" ".join(title.split()), title_auto=False)
        if task is not None:
            changes["task"] = task
        if status is not None:
            if status not in STATUSES:
                raise InvalidInput(f"status must be one of {', '.join(sorted(STATUSES))}")
            changes["status"] = status
        if metadata is not None:
            changes["metadata"] = metadata
        if git is not None:
            self._check_git(owner, git)
            changes.update(git=git, repo=_repo_of(git))
        if not changes:
            raise InvalidInput("nothing to change")
        changes["updated_at"] = self.now()
        before = self.get(owner, session_id).git
        updated = self.store.update_session(session_id, expected_version, changes)
        if git is not None:
            self._free([sha for sha in git_blobs(before) if sha not in git_blobs(git)])
        return updated

    def snapshot(self, owner: str, session_id: str, git: JSON) -> tuple[Session, bool]:
        """Record a new git snapshot; an unchanged state (same `state` hash) records nothing.
        Returns the session and whether it changed."""
        session = self.get(owner, session_id)
        current = session.git or {}
        if current.get("state") is not None and current.get("state") == git.get("state"):
            return session, False
        return self.update(owner, session_id, git=git), True

    def rename(self, owner: str, session_id: str, title: str) -> Session:
        return self.update(owner, session_id, title=title)

    def delete(self, owner: str, session_id: str, *, revoke_shares: bool = False) -> list[str]:
        """Delete a session and everything nothing else reaches. Returns revoked share ids."""
        self.get(owner, session_id)
        now = self.now()
        live = [s for s in self.store.list_shares(session_id=session_id) if s.state(now) == "live"]
        if live and not revoke_shares:
            raise LiveShares(
                f"{len(live)} live share(s) still expose this session: "
                f"{', '.join(s.id for s in live)}; revoke them first or pass --revoke-shares",
                [s.id for s in live],
            )
        for share in live:
            self.store.revoke_share(share.id, now)
        session = self.get(owner, session_id)
        freed = self.store.delete_session(session_id, now)
        self._free([*freed, *git_blobs(session.git)])
        return [s.id for s in live]

    def _free(self, shas: Sequence[str]) -> list[str]:
        """Delete blob files that nothing references any more (checked under the write lock)."""

        def delete(doomed: list[str]) -> None:
            for sha in doomed:
                self.blobs.delete(sha)

        return self.store.release_blobs(shas, delete)

    def _keep_blobs(self, items: Sequence[MessageInput]) -> None:
        """Blobs are written before the messages that reference them commit, and again after:
        a concurrent delete that freed the same content in between cannot leave an
        acknowledged message without its payload."""
        for item in items:
            for sha, data in item.blobs.items():
                self.blobs.put(sha, data)

    # sharing
    def share_url(self, share_id: str) -> str:
        return f"{self.base_url}/share/{share_id}"

    def scan_session(self, owner: str, session_id: str, *, code: bool = True) -> list[JSON]:
        """What a share of this session would be refused for: each finding with where it is."""
        session = self.get(owner, session_id)
        return [f for f, _ in self._share_findings(session, code)]

    def _share_findings(
        self, session: Session, code: bool = True
    ) -> list[tuple[JSON, dict[str, str]]]:
        """Every secret in what a share publishes: the header, the messages (hydrated), and
        with `code` the git patch and every commit, file and file name of the git bundle."""
        found: list[tuple[JSON, dict[str, str]]] = []
        header = {
            "title": session.title,
            "task": session.task,
            "metadata": session.metadata,
            "git": session.git,
        }
        for name, value in header.items():
            secrets = self.scanner.find(value)
            for secret, kind in secrets.items():
                found.append(
                    ({"where": name, "kind": kind, "excerpt": mask(secret)}, {secret: kind})
                )
        patch = (session.git or {}).get("patch") if code else None
        if isinstance(patch, dict) and isinstance(patch.get("sha256"), str):
            data = self.blobs.get(patch["sha256"])
            text = data.decode("utf-8", "replace") if data else ""
            for secret, kind in self.scanner.find(text).items():
                found.append(
                    ({"where": GIT_PATCH, "kind": kind, "excerpt": mask(secret)}, {secret: kind})
                )
        if code:
            found.extend(self._bundle_findings(session.git))
        if session.head is None:
            return found
        for sm in self.store.flagged(session.head):
            full = self.hydrate(sm.message)
            secrets = self.scanner.find(full.parts)
            if not secrets:
                # Found when it was recorded (say, with an environment variable that this
                # process lacks): it still blocks, but it cannot be redacted automatically.
                for f in sm.findings:
                    found.append(
                        (
                            {
                                "where": f"message {sm.depth + 1}",
                                "message": sm.message.id,
                                "position": sm.depth + 1,
                                "kind": f["kind"],
                                "excerpt": f["excerpt"],
                                "redactable": False,
                            },
                            {},
                        )
                    )
            for secret, kind in secrets.items():
                found.append(
                    (
                        {
                            "where": f"message {sm.depth + 1}",
                            "message": sm.message.id,
                            "position": sm.depth + 1,
                            "kind": kind,
                            "excerpt": mask(secret),
                        },
                        {secret: kind},
                    )
                )
        return found

    def _bundle_findings(self, git: JSON | None) -> list[tuple[JSON, dict[str, str]]]:
        """The secrets in the commits of the session's git bundle, each once, where it first
        appears (`git bundle: commit abc1234 (config.py)`). A bundle that cannot be read is
        a finding too: what is not scanned is not published."""
        from baton import gitstate

        bundle = (git or {}).get("bundle")
        if not isinstance(bundle, dict) or not isinstance(bundle.get("sha256"), str):
            return []
        data = self.blobs.get(bundle["sha256"])
        try:
            texts = gitstate.bundle_texts(data) if data is not None else []
        except InvalidInput as exc:
            unread: JSON = {
                "where": GIT_BUNDLE,
                "kind": "unscanned bundle",
                "excerpt": exc.message,
                "redactable": False,
            }
            return [(unread, {})]
        found: list[tuple[JSON, dict[str, str]]] = []
        seen: set[str] = set()
        for where, text in texts:
            for secret, kind in self.scanner.find(text).items():
                if secret not in seen:
                    seen.add(secret)
                    finding = {
                        "where": f"{GIT_BUNDLE}: {where}",
                        "kind": kind,
                        "excerpt": mask(secret),
                    }
                    found.append((finding, {secret: kind}))
        # A file name can be the secret: where it was found is said without it.
        secrets = {s: k for _, one in found for s, k in one.items()}
        return [({**f, "where": redact_value(f["where"], secrets)}, s) for f, s in found]

    def share(
        self,
        owner: str,
        session_id: str,
        *,
        expires: str | timedelta | None = None,
        mode: str = "block",
        code: bool = True,
    ) -> Share:
        """Freeze the session's head as a public, read-only share (DESIGN §1, §7). With
        `code` false the git patch and bundle are not published (nor scanned); under
        `redact` a patch or bundle with secrets is left out and the share says so."""
        if mode not in SHARE_MODES:
            raise InvalidInput(f"mode must be one of {', '.join(SHARE_MODES)}")
        session = self.get(owner, session_id)
        account = self.store.get_account(owner)
        if account is None:
            raise NotFound(f"no account {owner}")
        if isinstance(expires, str):
            expires = parse_duration(expires)
        now = self.now()
        expires_at = format_time(parse_time(now) + expires) if expires else None
        found = [] if mode == "allow" else self._share_findings(session, code)
        if found and mode == "block":
            in_code = all(_in_code(f) for f, _ in found)
            raise SecretsFound(
                f"this session holds {len(found)} secret(s); nothing was shared. "
                "Remove them, or share with --redact (or --allow-secrets"
                f"{', or --no-code' if in_code else ''})",
                [f for f, _ in found],
            )
        if mode == "redact" and any(not s and not _in_code(f) for f, s in found):
            raise SecretsFound(
                "some secrets were found when the messages were recorded but cannot be located "
                "now (set the same environment variables, or remove them); nothing was shared",
                [f for f, _ in found],
            )
        secrets: dict[str, str] = {}
        for _, s in found:
            secrets.update(s)
        head = session.head
        copies, items = self._redacted_copies(session, secrets)
        if copies:
            head = copies[-1].message.id
        head_totals = copies[-1].totals if copies else session.totals
        share = Share(
            id=ids.new_share_id(),
            session_id=session.id,
            owner=owner,
            shared_by={
                "account": account.id,
                "handle": account.handle,
                "display_name": account.display_name,
            },
            head=head,
            message_count=session.message_count,
            title=redact_value(session.title, secrets) or "Untitled session",
            task=redact_value(session.task, secrets),
            metadata=redact_value(session.metadata, secrets),
            git=_public_git(session.git, secrets, found, mode, code),
            created_at=now,
            expires_at=expires_at,
            redacted=[f for f, _ in found],
            totals=head_totals,
        )
        self.store.create_share(share, copies)
        self._keep_blobs(items)
        return share

    def _redacted_copies(
        self, session: Session, secrets: dict[str, str]
    ) -> tuple[list[StoredMessage], list[MessageInput]]:
        """Copies of every message from the first one with a secret to the head, secrets
        replaced. The prefix before it is shared as it is, not copied. The first one is the
        first flagged when it was recorded, or an earlier one that holds a secret found
        now (elsewhere: in the header, the code, or with another environment)."""
        if not secrets or session.head is None:
            return [], []
        flagged = self.store.flagged(session.head)
        end = flagged[0].depth if flagged else None
        chain = self.store.chain(session.head, 0, end)  # the prefix that was not flagged
        start = next(
            (i for i, m in enumerate(chain) if _holds(self.hydrate(m).parts, secrets)), end
        )
        if start is None:
            return [], []
        parent = None
        if start > 0:
            parent_id = chain[start - 1].id
            parent = self.store.get_messages([parent_id])[parent_id]
        copies: list[StoredMessage] = []
        items: list[MessageInput] = []
        now = self.now()
        for message in self.store.chain(session.head, start):
            full = self.hydrate(message)
            raw: JSON = {
                "role": full.role,
                "parts": redact_value(full.parts, secrets),
                "created_at": full.created_at,
            }
            if full.model is not None:
                raw["model"] = full.model
            if full.usage is not None:
                raw["usage"] = full.usage
            item = validate_message(raw, now)
            items.append(item)
            copies.append(link(copies[-1] if copies else parent, item, [], canonical))
        self._keep_blobs(items)
        return copies, items

    def revoke(self, owner: str, share_id: str) -> Share:
        share = self.store.get_share(share_id)
        if share is None or share.owner != owner:
            raise NotFound(f"no share {share_id}")
        return self.store.revoke_share(share_id, self.now())

    def shares(self, owner: str, session_id: str | None = None) -> list[Share]:
        if session_id is not None:
            self.get(owner, session_id)
        return self.store.list_shares(owner=owner, session_id=session_id)

    def live_shares(self, owner: str, session_id: str) -> list[Share]:
        """The shares of one of my sessions that still answer."""
        now = self.now()
        return [s for s in self.shares(owner, session_id) if s.state(now) == "live"]

    def public_share(self, share_id: str) -> Share:
        """A share as anyone with the link sees it: 404 unknown, 410 revoked or expired."""
        share = self.store.get_share(share_id)
        if share is None:
            raise NotFound(f"no share {share_id}")
        state = share.state(self.now())
        if state != "live":
            raise Gone(f"share {share_id} was {state}")
        return share

    def share_messages(
        self, share_id: str, *, start: int = 0, limit: int | None = None, hydrate: bool = False
    ) -> list[Message]:
        share = self.public_share(share_id)
        return self._chain(share.head, start, limit, hydrate)

    # forks
    def fork(
        self, owner: str, source: str, *, at: str | None = None, platform: str = "cli"
    ) -> Session:
        """A new session of `owner` whose head is the share's (or own session's) head, or the
        earlier message `at`. O(1): the conversation is shared, not copied."""
        source = share_id_from(source)
        origin: JSON
        if ids.is_session_id(source):
            src = self.get(owner, source)
            head, title, task, metadata, git = src.head, src.title, src.task, src.metadata, src.git
            origin = {"session": src.id}
        else:
            share = self.public_share(source)
            head, title, task = share.head, share.title, share.task
            metadata, git = share.metadata, share.git
            origin = {"share": share.id}
        if at is not None:
            if head is None:
                raise NotFound(f"message {at} is not in {source}")
            target = self.store.get_messages([at]).get(at)
            if target is None or self.store.ancestor(head, target.depth) != at:
                raise NotFound(f"message {at} is not in {source}")
            head = at
        top = self.store.get_messages([head]).get(head) if head else None
        now = self.now()
        session = Session(
            id=ids.new_session_id(),
            owner=owner,
            title=title,
            task=task,
            status="active",
            head=head,
            message_count=top.depth + 1 if top else 0,
            created_at=now,
            updated_at=now,
            version=1,
            metadata=dict(metadata),
            git=git,
            platform=platform,
            forked_from={**origin, "message": head},
            totals=top.totals if top else Totals(),
            repo=_repo_of(git),
            title_auto=not title,
        )
        self.store.create_session(session)
        return session

    # export and import
    def export(self, owner: str, session_id: str, fmt: str = "json") -> str | JSON:
        """The session as json (re-importable), markdown, html (one self-contained page) or
        opencode (a file `opencode import` and `kilo import` take)."""
        from baton import render

        session = self.get(owner, session_id)
        messages = self._chain(session.head, 0, None, hydrate=True)
        return render.export(session, messages, fmt, self.now())

    def import_document(
        self,
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
        self._check_git(owner, git)
        now = self.now()
        chain: list[StoredMessage] = []
        items: list[MessageInput] = []
        raws: list[JSON] = doc["messages"]
        total = len(raws)
        size = len(data) if isinstance(data, bytes | str) else PARALLEL_SCAN * (total > 500)
        scanned = self._scan_raw(raws, size)  # in another process while this one works
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
                    raise InvalidInput(
                        f"message {i + 1}: parent does not match the message before it"
                    )
                chain.append(sm)
                if progress is not None and (i % 200 == 0 or i + 1 == total):
                    progress(i + 1, total)
        except BaseException:
            scanned.cancel()
            raise
        findings = scanned.get()
        self._check_references(owner, items)
        if any(findings):  # the secret pointers follow the findings
            found: list[StoredMessage] = []
            for sm, f in zip(chain, findings, strict=True):
                found.append(stored(sm.message, found[-1] if found else None, f))
            chain = found
        head = chain[-1] if chain else None
        if head is not None and not fresh:
            existing = self.store.find_session(owner, head.message.id)
            if existing is not None:  # the same conversation is already yours
                return ImportResult(existing, False, 0)
        self._keep_blobs(items)
        self._grant(owner, items)
        given_id = header.get("id")
        session_id = ids.new_session_id()
        if isinstance(given_id, str) and ids.is_session_id(given_id) and not fresh:
            if self.store.get_session(given_id) is None:
                session_id = given_id
        status = header.get("status") if header.get("status") in STATUSES else "active"
        session = Session(
            id=session_id,
            owner=owner,
            title=title
            or (derive_title(next((s.text for s in chain if s.message.role == "user"), ""))),
            task=task,
            status=status,
            head=head.message.id if head else None,
            message_count=len(chain),
            created_at=_time_or(header.get("created_at"), now),
            updated_at=now,
            version=1,
            metadata=metadata,
            git=git,
            platform="import",
            forked_from=header.get("forked_from")
            if isinstance(header.get("forked_from"), dict)
            else None,
            totals=head.totals if head else Totals(),
            repo=_repo_of(git),
            title_auto=not title,
        )
        self.store.create_session(session, chain)
        self._keep_blobs(items)
        return ImportResult(session, True, len(chain))

    # integrity
    def verify(self, owner: str | None = None, session_id: str | None = None) -> VerifyReport:
        """Re-hash every chain (of one session, one owner, or the whole store)."""
        report = VerifyReport()
        sessions = (
            [self.get(owner, session_id)]
            if owner and session_id
            else [s for s in self.store.iter_sessions() if owner is None or s.owner == owner]
        )
        heads: list[tuple[str, str | None, int]] = [
            (f"session {s.id}", s.head, s.message_count) for s in sessions
        ]
        report.sessions = len(sessions)
        if session_id is None:
            now = self.now()
            live = [s for s in self.store.list_shares(owner=owner) if s.state(now) == "live"]
            report.shares = len(live)
            heads += [(f"share {s.id}", s.head, s.message_count) for s in live]
        for name, head, count in heads:
            chain = report.check_chain(self.store, name, head, count)
            for message in chain:
                for part in message.parts:
                    if part.get("type") == "blob_ref":
                        try:
                            data = self.blobs.get(part["sha256"])
                        except Exception as exc:  # a damaged blob reports, it does not stop
                            report.problems.append(f"{name}: {exc}")
                            continue
                        if data is None:
                            report.problems.append(
                                f"{name}: blob {part['sha256']} of {message.id} is missing"
                            )
                        elif "of" in part:
                            try:
                                hydrate_part(part, data)
                            except InvalidInput as exc:
                                report.problems.append(f"{name}: {exc} (message {message.id})")
        return report

    def gc(self) -> JSON:
        """Delete what no session or live share reaches, and blob files nothing references."""
        deleted, freed = self.store.gc(self.now())
        gone = set(self._free(freed))
        # Files no message references (left by a crash between writing a blob and its
        # message): only old ones, as a young one may belong to an append in flight.
        cutoff = time.time() - BLOB_GRACE_SECONDS
        old = [sha for sha, mtime in self.blobs.list() if mtime < cutoff and sha not in gone]
        gone.update(self._free(old))
        return {"messages_deleted": deleted, "blobs_deleted": len(gone)}

    # listing comes last: a method named `list` shadows the builtin in later annotations
    def list(
        self,
        owner: str,
        *,
        limit: int = 50,
        cursor: str | None = None,
        status: str | None = None,
        repo: str | None = None,
        query: str | None = None,
    ) -> Page:
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit must be between 1 and 1000")
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(sorted(STATUSES))}")
        if "\x00" in (query or "") + (repo or ""):
            raise InvalidInput("q and repo must not contain NUL characters")
        text = query.strip() if query else None
        return self.store.list_sessions(ListQuery(owner, limit, cursor, status, repo, text or None))


def share_id_from(value: str) -> str:
    """A share id from a share id, a share URL (`…/share/ID`) or a session id."""
    value = value.strip()
    if "/share/" in value:
        value = value.split("/share/", 1)[1].split("?", 1)[0].split("#", 1)[0].strip("/")
    if value.startswith("baton://fork/"):
        value = value[len("baton://fork/") :]
    if not value or not re.fullmatch(r"[A-Za-z0-9_-]+", value):
        raise InvalidInput(f"{value!r} is not a share id, share URL or session id")
    return value


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
    return AppendResult(
        Session(**data, totals=totals), [Message(**m) for m in answer.response["appended"]]
    )


def _holds(value: Any, secrets: dict[str, str]) -> bool:
    return any(secret in text for text in strings_in(value) for secret in secrets)


def _in_code(finding: JSON) -> bool:
    where = str(finding.get("where", ""))
    return where == GIT_PATCH or where.startswith(GIT_BUNDLE)


def _public_git(
    git: JSON | None,
    secrets: dict[str, str],
    found: list[tuple[JSON, Any]],
    mode: str,
    code: bool = True,
) -> JSON | None:
    """The git snapshot as a share shows it: without the sharer's local path; without the
    patch and bundle when shared without code; and under --redact without a patch or bundle
    that holds secrets, saying so (a patch or bundle is left out whole, never edited)."""
    if not git:
        return git
    public = {k: v for k, v in git.items() if k != "root"}
    if not code:
        public.update(patch=None, bundle=None, no_code=True)
    in_patch = [f for f, _ in found if f.get("where") == GIT_PATCH]
    if in_patch and mode == "redact":
        public["patch"] = None
        public["patch_dropped"] = f"the patch held {len(in_patch)} secret(s), so it is not shared"
    in_bundle = [f for f, _ in found if str(f.get("where", "")).startswith(GIT_BUNDLE)]
    if in_bundle and mode == "redact":
        commits = (git.get("bundle") or {}).get("commits")
        what = f"the bundle of {commits} commit(s)" if commits else "the bundle"
        unread = [f for f in in_bundle if f.get("redactable") is False]
        public["bundle"] = None
        public["bundle_dropped"] = (
            f"{what} could not be scanned ({unread[0]['excerpt']}), so it is not shared"
            if unread
            else f"{what} held {len(in_bundle)} secret(s), so it is not shared"
        )
    redacted: JSON = redact_value(public, secrets)
    return redacted


def _repo_of(git: JSON | None) -> str | None:
    if not git:
        return None
    repo = git.get("remote") or git.get("repo") or git.get("root_commit")
    return repo if isinstance(repo, str) else None


def _time_or(value: Any, default: str) -> str:
    if isinstance(value, str):
        try:
            return format_time(parse_time(value))
        except ValueError:
            pass
    return default


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


__all__ = ["ANY_HEAD", "Service", "parse_duration", "share_id_from"]

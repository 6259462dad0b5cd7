"""The Store and BlobStore interfaces. Every backend passes one contract suite."""

from __future__ import annotations

import base64
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from baton.core.errors import InvalidInput
from baton.core.models import (
    JSON,
    Account,
    Login,
    Message,
    Session,
    Share,
    StoredMessage,
    Token,
    format_time,
    parse_time,
)
from baton.core.models import (
    Page as Page,  # defined in core; listings return it
)
from baton.core.runs import Environment, Repo, Run

T = TypeVar("T")


def source_key(metadata: Any) -> tuple[str, str, str | None] | None:
    """Which session of another tool an imported session follows: (tool, its session id, its
    sub-agent id), from `metadata.source`. None for what has no identity of its own that
    lasts as the source grows: a branch of a transcript, a sidechain without an agent id."""
    if not isinstance(metadata, dict) or "branch_of" in metadata:
        return None
    source = metadata.get("source")
    if not isinstance(source, dict):
        return None
    tool, sid, agent = source.get("tool"), source.get("session_id"), source.get("agent_id")
    if not isinstance(tool, str) or not isinstance(sid, str) or not sid:
        return None
    if not isinstance(agent, str):
        if metadata.get("parent_session") == sid:
            return None  # a sidechain of a transcript, under its parent's session id
        agent = None
    return tool, sid, agent


@dataclass(frozen=True, slots=True)
class ListQuery:
    owner: str
    limit: int = 50
    cursor: str | None = None
    status: str | None = None
    repo: str | None = None
    text: str | None = None


def encode_cursor(updated_at: str, session_id: str) -> str:
    return base64.urlsafe_b64encode(f"{updated_at}|{session_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        updated_at, session_id = raw.split("|", 1)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(f"cursor {cursor!r} is not one this server gave out") from None
    return updated_at, session_id


def safe_url(url: str) -> str:
    """A store URL fit to print: without its password."""
    return re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", url)


def git_blobs(git: Any) -> list[str]:
    """The blobs a git snapshot names: its patch and its bundle (DESIGN §3)."""
    if not isinstance(git, dict):
        return []
    found = []
    for key in ("patch", "bundle"):
        entry = git.get(key)
        if isinstance(entry, dict) and isinstance(entry.get("sha256"), str):
            found.append(entry["sha256"])
    return found


@dataclass(frozen=True, slots=True)
class Remembered:
    """The answer to a request sent with an idempotency key, kept to answer its retries."""

    request: str  # the SHA-256 of the request, so a reused key with another body is seen
    status: int
    response: Any  # JSON


@dataclass(frozen=True, slots=True)
class Remembering:
    """What `Store.append` keeps for an idempotency key, in the append's own transaction."""

    key: str
    answer: Callable[[Session], Remembered]  # given the session as the append left it
    now: str


class Answered(Exception):
    """The idempotency key of an append already has a live answer: nothing was written."""

    def __init__(self, answer: Remembered) -> None:
        super().__init__("this idempotency key was answered already")
        self.answer = answer


IDEMPOTENCY_SECONDS = 24 * 3600  # how long an idempotency key is remembered


def idempotency_cutoff(now: str) -> str:
    """The oldest time an idempotency key recorded before `now` still answers from."""
    return format_time(parse_time(now) - timedelta(seconds=IDEMPOTENCY_SECONDS))


# Fields of a session that `update_session` may change.
SESSION_FIELDS = frozenset(
    {
        "title",
        "task",
        "status",
        "metadata",
        "git",
        "repo",
        "title_auto",
        "updated_at",
        "forked_from",
    }
)


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of `size` (the last may be shorter), taken as they come."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class ImportPlan:
    """What an import does once its messages are in (`Store.import_chain`): create a
    session, or move an earlier one's head to `last` with `changes`; nothing when neither.
    `grant` gives the account the blobs the import carried."""

    create: Session | None = None
    append: tuple[str, str | None, StoredMessage, dict[str, Any]] | None = None
    grant: tuple[str, Sequence[str], str] | None = None


class Store(ABC):
    """Sessions, messages, shares and accounts. Methods are atomic; rules live in the service."""

    # Whether a small write is cheap enough to run on a server's event loop (a local file,
    # not a network round trip).
    inline_writes = True

    # accounts
    @abstractmethod
    def add_account(self, account: Account) -> None: ...

    @abstractmethod
    def get_account(self, account_id: str) -> Account | None: ...

    @abstractmethod
    def find_account(self, handle: str) -> Account | None: ...

    @abstractmethod
    def list_accounts(self) -> list[Account]: ...

    @abstractmethod
    def set_password(self, account_id: str, password_hash: str | None) -> None: ...

    @abstractmethod
    def password_hash(self, account_id: str) -> str | None: ...

    # tokens (only hashes are stored)
    @abstractmethod
    def add_token(self, token: Token) -> None: ...

    @abstractmethod
    def find_token(self, token_hash: str) -> Token | None: ...

    @abstractmethod
    def list_tokens(self, account_id: str) -> list[Token]:
        """Every token of the account, newest first."""

    @abstractmethod
    def revoke_token(self, token_id: str, now: str) -> bool:
        """Revoke a live token, and end the web logins made with it (one transaction); False
        when it was already revoked (one use of a login code)."""

    @abstractmethod
    def touch_token(self, token_id: str, now: str) -> None:
        """Record when the token was last used."""

    # web logins
    @abstractmethod
    def add_login(self, login: Login) -> None:
        """Record a login, forgetting the account's logins that expired by its `created_at`;
        NotFound when the account (or the token) is not there."""

    @abstractmethod
    def get_login(self, login_id: str) -> Login | None: ...

    @abstractmethod
    def end_login(self, login_id: str) -> bool:
        """Delete a login; False when there was none."""

    @abstractmethod
    def end_password_logins(self, account_id: str) -> int:
        """Delete the account's logins not made with a token (password and login-link ones);
        how many."""

    # messages
    @abstractmethod
    def get_messages(self, ids: Sequence[str]) -> dict[str, StoredMessage]:
        """The stored messages among `ids` (unknown ids are left out), as they were stored
        (their `blobs` included)."""

    @abstractmethod
    def chain(self, head: str, start: int = 0, limit: int | None = None) -> list[Message]:
        """Messages of the chain that ends at `head`, in order, from position `start`."""

    @abstractmethod
    def ancestor(self, head: str, depth: int) -> str | None:
        """The id of the message at position `depth` on the chain ending at `head`."""

    @abstractmethod
    def messages_with_blob(self, sha256: str) -> list[StoredMessage]:
        """Every stored message that references this blob."""

    @abstractmethod
    def flagged(self, head: str) -> list[StoredMessage]:
        """Every message with secret-scan findings on the chain ending at `head`, oldest first."""

    # the secret scan's rules version (scanning.RULES_VERSION): a pass rescans messages
    # recorded under older rules once. Implemented by every backend.
    def scan_rules(self) -> int | None:
        """The rules version every stored message was scanned with, at least; None when no
        message was stored under rules older than this process's (a new memory store)."""
        raise NotImplementedError

    def set_scan_rules(self, version: int) -> None:
        raise NotImplementedError

    def count_messages(self) -> int:
        raise NotImplementedError

    def messages_in_order(
        self, after: tuple[str, int, str] | None, limit: int
    ) -> list[StoredMessage]:
        """Up to `limit` messages ordered by (root, depth, id), after that key: every parent
        before its children."""
        raise NotImplementedError

    def set_findings(self, updates: Sequence[tuple[str, list[JSON], str | None]]) -> None:
        """Set (message id, findings, flagged pointer) of stored messages."""
        raise NotImplementedError

    # The embedded store leaves the secret scan of an import's messages for later: importing
    # does what storing must, and the first pass that reads findings (a share, a rescan) scans
    # what an import left (service.findings.settle). Other stores scan on the way in.
    defers_scan = False

    def unscanned(self, limit: int) -> list[StoredMessage]:
        """Up to `limit` messages an import stored unscanned, oldest first."""
        return []

    def count_unscanned(self) -> int:
        return 0

    def settle_scan(self, found: Sequence[tuple[str, list[JSON]]]) -> None:
        """Record the findings of messages an import stored unscanned (message id, findings)
        and point every message of their trees at its last flagged ancestor, in one
        transaction."""
        raise NotImplementedError

    def alone(self) -> AbstractContextManager[None]:
        """Around a bulk write by a process of its own (`baton sessions import FILE`): a
        backend may write another way while no one else has the store open."""
        return nullcontext()

    # sessions
    @abstractmethod
    def create_session(self, session: Session, messages: Sequence[StoredMessage] = ()) -> None:
        """Store a new session (and any messages it needs) in one transaction."""

    @abstractmethod
    def get_session(self, session_id: str) -> Session | None: ...

    @abstractmethod
    def find_session(self, owner: str, head: str) -> Session | None:
        """A session of `owner` whose head is `head`, if there is one."""

    @abstractmethod
    def append(
        self,
        session_id: str,
        expected_head: str | None,
        messages: Sequence[StoredMessage],
        changes: dict[str, Any],
        remember: Remembering | None = None,
    ) -> Session:
        """Store `messages` and move the head from `expected_head` to the last of them, with
        `changes` to the header, in one transaction. Raises Conflict if the head moved. With
        `remember`, its answer is kept for its key in the same transaction, or, when the key
        has a live answer already, nothing is written and Answered is raised."""

    def import_chain(
        self, messages: Iterable[StoredMessage], finish: Callable[[], ImportPlan]
    ) -> Session | None:
        """Store `messages` as they come (each after its parent; a message stored already is
        kept as it is), then what `finish()` plans, all in one transaction: an import that
        fails part way, or plans nothing, leaves the store as it was. Returns the session
        created or moved. A backend that can, holds no more than a batch of the messages.
        One that `defers_scan` is given them unscanned, and keeps them so (`unscanned`)."""
        held = list(messages)
        plan = finish()
        if plan.create is None and plan.append is None:
            return None
        if plan.grant is not None:
            self.grant_blobs(*plan.grant)
        if plan.create is not None:
            self.create_session(plan.create, held)
            return plan.create
        assert plan.append is not None
        session_id, expected, last, changes = plan.append
        kept = [sm for sm in held if sm.message.id != last.message.id]
        return self.append(session_id, expected, [*kept, last], changes)

    def imported_sessions(self, owner: str, mentioning: str) -> list[Session]:
        """The sessions of `owner` imported from other tools (platform "import"; a fork of
        one made in baton is not) whose metadata or fork origin holds the string
        `mentioning`, most recently updated first. Backends may look in the stored bytes."""
        found = [
            s
            for s in self.iter_sessions()
            if s.owner == owner
            and s.platform == "import"
            and mentioning in repr((s.metadata, s.forked_from))
        ]
        return sorted(found, key=lambda s: (s.updated_at, s.id), reverse=True)

    def find_imported(self, owner: str, key: tuple[str, str, str | None]) -> Session | None:
        """The session of `owner` imported from the other tool's session `key` (see
        `source_key`), the most recently updated when there are several."""
        return next(
            (s for s in self.imported_sessions(owner, key[1]) if source_key(s.metadata) == key),
            None,
        )

    @abstractmethod
    def update_session(
        self, session_id: str, expected_version: int | None, changes: dict[str, Any]
    ) -> Session:
        """Change header fields and bump the version. Raises VersionMismatch or NotFound."""

    @abstractmethod
    def list_sessions(self, query: ListQuery) -> Page: ...

    @abstractmethod
    def delete_session(self, session_id: str, now: str) -> list[str]:
        """Delete the session and every message nothing else reaches; return freed blob ids."""

    # shares
    @abstractmethod
    def create_share(self, share: Share, messages: Sequence[StoredMessage] = ()) -> None: ...

    @abstractmethod
    def get_share(self, share_id: str) -> Share | None: ...

    @abstractmethod
    def list_shares(self, owner: str | None = None, session_id: str | None = None) -> list[Share]:
        """Shares, newest first."""

    @abstractmethod
    def revoke_share(self, share_id: str, now: str) -> Share: ...

    # blob access (who may reference a blob) and idempotency keys
    @abstractmethod
    def grant_blobs(self, account: str, shas: Sequence[str], now: str) -> None:
        """Record that `account` holds these blobs (it uploaded their bytes)."""

    @abstractmethod
    def granted_blobs(self, account: str, shas: Sequence[str]) -> set[str]:
        """The blobs among `shas` granted to `account`, or named by the git snapshot of one
        of its sessions."""

    @abstractmethod
    def family_heads(self, owner: str, root: str) -> list[str]:
        """The heads of `owner`'s sessions whose conversation starts at message `root`."""

    def blob_access(self, account: str, shas: Sequence[str]) -> set[str]:
        """The blobs among `shas` that `account` may reference: granted to it, named by the
        git snapshot of one of its sessions, or referenced by a message on the chain of one
        of its sessions (its own, or a fork of something it could read)."""
        allowed = self.granted_blobs(account, shas)
        for sha in set(shas) - allowed:
            for sm in self.messages_with_blob(sha):
                heads = self.family_heads(account, sm.root)
                if any(self.ancestor(head, sm.depth) == sm.message.id for head in heads):
                    allowed.add(sha)
                    break
        return allowed

    @abstractmethod
    def recall(self, session_id: str, key: str, since: str) -> Remembered | None:
        """The answer remembered for `key` on this session, if recorded at `since` or later."""

    @abstractmethod
    def remember(self, session_id: str, key: str, answer: Remembered, now: str) -> Remembered:
        """Keep `answer` for `key` unless a live answer is kept already (one recorded within
        IDEMPOTENCY_SECONDS of `now`); return the answer that stands. Forgets expired keys."""

    # server runs (core.runs): repositories, environments, runs. Implemented by every
    # backend; the defaults here only say which one lacks them.
    def add_repo(self, repo: Repo) -> None:
        raise NotImplementedError

    def get_repo(self, repo_id: str) -> Repo | None:
        raise NotImplementedError

    def list_repos(self, owner: str) -> list[Repo]:
        raise NotImplementedError

    def delete_repo(self, repo_id: str) -> bool:
        raise NotImplementedError

    def add_environment(self, environment: Environment) -> None:
        raise NotImplementedError

    def get_environment(self, environment_id: str) -> Environment | None:
        raise NotImplementedError

    def list_environments(self, owner: str) -> list[Environment]:
        raise NotImplementedError

    def put_environment(self, environment: Environment) -> None:
        """Replace a stored environment's row with this one (same id)."""
        raise NotImplementedError

    def delete_environment(self, environment_id: str) -> bool:
        raise NotImplementedError

    def add_run(self, run: Run) -> None:
        """Store a new run; `Conflict` when its session has an active run already (one run
        per session at a time, held by the database, so two servers cannot both start one)."""
        raise NotImplementedError

    def get_run(self, run_id: str) -> Run | None:
        raise NotImplementedError

    def list_runs(
        self, owner: str | None = None, session_id: str | None = None, limit: int = 50
    ) -> list[Run]:
        """Newest first."""
        raise NotImplementedError

    def active_runs(self, owner: str) -> list[Run]:
        """The owner's queued, preparing and running runs, oldest first."""
        raise NotImplementedError

    def put_run(self, run: Run, expect_states: Sequence[str] | None = None) -> bool:
        """Replace the run's row with `run` if its stored state is one of `expect_states`
        (any, when None); False (nothing written) when it is not. A stored
        `cancel_requested` stays set (a worker's stale copy does not clear a user's Stop)."""
        raise NotImplementedError

    def claim_run(self, worker: str, now: str) -> Run | None:
        """The oldest queued run, moved to preparing for `worker` atomically (two workers
        never claim one run), or None."""
        raise NotImplementedError

    def stale_runs(self, before: str) -> list[Run]:
        """Active runs (preparing, running) whose heartbeat is older than `before`."""
        raise NotImplementedError

    def waiting_runs(self, before: str) -> list[Run]:
        """Queued runs created before `before`, oldest first (of every owner)."""
        raise NotImplementedError

    # maintenance
    @abstractmethod
    def iter_sessions(self) -> Iterator[Session]: ...

    @abstractmethod
    def gc(self, now: str) -> tuple[int, list[str]]:
        """Delete every message that no session and no live share reaches. Returns how many
        messages went and the blob ids no remaining message references."""

    @abstractmethod
    def referenced_blobs(self) -> set[str]: ...

    @abstractmethod
    def release_blobs(self, shas: Sequence[str], delete: Callable[[list[str]], None]) -> list[str]:
        """Call `delete` with the blobs among `shas` that no message references, while holding
        the write lock, so no append can commit a reference to one of them meanwhile."""

    def wait_briefly(self) -> None:  # noqa: B027 - optional for backends that never wait
        """From now on, a write from the calling thread that finds another writer holding the
        store gives up after a short wait with `Busy` (an event loop must not stall)."""

    def close(self) -> None:  # noqa: B027 - optional for backends that hold nothing
        """Release connections."""


class BlobStore(ABC):
    """Immutable bytes addressed by their SHA-256."""

    @abstractmethod
    def put(self, sha256: str, data: bytes) -> None:
        """Store `data` under its hash; storing what is already there is a no-op."""

    @abstractmethod
    def get(self, sha256: str) -> bytes | None: ...

    @abstractmethod
    def delete(self, sha256: str) -> None: ...

    @abstractmethod
    def list(self) -> Iterator[tuple[str, float]]:
        """Every stored blob id with the time it was written (epoch seconds)."""

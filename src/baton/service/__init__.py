"""The use cases over a Store: the one place where baton's rules live.

`Service` is a thin facade: each method delegates to a use-case module of this package
(sessions, append, forks, sharing with findings, transfer, integrity, blobs, accounts),
whose functions work over the store, the blob store, the scanner and the clock (`Ports`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path
from typing import Any

from baton.accounts import Accounts
from baton.contract import ANY_HEAD, AppendResult, ImportResult, VerifyReport
from baton.core.durations import MAX_EXPIRY, parse_duration
from baton.core.errors import Busy
from baton.core.models import JSON, Account, Message, Session, Share, utcnow
from baton.core.runs import Environment, Repo, Run
from baton.core.shares import share_id_from
from baton.scanning import SecretScanner
from baton.sealing import Sealer
from baton.service import (
    accounts,
    append,
    blobs,
    findings,
    forks,
    integrity,
    runs,
    sessions,
    sharing,
    transfer,
)
from baton.service.common import (
    MAX_POSITION,
    Events,
    Nowhere,
    Queue,
    canonical,
    hydrate,
    owned,
    public_share,
)
from baton.service.findings import GIT_BUNDLE, GIT_PATCH
from baton.service.integrity import BLOB_GRACE_SECONDS
from baton.service.runs import RunContext
from baton.service.sharing import SHARE_MODES
from baton.service.transfer import PARALLEL_SCAN
from baton.store.base import BlobStore, Page, Store


class Service:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        *,
        scanner: SecretScanner | None = None,
        base_url: str = "http://127.0.0.1:8765",
        clock: Callable[[], str] = utcnow,
        events: Events | None = None,
        queue: Queue | None = None,
        secret: str | Callable[[], str] | None = None,
        max_runs: int = 2,
        private_roots: Sequence[Path] = (),
    ) -> None:
        """`secret` is the server secret that environment secrets and repository credentials
        are sealed with (or what gives it, asked on first use); None: a key of this object's
        own, for tests (what it seals does not open elsewhere). `max_runs`: how many runs an
        account may have queued or running. `private_roots`: folders of the server that no
        repository may be in (baton's data: other accounts' workspaces, the store)."""
        self.store = store
        self.events: Events = events or Nowhere()  # watchers of sessions (runs.events)
        self.queue: Queue = queue or Nowhere()  # where queued runs go (runs.queue)
        self.blobs = blobs
        self.scanner = scanner or SecretScanner()
        self.base_url = base_url.rstrip("/")
        self.now = clock
        self.accounts = Accounts(store, lambda: self.now())
        self.max_runs = max_runs
        self.private_roots = tuple(private_roots)
        self._secret = secret
        self._sealer: Sealer | None = None

    @property
    def sealer(self) -> Sealer:
        """What seals secrets at rest, made on first use from the server secret."""
        if self._sealer is None:
            secret = self._secret() if callable(self._secret) else self._secret
            if secret is None:
                import secrets

                secret = secrets.token_urlsafe(48)
            self._sealer = Sealer(secret)
        return self._sealer

    def close(self) -> None:
        """Let go of the store (its connections), as a server does before its workers fork."""
        self.store.close()

    # accounts
    def account(self, handle: str, display_name: str | None = None) -> Account:
        """The account with this handle, created on first use (local mode's owner)."""
        return accounts.account(self.store, self.accounts, handle, display_name)

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
        return sessions.create(
            self,
            owner,
            title=title,
            task=task,
            metadata=metadata,
            git=git,
            platform=platform,
            repo=repo,
        )

    def get(self, owner: str, session_id: str) -> Session:
        return owned(self, owner, session_id)

    def messages(
        self,
        owner: str,
        session_id: str,
        *,
        start: int = 0,
        limit: int | None = None,
        hydrate: bool = False,
    ) -> list[Message]:
        return sessions.messages(self, owner, session_id, start=start, limit=limit, hydrate=hydrate)

    def after(self, head: str | None, after: str | None, source: str) -> int:
        """The position just past message `after` in the chain ending at `head` (0 for None)."""
        return sessions.after(self, head, after, source)

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
        return blobs.blob(self, owner, sha256, session_id=session_id, share_id=share_id)

    def put_blob(self, sha256: str, data: bytes, owner: str | None = None) -> None:
        """Store a blob; `owner` may then reference it (in messages or a git snapshot)."""
        blobs.put_blob(self, sha256, data, owner)

    def hydrate(self, message: Message) -> Message:
        """The message with every offloaded payload read back from the blob store."""
        return hydrate(self, message)

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
        """Append `messages` after `expected_head` (see `append.append`); watchers of the
        session are told (`self.events`) when something was appended."""
        result = append.append(
            self,
            owner,
            session_id,
            messages,
            expected_head,
            retries,
            idempotency_key=idempotency_key,
        )
        if result.appended:
            session = result.session
            self.events.publish(
                session_id, {"kind": "append", "count": session.message_count, "head": session.head}
            )
        return result

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
        return sessions.update(
            self,
            owner,
            session_id,
            expected_version=expected_version,
            title=title,
            task=task,
            status=status,
            metadata=metadata,
            git=git,
        )

    def snapshot(self, owner: str, session_id: str, git: JSON) -> tuple[Session, bool]:
        """Record a new git snapshot; an unchanged state (same `state` hash) records nothing.
        Returns the session and whether it changed."""
        return sessions.snapshot(self, owner, session_id, git)

    def rename(self, owner: str, session_id: str, title: str) -> Session:
        return self.update(owner, session_id, title=title)

    def delete(self, owner: str, session_id: str, *, revoke_shares: bool = False) -> list[str]:
        """Delete a session and everything nothing else reaches. Returns revoked share ids."""
        return sessions.delete(self, owner, session_id, revoke_shares=revoke_shares)

    # sharing
    def share_url(self, share_id: str) -> str:
        return f"{self.base_url}/share/{share_id}"

    def install_url(self) -> str:
        """This baton as a wheel from its server: the PyPI name `baton` is another project's."""
        from baton import wheel

        return wheel.install_url(self.base_url)

    def scan_session(self, owner: str, session_id: str, *, code: bool = True) -> list[JSON]:
        """What a share of this session would be refused for: each finding with where it is."""
        known, unopened = runs.session_secrets(self, session_id)
        return sharing.scan_session(
            self, owner, session_id, code=code, known=known, unopened=unopened
        )

    def share(
        self,
        owner: str,
        session_id: str,
        *,
        expires: str | timedelta | None = None,
        mode: str = "block",
        code: bool = True,
    ) -> Share:
        """Freeze the session's head as a public, read-only share (see `sharing.share`)."""
        known, unopened = runs.session_secrets(self, session_id)
        return sharing.share(
            self,
            owner,
            session_id,
            expires=expires,
            mode=mode,
            code=code,
            known=known,
            unopened=unopened,
        )

    def revoke(self, owner: str, share_id: str) -> Share:
        return sharing.revoke(self, owner, share_id)

    def shares(self, owner: str, session_id: str | None = None) -> list[Share]:
        return sharing.shares(self, owner, session_id)

    def live_shares(self, owner: str, session_id: str) -> list[Share]:
        """The shares of one of my sessions that still answer."""
        return sharing.live_shares(self, owner, session_id)

    def public_share(self, share_id: str) -> Share:
        """A share as anyone with the link sees it: 404 unknown, 410 revoked or expired."""
        return public_share(self, share_id)

    def share_messages(
        self, share_id: str, *, start: int = 0, limit: int | None = None, hydrate: bool = False
    ) -> list[Message]:
        return sharing.share_messages(self, share_id, start=start, limit=limit, hydrate=hydrate)

    def share_exists(self, share_id: str) -> bool:
        """Whether this store holds share `share_id`, live or not (a URL of this server's)."""
        return sharing.share_exists(self, share_id)

    # forks
    def fork(
        self, owner: str, source: str, *, at: str | None = None, platform: str = "cli"
    ) -> Session:
        """A new session of `owner` whose head is the share's (or own session's) head, or the
        earlier message `at`. O(1): the conversation is shared, not copied."""
        return forks.fork(self, owner, source, at=at, platform=platform)

    # export and import
    def export(self, owner: str, session_id: str, fmt: str = "json") -> str | JSON:
        """The session as json (re-importable), markdown, html (one self-contained page) or
        opencode (a file `opencode import` and `kilo import` take)."""
        return transfer.export(self, owner, session_id, fmt)

    def import_document(
        self,
        owner: str,
        data: bytes | str | JSON,
        progress: Callable[[int, int], None] | None = None,
        *,
        fresh: bool = False,
    ) -> ImportResult:
        """Import a baton JSON export (see `transfer.import_document`)."""
        return transfer.import_document(self, owner, data, progress, fresh=fresh)

    def imported_from(self, owner: str, source_id: str) -> Session | None:
        """The session of `owner` imported before from another tool's session `source_id`."""
        return transfer.imported_from(self, owner, source_id)

    # integrity
    def verify(self, owner: str | None = None, session_id: str | None = None) -> VerifyReport:
        """Re-hash every chain (of one session, one owner, or the whole store)."""
        return integrity.verify(self, owner, session_id)

    def unscanned_imports(self) -> int:
        """How many imported messages wait for their secret scan (`findings.settle`)."""
        return self.store.count_unscanned()

    def scan_imports(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Scan what imports left unscanned, as the first share would; how many it scanned."""
        return findings.settle(self, progress)[0]

    def alone(self) -> AbstractContextManager[None]:
        """Around a bulk import by this process: the store may write another way while no
        one else has it open (`Store.alone`)."""
        return self.store.alone()

    def rescan(self, progress: Callable[[int, int], None] | None = None) -> JSON:
        """Rescan, once, the messages scanned with older secret-scan rules than these."""
        return findings.rescan(self, progress)

    def gc(self) -> JSON:
        """Delete what no session or live share reaches, and blob files nothing references."""
        return integrity.gc(self)

    # server runs (contract.Cloud): repositories, environments, runs
    def repos(self, owner: str) -> list[Repo]:
        return runs.repos(self, owner)

    def add_repo(
        self,
        owner: str,
        url: str,
        *,
        name: str | None = None,
        credentials: str | None = None,
        default_branch: str | None = None,
    ) -> Repo:
        """A clone URL the server can reach; credentials in an https URL are taken out of
        it and sealed with `credentials`."""
        return runs.add_repo(
            self, owner, url, name=name, credentials=credentials, default_branch=default_branch
        )

    def remove_repo(self, owner: str, repo: str) -> None:
        runs.remove_repo(self, owner, repo)

    def environments(self, owner: str) -> list[Environment]:
        return runs.environments(self, owner)

    def add_environment(
        self,
        owner: str,
        name: str,
        *,
        variables: dict[str, str] | None = None,
        secrets: dict[str, str] | None = None,
        setup: Sequence[JSON | str] = (),
        network: bool = False,
        model: str | None = None,
        push: bool = False,
    ) -> Environment:
        return runs.add_environment(
            self,
            owner,
            name,
            variables=variables,
            secrets=secrets,
            setup=setup,
            network=network,
            model=model,
            push=push,
        )

    def change_environment(self, owner: str, environment: str, changes: JSON) -> Environment:
        return runs.change_environment(self, owner, environment, changes)

    def remove_environment(self, owner: str, environment: str) -> None:
        runs.remove_environment(self, owner, environment)

    def start_run(
        self,
        owner: str,
        prompt: str,
        *,
        repo: str | None = None,
        branch: str | None = None,
        environment: str | None = None,
        model: str | None = None,
        session_id: str | None = None,
    ) -> tuple[Run, Session]:
        return runs.start_run(
            self,
            owner,
            prompt,
            repo=repo,
            branch=branch,
            environment=environment,
            model=model,
            session_id=session_id,
        )

    def run(self, owner: str, run_id: str) -> Run:
        return runs.run(self, owner, run_id)

    def runs(self, owner: str, *, session_id: str | None = None, limit: int = 50) -> list[Run]:
        return runs.runs(self, owner, session_id=session_id, limit=limit)

    def cancel_run(self, owner: str, run_id: str) -> Run:
        return runs.cancel_run(self, owner, run_id)

    # what a worker asks (not in the contract: workers run beside the store)
    def claim_run(self, worker: str) -> Run | None:
        """The oldest queued run, now preparing for `worker`, or None."""
        return runs.claim_run(self, worker)

    def move_run(self, run_id: str, state: str, **changes: Any) -> Run:
        """Move a run on (compare-and-set on its state); Conflict if another writer did."""
        return runs.move_run(self, run_id, state, **changes)

    def heartbeat(self, run_id: str) -> Run:
        """Renew the run's heartbeat; the run as stored (see its cancel_requested)."""
        return runs.heartbeat(self, run_id)

    def reap_runs(self, older_than: float) -> list[Run]:
        """Fail the runs whose heartbeat is older than `older_than` seconds."""
        return runs.reap_runs(self, older_than)

    def resubmit_runs(self, older_than: float) -> list[Run]:
        """Hand the queue again the runs queued more than `older_than` seconds ago."""
        return runs.resubmit_runs(self, older_than)

    def run_context(self, run_id: str) -> RunContext:
        """The run, its session, repository and environment, secrets opened: the
        executor's only."""
        return runs.run_context(self, run_id)

    # for the server's event loop
    @property
    def inline_writes(self) -> bool:
        """Whether the store writes locally and quickly (SQLite), so that a small write may
        run on an event loop; a networked store's (PostgreSQL) belong in a worker thread."""
        return self.store.inline_writes

    def append_inline(
        self,
        owner: str,
        session_id: str,
        messages: Sequence[Any],
        expected_head: Any = ANY_HEAD,
        *,
        idempotency_key: str | None = None,
    ) -> AppendResult | None:
        """`append`, for an event loop: it waits only briefly for another writer. None, with
        nothing appended, when writes are not inline or another writer holds the store: then
        call `append` from a worker thread."""
        if not self.store.inline_writes:
            return None
        self.store.wait_briefly()
        try:
            return self.append(
                owner, session_id, messages, expected_head, idempotency_key=idempotency_key
            )
        except Busy:
            return None

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
        return sessions.list_sessions(
            self, owner, limit=limit, cursor=cursor, status=status, repo=repo, query=query
        )


__all__ = [
    "ANY_HEAD",
    "BLOB_GRACE_SECONDS",
    "GIT_BUNDLE",
    "GIT_PATCH",
    "MAX_EXPIRY",
    "MAX_POSITION",
    "PARALLEL_SCAN",
    "SHARE_MODES",
    "AppendResult",
    "ImportResult",
    "RunContext",
    "Service",
    "VerifyReport",
    "canonical",
    "parse_duration",
    "share_id_from",
]

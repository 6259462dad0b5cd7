"""The one interface the CLI and the agent talk to: `Baton`, which the local `Service` and the
HTTP `Client` both implement (mypy checks it at the bottom of service.py and client.py), with
the values its methods take and return. Nothing here does I/O; it imports only core/."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from baton.core.chain import verify_chain
from baton.core.models import JSON, Message, Page, Session, Share
from baton.core.runs import Environment, Repo, Run

ANY_HEAD = object()  # append at whatever the head is, retrying on conflict


@dataclass(frozen=True)
class AppendResult:
    session: Session
    appended: list[Message]  # the messages this call added (empty when all were stored)


@dataclass(frozen=True)
class ImportResult:
    session: Session
    created: bool
    messages: int


class Chains(Protocol):
    """What `VerifyReport.check_chain` reads: a store's chains."""

    def chain(self, head: str) -> list[Message]: ...


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

    def check_chain(self, store: Chains, name: str, head: str | None, count: int) -> list[Message]:
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


class Baton(Protocol):
    """Sessions, blobs, shares, forks, export and import, as one owner sees them. `owner` is
    the account id the call acts for; the Client ignores it (the server knows whose token it
    holds). Errors are the BatonErrors of core.errors, raised alike by both sides.

    Left out on purpose, as they exist on one side only: the Service's `account` (local
    mode's owner), `store` and `accounts` (reached through `Context.local`), `after`,
    `hydrate` and `live_shares` (the server's helpers); the Client's `me` and tokens (reached
    through `Context.client`)."""

    def now(self) -> str: ...

    def share_url(self, share_id: str) -> str: ...

    def install_url(self) -> str: ...

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
    ) -> Session: ...

    def get(self, owner: str, session_id: str) -> Session: ...

    def messages(
        self,
        owner: str,
        session_id: str,
        *,
        start: int = 0,
        limit: int | None = None,
        hydrate: bool = False,
    ) -> list[Message]: ...

    def append(
        self,
        owner: str,
        session_id: str,
        messages: Sequence[Any],
        expected_head: Any = ANY_HEAD,
        *,
        idempotency_key: str | None = None,
    ) -> AppendResult: ...

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
    ) -> Session: ...

    def snapshot(self, owner: str, session_id: str, git: JSON) -> tuple[Session, bool]: ...

    def rename(self, owner: str, session_id: str, title: str) -> Session: ...

    def delete(self, owner: str, session_id: str, *, revoke_shares: bool = False) -> list[str]: ...

    # blobs
    def put_blob(self, sha256: str, data: bytes, owner: str | None = None) -> None: ...

    def blob(
        self,
        owner: str | None,
        sha256: str,
        *,
        session_id: str | None = None,
        share_id: str | None = None,
    ) -> bytes: ...

    # sharing
    def scan_session(self, owner: str, session_id: str, *, code: bool = True) -> list[JSON]: ...

    def share(
        self,
        owner: str,
        session_id: str,
        *,
        expires: str | None = None,
        mode: str = "block",
        code: bool = True,
    ) -> Share: ...

    def revoke(self, owner: str, share_id: str) -> Share: ...

    def shares(self, owner: str, session_id: str | None = None) -> list[Share]: ...

    def public_share(self, share_id: str) -> Share: ...

    def share_messages(
        self, share_id: str, *, start: int = 0, limit: int | None = None, hydrate: bool = False
    ) -> list[Message]: ...

    def fork(
        self, owner: str, source: str, *, at: str | None = None, platform: str = "cli"
    ) -> Session: ...

    # export, import, integrity
    def export(self, owner: str, session_id: str, fmt: str = "json") -> str | JSON: ...

    def import_document(
        self,
        owner: str,
        data: bytes | str | JSON,
        progress: Callable[[int, int], None] | None = None,
        *,
        fresh: bool = False,
    ) -> ImportResult: ...

    def verify(self, owner: str | None = None, session_id: str | None = None) -> VerifyReport: ...

    def gc(self) -> JSON: ...

    def rescan(self, progress: Callable[[int, int], None] | None = None) -> JSON: ...

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
    ) -> Page: ...


class Cloud(Protocol):
    """Server runs, as one owner sees them (issue 15): repositories, environments, runs. The
    Service and the Client implement it beside `Baton`. `repo` and `environment` arguments
    take an id or a name. Secrets go in and never come out: an `Environment` shows their
    names only."""

    def repos(self, owner: str) -> list[Repo]: ...

    def add_repo(
        self,
        owner: str,
        url: str,
        *,
        name: str | None = None,
        credentials: str | None = None,
        default_branch: str | None = None,
    ) -> Repo: ...

    def remove_repo(self, owner: str, repo: str) -> None: ...

    def environments(self, owner: str) -> list[Environment]: ...

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
    ) -> Environment: ...

    def change_environment(self, owner: str, environment: str, changes: JSON) -> Environment:
        """`changes` as PATCH takes them: any of name, variables, secrets (a name mapped to
        None removes it), setup, network, model, push."""
        ...

    def remove_environment(self, owner: str, environment: str) -> None: ...

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
        """A new session on `repo` (or, with `session_id`, the next run of that session:
        `Conflict` while it has an active run), queued."""
        ...

    def run(self, owner: str, run_id: str) -> Run: ...

    def runs(self, owner: str, *, session_id: str | None = None, limit: int = 50) -> list[Run]: ...

    def cancel_run(self, owner: str, run_id: str) -> Run: ...


__all__ = [
    "ANY_HEAD",
    "AppendResult",
    "Baton",
    "Chains",
    "Cloud",
    "ImportResult",
    "Page",
    "VerifyReport",
]

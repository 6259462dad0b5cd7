"""Sessions: create, read, list, change (title, task, status, git snapshot) and delete."""

from __future__ import annotations

from baton.core import ids
from baton.core.errors import Conflict, InvalidInput, LiveShares
from baton.core.models import JSON, PLATFORMS, STATUSES, Message, Session
from baton.core.validation import check_header
from baton.service import blobs
from baton.service.common import Ports, find_on_chain, owned, read_chain, repo_of
from baton.store.base import ListQuery, Page, git_blobs


def create(
    p: Ports,
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
    blobs.check_git(p, owner, git)
    now = p.now()
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
        repo=repo or repo_of(git),
        title_auto=not title,
    )
    p.store.create_session(session)
    return session


def messages(
    p: Ports,
    owner: str,
    session_id: str,
    *,
    start: int = 0,
    limit: int | None = None,
    hydrate: bool = False,
) -> list[Message]:
    session = owned(p, owner, session_id)
    return read_chain(p, session.head, start, limit, hydrate)


def after(p: Ports, head: str | None, message_id: str | None, source: str) -> int:
    """The position just past message `message_id` in the chain ending at `head` (0 for
    None)."""
    if message_id is None:
        return 0
    return find_on_chain(p.store, head, message_id, source).depth + 1


def update(
    p: Ports,
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
    owned(p, owner, session_id)
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
        blobs.check_git(p, owner, git)
        changes.update(git=git, repo=repo_of(git))
    if not changes:
        raise InvalidInput("nothing to change")
    changes["updated_at"] = p.now()
    before = owned(p, owner, session_id).git
    updated = p.store.update_session(session_id, expected_version, changes)
    if git is not None:
        blobs.free(p, [sha for sha in git_blobs(before) if sha not in git_blobs(git)])
    return updated


def snapshot(p: Ports, owner: str, session_id: str, git: JSON) -> tuple[Session, bool]:
    """Record a new git snapshot; an unchanged state (same `state` hash) records nothing.
    Returns the session and whether it changed."""
    session = owned(p, owner, session_id)
    current = session.git or {}
    if current.get("state") is not None and current.get("state") == git.get("state"):
        return session, False
    return update(p, owner, session_id, git=git), True


def delete(p: Ports, owner: str, session_id: str, *, revoke_shares: bool = False) -> list[str]:
    """Delete a session and everything nothing else reaches. Returns revoked share ids."""
    owned(p, owner, session_id)
    for run in p.store.list_runs(session_id=session_id, limit=5):
        if run.active:  # its worker is writing to it
            raise Conflict(
                f"session {session_id} has a run in progress ({run.id}): stop it first", None
            )
    now = p.now()
    live = [s for s in p.store.list_shares(session_id=session_id) if s.state(now) == "live"]
    if live and not revoke_shares:
        raise LiveShares(
            f"{len(live)} live share(s) still expose this session: "
            f"{', '.join(s.id for s in live)}; revoke them first or pass --revoke-shares",
            [s.id for s in live],
        )
    for share in live:
        p.store.revoke_share(share.id, now)
    session = owned(p, owner, session_id)
    freed = p.store.delete_session(session_id, now)
    blobs.free(p, [*freed, *git_blobs(session.git)])
    return [s.id for s in live]


def list_sessions(
    p: Ports,
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
    return p.store.list_sessions(ListQuery(owner, limit, cursor, status, repo, text or None))

"""Forks: a new session whose head is a share's (or an own session's) head, or an earlier
message of it. O(1): the conversation is shared, not copied."""

from __future__ import annotations

from baton.core import ids
from baton.core.errors import NotFound
from baton.core.models import JSON, Session, StoredMessage, Totals
from baton.core.shares import share_id_from
from baton.service.common import (
    Ports,
    find_on_chain,
    owned,
    public_share,
    repo_of,
)


def fork(
    p: Ports, owner: str, source: str, *, at: str | None = None, platform: str = "cli"
) -> Session:
    """A new session of `owner` whose head is the share's (or own session's) head, or the
    earlier message `at`."""
    source = share_id_from(source)
    origin: JSON
    if ids.is_session_id(source):
        src = owned(p, owner, source)
        head, title, task, metadata, git = src.head, src.title, src.task, src.metadata, src.git
        origin = {"session": src.id}
    else:
        share = public_share(p, source)
        head, title, task = share.head, share.title, share.task
        metadata, git = share.metadata, share.git
        origin = {"share": share.id}
    top: StoredMessage | None
    if at is not None:
        if head is None:
            raise NotFound(f"message {at} is not in {source}")
        top = find_on_chain(p.store, head, at, source)
        head = at
    else:
        top = p.store.get_messages([head]).get(head) if head else None
    now = p.now()
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
        repo=repo_of(git),
        title_auto=not title,
        inherited=top.totals if top else Totals(),
    )
    p.store.create_session(session)
    return session

"""How the API answers: JSON bodies (orjson, not FastAPI's encoder: the response models
document them), the shapes of sessions, shares and pages of messages, and types several
routers share."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import Query, Response

from baton.core.models import Message, Session, Share
from baton.service import Service

Limit = Annotated[int, Query(ge=1, le=1000)]


def reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers, media_type="application/json")


def session_json(session: Session) -> dict[str, Any]:
    return session.to_dict()


def share_public(service: Service, share: Share) -> dict[str, Any]:
    url = service.share_url(share.id)
    return {
        "id": share.id,
        "url": url,
        "command": f"baton --fork {url}",
        "install": f"pipx install {service.install_url()}",
        "shared_by": {
            "handle": share.shared_by.get("handle", ""),
            "display_name": share.shared_by.get("display_name", ""),
        },
        "head": share.head,
        "message_count": share.message_count,
        "title": share.title,
        "task": share.task,
        "metadata": share.metadata,
        "git": share.git,
        "created_at": share.created_at,
        "expires_at": share.expires_at,
        "totals": share.totals.to_dict(),
        "own": share.own.to_dict(),
        "inherited": share.inherited.to_dict(),
        "published": share.published,
        "withheld": share.withheld,
    }


def share_owned(service: Service, share: Share) -> dict[str, Any]:
    return {
        **share_public(service, share),
        "shared_by": {
            "account": share.shared_by.get("account", share.owner),
            "handle": share.shared_by.get("handle", ""),
            "display_name": share.shared_by.get("display_name", ""),
        },
        "session_id": share.session_id,
        "state": share.state(service.now()),
        "revoked_at": share.revoked_at,
        "redacted": share.redacted,
    }


def message_page(messages: list[Message], head: str | None, limit: int) -> dict[str, Any]:
    last = messages[-1].id if messages else None
    more = len(messages) == limit and last != head
    return {
        "messages": [m.to_dict() for m in messages],
        "head": head,
        "next_after": last if more else None,
    }


def export_download(service: Service, owner: str, session_id: str, fmt: str) -> Response:
    """A session exported as a file to download (never shown at the server's address)."""
    from baton.render import ALIASES, MEDIA_TYPES, SUFFIXES

    doc = service.export(owner, session_id, fmt)
    kind = ALIASES.get(fmt, fmt)
    disposition = {"Content-Disposition": f'attachment; filename="{session_id}{SUFFIXES[kind]}"'}
    if isinstance(doc, str):
        return Response(doc, 200, disposition, media_type=MEDIA_TYPES[kind])
    return reply(doc, headers=disposition)

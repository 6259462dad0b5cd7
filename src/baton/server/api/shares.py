"""/api/shares: the caller's shares (list, revoke), public reads of a share (no login; rate
limited per client address) and forks of one. Sharing a session is under /api/sessions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from baton.core.errors import NotFound
from baton.server import schemas
from baton.server.api.replies import (
    Limit,
    message_page,
    reply,
    session_json,
    share_owned,
    share_public,
)
from baton.server.deps import Me, ServiceDep, public

router = APIRouter()
GONE: dict[int | str, dict[str, Any]] = {
    410: {"model": schemas.ErrorBody, "description": "Revoked or expired"}
}


@router.get("/shares", response_model=list[schemas.ShareOwned], tags=["shares"])
def my_shares(
    account: Me,
    service: ServiceDep,
    session: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    return reply([share_owned(service, s) for s in service.shares(account.id, session)])


@router.delete("/shares/{share_id}", response_model=schemas.ShareOwned, tags=["shares"])
def revoke(account: Me, service: ServiceDep, share_id: str) -> Response:
    return reply(share_owned(service, service.revoke(account.id, share_id)))


@router.get(
    "/shares/{share_id}",
    response_model=schemas.SharePublic,
    tags=["public"],
    dependencies=[Depends(public)],
    responses=GONE,
)
def public_share(service: ServiceDep, share_id: str) -> Response:
    return reply(share_public(service, service.public_share(share_id)))


@router.get(
    "/shares/{share_id}/messages",
    response_model=schemas.MessagePage,
    tags=["public"],
    dependencies=[Depends(public)],
    responses=GONE,
)
def share_messages(
    service: ServiceDep,
    share_id: str,
    after: Annotated[str | None, Query(max_length=200)] = None,
    start: Annotated[int, Query(ge=0)] = 0,
    limit: Limit = 200,
    full: bool = False,
) -> Response:
    share = service.public_share(share_id)
    if after is not None:
        start = service.after(share.head, after, f"share {share_id}")
    found = service.share_messages(share_id, start=start, limit=limit, hydrate=full)
    return reply(message_page(found, share.head, limit))


@router.post(
    "/shares/{share_id}/fork",
    response_model=schemas.SessionPublic,
    status_code=201,
    tags=["shares"],
    responses=GONE,
)
def fork_share(
    account: Me, service: ServiceDep, share_id: str, body: schemas.ForkRequest | None = None
) -> Response:
    if share_id.startswith("ses_"):
        raise NotFound(f"no share {share_id}")
    session = service.fork(account.id, share_id, at=body.at if body else None, platform="api")
    return reply(session_json(session), 201)

"""/api/me and /api/tokens: the caller's account and API tokens."""

from __future__ import annotations

from fastapi import APIRouter, Response

from baton.server import schemas
from baton.server.api.replies import reply
from baton.server.deps import Me, ServiceDep

router = APIRouter(tags=["accounts"])


@router.get("/me", response_model=schemas.AccountPublic)
def whoami(account: Me) -> Response:
    return reply(account.to_dict())


@router.get("/tokens", response_model=list[schemas.TokenPublic])
def tokens(account: Me, service: ServiceDep) -> Response:
    return reply([t.to_dict() for t in service.accounts.tokens(account.id)])


@router.post("/tokens", response_model=schemas.TokenCreated, status_code=201)
def create_token(
    account: Me, service: ServiceDep, body: schemas.TokenCreate | None = None
) -> Response:
    token, secret = service.accounts.create_token(account.id, body.name if body else "")
    return reply({**token.to_dict(), "token": secret}, 201)


@router.delete("/tokens/{token_id}", response_model=schemas.TokenPublic)
def revoke_token(account: Me, service: ServiceDep, token_id: str) -> Response:
    return reply(service.accounts.revoke(account.id, token_id).to_dict())

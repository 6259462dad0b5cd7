"""/api/blobs: the bytes messages refer to by SHA-256. Reading one needs a session or share
that refers to it (a share's reads are public, rate limited like the share's)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from baton.core.errors import InvalidInput, Unauthorized
from baton.server import schemas
from baton.server.api.replies import reply
from baton.server.auth import caller, client_address
from baton.server.deps import CookiesDep, Me, ServiceDep, ShareLimit

SHA256 = re.compile(r"^[0-9a-f]{64}$")
Sha256 = Annotated[str, Path(json_schema_extra={"pattern": SHA256.pattern})]

router = APIRouter(tags=["blobs"])


@router.get("/blobs/{sha256}", responses={200: {"content": {"application/octet-stream": {}}}})
def get_blob(
    request: Request,
    service: ServiceDep,
    cookies: CookiesDep,
    share_limit: ShareLimit,
    sha256: Sha256,
    session: Annotated[str | None, Query(max_length=200)] = None,
    share: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    account = caller(request, service, cookies)
    if share is not None:
        share_limit.hit("share", client_address(request))
    elif account is None:
        raise Unauthorized("log in, or read the blob through a share (?share=ID)")
    data = service.blob(account.id if account else None, sha256, session_id=session, share_id=share)
    return Response(data, 200, media_type="application/octet-stream")


@router.post(
    "/blobs/{sha256}",
    response_model=schemas.BlobStored,
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def put_blob(account: Me, service: ServiceDep, sha256: Sha256, request: Request) -> Response:
    if not SHA256.match(sha256):
        raise InvalidInput("a blob is named by the lowercase hex SHA-256 of its bytes")
    data = await request.body()
    await run_in_threadpool(service.put_blob, sha256, data, account.id)
    return reply({"sha256": sha256, "size": len(data)}, 201)

"""/api/sessions: the caller's sessions, their messages, forks, exports, checks, and their
sharing. Every route checks ownership: a session that is not the caller's answers 404,
exactly like one that does not exist."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from baton.core.errors import InvalidInput, NotFound
from baton.server import schemas
from baton.server.api.replies import (
    Limit,
    export_download,
    message_page,
    reply,
    session_json,
    share_owned,
)
from baton.server.deps import Me, ServiceDep
from baton.service import ANY_HEAD

IF_MATCH = r'^\s*(\*|(W/)?"?[0-9]{1,18}"?)\s*$'  # documented; `if_match` says what is wrong
INLINE_APPEND = 256 * 1024  # appends up to this size run on the event loop (no thread hop)

router = APIRouter()


def if_match(value: str | None) -> int | None:
    """The session version an If-Match header names ("3", W/"3" or 3); None for * or none."""
    if value is None or value.strip() == "*":
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not text.isdigit() or len(text) > 18:
        raise InvalidInput(f'If-Match {value!r} is not a session version (an ETag like "3")')
    return int(text)


@router.post("/sessions", response_model=schemas.SessionPublic, status_code=201, tags=["sessions"])
def create(account: Me, service: ServiceDep, body: schemas.SessionCreate | None = None) -> Response:
    body = body or schemas.SessionCreate()
    session = service.create(
        account.id,
        title=body.title,
        task=body.task,
        metadata=body.metadata,
        git=body.git,
        platform=body.platform,
        repo=body.repo,
    )
    return reply(session_json(session), 201, {"ETag": f'"{session.version}"'})


@router.get("/sessions", response_model=schemas.SessionPage, tags=["sessions"])
def list_sessions(
    account: Me,
    service: ServiceDep,
    limit: Limit = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    q: Annotated[str | None, Query(max_length=500)] = None,
    repo: Annotated[str | None, Query(max_length=2000)] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    page = service.list(account.id, limit=limit, cursor=cursor, status=status, repo=repo, query=q)
    return reply(
        {
            "sessions": [session_json(s) for s in page.sessions],
            "next_cursor": page.next_cursor,
        }
    )


@router.post(
    "/sessions/import",
    response_model=schemas.ImportResult,
    status_code=201,
    tags=["sessions"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def import_session(
    account: Me, service: ServiceDep, request: Request, fresh: bool = False
) -> Response:
    """A baton export document; `fresh` makes a new session even if the same
    conversation is already yours (a fork)."""
    data = await request.body()
    result = await run_in_threadpool(lambda: service.import_document(account.id, data, fresh=fresh))
    return reply(
        {
            "session": session_json(result.session),
            "created": result.created,
            "messages": result.messages,
        },
        201 if result.created else 200,
    )


@router.get("/sessions/{session_id}", response_model=schemas.SessionPublic, tags=["sessions"])
def get_session(account: Me, service: ServiceDep, session_id: str) -> Response:
    session = service.get(account.id, session_id)
    return reply(session_json(session), headers={"ETag": f'"{session.version}"'})


@router.patch(
    "/sessions/{session_id}",
    response_model=schemas.SessionPublic,
    tags=["sessions"],
    responses={412: {"model": schemas.ErrorBody, "description": "Version mismatch"}},
)
def update_session(
    account: Me,
    service: ServiceDep,
    session_id: str,
    body: schemas.SessionUpdate,
    if_match_header: Annotated[
        str, Header(alias="If-Match", json_schema_extra={"pattern": IF_MATCH})
    ] = "",
) -> Response:
    changes = body.model_dump(exclude_unset=True)
    session = service.update(
        account.id, session_id, expected_version=if_match(if_match_header or None), **changes
    )
    return reply(session_json(session), headers={"ETag": f'"{session.version}"'})


@router.delete(
    "/sessions/{session_id}",
    tags=["sessions"],
    responses={409: {"model": schemas.ErrorBody, "description": "Live shares"}},
)
def delete_session(
    account: Me, service: ServiceDep, session_id: str, revoke_shares: bool = False
) -> Response:
    revoked = service.delete(account.id, session_id, revoke_shares=revoke_shares)
    return reply({"deleted": session_id, "revoked_shares": revoked})


@router.get(
    "/sessions/{session_id}/messages", response_model=schemas.MessagePage, tags=["sessions"]
)
def messages(
    account: Me,
    service: ServiceDep,
    session_id: str,
    after: Annotated[str | None, Query(max_length=200)] = None,
    start: Annotated[int, Query(ge=0)] = 0,
    limit: Limit = 200,
    full: bool = False,
) -> Response:
    """In order, `limit` at a time: from position `start`, or after message `after`."""
    session = service.get(account.id, session_id)
    if after is not None:
        start = service.after(session.head, after, f"session {session_id}")
    found = service.messages(account.id, session_id, start=start, limit=limit, hydrate=full)
    return reply(message_page(found, session.head, limit))


@router.post(
    "/sessions/{session_id}/messages",
    response_model=schemas.AppendResult,
    status_code=201,
    tags=["sessions"],
    responses={409: {"model": schemas.ErrorBody, "description": "The head moved"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schemas.AppendRequest.model_json_schema()}},
        }
    },
)
async def append(
    account: Me,
    service: ServiceDep,
    session_id: str,
    request: Request,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response:
    """Append `messages` after `expected_head` (absent: after the current head; null: an
    empty session). Parsed here with orjson: this is the hot path of every agent turn.
    A retry with the same `Idempotency-Key` (kept 24 hours) is answered as the first
    request was and appends nothing; the same key with another body is a 422."""
    body = await request.body()
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or set(data) - {"expected_head", "messages"}:
        raise InvalidInput('the body must be {"expected_head": …, "messages": [...]}')
    messages = data.get("messages")
    if not isinstance(messages, list) or not 1 <= len(messages) <= 10_000:
        raise InvalidInput("messages must be a list of 1 to 10,000 messages")
    expected = data.get("expected_head", ANY_HEAD)
    if expected is not ANY_HEAD and expected is not None and not isinstance(expected, str):
        raise InvalidInput("expected_head must be a message id or null")
    # On the event loop: a worker-thread hop costs more than a small append. The loop's
    # connection waits only briefly for another writer; then the append goes to a thread.
    result = None
    if len(body) <= INLINE_APPEND and len(messages) <= 100:
        result = service.append_inline(
            account.id, session_id, messages, expected, idempotency_key=idempotency_key
        )
    if result is None:
        result = await run_in_threadpool(
            lambda: service.append(
                account.id, session_id, messages, expected, idempotency_key=idempotency_key
            )
        )
    return reply(
        {
            "session": session_json(result.session),
            "appended": [m.to_dict() for m in result.appended],
        },
        201 if result.appended else 200,
        {"ETag": f'"{result.session.version}"'},
    )


@router.post(
    "/sessions/{session_id}/fork",
    response_model=schemas.SessionPublic,
    status_code=201,
    tags=["sessions"],
)
def fork_session(
    account: Me, service: ServiceDep, session_id: str, body: schemas.ForkRequest | None = None
) -> Response:
    if not session_id.startswith("ses_"):
        raise NotFound(f"no session {session_id}")
    session = service.fork(account.id, session_id, at=body.at if body else None, platform="api")
    return reply(session_json(session), 201)


@router.get("/sessions/{session_id}/scan", response_model=schemas.Findings, tags=["shares"])
def scan(account: Me, service: ServiceDep, session_id: str, code: bool = True) -> Response:
    return reply({"findings": service.scan_session(account.id, session_id, code=code)})


@router.post(
    "/sessions/{session_id}/shares",
    response_model=schemas.ShareOwned,
    status_code=201,
    tags=["shares"],
)
def share(
    account: Me, service: ServiceDep, session_id: str, body: schemas.ShareCreate | None = None
) -> Response:
    body = body or schemas.ShareCreate()
    created = service.share(
        account.id, session_id, expires=body.expires, mode=body.mode, code=body.code
    )
    return reply(share_owned(service, created), 201)


@router.get(
    "/sessions/{session_id}/export",
    tags=["sessions"],
    responses={200: {"content": {"application/json": {}, "text/markdown": {}, "text/html": {}}}},
)
def export(
    account: Me,
    service: ServiceDep,
    session_id: str,
    format: Annotated[str, Query(pattern="^(json|markdown|md|html|opencode)$")] = "json",
) -> Response:
    return export_download(service, account.id, session_id, format)


@router.get("/sessions/{session_id}/verify", response_model=schemas.VerifyResult, tags=["sessions"])
def verify(account: Me, service: ServiceDep, session_id: str) -> Response:
    return reply(service.verify(account.id, session_id).to_dict())


@router.get("/verify", response_model=schemas.VerifyResult, tags=["sessions"])
def verify_all(account: Me, service: ServiceDep) -> Response:
    return reply(service.verify(account.id).to_dict())

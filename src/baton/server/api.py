"""The JSON API of DESIGN.md §5 under /api. Every route checks ownership: a session or share
that is not the caller's answers 404, exactly like one that does not exist."""

from __future__ import annotations

import contextlib
import re
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from baton.core.errors import Busy, InvalidInput, NotFound, Unauthorized
from baton.core.models import Account, Message, Session, Share
from baton.server import schemas
from baton.server.auth import Cookies, RateLimiter, bearer, caller, client_address
from baton.service import ANY_HEAD, Service

SHA256 = re.compile(r"^[0-9a-f]{64}$")
IF_MATCH = r'^\s*(\*|(W/)?"?[0-9]{1,18}"?)\s*$'  # documented; `if_match` says what is wrong
Sha256 = Annotated[str, Path(json_schema_extra={"pattern": SHA256.pattern})]
INLINE_APPEND = 256 * 1024  # appends up to this size run on the event loop (no thread hop)
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.ErrorBody, "description": text}
    for status, text in [
        (401, "No valid credentials"),
        (404, "Unknown, or not yours"),
        (413, "Too large"),
        (422, "Bad input"),
        (429, "Rate limited"),
    ]
}


def reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers, media_type="application/json")


def session_json(session: Session) -> dict[str, Any]:
    return session.to_dict()


def share_public(service: Service, share: Share) -> dict[str, Any]:
    return {
        "id": share.id,
        "url": service.share_url(share.id),
        "command": f"baton --fork {share.id}",
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


def if_match(value: str | None) -> int | None:
    """The session version an If-Match header names ("3", W/"3" or 3); None for * or none."""
    if value is None or value.strip() == "*":
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not text.isdigit() or len(text) > 18:
        raise InvalidInput(f'If-Match {value!r} is not a session version (an ETag like "3")')
    return int(text)


async def me(request: Request) -> Account:
    """The caller's account; 401 without valid credentials. Over a local store this runs on
    the event loop (one indexed read) and the once-a-minute write of the token's last use goes
    to a worker thread; over a networked store (PostgreSQL) all of it runs in a worker thread,
    so the event loop never waits on the network."""
    from starlette.concurrency import run_in_threadpool

    service: Service = request.app.state.service
    if not service.store.inline_writes:
        return await run_in_threadpool(_identify_and_touch, request)
    account, due = _identify(request)
    if due is not None:
        await run_in_threadpool(service.store.touch_token, due, service.now())
    return account


def _identify_and_touch(request: Request) -> Account:
    account, due = _identify(request)
    if due is not None:
        service: Service = request.app.state.service
        service.store.touch_token(due, service.now())
    return account


def _identify(request: Request) -> tuple[Account, str | None]:
    """The caller, and the id of their token if its last use is due to be recorded."""
    state = request.app.state
    service: Service = state.service
    token = bearer(request)
    if token is None:
        account = caller(request, service, state.cookies)
        if account is None:
            raise Unauthorized("log in: send Authorization: Bearer <token>")
        if request.method not in ("GET", "HEAD"):
            # A cookie alone does not authorise a write through the API (no CSRF here).
            raise Unauthorized("writes through the API need Authorization: Bearer <token>")
        return account, None
    found = service.accounts.authenticate_token(token, touch=False)
    if found is None:
        raise Unauthorized("this token is not valid (revoked, expired or mistyped)")
    account, record = found
    return account, record.id if service.accounts.needs_touch(record) else None


def public(request: Request) -> None:
    """Public share routes are rate-limited per client address."""
    request.app.state.share_limit.hit("share", client_address(request))


Me = Annotated[Account, Depends(me)]
Limit = Annotated[int, Query(ge=1, le=1000)]


def build_router(service: Service, cookies: Cookies, share_limit: RateLimiter) -> APIRouter:
    api = APIRouter(prefix="/api", responses=ERRORS)

    @api.get("/health", response_model=schemas.Health, tags=["server"])
    def health() -> Response:
        return reply({"ok": True})

    @api.get("/me", response_model=schemas.AccountPublic, tags=["accounts"])
    def whoami(account: Me) -> Response:
        return reply(account.to_dict())

    @api.get("/tokens", response_model=list[schemas.TokenPublic], tags=["accounts"])
    def tokens(account: Me) -> Response:
        return reply([t.to_dict() for t in service.accounts.tokens(account.id)])

    @api.post("/tokens", response_model=schemas.TokenCreated, status_code=201, tags=["accounts"])
    def create_token(account: Me, body: schemas.TokenCreate | None = None) -> Response:
        token, secret = service.accounts.create_token(account.id, body.name if body else "")
        return reply({**token.to_dict(), "token": secret}, 201)

    @api.delete("/tokens/{token_id}", response_model=schemas.TokenPublic, tags=["accounts"])
    def revoke_token(account: Me, token_id: str) -> Response:
        return reply(service.accounts.revoke(account.id, token_id).to_dict())

    # sessions
    @api.post("/sessions", response_model=schemas.SessionPublic, status_code=201, tags=["sessions"])
    def create(account: Me, body: schemas.SessionCreate | None = None) -> Response:
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

    @api.get("/sessions", response_model=schemas.SessionPage, tags=["sessions"])
    def list_sessions(
        account: Me,
        limit: Limit = 50,
        cursor: Annotated[str | None, Query(max_length=500)] = None,
        q: Annotated[str | None, Query(max_length=500)] = None,
        repo: Annotated[str | None, Query(max_length=2000)] = None,
        status: Annotated[str | None, Query(max_length=20)] = None,
    ) -> Response:
        page = service.list(
            account.id, limit=limit, cursor=cursor, status=status, repo=repo, query=q
        )
        return reply(
            {
                "sessions": [session_json(s) for s in page.sessions],
                "next_cursor": page.next_cursor,
            }
        )

    @api.post(
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
    async def import_session(account: Me, request: Request, fresh: bool = False) -> Response:
        """A baton export document; `fresh` makes a new session even if the same
        conversation is already yours (a fork)."""
        data = await request.body()
        from starlette.concurrency import run_in_threadpool

        result = await run_in_threadpool(
            lambda: service.import_document(account.id, data, fresh=fresh)
        )
        return reply(
            {
                "session": session_json(result.session),
                "created": result.created,
                "messages": result.messages,
            },
            201 if result.created else 200,
        )

    @api.get("/sessions/{session_id}", response_model=schemas.SessionPublic, tags=["sessions"])
    def get_session(account: Me, session_id: str) -> Response:
        session = service.get(account.id, session_id)
        return reply(session_json(session), headers={"ETag": f'"{session.version}"'})

    @api.patch(
        "/sessions/{session_id}",
        response_model=schemas.SessionPublic,
        tags=["sessions"],
        responses={412: {"model": schemas.ErrorBody, "description": "Version mismatch"}},
    )
    def update_session(
        account: Me,
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

    @api.delete(
        "/sessions/{session_id}",
        tags=["sessions"],
        responses={409: {"model": schemas.ErrorBody, "description": "Live shares"}},
    )
    def delete_session(account: Me, session_id: str, revoke_shares: bool = False) -> Response:
        revoked = service.delete(account.id, session_id, revoke_shares=revoke_shares)
        return reply({"deleted": session_id, "revoked_shares": revoked})

    @api.get(
        "/sessions/{session_id}/messages", response_model=schemas.MessagePage, tags=["sessions"]
    )
    def messages(
        account: Me,
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

    @api.post(
        "/sessions/{session_id}/messages",
        response_model=schemas.AppendResult,
        status_code=201,
        tags=["sessions"],
        responses={409: {"model": schemas.ErrorBody, "description": "The head moved"}},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": schemas.AppendRequest.model_json_schema()}
                },
            }
        },
    )
    async def append(
        account: Me,
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
        from starlette.concurrency import run_in_threadpool

        result = None
        if service.store.inline_writes and len(body) <= INLINE_APPEND and len(messages) <= 100:
            service.store.wait_briefly()
            with contextlib.suppress(Busy):
                result = service.append(
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

    @api.post(
        "/sessions/{session_id}/fork",
        response_model=schemas.SessionPublic,
        status_code=201,
        tags=["sessions"],
    )
    def fork_session(
        account: Me, session_id: str, body: schemas.ForkRequest | None = None
    ) -> Response:
        if not session_id.startswith("ses_"):
            raise NotFound(f"no session {session_id}")
        session = service.fork(account.id, session_id, at=body.at if body else None, platform="api")
        return reply(session_json(session), 201)

    @api.get("/sessions/{session_id}/scan", response_model=schemas.Findings, tags=["shares"])
    def scan(account: Me, session_id: str, code: bool = True) -> Response:
        return reply({"findings": service.scan_session(account.id, session_id, code=code)})

    @api.post(
        "/sessions/{session_id}/shares",
        response_model=schemas.ShareOwned,
        status_code=201,
        tags=["shares"],
    )
    def share(account: Me, session_id: str, body: schemas.ShareCreate | None = None) -> Response:
        body = body or schemas.ShareCreate()
        created = service.share(
            account.id, session_id, expires=body.expires, mode=body.mode, code=body.code
        )
        return reply(share_owned(service, created), 201)

    @api.get(
        "/sessions/{session_id}/export",
        tags=["sessions"],
        responses={
            200: {"content": {"application/json": {}, "text/markdown": {}, "text/html": {}}}
        },
    )
    def export(
        account: Me,
        session_id: str,
        format: Annotated[str, Query(pattern="^(json|markdown|md|html|opencode)$")] = "json",
    ) -> Response:
        return export_download(service, account.id, session_id, format)

    @api.get(
        "/sessions/{session_id}/verify", response_model=schemas.VerifyResult, tags=["sessions"]
    )
    def verify(account: Me, session_id: str) -> Response:
        return reply(service.verify(account.id, session_id).to_dict())

    @api.get("/verify", response_model=schemas.VerifyResult, tags=["sessions"])
    def verify_all(account: Me) -> Response:
        return reply(service.verify(account.id).to_dict())

    # shares
    @api.get("/shares", response_model=list[schemas.ShareOwned], tags=["shares"])
    def my_shares(
        account: Me, session: Annotated[str | None, Query(max_length=200)] = None
    ) -> Response:
        return reply([share_owned(service, s) for s in service.shares(account.id, session)])

    @api.delete("/shares/{share_id}", response_model=schemas.ShareOwned, tags=["shares"])
    def revoke(account: Me, share_id: str) -> Response:
        return reply(share_owned(service, service.revoke(account.id, share_id)))

    @api.get(
        "/shares/{share_id}",
        response_model=schemas.SharePublic,
        tags=["public"],
        dependencies=[Depends(public)],
        responses={410: {"model": schemas.ErrorBody, "description": "Revoked or expired"}},
    )
    def public_share(share_id: str) -> Response:
        return reply(share_public(service, service.public_share(share_id)))

    @api.get(
        "/shares/{share_id}/messages",
        response_model=schemas.MessagePage,
        tags=["public"],
        dependencies=[Depends(public)],
        responses={410: {"model": schemas.ErrorBody, "description": "Revoked or expired"}},
    )
    def share_messages(
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

    @api.post(
        "/shares/{share_id}/fork",
        response_model=schemas.SessionPublic,
        status_code=201,
        tags=["shares"],
        responses={410: {"model": schemas.ErrorBody, "description": "Revoked or expired"}},
    )
    def fork_share(account: Me, share_id: str, body: schemas.ForkRequest | None = None) -> Response:
        if share_id.startswith("ses_"):
            raise NotFound(f"no share {share_id}")
        session = service.fork(account.id, share_id, at=body.at if body else None, platform="api")
        return reply(session_json(session), 201)

    # blobs
    @api.get(
        "/blobs/{sha256}",
        tags=["blobs"],
        responses={200: {"content": {"application/octet-stream": {}}}},
    )
    def get_blob(
        request: Request,
        sha256: Sha256,
        session: Annotated[str | None, Query(max_length=200)] = None,
        share: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Response:
        account = caller(request, service, cookies)
        if share is not None:
            share_limit.hit("share", client_address(request))
        elif account is None:
            raise Unauthorized("log in, or read the blob through a share (?share=ID)")
        data = service.blob(
            account.id if account else None, sha256, session_id=session, share_id=share
        )
        return Response(data, 200, media_type="application/octet-stream")

    @api.post(
        "/blobs/{sha256}",
        response_model=schemas.BlobStored,
        status_code=201,
        tags=["blobs"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/octet-stream": {"schema": {"type": "string"}}},
            }
        },
    )
    async def put_blob(account: Me, sha256: Sha256, request: Request) -> Response:
        if not SHA256.match(sha256):
            raise InvalidInput("a blob is named by the lowercase hex SHA-256 of its bytes")
        data = await request.body()
        from starlette.concurrency import run_in_threadpool

        await run_in_threadpool(service.put_blob, sha256, data, account.id)
        return reply({"sha256": sha256, "size": len(data)}, 201)

    return api

"""create_app(service, ...) -> the ASGI app: the JSON API, the pages, and their guards."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from baton import __version__
from baton.core.errors import BatonError, RateLimited
from baton.server.auth import Cookies, RateLimiter, proxies
from baton.server.pages import LoginFirst
from baton.service import Service

MiB = 1024 * 1024
BODY_LIMIT = 32 * MiB  # a request body; an import may be larger
IMPORT_LIMIT = 512 * MiB
STATIC = Path(__file__).parent / "static"


def error_body(code: str, message: str, **details: Any) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, **details}})


class BodyLimit:
    """Refuse a request body over the limit with 413, whether or not it says its length."""

    def __init__(self, app: ASGIApp, limit: int = BODY_LIMIT) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = IMPORT_LIMIT if scope["path"] == "/api/sessions/import" else self.limit
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > limit:
                    await self._refuse(send, limit)
                    return
            if name == b"transfer-encoding":
                # No declared length: read the body here (up to the limit) and replay it.
                chunks: list[bytes] = []
                seen = 0
                more = True
                while more:
                    message = await receive()
                    if message["type"] != "http.request":
                        return
                    chunks.append(message.get("body", b""))
                    seen += len(chunks[-1])
                    if seen > limit:
                        await self._refuse(send, limit)
                        return
                    more = message.get("more_body", False)
                await self.app(scope, _replay(b"".join(chunks), receive), send)
                return
        await self.app(scope, receive, send)

    async def _refuse(self, send: Send, limit: int) -> None:
        body = error_body("too_large", f"the request body is over {limit // MiB} MiB")
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class NoNul:
    """Refuse a URL holding a NUL character (%00) with 422: no id, search or name has one,
    and PostgreSQL text cannot hold one (it would be a 500 deep in a query)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and ("\x00" in scope["path"] or b"%00" in scope["query_string"]):
            body = error_body("invalid_input", "the URL holds a NUL character (%00)")
            await send(
                {
                    "type": "http.response.start",
                    "status": 422,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


_PAGE_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; "
        b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


class Unexpected:
    """A bug is a one-line 500 (JSON, or a page), logged on the server; never a traceback to
    the caller, and the connection stays usable."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            import logging

            logging.getLogger("baton.server").exception("unexpected error on %s", scope["path"])
            if started:
                return
            message = "something went wrong on the server; it was logged"
            path: str = scope["path"]
            if path.startswith("/api") or path == "/openapi.json":
                body, kind = error_body("internal", message), b"application/json"
            else:
                body = (
                    b"<!doctype html><title>Something is wrong</title>"
                    b"<h1>Something is wrong</h1><p>" + message.encode() + b"</p>"
                )
                kind = b"text/html; charset=utf-8"
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", kind),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """nosniff on every answer; on pages also a strict CSP, no framing and a referrer policy
    (a route's own header, such as a share page's no-referrer, wins). Plain ASGI: cheap."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        page = not path.startswith("/api") and path != "/openapi.json"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = [(b"x-content-type-options", b"nosniff")]
                if page:
                    extra += _PAGE_HEADERS
                headers += [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def allowed_methods(request: Request) -> str:
    """The methods some route answers at the request's path, for a 405's `Allow` (asked of
    each route as if the request had that method: included routers keep their routes)."""
    from starlette.routing import Match

    allowed = []
    for method in ("DELETE", "GET", "PATCH", "POST", "PUT"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.routes):
            allowed.append(method)
    return ", ".join(allowed)


def create_app(
    service: Service,
    *,
    secret: str,
    secure_cookies: bool = False,
    login_rate: int = 10,
    share_rate: int = 300,
    trusted_proxies: Sequence[str] = (),
) -> FastAPI:
    """Everything the app uses is passed in: no globals, so tests build as many as they like.
    `trusted_proxies` (IPs or CIDRs) are the peers whose X-Forwarded-For names the client."""
    from baton.server.api import router as api
    from baton.server.install import router as install
    from baton.server.pages import router as pages
    from baton.server.run_pages import router as run_pages

    app = FastAPI(
        title="baton",
        version=__version__,
        description="Sessions of AI coding agents: resume, share, fork.",
        docs_url=None,
        redoc_url=None,
    )
    cookies = Cookies(secret, secure_cookies)
    share_limit = RateLimiter(share_rate, 60.0)
    login_limit = RateLimiter(login_rate, 60.0)
    from baton.runs.events import Hub

    # The app's event streams watch the service's events (one that publishes nowhere is
    # given a hub of this process); a stopping server ends them (processes.server).
    hub = service.events if isinstance(service.events, Hub) else Hub()
    service.events = hub
    app.state.service = service
    app.state.close_streams = hub.close
    app.state.cookies = cookies
    app.state.share_limit = share_limit
    app.state.login_limit = login_limit
    app.state.trusted_proxies = proxies(trusted_proxies)

    def wants_html(request: Request) -> bool:
        return not request.url.path.startswith("/api") and request.url.path != "/openapi.json"

    @app.exception_handler(BatonError)
    async def baton_error(request: Request, exc: BatonError) -> Response:
        headers = {}
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(exc.retry_after)
        if wants_html(request):
            from baton.server.pages import error_page

            return error_page(request, exc.status, exc.message, headers)
        details = {k: v for k, v in exc.details.items() if k != "retry_after"}
        return Response(
            error_body(exc.code, exc.message, **details),
            exc.status,
            headers,
            media_type="application/json",
        )

    @app.exception_handler(LoginFirst)
    async def login_first(request: Request, exc: LoginFirst) -> Response:
        return RedirectResponse(exc.location, 303)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for e in exc.errors()[:5]:
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            problems.append(f"{where}: {e.get('msg', 'invalid')}" if where else e.get("msg", ""))
        message = "; ".join(problems) or "invalid request"
        if wants_html(request):
            from baton.server.pages import error_page

            return error_page(request, 422, message)
        return Response(error_body("invalid_input", message), 422, media_type="application/json")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        message = {404: "not found", 405: "method not allowed"}.get(exc.status_code, exc.detail)
        if wants_html(request) and exc.status_code == 404:
            from baton.server.pages import error_page

            return error_page(request, 404, "There is nothing here.")
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 400:  # a body FastAPI could not parse: bad input, like the rest
            body = error_body("invalid_input", "the request body could not be parsed")
            return Response(body, 422, headers, media_type="application/json")
        if exc.status_code == 405:  # every method of the path, not only one route's
            headers["Allow"] = allowed_methods(request)
        return Response(
            error_body("not_found" if exc.status_code == 404 else "http_error", str(message)),
            exc.status_code,
            headers,
            media_type="application/json",
        )

    app.include_router(api)
    app.include_router(install)
    app.include_router(pages)
    app.include_router(run_pages)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodyLimit)
    app.add_middleware(NoNul)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(Unexpected)
    return app

"""What routes depend on, as FastAPI dependencies: the app's parts, which create_app puts on
`app.state` (no globals: tests build as many apps as they like), and who is calling. The
getters are async so that they run on the event loop, never costing a worker-thread hop."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from baton.core.errors import Unauthorized
from baton.core.models import Account
from baton.server.auth import Cookies, RateLimiter, bearer, caller, client_address
from baton.service import Service


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def cookies_of(request: Request) -> Cookies:
    """The signer of the app's cookies (its secret)."""
    cookies: Cookies = request.app.state.cookies
    return cookies


async def get_service(request: Request) -> Service:
    return service_of(request)


async def get_cookies(request: Request) -> Cookies:
    return cookies_of(request)


async def get_share_limit(request: Request) -> RateLimiter:
    """Reads of public shares (the API's and the pages'), per client address."""
    limit: RateLimiter = request.app.state.share_limit
    return limit


async def get_login_limit(request: Request) -> RateLimiter:
    """Login attempts on the pages, per client address."""
    limit: RateLimiter = request.app.state.login_limit
    return limit


ServiceDep = Annotated[Service, Depends(get_service)]
CookiesDep = Annotated[Cookies, Depends(get_cookies)]
ShareLimit = Annotated[RateLimiter, Depends(get_share_limit)]
LoginLimit = Annotated[RateLimiter, Depends(get_login_limit)]


async def me(request: Request, service: ServiceDep, cookies: CookiesDep) -> Account:
    """The caller's account; 401 without valid credentials. Over a local store this runs on
    the event loop (one indexed read) and the once-a-minute write of the token's last use goes
    to a worker thread; over a networked store (PostgreSQL) all of it runs in a worker thread,
    so the event loop never waits on the network."""
    if not service.inline_writes:
        return await run_in_threadpool(_identify_and_touch, request, service, cookies)
    account, due = _identify(request, service, cookies)
    if due is not None:
        await run_in_threadpool(service.accounts.touch, due)
    return account


Me = Annotated[Account, Depends(me)]


def _identify_and_touch(request: Request, service: Service, cookies: Cookies) -> Account:
    account, due = _identify(request, service, cookies)
    if due is not None:
        service.accounts.touch(due)
    return account


def _identify(request: Request, service: Service, cookies: Cookies) -> tuple[Account, str | None]:
    """The caller, and the id of their token if its last use is due to be recorded."""
    token = bearer(request)
    if token is None:
        account = caller(request, service, cookies)
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


def public(request: Request, share_limit: ShareLimit) -> None:
    """Public share routes are rate-limited per client address."""
    share_limit.hit("share", client_address(request))

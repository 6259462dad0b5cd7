"""The HTML pages: server-rendered, no JavaScript needed to read, CSRF-checked form posts.
One module-level `router`; the service, cookies and rate limits come from baton.server.deps.
A page checks the visitor (`need`, `viewer`) in its body, after FastAPI checked its input."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from baton.core.errors import BatonError, InvalidInput, NotFound, SecretsFound
from baton.core.models import Account, Message, published
from baton.core.partials import is_partial, join_runs
from baton.render.html import (
    PAGE_PART_CHARS,
    message_html,
    stylesheet,
    time_html,
    tool_names,
)
from baton.server.api.replies import export_download
from baton.server.auth import (
    COOKIE,
    COOKIE_MAX_AGE,
    CSRF_COOKIE,
    caller,
    client_address,
    csrf_ok,
    csrf_token,
)
from baton.server.deps import (
    CookiesDep,
    LoginLimit,
    ServiceDep,
    ShareLimit,
    cookies_of,
    service_of,
)
from baton.server.lineage import fork_point, rows
from baton.server.run_panel import latest_runs, session_panel, start_choices

if TYPE_CHECKING:
    from baton.service import Service

PAGE = 100  # messages per page of a conversation
EXPIRIES = [("", "never"), ("1h", "1 hour"), ("1d", "1 day"), ("7d", "7 days"), ("30d", "30 days")]
SHARE_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow, noarchive",
    "Cache-Control": "no-store",
}

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["when"] = lambda value: (value or "")[:16].replace("T", " ")
_env.filters["money"] = lambda value: f"${value:,.4f}" if value else "$0"
_env.filters["num"] = lambda value: f"{value:,}"
_env.filters["stamp"] = lambda value: (value or "")[:19].replace("T", " ")
_env.filters["ago"] = lambda value: Markup(time_html(value))  # relative, with JavaScript
_env.filters["repo_name"] = lambda url: str(url).split("://", 1)[-1].removesuffix(".git")


def _conversation(
    messages: list[Message], start: int, before: Message | None, after: Message | None
) -> list[Markup]:
    """The messages of a page as the export shows them (baton.render.html), each part cut
    at PAGE_PART_CHARS; `start` messages come before them. A streamed answer stored in chunks
    (baton.core.partials) is joined into one card numbered with the range of positions it
    stands for ("#3–#7") and linked by its last message's id; a run cut by the page boundary
    is joined within the page and says so: `before` and `after` are the stored messages just
    outside the page (None at either end)."""
    tools = tool_names(messages)
    out: list[Markup] = []
    position = start
    runs = join_runs(messages)
    for i, (message, count) in enumerate(runs):
        position += count
        notes = []
        if i == 0 and before is not None and is_partial(before):
            notes.append("continued from the previous page")
        if (
            i == len(runs) - 1
            and is_partial(messages[-1])
            and after is not None
            and after.role == "assistant"
        ):
            notes.append("continues on the next page")
        first = position - count + 1
        html = message_html(
            message, position, tools, PAGE_PART_CHARS, first=first, note="; ".join(notes)
        )
        out.append(Markup(html))
    return out


def _page(
    messages: list[Message], start: int, limit: int
) -> tuple[list[Message], Message | None, Message | None]:
    """Split the messages read from `max(start - 1, 0)` with `limit + 2` into the page and the
    message before and after it."""
    before = messages[0] if start > 0 and messages else None
    rest = messages[1:] if before is not None else messages
    return rest[:limit], before, rest[limit] if len(rest) > limit else None


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    token, new = csrf_token(request)
    body = _env.get_template(template).render(
        request=request, csrf=token, me=getattr(request.state, "me", None), **context
    )
    response = HTMLResponse(body, status, headers)
    if new:
        response.set_cookie(
            CSRF_COOKIE, token, max_age=COOKIE_MAX_AGE, httponly=True, samesite="strict"
        )
    return response


def error_page(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> HTMLResponse:
    titles = {404: "Not found", 410: "This link is no longer shared", 429: "Slow down"}
    extra = dict(headers or {})
    if request.url.path.startswith("/share/"):
        extra.update(SHARE_HEADERS)
    return render(
        request,
        "error.html",
        {"status": status, "title": titles.get(status, "Something is wrong"), "message": message},
        status,
        extra,
    )


class LoginFirst(Exception):
    """A page that needs a logged-in visitor: answered with a redirect to the login page."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def _local(next_url: str | None) -> str:
    """Only a path on this server is a place to go after login."""
    if next_url and next_url.startswith("/") and not next_url.startswith(("//", "/\\")):
        return next_url
    return "/"


router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)


def viewer(request: Request) -> Account | None:
    """The logged-in visitor (also for the templates), or None."""
    account = caller(request, service_of(request), cookies_of(request))
    request.state.me = account
    return account


def need(request: Request) -> Account:
    account = viewer(request)
    if account is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginFirst(f"/login?next={quote(target)}")
    return account


def check_csrf(request: Request, token: str | None) -> None:
    if not csrf_ok(request, token):
        raise InvalidInput("the form expired or came from another site; reload and try again")


def go(url: str) -> RedirectResponse:
    return RedirectResponse(url, 303)


# login
@router.get("/login")
def login_form(
    request: Request,
    next: str | None = None,
    code: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    viewer(request)
    return render(request, "login.html", {"next": _local(next), "code": code, "error": None})


@router.post("/login")
def login(
    request: Request,
    login_limit: LoginLimit,
    service: ServiceDep,
    cookies: CookiesDep,
    csrf: Annotated[str, Form()] = "",
    handle: Annotated[str, Form(max_length=100)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    token: Annotated[str, Form(max_length=300)] = "",
    code: Annotated[str, Form(max_length=300)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    login_limit.hit("login", client_address(request))
    check_csrf(request, csrf)
    account = None
    used = None
    if code:
        account = service.accounts.redeem(code.strip())
    elif token:
        found = service.accounts.authenticate_token(token.strip())
        if found is not None:
            account, used = found
    elif handle and password:
        account = service.accounts.check_password(handle, password)
    if account is None:
        message = (
            "That login link was used already or has expired."
            if code
            else "Wrong handle, password or token."
        )
        return render(
            request,
            "login.html",
            {"next": _local(next), "code": None, "error": message},
            401,
        )
    response = go(_local(next))
    response.set_cookie(
        COOKIE,
        cookies.sign(service.accounts.start_login(account.id, used)),
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=cookies.secure,
    )
    return response


@router.post("/logout")
def logout(
    request: Request, service: ServiceDep, cookies: CookiesDep, csrf: Annotated[str, Form()] = ""
) -> Response:
    check_csrf(request, csrf)
    login = cookies.login(request.cookies.get(COOKIE))
    if login is not None:
        service.accounts.logout(login)
    response = go("/login")
    response.delete_cookie(COOKIE)
    return response


# my sessions
@router.get("/")
def index(
    request: Request,
    service: ServiceDep,
    q: Annotated[str | None, Query(max_length=500)] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    repo: Annotated[str | None, Query(max_length=2000)] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    account = need(request)
    return index_page(request, service, account, q=q, status=status, repo=repo, cursor=cursor)


def index_page(
    request: Request,
    service: Service,
    account: Account,
    *,
    q: str | None = None,
    status: str | None = None,
    repo: str | None = None,
    cursor: str | None = None,
    start: dict[str, str] | None = None,
    error: str | None = None,
    code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """Recent sessions with the state of their server runs, and the "New session" form
    (`start`: the values a refused form is shown again with, `error`: why)."""
    page = service.list(
        account.id, limit=50, cursor=cursor, status=status or None, repo=repo or None, query=q
    )
    more = None
    if page.next_cursor:
        args = {k: v for k, v in {"q": q, "status": status, "repo": repo}.items() if v}
        more = "/?" + urlencode({**args, "cursor": page.next_cursor})
    runs = latest_runs(service, account.id, (s.id for s in page.sessions))
    return render(
        request,
        "index.html",
        {"sessions": page.sessions, "rows": rows(service, account.id, page.sessions, q),
         "q": q or "", "status": status or "", "repo": repo or "",
         "more": more, "statuses": ["active", "paused", "done", "archived"], "runs": runs,
         "start": start or {}, "error": error, **start_choices(service, account.id)},
        code,
        headers,
    )  # fmt: skip


@router.get("/sessions/{session_id}")
def session_page(
    request: Request,
    service: ServiceDep,
    session_id: str,
    start: Annotated[int | None, Query(ge=0)] = None,
    at: Annotated[str | None, Query(max_length=200)] = None,
    shared: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    account = need(request)
    return conversation_page(
        request, service, account, session_id, start=start, at=at, shared=shared
    )


def _opening(
    service: Service, head: str | None, count: int, start: int | None, at: str | None, name: str
) -> tuple[int, bool]:
    """Where a conversation page starts, and whether it opens at the latest turn: at `start`
    when given, on the page around message `at` (a permalink), else on the last page."""
    if start is not None:
        return min(start, max(count - 1, 0)), False
    if at:
        position = service.after(head, at, name) - 1
        return max(position - PAGE // 2, 0), False
    return max(count - PAGE, 0), True


def conversation_page(
    request: Request,
    service: Service,
    account: Account,
    session_id: str,
    *,
    start: int | None = None,
    at: str | None = None,
    shared: str | None = None,
    prompt: str = "",
    error: str | None = None,
    code: int = 200,
) -> Response:
    """A session page: the conversation, its run panel and the ways to continue it
    (`prompt`: the text a refused prompt is shown again with, `error`: why)."""
    session = service.get(account.id, session_id)
    start, latest = _opening(
        service, session.head, session.message_count, start, at, f"session {session_id}"
    )
    around = service.messages(account.id, session_id, start=max(start - 1, 0), limit=PAGE + 2)
    messages, before, after = _page(around, start, PAGE)
    live = service.live_shares(account.id, session_id)
    new_share = next((s for s in live if s.id == shared), None)
    return render(
        request,
        "session.html",
        {
            "session": session,
            "messages": _conversation(messages, start, before, after),
            "start": start,
            "page": PAGE,
            "latest": latest,
            "fork_point": fork_point(service, session),
            "shares": live,
            "new_share": new_share,
            "share_url": service.share_url,
            "server": service.base_url,
            "prompt": prompt,
            "error": error,
            **session_panel(service, account.id, session),
        },
        code,
    )


@router.post("/sessions/{session_id}/rename")
def rename(
    request: Request,
    service: ServiceDep,
    session_id: str,
    csrf: Annotated[str, Form()] = "",
    title: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    account = need(request)
    check_csrf(request, csrf)
    service.rename(account.id, session_id, title)
    return go(f"/sessions/{session_id}")


@router.get("/sessions/{session_id}/share")
def share_form(request: Request, service: ServiceDep, session_id: str) -> Response:
    account = need(request)
    session = service.get(account.id, session_id)
    findings = service.scan_session(account.id, session_id)
    return render(
        request,
        "share_form.html",
        {"session": session, "findings": findings, "expiries": EXPIRIES, "error": None,
         "published": published(session.message_count, session.git)},
    )  # fmt: skip


@router.post("/sessions/{session_id}/share")
def share(
    request: Request,
    service: ServiceDep,
    session_id: str,
    csrf: Annotated[str, Form()] = "",
    expires: Annotated[str, Form(max_length=20)] = "",
    mode: Annotated[str, Form(max_length=20)] = "block",
    no_code: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    account = need(request)
    check_csrf(request, csrf)
    try:
        created = service.share(
            account.id, session_id, expires=expires or None, mode=mode, code=not no_code
        )
    except SecretsFound as exc:
        session = service.get(account.id, session_id)
        return render(
            request,
            "share_form.html",
            {"session": session, "findings": exc.findings, "expiries": EXPIRIES,
             "published": published(session.message_count, session.git),
             "error": f"{len(exc.findings)} secret(s) found, so nothing was shared. "
                      "Remove them, or choose below to share with them redacted."},
            422,
        )  # fmt: skip
    return go(f"/sessions/{session_id}?shared={created.id}")


@router.post("/sessions/{session_id}/fork")
def fork_own(
    request: Request,
    service: ServiceDep,
    session_id: str,
    csrf: Annotated[str, Form()] = "",
    at: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    account = need(request)
    check_csrf(request, csrf)
    if not session_id.startswith("ses_"):
        raise NotFound(f"no session {session_id}")
    forked = service.fork(account.id, session_id, at=at or None, platform="web")
    return go(f"/sessions/{forked.id}")


@router.get("/sessions/{session_id}/export")
def export(
    request: Request,
    service: ServiceDep,
    session_id: str,
    format: Annotated[str, Query(pattern="^(json|markdown|md|html|opencode)$")] = "json",
) -> Response:
    account = need(request)
    return export_download(service, account.id, session_id, format)


@router.get("/sessions/{session_id}/delete")
def delete_form(request: Request, service: ServiceDep, session_id: str) -> Response:
    account = need(request)
    session = service.get(account.id, session_id)
    live = service.live_shares(account.id, session_id)
    return render(request, "delete.html", {"session": session, "shares": live})


@router.post("/sessions/{session_id}/delete")
def delete(
    request: Request,
    service: ServiceDep,
    session_id: str,
    csrf: Annotated[str, Form()] = "",
    revoke_shares: Annotated[str, Form()] = "",
) -> Response:
    account = need(request)
    check_csrf(request, csrf)
    service.delete(account.id, session_id, revoke_shares=bool(revoke_shares))
    return go("/")


# my links
@router.get("/shares")
def my_shares(request: Request, service: ServiceDep) -> Response:
    account = need(request)
    found = service.shares(account.id)
    now = service.now()
    return render(
        request,
        "shares.html",
        {"shares": [(s, s.state(now)) for s in found], "share_url": service.share_url},
    )


@router.post("/shares/{share_id}/revoke")
def revoke(
    request: Request,
    service: ServiceDep,
    share_id: str,
    csrf: Annotated[str, Form()] = "",
    back: Annotated[str, Form(max_length=2000)] = "/shares",
) -> Response:
    account = need(request)
    check_csrf(request, csrf)
    service.revoke(account.id, share_id)
    return go(_local(back))


# tokens
@router.get("/tokens")
def tokens(request: Request, service: ServiceDep) -> Response:
    return _tokens_page(request, service, need(request).id, None)


def _tokens_page(
    request: Request, service: Service, account_id: str, created: str | None
) -> Response:
    """The tokens page: my tokens, and the secret of one just created (shown once)."""
    found = service.accounts.tokens(account_id)
    return render(
        request,
        "tokens.html",
        {"tokens": found, "created": created, "now": service.now(), "server": service.base_url},
    )


@router.post("/tokens")
def create_token(
    request: Request,
    service: ServiceDep,
    csrf: Annotated[str, Form()] = "",
    name: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    account = need(request)
    check_csrf(request, csrf)
    _, secret = service.accounts.create_token(account.id, name)
    return _tokens_page(request, service, account.id, secret)


@router.post("/tokens/{token_id}/revoke")
def revoke_token(
    request: Request, service: ServiceDep, token_id: str, csrf: Annotated[str, Form()] = ""
) -> Response:
    account = need(request)
    check_csrf(request, csrf)
    service.accounts.revoke(account.id, token_id)
    return go("/tokens")


# the public share page
@router.get("/share/{share_id}")
def public_share(
    request: Request,
    share_limit: ShareLimit,
    service: ServiceDep,
    share_id: str,
    start: Annotated[int | None, Query(ge=0)] = None,
    at: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    share_limit.hit("share", client_address(request))
    viewer(request)
    try:
        share = service.public_share(share_id)
    except BatonError as exc:
        return error_page(request, exc.status, exc.message)
    if start is None and at is None:
        begin = 0  # a shared conversation reads from its start, the rest streamed in after
    else:
        begin, _ = _opening(service, share.head, share.message_count, start, at, "this share")
    around = service.share_messages(share_id, start=max(begin - 1, 0), limit=PAGE + 2)
    messages, before, after = _page(around, begin, PAGE)
    return render(
        request,
        "share.html",
        {
            "share": share,
            "messages": _conversation(messages, begin, before, after),
            "shown": len(messages),
            "start": begin,
            "page": PAGE,
            "url": service.share_url(share.id),
            "install": service.install_url(),
        },
        headers=SHARE_HEADERS,
    )


@router.get("/share/{share_id}/fork")
def fork_form(request: Request, service: ServiceDep, share_id: str) -> Response:
    need(request)
    share = service.public_share(share_id)
    return render(request, "fork.html", {"share": share}, headers=SHARE_HEADERS)


@router.post("/share/{share_id}/fork")
def fork_share(
    request: Request, service: ServiceDep, share_id: str, csrf: Annotated[str, Form()] = ""
) -> Response:
    account = viewer(request)
    if account is None:
        return go(f"/login?next={quote(f'/share/{share_id}/fork')}")
    check_csrf(request, csrf)
    if share_id.startswith("ses_"):
        raise NotFound(f"no share {share_id}")
    forked = service.fork(account.id, share_id, platform="web")
    return go(f"/sessions/{forked.id}")


@router.get("/static/style.css")
def style_css(request: Request) -> Response:
    """The stylesheet the HTML export inlines; revalidated by its ETag."""
    css = stylesheet()
    tag = f'"{hashlib.sha256(css.encode()).hexdigest()[:16]}"'
    headers = {"ETag": tag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers=headers)
    return Response(css, media_type="text/css", headers=headers)

"""Who may do what, over every route: the owner, another account, an anonymous caller, a
revoked token, and a revoked share. Another account's things are 404 everywhere, exactly as if
they did not exist, and nothing about them leaks into lists, search, forks, blobs or exports."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from tests.fixtures.servers import Live
from tests.helpers import text_message

BIG = "blob output " + "x" * 70_000
UPLOAD = b"an attachment"


@dataclass
class World:
    session: str
    share: str
    revoked_share: str
    token_id: str
    sha: str
    message: str
    title: str
    repo: str = ""
    environment: str = ""
    run: str = ""


def world(live: Live) -> World:
    """Fresh things of alice's for one request (some routes delete what they touch)."""
    svc, me = live.service, live.alice.id
    session = svc.create(me, title="Alice's private plans about zebras")
    appended = svc.append(
        me, session.id, [text_message("user", "zebra stripes"), text_message("assistant", BIG)]
    ).appended
    share = svc.share(me, session.id)
    revoked = svc.share(me, session.id)
    svc.revoke(me, revoked.id)
    token, _ = svc.accounts.create_token(me, "spare")
    [part] = appended[1].parts
    svc.max_runs = 1000  # every route of the matrix starts runs of alice's
    repo = svc.add_repo(me, f"https://git.example.com/zebras/{secrets.token_hex(4)}.git")
    environment = svc.add_environment(me, f"zebra-{secrets.token_hex(4)}", secrets={"Z": "zebra"})
    # on a session of its own: a session with a run in progress is not deleted (409)
    run, _ = svc.start_run(me, "zebra work", repo=repo.id)
    return World(
        session.id,
        share.id,
        revoked.id,
        token.id,
        part["sha256"],
        appended[0].id,
        session.title,
        repo.id,
        environment.id,
        run.id,
    )


# method, path, body, kind: "private" (alice's session/share/token), "mine" (the caller's own
# collection), "public" (a share link)
ROUTES: list[tuple[str, str, Any, str]] = [
    ("GET", "/api/me", None, "mine"),
    ("GET", "/api/tokens", None, "mine"),
    ("POST", "/api/tokens", {"name": "x"}, "mine"),
    ("DELETE", "/api/tokens/{token_id}", None, "private"),
    ("POST", "/api/sessions", {"title": "new"}, "mine"),
    ("GET", "/api/sessions", None, "mine"),
    ("GET", "/api/sessions?q=zebra", None, "mine"),
    ("POST", "/api/sessions/import", "export", "mine"),
    ("GET", "/api/sessions/{session}", None, "private"),
    ("PATCH", "/api/sessions/{session}", {"title": "renamed"}, "private"),
    ("DELETE", "/api/sessions/{session}?revoke_shares=true", None, "private"),
    ("GET", "/api/sessions/{session}/messages", None, "private"),
    ("GET", "/api/sessions/{session}/events?follow=false", None, "private"),
    (
        "POST",
        "/api/sessions/{session}/messages",
        {"messages": [text_message("user", "hi")]},
        "private",
    ),
    ("POST", "/api/sessions/{session}/fork", {}, "private"),
    ("GET", "/api/sessions/{session}/scan", None, "private"),
    ("POST", "/api/sessions/{session}/shares", {}, "private"),
    ("GET", "/api/sessions/{session}/export", None, "private"),
    ("GET", "/api/sessions/{session}/verify", None, "private"),
    ("GET", "/api/verify", None, "mine"),
    ("GET", "/api/shares", None, "mine"),
    ("DELETE", "/api/shares/{share}", None, "private"),
    ("GET", "/api/shares/{share}", None, "public"),
    ("GET", "/api/shares/{share}/messages", None, "public"),
    ("POST", "/api/shares/{share}/fork", {}, "public-write"),
    ("GET", "/api/blobs/{sha}?session={session}", None, "private"),
    ("GET", "/api/blobs/{sha}?share={share}", None, "public"),
    ("POST", "/api/blobs/{upload}", UPLOAD, "mine"),
    ("GET", "/api/repos", None, "mine"),
    ("POST", "/api/repos", {"url": "https://git.example.com/mine/tools.git"}, "mine"),
    ("DELETE", "/api/repos/{repo}", None, "private"),
    ("GET", "/api/environments", None, "mine"),
    ("POST", "/api/environments", {"name": "mine", "secrets": {"K": "value"}}, "mine"),
    ("PATCH", "/api/environments/{environment}", {"network": True}, "private"),
    ("DELETE", "/api/environments/{environment}", None, "private"),
    ("POST", "/api/runs", {"prompt": "go", "repo": "{repo}"}, "private"),
    ("GET", "/api/runs", None, "mine"),
    ("GET", "/api/runs?session={session}", None, "private"),
    ("GET", "/api/runs/{run}", None, "private"),
    ("POST", "/api/runs/{run}/cancel", None, "private"),
    ("GET", "/api/health", None, "open"),
]


def call(
    live: Live, who: dict[str, str], route: tuple[str, str, Any, str], w: World
) -> httpx.Response:
    method, path, body, _ = route
    path = path.format(
        session=w.session,
        share=w.share,
        token_id=w.token_id,
        sha=w.sha,
        upload=hashlib.sha256(UPLOAD).hexdigest(),
        repo=w.repo,
        environment=w.environment,
        run=w.run,
    )
    if isinstance(body, dict) and body.get("repo") == "{repo}":
        body = {**body, "repo": w.repo}
    kwargs: dict[str, Any] = {}
    if body == "export":
        doc = live.service.export(live.alice.id, w.session)
        kwargs["content"] = orjson.dumps(doc)
        kwargs["headers"] = {"Content-Type": "application/json"}
    elif isinstance(body, bytes):
        kwargs["content"] = body
    elif body is not None:
        kwargs["json"] = body
    with live.client(headers=who, timeout=30) as http:
        return http.request(method, path, **kwargs)


def test_the_matrix_covers_every_api_route(live: Live) -> None:
    from starlette.routing import Route

    app_routes = set()
    with live.client() as http:
        spec = http.get("/openapi.json").json()
    for path, methods in spec["paths"].items():
        for method in methods:
            app_routes.add((method.upper(), path))
    covered = set()
    for method, path, _, _ in ROUTES:
        template = path.split("?")[0]
        for name, field in (
            ("{session}", "{session_id}"),
            ("{share}", "{share_id}"),
            ("{sha}", "{sha256}"),
            ("{upload}", "{sha256}"),
            ("{repo}", "{repo_id}"),
            ("{environment}", "{environment_id}"),
            ("{run}", "{run_id}"),
        ):
            template = template.replace(name, field)
        covered.add((method, template))
    assert app_routes == covered
    assert Route  # the spec is the app's own route table


def test_the_owner_may_do_everything(live: Live) -> None:
    for route in ROUTES:
        response = call(live, live.alice.headers, route, world(live))
        assert response.status_code in (200, 201), (route, response.text)


def test_another_account_sees_nothing_of_alices(live: Live) -> None:
    for route in ROUTES:
        w = world(live)
        before = live.service.get(live.alice.id, w.session)
        response = call(live, live.bob.headers, route, w)
        kind = route[3]
        if kind == "private":
            assert response.status_code == 404, (route, response.text)
            # the same answer as for an id that never existed: nothing confirms it exists
            fake = World(
                "ses_01AAAAAAAAAAAAAAAAAAAAAAAA",
                "A" * 23,
                "B" * 23,
                "tok_nothing",
                "0" * 64,
                "",
                "",
                "repo_01AAAAAAAAAAAAAAAAAAAAAAAA",
                "env_01AAAAAAAAAAAAAAAAAAAAAAAA",
                "run_01AAAAAAAAAAAAAAAAAAAAAAAA",
            )
            other = call(live, live.bob.headers, route, fake)
            assert other.status_code == 404
            assert response.json()["error"]["code"] == other.json()["error"]["code"] == "not_found"
        else:
            assert response.status_code in (200, 201), (route, response.text)
        if kind == "private":  # ids the caller typed may be echoed; contents may not
            leaks = [w.title, "zebra"]
        elif (
            kind in ("public", "public-write") or "import" in route[1]
        ):  # a share is public by design, its session not
            leaks = [w.session, w.token_id]
        else:
            leaks = [w.session, w.title, "zebra", w.token_id]
        for leak in leaks:
            assert leak not in response.text, (route, leak)
        assert live.service.get(live.alice.id, w.session) == before


def test_anonymous_callers_only_read_shares(live: Live) -> None:
    for route in ROUTES:
        response = call(live, {}, route, world(live))
        if route[3] in ("public", "open"):
            assert response.status_code == 200, (route, response.text)
        else:
            assert response.status_code == 401, (route, response.text)
            assert response.json()["error"]["code"] == "unauthorized"


def test_a_revoked_token_is_refused_everywhere_it_is_checked(live: Live) -> None:
    svc = live.service
    token, secret = svc.accounts.create_token(live.alice.id, "soon revoked")
    headers = {"Authorization": f"Bearer {secret}"}
    w = world(live)
    assert call(live, headers, ("GET", "/api/sessions/{session}", None, ""), w).status_code == 200
    svc.accounts.revoke(live.alice.id, token.id)
    for route in ROUTES:
        if route[3] in ("public", "open"):
            continue
        response = call(live, headers, route, world(live))
        assert response.status_code == 401, (route, response.text)
        assert "revoked" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "route",
    [
        ("GET", "/api/shares/{share}", None, "public"),
        ("GET", "/api/shares/{share}/messages", None, "public"),
        ("POST", "/api/shares/{share}/fork", {}, "public-write"),
        ("GET", "/api/blobs/{sha}?share={share}", None, "public"),
    ],
)
def test_a_revoked_share_is_gone_for_everyone(live: Live, route: tuple[str, str, Any, str]) -> None:
    w = world(live)
    w.share = w.revoked_share
    for who in (live.alice.headers, live.bob.headers, {}):
        response = call(live, who, route, w)
        if route[0] == "POST" and not who:
            assert response.status_code == 401
            continue
        assert response.status_code == 410, (route, response.text)
        assert response.json()["error"]["code"] == "gone"
    with live.client() as http:
        page = http.get(f"/share/{w.revoked_share}")
    assert page.status_code == 410 and "This link is no longer shared" in page.text


def test_blobs_are_read_only_through_what_references_them(live: Live) -> None:
    w = world(live)
    alice, bob = live.alice.headers, live.bob.headers
    with live.client(timeout=30) as http:
        ok = http.get(f"/api/blobs/{w.sha}", params={"session": w.session}, headers=alice)
        assert ok.status_code == 200 and ok.content == BIG.encode()
        # bob's own session does not reference it; naming alice's session is a 404
        mine = live.service.create(live.bob.id)
        for params in ({"session": mine.id}, {"session": w.session}, {}):
            assert http.get(f"/api/blobs/{w.sha}", params=params, headers=bob).status_code == 404
        # anyone may read it through the live share that references it
        assert http.get(f"/api/blobs/{w.sha}", params={"share": w.share}).content == BIG.encode()
        # an uploaded blob no message references is readable by no one
        sha = hashlib.sha256(UPLOAD).hexdigest()
        assert http.post(f"/api/blobs/{sha}", content=UPLOAD, headers=bob).status_code == 201
        assert (
            http.get(f"/api/blobs/{sha}", params={"session": mine.id}, headers=bob).status_code
            == 404
        )
        wrong = http.post(f"/api/blobs/{'0' * 64}", content=UPLOAD, headers=bob)
        assert wrong.status_code == 422 and "does not hash" in wrong.json()["error"]["message"]


def test_pages_of_another_account_are_404(live: Live) -> None:
    w = world(live)
    with live.client(headers=live.bob.headers) as http:
        for path in (
            f"/sessions/{w.session}",
            f"/sessions/{w.session}/share",
            f"/sessions/{w.session}/delete",
            f"/sessions/{w.session}/export",
        ):
            page = http.get(path)
            assert page.status_code == 404, path
            assert "zebra" not in page.text
        index = http.get("/", params={"q": "zebra"})
        assert index.status_code == 200 and w.session not in index.text
        shares = http.get("/shares")
        assert w.share not in shares.text
    with live.client() as http:
        assert http.get(f"/sessions/{w.session}").status_code == 303  # to the login page

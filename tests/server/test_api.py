"""The HTTP API and pages as a client sees them: error shapes, ETags, limits, login, headers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from baton.server import create_app
from tests.fixtures.servers import IN_PROCESS, SECRET, Live, in_process, make_service, person
from tests.helpers import text_message, tool_turn

FAKE_KEY = "sk-proj-" + "Ab3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5xY7w"


@pytest.fixture
def alice(live: Live) -> Iterator[httpx.Client]:
    with live.client(live.alice) as http:
        yield http


def new_session(http: httpx.Client, n: int = 0) -> dict[str, object]:
    session = http.post("/api/sessions", json={"title": "api test"}).json()
    if n:
        batch = [text_message("user", f"turn {i}") for i in range(n)]
        http.post(f"/api/sessions/{session['id']}/messages", json={"messages": batch})
    return dict(http.get(f"/api/sessions/{session['id']}").json())


def test_errors_are_one_json_line_and_change_nothing(live: Live, alice: httpx.Client) -> None:
    session = new_session(alice)
    path = f"/api/sessions/{session['id']}/messages"
    cases = [
        (b'{"messages": [', "application/json"),
        (b"not json at all", "application/json"),
        (b'{"messages": []}', "application/json"),
        (b'{"messages": [{"role": "robot", "parts": []}]}', "application/json"),
        (
            b'{"messages": [{"role": "user", "parts": [{"type": "text", "text": 5}]}]}',
            "application/json",
        ),
        (b'{"messages": "x", "extra": 1}', "application/json"),
    ]
    for body, kind in cases:
        response = alice.post(path, content=body, headers={"Content-Type": kind})
        assert response.status_code == 422, body
        error = response.json()["error"]
        assert error["code"] == "invalid_input" and "\n" not in error["message"], body
        assert "Traceback" not in response.text
    assert alice.get(f"/api/sessions/{session['id']}").json()["version"] == session["version"]
    unknown = alice.get("/api/sessions/ses_01AAAAAAAAAAAAAAAAAAAAAAAA")
    assert unknown.status_code == 404
    assert unknown.json() == {
        "error": {"code": "not_found", "message": "no session ses_01AAAAAAAAAAAAAAAAAAAAAAAA"}
    }
    assert alice.get("/api/nothing-here").json()["error"]["code"] == "not_found"


def test_etag_and_if_match(alice: httpx.Client) -> None:
    session = new_session(alice)
    path = f"/api/sessions/{session['id']}"
    got = alice.get(path)
    assert got.headers["etag"] == '"1"'
    renamed = alice.patch(path, json={"title": "renamed"}, headers={"If-Match": '"1"'})
    assert renamed.status_code == 200 and renamed.headers["etag"] == '"2"'
    stale = alice.patch(path, json={"title": "again"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "version_mismatch"
    assert stale.json()["error"]["current_version"] == 2
    assert (
        alice.patch(path, json={"title": "x"}, headers={"If-Match": "yesterday"}).status_code == 422
    )
    assert (
        alice.patch(path, json={"status": "done"}, headers={"If-Match": 'W/"2"'}).status_code == 200
    )
    assert alice.get(path).json()["title"] == "renamed"


def test_a_moved_head_is_409_with_the_current_head(alice: httpx.Client) -> None:
    session = new_session(alice, 1)
    path = f"/api/sessions/{session['id']}/messages"
    stale = alice.post(path, json={"expected_head": None, "messages": [text_message("user", "x")]})
    assert stale.status_code == 409
    assert stale.json()["error"]["current_head"] == session["head"]
    ok = alice.post(
        path, json={"expected_head": session["head"], "messages": [text_message("user", "y")]}
    )
    assert ok.status_code == 201 and ok.json()["appended"][0]["parent"] == session["head"]


def test_messages_page_by_after(alice: httpx.Client) -> None:
    session = new_session(alice, 25)
    path = f"/api/sessions/{session['id']}/messages"
    seen: list[str] = []
    params: dict[str, object] = {"limit": 10}
    while True:
        page = alice.get(path, params=params).json()
        seen += [m["parts"][0]["text"] for m in page["messages"]]
        if page["next_after"] is None:
            break
        params["after"] = page["next_after"]
    assert seen == [f"turn {i}" for i in range(25)]
    assert alice.get(path, params={"after": "m_" + "1" * 64}).status_code == 404


def test_huge_bodies_are_413(live: Live, alice: httpx.Client) -> None:
    session = new_session(alice)
    path = f"/api/sessions/{session['id']}/messages"
    big = (
        b'{"messages": [{"role": "user", "parts": [{"type": "text", "text": "'
        + b"a" * (33 * 1024 * 1024)
        + b'"}]}]}'
    )
    response = alice.post(path, content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"

    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"a" * (1024 * 1024)

    streamed = alice.post(path, content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    assert alice.get(f"/api/sessions/{session['id']}").json()["message_count"] == 0


def test_writes_with_only_a_cookie_are_refused(live: Live) -> None:
    with live.client(follow_redirects=False) as browser:
        login(browser, token=live.alice.token)
        assert browser.get("/api/me").json()["handle"] == "alice"
        refused = browser.post("/api/sessions", json={"title": "csrf?"})
        assert refused.status_code == 401
    assert live.service.list(live.alice.id).sessions == []


def csrf_of(http: httpx.Client, path: str = "/login") -> str:
    page = http.get(path)
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def login(http: httpx.Client, **fields: str) -> httpx.Response:
    token = csrf_of(http)
    return http.post("/login", data={"csrf": token, **fields})


def test_login_with_token_password_and_one_time_code(live: Live) -> None:
    svc = live.service
    svc.accounts.set_password(live.bob.id, "correct horse battery")
    with live.client(follow_redirects=False) as browser:
        assert browser.get("/").headers["location"] == "/login?next=/"
        wrong = login(browser, handle="bob", password="wrong password")
        assert wrong.status_code == 401 and "Wrong handle, password or token." in wrong.text
        done = login(browser, handle="bob", password="correct horse battery", next="/shares")
        assert done.status_code == 303 and done.headers["location"] == "/shares"
        cookie = done.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "baton_session=" in cookie
        assert browser.get("/shares").status_code == 200
        # an outside address is no place to go after login
        assert (
            login(browser, token=live.bob.token, next="//evil.example").headers["location"] == "/"
        )
    code = svc.accounts.login_code(live.alice.id)
    with live.client(follow_redirects=False) as browser:
        form = browser.get("/login", params={"code": code})
        assert 'id="login-code"' in form.text
        assert login(browser, code=code).status_code == 303
        assert "Alice Example" in browser.get("/").text
    with live.client(follow_redirects=False) as browser:
        again = login(browser, code=code)
        assert again.status_code == 401 and "used already or has expired" in again.text
    with live.client(follow_redirects=False) as browser:
        csrf_of(browser)
        forged = browser.post("/login", data={"csrf": "not-the-cookie", "token": live.bob.token})
        assert forged.status_code == 422 and "baton_session" not in forged.headers.get(
            "set-cookie", ""
        )


def test_revoking_the_token_a_browser_logged_in_with_ends_that_login(live: Live) -> None:
    token, secret = live.service.accounts.create_token(live.alice.id, "browser")
    with live.client(follow_redirects=False) as browser:
        assert login(browser, token=secret).status_code == 303
        assert browser.get("/").status_code == 200
        live.service.accounts.revoke(live.alice.id, token.id)
        assert browser.get("/").headers["location"] == "/login?next=/"


def test_form_posts_need_the_csrf_token(live: Live) -> None:
    session = live.service.create(live.alice.id, title="keep me")
    with live.client(follow_redirects=False) as browser:
        login(browser, token=live.alice.token)
        bad = browser.post(f"/sessions/{session.id}/rename", data={"title": "hijacked"})
        assert bad.status_code == 422
        good = browser.post(
            f"/sessions/{session.id}/rename",
            data={"title": "renamed", "csrf": csrf_of(browser, "/")},
        )
        assert good.status_code == 303
    assert live.service.get(live.alice.id, session.id).title == "renamed"


def test_login_and_share_routes_are_rate_limited(tmp_path) -> None:  # type: ignore[no-untyped-def]
    service = make_service(tmp_path)
    alice = person(service, "alice", "Alice")
    session = service.create(alice.id, title="limited")
    share = service.share(alice.id, session.id)
    app = create_app(service, secret=SECRET, login_rate=3, share_rate=5)
    with (
        in_process(app) as app_transport,
        httpx.Client(base_url=IN_PROCESS, transport=app_transport) as http,
    ):
        codes = [http.get(f"/api/shares/{share.id}").status_code for _ in range(6)]
        assert codes == [200] * 5 + [429]
        limited = http.get(f"/share/{share.id}")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert http.get(f"/api/shares/{share.id}").json()["error"]["code"] == "rate_limited"
        token = csrf_of(http)
        posts = [
            http.post("/login", data={"csrf": token, "token": "wrong"}).status_code
            for _ in range(4)
        ]
        assert posts == [401, 401, 401, 429]
        # private routes with a valid token are not limited by the public bucket
        headers = alice.headers
        assert http.get(f"/api/sessions/{session.id}", headers=headers).status_code == 200
    service.store.close()


def test_the_share_page(live: Live, alice: httpx.Client) -> None:
    svc, me = live.service, live.alice.id
    session = svc.create(
        me,
        title="Fix <b>the</b> parser",
        git={"remote": "github.com/acme/app", "branch": "main", "head": "a" * 40},
    )
    svc.append(
        me,
        session.id,
        [
            text_message("user", "look: <script>alert(1)</script> [x](javascript:alert(1))"),
            text_message("assistant", "```python\ndef f():\n    return 1\n```"),
            *tool_turn("c1", "bash", {"cmd": "ls"}, "\n".join(f"line {i}" for i in range(60))),
            *[text_message("user", f"later {i}") for i in range(40)],
        ],
    )
    share = svc.share(me, session.id)
    with live.client() as anyone:
        page = anyone.get(f"/share/{share.id}")
    assert page.status_code == 200
    headers = page.headers
    assert headers["referrer-policy"] == "no-referrer"
    assert "noindex" in headers["x-robots-tag"]
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "script-src 'self'" in headers["content-security-policy"]
    html = page.text
    assert "Alice Example" in html and "Fix &lt;b&gt;the&lt;/b&gt; parser" in html
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="javascript' not in html
    url = svc.share_url(share.id)
    assert f'value="baton --fork {url}"' in html  # the URL works on any machine
    link = "://baton.baton/fork?url=" + quote(url, safe="")
    assert f'id="open-in-editor" href="vscode{link}"' in html
    for scheme in ("vscode", "vscode-insiders", "cursor", "windsurf", "vscodium"):
        assert f'href="{scheme}{link}"' in html
    assert '<script src="/static/editor.js"' in html and "<script>" not in html
    assert "github.com/acme/app" in html and "aaaaaaaaaaaa" in html
    assert '<span class="k">def</span>' in html  # highlighted
    # the output's first lines, the rest folded, as in the export
    assert '<details class="more"><summary>Show all 60 lines</summary>' in html
    assert html.count('class="message role-') == 44  # the whole conversation, one scroll
    with live.client() as anyone:
        assert anyone.get("/share/AAAAAAAAAAAAAAAAAAAAAAA").status_code == 404
        svc.revoke(me, share.id)
        gone = anyone.get(f"/share/{share.id}")
        assert gone.status_code == 410 and "This link is no longer shared" in gone.text
        assert gone.headers["referrer-policy"] == "no-referrer"


def test_openapi_lists_the_api(live: Live) -> None:
    spec = live.client().get("/openapi.json").json()
    assert spec["info"]["title"] == "baton"
    for path in (
        "/api/sessions",
        "/api/sessions/{session_id}",
        "/api/sessions/{session_id}/messages",
        "/api/sessions/{session_id}/fork",
        "/api/sessions/{session_id}/shares",
        "/api/shares",
        "/api/shares/{share_id}",
        "/api/shares/{share_id}/messages",
        "/api/shares/{share_id}/fork",
        "/api/blobs/{sha256}",
    ):
        assert path in spec["paths"], path
    assert not any(p.startswith("/share/") or p == "/" for p in spec["paths"])


def test_a_bug_is_a_one_line_500_without_a_traceback(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals /home/server/path")

    monkeypatch.setattr(live.service, "list", broken)
    with live.client(live.alice) as http:
        api = http.get("/api/sessions")
        page = http.get("/")
    assert api.status_code == 500
    assert api.json() == {
        "error": {
            "code": "internal",
            "message": "something went wrong on the server; it was logged",
        }
    }
    assert page.status_code == 500 and "something went wrong" in page.text
    assert "secret internals" not in api.text + page.text and "Traceback" not in page.text


def test_an_append_waiting_for_another_writer_does_not_stall_the_server(
    live: Live, alice: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3
    import threading

    session = new_session(alice, 1)
    reached = threading.Event()
    store_append = live.service.append

    def append_at_the_store(*args: Any, **kwargs: Any) -> Any:
        reached.set()
        return store_append(*args, **kwargs)

    monkeypatch.setattr(live.service, "append", append_at_the_store)
    db = live.service.store.path  # type: ignore[attr-defined]
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    answer: list[httpx.Response] = []

    def append() -> None:
        with live.client(live.alice) as http:
            answer.append(
                http.post(
                    f"/api/sessions/{session['id']}/messages",
                    json={"messages": [text_message("user", "after the lock")]},
                )
            )

    writer = threading.Thread(target=append)
    writer.start()
    assert reached.wait(timeout=60)  # the append is at the store, which the lock holds up
    # Answered while the append waits (a stalled event loop would answer only after it).
    assert alice.get("/api/health").status_code == 200  # the event loop is free
    assert alice.get(f"/api/sessions/{session['id']}").json()["message_count"] == 1
    assert answer == []  # still waiting for the lock
    blocker.execute("ROLLBACK")
    blocker.close()
    writer.join(timeout=30)
    assert answer[0].status_code == 201
    assert alice.get(f"/api/sessions/{session['id']}").json()["message_count"] == 2

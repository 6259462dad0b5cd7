"""Web logins as an attacker would try them: a cookie replayed after logout, a password change
or a token revoke; a rotated X-Forwarded-For against the login limit; a login's time telling
whether a handle exists. The app is driven in-process through httpx's ASGITransport."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from baton.core.errors import RateLimited
from baton.scanning import SecretScanner
from baton.server import create_app, processes
from baton.server.auth import RateLimiter
from baton.service import Service
from baton.store.blobs import MemoryBlobStore
from baton.store.memory import MemoryStore
from tests.fixtures.servers import SECRET

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def browser(app: Any, address: str = "127.0.0.1") -> httpx.AsyncClient:
    """A visitor at `address`, talking to `app` in this process (no redirects followed)."""
    transport = httpx.ASGITransport(app=app, client=(address, 50_000))
    return httpx.AsyncClient(transport=transport, base_url="http://baton.test")


async def login(http: httpx.AsyncClient, **fields: str) -> httpx.Response:
    page = await http.get("/login")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return await http.post("/login", data={"csrf": found.group(1), **fields})


def memory_service() -> Service:
    return Service(MemoryStore(), MemoryBlobStore(), scanner=SecretScanner({}))


# X-Forwarded-For and the login rate limit


async def wrong_logins(http: httpx.AsyncClient, count: int) -> list[int]:
    page = await http.get("/login")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found
    codes = []
    for i in range(count):
        answer = await http.post(
            "/login",
            data={"csrf": found.group(1), "handle": "alice", "password": "not it"},
            headers={"X-Forwarded-For": f"203.0.113.{i}"},
        )
        codes.append(answer.status_code)
    return codes


async def test_a_rotated_forwarded_for_from_loopback_does_not_escape_the_login_limit() -> None:
    service = memory_service()
    service.accounts.add("alice")
    # the app as `baton serve` runs it: wrapped the way uvicorn wraps it
    server = processes.config(create_app(service, secret=SECRET, login_rate=3))
    server.load()
    async with browser(server.loaded_app) as http:
        assert await wrong_logins(http, 5) == [401, 401, 401, 429, 429]


async def test_a_trusted_proxys_forwarded_for_names_the_client() -> None:
    service = memory_service()
    service.accounts.add("alice")
    app = create_app(service, secret=SECRET, login_rate=3, trusted_proxies=["127.0.0.1"])
    async with browser(app) as http:
        # each forwarded client has a bucket of its own
        assert await wrong_logins(http, 5) == [401] * 5
        page = await http.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        same = [
            (
                await http.post(
                    "/login",
                    data={"csrf": csrf.group(1), "handle": "alice", "password": "not it"},
                    headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.4"},
                )
            ).status_code
            for _ in range(4)
        ]
        # the nearest address the proxy reports is the client: 203.0.113.4, seen once above
        assert same == [401, 401, 429, 429]
    # from a peer that is not a trusted proxy, the header means nothing
    async with browser(app, address="192.0.2.10") as http:
        assert await wrong_logins(http, 4) == [401, 401, 401, 429]


def test_trusted_proxies_are_read_from_the_environment_and_checked() -> None:
    from baton.config import Settings
    from baton.core.errors import InvalidInput

    settings = Settings.load(env={"BATON_TRUSTED_PROXIES": " 10.0.0.5, 10.1.0.0/16 ,::1"})
    assert settings.trusted_proxies == ("10.0.0.5/32", "10.1.0.0/16", "::1/128")
    assert Settings.load(env={}).trusted_proxies == ()
    with pytest.raises(InvalidInput) as caught:
        Settings.load(env={"BATON_TRUSTED_PROXIES": "10.0.0.5,proxy.internal"})
    assert caught.value.message == (
        "BATON_TRUSTED_PROXIES: 'proxy.internal' is not an IP address or CIDR "
        "(use e.g. 10.0.0.5,10.1.0.0/16)"
    )


def test_a_rate_limit_refills_on_its_clock() -> None:
    now = [100.0]
    limiter = RateLimiter(2, 1.0, clock=lambda: now[0])
    limiter.hit("share", "10.0.0.1")
    limiter.hit("share", "10.0.0.1")
    with pytest.raises(RateLimited) as caught:
        limiter.hit("share", "10.0.0.1")
    assert caught.value.retry_after == 1
    limiter.hit("share", "10.0.0.2")  # another address has its own bucket
    now[0] += 0.4  # 0.8 of a request refilled: not yet
    with pytest.raises(RateLimited):
        limiter.hit("share", "10.0.0.1")
    now[0] += 0.2
    limiter.hit("share", "10.0.0.1")
    now[0] += 60  # a long pause refills to the rate, no more
    limiter.hit("share", "10.0.0.1")
    limiter.hit("share", "10.0.0.1")
    with pytest.raises(RateLimited):
        limiter.hit("share", "10.0.0.1")


# the time a login takes


async def test_an_unknown_handle_costs_a_password_hash_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from argon2 import PasswordHasher

    service = memory_service()
    alice = service.accounts.add("alice")
    service.accounts.set_password(alice.id, PASSWORD)
    service.accounts.add("bob")  # no password
    verified: list[str] = []
    real = PasswordHasher.verify

    def counted(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        verified.append(str(hash).split("$")[3])  # the parameters: m=…,t=…,p=…
        return real(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counted)
    app = create_app(service, secret=SECRET)
    async with browser(app) as http:
        for handle in ("alice", "nobody", "bob"):
            answer = await login(http, handle=handle, password="not the password")
            assert answer.status_code == 401
        assert (await login(http, handle="alice", password=PASSWORD)).status_code == 303
    parameters = PasswordHasher().hash("x").split("$")[3]
    assert verified == [parameters] * 4


# logins end: logout, a password change, a token revoke


def replay(app: Any, cookie: str) -> httpx.AsyncClient:
    """Another visitor presenting a copied session cookie."""
    http = browser(app, address="192.0.2.44")
    http.cookies.set("baton_session", cookie)
    return http


async def logged_in_as(app: Any, cookie: str) -> str | None:
    """Whose the cookie is, as the pages and the API see it (None: logged out)."""
    async with replay(app, cookie) as http:
        page = await http.get("/")
        me = await http.get("/api/me")
    if page.status_code == 303:
        assert page.headers["location"] == "/login?next=/"
        assert me.status_code == 401 and me.json()["error"]["code"] == "unauthorized"
        return None
    assert page.status_code == 200 and me.status_code == 200
    return str(me.json()["handle"])


async def password_login(app: Any, handle: str, password: str = PASSWORD) -> str:
    async with browser(app) as http:
        done = await login(http, handle=handle, password=password)
        assert done.status_code == 303, done.text
        return str(done.cookies["baton_session"])


async def test_logout_ends_the_login_on_every_server(service: Service) -> None:
    alice = service.accounts.add("alice")
    service.accounts.set_password(alice.id, PASSWORD)
    # two servers over one store, as behind a load balancer
    one, two = create_app(service, secret=SECRET), create_app(service, secret=SECRET)
    cookie = await password_login(one, "alice")
    other_browser = await password_login(one, "alice")
    assert await logged_in_as(two, cookie) == "alice"
    async with replay(one, cookie) as http:
        page = await http.get("/")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        out = await http.post("/logout", data={"csrf": csrf.group(1)})
        assert out.status_code == 303 and out.headers["location"] == "/login"
    assert await logged_in_as(one, cookie) is None
    assert await logged_in_as(two, cookie) is None
    assert await logged_in_as(two, other_browser) == "alice"  # that login was another one


async def test_a_password_change_ends_that_accounts_password_logins(service: Service) -> None:
    alice, bob = service.accounts.add("alice"), service.accounts.add("bob")
    service.accounts.set_password(alice.id, PASSWORD)
    service.accounts.set_password(bob.id, PASSWORD)
    _, secret = service.accounts.create_token(alice.id, "browser")
    app = create_app(service, secret=SECRET)
    alices = [await password_login(app, "alice"), await password_login(app, "alice")]
    link = service.accounts.login_code(alice.id)
    async with browser(app) as http:
        alices.append(str((await login(http, code=link)).cookies["baton_session"]))
        with_token = str((await login(http, token=secret)).cookies["baton_session"])
    bobs = await password_login(app, "bob")
    service.accounts.set_password(alice.id, "a new password")
    assert [await logged_in_as(app, c) for c in alices] == [None, None, None]
    assert await logged_in_as(app, bobs) == "bob"
    assert await logged_in_as(app, with_token) == "alice"  # it lasts as long as its token
    assert await logged_in_as(app, await password_login(app, "alice", "a new password")) == "alice"


async def test_baton_users_passwd_ends_the_password_logins(
    baton_home: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from baton.cli.main import main
    from baton.config import Settings, build_service

    service = build_service(Settings.load())
    alice = service.accounts.add("alice")
    service.accounts.set_password(alice.id, PASSWORD)
    app = create_app(service, secret=SECRET)
    cookie = await password_login(app, "alice")
    assert await logged_in_as(app, cookie) == "alice"
    main(["users", "passwd", "alice", "--password", "another password"])
    assert capsys.readouterr().out == "password set for alice\n"
    assert await logged_in_as(app, cookie) is None
    service.store.close()


async def test_revoking_a_token_ends_the_logins_made_with_it(service: Service) -> None:
    alice = service.accounts.add("alice")
    service.accounts.set_password(alice.id, PASSWORD)
    token, secret = service.accounts.create_token(alice.id, "browser")
    app = create_app(service, secret=SECRET)
    async with browser(app) as http:
        with_token = str((await login(http, token=secret)).cookies["baton_session"])
    with_password = await password_login(app, "alice")
    # revoked through the tokens page of the password login
    async with replay(app, with_password) as http:
        page = await http.get("/tokens")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        done = await http.post(f"/tokens/{token.id}/revoke", data={"csrf": csrf.group(1)})
        assert done.status_code == 303
    assert await logged_in_as(app, with_token) is None
    assert await logged_in_as(app, with_password) == "alice"


async def test_a_login_is_checked_without_listing_tokens(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = service.accounts.add("alice")
    _, secret = service.accounts.create_token(alice.id, "browser")
    app = create_app(service, secret=SECRET)
    async with browser(app) as http:
        cookie = str((await login(http, token=secret)).cookies["baton_session"])

    def refused(account_id: str) -> list[Any]:
        raise AssertionError("a request listed the account's tokens")

    monkeypatch.setattr(service.store, "list_tokens", refused)
    assert await logged_in_as(app, cookie) == "alice"


async def test_a_cookie_signed_before_logins_were_kept_is_logged_out(service: Service) -> None:
    from itsdangerous import URLSafeTimedSerializer

    alice = service.accounts.add("alice")
    app = create_app(service, secret=SECRET)
    old = URLSafeTimedSerializer(SECRET, salt="baton-session").dumps({"a": alice.id, "t": None})
    assert await logged_in_as(app, old) is None


async def test_the_tokens_page_names_the_servers_address_not_the_requests(
    service: Service,
) -> None:
    # behind a proxy the request's own address is the proxy's view (X-Forwarded-Proto is
    # not believed): the command shown uses BATON_URL
    alice = service.accounts.add("alice")
    service.accounts.set_password(alice.id, PASSWORD)
    service.base_url = "https://baton.example.com"
    app = create_app(service, secret=SECRET)
    async with replay(app, await password_login(app, "alice")) as http:
        form = await http.get("/tokens")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        page = await http.post("/tokens", data={"csrf": csrf.group(1), "name": "laptop"})
    assert "baton login https://baton.example.com --token" in page.text

"""Who is calling: bearer tokens, signed session cookies, CSRF tokens and rate limits."""

from __future__ import annotations

import hmac
import ipaddress
import math
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fastapi import Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from baton.core.errors import RateLimited, Unauthorized
from baton.core.models import Account
from baton.service import Service

COOKIE = "baton_session"
CSRF_COOKIE = "baton_csrf"
COOKIE_MAX_AGE = 30 * 24 * 3600


class Cookies:
    """Signed, timed cookie values (the server's secret signs them). The session cookie holds
    the secret of a web login that the store keeps (see Accounts.start_login), so logout, a
    password change or a token revoke ends it on every server."""

    def __init__(self, secret: str, secure: bool) -> None:
        self._signer = URLSafeTimedSerializer(secret, salt="baton-session")
        self.secure = secure

    def sign(self, login_secret: str) -> str:
        return self._signer.dumps({"l": login_secret})

    def login(self, value: str | None) -> str | None:
        """The web login secret a cookie was signed for, or None."""
        if not value:
            return None
        try:
            data = self._signer.loads(value, max_age=COOKIE_MAX_AGE)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("l"), str):
            return None
        return str(data["l"])


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def caller(request: Request, service: Service, cookies: Cookies) -> Account | None:
    """The account behind a bearer token, or else behind the session cookie."""
    token = bearer(request)
    if token is not None:
        account = service.accounts.authenticate(token)
        if account is None:
            raise Unauthorized("this token is not valid (revoked, expired or mistyped)")
        return account
    login = cookies.login(request.cookies.get(COOKIE))
    return None if login is None else service.accounts.logged_in(login)


def csrf_token(request: Request) -> tuple[str, bool]:
    """The visitor's CSRF token (double-submit cookie), and whether it is new."""
    current = request.cookies.get(CSRF_COOKIE)
    if current and 20 <= len(current) <= 64:
        return current, False
    return secrets.token_urlsafe(24), True


def csrf_ok(request: Request, submitted: str | None) -> bool:
    current = request.cookies.get(CSRF_COOKIE)
    return bool(current and submitted and hmac.compare_digest(current, submitted))


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Token buckets per (name, client address): `rate` requests per `per` seconds, on
    `clock` (seconds; monotonic by default, a fake one in tests)."""

    def __init__(self, rate: int, per: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.per = per
        self.clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()

    def hit(self, name: str, client: str) -> None:
        now = self.clock()
        refill = self.rate / self.per
        with self._lock:
            if len(self._buckets) > 100_000:
                self._buckets.clear()
            bucket = self._buckets.get((name, client))
            if bucket is None:
                bucket = self._buckets[(name, client)] = _Bucket(float(self.rate), now)
            bucket.tokens = min(float(self.rate), bucket.tokens + (now - bucket.at) * refill)
            bucket.at = now
            if bucket.tokens < 1:
                wait = math.ceil((1 - bucket.tokens) / refill)
                raise RateLimited(f"too many requests; try again in {wait} s", wait)
            bucket.tokens -= 1


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def proxies(values: Sequence[str]) -> tuple[Network, ...]:
    """The networks of BATON_TRUSTED_PROXIES entries (IP addresses or CIDRs, checked by
    Settings)."""
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


def _trusted(host: str, trusted: Sequence[Network]) -> bool:
    try:
        address = ipaddress.ip_address(host.strip().strip("[]"))
    except ValueError:
        return False
    return any(address in network for network in trusted)


def client_address(request: Request) -> str:
    """The address rate limits count: the peer, unless the peer is a trusted proxy
    (BATON_TRUSTED_PROXIES); then the nearest address in X-Forwarded-For that is not one."""
    peer = request.client.host if request.client else "unknown"
    trusted: Sequence[Network] = getattr(request.app.state, "trusted_proxies", ())
    if not trusted or not _trusted(peer, trusted):
        return peer
    forwarded = ",".join(request.headers.getlist("x-forwarded-for")).split(",")
    hops = [peer, *(h.strip() for h in forwarded if h.strip())]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop
    return hops[1] if len(hops) > 1 else peer  # every hop is a proxy of ours: the first one

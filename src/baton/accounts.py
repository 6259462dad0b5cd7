"""Accounts, API tokens, one-time login codes and passwords: the rules of who is who."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from baton.core import ids
from baton.core.errors import Conflict, InvalidInput, NotFound
from baton.core.models import Account, Login, Token, format_time, parse_time, utcnow
from baton.core.terminal import has_controls
from baton.store.base import Store

HANDLE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,38}$")
LOGIN_CODE_TTL = timedelta(minutes=15)
WEB_LOGIN_TTL = timedelta(days=30)  # a web login lasts this long (or until its token ends)
TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often
MIN_PASSWORD = 8


class Accounts:
    def __init__(self, store: Store, clock: Callable[[], str] = utcnow) -> None:
        self.store = store
        self.now = clock

    def add(self, handle: str, display_name: str | None = None) -> Account:
        handle = handle.strip()
        if not HANDLE.match(handle):
            raise InvalidInput(
                f"handle {handle!r} must be 1-39 lowercase letters, digits, '-' or '_'"
            )
        if self.store.find_account(handle) is not None:
            raise Conflict(f"an account {handle} exists already", None)
        name = (display_name or handle).strip()
        if not name or len(name) > 100:
            raise InvalidInput("a display name must be 1-100 characters")
        if has_controls(name):
            raise InvalidInput(
                f"display name {name!r} holds control or bidi characters; give plain text"
            )
        account = Account(ids.new_account_id(), handle, name, self.now())
        self.store.add_account(account)
        return account

    def find(self, handle: str) -> Account:
        account = self.store.find_account(handle)
        if account is None:
            raise NotFound(f"no account {handle}")
        return account

    def list_all(self) -> list[Account]:
        return self.store.list_accounts()

    # tokens
    def create_token(
        self, account_id: str, name: str = "", *, kind: str = "api", ttl: timedelta | None = None
    ) -> tuple[Token, str]:
        """A new token; its secret is returned once and only its hash is kept."""
        if len(name) > 100:
            raise InvalidInput("a token name must be at most 100 characters")
        secret = ids.new_token()
        now = self.now()
        token = Token(
            id="tok_" + ids.new_ulid(),
            account_id=account_id,
            name=name.strip(),
            kind=kind,
            token_hash=ids.token_hash(secret),
            created_at=now,
            expires_at=format_time(parse_time(now) + ttl) if ttl else None,
        )
        self.store.add_token(token)
        return token, secret

    def login_code(self, account_id: str) -> str:
        """A one-time code for the login link printed by `baton serve` (15 minutes)."""
        return self.create_token(account_id, "login link", kind="login", ttl=LOGIN_CODE_TTL)[1]

    def authenticate(self, secret: str) -> Account | None:
        """The account of a live API token, or None."""
        found = self.authenticate_token(secret)
        return found[0] if found else None

    def authenticate_token(
        self, secret: str, *, touch: bool = True
    ) -> tuple[Account, Token] | None:
        """The account and the live API token a secret belongs to, or None. With `touch`,
        the token's last use is recorded (at most once a minute: see `needs_touch`)."""
        token = self._live(secret, "api")
        if token is None:
            return None
        if touch and self.needs_touch(token):
            self.store.touch_token(token.id, self.now())
        account = self.store.get_account(token.account_id)
        return (account, token) if account else None

    def needs_touch(self, token: Token) -> bool:
        last = token.last_used_at
        return last is None or parse_time(last) + TOUCH_EVERY < parse_time(self.now())

    # web logins
    def start_login(self, account_id: str, token: Token | None = None) -> str:
        """A new web login, recorded on the server; its secret (for the cookie) is returned.
        One made with an API token ends with it (revoked or expired)."""
        secret = ids.new_token()
        now = self.now()
        expires = parse_time(now) + WEB_LOGIN_TTL
        if token is not None and token.expires_at is not None:
            expires = min(expires, parse_time(token.expires_at))
        login = Login(
            ids.token_hash(secret),
            account_id,
            token.id if token else None,
            now,
            format_time(expires),
        )
        self.store.add_login(login)
        return secret

    def logged_in(self, secret: str) -> Account | None:
        """The account of a live web login, or None (logged out, expired, or never made)."""
        if not secret or len(secret) > 200:
            return None
        login = self.store.get_login(ids.token_hash(secret))
        if login is None or parse_time(login.expires_at) <= parse_time(self.now()):
            return None
        return self.store.get_account(login.account_id)

    def logout(self, secret: str) -> bool:
        """End a web login everywhere (its cookie no longer works on any server)."""
        return bool(secret) and self.store.end_login(ids.token_hash(secret))

    def redeem(self, code: str) -> Account | None:
        """Use a one-time login code: it works once, within its time."""
        token = self._live(code, "login")
        if token is None or not self.store.revoke_token(token.id, self.now()):
            return None
        return self.store.get_account(token.account_id)

    def _live(self, secret: str, kind: str) -> Token | None:
        if not secret or len(secret) > 200:
            return None
        token = self.store.find_token(ids.token_hash(secret))
        if token is None or token.kind != kind or token.state(self.now()) != "live":
            return None
        return token

    def tokens(self, account_id: str) -> list[Token]:
        return [t for t in self.store.list_tokens(account_id) if t.kind == "api"]

    def revoke(self, account_id: str, token_id: str) -> Token:
        for token in self.tokens(account_id):
            if token.id == token_id:
                self.store.revoke_token(token.id, self.now())
                token.revoked_at = token.revoked_at or self.now()
                return token
        raise NotFound(f"no token {token_id}")

    # passwords (argon2id)
    def set_password(self, account_id: str, password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise InvalidInput(f"a password needs at least {MIN_PASSWORD} characters")
        if len(password) > 1000:
            raise InvalidInput("a password must be at most 1000 characters")
        from argon2 import PasswordHasher

        self.store.set_password(account_id, PasswordHasher().hash(password))
        self.store.end_password_logins(account_id)

    def check_password(self, handle: str, password: str) -> Account | None:
        """The account when the handle and password match. An unknown handle, or an account
        without a password, still verifies against a dummy hash made with the same
        parameters, so the time taken does not tell whether the handle exists."""
        from argon2 import PasswordHasher
        from argon2.exceptions import Argon2Error, InvalidHashError

        if len(password) > 1000:
            return None
        account = self.store.find_account(handle.strip())
        stored = self.store.password_hash(account.id) if account else None
        try:
            PasswordHasher().verify(stored or _dummy_hash(), password)
        except (Argon2Error, InvalidHashError):
            return None
        return account if stored else None


_DUMMY: list[str] = []


def _dummy_hash() -> str:
    """An argon2id hash of a random password, made once per process."""
    if not _DUMMY:
        import secrets

        from argon2 import PasswordHasher

        _DUMMY.append(PasswordHasher().hash(secrets.token_urlsafe(32)))
    return _DUMMY[0]

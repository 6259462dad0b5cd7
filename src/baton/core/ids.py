"""Canonical JSON, content ids for messages, and random ids for sessions and shares."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

MESSAGE_PREFIX = "m_"
SESSION_PREFIX = "ses_"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def plain_float(value: float) -> bool:
    """Does orjson write this float as Python's json does? Both write the shortest repr that
    reads back the same; they differ in when they switch to an exponent (Python below 1e-4,
    orjson below 1e-5: 0.00005 vs 5e-05). Between 1e-4 and 1e16 (and 0) neither does."""
    magnitude = abs(value)
    return magnitude == 0 or 1e-4 <= magnitude < 1e16


def canonical_json(value: Any) -> bytes:
    """Sorted keys, UTF-8, no spaces: the one byte form that ids are computed over."""
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        check_circular=False,
    ).encode("utf-8")


# Another writer of canonical JSON: it must give `canonical_json`'s bytes for every value
# whose floats are all `plain_float` (baton.service.canonical, outside the core).
Encoder = Callable[[Any], bytes]


def content_hash(value: Any, encode: Encoder = canonical_json) -> str:
    return hashlib.blake2b(encode(value), digest_size=32).hexdigest()


def message_id(content: dict[str, Any], encode: Encoder = canonical_json) -> str:
    """`m_` + BLAKE2b-256 of the message without its id. The parent is inside, so an id
    names the whole history up to that message."""
    return MESSAGE_PREFIX + content_hash(content, encode)


def is_message_id(value: str) -> bool:
    if not value.startswith(MESSAGE_PREFIX) or len(value) != len(MESSAGE_PREFIX) + 64:
        return False
    return all(c in "0123456789abcdef" for c in value[len(MESSAGE_PREFIX) :])


def new_ulid(now_ms: int | None = None) -> str:
    """A ULID: 48 bits of milliseconds then 80 random bits, in Crockford base32 (26 chars)."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_session_id() -> str:
    return SESSION_PREFIX + new_ulid()


def is_session_id(value: str) -> bool:
    body = value[len(SESSION_PREFIX) :]
    return (
        value.startswith(SESSION_PREFIX) and len(body) == 26 and all(c in _CROCKFORD for c in body)
    )


def new_share_id() -> str:
    """136 random bits, base64url without padding (23 chars). Never derived from a session.
    Ids that start with `-` are drawn again, so that a command line never takes one for an
    option; that leaves more than 135 bits."""
    while True:
        value = secrets.token_urlsafe(17)
        if not value.startswith("-"):
            return value


def new_account_id() -> str:
    return "acc_" + new_ulid()


def new_token() -> str:
    return "baton_" + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

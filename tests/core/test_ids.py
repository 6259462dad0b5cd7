"""Canonical JSON, content ids for messages, random ids for sessions, shares and tokens."""

from __future__ import annotations

import hashlib
import re

import pytest

from baton.core.ids import (
    canonical_json,
    content_hash,
    is_message_id,
    is_session_id,
    message_id,
    new_account_id,
    new_session_id,
    new_share_id,
    new_token,
    new_ulid,
    sha256_hex,
    token_hash,
)
from baton.core.models import message_content

CREATED = "2026-01-01T00:00:00.000000Z"
# A fixed value: changing the hashing silently breaks every stored id, so it must be deliberate.
HELLO_ID = "m_ff458a8cac0a3d3755d8503a08346c512a2571ff8e09aefcc119006c411d3238"


def hello() -> dict[str, object]:
    return message_content(None, "user", [{"type": "text", "text": "héllo"}], CREATED, None, None)


def test_canonical_json_is_sorted_compact_utf8() -> None:
    value = {"b": 1, "a": ["é", None, True, 1.5], "c": {"z": 0, "y": "\n"}}
    assert canonical_json(value) == '{"a":["é",null,true,1.5],"b":1,"c":{"y":"\\n","z":0}}'.encode()


def test_canonical_json_refuses_nan() -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_message_id_is_blake2b_256_of_the_canonical_json() -> None:
    content = hello()
    expected = hashlib.blake2b(canonical_json(content), digest_size=32).hexdigest()
    assert message_id(content) == "m_" + expected == HELLO_ID
    assert content_hash(content) == expected
    assert re.fullmatch(r"m_[0-9a-f]{64}", message_id(content))


def test_message_id_ignores_key_order() -> None:
    reordered = {
        "parts": [{"text": "héllo", "type": "text"}],
        "created_at": CREATED,
        "role": "user",
        "parent": None,
    }
    assert message_id(reordered) == HELLO_ID


def test_message_id_covers_every_field_and_the_parent() -> None:
    base = message_id(hello())
    parts = [{"type": "text", "text": "héllo"}]
    variants = [
        message_content(HELLO_ID, "user", parts, CREATED, None, None),
        message_content(None, "assistant", parts, CREATED, None, None),
        message_content(None, "user", [{"type": "text", "text": "hello"}], CREATED, None, None),
        message_content(None, "user", parts, "2026-01-01T00:00:00.000001Z", None, None),
        message_content(None, "user", parts, CREATED, "gpt-x", None),
        message_content(None, "user", parts, CREATED, None, {"input_tokens": 1}),
    ]
    found = {message_id(v) for v in variants}
    assert len(found) == len(variants) and base not in found


def test_absent_model_and_usage_are_left_out_of_the_hash() -> None:
    content = message_content(None, "user", [], CREATED, None, None)
    assert content == {"parent": None, "role": "user", "parts": [], "created_at": CREATED}


def test_is_message_id() -> None:
    assert is_message_id(HELLO_ID)
    assert not is_message_id("m_" + "A" * 64)  # upper-case hex is not ours
    assert not is_message_id("m_" + "0" * 63)
    assert not is_message_id("x_" + "0" * 64)
    assert not is_message_id("m_" + "g" * 64)


def test_session_ids_are_ses_and_a_ulid() -> None:
    sid = new_session_id()
    assert re.fullmatch(r"ses_[0-9A-HJKMNP-TV-Z]{26}", sid)
    assert is_session_id(sid)
    assert len({new_session_id() for _ in range(1000)}) == 1000
    for bad in ("ses_short", "ses_" + "I" * 26, "SES_" + sid[4:], sid[4:], "ses_" + "0" * 27):
        assert not is_session_id(bad), bad


def test_ulids_start_with_the_time_and_sort_by_it() -> None:
    assert new_ulid(0)[:10] == "0000000000"
    assert new_ulid(1)[:10] == "0000000001"
    assert new_ulid(32)[:10] == "0000000010"
    earlier, later = new_ulid(1_700_000_000_000), new_ulid(1_700_000_000_001)
    assert earlier[:10] < later[:10] and len(earlier) == len(later) == 26


def test_share_ids_are_random_url_safe_and_never_look_like_options() -> None:
    found = {new_share_id() for _ in range(3000)}
    assert len(found) == 3000
    for share_id in found:
        assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{22}", share_id), share_id


def test_account_ids_and_tokens() -> None:
    assert re.fullmatch(r"acc_[0-9A-HJKMNP-TV-Z]{26}", new_account_id())
    token = new_token()
    assert token.startswith("baton_") and len(token) == len("baton_") + 43
    assert token != new_token()
    assert token_hash(token) == hashlib.sha256(token.encode()).hexdigest()
    assert sha256_hex(b"abc") == hashlib.sha256(b"abc").hexdigest()

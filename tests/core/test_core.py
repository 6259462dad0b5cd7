"""The pure domain: ids, canonical JSON, validation, chains, redaction."""

from __future__ import annotations

import dataclasses
import re

import pytest

from baton.core.chain import link, verify_chain
from baton.core.errors import InvalidInput, TooLarge
from baton.core.ids import (
    canonical_json,
    is_session_id,
    message_id,
    new_session_id,
    new_share_id,
)
from baton.core.redaction import mask, redact_value
from baton.core.validation import derive_title, hydrate_part, validate_message

NOW = "2026-11-24T00:00:00.000000Z"


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert canonical_json({"b": 1, "a": ["é", None]}) == '{"a":["é",null],"b":1}'.encode()


def test_session_and_share_ids() -> None:
    sid = new_session_id()
    assert re.fullmatch(r"ses_[0-9A-HJKMNP-TV-Z]{26}", sid) and is_session_id(sid)
    assert not is_session_id("ses_short")
    share = new_share_id()
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{22}", share)  # 17 random bytes = 136 bits
    # never taken for a command-line option
    assert not any(new_share_id().startswith("-") for _ in range(2000))


def test_time_is_normalised_to_utc_microseconds() -> None:
    item = validate_message(
        {
            "role": "user",
            "parts": [{"type": "text", "text": "x"}],
            "created_at": "2026-11-24T02:00:00+02:00",
        },
        NOW,
    )
    assert item.created_at == "2026-11-24T00:00:00.000000Z"


def test_offload_and_hydrate_are_inverse() -> None:
    big = {
        "type": "tool_result",
        "tool_call_id": "c9",
        "output": {"rows": ["r" * 100] * 700},
        "is_error": False,
    }
    item = validate_message({"role": "tool", "parts": [big]}, NOW)
    [ref] = item.parts
    assert ref["type"] == "blob_ref" and ref["encoding"] == "json" and ref["of"] == "tool_result"
    assert ref["is_error"] is False and len(ref["preview"]) == 2000
    [(sha, data)] = item.blobs.items()
    assert hydrate_part(ref, data) == big and ref["sha256"] == sha


def test_sizes() -> None:
    with pytest.raises(TooLarge):
        validate_message(
            {"role": "user", "parts": [{"type": "text", "text": "x" * (16 * 1024 * 1024)}]}, NOW
        )
    with pytest.raises(InvalidInput, match="unknown field"):
        validate_message(
            {"role": "user", "parts": [{"type": "text", "text": "x"}], "colour": 1}, NOW
        )


def test_chain_links_and_verification() -> None:
    first = link(
        None,
        validate_message(
            {
                "role": "user",
                "parts": [{"type": "text", "text": "a"}],
                "usage": {"input_tokens": 3},
            },
            NOW,
        ),
        [],
    )
    second = link(
        first,
        validate_message(
            {
                "role": "assistant",
                "parts": [{"type": "text", "text": "b"}],
                "usage": {"output_tokens": 4, "cost_usd": 0.5},
            },
            NOW,
        ),
        [{"kind": "k", "excerpt": "e"}],
    )
    third = link(
        second,
        validate_message({"role": "user", "parts": [{"type": "text", "text": "c"}]}, NOW),
        [],
    )
    assert (second.depth, second.root, second.message.parent) == (
        1,
        first.message.id,
        first.message.id,
    )
    assert (
        third.totals.input_tokens == 3
        and third.totals.output_tokens == 4
        and third.totals.cost_usd == 0.5
    )
    assert (first.flagged, second.flagged, third.flagged) == (
        None,
        second.message.id,
        second.message.id,
    )
    chain = [first.message, second.message, third.message]
    assert verify_chain(chain) == []
    tampered = dataclasses.replace(second.message, parts=[{"type": "text", "text": "B"}])
    problems = verify_chain([first.message, tampered, third.message])
    assert problems == [
        f"message 2 ({second.message.id}) does not match its content "
        f"(hashes to {message_id(tampered.content())})"
    ]
    assert verify_chain([first.message, third.message])[0].startswith("message 2")


def test_titles() -> None:
    assert derive_title("  fix\n\tthe   bug  ") == "fix the bug"
    assert derive_title("a" * 100) == "a" * 80


def test_masking_and_redaction() -> None:
    key = "sk-proj-" + "a" * 40
    assert mask(key) == "sk-p…aa (48 chars)" and key not in mask(key)
    assert mask("short") == "*****"
    value = {"cmd": f"export K={key}", "list": [key, 1]}
    assert redact_value(value, {key: "OpenAI Token"}) == {
        "cmd": "export K=[REDACTED:OpenAI Token]",
        "list": ["[REDACTED:OpenAI Token]", 1],
    }

"""Input rules: roles, part types, sizes, moving big payloads to blobs, titles, header
checks, and the masking and redaction rules used when publishing."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baton.core.errors import InvalidInput, TooLarge
from baton.core.ids import canonical_json
from baton.core.redaction import mask, redact_parts, redact_value, strings_in
from baton.core.validation import (
    INLINE_LIMIT,
    MESSAGE_LIMIT,
    _check_json,
    _walk,
    check_header,
    derive_title,
    hydrate_part,
    message_text,
    part_text,
    validate_message,
)

NOW = "2026-11-24T00:00:00.000000Z"
KIB64 = 64 * 1024


def text(role: str, value: str, **extra: Any) -> dict[str, Any]:
    return {"role": role, "parts": [{"type": "text", "text": value}], **extra}


def test_limits_are_the_documented_ones() -> None:
    assert (INLINE_LIMIT, MESSAGE_LIMIT) == (64 * 1024, 16 * 1024 * 1024)


def test_a_valid_message_keeps_its_fields_and_gets_a_time() -> None:
    item = validate_message(
        text("assistant", "hi", model="gpt-x", usage={"input_tokens": 3, "cost_usd": 0.25}), NOW
    )
    assert (item.role, item.parts, item.created_at, item.model, item.usage, item.blobs) == (
        "assistant",
        [{"type": "text", "text": "hi"}],
        NOW,
        "gpt-x",
        {"input_tokens": 3, "cost_usd": 0.25},
        {},
    )


@pytest.mark.parametrize("role", ["user", "assistant", "system", "tool"])
def test_every_known_role_is_accepted(role: str) -> None:
    assert validate_message(text(role, "x"), NOW).role == role


@pytest.mark.parametrize(
    "part",
    [
        {"type": "text", "text": "x"},
        {"type": "reasoning", "text": "thinking"},
        {"type": "tool_call", "id": "c1", "name": "bash", "input": {"cmd": "ls"}},
        {"type": "tool_result", "tool_call_id": "c1", "output": "a\nb", "is_error": False},
        {"type": "tool_result", "tool_call_id": "c1", "output": {"rows": [1, 2]}},
        {"type": "file", "path": "src/app.py", "mime": "text/x-python"},
        {"type": "blob_ref", "sha256": "a" * 64, "size": 10},
    ],
)
def test_every_known_part_type_is_accepted_unchanged(part: dict[str, Any]) -> None:
    assert validate_message({"role": "assistant", "parts": [part]}, NOW).parts == [part]


def test_times_are_normalised_to_utc_with_microseconds() -> None:
    for sent in ("2026-11-24T02:00:00+02:00", "2026-11-24T00:00:00Z", "2026-11-24T00:00:00.000Z"):
        assert validate_message(text("user", "x", created_at=sent), NOW).created_at == NOW


@pytest.mark.parametrize("sent", ["2026-13-01T00:00:00.000000Z", "2026-02-30T00:00:00.000000Z"])
def test_a_time_in_batons_own_form_is_kept_and_still_checked(sent: str) -> None:
    assert validate_message(text("user", "x", created_at=NOW), NOW).created_at == NOW
    with pytest.raises(InvalidInput) as caught:
        validate_message(text("user", "x", created_at=sent), NOW)
    assert caught.value.message == f"message 1: created_at {sent!r} is not an ISO 8601 time"


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("a string", "message 1: expected a JSON object, got str"),
        (
            text("robot", "x"),
            "message 1: role must be one of assistant, system, tool, user, got 'robot'",
        ),
        ({"parts": [{"type": "text", "text": "x"}]}, "role must be one of"),
        (
            {"role": "user", "parts": [{"type": "video", "text": "x"}]},
            "message 1, part 1: type must be one of blob_ref, file, reasoning, text, "
            "tool_call, tool_result, got 'video'",
        ),
        ({"role": "user", "parts": [{"text": "x"}]}, "got None"),
        ({"role": "user", "parts": []}, "message 1: parts must be a non-empty list"),
        ({"role": "user", "parts": "hi"}, "parts must be a non-empty list"),
        ({"role": "user", "parts": ["hi"]}, "message 1, part 1: expected an object"),
        ({**text("user", "x"), "colour": 1}, "message 1: unknown field(s) colour"),
        ({"role": "user", "parts": [{"type": "text", "text": 5}]}, "text needs a string text"),
        ({"role": "user", "parts": [{"type": "tool_call", "name": "x"}]}, "needs a string id"),
        ({"role": "user", "parts": [{"type": "tool_call", "id": "c"}]}, "needs a string name"),
        (
            {"role": "tool", "parts": [{"type": "tool_result", "tool_call_id": "c"}]},
            "a tool_result needs an output",
        ),
        ({"role": "user", "parts": [{"type": "file"}]}, "a file part needs a path"),
        (
            {"role": "user", "parts": [{"type": "blob_ref", "sha256": "xyz", "size": 1}]},
            "a blob_ref needs a sha256 of 64 hex digits",
        ),
        (
            {"role": "user", "parts": [{"type": "blob_ref", "sha256": "a" * 64}]},
            "a blob_ref needs an integer size",
        ),
        (text("user", "x", created_at="yesterday"), "created_at 'yesterday' is not an ISO 8601"),
        (text("user", "x", created_at="2026-01-01T00:00:00"), "has no time zone"),
        (text("user", "x", created_at=5), "created_at must be an ISO 8601 string"),
        (text("user", "x", model=5), "model must be a string"),
        (text("user", "x", usage=[1]), "usage must be an object"),
        (
            text("user", "x", usage={"input_tokens": -1}),
            "usage.input_tokens must be a non-negative",
        ),
        (text("user", "x", usage={"output_tokens": 1.5}), "usage.output_tokens must be"),
        (text("user", "x", usage={"input_tokens": True}), "usage.input_tokens must be"),
        (text("user", "x", usage={"cost_usd": -0.1}), "usage.cost_usd must be a non-negative"),
        (text("user", "bad \ud800"), "not valid Unicode"),
        (
            {
                "role": "user",
                "parts": [{"type": "tool_call", "id": "c", "name": "n", "input": 2**70}],
            },
            "integer 1180591620717411303424 is out of the 64-bit range",
        ),
        (
            {
                "role": "user",
                "parts": [{"type": "tool_call", "id": "c", "name": "n", "input": [1e999]}],
            },
            "numbers must be finite",
        ),
        (
            {
                "role": "user",
                "parts": [{"type": "tool_call", "id": "c", "name": "n", "input": {1: 2}}],
            },
            "object keys must be strings",
        ),
        (
            {
                "role": "user",
                "parts": [{"type": "tool_call", "id": "c", "name": "n", "input": {1}}],
            },
            "set is not a JSON value",
        ),
    ],
)
def test_bad_messages_are_refused_with_one_line(raw: Any, error: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_message(raw, NOW)
    assert error in caught.value.message
    assert "\n" not in caught.value.message


def test_errors_name_the_message_position() -> None:
    with pytest.raises(InvalidInput, match=r"^message 3, part 2: "):
        validate_message({"role": "user", "parts": [{"type": "text", "text": "ok"}, {}]}, NOW, 2)


def test_deep_nesting_is_refused() -> None:
    value: Any = "x"
    for _ in range(300):
        value = [value]
    tool = {"type": "tool_call", "id": "c", "name": "n", "input": value}
    with pytest.raises(InvalidInput, match="nested more than 200 levels"):
        validate_message({"role": "assistant", "parts": [tool]}, NOW)


def tool_input(value: Any) -> dict[str, Any]:
    """A message whose tool_call input is `value`, three levels below the message itself."""
    return {
        "role": "assistant",
        "parts": [{"type": "tool_call", "id": "c", "name": "n", "input": value}],
    }


def at_depth(depth: int, leaf: Any = "x") -> dict[str, Any]:
    """A message with `leaf` at `depth` levels below the message object."""
    value = leaf
    for _ in range(depth - 3):
        value = [value]
    return tool_input(value)


@pytest.mark.parametrize("leaf", ["x", [], {}, 1.5])
def test_nesting_of_exactly_200_levels_is_accepted(leaf: Any) -> None:
    message = at_depth(200, leaf)
    assert validate_message(message, NOW).parts == message["parts"]


@pytest.mark.parametrize("depth", [201, 254, 255, 5000])
@pytest.mark.parametrize("leaf", ["x", [], {"k": 1}])
def test_nesting_beyond_200_levels_is_refused(depth: int, leaf: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_message(at_depth(depth, leaf), NOW)
    assert caught.value.message == "message 1: nested more than 200 levels deep"


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"a": [1, "s", [2.5, float("nan")]]}, "numbers must be finite (no NaN or Infinity)"),
        ([["text", {"x": -float("inf")}]], "numbers must be finite (no NaN or Infinity)"),
        ({"a": {"b": {"n": 2**64}}}, "integer 18446744073709551616 is out of the 64-bit range"),
        ({"a": [-(2**63) - 1]}, "integer -9223372036854775809 is out of the 64-bit range"),
        ({"a": [{"b": ["ok", "bad \udfff"]}]}, "text is not valid Unicode (a lone surrogate?)"),
        ({"a": [{"bad \ud800": 1}]}, "text is not valid Unicode (a lone surrogate?)"),
        ({"a": [{"b": {2: "two"}}]}, "object keys must be strings, got 2"),
        ({"a": [{None: 1}]}, "object keys must be strings, got None"),
        ([1, {"b": b"bytes"}], "bytes is not a JSON value"),
    ],
)
def test_a_bad_value_deep_inside_is_refused_with_its_reason(value: Any, error: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_message(tool_input(value), NOW)
    assert caught.value.message == f"message 1: {error}"


def test_the_edges_of_the_64_bit_range_are_accepted() -> None:
    value = {"n": [2**64 - 1, -(2**63), {"m": 2**63}]}
    assert validate_message(tool_input(value), NOW).parts[0]["input"] == value


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        (["a", 0.5, {"b": "c", "d": 1e15}], True),
        (["a", 1e-5, {"b": "c"}], False),
        ({"b": "c", "d": [0.0001, "e", {"f": 1e16}]}, False),
        ([0.0, -0.0, "x", 1], True),
    ],
)
def test_numbers_are_called_plain_only_when_every_float_is(value: Any, plain: bool) -> None:
    assert validate_message(tool_input(value), NOW).plain_numbers is plain


def test_values_that_are_not_plain_json_types_are_judged_as_before() -> None:
    class Text(str):
        pass

    class Number(int):
        pass

    value = {"t": Text("é"), "n": Number(3), "tuple": (1, "two"), "flag": True, "none": None}
    assert validate_message(tool_input(value), NOW).parts[0]["input"] == value
    with pytest.raises(InvalidInput, match="integer 18446744073709551616 is out of the 64-bit"):
        validate_message(tool_input({"n": Number(2**64)}), NOW)


leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**65), max_value=2**65)
    | st.floats()
    | st.text(st.characters(exclude_categories=()), max_size=5)
)
keys = st.text(st.characters(exclude_categories=()), max_size=3) | st.integers(0, 3) | st.none()


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4)
            | st.lists(children, max_size=3).map(tuple)
            | st.dictionaries(keys, children, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_the_quick_check_answers_as_the_walk_does(value: Any) -> None:
    """The same size, plainness and refusal (with the same reason) for any value."""

    def outcome(check: Callable[[Any, str], tuple[int, bool]]) -> tuple[int, bool] | str:
        try:
            return check(value, "v")
        except InvalidInput as error:
            return error.message

    assert outcome(_check_json) == outcome(_walk)


def test_a_text_part_of_exactly_64_kib_stays_inline() -> None:
    item = validate_message(text("user", "y" * KIB64), NOW)
    assert item.parts == [{"type": "text", "text": "y" * KIB64}] and item.blobs == {}


def test_a_text_part_over_64_kib_becomes_a_blob_ref() -> None:
    big = "x" * (KIB64 + 1)
    item = validate_message(text("user", big), NOW)
    sha = hashlib.sha256(big.encode()).hexdigest()
    assert item.parts == [
        {
            "type": "blob_ref",
            "of": "text",
            "field": "text",
            "sha256": sha,
            "size": KIB64 + 1,
            "encoding": "utf-8",
            "preview": "x" * 2000,
        }
    ]
    assert item.blobs == {sha: big.encode()}
    assert hydrate_part(item.parts[0], item.blobs[sha]) == {"type": "text", "text": big}


def test_the_limit_counts_utf8_bytes_not_characters() -> None:
    accented = "é" * (KIB64 // 2 + 1)  # fewer characters than the limit, more bytes
    [part] = validate_message(text("user", accented), NOW).parts
    assert part["type"] == "blob_ref" and part["size"] == KIB64 + 2


@pytest.mark.parametrize(
    "part",
    [
        {"type": "reasoning", "text": "r" * (KIB64 + 1)},
        {"type": "file", "path": "big.txt", "data": "d" * (KIB64 + 1)},
        {
            "type": "tool_result",
            "tool_call_id": "c9",
            "output": "o" * (KIB64 + 1),
            "is_error": True,
        },
        {"type": "tool_result", "tool_call_id": "c9", "output": {"rows": ["r" * 100] * 700}},
    ],
)
def test_big_payloads_of_every_kind_round_trip_through_a_blob(part: dict[str, Any]) -> None:
    item = validate_message({"role": "tool", "parts": [part]}, NOW)
    [ref] = item.parts
    [(sha, data)] = item.blobs.items()
    assert ref["type"] == "blob_ref" and ref["of"] == part["type"] and ref["sha256"] == sha
    assert hashlib.sha256(data).hexdigest() == sha and ref["size"] == len(data)
    # the other fields of the part stay beside the reference
    for key in set(part) - {"type", "text", "data", "output"}:
        assert ref[key] == part[key]
    assert hydrate_part(ref, data) == part


def test_a_structured_tool_output_is_stored_as_canonical_json() -> None:
    output = {"b": ["r" * 100] * 700, "a": 1}
    item = validate_message(
        {"role": "tool", "parts": [{"type": "tool_result", "tool_call_id": "c", "output": output}]},
        NOW,
    )
    [data] = item.blobs.values()
    assert data == canonical_json(output) and item.parts[0]["encoding"] == "json"


def test_a_message_over_16_mib_is_too_large() -> None:
    with pytest.raises(TooLarge) as caught:
        validate_message(text("user", "z" * MESSAGE_LIMIT), NOW)
    assert caught.value.status == 413
    size = len(canonical_json(text("user", "z" * MESSAGE_LIMIT)))
    assert caught.value.message == (
        f"message 1 is {size} bytes; the limit is {MESSAGE_LIMIT} bytes (16 MiB)"
    )


def test_a_message_just_under_16_mib_is_accepted() -> None:
    item = validate_message(text("user", "z" * (MESSAGE_LIMIT - 200)), NOW)
    assert item.parts[0]["type"] == "blob_ref"


def test_titles_collapse_whitespace_and_stop_at_80_characters() -> None:
    assert derive_title("  fix\n\tthe   bug  ") == "fix the bug"
    assert derive_title("a" * 100) == "a" * 80
    assert derive_title("word " * 40) == ("word " * 16).strip()  # no trailing space after the cut
    assert derive_title("") == ""


def test_searchable_text_of_each_part() -> None:
    assert part_text({"type": "text", "text": "hello"}) == "hello"
    assert part_text({"type": "reasoning", "text": "hmm"}) == "hmm"
    assert part_text({"type": "tool_call", "name": "bash", "input": {"cmd": "ls"}}) == (
        'bash {"cmd":"ls"}'
    )
    assert part_text({"type": "tool_result", "output": {"n": 1}}) == '{"n":1}'
    assert part_text({"type": "file", "path": "a.py"}) == "a.py"
    assert part_text({"type": "blob_ref", "preview": "start of it"}) == "start of it"
    assert message_text([{"type": "text", "text": "a"}, {"type": "file", "path": "b"}]) == "a\nb"


def test_header_checks() -> None:
    check_header(title="t", task="", metadata={"mode": "build"}, git=None)
    for kwargs, error in [
        ({"title": 5}, "title must be a string"),
        ({"metadata": []}, "metadata must be a JSON object"),
        ({"git": "main"}, "git must be a JSON object"),
        ({"metadata": {"x": float("inf")}}, "finite"),
        ({"task": "bad \ud800"}, "not valid Unicode"),
    ]:
        with pytest.raises(InvalidInput, match=error):
            check_header(**kwargs)
    with pytest.raises(TooLarge, match="title is 1001 bytes; the limit is 1000"):
        check_header(title="t" * 1001)
    with pytest.raises(TooLarge, match="task"):
        check_header(task="t" * (KIB64 + 1))


def test_masking_shows_a_hint_never_the_secret() -> None:
    key = "sk-proj-" + "a" * 40
    assert mask(key) == "sk-p…aa (48 chars)"
    assert key not in mask(key)
    assert mask("short") == "*****"
    assert mask("tok-4f9a8b7c6d5e") == "tok-…5e (16 chars)"


def test_redaction_replaces_every_occurrence_longest_first() -> None:
    key = "sk-proj-" + "a" * 40
    value = {"cmd": f"export K={key}", "list": [key, 1, None], "n": 2}
    assert redact_value(value, {key: "OpenAI Token"}) == {
        "cmd": "export K=[REDACTED:OpenAI Token]",
        "list": ["[REDACTED:OpenAI Token]", 1, None],
        "n": 2,
    }
    # a secret inside a longer secret: the longer one wins
    assert redact_value("AAAABBBB", {"AAAA": "short", "AAAABBBB": "long"}) == "[REDACTED:long]"
    parts = [{"type": "text", "text": f"{key} {key}"}]
    assert redact_parts(parts, {key: "K"}) == [
        {"type": "text", "text": "[REDACTED:K] [REDACTED:K]"}
    ]
    assert parts == [{"type": "text", "text": f"{key} {key}"}]  # the input is not changed


def test_strings_in_finds_keys_and_nested_values() -> None:
    found = strings_in({"a": ["b", {"c": "d"}], "e": 1})
    assert sorted(found) == ["a", "b", "c", "d", "e"]

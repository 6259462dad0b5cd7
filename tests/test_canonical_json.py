"""orjson's canonical JSON must be byte for byte Python's (`core.ids.canonical_json`) for
every value validation calls plain, or message ids would change with the encoder."""

from __future__ import annotations

import random
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baton.core.chain import link
from baton.core.ids import canonical_json, message_id, plain_float
from baton.core.validation import _check_json, validate_message
from baton.service import canonical

NOW = "2026-01-01T00:00:00.000000Z"

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@pytest.mark.slow
@settings(max_examples=1000, deadline=None)  # 3,000 took a minute on a busy machine
@given(json_values)
def test_plain_values_encode_the_same(value: Any) -> None:
    _, plain = _check_json(value, "value")
    if plain:
        assert canonical(value) == canonical_json(value)


def test_floats_across_every_magnitude() -> None:
    rnd = random.Random(7)
    checked = 0
    for i in range(200_000):
        if i % 2:
            f = struct.unpack("d", struct.pack("Q", rnd.getrandbits(64)))[0]
        else:
            f = rnd.uniform(-10, 10) * 10.0 ** rnd.randint(-8, 20)
        if f != f or f in (float("inf"), float("-inf")) or not plain_float(f):
            continue
        checked += 1
        assert canonical({"x": [f, -f]}) == canonical_json({"x": [f, -f]}), f
    assert checked > 50_000
    for f in (0.0, -0.0, 1e-4, 0.00011, 9999999999999998.0, 1e15, 123.456, 2.0**53):
        assert plain_float(f) and canonical([f]) == canonical_json([f]), f
    # where they differ, validation says so and the id is Python's
    for f in (5e-05, 1e-05, 1e-7, 1e16, 1e300, 5e-324):
        assert not plain_float(f)
    assert canonical([5e-05]) != canonical_json([5e-05])


def test_text_escapes_and_key_order_are_the_same() -> None:
    text = "".join(chr(c) for c in range(0x3000)) + "\U0001f600\u2028\u2029\x7f"
    value = {"b": text, "a": [1, True, None, -0.0, 2**63, 2**64 - 1], "é": {"Z": 1, "z": 2}}
    value["\U0001f600"] = {"\uffff": 3, "\u00e9": 4}
    assert canonical(value) == canonical_json(value)


def test_a_message_gets_the_same_id_either_way() -> None:
    for usage in ({"cost_usd": 0.0123}, {"cost_usd": 0.00002}, None):
        raw = {"role": "assistant", "parts": [{"type": "text", "text": "hi"}], "usage": usage}
        item = validate_message(raw, NOW)
        assert item.plain_numbers == (usage is None or usage["cost_usd"] >= 1e-4)
        fast, slow = link(None, item, [], canonical), link(None, item, [])
        assert fast.message.id == slow.message.id == message_id(fast.message.content())

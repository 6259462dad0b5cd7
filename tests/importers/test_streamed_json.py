"""`load_json_object`: a big export read in pieces gives exactly what reading it whole gives,
and a file it cannot read so is refused with the same line as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baton.core.errors import InvalidInput
from baton.importers import base
from baton.importers.base import load_json, load_json_object

SAMPLES = Path(__file__).parent / "samples"

_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(
    doc=st.dictionaries(st.text(max_size=6), _values | st.lists(_values, max_size=6), max_size=4),
    indent=st.sampled_from([None, 1]),
    chunk=st.integers(min_value=1, max_value=40),
)
def test_read_in_pieces_is_read_whole(
    doc: dict[str, object], indent: int | None, chunk: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("streamed") / "doc.json"
    path.write_text(json.dumps(doc, indent=indent, ensure_ascii=False), encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(base, "_CHUNK", chunk)
        assert load_json_object(path) == load_json(path)


def test_the_real_exports_read_the_same_in_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "_CHUNK", 97)
    exports = sorted(SAMPLES.rglob("*.json"))
    assert exports
    for path in exports:
        try:
            whole = load_json(path)
        except InvalidInput:
            continue
        assert load_json_object(path) == whole, path


def test_a_bom_and_big_integers_read_as_orjson_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b'\xef\xbb\xbf{"a": [1, 18446744073709551616, "\xc3\xa9"], "b": 2}')
    assert load_json_object(path) == {"a": [1, 18446744073709551616.0, "é"], "b": 2}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b'{"info": {"id": "ses_x"}, "messages": [', "the JSON ends early"),
        (b'{"info": {"id": "ses_x"}, "messages": [}', "is not valid JSON"),
        (b"", "is empty"),
        (b'{"a": 1} {"b": 2}', "is not valid JSON"),
    ],
)
def test_a_broken_file_is_refused_as_before(tmp_path: Path, text: bytes, message: str) -> None:
    path = tmp_path / "broken.json"
    path.write_bytes(text)
    with pytest.raises(InvalidInput) as streamed:
        load_json_object(path)
    with pytest.raises(InvalidInput) as whole:
        load_json(path)
    assert streamed.value.message == whole.value.message
    assert message in streamed.value.message


def test_a_key_twice_keeps_the_last_as_before(tmp_path: Path) -> None:
    path = tmp_path / "twice.json"
    path.write_bytes(b'{"messages": [1], "messages": [2]}')
    assert load_json_object(path) == {"messages": [2]}

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
from baton.importers.base import load_json, load_json_object, stream_json_object

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


def _streamed(path: Path, key: str = "messages") -> dict[str, object]:
    """What `stream_json_object` yields, put back together as one object."""
    streamed = stream_json_object(path, key)
    assert streamed is not None
    items = list(streamed.items)
    return {**streamed.head, key: items, **streamed.tail}


def _message(number: int, text: str, **more: object) -> dict[str, object]:
    info = {"id": f"msg_{number:04d}", "role": "user"}
    return {"info": info, "parts": [{"text": text}], **more}


# Elements alike at their start (as an export's messages are), with the text the byte
# level could get wrong: escaped quotes and backslashes, brackets and the elements' own
# start inside strings, characters of 2, 3 and 4 bytes, numbers ending an element, the same
# start nested inside an element, an element that starts otherwise, one much longer.
_TRICKY = [
    _message(0, 'say "hi" \\ and \\"quoted\\" \\\\'),
    _message(1, '}]},{"info":{"id":"msg_9"}} ] [ { \\', n=[1, 22, 333]),
    _message(2, "é ü — 漢字 🎉 " * 3, n=-0.5e-3),
    {"parts": [{"text": "starts otherwise"}], "info": {"id": "msg_0003"}},
    _message(4, "long " + 'ab"c\\d{e}f' * 300),
    _message(5, "nested", parts2=[1, {"info": {"id": "msg_x", "role": "user"}, "parts": []}]),
    _message(6, "", n=18446744073709551616),
    _message(7, "last", n=12345),
]


@pytest.mark.parametrize("indent", [None, 2])
def test_like_elements_read_the_same_at_every_piece_size(
    tmp_path: Path, indent: int | None
) -> None:
    path = tmp_path / "export.json"
    doc = {"info": {"id": "ses_x"}, "messages": _TRICKY, "after": [1, {"a": "b"}], "n": 7}
    path.write_text(json.dumps(doc, indent=indent, ensure_ascii=False), encoding="utf-8")
    whole = repr(load_json(path))
    for chunk in [*range(1, 90), 1000, 4096, 1 << 20]:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(base, "_CHUNK", chunk)
            assert repr(_streamed(path)) == whole, chunk
            assert repr(load_json_object(path)) == whole, chunk


def test_whitespace_between_elements_and_numbers_at_piece_ends(tmp_path: Path) -> None:
    path = tmp_path / "spaced.json"
    element = b'{"info": {"id": "m"}, "n": [1, 2.5, -30]}'
    path.write_bytes(
        b'\xef\xbb\xbf {"messages" :\r\n[ '
        + b" ,\n\t ".join([element] * 4 + [b"12", b"-7.25e3", b'"s"', element, b"0"])
        + b' \n] , "n": 123456789 }\n'
    )
    whole = repr(load_json(path))
    for chunk in range(1, 60):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(base, "_CHUNK", chunk)
            assert repr(_streamed(path)) == whole, chunk


def test_values_orjson_refuses_read_as_before(tmp_path: Path) -> None:
    # NaN, Infinity, a number beyond a double and a lone surrogate, which orjson refuses,
    # in elements among ones it reads; huge integers become floats as orjson reads them
    path = tmp_path / "odd.json"
    odd = [
        b'{"info": {"id": "a"}, "n": 1}',
        b'{"info": {"id": "b"}, "n": NaN}',
        b'{"info": {"id": "c"}, "n": [18446744073709551616, -Infinity, "\\ud800"]}',
        b'{"info": {"id": "d"}, "n": 1e400}',
        b'{"info": {"id": "e"}, "n": -9223372036854775809}',
        b'{"info": {"id": "f"}, "n": 2}',
    ]
    path.write_bytes(b'{"messages": [' + b", ".join(odd) + b"]}")
    expected = [
        {"info": {"id": "a"}, "n": 1},
        {"info": {"id": "b"}, "n": float("nan")},
        {"info": {"id": "c"}, "n": [18446744073709551616.0, float("-inf"), "\ud800"]},
        {"info": {"id": "d"}, "n": float("inf")},
        {"info": {"id": "e"}, "n": -9223372036854775809.0},
        {"info": {"id": "f"}, "n": 2},
    ]
    for chunk in [1, 7, 1 << 20]:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(base, "_CHUNK", chunk)
            assert repr(_streamed(path)) == repr({"messages": expected})


def test_a_truncated_export_fails_from_items_as_reading_it_whole_does(tmp_path: Path) -> None:
    text = json.dumps({"info": {"id": "ses_x"}, "messages": _TRICKY}, ensure_ascii=False)
    path = tmp_path / "torn.json"
    path.write_text(text, encoding="utf-8")
    messages = load_json(path)["messages"]
    for cut in range(text.index("[") + 1, len(text), 7):
        path.write_text(text[:cut], encoding="utf-8")
        with pytest.raises(InvalidInput) as whole:
            load_json(path)
        for chunk in [5, 1 << 20]:
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(base, "_CHUNK", chunk)
                streamed = stream_json_object(path, "messages")
                assert streamed is not None
                items: list[object] = []
                with pytest.raises(InvalidInput) as torn:
                    items.extend(streamed.items)
                assert torn.value.message == whole.value.message
                assert "the JSON ends early" in torn.value.message
                assert repr(items) == repr(messages[: len(items)])


def test_text_that_is_not_utf8_in_an_element_fails_from_items(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "_CHUNK", 64)  # the bad byte is in a later piece
    path = tmp_path / "latin1.json"
    element = '{"info": {"id": "m"}, "text": "%s"}'
    body = ", ".join([element % "ok"] * 3 + [element % "caf\xe9"] + [element % "ok"])
    path.write_bytes(('{"messages": [' + body + "]}").encode("latin-1"))
    streamed = stream_json_object(path, "messages")
    assert streamed is not None
    with pytest.raises(InvalidInput) as refused:
        list(streamed.items)
    assert refused.value.message == "latin1.json: is not UTF-8 text (a binary file?)"


class _CountingDecoder(json.JSONDecoder):
    calls = 0

    def raw_decode(self, s: str, idx: int = 0) -> tuple[object, int]:
        _CountingDecoder.calls += 1
        return super().raw_decode(s, idx)


def test_only_what_orjson_cannot_place_is_parsed_by_the_standard_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the members before the array, its first element and its last: the elements between
    # are found by how the next one starts and parsed by orjson alone
    path = tmp_path / "export.json"
    doc = {"info": {"id": "ses_x"}, "messages": [_message(n, "x" * n) for n in range(200)]}
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    monkeypatch.setattr(base, "_DECODER", _CountingDecoder(parse_int=base._int))
    monkeypatch.setattr(base, "_CHUNK", 4096)
    assert _streamed(path) == doc
    assert _CountingDecoder.calls == 5

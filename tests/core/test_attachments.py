"""Encoded attachments: what their bytes say as text, for the scan, and their redacted copies."""

from __future__ import annotations

import base64

from baton.core.attachments import ENCODED_LIMIT, Decoded, decode, text_of
from baton.core.redaction import redact_value, strings_in
from baton.scanning import SecretScanner

KEY = "sk-proj-" + "a1B2c3D4e5" * 4


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def file(data: str, **extra: str) -> dict[str, str]:
    return {"type": "file", "path": "f.txt", "data": data, **extra}


def test_text_is_utf8_or_mostly_printable_and_binary_is_not() -> None:
    assert text_of("héllo\n".encode()) == Decoded("héllo\n", True)
    latin = "caf\xe9 ".encode("latin-1") * 10  # not UTF-8, but text
    assert text_of(latin) == Decoded("caf\ufffd " * 10, False)
    assert text_of(bytes(range(256))) is None
    assert text_of(b"\x89PNG\r\n\x1a\n" + bytes(range(128, 256)) + b"\x01" * 7) is None
    assert text_of(b"") == Decoded("", True)


def test_base64_is_read_wrapped_url_safe_or_unpadded() -> None:
    data = f"KEY={KEY}\n".encode()
    wrapped = "\n".join(b64(data)[i : i + 76] for i in range(0, len(b64(data)), 76))
    assert decode(file(wrapped, encoding="base64")) == Decoded(data.decode(), True)
    urlsafe = base64.urlsafe_b64encode(b"\xfb\xff" + data).decode().rstrip("=")
    # two bytes of 60 are not UTF-8: mostly text, read with replacement characters
    assert decode(file(urlsafe, encoding="base64")) == Decoded(
        "\ufffd\ufffd" + data.decode(), False
    )
    assert decode({"type": "base64", "data": b64(data).rstrip("=")}) == Decoded(data.decode(), True)


def test_what_is_not_encoded_is_not_decoded() -> None:
    assert decode(file("not base64 at all!", encoding="base64")) is None
    assert decode(file(b64(b"hello world, friends"), encoding="utf-8")) is None
    assert decode(file("aGVsbG8=")) is None  # unmarked and short: text
    assert decode(file("hello world this is text")) is None  # unmarked, not base64
    assert decode(file(b64(b"hello world, friends"))) == Decoded("hello world, friends", True)
    assert decode(file("A" * (ENCODED_LIMIT + 4), encoding="base64")) is None
    assert decode(file("a%20b", encoding="url")) == Decoded("a b", True)
    assert decode(file("plain", encoding="url")) is None  # it says what it is


def test_the_scan_reads_what_an_attachment_says_and_its_raw_string() -> None:
    scanner = SecretScanner()
    hidden = [file(b64(f"KEY={KEY}".encode()), encoding="base64")]
    assert scanner.find(hidden) == {KEY: "OpenAI Token"}
    assert KEY not in str(hidden) and f"KEY={KEY}" in strings_in(hidden)
    broken = [file(f"!{KEY}", encoding="base64")]  # invalid base64: the string is the text
    assert scanner.find(broken) == {KEY: "OpenAI Token"}
    png = [file(b64(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8), encoding="base64")]
    assert scanner.find(png) == {}


def test_redaction_re_encodes_utf8_text_and_withholds_what_it_cannot() -> None:
    secrets = {KEY: "OpenAI Token"}
    text = file(b64(f"KEY={KEY}\n".encode()), encoding="base64")
    (copy,) = redact_value([text], secrets)
    assert base64.b64decode(copy["data"]) == b"KEY=[REDACTED:OpenAI Token]\n"
    assert copy["encoding"] == "base64"
    latin = file(b64(f"caf\xe9 {KEY} ".encode("latin-1") * 3), encoding="base64")
    unmarked = file(b64(f"KEY={KEY}".encode()))
    for part in (latin, unmarked):
        (copy,) = redact_value([part], secrets)
        assert copy == {
            "type": "file",
            "path": "f.txt",
            "withheld": "its content held 1 secret(s), so it is not shared",
        }
    clean = file(b64(b"nothing here"), encoding="base64")
    assert redact_value([clean], secrets) == [clean]
    url = file(f"k%3D{KEY}", encoding="url")
    assert redact_value([url], secrets)[0]["data"] == "k%3D%5BREDACTED%3AOpenAI%20Token%5D"

"""Attachments whose bytes are encoded: a file part's base64 (or percent-encoded) `data`, and
an image or document block's base64 `source` inside a tool output. The secret scan reads
what they say when it is text; a share's redacted copy re-encodes the redacted text, or
withholds bytes it cannot re-encode faithfully.

Which strings are encoded:
- an object with a string `data` and `encoding: "base64"` (baton's file parts, from every
  importer) or `type: "base64"` (Anthropic's image and document sources);
- an object with a string `data` and `encoding: "url"` (a data: URL without `;base64`);
- a file part with a string `data` and no `encoding` that is strict base64 of at least
  16 characters: a file part read back from a blob, whose blob_ref kept no encoding.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from baton.core.models import JSON
from baton.core.validation import MESSAGE_LIMIT

# No message holds more: a longer string is not decoded (the scan reads it as it is).
ENCODED_LIMIT = MESSAGE_LIMIT
_MIN_UNMARKED = 16  # an unmarked file's data shorter than this is text, not base64
_STRICT_B64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_URLSAFE_B64 = re.compile(r"[A-Za-z0-9_-]+={0,2}")
# Bytes of text: printable ASCII, tab, newline, carriage return, and every byte >= 0x80
# (UTF-8 continuation and lead bytes; a file that is not UTF-8 is judged by the rest).
_TEXT_BYTES = bytes([9, 10, 13, *range(32, 127), *range(128, 256)])
_MOSTLY = 0.95
_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _unquote(value: str) -> bytes:
    """The bytes of a percent-encoded data: URL's data (urllib is I/O, not for core)."""
    return _PERCENT.sub(lambda m: bytes([int(m.group(1), 16)]), value.encode("utf-8"))


def _quote(text: str) -> str:
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in text.encode("utf-8"))


@dataclass(frozen=True)
class Decoded:
    """What an encoded attachment says: its `text`, and whether that text is its bytes
    exactly (`utf8`: UTF-8), so that a redacted copy can be encoded back."""

    text: str
    utf8: bool


def text_of(data: bytes) -> Decoded | None:
    """`data` as text when it is text: UTF-8, or mostly printable (decoded with
    replacement characters); None for binary (an image, an archive)."""
    try:
        return Decoded(data.decode("utf-8"), True)
    except UnicodeDecodeError:
        pass
    if not data or b"\x00" in data:
        return None
    other = len(data.translate(None, _TEXT_BYTES))
    if other > (1 - _MOSTLY) * len(data):
        return None
    return Decoded(data.decode("utf-8", "replace"), False)


def _b64(value: str, strict: bool) -> bytes | None:
    """The bytes of base64 `value` (standard or URL-safe, line breaks and missing padding
    allowed unless `strict`); None when it is not base64."""
    compact = value if strict else "".join(value.split())
    if not compact:
        return None
    if _STRICT_B64.fullmatch(compact) is not None:
        alphabet = None
    elif not strict and _URLSAFE_B64.fullmatch(compact) is not None:
        alphabet = b"-_"
    else:
        return None
    if strict and len(compact) % 4:
        return None
    padded = compact.rstrip("=")
    padded += "=" * (-len(padded) % 4)
    try:
        return base64.b64decode(padded, altchars=alphabet, validate=True)
    except (binascii.Error, ValueError):
        return None


def _kind(item: JSON) -> str | None:
    """How `item["data"]` is encoded: "base64", "url", "unmarked" (maybe base64), or None."""
    data = item.get("data")
    if not isinstance(data, str) or len(data) > ENCODED_LIMIT:
        return None
    if item.get("encoding") == "base64" or item.get("type") == "base64":
        return "base64"
    if item.get("encoding") == "url":
        return "url"
    if item.get("type") == "file" and "encoding" not in item and len(data) >= _MIN_UNMARKED:
        return "unmarked"
    return None


def decode(item: JSON) -> Decoded | None:
    """What the encoded `data` of `item` says as text; None when it is not encoded, not
    valid (then its string is the text, and is scanned as it is), or binary."""
    kind = _kind(item)
    if kind is None:
        return None
    data: str = item["data"]
    if kind == "url":
        raw = _unquote(data)
        if raw == data.encode("utf-8"):
            return None  # nothing was encoded: the string is the text
    else:
        decoded = _b64(data, strict=kind == "unmarked")
        if decoded is None:
            return None
        raw = decoded
    return text_of(raw)


def name_of(part: JSON) -> str | None:
    """The name a file part is shown by."""
    for key in ("path", "name", "url"):
        if isinstance(part.get(key), str) and part[key]:
            return str(part[key])
    return None


def redact_encoded(value: Any, secrets: dict[str, str], replace: Any) -> Any:
    """`value` with every encoded attachment that says a secret rewritten: its text with
    `replace(text)` applied and encoded back, or, when its bytes are not UTF-8 (or are
    unmarked), its data withheld and a note saying so in `withheld`."""
    if not secrets:
        return value
    if isinstance(value, list):
        return [redact_encoded(v, secrets, replace) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: redact_encoded(v, secrets, replace) for k, v in value.items()}
    decoded = decode(value)
    if decoded is None or not any(s in decoded.text for s in secrets):
        return out
    kind = _kind(value)
    held = sum(1 for s in secrets if s in decoded.text)
    if decoded.utf8 and kind in ("base64", "url"):
        text = replace(decoded.text)
        data = text.encode("utf-8")
        out["data"] = base64.b64encode(data).decode("ascii") if kind == "base64" else _quote(text)
        return out
    del out["data"]
    out.pop("encoding", None)
    out["withheld"] = f"its content held {held} secret(s), so it is not shared"
    return out

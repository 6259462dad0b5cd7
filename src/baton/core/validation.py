"""Input rules for messages: known roles and part types, sizes, and moving big parts to blobs."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from math import isfinite
from typing import Any

from baton.core.errors import InvalidInput, TooLarge
from baton.core.ids import canonical_json, plain_float
from baton.core.models import (
    COST_MAX,
    JSON,
    PART_TYPES,
    ROLES,
    TOKENS_MAX,
    USAGE_KEYS,
    format_time,
    kept_before,
)

INLINE_LIMIT = 64 * 1024  # a text part or tool output larger than this becomes a blob_ref
MESSAGE_LIMIT = 16 * 1024 * 1024  # a single message larger than this is refused
PREVIEW_CHARS = 2000
TITLE_CHARS = 80

# part type -> the field that holds its (possibly large) payload
_PAYLOAD = {"text": "text", "reasoning": "text", "tool_result": "output", "file": "data"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FIELDS = frozenset({"role", "parts", "created_at", "model", "usage", "id", "parent"})
# the form `format_time` writes, which most callers send back
_BATON_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


@dataclass(frozen=True, slots=True)
class MessageInput:
    """A message as a caller sends it, validated and with big payloads moved out."""

    role: str
    parts: list[JSON]
    created_at: str
    model: str | None
    usage: JSON | None
    blobs: dict[str, bytes]  # sha256 -> bytes for every payload that was moved out
    # No number in it that Python's json and orjson write differently (see ids.canonical_json):
    # its id may be hashed over orjson's bytes.
    plain_numbers: bool = False


def validate_message(raw: Any, now: str, index: int = 0) -> MessageInput:
    """Check one message from a caller; raise InvalidInput or TooLarge with a one-line reason."""
    where = f"message {index + 1}"
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where}: expected a JSON object, got {type(raw).__name__}")
    if not raw.keys() <= _FIELDS:
        unknown = raw.keys() - _FIELDS
        raise InvalidInput(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    text_bytes, plain = _check_json(raw, where)
    # JSON escapes make a string at most 6 bytes per byte: only a message that could be near
    # the limit is encoded to measure it exactly.
    size = text_bytes
    if text_bytes * 6 > MESSAGE_LIMIT:
        try:
            size = len(canonical_json(raw))
        except RecursionError:
            raise InvalidInput(f"{where}: nested too deeply") from None
    if size > MESSAGE_LIMIT:
        raise TooLarge(f"{where} is {size} bytes; the limit is {MESSAGE_LIMIT} bytes (16 MiB)")
    role = raw.get("role")
    if role not in ROLES:
        raise InvalidInput(f"{where}: role must be one of {', '.join(sorted(ROLES))}, got {role!r}")
    parts = raw.get("parts")
    if not isinstance(parts, list) or not parts:
        raise InvalidInput(f"{where}: parts must be a non-empty list")
    created_at = raw.get("created_at", now)
    if not isinstance(created_at, str):
        raise InvalidInput(f"{where}: created_at must be an ISO 8601 string")
    created_at = _normalise_time(created_at, where)
    model = raw.get("model")
    if model is not None and not isinstance(model, str):
        raise InvalidInput(f"{where}: model must be a string")
    usage = _validate_usage(raw.get("usage"), where)
    blobs: dict[str, bytes] = {}
    out = [_validate_part(p, f"{where}, part {i + 1}", blobs) for i, p in enumerate(parts)]
    return MessageInput(role, out, created_at, model, usage, blobs, plain)


_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_MAX_DEPTH = 200


class _Unsure(Exception):
    """Raised by the quick scan at anything but plain JSON types within the rules."""


def _check_json(value: Any, where: str) -> tuple[int, bool]:
    """Only what every store can keep exactly: string keys, 64-bit integers, finite numbers,
    valid Unicode, at most 200 levels deep. Returns the UTF-8 size of its strings (keys
    included), and whether every float is one that orjson writes as Python's json does
    (`ids.plain_float`). A quick scan answers for a value that passes; anything else is
    walked again node by node, so that a refusal gives the reason the walk meets first."""
    floats: list[float] = []
    dicts: list[dict[str, Any]] = []
    try:
        size = _scan((value,), 0, floats, dicts)
        keys = "".join(chain.from_iterable(dicts))  # TypeError at a key that is no string
        size += len(keys) if keys.isascii() else len(keys.encode("utf-8"))
        if all(map(isfinite, floats)):
            return size, all(map(plain_float, floats))
    except (_Unsure, TypeError, UnicodeEncodeError, RecursionError):
        pass
    return _walk(value, where)


def _scan(items: Any, depth: int, floats: list[float], dicts: list[dict[str, Any]]) -> int:
    """The UTF-8 size of the strings among `items` (at `depth`) and below them, collecting
    the floats and the objects (whose keys are checked at once). Only exact types: a
    subclass, or anything out of the rules, raises _Unsure (or an encoding error)."""
    size = 0
    for item in items:
        kind = type(item)
        if kind is str:
            size += len(item) if item.isascii() else len(item.encode("utf-8"))
        elif kind is int:
            if not _INT_MIN <= item <= _INT_MAX:
                raise _Unsure
        elif kind is dict:
            if depth >= _MAX_DEPTH and item:
                raise _Unsure
            dicts.append(item)
            size += _scan(item.values(), depth + 1, floats, dicts)
        elif kind is list or kind is tuple:
            if depth >= _MAX_DEPTH and item:
                raise _Unsure
            size += _scan(item, depth + 1, floats, dicts)
        elif kind is float:
            floats.append(item)
        elif item is not None and kind is not bool:
            raise _Unsure
    return size


def _walk(value: Any, where: str) -> tuple[int, bool]:
    """`_check_json` node by node, for any value: raises InvalidInput at the first node
    out of the rules."""
    size = 0
    plain = True
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise InvalidInput(f"{where}: nested more than {_MAX_DEPTH} levels deep")
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise InvalidInput(f"{where}: object keys must be strings, got {key!r}")
                size += _utf8_size(key, where)
                stack.append((child, depth + 1))
        elif isinstance(item, list | tuple):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            size += _utf8_size(item, where)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not _INT_MIN <= item <= _INT_MAX:
                raise InvalidInput(f"{where}: integer {item} is out of the 64-bit range")
        elif isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                raise InvalidInput(f"{where}: numbers must be finite (no NaN or Infinity)")
            plain = plain and plain_float(item)
        else:
            raise InvalidInput(f"{where}: {type(item).__name__} is not a JSON value")
    return size, plain


def _utf8_size(text: str, where: str) -> int:
    if text.isascii():  # most text: its length is its size, and it is valid
        return len(text)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput(f"{where}: text is not valid Unicode (a lone surrogate?)") from None


HEADER_LIMITS = {"title": 1000, "task": 64 * 1024, "metadata": 1024 * 1024, "git": 1024 * 1024}


def check_header(**fields: Any) -> None:
    """Title and task are text, metadata and git are JSON objects, each within its limit."""
    for name, value in fields.items():
        if value is None:
            continue
        if name in ("title", "task"):
            if not isinstance(value, str):
                raise InvalidInput(f"{name} must be a string")
            data = _encode(value, name)
        else:
            if not isinstance(value, dict):
                raise InvalidInput(f"{name} must be a JSON object")
            _check_json(value, name)
            data = _encode(value, name)
        if len(data) > HEADER_LIMITS[name]:
            raise TooLarge(f"{name} is {len(data)} bytes; the limit is {HEADER_LIMITS[name]}")


def _encode(value: Any, where: str) -> bytes:
    try:
        return value.encode("utf-8") if isinstance(value, str) else canonical_json(value)
    except UnicodeEncodeError:
        raise InvalidInput(f"{where}: text is not valid Unicode (a lone surrogate?)") from None


def _normalise_time(value: str, where: str) -> str:
    if _BATON_TIME.fullmatch(value):
        try:
            datetime.fromisoformat(value[:-1])  # a real date and time: kept as it is
            return value
        except ValueError:
            pass  # refused below, with the general message
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{where}: created_at {value!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise InvalidInput(f"{where}: created_at {value!r} has no time zone")
    try:
        return format_time(parsed)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        raise InvalidInput(f"{where}: created_at {value!r} is out of range") from None


def _validate_usage(usage: Any, where: str) -> JSON | None:
    if usage is None:
        return None
    if not isinstance(usage, dict):
        raise InvalidInput(f"{where}: usage must be an object")
    out: JSON = {}
    for key, value in usage.items():
        if key in USAGE_KEYS:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidInput(f"{where}: usage.{key} must be a non-negative integer")
            if value > TOKENS_MAX:
                raise InvalidInput(f"{where}: usage.{key} {value} is over the limit of 2^53")
        elif key == "cost_usd":
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise InvalidInput(f"{where}: usage.cost_usd must be a non-negative number")
            if value > COST_MAX:
                raise InvalidInput(
                    f"{where}: usage.cost_usd {value} is over the limit of {COST_MAX:,.0f}"
                )
        out[key] = value
    return out


def _validate_part(part: Any, where: str, blobs: dict[str, bytes]) -> JSON:
    if not isinstance(part, dict):
        raise InvalidInput(f"{where}: expected an object")
    kind = part.get("type")
    if kind not in PART_TYPES:
        raise InvalidInput(
            f"{where}: type must be one of {', '.join(sorted(PART_TYPES))}, got {kind!r}"
        )
    if kind in ("text", "reasoning"):
        _require_str(part, "text", where)
    elif kind == "tool_call":
        _require_str(part, "id", where)
        _require_str(part, "name", where)
    elif kind == "tool_result":
        _require_str(part, "tool_call_id", where)
        if "output" not in part:
            raise InvalidInput(f"{where}: a tool_result needs an output")
    elif kind == "file":
        if not isinstance(part.get("path", part.get("name")), str):
            raise InvalidInput(f"{where}: a file part needs a path")
    elif kind == "blob_ref":
        if not isinstance(part.get("sha256"), str) or not _SHA256.match(part["sha256"]):
            raise InvalidInput(f"{where}: a blob_ref needs a sha256 of 64 hex digits")
        if not isinstance(part.get("size"), int):
            raise InvalidInput(f"{where}: a blob_ref needs an integer size")
        return dict(part)
    return _offload(dict(part), kind, where, blobs)


def _require_str(part: JSON, key: str, where: str) -> None:
    if not isinstance(part.get(key), str):
        raise InvalidInput(f"{where}: {part.get('type')} needs a string {key}")


def _offload(part: JSON, kind: str, where: str, blobs: dict[str, bytes]) -> JSON:
    field = _PAYLOAD.get(kind)
    if field is None or field not in part:
        return part
    value = part[field]
    if isinstance(value, str):
        if len(value) <= INLINE_LIMIT and value.isascii():  # its length is its size
            return part
        data, encoding = value.encode("utf-8"), "utf-8"
    elif kind == "tool_result":
        data, encoding = canonical_json(value), "json"
    else:
        raise InvalidInput(f"{where}: {field} must be a string")
    if len(data) <= INLINE_LIMIT:
        return part
    sha = hashlib.sha256(data).hexdigest()
    blobs[sha] = data
    ref: JSON = {k: v for k, v in part.items() if k not in ("type", field)}
    preview = value if isinstance(value, str) else data.decode("utf-8")
    ref.update(
        type="blob_ref",
        of=kind,
        field=field,
        sha256=sha,
        size=len(data),
        encoding=encoding,
        preview=preview[:PREVIEW_CHARS],
    )
    return ref


def hydrate_part(part: JSON, data: bytes) -> JSON:
    """The inverse of offloading: the original part with its payload back in place. Raises
    InvalidInput when the bytes are not what the blob_ref says (UTF-8 text, or JSON)."""
    out = {
        k: v
        for k, v in part.items()
        if k not in ("type", "of", "field", "sha256", "size", "encoding", "preview")
    }
    out["type"] = part.get("of", "file")
    kind = "JSON" if part.get("encoding") == "json" else "UTF-8 text"
    try:
        text = data.decode("utf-8")
        value = json.loads(text) if kind == "JSON" else text
    except (ValueError, RecursionError):
        raise InvalidInput(
            f"blob {part.get('sha256')} is not {kind} as its blob_ref says"
        ) from None
    out[part.get("field", "data")] = value
    return out


def part_text(part: JSON) -> str:
    """The searchable, human-readable text of one part."""
    kind = part.get("type")
    if kind in ("text", "reasoning"):
        return str(part.get("text", ""))
    if kind == "tool_call":
        return f"{part.get('name', '')} {canonical_json(part.get('input', {})).decode()}"
    if kind == "tool_result":
        output = part.get("output", "")
        return output if isinstance(output, str) else canonical_json(output).decode()
    if kind == "file" or kept_before(part) is not None:  # (a file's earlier content: its path)
        return str(part.get("path", part.get("name", "")))
    if kind == "blob_ref":
        return str(part.get("preview", ""))
    return ""


def message_text(parts: list[JSON]) -> str:
    return "\n".join(t for t in (part_text(p) for p in parts) if t)


def derive_title(text: str) -> str:
    """A title from the first user prompt: whitespace collapsed, cut at 80 characters."""
    return " ".join(text.split())[:TITLE_CHARS].rstrip()

"""JSON-lines files (Claude Code transcripts, Codex rollouts): every line a JSON object.

`read_jsonl` reads a whole file, refusing it in one line where it is not JSON lines and skipping
a torn last line with a warning; `head_records` gives the complete objects at the start of a
head, for `detect`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from baton.core.models import JSON
from baton.importers.base import refuse

HEAD_LINES = 20  # detect() looks at this many complete lines of the head at most
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass
class Records:
    """The JSON objects of a JSON-lines file with their line numbers, and what was skipped."""

    lines: list[tuple[int, JSON]]
    warnings: list[str] = field(default_factory=list)
    skipped: int = 0


def read_jsonl(path: Path, kind: str, data: bytes | None = None) -> Records:
    """Every line of `path` as a JSON object. A torn last line is skipped with a warning; an
    empty file, a line that is not JSON before the last, or a line that is not an object
    raises InvalidInput naming the line."""
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise refuse(path, f"cannot read it ({error.strerror})") from None
    rows = [(n, raw) for n, raw in enumerate(data.split(b"\n"), 1) if raw.strip()]
    if not rows:
        raise refuse(path, f"the file is empty; expected {kind}")
    out = Records([])
    for position, (n, raw) in enumerate(rows):
        try:
            value = _loads(raw)
        except ValueError:
            if position == len(rows) - 1 and out.lines:
                out.warnings.append(f"{path.name}: line {n} is cut short (torn write); skipped")
                out.skipped += 1
                continue
            raise refuse(path, f"line {n} is not valid JSON; expected {kind}") from None
        if not isinstance(value, dict):
            raise refuse(path, f"line {n} is a JSON {_type_name(value)}, not an object")
        out.lines.append((n, value))
    return out


def stream_records(path: Path) -> Iterator[tuple[int, JSON]]:
    """The JSON objects of `path` with their line numbers, read one line at a time (memory
    bounded by the longest line); lines that are not JSON objects are passed over. Raises
    OSError when the file cannot be read."""
    with path.open("rb") as lines:
        for n, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                value = _loads(raw)
            except ValueError:
                continue
            if isinstance(value, dict):
                yield n, value


def head_records(head: bytes) -> list[JSON] | None:
    """The complete JSON objects at the start of `head` (None if the first line is not one)."""
    found: list[JSON] = []
    for raw in head.split(b"\n"):
        if not raw.strip():
            continue
        try:
            value = _loads(raw)
        except ValueError:
            break  # the head may end inside a line
        if not isinstance(value, dict):
            return None
        found.append(value)
        if len(found) >= HEAD_LINES:
            break
    return found or None


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    # Lone UTF-16 surrogates (a JavaScript string cut inside an emoji) are valid JSON text
    # that orjson refuses: read them with the standard library and replace them.
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=no_constant)
    except (ValueError, RecursionError):
        raise ValueError("not JSON") from None
    return _scrub(value)


def no_constant(name: str) -> Any:
    """For json.loads(parse_constant=...): NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not JSON")


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    return value


def _type_name(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool) or value is None:
        return "literal"
    return "number"

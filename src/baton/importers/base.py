"""What every importer returns: other tools' sessions as baton messages, before storing.

An importer reads one path (a file, a folder or a database) and returns a `Parsed`: the
sessions in it, in baton's message shape (the dicts `validate_message` accepts), with every
message's `created_at` taken from the source, so importing the same file twice gives the same
content-addressed ids and stores nothing new.

Below those, the small readers the importers share: a whole JSON file refused in one line,
times (ISO 8601, epoch milliseconds) in baton's format, and checks of loose JSON values.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeGuard

import orjson

from baton.core.errors import InvalidInput
from baton.core.models import COST_MAX, JSON, TOKENS_MAX, USAGE_KEYS, format_time

_EPOCH = datetime(1970, 1, 1)  # in UTC
_MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z


@dataclass
class ImportedSession:
    tool: str  # "claude-code", "codex", "opencode", "kilo", "cline", …
    source_id: str  # the tool's own id for the session
    messages: list[dict[str, Any]]  # baton message dicts, oldest first
    title: str = ""
    task: str = ""
    created_at: str | None = None  # baton time format (see baton.core.models.format_time)
    metadata: dict[str, Any] = field(default_factory=dict)  # cwd, source tool/version, …
    git: dict[str, Any] | None = None  # what the tool recorded: branch, remote, commit, cwd
    # A fork that names its parent instead of copying it (Codex): the parent's source id and
    # how many of the parent's messages come before this session's own.
    parent: tuple[str, int] | None = None
    # Those leading messages of the parent as its own file holds them (found beside the
    # fork), for when the parent is not imported yet.
    inherited: list[dict[str, Any]] | None = None
    # A fork that copies its parent's history (Claude Code, opencode): the parent's source id
    # and the number of leading messages it shares with it (stored once, by content).
    forked_from: tuple[str, int] | None = None
    # A session too big to hold: its messages one at a time, read as they are stored
    # (`messages` is then empty); what depends on all of them (task, metadata, the tool)
    # is filled in when it ends.
    stream: Iterator[dict[str, Any]] | None = None


@dataclass
class Parsed:
    tool: str
    version: str | None
    sessions: list[ImportedSession]
    warnings: list[str] = field(default_factory=list)  # one line each: torn lines, skips
    skipped_lines: int = 0
    # For sessions that come as a stream: about how many bytes of the file are read so far
    # (a progress bar's measure).
    read_so_far: Callable[[], int] | None = None


class Importer(Protocol):
    name: str

    def detect(self, path: Path, head: bytes) -> bool:
        """Is this path in this importer's format? `head` is the first 64 KiB of a file (empty
        for a folder). Decide by content, never by the file name alone."""

    def read(self, path: Path, *, stream: bool = False) -> Parsed:
        """The sessions at `path`. A path that is not valid in this format raises InvalidInput
        with one line; a torn last line is skipped with a warning. With `stream`, a big
        session may come as a `stream` of its messages (see `ImportedSession.stream`)."""


def refuse(path: Path, why: str) -> InvalidInput:
    return InvalidInput(f"{path.name}: {why}")


def load_json(path: Path, where: Path | None = None, *, fast: bool = True) -> Any:
    """A whole JSON file, or InvalidInput with one line. With `where` (a folder holding the
    file), the line names `where` and then the file: `<where>: <file> ends early …`; without,
    the file alone: `<file>: the JSON ends early …`.

    `fast` parses with orjson first (integers beyond 64 bits then become floats) and the
    standard library only to word a refusal; without it the standard library parses alone."""

    def fail(why: str, subject: str = "") -> InvalidInput:
        if where is not None:
            return refuse(where, f"{path.name} {why}")
        return refuse(path, f"{subject} {why}" if subject else why)

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise fail(f"cannot be read ({exc.strerror or exc})") from None
    if not data.strip():
        raise fail("is empty")
    if fast:
        # orjson reads the bytes themselves (no decoded copy of a big file beside them); the
        # slow parser below only words the refusal
        try:
            return orjson.loads(memoryview(data)[3:] if data[:3] == b"\xef\xbb\xbf" else data)
        except orjson.JSONDecodeError:
            pass
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise fail("is not UTF-8 text (a binary file?)") from None
    del data
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
            raise fail("ends early (a truncated or half-written file?)", "the JSON") from None
        raise fail(
            f"is not valid JSON ({exc.msg}, line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise fail("is nested too deeply", "the JSON") from None


_CHUNK = 1 << 20
_WHITESPACE = re.compile(rb"[ \t\n\r]*")
_NUMBER_GOES_ON = re.compile(r"[-+.eE0-9]*\Z")  # "1." or "2e" at a piece's end: wait for the rest
_INT64 = (-(2**63), 2**64 - 1)
_HEAD = 64  # how much of an element's start is compared with the next one's
_MISSING = object()


def _int(text: str) -> int | float:
    """An integer as orjson reads it: beyond 64 bits, a float."""
    value = int(text)
    return value if _INT64[0] <= value <= _INT64[1] else float(text)


_DECODER = json.JSONDecoder(parse_int=_int)


def _whole(data: bytes) -> int:
    """How much of `data` is whole UTF-8: all of it but a character cut short at its end,
    whose rest is still to be read."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte >= 0xC0:  # the first byte of a character of 2, 3 or 4 bytes
            length = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return len(data) - back if back < length else len(data)
        if byte < 0x80:
            break
    return len(data)


class _Unstreamable(Exception):
    """The file is not an object of plain values and arrays, or not valid JSON."""


class _Reader:
    """A JSON text read in pieces: the values of a top-level object, and the elements of its
    arrays one at a time, each parsed alone, so no more than one element's text is held.

    The text is kept as bytes. An array element that starts as the one before it did is
    found by where the next such start is (after the same separator) and parsed by orjson
    alone; orjson reading exactly that stretch proves it is the whole element. Anything
    else, and an element orjson refuses (NaN, a lone surrogate, …), is parsed by the
    standard library from the decoded text, so the values are the same either way."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.buf, self.pos, self.eof = b"", 0, False
        self.text: str | None = None  # the standard library's view of the buffer
        self.synced = (0, 0)  # a place in `buf` and the same place in `text`
        self.last_end, self.last_head, self.longest = -1, b"", 0
        self.pattern: bytes | None = None  # how the next array element starts
        while len(self.buf) < len(codecs.BOM_UTF8) and self.more():
            pass
        if self.buf.startswith(codecs.BOM_UTF8):
            self.pos = len(codecs.BOM_UTF8)

    def more(self) -> bool:
        if self.eof:
            return False
        done = self.pos
        chunk = self.handle.read(max(_CHUNK, len(self.buf) - done))  # a long value: as much again
        self.eof = not chunk
        self.buf, self.pos, self.text = self.buf[done:] + chunk, 0, None
        self.last_end -= done
        return True

    def peek(self) -> str:
        if self.pos < len(self.buf) and self.buf[self.pos] > 32:  # whitespace is below "!"
            return chr(self.buf[self.pos])
        while True:
            self.pos = _WHITESPACE.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return chr(self.buf[self.pos])
            if not self.more():
                return ""

    def take(self, char: str) -> None:
        if self.peek() != char:
            raise _Unstreamable
        self.pos += 1

    def value(self) -> Any:
        first = self.peek()
        head = self.buf[self.pos : self.pos + _HEAD]
        value = _MISSING
        if first == "{" or first == "[":
            if not (
                self.pattern
                and self.last_end >= 0
                and self.buf.startswith(self.pattern, self.last_end)
            ):
                self.pattern = self._next_start(head)
            if self.pattern:
                value = self._parsed_before(self.pattern)
        if value is _MISSING:
            value = self._parsed()
        self.last_end, self.last_head = self.pos, head
        return value

    def _next_start(self, head: bytes) -> bytes | None:
        """How the next element will start if it is like this one and the one before: the
        same separator, then their shared start up to its last quote, holding a whole key.
        A string cannot hold such a run (its first quote would end the string), so the
        first one found is nearly always where the element ends."""
        if self.last_end < 0:
            return None
        separator = self.buf[self.last_end : self.pos]
        if separator.strip() != b",":
            return None
        quote = head.rfind(b'"')
        while quote > 0 and not self.last_head.startswith(head[: quote + 1]):
            quote = head.rfind(b'"', 0, quote)
        shared = head[: quote + 1]
        return separator + shared if b'":' in shared else None

    def _parsed_before(self, pattern: bytes) -> Any:
        """The element at `pos` if `pattern` follows it and orjson reads it; else _MISSING.
        Looks no further ahead than a piece beyond the longest element yet."""
        after = self.pos + 1
        while (end := self.buf.find(pattern, after)) < 0:
            span = len(self.buf) - self.pos
            if span > self.longest + _CHUNK or not self.more():
                return _MISSING
            after = max(1, span - len(pattern) + 1)
        try:
            value = orjson.loads(memoryview(self.buf)[self.pos : end])
        except orjson.JSONDecodeError:
            return _MISSING
        self.longest = max(self.longest, end - self.pos)
        self.pos = end
        return value

    def _parsed(self) -> Any:
        """The value at `pos` as the standard library reads it (on the decoded text)."""
        while True:
            text, at = self._decoded()
            try:
                value, end = _DECODER.raw_decode(text, at)
            except json.JSONDecodeError:
                if self.more():  # perhaps the value goes on in the next piece
                    continue
                raise _Unstreamable from None
            except RecursionError:
                raise _Unstreamable from None
            if _NUMBER_GOES_ON.match(text, end) and self.more():
                continue
            size = end - at if text.isascii() else len(text[at:end].encode())
            self.longest = max(self.longest, size)
            self.pos += size
            self.synced = (self.pos, end)
            return value

    def _decoded(self) -> tuple[str, int]:
        """The buffer as text from before `pos`, and where `pos` is in it."""
        if self.text is None:
            cut = len(self.buf) if self.eof else _whole(self.buf)
            try:
                self.text = str(memoryview(self.buf)[self.pos : cut], "utf-8")
            except UnicodeDecodeError:
                raise _Unstreamable from None
            self.synced = (self.pos, 0)
        byte, char = self.synced
        if byte != self.pos:
            gap = self.buf[byte : self.pos]
            char += len(gap) if self.text.isascii() else len(gap.decode())
            self.synced = (self.pos, char)
        return self.text, char

    def name(self, first: bool, taken: Container[str]) -> str:
        """The next member's name in the object being read, its colon taken (a comma before
        it unless it is the `first`); not streamable when it is not a string or is `taken`."""
        if not first:
            self.take(",")
        key = self.value()
        if not isinstance(key, str) or key in taken:
            raise _Unstreamable
        self.take(":")
        return key

    def end(self) -> None:
        """The object's closing brace, and nothing after it."""
        self.pos += 1
        if self.peek() != "":
            raise _Unstreamable

    def array(self) -> list[Any]:
        self.take("[")
        out: list[Any] = []
        if self.peek() == "]":
            self.pos += 1
            return out
        while True:
            out.append(self.value())
            if self.peek() == "]":
                self.pos += 1
                return out
            self.take(",")


def load_json_object(path: Path) -> Any:
    """`load_json` of a file holding one JSON object, read in pieces: its arrays' elements are
    parsed one at a time, so the whole text (and a parser's copy of it) is never held beside
    what it parses to. A file it cannot read so (not an object, a key twice, not valid JSON)
    is read by `load_json`, which words the refusal."""
    try:
        with path.open("rb") as handle:
            reader = _Reader(handle)
            reader.take("{")
            out: dict[str, Any] = {}
            while reader.peek() != "}":
                key = reader.name(not out, out)
                out[key] = reader.array() if reader.peek() == "[" else reader.value()
            reader.end()
            return out
    except (_Unstreamable, OSError):
        pass
    return load_json(path)


class Streamed:
    """A JSON object read as it is used: `head` holds its members before the big array,
    `items` yields that array's elements one at a time, and `tail` holds the members after
    it once `items` is exhausted. A file that goes wrong part way (truncated, not JSON)
    raises InvalidInput from `items`, worded as `load_json` words it."""

    def __init__(self, path: Path, reader: _Reader, head: dict[str, Any], key: str) -> None:
        self.path, self.head, self.tail = path, head, dict[str, Any]()
        self._reader, self._key = reader, key
        self.items: Iterator[Any] = self._elements()

    def close(self) -> None:
        self._reader.handle.close()

    def position(self) -> int:
        """About how many bytes of the file are read (for a progress bar)."""
        handle = self._reader.handle
        return 0 if handle.closed else int(handle.tell())

    def _elements(self) -> Iterator[Any]:
        reader = self._reader
        try:
            reader.take("[")
            if reader.peek() == "]":
                reader.pos += 1
            else:
                while True:
                    yield reader.value()
                    if reader.peek() == "]":
                        reader.pos += 1
                        break
                    reader.take(",")
            while reader.peek() != "}":
                key = reader.name(False, self.head.keys() | self.tail.keys() | {self._key})
                self.tail[key] = reader.value()
            reader.end()
        except (_Unstreamable, OSError):
            reader.handle.close()
            load_json(self.path)  # words the refusal
            raise refuse(self.path, "changed while it was read") from None
        reader.handle.close()


def stream_json_object(path: Path, key: str) -> Streamed | None:
    """`path`'s JSON object with its array `key` read one element at a time (see `Streamed`),
    so a big file is never held whole. None when it cannot be read so: not an object, no
    such array, or something before it that is not JSON; the caller then reads the file
    whole, which words any refusal."""
    try:
        handle = path.open("rb")
    except OSError:
        return None
    try:
        reader = _Reader(handle)
        reader.take("{")
        head: dict[str, Any] = {}
        while reader.peek() != "}":
            name = reader.name(not head, head)
            if name == key and reader.peek() == "[":
                return Streamed(path, reader, head, key)
            head[name] = reader.value()
    except (_Unstreamable, OSError):
        pass
    handle.close()
    return None


def bounded_usage(usage: JSON | None) -> JSON | None:
    """Usage as baton keeps it: token counts and cost saturated at the bounds a message may
    claim (core/models.py), as a session's totals saturate, rather than the whole file refused
    for one absurd count."""
    if usage is None:
        return None
    out = dict(usage)
    for key in USAGE_KEYS:
        if isinstance(out.get(key), int) and out[key] > TOKENS_MAX:
            out[key] = TOKENS_MAX
    cost = out.get("cost_usd")
    if isinstance(cost, int | float) and cost > COST_MAX:
        out["cost_usd"] = COST_MAX
    return out


def to_time(value: Any) -> str | None:
    """An ISO 8601 time with a zone, in baton's format; None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return format_time(parsed) if parsed.tzinfo is not None else None
    except (ValueError, OverflowError):  # OverflowError: before year 1 or after 9999 in UTC
        return None


def epoch_ms(value: Any) -> int | None:
    """Epoch milliseconds as the tools write them, or None when there are none."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value != value or not 0 <= value <= _MAX_MS:
        return None
    return int(value)


def ms_time(ms: int) -> str:
    """Baton's time format, exact to the millisecond the tool recorded: `format_time`'s
    text, written straight from the UTC time (twice as fast: it runs for every message)."""
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="microseconds") + "Z"


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def finite(value: Any) -> TypeGuard[int | float]:
    """A finite, non-negative JSON number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return value == value and 0 <= value < 2**63


def first_prompt(messages: list[JSON]) -> str:
    """The text of the first user message that has typed text (synthetic parts left out)."""
    for message in messages:
        if message["role"] == "user":
            texts = [
                p["text"]
                for p in message["parts"]
                if p["type"] == "text" and not p.get("synthetic")
            ]
            if texts:
                return "\n".join(texts)
    return ""


def shared_prefix(a: list[JSON], b: list[JSON]) -> int:
    """How many leading messages two lists have in common."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n

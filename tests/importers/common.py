"""What the importer tests share: the samples, imported messages chained the way baton stores
them, the checks every JSON-lines importer (Claude Code, Codex) passes on broken files, and the
damage the property tests do to JSON documents."""

from __future__ import annotations

import copy
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import strategies as st

from baton.core.chain import link, verify_chain
from baton.core.errors import InvalidInput
from baton.core.models import StoredMessage
from baton.core.validation import MessageInput, validate_message
from baton.importers.base import ImportedSession, Importer

NOW = "2026-12-01T00:00:00.000000Z"
START = datetime(2026, 1, 1, tzinfo=UTC)
SAMPLES = next(
    p
    for p in (
        Path(os.environ.get("BATON_SAMPLES", "/nonexistent")),
        Path(__file__).parent / "samples",
        Path("/work/shared/samples"),
    )
    if p.is_dir()
)


def samples(*tools: str) -> list[Path]:
    """The sample sessions (JSON and JSON-lines files) of these tools, sorted, tool by tool."""
    return [
        p
        for tool in tools
        for p in sorted((SAMPLES / tool).rglob("*.json*"))
        if not p.name.endswith(".meta.json")  # a Claude Code sub-agent's, not a session
    ]


def sample_names(*tools: str) -> list[str]:
    """`samples(*tools)` as paths below SAMPLES, to name parametrized cases."""
    return [str(p.relative_to(SAMPLES)) for p in samples(*tools)]


def head(path: Path) -> bytes:
    """What `detect` is given: the first 64 KiB of a file, nothing for a folder."""
    return b"" if path.is_dir() else path.read_bytes()[:65536]


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().rstrip(b"\n").split(b"\n")


def write_jsonl(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return path


def single(importer: Importer, path: Path) -> ImportedSession:
    """The one session `importer` reads at `path`."""
    parsed = importer.read(path)
    assert len(parsed.sessions) == 1
    return parsed.sessions[0]


def refusal(importer: Importer, path: Path) -> str:
    """The one line `importer` refuses `path` with."""
    with pytest.raises(InvalidInput) as caught:
        importer.read(path)
    message = caught.value.message
    assert "\n" not in message
    return message


# --- messages as baton stores them -----------------------------------------------------------


def chain(messages: list[dict[str, Any]]) -> list[StoredMessage]:
    out: list[StoredMessage] = []
    for i, raw in enumerate(messages):
        out.append(link(out[-1] if out else None, validate_message(raw, NOW, i), []))
    return out


def ids(messages: list[dict[str, Any]]) -> list[str]:
    return [s.message.id for s in chain(messages)]


def validated(messages: list[dict[str, Any]]) -> list[MessageInput]:
    """Each message as baton's validation accepts it (it raises on one it refuses)."""
    return [validate_message(raw, NOW, i) for i, raw in enumerate(messages)]


def assert_chains(session: ImportedSession) -> None:
    """Every message of `session` is valid, has parts, and links into a chain that verifies."""
    assert verify_chain([s.message for s in chain(session.messages)]) == []
    assert all(m["parts"] for m in session.messages)


def parts(session: ImportedSession, kind: str) -> list[dict[str, Any]]:
    return [p for m in session.messages for p in m["parts"] if p["type"] == kind]


def prompts(session: ImportedSession) -> list[str]:
    return [p["text"] for m in session.messages if m["role"] == "user" for p in m["parts"]]


def typed_prompts(session: ImportedSession) -> list[str]:
    """The text parts of user messages that the person typed (not the tool's synthetic ones)."""
    return [
        p["text"]
        for m in session.messages
        if m["role"] == "user"
        for p in m["parts"]
        if p["type"] == "text" and not p.get("synthetic")
    ]


# --- broken JSON-lines files: refused in one line that names the file and the line -----------


def refuses_a_torn_line_in_the_middle(importer: Importer, sample: Path, tmp_path: Path) -> None:
    lines = lines_of(sample)
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b"\n".join([*lines[:9], lines[9][:60], *lines[10:]]))
    with pytest.raises(InvalidInput, match=r"^broken.jsonl: line 10 is not valid JSON"):
        importer.read(broken)


def refuses_an_empty_file(importer: Importer, tmp_path: Path, data: bytes) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(data)
    with pytest.raises(InvalidInput, match=r"^empty.jsonl: the file is empty"):
        importer.read(empty)


def refuses_binary_garbage(importer: Importer, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(InvalidInput, match=r"^garbage.jsonl: line 1 is not valid JSON"):
        importer.read(garbage)
    assert not importer.detect(garbage, head(garbage))


def refuses_a_line_that_is_not_an_object(importer: Importer, sample: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_bytes(b"\n".join([*lines_of(sample)[:5], b"[1, 2]", *lines_of(sample)[5:]]))
    with pytest.raises(InvalidInput, match=r"^wrong.jsonl: line 6 is a JSON array, not an"):
        importer.read(wrong)


# --- any damage: refused in one line, or messages that validate ------------------------------

JUNK = [None, 0, -1, 1.5, 1e300, 2**62, "x", "", [], {}, [1], {"a": 1}, True]


def places(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Where a value can be replaced in a JSON document: the key or index path to each."""
    found = [at] if at else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += places(child, (*at, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += places(child, (*at, index))
    return found


def damage(data: st.DataObject, doc: Any) -> None:
    """Replace one value, anywhere in `doc`, with junk."""
    place = data.draw(st.sampled_from(places(doc)))
    target = doc
    for step in place[:-1]:
        target = target[step]
    target[place[-1]] = copy.deepcopy(data.draw(st.sampled_from(JUNK)))


def refused_or_valid(importer: Importer, path: Path) -> None:
    """`importer` refuses `path` in one line, or gives messages that validate and chain."""
    try:
        parsed = importer.read(path)
    except InvalidInput as exc:
        assert "\n" not in exc.message
        return
    for session in parsed.sessions:
        chain(session.messages)

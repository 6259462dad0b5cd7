"""Other agents' sessions in, as baton sessions: one module per format, chosen by content.

`read(path, fmt)` returns the `Parsed` sessions of a file, folder or database; `documents()`
turns them into baton export documents, which the service (local) or the client (remote)
imports like any baton export, so both modes store exactly the same thing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from baton.core.errors import InvalidInput
from baton.importers.base import ImportedSession, Importer, Parsed
from baton.render.document import EXPORT_FORMAT, EXPORT_VERSION

# Tried in this order; each decides from the content.
MODULES = {
    "claude-code": "baton.importers.claude_code",
    "codex": "baton.importers.codex",
    "opencode": "baton.importers.opencode",
    "cline": "baton.importers.cline",
}
FORMATS = ("auto", "baton", *MODULES)


def importer(name: str) -> Importer:
    module = importlib.import_module(MODULES[name])
    found: Importer = module.IMPORTER
    return found


def _head(path: Path) -> bytes:
    if path.is_dir():
        return b""
    with path.open("rb") as f:
        return f.read(65536)


def is_baton_export(head: bytes) -> bool:
    text = head[:4096].lstrip()
    return text.startswith(b"{") and b'"format"' in text and f'"{EXPORT_FORMAT}"'.encode() in text


def detect(path: Path) -> str:
    """The format of `path`, from its content: "baton" or one of MODULES."""
    if not path.exists():
        raise InvalidInput(f"cannot read {path}: no such file or folder")
    try:
        head = _head(path)
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read it ({exc.strerror})") from None
    if not path.is_dir() and not head.strip():
        raise InvalidInput("the file is empty")
    if is_baton_export(head):
        return "baton"
    for name in MODULES:
        if importer(name).detect(path, head):
            return name
    known = "baton, claude-code, codex, opencode, kilo, cline"
    if path.is_file():
        import orjson

        try:
            orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            raise InvalidInput(
                f"{path.name}: not valid JSON, nor a session format baton knows ({known})"
            ) from None
    raise InvalidInput(
        f"{path.name}: not a session format baton knows ({known}); pass --format to say which"
    )


def read(path: Path, fmt: str = "auto", *, stream: bool = False) -> Parsed:
    """The sessions at `path`. With `stream`, a big session may come as a `stream` of
    messages read as they are used (see `ImportedSession.stream`); without, every session
    holds its messages."""
    if fmt not in FORMATS or fmt == "baton":
        raise InvalidInput(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    name = detect(path) if fmt == "auto" else fmt
    if name == "baton":
        raise InvalidInput(f"{path.name} is a baton export: import it with --format baton")
    return importer(name).read(path, stream=stream)


def documents(
    parsed: Parsed,
    earlier: Callable[[str, int], list[dict[str, Any]] | None] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """baton export documents for the parsed sessions, parents before their forks. A fork that
    names its parent (Codex) gets the parent's first messages in front of its own: from this
    batch, or from `earlier(source_id, count)` (sessions imported before). Returns the
    documents and warnings."""
    warnings: list[str] = []
    by_id = {s.source_id: s for s in parsed.sessions}
    full: dict[str, list[dict[str, Any]]] = {}

    def messages_of(session: ImportedSession, seen: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        if session.source_id in full:
            return full[session.source_id]
        own = list(session.messages)
        if session.parent is not None:
            parent_id, count = session.parent
            prefix: list[dict[str, Any]] | None = None
            if parent_id in by_id and parent_id not in seen:
                prefix = messages_of(by_id[parent_id], (*seen, session.source_id))[:count]
            elif earlier is not None:
                prefix = earlier(parent_id, count)
            if prefix is None and session.inherited is not None:
                prefix = session.inherited[:count]
            if prefix is None:
                warnings.append(
                    f"{session.tool} session {session.source_id}: its parent {parent_id} is "
                    "not imported, so it is imported from its own messages only"
                )
            else:
                own = [*prefix, *own]
        full[session.source_id] = own
        return own

    docs = []
    for session in sorted(parsed.sessions, key=lambda s: s.parent is not None):
        header = _header(session)
        messages: Iterable[dict[str, Any]]
        if session.stream is not None:
            first = next(session.stream, None)
            messages = [] if first is None else _streamed(session, first, header)
        else:
            messages = messages_of(session)
        if not messages:
            warnings.append(f"{session.tool} session {session.source_id}: no messages, skipped")
            continue
        docs.append(
            {
                "format": EXPORT_FORMAT,
                "version": EXPORT_VERSION,
                "session": header,
                "messages": messages,
            }
        )
    return docs, warnings


def _header(session: ImportedSession) -> dict[str, Any]:
    header: dict[str, Any] = {
        "title": session.title,
        "task": session.task,
        "metadata": session.metadata,
        "git": session.git,
    }
    if session.created_at:
        header["created_at"] = session.created_at
    origin = session.parent or session.forked_from
    if origin is not None:
        header["forked_from"] = {"source_session": origin[0], "messages": origin[1]}
    return header


def _streamed(
    session: ImportedSession, first: dict[str, Any], header: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """A streamed session's messages; once they end, `header` holds what the session
    learned from them (its task, its metadata)."""
    yield first
    assert session.stream is not None
    yield from session.stream
    header.update(_header(session))


__all__ = ["FORMATS", "ImportedSession", "Parsed", "detect", "documents", "read"]

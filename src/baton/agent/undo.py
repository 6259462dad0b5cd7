"""`/undo`: put back the files the last chat turn wrote, from what the session recorded, in
the process that ran the turn or in a later one (`baton chat -c`, local or after `baton login`).

Before a turn's first write_file or edit_file of a file, the file's content is kept in the
session: the tool's result message carries a `file` part marked `before_turn` with the text
as it was (bytes that are not UTF-8 as Latin-1, one character per byte, so a secret in them is
as plain to the share scanner as in a text file), `existed: false` when the turn created the
file, or `kept: false` with its size when it is over KEEP_LIMIT (2 MiB). Like any part, one over
64 KiB is stored as a blob that only the session (and a share of it) reaches; it is scanned
when it is recorded and redacted by `baton share --redact`, as the rest of the conversation
is. Each write's result also records the SHA-256 of what it left (`written_sha256`).

`/undo` reads the last turn's records back: a file whose content is no longer what the turn
left is named and left alone; the others are restored (or deleted, when the turn created
them), and the session records an `undo` message, so the model (and whoever reads the
session) knows."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baton.agent.loop import INTERRUPTED_TURN, NOT_RUN
from baton.agent.tools import Outcome, ToolError, Tools
from baton.core.models import BEFORE_TURN, JSON, Message

WRITERS = frozenset({"write_file", "edit_file"})
KEEP_LIMIT = 2 * 1024 * 1024  # a file's content before the turn is kept up to this size
LATIN1 = "latin-1"


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    except OSError:
        return None


def is_before(part: JSON) -> bool:
    """A part that keeps a file's content before a turn (inline, or as a blob_ref)."""
    return part.get(BEFORE_TURN) is True


def before_part(rel: str, data: bytes | None) -> JSON:
    """The part that records file `rel` as it was before the turn wrote it (None: absent)."""
    part: JSON = {"type": "file", "path": rel, BEFORE_TURN: True}
    if data is None:
        part["existed"] = False
        return part
    try:
        text, encoding = data.decode("utf-8"), None
    except UnicodeDecodeError:
        text, encoding = data.decode(LATIN1), LATIN1
    # as JSON (escapes and all) it must leave room in the message (16 MiB) for the rest
    if len(data) > KEEP_LIMIT or len(json.dumps(text, ensure_ascii=False)) > KEEP_LIMIT:
        part.update(kept=False, size=len(data))
    else:
        part["data"] = text
        if encoding is not None:
            part["bytes"] = encoding
    return part


def _is_result(part: JSON) -> bool:
    return part.get("type") == "tool_result" or (
        part.get("type") == "blob_ref" and part.get("of") == "tool_result"
    )


def _is_undo(message: Message) -> bool:
    return message.role == "system" and any(isinstance(p.get("undo"), dict) for p in message.parts)


@dataclass(frozen=True)
class LastTurn:
    """The last turn of a chain, as far as /undo cares: where its messages start (after its
    prompt), how many files it recorded the content of, its commands, whether it was undone
    already, and whether it came with a fork (it wrote files elsewhere; a share's copy may
    hold redacted content)."""

    start: int
    files: int
    commands: int
    undone: bool
    inherited: bool = False


def last_turn(chain: Sequence[Message], forked_at: str | None = None) -> LastTurn | None:
    """The last turn of `chain` (None before the first prompt); `forked_at`: the message the
    session was forked at, if it is a fork."""
    for i in range(len(chain) - 1, -1, -1):
        message = chain[i]
        if message.role == "user" and not all(
            p.get("type") == "text" and p.get("text") == INTERRUPTED_TURN for p in message.parts
        ):
            break
    else:
        return None
    tail = chain[i + 1 :]
    files = {str(p.get("path")) for m in tail for p in m.parts if is_before(p)}
    commands = 0
    for message in tail:
        for part in message.parts:
            meta = part.get("metadata")
            if (
                _is_result(part)
                and part.get("name") == "run_command"
                and not (isinstance(meta, dict) and meta.get("refused"))
                and part.get("output") != NOT_RUN
            ):
                commands += 1
    undone = any(_is_undo(m) for m in tail)
    inherited = forked_at is not None and any(m.id == forked_at for m in chain[i:])
    return LastTurn(i + 1, len(files), commands, undone, inherited)


class TrackedTools(Tools):
    """The chat's tools: the same tools, their results recording each written file's content
    before the turn's first write to it, and the hash of what each write left."""

    def __init__(self, inner: Tools) -> None:
        self.__dict__.update(inner.__dict__)
        self.kept: set[str] = set()  # files whose content before this turn is recorded

    def start_turn(self) -> None:
        self.kept.clear()

    def run(self, name: str, args: dict[str, Any]) -> Outcome:
        target: tuple[str, Path] | None = None
        before: bytes | None = None
        if name in WRITERS and isinstance(args, dict):
            try:
                path = self.path(args.get("path"), must_exist=False)
                target = (self.rel(path), path)
                if target[0] not in self.kept and path.is_file():
                    before = path.read_bytes()
            except (ToolError, OSError, TypeError, ValueError):
                target = None
        outcome = super().run(name, args)
        if target is None or target[0] not in outcome.written:
            return outcome
        rel, path = target
        written = {rel: _digest(path)}
        outcome.metadata = {**(outcome.metadata or {}), "written_sha256": written}
        if rel not in self.kept:
            self.kept.add(rel)
            outcome.parts.append(before_part(rel, before))
        return outcome

    def undo(self, messages: Sequence[Message]) -> JSON:
        """Put back the files that `messages` (a turn's, hydrated) recorded the content of
        before they were written. Returns what was done: restored, deleted, skipped (changed
        since the turn wrote them), not_kept (their content before was not recorded)."""
        before: dict[str, JSON] = {}
        left: dict[str, Any] = {}
        for message in messages:
            for part in message.parts:
                if is_before(part):
                    before.setdefault(str(part.get("path")), part)
                meta = part.get("metadata") if _is_result(part) else None
                written = meta.get("written_sha256") if isinstance(meta, dict) else None
                if isinstance(written, dict):
                    left.update(written)
        done: JSON = {"restored": [], "deleted": [], "skipped": [], "not_kept": []}
        for rel, part in before.items():
            try:
                path = self._writable(rel)
            except (ToolError, ValueError):
                done["not_kept"].append(rel)
                continue
            data = part.get("data")
            absent = part.get("existed") is False
            if not absent and (part.get("type") != "file" or not isinstance(data, str)):
                done["not_kept"].append(rel)
            elif rel not in left or _digest(path) != left[rel]:
                done["skipped"].append(rel)
            elif absent:
                path.unlink(missing_ok=True)
                done["deleted"].append(rel)
            else:
                encoding = LATIN1 if part.get("bytes") == LATIN1 else "utf-8"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(str(data).encode(encoding))
                done["restored"].append(rel)
        return done


def undo_text(done: JSON, commands: int) -> str:
    """The line the session records (and the chat shows) for an undo."""
    pieces = []
    if done["restored"]:
        pieces.append(f"restored {', '.join(done['restored'])}")
    if done["deleted"]:
        pieces.append(f"deleted {', '.join(done['deleted'])} (created by the turn)")
    if done["skipped"]:
        pieces.append(f"left {', '.join(done['skipped'])} as is (changed since the turn wrote it)")
    if done.get("not_kept"):
        not_kept = ", ".join(done["not_kept"])
        pieces.append(f"left {not_kept} as is (its content before the turn was not kept)")
    text = "undo of the last turn: " + ("; ".join(pieces) or "no file to restore")
    if commands:
        text += f"; what its {commands} command(s) changed is not undone"
    return text

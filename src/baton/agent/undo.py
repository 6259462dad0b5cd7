"""`/undo`: put back the files the last chat turn wrote. Before write_file or edit_file
changes a file, its content (or its absence) is kept; `/undo` restores exactly those files —
a file changed again since the turn is left alone and named — and the session records an
`undo` message, so the model (and whoever reads the session) knows."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baton.agent.tools import Outcome, ToolError, Tools
from baton.core.models import JSON

WRITERS = frozenset({"write_file", "edit_file"})


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    except OSError:
        return None


@dataclass
class Checkpoint:
    """What one turn's writes replaced: path -> the bytes before (None: it did not exist)."""

    root: Path
    before: dict[str, bytes | None] = field(default_factory=dict)
    after: dict[str, str | None] = field(default_factory=dict)  # path -> sha256 the turn left
    commands: int = 0  # commands the turn ran (what they changed is not undone)

    def start(self) -> None:
        self.before.clear()
        self.after.clear()
        self.commands = 0

    def finish(self, commands: int) -> None:
        """At the end of the turn: what it left, to tell later changes apart."""
        self.commands = commands
        self.after = {rel: _digest(self.root / rel) for rel in self.before}

    def undo(self) -> JSON:
        """Restore the files; returns what was done: restored, deleted, skipped (changed
        since the turn)."""
        done: JSON = {"restored": [], "deleted": [], "skipped": []}
        for rel, data in self.before.items():
            path = self.root / rel
            if _digest(path) != self.after.get(rel):
                done["skipped"].append(rel)
            elif data is None:
                path.unlink(missing_ok=True)
                done["deleted"].append(rel)
            else:
                path.write_bytes(data)
                done["restored"].append(rel)
        self.before.clear()
        self.after.clear()
        return done


class TrackedTools(Tools):
    """The chat's tools: the same tools, keeping each written file's content before the
    turn's first write to it."""

    def __init__(self, inner: Tools, checkpoint: Checkpoint) -> None:
        self.__dict__.update(inner.__dict__)
        self.checkpoint = checkpoint

    def run(self, name: str, args: dict[str, Any]) -> Outcome:
        kept: tuple[str, bytes | None] | None = None
        if name in WRITERS and isinstance(args, dict):
            try:
                path = self.path(args.get("path"), must_exist=False)
                rel = self.rel(path)
                if rel not in self.checkpoint.before:
                    kept = (rel, path.read_bytes() if path.is_file() else None)
            except (ToolError, OSError, ValueError):
                kept = None
        outcome = super().run(name, args)
        if kept is not None and kept[0] in outcome.written:
            self.checkpoint.before[kept[0]] = kept[1]
        return outcome


def undo_text(done: JSON, commands: int) -> str:
    """The line the session records (and the chat shows) for an undo."""
    pieces = []
    if done["restored"]:
        pieces.append(f"restored {', '.join(done['restored'])}")
    if done["deleted"]:
        pieces.append(f"deleted {', '.join(done['deleted'])} (created by the turn)")
    if done["skipped"]:
        pieces.append(f"left {', '.join(done['skipped'])} as is (changed since the turn)")
    text = "undo of the last turn: " + ("; ".join(pieces) or "no file to restore")
    if commands:
        text += f"; what its {commands} command(s) changed is not undone"
    return text

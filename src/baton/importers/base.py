"""What every importer returns: other tools' sessions as baton messages, before storing.

An importer reads one path (a file, a folder or a database) and returns a `Parsed`: the
sessions in it, in baton's message shape (the dicts `validate_message` accepts), with every
message's `created_at` taken from the source, so importing the same file twice gives the same
content-addressed ids and stores nothing new.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from baton.core.errors import InvalidInput


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
    # A fork that copies its parent's history (Claude Code, opencode): the parent's source id
    # and the number of leading messages it shares with it (stored once, by content).
    forked_from: tuple[str, int] | None = None


@dataclass
class Parsed:
    tool: str
    version: str | None
    sessions: list[ImportedSession]
    warnings: list[str] = field(default_factory=list)  # one line each: torn lines, skips
    skipped_lines: int = 0


class Importer(Protocol):
    name: str

    def detect(self, path: Path, head: bytes) -> bool:
        """Is this path in this importer's format? `head` is the first 64 KiB of a file (empty
        for a folder). Decide by content, never by the file name alone."""

    def read(self, path: Path) -> Parsed:
        """The sessions at `path`. A path that is not valid in this format raises InvalidInput
        with one line; a torn last line is skipped with a warning."""


def refuse(path: Path, why: str) -> InvalidInput:
    return InvalidInput(f"{path.name}: {why}")

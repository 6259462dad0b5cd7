"""`baton sync`: the other agents' session files followed as they are written.

Each pass looks at every session file (`baton.importers.places`) and imports those whose
signature (size, modification time, inode, and those of what is read with them) changed
since the last import. An import of a grown file grows the same baton session (the service
follows a source session by its identity, see `baton.store.base.source_key`). A torn last
line is left out by the importers and read once it is whole, at the next change. What was
imported is kept in a small state file in BATON_HOME, written after each pass, so a sync
stopped or crashed goes on from there; memory holds one signature per file, and one file's
sessions while they are imported.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from baton.core.errors import BatonError
from baton.importers.places import configured, locations, signature

STATE_FILE = "sync-state.json"
STATE_VERSION = 1
INTERVAL = 0.5  # seconds between passes

Importer = Callable[[Path, str], dict[str, Any]]


@dataclass
class State:
    """What was imported, per file: its signature then, its baton sessions, or the error
    it gave (tried again when the file changes). Kept for one target (the local store, or
    a server's address): another target starts afresh."""

    target: str
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, home: Path, target: str) -> State:
        try:
            data = orjson.loads((home / STATE_FILE).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return cls(target)
        if (
            not isinstance(data, dict)
            or data.get("version") != STATE_VERSION
            or data.get("target") != target
            or not isinstance(data.get("files"), dict)
        ):
            return cls(target)
        return cls(target, data["files"])

    def save(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        body = {"version": STATE_VERSION, "target": self.target, "files": self.files}
        tmp = home / f".{STATE_FILE}.{os.getpid()}"
        tmp.write_bytes(orjson.dumps(body))
        os.replace(tmp, home / STATE_FILE)


@dataclass
class Change:
    """One file imported in a pass: its sessions (id, title, messages, messages added,
    created) or the error it gave."""

    path: str
    tool: str
    sessions: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "format": self.tool, "sessions": self.sessions}
        if self.error is not None:
            out["error"] = self.error
        if self.warnings:
            out["warnings"] = self.warnings
        return out


class Sync:
    def __init__(
        self,
        home: Path,
        target: str,
        importer: Importer,
        paths: list[Path] | None = None,
        user_home: Path | None = None,
    ) -> None:
        self.home = home
        self.importer = importer
        self.paths = paths or []
        self.user_home = user_home
        self.state = State.load(home, target)
        self.watched = 0

    def sources(self) -> list[tuple[str, Path]]:
        found = [*locations(self.user_home), *configured(self.paths)]
        seen: set[Path] = set()
        out: list[tuple[str, Path]] = []
        for tool, path in found:
            if path not in seen:
                seen.add(path)
                out.append((tool, path))
        return out

    def once(self) -> list[Change]:
        """One pass: every new or changed file imported, in order, the state saved."""
        changes: list[Change] = []
        present: set[str] = set()
        sources = self.sources()
        self.watched = len(sources)
        for tool, path in sources:
            key = str(path)
            present.add(key)
            mark = signature(path)
            known = self.state.files.get(key)
            if not mark or (known is not None and known.get("signature") == mark):
                continue
            change = self._import(tool, path)
            entry: dict[str, Any] = {"tool": tool, "signature": mark}
            if change.error is not None:
                entry["error"] = change.error
            else:
                entry["sessions"] = [s["id"] for s in change.sessions]
            self.state.files[key] = entry
            changes.append(change)
            self.state.save(self.home)
        gone = set(self.state.files) - present
        for key in gone:
            del self.state.files[key]
        if gone:
            self.state.save(self.home)
        return changes

    def _import(self, tool: str, path: Path) -> Change:
        try:
            summary = self.importer(path, tool)
        except BatonError as exc:  # a file half written, or not a session: tried when it changes
            return Change(str(path), tool, error=exc.message)
        except OSError as exc:
            return Change(str(path), tool, error=f"cannot read it ({exc.strerror})")
        sessions = [
            {
                "id": s["id"],
                "title": s["title"],
                "messages": s["messages"],
                "messages_imported": s["messages_imported"],
                "created": s["created"],
            }
            for s in summary["sessions"]
        ]
        return Change(str(path), summary["format"], sessions, warnings=summary["warnings"])

    def follow(self, interval: float = INTERVAL) -> Iterator[list[Change]]:
        """Passes forever, `interval` seconds apart (less the time a pass took)."""
        while True:
            started = time.monotonic()
            yield self.once()
            time.sleep(max(0.0, interval - (time.monotonic() - started)))

"""Project instructions: AGENTS.md (CLAUDE.md where a folder has none) at the repository
root, and the nearest one above the working directory inside the repository, go into the
agent's system prompt; the session records which files and their hashes."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from baton.core.models import JSON

NAMES = ("AGENTS.md", "CLAUDE.md")  # the first a folder has is its instructions
MAX_BYTES = 64 * 1024  # of each file, in the prompt


@dataclass(frozen=True)
class Instructions:
    path: str  # relative to the repository root, with /
    text: str
    sha256: str

    def record(self) -> JSON:
        return {"path": self.path, "sha256": self.sha256}


def _in(folder: Path, root: Path) -> Instructions | None:
    for name in NAMES:
        path = folder / name
        if path.is_file():
            if not path.resolve().is_relative_to(root):
                continue  # a link out of the repository (to a server's file): not read
            data = path.read_bytes()
            return Instructions(
                path=path.relative_to(root).as_posix(),
                text=data[:MAX_BYTES].decode("utf-8", "replace"),
                sha256=hashlib.sha256(data).hexdigest(),
            )
    return None


def from_files(files: Mapping[str, bytes]) -> list[Instructions]:
    """The root's instructions of a repository whose root files (some of NAMES) are `files`."""
    for name in NAMES:
        if name in files:
            data = files[name]
            text = data[:MAX_BYTES].decode("utf-8", "replace")
            return [Instructions(path=name, text=text, sha256=hashlib.sha256(data).hexdigest())]
    return []


def find(root: Path, cwd: Path) -> list[Instructions]:
    """The root's instructions, then the nearest folder's from `cwd` up to (not including)
    the root, when it has its own."""
    root = root.resolve()
    cwd = cwd.resolve()
    found = []
    top = _in(root, root)
    if top is not None:
        found.append(top)
    if cwd != root and cwd.is_relative_to(root):
        folder = cwd
        while folder != root:
            near = _in(folder, root)
            if near is not None:
                found.append(near)
                break
            folder = folder.parent
    return found


def prompt(base: str, found: list[Instructions]) -> str:
    """The system prompt with the project's instructions after it."""
    if not found:
        return base
    blocks = [
        f'<instructions file="{item.path}">\n{item.text.strip()}\n</instructions>' for item in found
    ]
    return (
        base
        + "\n\nThe project's instructions (follow them; a nearer file refines the root's):\n\n"
        + "\n\n".join(blocks)
    )

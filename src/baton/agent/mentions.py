"""`@path` in a chat prompt attaches that file: its text goes into the user message as a file
part (bounded in size), so the model reads it without a tool call. Paths are confined to the
repository like the tools' paths; a mention that leaves it refuses the prompt."""

from __future__ import annotations

import os
import re
from pathlib import Path

from baton.agent.tools import SKIP_DIRS, ToolError, Tools
from baton.core.errors import InvalidInput
from baton.core.models import JSON

ATTACH_BYTES = 48 * 1024  # of one attached file: the rest is cut (and said so)
ATTACH_FILES = 10  # files one prompt may attach
COMPLETIONS = 50
_MENTION = re.compile(r"(?<!\S)@(\S+)")


def mentioned(prompt: str) -> list[str]:
    """The paths mentioned with `@` (a word that starts with @), in order, without repeats;
    trailing punctuation (`@a.py,`) is not part of the path."""
    found: list[str] = []
    for match in _MENTION.finditer(prompt):
        value = match.group(1).rstrip(".,;:!?)]}'\"")
        if value and value not in found:
            found.append(value)
    return found


def attach(prompt: str, tools: Tools) -> list[JSON]:
    """The file parts for the prompt's `@path` mentions of files. A mention of something that
    is not a file (`@someone`) stays plain text; one that leaves the repository, or of a file
    that is not text, raises InvalidInput (one line) and nothing is sent."""
    parts: list[JSON] = []
    for value in mentioned(prompt):
        try:
            path = tools.path(value, must_exist=False)
        except ToolError as exc:
            raise InvalidInput(f"@{value}: {exc}") from None
        if not path.is_file():
            continue
        if len(parts) == ATTACH_FILES:
            raise InvalidInput(f"at most {ATTACH_FILES} files can be attached to one prompt")
        try:
            with path.open("rb") as f:
                data = f.read(ATTACH_BYTES + 1)
            size = path.stat().st_size
        except OSError as exc:
            raise InvalidInput(f"@{value}: cannot read it: {exc.strerror or exc}") from None
        if b"\x00" in data[:8192]:
            raise InvalidInput(f"@{value}: not a text file; only text files can be attached")
        text = data[:ATTACH_BYTES].decode("utf-8", "replace")
        text = text.encode()[:ATTACH_BYTES].decode("utf-8", "ignore")  # replacements are longer
        part: JSON = {"type": "file", "path": tools.rel(path), "data": text, "size": size}
        if size > ATTACH_BYTES:
            part["truncated"] = True
            part["data"] = text + f"\n[… cut: the first {ATTACH_BYTES} of {size} bytes]"
        parts.append(part)
    return parts


def complete(word: str, root: Path) -> list[str]:
    """What `@word` can become: the entries of the folder it names, under the repository root
    (folders end with /), hidden ones only when asked for with a leading dot."""
    folder, _, stem = word.rpartition("/")
    base = (root / folder).resolve() if folder else root
    if not base.is_relative_to(root) or not base.is_dir():
        return []
    names: list[str] = []
    try:
        entries = sorted(os.scandir(base), key=lambda e: e.name)
    except OSError:
        return []
    for entry in entries:
        name = entry.name
        if not name.startswith(stem) or (name.startswith(".") and not stem.startswith(".")):
            continue
        if name in SKIP_DIRS:
            continue
        is_dir = entry.is_dir()
        names.append(f"{folder + '/' if folder else ''}{name}{'/' if is_dir else ''}")
        if len(names) == COMPLETIONS:
            break
    return names

"""Where each tool keeps its sessions by default (what `baton sessions import --scan` and
`baton sync` look at), and what of a session file says it changed."""

from __future__ import annotations

import os
from pathlib import Path


def claude_home(home: Path | None = None) -> Path:
    """Where Claude Code keeps its data: $CLAUDE_CONFIG_DIR, else ~/.claude."""
    return Path(os.environ.get("CLAUDE_CONFIG_DIR") or (home or Path.home()) / ".claude")


def codex_home(home: Path | None = None) -> Path:
    """Where Codex keeps its data: $CODEX_HOME, else ~/.codex."""
    return Path(os.environ.get("CODEX_HOME") or (home or Path.home()) / ".codex")


def locations(home: Path | None = None) -> list[tuple[str, Path]]:
    """Where each tool keeps its sessions by default, as (tool, path) that exist here."""
    home = home or Path.home()
    found: list[tuple[str, Path]] = []
    claude = claude_home(home) / "projects"
    found += [("claude-code", p) for p in sorted(claude.glob("*/*.jsonl"))]
    codex = codex_home(home) / "sessions"
    found += [("codex", p) for p in sorted(codex.rglob("rollout-*.jsonl"))]
    data = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    for tool in ("opencode", "kilo"):
        found += [("opencode", p) for p in sorted((data / tool).glob("*.db"))]
    config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    for editor in ("Code", "Code - Insiders", "VSCodium", "Cursor", "Windsurf"):
        storage = config / editor / "User" / "globalStorage"
        for extension in (
            "saoudrizwan.claude-dev",
            "rooveterinaryinc.roo-cline",
            "kilocode.kilo-code",
        ):
            tasks = storage / extension / "tasks"
            found += (
                [("cline", p) for p in sorted(tasks.iterdir()) if p.is_dir()]
                if tasks.is_dir()
                else []
            )
    return [(tool, p) for tool, p in found if p.exists()]


def configured(paths: list[Path]) -> list[tuple[str, Path]]:
    """Session files below configured paths (a file, or a folder looked through), as
    ("auto", path): their format is found from their content."""
    found: list[tuple[str, Path]] = []
    for root in paths:
        if root.is_file():
            found.append(("auto", root))
        elif (root / "api_conversation_history.json").is_file():
            found.append(("auto", root))  # a Cline task folder
        elif root.is_dir():
            for path in sorted(root.rglob("*")):
                task = path.is_dir() and (path / "api_conversation_history.json").is_file()
                if task or (path.is_file() and _session_file(path)):
                    found.append(("auto", path))
    return found


def _session_file(path: Path) -> bool:
    if path.parent.name == "subagents" or path.name.endswith(".meta.json"):
        return False  # read with the main transcript
    return path.suffix in (".jsonl", ".db") or path.name.endswith("export.json")


def signature(path: Path) -> list[int]:
    """What changes when a session at `path` is written: size, modification time and inode
    of the file, and of what is read with it (a database's write-ahead log, a transcript's
    sub-agent files, a task folder's files). Empty when it is gone."""
    files = [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
    elif path.suffix == ".db":
        files += [path.with_name(path.name + "-wal")]
    elif path.suffix == ".jsonl":
        agents = path.with_suffix("") / "subagents"
        if agents.is_dir():
            files += sorted(agents.iterdir())
    out: list[int] = []
    for file in files:
        try:
            st = file.stat()
        except OSError:
            continue
        out += [st.st_size, st.st_mtime_ns, st.st_ino]
    return out

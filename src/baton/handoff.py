"""`baton handoff`: a baton session written where another agent resumes it.

| tool | written to | resumed with |
|---|---|---|
| claude | `$CLAUDE_CONFIG_DIR` (default `~/.claude`) `/projects/<dir slug>/<uuid>.jsonl` | `cd DIR && claude --resume UUID` |
| codex | `$CODEX_HOME` (default `~/.codex`) `/sessions/YYYY/MM/DD/rollout-<time>-<uuid>.jsonl` | `cd DIR && codex resume UUID` |
| opencode, kilo | the tool's own store, through `opencode import` / `kilo import` | `cd DIR && opencode -s ID` |

The tool's id is derived from the baton session and its head, so a second hand-off of the
same head finds the file it wrote (and never overwrites what the tool added to it since);
a session that moved on is handed off under a new id. Files are written whole or not at all
(a temporary file renamed into place). For opencode and Kilo the export file is kept in
`BATON_HOME/handoff/`; when the tool is not on PATH the printed command imports it first.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from baton import __version__
from baton.core.errors import BatonError, InvalidInput
from baton.core.models import JSON, Message, Session
from baton.importers.places import claude_home, codex_home

TOOLS = ("claude", "codex", "opencode", "kilo")
KILO_AGENT = "code"
IMPORT_TIMEOUT = 120.0  # seconds for `opencode import` / `kilo import`


@dataclass
class Handoff:
    tool: str
    session: str  # the baton session
    id: str  # the tool's session id
    path: str  # the file written (opencode, kilo: the export it imports)
    directory: str  # where the tool resumes it
    command: str  # what to run
    written: bool  # False: the same head was handed off before and is there already
    imported: bool | None = None  # opencode, kilo: imported into the tool's store now

    def to_dict(self) -> JSON:
        return asdict(self)


def directory_of(session: Session, fallback: Path) -> Path:
    """Where the session was worked on, if that folder is here; else `fallback`."""
    metadata = session.metadata if isinstance(session.metadata, dict) else {}
    git = session.git or {}
    for value in (metadata.get("cwd"), git.get("root"), git.get("cwd")):
        if isinstance(value, str) and value and Path(value).is_dir():
            return Path(value)
    return fallback


def _jsonl(lines: list[JSON]) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def _write(path: Path, data: bytes) -> None:
    """All of `data` at `path`, or nothing there (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BatonError(f"cannot write {path}: {exc.strerror or exc}") from None


def _command(directory: Path, *args: str) -> str:
    return f"cd {shlex.quote(str(directory))} && {shlex.join(args)}"


def hand_off(
    tool: str,
    session: Session,
    messages: list[Message],
    *,
    directory: Path,
    work: Path,
) -> Handoff:
    """Write `session` (its hydrated `messages`) where `tool` resumes it in `directory`.
    `work` is baton's own folder, for the opencode and Kilo export files."""
    if tool not in TOOLS:
        raise InvalidInput(f"unknown tool {tool!r}: use one of {', '.join(TOOLS)}")
    if not messages:
        raise InvalidInput(f"{session.id} has no messages: there is nothing to hand off")
    directory = directory.resolve()
    if not directory.is_dir():
        raise InvalidInput(f"{directory} is not a folder: pass --cwd with the project folder")
    if tool == "claude":
        return _claude(session, messages, directory)
    if tool == "codex":
        return _codex(session, messages, directory)
    return _opencode(tool, session, messages, directory, work)


def _claude(session: Session, messages: list[Message], directory: Path) -> Handoff:
    from baton.render.claude_code import export_claude_code, project_folder, session_uuid

    sid = session_uuid(session)
    path = claude_home() / "projects" / project_folder(str(directory)) / f"{sid}.jsonl"
    written = not path.exists()
    if written:
        branch = (session.git or {}).get("branch")
        lines = export_claude_code(
            session,
            messages,
            cwd=str(directory),
            sid=sid,
            branch=branch if isinstance(branch, str) else None,
        )
        _write(path, _jsonl(lines))
    command = _command(directory, "claude", "--resume", sid)
    return Handoff("claude", session.id, sid, str(path), str(directory), command, written)


def _codex(session: Session, messages: list[Message], directory: Path) -> Handoff:
    from baton.render.codex import export_codex, session_uuid

    sid = session_uuid(session)
    sessions = codex_home() / "sessions"
    found = sorted(sessions.glob(f"*/*/*/rollout-*-{sid}.jsonl")) if sessions.is_dir() else []
    path = found[0] if found else None
    if path is None:
        now = datetime.now().astimezone()
        name = f"rollout-{now:%Y-%m-%dT%H-%M-%S}-{sid}.jsonl"
        path = sessions / f"{now:%Y}" / f"{now:%m}" / f"{now:%d}" / name
        lines = export_codex(
            session, messages, cwd=str(directory), sid=sid, version=f"baton-{__version__}"
        )
        _write(path, _jsonl(lines))
    command = _command(directory, "codex", "resume", sid)
    return Handoff("codex", session.id, sid, str(path), str(directory), command, not found)


def _opencode(
    tool: str, session: Session, messages: list[Message], directory: Path, work: Path
) -> Handoff:
    from baton.render.opencode import export_opencode

    metadata = dict(session.metadata) if isinstance(session.metadata, dict) else {}
    if tool == "kilo" and not any(metadata.get(k) for k in ("agent", "mode")):
        # Kilo's default agent is `code` (opencode's is `build`): resumed under another
        # agent, Kilo would tell the model the agent changed
        session = replace(session, metadata={**metadata, "agent": KILO_AGENT})
    document = export_opencode(session, messages)
    sid = str(document["info"]["id"])
    path = work / "handoff" / f"{sid}.opencode.json"
    _write(path, orjson.dumps(document))
    binary = shutil.which(tool)
    resume = _command(directory, tool, "-s", sid)
    if binary is None:
        command = _command(directory, tool, "import", str(path)) + f" && {tool} -s {sid}"
        return Handoff(tool, session.id, sid, str(path), str(directory), command, True, False)
    _import(tool, binary, path, directory, sid)
    return Handoff(tool, session.id, sid, str(path), str(directory), resume, True, True)


def _import(tool: str, binary: str, path: Path, directory: Path, sid: str) -> None:
    """`opencode import FILE` (or kilo's) run in `directory`, which the tool records as the
    session's folder."""
    try:
        result = subprocess.run(
            [binary, "import", str(path)],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=IMPORT_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise BatonError(f"`{tool} import` did not finish in {IMPORT_TIMEOUT:.0f} s") from None
    except OSError as exc:
        raise BatonError(f"cannot run {binary}: {exc.strerror or exc}") from None
    said: Any = re.search(r"Imported session: (ses_\w+)", result.stdout)
    if result.returncode != 0 or said is None or said.group(1) != sid:
        last = (result.stderr.strip() or result.stdout.strip()).splitlines()
        why = last[-1] if last else f"exit status {result.returncode}"
        raise BatonError(f"`{tool} import {path}` failed: {why}")

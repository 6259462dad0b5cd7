"""opencode and Kilo CLI sessions: their JSON exports and their SQLite databases.

Both tools share one storage model (Kilo CLI is built on opencode): a session holds messages,
and a message holds typed parts. An export (`opencode export`, `kilo export`) is
`{info, messages: [{info, parts}]}`; the database (`~/.local/share/opencode/opencode.db`,
`~/.local/share/kilo/kilo.db`) keeps the same JSON in the `data` column of its `session`,
`message` and `part` tables (docs/importers/opencode.md describes what was found).

One opencode assistant message (one model step) becomes one baton assistant message with its
text, reasoning and tool calls in order; each tool's result becomes a `tool` message right
after it. Every value that enters a baton message comes from the message content, never from
an id of the session, so a fork's copied history converts to the very same baton messages as
its parent's and is stored once.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from baton.core.errors import InvalidInput
from baton.core.models import JSON
from baton.importers.base import (
    ImportedSession,
    Parsed,
    as_text,
    bounded_usage,
    epoch_ms,
    finite,
    first_prompt,
    load_json_object,
    ms_time,
    refuse,
    shared_prefix,
    stream_json_object,
)

SQLITE_HEADER = b"SQLite format 3\x00"
TABLES = frozenset({"session", "message", "part"})  # what makes a database opencode's

_FORK_TITLE = re.compile(r"^(.+) \(fork #(\d+)\)$")
# Kilo's own agents (opencode's are build, plan, general, explore).
_KILO_AGENTS = frozenset({"code", "architect", "ask", "debug", "orchestrator"})
# Parts that carry no conversation content: step boundaries (step-finish is read for usage),
# snapshots, patches (read for the files touched), @agent mentions (the text holds them) and
# the compaction marker.
_BOOKKEEPING = frozenset({"step-start", "step-finish", "snapshot", "patch", "agent", "compaction"})
_SIBLINGS = 200  # files beside a fork's export that are looked at for its parent
_SESSION_COLUMNS = (
    "id",
    "project_id",
    "parent_id",
    "directory",
    "title",
    "version",
    "agent",
    "model",
    "time_created",
    "time_updated",
    "time_archived",
)


class OpencodeImporter:
    name = "opencode"

    def detect(self, path: Path, head: bytes) -> bool:
        if path.is_dir():
            return False
        if head.startswith(SQLITE_HEADER):
            try:
                return _tables(path) >= TABLES
            except (sqlite3.Error, OSError):
                return False
        return _looks_like_export(head)

    def read(self, path: Path, *, stream: bool = False) -> Parsed:
        if path.is_dir():
            raise refuse(path, "is a folder; give an opencode or Kilo export file or database")
        try:
            with path.open("rb") as handle:
                magic = handle.read(len(SQLITE_HEADER))
        except OSError as exc:
            raise refuse(path, f"cannot be read ({exc.strerror or exc})") from None
        if magic == SQLITE_HEADER:
            return _read_database(path)
        return _read_export(path, stream)


IMPORTER = OpencodeImporter()


# --- detection -------------------------------------------------------------------------------

_EXPORT_INFO = re.compile(rb'"info"\s*:\s*\{')
_EXPORT_MESSAGES = re.compile(rb'"messages"\s*:\s*\[')
_SESSION_ID = re.compile(rb'"id"\s*:\s*"ses_')


def _looks_like_export(head: bytes) -> bool:
    """`{"info": {"id": "ses_…", …}, "messages": [...]}`, judged on the first 64 KiB."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return (
        text.startswith(b"{")
        and _EXPORT_INFO.search(text) is not None
        and _EXPORT_MESSAGES.search(text) is not None
        and _SESSION_ID.search(text) is not None
    )


def _connect(path: Path) -> sqlite3.Connection:
    """Read-only: never writes to (or creates) the tool's database, even while it runs."""
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    return sqlite3.connect(uri, uri=True)


def _tables(path: Path) -> set[str]:
    conn = _connect(path)
    try:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {str(row[0]) for row in rows}
    finally:
        conn.close()


# --- exports ---------------------------------------------------------------------------------


def _read_export(path: Path, stream: bool) -> Parsed:
    streamed = _stream_export(path) if stream else None
    if streamed is not None:
        return streamed
    warnings: list[str] = []
    converted = _export(path, warnings)
    session = converted.imported()
    parent = _parent_beside(path, converted) if converted.copied() else None
    if parent is not None:
        session.forked_from = parent
    fork = _fork_of(converted, parent)
    if fork:
        session.metadata["fork"] = fork
    version = converted.info.get("version")
    return Parsed(
        converted.tool, version if isinstance(version, str) else None, [session], warnings
    )


def _stream_export(path: Path) -> Parsed | None:
    """An export converted as it is read: its session's `stream` yields the baton messages
    one source message at a time, and fills in what depends on all of them (the tool, the
    first prompt, the files touched, what a fork copied, warnings) when it ends. None when
    it cannot be read so (a fork with other exports beside it, one of which may be its
    parent, compared whole; a file that is not an export: reading it whole words the
    refusal)."""
    found = stream_json_object(path, "messages")
    if found is None:
        return None
    info = found.head.get("info")
    first = next(found.items, None) if isinstance(info, dict) else None
    created = epoch_ms(_obj(info.get("time")).get("created")) if isinstance(info, dict) else None
    if (
        not isinstance(info, dict)
        or not isinstance(info.get("id"), str)
        or (_older(first, created) and _exports_beside(path))
    ):
        found.close()
        return None
    warnings: list[str] = []
    version = info.get("version")
    parsed = Parsed("opencode", version if isinstance(version, str) else None, [], warnings)
    parsed.read_so_far = found.position
    session = _Converted("opencode", info, path).imported([])
    parsed.sessions.append(session)
    items = found.items if first is None else itertools.chain([first], found.items)
    session.stream = _streamed(path, info, items, parsed, session)
    return parsed


def _older(item: Any, created: int | None) -> bool:
    """Is this first message older than its session (the history a fork copied)?"""
    if created is None or not isinstance(item, dict) or not isinstance(item.get("info"), dict):
        return False
    when = epoch_ms(_obj(item["info"].get("time")).get("created"))
    return when is not None and when < created


def _streamed(
    path: Path, info: JSON, items: Iterator[Any], parsed: Parsed, session: ImportedSession
) -> Iterator[JSON]:
    created = epoch_ms(_obj(info.get("time")).get("created"))
    state = _State(f"session {info['id']}", created)
    kilo = _is_kilo(info, ())
    task: str | None = None
    copying, copied = created is not None, 0
    for i, item in enumerate(items):
        message, parts = _checked(path, i, item)
        kilo = kilo or _kilo_message(message, parts)
        converted = _convert_message(message, parts, state)
        if task is None:
            task = first_prompt(converted) or None
        if copying:  # (as `_Converted.copied` counts)
            when = epoch_ms(_obj(message.get("time")).get("created"))
            copying = when is not None and created is not None and when < created
            copied += len(converted) if copying else 0
        yield from converted
    for kind, count in sorted(state.skipped.items()):
        state.warn(f"skipped {count} part(s) of type {kind!r}")
    parsed.warnings.extend(state.warnings)
    converted_session = _Converted("kilo" if kilo else "opencode", info, path)
    converted_session.files = state.files
    done = converted_session.imported([], task or "")
    fork = _fork_of(converted_session, None, copied)
    if fork:
        done.metadata["fork"] = fork
    parsed.tool = session.tool = done.tool
    session.task, session.metadata = done.task, done.metadata


def _checked(path: Path, i: int, item: Any) -> tuple[JSON, list[JSON]]:
    """One element of an export's messages: its info and parts, or a one-line refusal."""
    if not isinstance(item, dict) or not isinstance(item.get("info"), dict):
        raise refuse(path, f"message {i + 1} must be an object with info and parts")
    parts = item.get("parts", [])
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise refuse(path, f"message {i + 1}: parts must be a list of objects")
    return item["info"], parts


def _export(path: Path, warnings: list[str]) -> _Converted:
    doc = load_json_object(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("info"), dict):
        raise refuse(path, "not an opencode or Kilo export (expected {info, messages})")
    info, raw_messages = doc["info"], doc.get("messages")
    if not isinstance(raw_messages, list):
        got = type(raw_messages).__name__ if raw_messages is not None else "nothing"
        raise refuse(path, f"messages must be a list, got {got}")
    if not isinstance(info.get("id"), str):
        raise refuse(path, "info.id (the session id) must be a string")
    messages = [_checked(path, i, item) for i, item in enumerate(raw_messages)]
    tool = "kilo" if _is_kilo(info, messages) else "opencode"
    return _convert_session(tool, info, messages, path, warnings)


def _parent_beside(path: Path, fork: _Converted) -> tuple[str, int] | None:
    """A fork's export does not name its parent, but the parent's export may lie beside it
    (`opencode export` of both): the one in the same folder that shares the longest run of
    leading messages."""
    candidates = [fork]
    for sibling in _exports_beside(path):
        with contextlib.suppress(OSError, InvalidInput):
            candidates.append(_export(sibling, []))
    return _find_parent(fork, candidates)


def _exports_beside(path: Path) -> list[Path]:
    """The other files in `path`'s folder that look like exports, at most _SIBLINGS looked at."""
    here = path.resolve()
    try:
        siblings = sorted(p for p in here.parent.iterdir() if p != here and p.is_file())
    except OSError:
        return []
    found = []
    for sibling in siblings[:_SIBLINGS]:
        try:
            with sibling.open("rb") as handle:
                if _looks_like_export(handle.read(65536)):
                    found.append(sibling)
        except OSError:
            continue
    return found


def _is_kilo(info: JSON, messages: Iterable[tuple[JSON, list[JSON]]]) -> bool:
    """Kilo CLI writes what opencode does, plus a few fields of its own: `metrics` on
    step-finish parts, `approval` in tool metadata, a `suggest` permission, its own agents."""
    if as_text(info.get("agent")) in _KILO_AGENTS:
        return True
    rules = info.get("permission")
    if isinstance(rules, list) and any(
        isinstance(r, dict) and r.get("permission") == "suggest" for r in rules
    ):
        return True
    return any(_kilo_message(message, parts) for message, parts in messages)


def _kilo_message(message: JSON, parts: list[JSON]) -> bool:
    """Does this message hold any of Kilo's own fields (see `_is_kilo`)?"""
    if (
        as_text(message.get("agent")) in _KILO_AGENTS
        or as_text(message.get("mode")) in _KILO_AGENTS
    ):
        return True
    for part in parts:
        if "metrics" in part:
            return True
        state = part.get("state")
        metadata = state.get("metadata") if isinstance(state, dict) else None
        if isinstance(metadata, dict) and "approval" in metadata:
            return True
    return False


# --- databases -------------------------------------------------------------------------------


def _read_database(path: Path) -> Parsed:
    try:
        conn = _connect(path)
    except sqlite3.Error as exc:
        raise refuse(path, f"cannot open the database ({exc})") from None
    try:
        return _read_tables(path, conn)
    except sqlite3.Error as exc:
        raise refuse(path, f"cannot read the database ({exc})") from None
    finally:
        conn.close()


def _read_tables(path: Path, conn: sqlite3.Connection) -> Parsed:
    tables = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables >= TABLES:
        raise refuse(
            path, "is a SQLite database without opencode's session, message and part tables"
        )
    tool = "kilo" if "kilo_board" in tables else "opencode"
    present = {str(r[1]) for r in conn.execute("PRAGMA table_info(session)")}
    if not {"id", "title", "time_created"} <= present:
        raise refuse(path, "the session table has no id, title or time_created column")
    columns = [c for c in _SESSION_COLUMNS if c in present]
    rows = conn.execute(
        f"SELECT {', '.join(columns)} FROM session ORDER BY time_created, id"
    ).fetchall()
    warnings: list[str] = []
    converted: list[_Converted] = []
    for row in rows:
        info = _session_info(dict(zip(columns, row, strict=True)))
        messages = _session_messages(conn, info["id"], warnings)
        converted.append(_convert_session(tool, info, messages, path, warnings))
    sessions = [c.imported() for c in converted]
    for item, session in zip(converted, sessions, strict=True):
        parent = _find_parent(item, converted)
        if parent is not None:
            session.forked_from = parent
        fork = _fork_of(item, parent)
        if fork:
            session.metadata["fork"] = fork
    versions = [str(c.info.get("version")) for c in converted if c.info.get("version")]
    return Parsed(tool, versions[-1] if versions else None, sessions, warnings)


def _session_info(row: dict[str, Any]) -> JSON:
    """A session row in the shape of an export's `info`."""
    info: JSON = {
        "id": str(row["id"]),
        "title": row.get("title") or "",
        "time": {"created": row.get("time_created"), "updated": row.get("time_updated")},
    }
    for column, key in (
        ("project_id", "projectID"),
        ("parent_id", "parentID"),
        ("directory", "directory"),
        ("version", "version"),
        ("agent", "agent"),
    ):
        if row.get(column) is not None:
            info[key] = row[column]
    if isinstance(row.get("model"), str):
        with contextlib.suppress(json.JSONDecodeError):
            info["model"] = json.loads(row["model"])
    if row.get("time_archived") is not None:
        info["time"]["archived"] = row["time_archived"]
    return info


def _session_messages(
    conn: sqlite3.Connection, session_id: str, warnings: list[str]
) -> list[tuple[JSON, list[JSON]]]:
    parts: dict[str, list[JSON]] = {}
    for message_id, data in conn.execute(
        "SELECT message_id, data FROM part WHERE session_id = ? ORDER BY message_id, id",
        (session_id,),
    ):
        part = _row_json(data)
        if part is None:
            warnings.append(f"session {session_id}: skipped a part whose data is not JSON")
            continue
        parts.setdefault(str(message_id), []).append(part)
    messages: list[tuple[JSON, list[JSON]]] = []
    for message_id, data in conn.execute(
        "SELECT id, data FROM message WHERE session_id = ? ORDER BY time_created, id",
        (session_id,),
    ):
        info = _row_json(data)
        if info is None:
            warnings.append(f"session {session_id}: skipped message {message_id}: data is not JSON")
            continue
        messages.append((info, parts.get(str(message_id), [])))
    return messages


def _row_json(data: Any) -> JSON | None:
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    if not isinstance(data, str):
        return None
    try:
        value = json.loads(data)
    except (json.JSONDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


# --- conversion ------------------------------------------------------------------------------


@dataclass
class _Converted:
    tool: str
    info: JSON
    path: Path
    # per source message: its time.created (ms, or None) and the baton messages it became
    groups: list[tuple[int | None, list[JSON]]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def messages(self) -> list[JSON]:
        return [m for _, group in self.groups for m in group]

    def copied(self) -> int:
        """How many leading baton messages come from messages older than the session itself:
        the history a fork copied from its parent (opencode keeps their original times)."""
        created = epoch_ms(_obj(self.info.get("time")).get("created"))
        if created is None:
            return 0
        count = 0
        for when, group in self.groups:
            if when is None or when >= created:
                break
            count += len(group)
        return count

    def imported(
        self, messages: list[JSON] | None = None, task: str | None = None
    ) -> ImportedSession:
        """The session to import: with `messages` (all of them when None), and `task` (the
        first prompt among them when None)."""
        info = self.info
        metadata: JSON = {
            "source": {
                "tool": self.tool,
                "version": info.get("version") if isinstance(info.get("version"), str) else None,
                "session_id": info["id"],
            },
            "imported_from": str(self.path.resolve()),
        }
        if isinstance(info.get("directory"), str):
            metadata["cwd"] = info["directory"]
        if isinstance(info.get("projectID"), str):
            metadata["project_id"] = info["projectID"]
        if isinstance(info.get("parentID"), str):  # a subagent's session: its own history
            metadata["parent_session"] = info["parentID"]
        if isinstance(info.get("agent"), str):
            metadata["agent"] = info["agent"]
        model = info.get("model")
        if isinstance(model, dict) and isinstance(model.get("id"), str):
            provider = model.get("providerID")
            metadata["model"] = f"{provider}/{model['id']}" if provider else model["id"]
        if self.files:
            metadata["files_touched"] = self.files
        extra: JSON = {}  # for the opencode export
        if isinstance(model, dict) and "variant" in model:
            extra["model_variant"] = model["variant"]
        for key in ("summary", "slug", "permission"):
            if key in info:
                extra[key] = info[key]
        if extra:
            metadata["opencode"] = extra
        messages = self.messages if messages is None else messages
        created = epoch_ms(_obj(info.get("time")).get("created"))
        return ImportedSession(
            tool=self.tool,
            source_id=info["id"],
            messages=messages,
            title=as_text(info.get("title")),
            task=first_prompt(messages) if task is None else task,
            created_at=ms_time(created) if created is not None else None,
            metadata=metadata,
        )


def _convert_session(
    tool: str,
    info: JSON,
    messages: list[tuple[JSON, list[JSON]]],
    path: Path,
    warnings: list[str],
) -> _Converted:
    out = _Converted(tool, info, path)
    state = _State(f"session {info['id']}", epoch_ms(_obj(info.get("time")).get("created")))
    for message, parts in messages:
        when = epoch_ms(_obj(message.get("time")).get("created"))
        out.groups.append((when, _convert_message(message, parts, state)))
    for kind, count in sorted(state.skipped.items()):
        state.warn(f"skipped {count} part(s) of type {kind!r}")
    warnings.extend(state.warnings)
    out.files = state.files
    return out


@dataclass
class _State:
    where: str
    last: int | None  # the time of the message before, for one that has none
    warnings: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    files: list[str] = field(default_factory=list)  # in the order first touched
    calls: int = 0
    _files: set[str] = field(default_factory=set)  # the same, to look up

    def warn(self, text: str) -> None:
        self.warnings.append(f"{self.where}: {text}")

    def touched(self, paths: Any) -> None:
        for item in paths if isinstance(paths, list) else []:
            if isinstance(item, str) and item not in self._files:
                self._files.add(item)
                self.files.append(item)


def _convert_message(info: JSON, parts: list[JSON], state: _State) -> list[JSON]:
    role = info.get("role")
    created = epoch_ms(_obj(info.get("time")).get("created"))
    if created is None:
        if state.last is None:
            state.warn(f"skipped a {role} message without a time")
            return []
        state.warn(f"a {role} message has no time; given the time of the one before")
        created = state.last
    state.last = created
    if role == "user":
        return _user(info, parts, created, state)
    if role == "assistant":
        return _assistant(info, parts, created, state)
    state.warn(f"skipped a message with role {role!r}")
    return []


def _user(info: JSON, parts: list[JSON], created: int, state: _State) -> list[JSON]:
    out: list[JSON] = []
    kept = _Kept()
    for part in parts:
        kind = as_text(part.get("type")) or repr(part.get("type"))
        if kind == "text":
            text = part.get("text")
            if isinstance(text, str) and text.strip():
                item: JSON = {"type": "text", "text": text}
                if part.get("synthetic") is True:
                    item["synthetic"] = True
                out.append(kept.content(item, part))
        elif kind == "file":
            out.append(kept.content(_file(part), part))
        elif kind == "subtask":
            prompt = part.get("prompt")
            if isinstance(prompt, str) and prompt.strip():
                subtask = {"type": "text", "text": prompt, "agent": str(part.get("agent", ""))}
                out.append(kept.content(subtask, part))
        elif kind == "patch":
            state.touched(part.get("files"))
            kept.other(part)
        elif kind in _BOOKKEEPING:
            kept.other(part)
        else:
            state.skipped[str(kind)] += 1
    if not out:
        return []
    kept.close(out, info, ("summary", "model"))
    return [{"role": "user", "parts": out, "created_at": ms_time(created)}]


# Keys of a part or message that are its place in opencode's database, not its content: left
# out of what is kept, so that a fork's copies (new ids, same content) stay the same messages.
_PLACE = frozenset({"id", "sessionID", "messageID", "parentID"})


class _Kept:
    """What baton has no field for, kept on the parts under `opencode` so that the opencode
    export gives it back: a part's own extras (a text's `time`), the parts around the
    content (`step-start` and `step-finish` with their snapshot hashes, `patch` parts) as
    `before` the next content part or `after` the last, and the message's extras
    (`summary.diffs`, `finish`, `time.completed`, `model.variant`) on its first part."""

    def __init__(self) -> None:
        self.pending: list[JSON] = []

    def content(self, item: JSON, part: JSON) -> JSON:
        extra: JSON = {}
        if isinstance(part.get("time"), dict):
            extra["time"] = part["time"]
        if self.pending:
            extra["before"], self.pending = self.pending, []
        if extra:
            item["opencode"] = extra
        return item

    def other(self, part: JSON) -> None:
        kept = dict(part)
        for key in _PLACE:
            kept.pop(key, None)
        self.pending.append(kept)

    def close(self, out: list[JSON], info: JSON, keys: tuple[str, ...]) -> None:
        if self.pending:
            out[-1].setdefault("opencode", {})["after"] = self.pending
            self.pending = []
        message = {k: info[k] for k in keys if k in info}
        if not isinstance(message.get("model"), dict) or "variant" not in message["model"]:
            message.pop("model", None)  # the model of a prompt: only its variant is news
        if message:
            out[0].setdefault("opencode", {})["message"] = message


def _assistant(info: JSON, parts: list[JSON], created: int, state: _State) -> list[JSON]:
    content: list[JSON] = []
    results: list[JSON] = []
    steps: list[JSON] = []
    kept = _Kept()
    for part in parts:
        kind = as_text(part.get("type")) or repr(part.get("type"))
        if kind in ("text", "reasoning"):
            text = part.get("text")
            if isinstance(text, str) and text.strip():
                content.append(kept.content({"type": kind, "text": text}, part))
        elif kind == "tool":
            call, result = _tool(part, created, state)
            content.append(kept.content(call, {}))
            if result is not None:
                results.append(result)
        elif kind == "file":
            content.append(kept.content(_file(part), part))
        elif kind == "step-finish":
            steps.append(part)
            kept.other(part)
        elif kind == "patch":
            state.touched(part.get("files"))
            kept.other(part)
        elif kind in _BOOKKEEPING:
            kept.other(part)
        else:
            state.skipped[str(kind)] += 1
    if not content:
        error = info.get("error")
        if isinstance(error, dict):
            data = _obj(error.get("data"))
            reason = data.get("message") or error.get("name") or "an error"
            state.warn(f"skipped an assistant message with no content (it ended in {reason})")
        return []
    kept.close(content, info, ("finish", "summary", "error", "time"))
    message: JSON = {"role": "assistant", "parts": content, "created_at": ms_time(created)}
    model = _model(info)
    if model:
        message["model"] = model
    usage = _usage(steps, info)
    if usage is not None:
        message["usage"] = usage
    return [message, *results]


def _tool(part: JSON, created: int, state: _State) -> tuple[JSON, JSON | None]:
    name = part.get("tool") if isinstance(part.get("tool"), str) else "tool"
    tool_state = _obj(part.get("state"))
    state.calls += 1
    call_id = part.get("callID")
    if not isinstance(call_id, str) or not call_id:
        call_id = f"{name}_{state.calls}"
    arguments = tool_state.get("input")
    call: JSON = {
        "type": "tool_call",
        "id": call_id,
        "name": name,
        "input": arguments if arguments is not None else {},
    }
    status = tool_state.get("status")
    times = _obj(tool_state.get("time"))
    when = epoch_ms(times.get("end")) or epoch_ms(times.get("start")) or created
    if status == "completed":
        output = tool_state.get("output", "")
        result: JSON = {"type": "tool_result", "tool_call_id": call_id, "output": output}
        exit_code = _exit_code(tool_state.get("metadata"))
        result["is_error"] = bool(exit_code)  # a shell command that failed still "completed"
        if exit_code is not None:
            result["exit_code"] = exit_code
    elif status == "error":
        error = tool_state.get("error")
        result = {
            "type": "tool_result",
            "tool_call_id": call_id,
            "output": error if error is not None else "",
            "is_error": True,
        }
    else:
        state.warn(f"tool call {call_id} ({name}) has no result: it was {status or 'unfinished'}")
        return call, None
    # the tool's title, metadata (diagnostics, filediff, truncated, a task's child sessionId)
    # and times, for the opencode export
    extra = {k: tool_state[k] for k in ("title", "metadata", "time") if k in tool_state}
    if extra:
        result["opencode"] = extra
    parts = [result]
    attachments = tool_state.get("attachments")
    for attachment in attachments if isinstance(attachments, list) else []:
        if isinstance(attachment, dict):
            parts.append(_file(attachment))
    return call, {"role": "tool", "parts": parts, "created_at": ms_time(when)}


def _exit_code(metadata: Any) -> int | None:
    code = metadata.get("exit") if isinstance(metadata, dict) else None
    if isinstance(code, bool) or not isinstance(code, int) or not -(2**31) <= code < 2**31:
        return None
    return code


def _file(part: JSON) -> JSON:
    """An attached file: its path (or name), media type, and inline bytes for a data: URL."""
    source = _obj(part.get("source"))
    url = as_text(part.get("url"))
    path = (
        source.get("path") or part.get("filename") or (url if not url.startswith("data:") else "")
    )
    out: JSON = {"type": "file", "path": str(path or "attachment")}
    if isinstance(part.get("mime"), str):
        out["mime"] = part["mime"]
    if url.startswith("data:") and "," in url:
        header, data = url[5:].split(",", 1)
        out["data"] = data
        out["encoding"] = "base64" if header.endswith(";base64") else "url"
    elif url:
        out["url"] = url
    return out


def _model(info: JSON) -> str | None:
    model_id, provider = info.get("modelID"), info.get("providerID")
    if not isinstance(model_id, str) or not model_id:
        return None
    return f"{provider}/{model_id}" if isinstance(provider, str) and provider else model_id


def _usage(steps: list[JSON], info: JSON) -> JSON | None:
    """Tokens and cost summed over the message's step-finish parts (or, without any, the
    totals opencode keeps on the message). Reasoning tokens count as output tokens."""
    sources = steps or ([info] if isinstance(info.get("tokens"), dict) else [])
    if not sources:
        return None
    inputs = outputs = reasoning = read = write = 0
    cost = 0.0
    for source in sources:
        tokens = _obj(source.get("tokens"))
        cache = _obj(tokens.get("cache"))
        inputs += _count(tokens.get("input"))
        outputs += _count(tokens.get("output"))
        reasoning += _count(tokens.get("reasoning"))
        read += _count(cache.get("read"))
        write += _count(cache.get("write"))
        value = source.get("cost")
        if finite(value):
            cost += float(value)
    usage: JSON = {
        "input_tokens": inputs,
        "output_tokens": outputs + reasoning,
        "cache_read_tokens": read,
        "cache_write_tokens": write,
        "cost_usd": round(cost, 10),
    }
    if reasoning:
        usage["reasoning_tokens"] = reasoning
    return bounded_usage(usage)


def _obj(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int:
    return int(value) if finite(value) else 0


# --- forks -----------------------------------------------------------------------------------


def _fork_of(
    converted: _Converted, parent: tuple[str, int] | None, copied: int | None = None
) -> JSON | None:
    """What is known of a fork: how much history it copied (counted when None), the title
    it was forked from (opencode names a fork "<title> (fork #N)"), and the parent's id
    when it was found."""
    copied = converted.copied() if copied is None else copied
    if not copied:
        return None
    fork: JSON = {"copied_messages": copied}
    match = _FORK_TITLE.match(as_text(converted.info.get("title")))
    if match:
        fork["of_title"] = match.group(1)
    if parent is not None:
        fork["of"] = parent[0]
    return fork


def _find_parent(item: _Converted, sessions: list[_Converted]) -> tuple[str, int] | None:
    """The session of the same database that a fork copied its history from: the one whose
    messages share the longest prefix with it (originals before copies, then the oldest)."""
    if not item.copied():
        return None
    mine = item.messages
    best: tuple[int, bool, int, str] | None = None
    for other in sessions:
        if other is item or other.info["id"] == item.info["id"]:
            continue
        shared = shared_prefix(mine, other.messages)
        if not shared:
            continue
        created = epoch_ms(_obj(other.info.get("time")).get("created")) or 0
        key = (-shared, other.copied() > 0, created, str(other.info["id"]))
        if best is None or key < best:
            best = key
    if best is None:
        return None
    return best[3], -best[0]
